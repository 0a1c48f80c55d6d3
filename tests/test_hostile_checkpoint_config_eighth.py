"""Hostile checkpoint folders, eighth sweep: what was wrong -> what happens now.

- A tokenizer with more tokens than the model's embedding table has rows (tokenizer files
  copied from another model): an IndexError at the first question using an extra token (a
  device-side assert on CUDA; model_vqa stopped the batch) -> refused at load, before the
  model loads, in one line naming the folder and both numbers.
- mm_use_im_start_end, mm_use_im_patch_token or image_aspect_ratio edited in a saved
  config.json: loaded without a word, the prompt or the image's view changed -> recorded at
  save and refused at load as "config.json was edited after the model was saved"; a record
  written before these fields were recorded still loads.
- `--conv-mode auto` gave `qwen2` (ChatML) to a model trained with `--version plain` -> auto
  uses the template training recorded (`deepmolm_run.version`): model_vqa asks in `plain`,
  and the chat and the GUI refuse it before loading, saying the model was trained in it.
- config.json values of the wrong kind (tokenizer_model_max_length "256", fp_bits "4096",
  image_aspect_ratio "anyres", mm_projector_type 5, no model_type...) were tracebacks, most
  after the model had loaded -> one line naming <folder>/config.json, the field and the value,
  before anything loads; a config.json transformers cannot read is one line too (was
  AutoConfig's traceback in the chat CLI and model_vqa).

One tiny trained checkpoint per session (conftest's `trained_checkpoint`), copied per test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

DELETE = object()


@pytest.fixture(autouse=True)
def registered():
    """The llava_qwen2 model type known to transformers' Auto classes, as every launcher has it."""
    import deepmolm_plugin

    deepmolm_plugin.register()


@pytest.fixture
def checkpoint(trained_checkpoint, tmp_path):
    """A copy of the trained checkpoint this test may edit."""
    folder = tmp_path / "checkpoint"
    shutil.copytree(trained_checkpoint, folder)
    return folder


def edit_config(folder, **fields) -> dict:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for name, value in fields.items():
        if value is DELETE:
            config.pop(name, None)
        else:
            config[name] = value
    path.write_text(json.dumps(config, indent=2))
    return config


def add_tokens_beyond_embeddings(folder) -> int:
    """Tokens added to the folder's tokenizer until it has one more than the embedding rows."""
    from transformers import AutoTokenizer

    rows = json.loads((folder / "config.json").read_text())["vocab_size"]
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.add_tokens([f"zzextra{i}" for i in range(rows + 1 - len(tokenizer))])
    tokenizer.save_pretrained(str(folder))
    assert len(tokenizer) == rows + 1
    return rows


def _no_model_load(monkeypatch) -> list:
    """The host CLI's model load replaced by one that records the call and stops there."""
    import torch

    import llava.serve.cli as host_cli

    for layer in (torch.nn.Linear, torch.nn.LayerNorm):  # the host CLI's disable_torch_init() replaces these
        monkeypatch.setattr(layer, "reset_parameters", layer.reset_parameters)
    loads = []

    def load(*args, **kwargs):
        loads.append(args)
        raise RuntimeError("the model loads")

    monkeypatch.setattr(host_cli, "load_pretrained_model", load)
    return loads


# --- 1: a tokenizer larger than the embedding table ------------------------------------------
def test_a_tokenizer_with_more_tokens_than_embedding_rows_is_refused_before_the_model_loads(checkpoint,
                                                                                          monkeypatch):
    # was: loaded; IndexError "index out of range in self" at the first question using an extra token
    from deepmolm_plugin.model import loading
    from deepmolm_plugin.tensor_files import CheckpointError

    rows = add_tokens_beyond_embeddings(checkpoint)
    monkeypatch.setattr(loading, "load_llm", lambda *a, **k: pytest.fail("the model loaded"))
    with pytest.raises(CheckpointError) as error:
        loading.load_pretrained_model(str(checkpoint), device="cpu")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{checkpoint}: its tokenizer has {rows + 1} tokens but the "
                                                      f"model's embedding table has {rows} rows"), message
    # fewer tokens than rows is how Qwen2 pads its table: no error
    loading.check_tokenizer_fits(list(range(rows - 5)), rows, str(checkpoint))


def test_the_chat_cli_says_so_in_one_line(checkpoint):
    # was: the chat started and died with an IndexError traceback at the first question
    rows = add_tokens_beyond_embeddings(checkpoint)
    proc = subprocess.run([sys.executable, "-m", "deepmolm_plugin.cli", "--model-path", str(checkpoint), "--smiles",
                           "CCO", "--device", "cpu", "--max-new-tokens", "2", "--temperature", "0"],
                          input="say zzextra0\n\n", text=True, capture_output=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "ASSISTANT" not in proc.stdout, proc.stderr[-3000:]
    assert f"error: {checkpoint}: its tokenizer has {rows + 1} tokens but the model's embedding table has {rows} " \
           "rows" in proc.stderr.splitlines()[-1], proc.stderr[-3000:]


# --- 2: prompt and image settings edited after saving -----------------------------------------
@pytest.mark.parametrize("field, value, shown", [
    ("mm_use_im_start_end", True, "mm_use_im_start_end True (saved with False)"),
    ("mm_use_im_patch_token", True, "mm_use_im_patch_token True (saved with False)"),
    ("image_aspect_ratio", "square", "image_aspect_ratio 'square' (saved with 'pad')"),
    ("image_aspect_ratio", DELETE, "image_aspect_ratio None (saved with 'pad')"),
])
def test_prompt_and_image_settings_edited_after_saving_are_listed(checkpoint, field, value, shown):
    # was: not recorded, so an edit loaded without a word (other prompt tokens, another view of the image)
    from deepmolm_plugin.model.config_record import RECORD, edited_settings

    values = edit_config(checkpoint, **{field: value})
    assert edited_settings(values) == [shown]
    # a record written before these fields were recorded lacks them: that config loads as it did
    values[RECORD] = {k: v for k, v in values[RECORD].items() if k != field}
    assert edited_settings(values) == []


def test_the_loader_refuses_an_edited_mm_use_im_start_end(checkpoint):
    # was: loaded; the prompt then held '<im_start>'/'<im_end>', text the tokenizer has no token for
    from deepmolm_plugin.model.loading import load_llm
    from deepmolm_plugin.tensor_files import CheckpointError

    edit_config(checkpoint, mm_use_im_start_end=True)
    with pytest.raises(CheckpointError, match=r"config.json was edited after the model was saved: "
                                              r"mm_use_im_start_end True \(saved with False\)"):
        load_llm(str(checkpoint))
    # the same edit in a config.json saved before the field was recorded: loads (checked as before)
    config = json.loads((checkpoint / "config.json").read_text())
    for name in ("mm_use_im_start_end", "mm_use_im_patch_token", "image_aspect_ratio"):
        del config["deepmolm_saved_settings"][name]
    (checkpoint / "config.json").write_text(json.dumps(config))
    assert load_llm(str(checkpoint)).config.mm_use_im_start_end is True


# --- 3: --conv-mode auto and the template training recorded -----------------------------------
def test_auto_uses_the_template_training_recorded():
    # was: qwen2 for every Qwen2-family model, whatever it was trained in
    from types import SimpleNamespace

    import deepmolm_plugin

    deepmolm_plugin.register()
    from deepmolm_plugin.patches.conversation_qwen2 import resolve_conv_mode

    def config(**run):
        return SimpleNamespace(model_type="llava_qwen2", _name_or_path="out/stage2", **run)

    assert resolve_conv_mode("auto", config(deepmolm_run={"version": "plain"})) == "plain"
    assert resolve_conv_mode("auto", config(deepmolm_run={"version": "qwen2"})) == "qwen2"
    assert resolve_conv_mode("auto", config()) == "qwen2"  # no record: as before
    assert resolve_conv_mode("auto", config(deepmolm_run={"version": None})) == "qwen2"
    # the host's train.py trains --version v1 in vicuna_v1: not a template a Qwen2 model answers in
    with pytest.raises(ValueError, match=r"deepmolm_run.version says this llava_qwen2 model was trained in "
                                         r"'vicuna_v1'"):
        resolve_conv_mode("auto", config(deepmolm_run={"version": "v0"}))


def test_eval_asks_a_plain_trained_model_in_plain(checkpoint, tmp_path, monkeypatch):
    # was: model_vqa (run_eval.sh passes --conv-mode auto) asked it in qwen2 ChatML, a template it never saw
    from deepmolm_plugin.eval import model_vqa

    edit_config(checkpoint, deepmolm_run={"version": "plain", "freeze_backbone": False,
                                          "unfreeze_mm_vision_tower": False})
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": "q1", "smiles": "CCO", "text": "What?"}) + "\n")
    modes = []
    monkeypatch.setattr(model_vqa, "run_host_eval", lambda host, args, config: modes.append(args.conv_mode))
    model_vqa.main(["--model-path", str(checkpoint), "--question-file", str(questions), "--answers-file",
                    str(tmp_path / "answers" / "a.jsonl"), "--conv-mode", "auto"])
    assert modes == ["plain"]


def test_the_chat_and_a_gui_session_refuse_a_plain_trained_model_before_loading(checkpoint, monkeypatch, capsys):
    # was: the chat ran it in qwen2 ChatML under auto without a word; a GUI session checked "auto", loaded the model,
    # then resolved auto (to qwen2)
    from llava.model import builder

    from deepmolm_plugin import cli
    from deepmolm_plugin.gui.session import ChatSession

    edit_config(checkpoint, deepmolm_run={"version": "plain", "freeze_backbone": False,
                                          "unfreeze_mm_vision_tower": False})
    loads = _no_model_load(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--model-path", str(checkpoint), "--smiles", "CCO", "--device", "cpu"])
    assert exit_.value.code == 2 and loads == []
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("note: ")]
    assert len(errors) == 1 and "--conv-mode: conversation mode 'plain' cannot chat: this model was trained in it " \
                                "(config.json's deepmolm_run.version)" in errors[0], errors
    monkeypatch.setattr(builder, "load_pretrained_model", lambda *a, **k: pytest.fail("the model loaded"))
    with pytest.raises(ValueError, match="'plain' cannot chat: this model was trained in it"):
        ChatSession.load(str(checkpoint), device="cpu")


def test_an_explicit_mode_other_than_the_trained_one_gets_a_note(checkpoint, tmp_path, monkeypatch, capsys):
    # was: `--conv-mode qwen2` on a model trained in plain asked it in ChatML without a word (a note, not a
    # refusal: trying another template on purpose is legitimate); the trained mode, or no record, says nothing
    from deepmolm_plugin.eval import model_vqa
    from deepmolm_plugin.patches.conversation_qwen2 import conv_mode_note

    assert conv_mode_note("qwen2", {"deepmolm_run": {"version": "qwen2"}}) is None
    assert conv_mode_note("qwen2", {"model_type": "llava_qwen2"}) is None
    assert "trained in conversation mode 'plain'" in conv_mode_note("qwen2", {"deepmolm_run": {"version": "plain"}})
    edit_config(checkpoint, deepmolm_run={"version": "plain", "freeze_backbone": False,
                                          "unfreeze_mm_vision_tower": False})
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": "q1", "smiles": "CCO", "text": "What?"}) + "\n")
    monkeypatch.setattr(model_vqa, "run_host_eval", lambda host, args, config: None)
    for mode, noted in (("qwen2", True), ("auto", False), ("plain", False)):
        model_vqa.main(["--model-path", str(checkpoint), "--question-file", str(questions), "--answers-file",
                        str(tmp_path / "answers" / "a.jsonl"), "--conv-mode", mode])
        err = capsys.readouterr().err
        assert ("note: this model was trained in conversation mode 'plain' (config.json's deepmolm_run.version); "
                "--conv-mode 'qwen2' lays prompts out as it never saw them" in err) is noted, (mode, err)


def test_the_chat_notes_an_explicit_mode_other_than_the_trained_one(checkpoint, monkeypatch, capsys):
    from deepmolm_plugin import cli

    edit_config(checkpoint, deepmolm_run={"version": "plain", "freeze_backbone": False,
                                          "unfreeze_mm_vision_tower": False})
    loads = _no_model_load(monkeypatch)
    with pytest.raises(RuntimeError, match="the model loads"):
        cli.main(["--model-path", str(checkpoint), "--smiles", "CCO", "--device", "cpu", "--conv-mode", "qwen2"])
    assert len(loads) == 1
    assert "note: this model was trained in conversation mode 'plain'" in capsys.readouterr().err


# --- 4: config.json fields of the wrong kind ----------------------------------------------------
@pytest.mark.parametrize("field, value, problem", [
    ("tokenizer_model_max_length", "256", "tokenizer_model_max_length is '256' (str), not a whole number"),
    ("tokenizer_model_max_length", 256.0, "tokenizer_model_max_length is 256.0 (float), not a whole number"),
    ("tokenizer_model_max_length", True, "tokenizer_model_max_length is True (bool), not a whole number"),
    ("fp_bits", "4096", "fp_bits) must be an integer, got '4096'"),
    ("image_aspect_ratio", "anyres", "image_aspect_ratio is 'anyres' (str), not one of 'square', 'pad' or null"),
    ("image_aspect_ratio", 5, "image_aspect_ratio is 5 (int), not one of"),
    ("mm_projector_type", 5, "mm_projector_type is 5 (int), not a string"),
    ("mm_vision_tower", 5, "mm_vision_tower is 5 (int), not a string"),
    ("mm_use_im_start_end", "false", "mm_use_im_start_end is 'false' (str), not true or false"),
    ("model_type", 5, "model_type is 5 (int), not a model type name"),
    ("deepmolm_run", "plain", "deepmolm_run is 'plain', not training's record"),
])
def test_config_fields_of_the_wrong_kind_are_one_line_before_loading(checkpoint, field, value, problem):
    # was: accepted here; a traceback later (often at the first question, once the model had loaded)
    from deepmolm_plugin import usage
    from deepmolm_plugin.cli import model_depiction_settings

    edit_config(checkpoint, **{field: value})
    with pytest.raises(usage.UsageError) as error:  # what the chat CLI, model_vqa and the GUI call first
        model_depiction_settings(str(checkpoint), None)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"--model-path: {checkpoint}/config.json: "), message
    assert problem in message, message


def test_the_loader_checks_the_same_fields(checkpoint):
    # was: loaded; TypeError "'>' not supported between instances of 'int' and 'str'" at the first question
    from deepmolm_plugin.model.loading import load_pretrained_model
    from deepmolm_plugin.tensor_files import CheckpointError

    edit_config(checkpoint, tokenizer_model_max_length="256")
    with pytest.raises(CheckpointError, match=r"config.json: tokenizer_model_max_length is '256' \(str\)"):
        load_pretrained_model(str(checkpoint), device="cpu")


def test_anyres_is_refused_without_its_grid_and_accepted_with_it_for_another_tower(checkpoint):
    # was: accepted; AttributeError image_grid_pinpoints in the host's process_images at the first question.
    # The host serves anyres on image_grid_pinpoints (a CLIP-tower llava model); a deepencoder one cannot.
    from deepmolm_plugin.checkpoint_config import ConfigFieldError, check_config_fields

    config = edit_config(checkpoint, image_aspect_ratio="anyres", mm_vision_tower="openai/clip-vit-large-patch14")
    with pytest.raises(ConfigFieldError, match="'anyres' needs image_grid_pinpoints"):
        check_config_fields(config, checkpoint)
    check_config_fields({**config, "image_grid_pinpoints": [[336, 672], [672, 336]]}, checkpoint)


@pytest.mark.parametrize("model_type, says", [(DELETE, "Unrecognized model"),
                                               ("no_such_model", "has model type `no_such_model`")])
def test_a_config_transformers_cannot_read_is_one_line_in_chat_and_eval(checkpoint, tmp_path, monkeypatch,
                                                                        model_type, says):
    # was: a ValueError traceback from AutoConfig (cli.py, model_vqa.py)
    from deepmolm_plugin import cli
    from deepmolm_plugin.eval import model_vqa

    edit_config(checkpoint, model_type=model_type)
    loads = _no_model_load(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--model-path", str(checkpoint), "--smiles", "CCO", "--device", "cpu"])
    assert str(exit_.value.code).startswith(f"error: {checkpoint}/config.json: cannot be read as a model config: ")
    assert says in str(exit_.value.code) and "\n" not in str(exit_.value.code) and loads == []
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": "q1", "smiles": "CCO", "text": "What?"}) + "\n")
    with pytest.raises(SystemExit) as exit_:
        model_vqa.main(["--model-path", str(checkpoint), "--question-file", str(questions), "--answers-file",
                        str(tmp_path / "answers" / "a.jsonl")])
    assert str(exit_.value.code).startswith(f"error: {checkpoint}/config.json: cannot be read as a model config: ")
    assert "\n" not in str(exit_.value.code)
