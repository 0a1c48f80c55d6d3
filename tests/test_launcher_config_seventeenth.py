"""Launcher options and DeepEncoder configurations mistyped, seventeenth sweep: refused before
any work, each in one line naming the option (or field), the value and what is accepted.

- `--mm_projector Fusion` (wrong case), or a host projector (`mlp3x_gelu`, `identity`) with
  `--vision_tower deepencoder`: was the host's "Unknown projector type" traceback once the LLM
  had loaded, or an AttributeError ('Sequential' has no `embed_images`) at the first step;
- `--fusion_heads 3` for an LLM of width 64: was fusion.py's ValueError traceback once the LLM
  had loaded;
- DeepEncoderConfig: a global-attention block named twice, a LayerNorm eps of 1e3, and (where
  tiles are cut, `--image_mode tiles`) tiles larger than the global view or too small to add
  detail: all were accepted without a word.
"""

from __future__ import annotations

import json
import sys

import pytest

from host_fixtures import run_module, train_args

from deepmolm_plugin.encoder import DeepEncoderConfig, encoder_config
from deepmolm_plugin.encoder.image_processor import DeepEncoderImageProcessor

PROG = "python -m deepmolm_plugin.train"
SERVED = "use one of fusion, concat, linear, mlp2x_gelu"


def _heads(setup, out, heads):
    args = train_args(setup, out, "--mm_projector", "fusion", steps=1)
    args[args.index("--fusion_heads") + 1] = heads
    return args


# (what the user typed, the argv, what the one line says)
CASES = {
    "Fusion": (lambda s, o: train_args(s, o, "--mm_projector", "Fusion", steps=1),
               f"error: --mm_projector Fusion is not a projector of --vision_tower deepencoder: {SERVED} "
               "(names are lower case: fusion)"),
    "mlp3x_gelu": (lambda s, o: train_args(s, o, "--mm_projector", "mlp3x_gelu", steps=1),
                   f"error: --mm_projector mlp3x_gelu is not a projector of --vision_tower deepencoder: {SERVED};"),
    "identity": (lambda s, o: train_args(s, o, "--mm_projector_type", "identity", steps=1),
                 f"error: --mm_projector_type identity is not a projector of --vision_tower deepencoder: {SERVED};"),
    "heads 3": (lambda s, o: _heads(s, o, "3"),
                "error: --fusion_heads 3 does not divide the LLM width: --model_name_or_path {llm} has hidden_size "
                "64, which the fusion projector's cross-attention splits among its heads; give a divisor of 64 "
                "(the nearest: 2 or 4)"),
}


def _main_refuses(monkeypatch, capsys, argv) -> str:
    """The launcher's main in this process, with the host's train() (which loads the LLM first)
    failing the test if it is reached; returns the one line it said (exit status 2)."""
    import deepmolm_plugin
    from deepmolm_plugin import train

    deepmolm_plugin.register()
    import llava.train.train as host

    def loads_the_model(**kwargs):
        raise AssertionError("the host's train() was reached: the LLM would have loaded")

    monkeypatch.setattr(host, "train", loads_the_model)
    monkeypatch.setattr(sys, "argv", ["train"])
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(SystemExit) as exit_:
        train.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err[-3000:]
    assert err.count("\n") == 1 and err.startswith(f"{PROG}: error: "), err[-3000:]
    return err.strip()


@pytest.mark.parametrize("case", list(CASES))
def test_a_projector_or_head_count_the_run_cannot_build_is_refused_before_the_llm_loads(
        monkeypatch, capsys, tiny_setup, tmp_path, case):
    make, message = CASES[case]
    out = tmp_path / "out"
    line = _main_refuses(monkeypatch, capsys, make(tiny_setup, out))
    assert message.format(llm=tiny_setup["llm"]) in line
    assert not out.exists()  # nothing written: refused among the checks


def test_a_user_sees_one_line_and_exit_2(tiny_setup, tmp_path):
    # as a user runs it: the same refusal from `python -m`, no traceback, no weights loaded
    proc = run_module("deepmolm_plugin.train", _heads(tiny_setup, tmp_path / "out", "3"), cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: --fusion_heads 3 does not divide the LLM width"), \
        proc.stderr[-3000:]
    assert not (tmp_path / "out").exists()


def test_the_served_projectors_and_dividing_heads_still_pass_the_checks(monkeypatch, capsys, tiny_setup, tmp_path):
    # the refusals name exactly what the registry builds for the tower: each of those gets past
    # the checks to the host's train() (here a stand-in that records the call)
    import deepmolm_plugin
    from deepmolm_plugin import train
    from deepmolm_plugin.patches.registry import LAYOUT_PROJECTORS, MOLECULE_PROJECTORS
    from deepmolm_plugin.projector import PROJECTORS

    assert set(MOLECULE_PROJECTORS + LAYOUT_PROJECTORS) == set(PROJECTORS)
    deepmolm_plugin.register()
    import llava.train.train as host

    reached = []
    monkeypatch.setattr(host, "train", lambda **kwargs: reached.append(kwargs))
    monkeypatch.setattr(sys, "argv", ["train"])
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for i, name in enumerate(["fusion", "concat", "linear", "mlp2x_gelu"]):
        train.main(train_args(tiny_setup, tmp_path / f"out{i}", "--mm_projector", name, steps=1))
    train.main(_heads(tiny_setup, tmp_path / "out_heads", "4"))  # 4 divides 64
    err = capsys.readouterr().err  # (the image-only projectors' notes)
    assert len(reached) == 5 and "error" not in err, err[-3000:]
    # and the check before them still refuses the width the projector cannot split
    line = _main_refuses(monkeypatch, capsys, _heads(tiny_setup, tmp_path / "out5", "5"))
    assert line.endswith("give a divisor of 64 (the nearest: 4 or 8)")


# --- DeepEncoderConfig ------------------------------------------------------------------------

def test_a_global_attention_block_named_twice_is_refused():
    # was: (11, 11) built one global block where two were meant, without a word
    with pytest.raises(ValueError, match=r"^DeepEncoderConfig.sam_global_attn_indexes \[2, 5, 8, 8\] names block 8 "
                                         r"more than once: give each global block once$"):
        DeepEncoderConfig(sam_global_attn_indexes=[2, 5, 8, 8])
    with pytest.raises(ValueError, match=r"\[11, 11\] names block 11 more than once"):
        DeepEncoderConfig(sam_global_attn_indexes=[11, 11])
    assert DeepEncoderConfig(sam_global_attn_indexes=[11, 2]).sam_global_attn_indexes == (11, 2)


@pytest.mark.parametrize("field", ["sam_layer_norm_eps", "clip_layer_norm_eps"])
def test_a_layer_norm_eps_past_one_is_refused(field):
    # was: 1e3 (a lost minus sign) accepted: the tower's LayerNorms divided by ~32, not normalising
    with pytest.raises(ValueError, match=rf"^DeepEncoderConfig.{field} must be <= 1 \(a LayerNorm eps: .*got 1000.0$"):
        DeepEncoderConfig(**{field: 1e3})
    assert getattr(DeepEncoderConfig(**{field: 1.0}), field) == 1.0  # tests' "another eps" stays
    with pytest.raises(ValueError, match=rf"{field} must be a positive number"):  # as before
        DeepEncoderConfig(**{field: float("nan")})


def test_tiles_larger_than_the_global_view_or_too_small_to_add_detail_are_refused():
    max_tiles = DeepEncoderImageProcessor.from_config(DeepEncoderConfig(), mode="tiles").max_tiles  # the tower's
    with pytest.raises(ValueError, match=r"^DeepEncoderConfig.tile_size 2048 is larger than image_size 1024: an image "
                                         r"up to 2048 px a side would get no tile at all"):
        DeepEncoderConfig(tile_size=2048).check_tiles(max_tiles)
    with pytest.raises(ValueError, match=r"^DeepEncoderConfig.tile_size 64 is too small for image_size 1024: the tile "
                                         r"mosaic is at most 6 tiles a side, 384 px, .*give tile_size >= 192 "):
        DeepEncoderConfig(tile_size=64).check_tiles(max_tiles)
    DeepEncoderConfig(tile_size=192).check_tiles(max_tiles)  # the least the message names
    DeepEncoderConfig(tile_size=1024).check_tiles(max_tiles)  # as large as the global view
    for name in ("deepseek-ocr", "tiny", "demo"):  # the presets (tiny: 64 px tiles on a 128 px view)
        encoder_config(name).check_tiles(max_tiles)
    # where no tile is cut ("base" mode) tile_size is never read: still built as before
    assert encoder_config("tiny", tile_size=256).tile_size == 256


def test_the_launcher_refuses_such_tiles_with_image_mode_tiles_only(monkeypatch, capsys, tiny_setup, tmp_path):
    config = tmp_path / "big_tiles.json"
    config.write_text(json.dumps(encoder_config("tiny", tile_size=256).to_dict()))
    argv = train_args({**tiny_setup, "encoder_config": config}, tmp_path / "out", "--mm_projector", "fusion", steps=1)
    line = _main_refuses(monkeypatch, capsys, [*argv, "--image_mode", "tiles"])
    assert line == (f"{PROG}: error: --deepencoder_config {config} with --image_mode tiles: DeepEncoderConfig.tile_size "
                    "256 is larger than image_size 128: an image up to 256 px a side would get no tile at all, and a "
                    "larger one be enlarged into tiles of more tokens each than the global view; give tile_size <= "
                    "image_size (DeepSeek-OCR: 640 with 1024)")
    from deepmolm_plugin.training.inputs import check_inputs

    check_inputs(argv)  # base mode: the tiles are never cut, the file is fine
