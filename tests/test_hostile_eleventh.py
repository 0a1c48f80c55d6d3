"""Eleventh round (hostile sweeps and what earlier notes left); was:

1. eval.model_vqa took any --max-new-tokens (5000 on a model with a 256-token context):
   generation ran on past everything the model was trained to see, where the chat CLI and
   the GUI already stopped at the context.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest


# --- 1. model_vqa's --max-new-tokens within the model's context ----------------------------------
@pytest.mark.parametrize("context, given, used, note", [
    (256, 5000, 256, "note: --max-new-tokens 5000 set to 256 (this model's context is 256)"),
    (256, 256, 256, None),
    (32768, 2048, 2048, None),  # no GUI limit in batch eval: a long description may need it
    (None, 5000, 5000, None),  # no context stated: nothing to compare with
    (256, None, None, None),  # not given: the host's own default stays
])
def test_model_vqa_caps_max_new_tokens_at_the_models_context(capsys, context, given, used, note):
    from deepmolm_plugin.cli import new_tokens_within_context

    assert new_tokens_within_context(given, types.SimpleNamespace(tokenizer_model_max_length=context)) == used
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ([note] if note else []), err


def test_model_vqa_runs_the_host_with_the_capped_number(trained_checkpoint, tmp_path, monkeypatch, capsys):
    from deepmolm_plugin.eval import model_vqa

    context = json.loads((trained_checkpoint / "config.json").read_text())["tokenizer_model_max_length"]
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": 0, "smiles": "CCO", "text": "What is it?"}) + "\n")
    got = []
    monkeypatch.setattr(model_vqa, "run_host_eval", lambda host, args, config: got.append(args.max_new_tokens))
    model_vqa.main(["--model-path", str(trained_checkpoint), "--question-file", str(questions),
                    "--answers-file", str(tmp_path / "a.jsonl"), "--max-new-tokens", str(context + 100)])
    assert got == [context]
    assert f"note: --max-new-tokens {context + 100} set to {context}" in capsys.readouterr().err


# --- 2. the chat CLI's refused question leaves no empty ASSISTANT: label ---------------------------
def _rendered(out: bytes) -> list:
    """The lines a terminal shows for `out`: a carriage return goes back to the line's start,
    ESC[K erases from there to the line's end (all the chat writes of either)."""
    lines = []
    for raw in out.decode("utf-8", "replace").split("\r\n"):
        line, col = "", 0
        for part in raw.replace("\x1b[K", "\0K").split("\r"):
            col = 0
            for i, piece in enumerate(part.split("\0K")):
                if i:
                    line = line[:col]
                line = line[:col] + piece + line[col + len(piece):]
                col += len(piece)
        lines.append(line)
    return lines


def test_the_rendering_helper_follows_a_terminal():
    assert _rendered(b"ASSISTANT: \r\x1b[Kerror: x\r\nUSER: ") == ["error: x", "USER: "]
    assert _rendered(b"ASSISTANT: \r\nerror: x") == ["ASSISTANT: ", "error: x"]


def test_a_question_too_long_for_the_model_erases_the_reply_label_in_a_terminal(trained_checkpoint, tmp_path):
    import sys

    from test_hostile_chat_tenth import Terminal

    chat = Terminal([sys.executable, "-m", "deepmolm_plugin.cli", "--model-path", str(trained_checkpoint),
                     "--smiles", "CCO", "--device", "cpu", "--max-new-tokens", "4", "--temperature", "0"], tmp_path)
    chat.wait_for(b"USER: ")
    chat.send(b"word " * 400 + b"\r")  # past the tiny model's context
    chat.wait_for(b"USER: ", 2)
    chat.send(b"\r")
    chat.wait_for(b"exit...")
    assert chat.close() == 0, chat.screen()
    lines = _rendered(chat.out)
    refused = [i for i, line in enumerate(lines) if line.startswith("error: the prompt is ")]
    assert len(refused) == 1, lines[-6:]
    # was: "ASSISTANT: " over nothing, the error on the line below it
    assert not any(line.strip() == "ASSISTANT:" for line in lines), lines[-6:]
    assert lines[refused[0] + 1] == "USER: ", lines[-6:]


def test_piped_the_error_starts_on_its_own_line(monkeypatch, capsys):
    from deepmolm_plugin.cli import without_reply_label

    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert without_reply_label() == "\n"
    assert "\x1b" not in capsys.readouterr().out


# --- 3. DeepEncoderImageProcessor.global_view takes what preprocess takes ---------------------------
def test_global_view_takes_paths_and_composites_alpha_on_white_as_preprocess(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from deepmolm_plugin.encoder import DeepEncoderImageProcessor

    processor = DeepEncoderImageProcessor(image_size=64)
    drawing = Image.new("RGBA", (40, 24), (0, 0, 0, 0))  # black on transparent, as drawings come
    drawing.paste((0, 0, 0, 255), (10, 8, 30, 16))
    path = tmp_path / "drawing.png"
    drawing.save(path)
    for square_first in (False, True):
        expected = processor.preprocess(str(path), square_first=square_first)["pixel_values"][0]
        for given in (drawing, str(path), path):  # was: RGBA back, transparent black; a path AttributeError
            view = processor.global_view(given, square_first=square_first)
            assert view.mode == "RGB" and view.size == (64, 64)
            assert view.getpixel((4, 17)) == (255, 255, 255)  # a transparent pixel of the drawing: white
            assert torch.equal(processor.normalize(view), expected)
    assert np.asarray(processor.global_view(drawing)).shape == (64, 64, 3)


# --- 4. a key given twice in a DeepEncoder configuration file ----------------------------------------
def _with_repeated_depth(config: dict) -> str:
    # the user's appended correction comes first in the text: JSON readers keep the last value
    return json.dumps(config).replace("{", '{"sam_depth": 4, ', 1)


def test_a_tower_configuration_stating_a_key_twice_is_refused_naming_file_and_key(tmp_path):
    from deepmolm_plugin.encoder import DeepEncoder, DeepEncoderConfig, load_deepencoder
    from deepmolm_plugin.tensor_files import CheckpointError
    from conftest import tiny_encoder_config

    config = tiny_encoder_config()
    path = tmp_path / "tower.json"
    path.write_text(_with_repeated_depth(config.to_dict()))
    with pytest.raises(ValueError, match=r'tower\.json: the key "sam_depth" is given twice'):
        DeepEncoderConfig.load(path)  # was: sam_depth of the last one, without a word
    DeepEncoder(config).save_pretrained(tmp_path / "saved")
    saved = tmp_path / "saved" / "deepencoder_config.json"
    saved.write_text(_with_repeated_depth(json.loads(saved.read_text())))
    with pytest.raises(CheckpointError, match=r'deepencoder_config\.json is not a usable .*"sam_depth" is given twice'):
        load_deepencoder(tmp_path / "saved")


def test_training_refuses_a_deepencoder_config_stating_a_key_twice(tiny_setup, tmp_path):
    from host_fixtures import run_module, train_args

    path = tmp_path / "tower.json"
    path.write_text(_with_repeated_depth(json.loads(Path(tiny_setup["encoder_config"]).read_text())))
    args = train_args(tiny_setup, tmp_path / "out")
    args[args.index("--deepencoder_config") + 1] = str(path)
    proc = run_module("deepmolm_plugin.train", args, tmp_path, check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if '"sam_depth" is given twice' in line]
    assert lines and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "out" / "trainer_state.json").exists()


# --- 5. a property head without its loss weight in the config -----------------------------------------
@pytest.mark.parametrize("weight", [None, 0, -1.0, float("nan"), "0.1", True])
def test_training_a_property_head_without_a_usable_weight_names_the_field(weight):
    import torch
    from llava.constants import IMAGE_TOKEN_INDEX

    import deepmolm_plugin
    from conftest import tiny_encoder_config
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2Config, LlavaQwen2ForCausalLM

    deepmolm_plugin.register()
    extra = {} if weight is None else {"aux_property_weight": weight}
    config = LlavaQwen2Config(
        vocab_size=900, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, max_position_embeddings=512, mm_vision_tower="deepencoder",
        deepencoder_config=tiny_encoder_config().to_dict(), vision_tower_weights="random",
        mm_projector_type="fusion", mm_hidden_size=64, fp_bits=64, fp_levels=4, fusion_heads=2,
        aux_property_task="kflm2", aux_properties=["logp"], **extra)
    torch.manual_seed(0)
    model = LlavaQwen2ForCausalLM(config).eval()
    ids = torch.tensor([[5, 6, IMAGE_TOKEN_INDEX, 7, 8]])
    # was: AttributeError "'LlavaQwen2Config' object has no attribute 'aux_property_weight'" (missing),
    # or a loss scaled by 0 / a negative / NaN weight
    with pytest.raises(ValueError, match=r"config\.aux_property_weight is .*a number > 0"):
        model(input_ids=ids, labels=torch.tensor([[-100, -100, -100, 7, 8]]), images=torch.randn(1, 3, 128, 128),
              molecule_fp=torch.randint(0, 64, (1, 3, 4)))


# --- 6. a token sidecar's disk space is reserved before its memory map is written ------------------
def test_a_sidecar_reserves_its_blocks_so_a_full_disk_is_an_error_not_sigbus(tmp_path, monkeypatch):
    import errno
    import os

    import numpy as np

    from deepmolm_plugin.molecule.sidecar import SidecarBuilder

    builder = SidecarBuilder(tmp_path / "a.npy", 4096, 8, np.dtype(np.int16))
    size = (tmp_path / "a.npy").stat().st_size
    assert (tmp_path / "a.npy").stat().st_blocks * 512 >= size  # was: a sparse file, filled through the map
    del builder

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="No space left"):
        SidecarBuilder(tmp_path / "b.npy", 4096, 8, np.dtype(np.int16))

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)  # a file system that cannot reserve: as before
    SidecarBuilder(tmp_path / "c.npy", 16, 8, np.dtype(np.int16)).append(np.zeros((16, 8), np.int16))
    monkeypatch.delattr(os, "posix_fallocate")  # a platform without it (macOS; review): as before
    SidecarBuilder(tmp_path / "d.npy", 16, 8, np.dtype(np.int16)).append(np.zeros((16, 8), np.int16))


# --- 7. model_vqa: a depiction it cannot write stops the run in one line ------------------------------
def _full_disk_for_paths_with(part: str, monkeypatch) -> None:
    """open() for writing a path containing `part` fails as on a full disk."""
    import builtins
    import errno
    import os

    real_open = builtins.open

    def full_disk(file, mode="r", *args, **kwargs):
        if part in str(file) and "w" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)


def test_model_vqa_that_cannot_write_a_depiction_stops_in_one_line(trained_checkpoint, tmp_path, monkeypatch):
    from deepmolm_plugin.eval import model_vqa

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": "q1", "smiles": "CCO", "text": "What is it?"}) + "\n")
    _full_disk_for_paths_with("renders", monkeypatch)
    with pytest.raises(SystemExit) as exit_:  # was: PIL's OSError traceback out of the question loop
        model_vqa.main(["--model-path", str(trained_checkpoint), "--question-file", str(questions),
                        "--answers-file", str(tmp_path / "a.jsonl"), "--temperature", "0"])
    message = str(exit_.value.code)
    assert message.startswith("error: cannot write ") and "renders" in message and "No space left" in message
    assert "q1" in message  # whose depiction it was


def test_a_model_config_json_stating_a_tower_size_twice_is_refused(tmp_path):
    # review: only deepencoder_config.json refused a repeated key; a DeepMoLM checkpoint's
    # config.json (its `deepencoder_config`) still took the last value without a word
    from conftest import tiny_encoder_config
    from deepmolm_plugin.encoder.checkpoint import saved_config
    from deepmolm_plugin.tensor_files import CheckpointError

    body = json.dumps(tiny_encoder_config().to_dict())[1:-1]
    (tmp_path / "config.json").write_text('{"model_type": "llava_qwen2", "deepencoder_config": {'
                                          + body + ', "clip_layers": 6}}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r'config\.json is not a usable .*"clip_layers" is given twice'):
        saved_config(tmp_path)


def test_the_refused_label_stays_when_stderr_is_not_the_terminal(monkeypatch, capsys):
    # review: stdout a terminal, stderr a log: erasing the label left the screen with neither
    from deepmolm_plugin.cli import without_reply_label

    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert without_reply_label() == "\n"
    out = capsys.readouterr().out
    # the label's line ends, saying why (review: the next `USER: ` went on it, no refusal on screen)
    assert "\x1b" not in out and out == "(no answer: the question was refused; the reason is on stderr)\n"
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert without_reply_label() == ""
    assert capsys.readouterr().out == "\r\x1b[K"


def test_the_chat_cli_that_cannot_write_its_depiction_blames_the_disk_not_the_smiles(trained_checkpoint, tmp_path,
                                                                                     monkeypatch, capsys):
    # review: OutputWriteError is a ValueError, and the CLI's `except ValueError` made it "--smiles: ...", exit 2
    from deepmolm_plugin import cli

    _full_disk_for_paths_with("deepmolm_cli_", monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--model-path", str(trained_checkpoint), "--smiles", "CCO", "--device", "cpu"])
    message = str(exit_.value.code)
    assert "error: cannot write " in message and "No space left" in message, message
    assert "--smiles:" not in message and "--smiles" not in capsys.readouterr().err


# --- 8. a NUL in a csv / sdf text answer past the file check's first 64 KiB ---------------------------
def test_a_late_nul_in_a_csv_text_column_fails_its_item_not_kept_in_the_answer():
    # review: the csv reader's whole-file check reads the first 64 KiB; a NUL after it was kept in the answer
    from deepmolm_plugin.data.sources.base import MoleculeSpec, SourceError
    from deepmolm_plugin.data.sources.csv_source import text_item

    got = text_item("r9", "train", "column 'desc'", "description", "A solvent\x00 of note.",
                    MoleculeSpec(smiles="CCO"), {})
    assert isinstance(got, SourceError) and got.stage == "read"
    assert "column 'desc' holds the control character '\\x00'" in got.reason
    kept = text_item("r9", "train", "column 'desc'", "description", "A solvent,\tused\nwidely.",
                     MoleculeSpec(smiles="CCO"), {})
    assert kept.answer == "A solvent,\tused\nwidely."  # tabs and line breaks are text


# --- 9. --resume says why earlier answers were not kept ------------------------------------------------
def test_a_resume_that_keeps_nothing_names_the_settings_that_differ(tmp_path, monkeypatch, capsys):
    import torch

    from deepmolm_plugin.eval import model_vqa
    from test_host_cli_eval import FUSION_CONFIG, _stub_args, _stub_host, _write_questions

    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": f"q{i}", "smiles": s, "text": "What?"}
                                 for i, s in enumerate(["CCO", "CCN"])])
    answers = tmp_path / "a.jsonl"
    model_vqa.run_host_eval(host, _stub_args(questions, answers, "--max-new-tokens", "3"), FUSION_CONFIG)
    capsys.readouterr()
    model_vqa.run_host_eval(host, _stub_args(questions, answers, "--max-new-tokens", "3", "--resume"),
                            FUSION_CONFIG)
    err = capsys.readouterr().err
    assert "--resume: 2 of 2 questions keep" in err and "other settings" not in err  # same settings: no note
    model_vqa.run_host_eval(host, _stub_args(questions, answers, "--max-new-tokens", "4", "--resume"),
                            FUSION_CONFIG)
    err = capsys.readouterr().err
    assert "--resume: 0 of 2 questions keep" in err
    # was: no reason given (a --dtype or --max-new-tokens that differs looked like lost answers)
    assert "note: --resume: earlier answers were made with other settings: max_new_tokens 3 -> 4" in err, err


# --- 10. deepmolm-gui --dtype, as the chat CLI and model_vqa ---------------------------------------------
def test_the_gui_session_loads_in_the_dtype_asked(trained_checkpoint):
    import torch

    from deepmolm_plugin.gui.__main__ import build_parser
    from deepmolm_plugin.gui.session import ChatSession

    assert build_parser().parse_args(["--model-path", "m", "--dtype", "float32"]).dtype == "float32"
    assert build_parser().parse_args(["--model-path", "m"]).dtype == "auto"
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        session = ChatSession.load(str(trained_checkpoint), device="cpu", dtype=name)
        assert session.model.dtype == dtype  # was: always auto (bf16 on a CPU with native bf16)
        assert session.describe().endswith(f"cpu · {name}")


# --- 11. review of the cache summary and folder rules -------------------------------------------------
def test_a_run_folder_named_like_an_entry_folder_is_no_entry(tmp_path):
    from deepmolm_plugin.encoder.feature_cache import _holds_entries

    (tmp_path / "01").mkdir()
    (tmp_path / "01" / "model.safetensors").write_bytes(b"")  # a run's output folder `runs/01` under the cache
    assert not _holds_entries(tmp_path)  # was: held entries (any *.safetensors in a two-character folder)
    key = "01" + "a" * 62
    (tmp_path / "01" / f"{key}.safetensors").write_bytes(b"")
    assert _holds_entries(tmp_path)


def test_a_cache_inside_a_model_folder_is_refused(tmp_path):
    from deepmolm_plugin import usage

    model = tmp_path / "checkpoint"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    with pytest.raises(usage.UsageError, match=r"is inside the model folder .*checkpoint \(config\.json"):
        usage.cache_folder(model / "feature_cache", "--vision-feature-cache")  # was: accepted, shipped with it
    assert usage.cache_folder(tmp_path / "cache", "--vision-feature-cache") == tmp_path / "cache"


@pytest.mark.parametrize("output, refused", [("runs/01", True), ("runs/.tmp/x", True), ("runs/exp1", False),
                                             ("runs/0g", False)])
def test_an_output_dir_in_a_folder_the_cache_writes_is_refused(tmp_path, output, refused):
    from deepmolm_plugin import usage
    from deepmolm_plugin.training.arguments import check_cache_outside_output

    cache = tmp_path / "runs"
    if refused:  # was: accepted, 1/256 of the entries written among the checkpoints of runs/01
        with pytest.raises(usage.UsageError, match=r"a folder the feature cache .* writes its entries into"):
            check_cache_outside_output(str(cache), str(tmp_path / output))
    else:
        check_cache_outside_output(str(cache), str(tmp_path / output))


def test_model_vqa_records_its_dtype_and_a_resume_in_another_names_it(tmp_path, monkeypatch, capsys):
    import torch

    from deepmolm_plugin.eval import model_vqa
    from test_host_cli_eval import FUSION_CONFIG, _stub_args, _stub_host, _write_questions

    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": "q0", "smiles": "CCO", "text": "What?"}])
    answers = tmp_path / "a.jsonl"
    model_vqa.run_host_eval(host, _stub_args(questions, answers, "--dtype", "float32"), FUSION_CONFIG)
    line = json.loads(answers.read_text())
    assert line["metadata"]["settings"]["dtype"] == "float32"
    capsys.readouterr()
    model_vqa.run_host_eval(host, _stub_args(questions, answers, "--dtype", "bfloat16", "--resume"), FUSION_CONFIG)
    err = capsys.readouterr().err
    assert "--resume: 0 of 1 questions keep" in err
    assert "other settings: dtype 'float32' -> 'bfloat16'" in err, err


# --- 12. dense NULs still refuse a whole text file ------------------------------------------------------
def test_utf16_without_a_byte_order_mark_is_refused_whole_and_a_stray_nul_fails_its_row(tmp_path):
    from deepmolm_plugin.data.sources.chebi20 import text_problem

    text = "CID\tSMILES\tdescription\n1\tCCO\tThe molecule is ethanol.\n"
    utf16 = tmp_path / "train.txt"
    utf16.write_bytes(text.encode("utf-16-le"))  # no byte-order mark
    with pytest.raises(ValueError, match=r"NUL bytes throughout: UTF-16 text without a byte-order mark"):
        text_problem(utf16, "chebi20")  # review: was one failure per line, the header shown as C\x00I\x00D
    stray = tmp_path / "ok.txt"
    stray.write_bytes((text + "2\tCCN\tAn amine\x00 of note.\n" + text.split("\n", 1)[1] * 50).encode())
    text_problem(stray, "chebi20")  # one NUL in a row: that row's failure, not the file's
