"""Fourteenth round: the checkpoint's recorded settings, one resolution for every tool.

- The GUI's Python API (`ChatSession.load`) takes the checkpoint's conformer policy and
  render size, as deepmolm-gui, the chat CLI and model_vqa do (was: policy "auto").
- `ChatSession.load` names a stage-1 projector folder as the launchers do (was "no usable
  tokenizer").
- A checkpoint that records no render_size / conformer_policy / max_atoms gets a note naming
  them and the defaults used (was: silent).
- `--dtype auto` names the dtype the model was trained in when it chose another.
- `~` in a path option is expanded where it is parsed (was: the chat CLI and the GUI handed
  `~/ckpt` to the loader, which took it for a Hub id).
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

OLD_KEYS = ("conformer_policy", "render_size", "max_atoms")


def _model_with(checkpoint, folder, drop=(), **settings):
    """The checkpoint's files (linked), its config.json holding `settings`, without `drop`."""
    folder.mkdir()
    for path in checkpoint.iterdir():
        if path.name != "config.json":
            (folder / path.name).symlink_to(path)
    config = json.loads((checkpoint / "config.json").read_text())
    config = {k: v for k, v in {**config, **settings}.items() if k not in drop}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def one_thread():
    torch.set_num_threads(1)  # the tiny model: threads only cost


def test_python_session_takes_the_checkpoints_recorded_settings(trained_checkpoint, tmp_path, capsys, one_thread):
    from deepmolm_plugin.gui.session import ChatSession

    model = _model_with(trained_checkpoint, tmp_path / "model", conformer_policy="generate", render_size=512)
    session = ChatSession.load(str(model), device="cpu")
    assert (session.resolver.policy, session.resolver.render_size) == ("generate", 512)
    assert "note:" not in capsys.readouterr().err  # training's own settings: nothing to say

    # an explicit one overrides it, said; the same rule for a session built from a loaded model
    again = ChatSession(session.model_path, session.tokenizer, session.model, session.image_processor,
                        session.conv_mode, policy="keep")
    assert (again.resolver.policy, again.resolver.render_size) == ("keep", 512)
    assert "the model was trained with conformer policy 'generate'" in capsys.readouterr().err


def test_python_session_names_a_stage1_projector_folder(trained_checkpoint, tmp_path):
    from deepmolm_plugin.gui.session import ChatSession

    stage1 = tmp_path / "stage1"
    stage1.mkdir()
    (stage1 / "config.json").write_text((trained_checkpoint / "config.json").read_text())
    (stage1 / "mm_projector.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="a stage-1 projector folder"):
        ChatSession.load(str(stage1), device="cpu")


def test_a_checkpoint_without_recorded_settings_is_said(trained_checkpoint, tmp_path, capsys, one_thread):
    from deepmolm_plugin.cli import model_depiction_settings
    from deepmolm_plugin.gui.session import ChatSession

    old = _model_with(trained_checkpoint, tmp_path / "old", drop=OLD_KEYS)
    assert model_depiction_settings(str(old), None) == "auto"  # the chat CLI's and model_vqa's resolution
    err = capsys.readouterr().err
    assert "does not record conformer_policy, render_size, max_atoms" in err
    assert "1024 px" in err and "--conformer-policy" in err

    session = ChatSession.load(str(old), device="cpu")  # the GUI's session says it too
    assert "does not record conformer_policy, render_size, max_atoms" in capsys.readouterr().err
    assert session.resolver.render_size == 1024

    assert model_depiction_settings(str(trained_checkpoint), None) == "auto"  # all recorded: no note
    assert "does not record" not in capsys.readouterr().err


def test_auto_dtype_names_the_dtype_the_model_was_trained_in(trained_checkpoint, tmp_path, monkeypatch, caplog,
                                                             one_thread):
    from deepmolm_plugin import dtypes
    from deepmolm_plugin.gui.session import ChatSession

    model = _model_with(trained_checkpoint, tmp_path / "fp32", dtype="float32")
    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: True)  # auto picks bf16 here
    monkeypatch.setattr(dtypes, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.dtypes"):
        session = ChatSession.load(str(model), device="cpu")
    assert session.model.dtype == torch.bfloat16  # auto's choice is kept
    said = [r.getMessage() for r in caplog.records if r.name == "deepmolm_plugin.dtypes"]
    assert len(said) == 1 and "the model was trained in float32" in said[0] and "--dtype float32" in said[0]


def test_auto_dtype_says_nothing_more_when_it_matches_training(monkeypatch, caplog):
    from deepmolm_plugin import dtypes
    from deepmolm_plugin.model.loading import launcher_dtype

    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(dtypes, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.dtypes"):
        assert launcher_dtype("auto", "llava_qwen2", "cpu", {"dtype": "float32"}) == "bfloat16"
        monkeypatch.setattr(dtypes, "_logged", set())
        assert launcher_dtype("auto", "llava_qwen2", "cpu", {"dtype": "bfloat16"}) == "bfloat16"
    said = [r.getMessage() for r in caplog.records if r.name == "deepmolm_plugin.dtypes"]
    assert "trained in float32" in said[0] and "trained in" not in said[1]


def test_tilde_in_path_options_is_expanded_where_parsed(tmp_path, monkeypatch):
    from deepmolm_plugin import cli
    from deepmolm_plugin.eval import model_vqa
    from deepmolm_plugin.gui import __main__ as gui_main

    monkeypatch.setenv("HOME", str(tmp_path))
    home = str(tmp_path)
    args = cli.build_parser().parse_args(["--model-path=~/ckpt", "--model-base=~/base", "--image-file=~/a.png",
                                          "--structure=~/m.sdf"])
    assert (args.model_path, args.model_base, args.image_file, args.structure) == (
        f"{home}/ckpt", f"{home}/base", f"{home}/a.png", f"{home}/m.sdf")
    args = gui_main.build_parser().parse_args(["--model-path=~/ckpt", "--model-base=~/base"])
    assert (args.model_path, args.model_base) == (f"{home}/ckpt", f"{home}/base")
    args = model_vqa.build_parser().parse_args([
        "--model-path=~/ckpt", "--model-base=~/base", "--image-folder=~/img", "--question-file=~/q.jsonl",
        "--answers-file=~/out/a.jsonl", "--structure-folder=~/s", "--resume-from=~/r.jsonl",
        "--vision-feature-cache=~/cache"])
    assert (args.model_path, args.model_base, args.image_folder, args.question_file, args.answers_file,
            args.structure_folder, args.resume_from, args.vision_feature_cache) == (
        f"{home}/ckpt", f"{home}/base", f"{home}/img", f"{home}/q.jsonl", f"{home}/out/a.jsonl", f"{home}/s",
        [f"{home}/r.jsonl"], f"{home}/cache")


def test_python_session_expands_tilde(trained_checkpoint, tmp_path, monkeypatch, one_thread):
    from deepmolm_plugin.gui.session import ChatSession

    (tmp_path / "ckpt").symlink_to(trained_checkpoint)
    monkeypatch.setenv("HOME", str(tmp_path))
    session = ChatSession.load("~/ckpt", device="cpu")  # was: "Repo id must use alphanumeric chars"
    assert session.model_path == f"{tmp_path}/ckpt"
