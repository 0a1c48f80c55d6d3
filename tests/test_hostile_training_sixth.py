"""Training, sixth hostile sweep: a stage-1 adapter for another LLM width."""

from __future__ import annotations

import json

import pytest
import torch

from host_fixtures import run_module, train_args

from deepmolm_plugin import usage
from deepmolm_plugin.projector import ProjectorConfig, build_projector
from test_hostile_training_third import DEEPMOLM, checked


def _stage1_of_width(folder, width, config_width):
    """A fusion stage-1 folder whose projector outputs `width` (its config.json says `config_width`)."""
    folder.mkdir(parents=True)
    projector = build_projector("fusion", ProjectorConfig(hidden_size=width, mm_hidden_size=8, fp_bits=4096,
                                                          num_heads=2))
    torch.save({f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()}, folder / "mm_projector.bin")
    config = {"mm_vision_tower": "deepencoder", "mm_projector_type": "fusion", "fp_bits": 4096, "fp_levels": 4,
              "fusion_heads": 2, "vision_tower_weights": "random"}
    if config_width is not None:
        config["hidden_size"] = config_width
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "mm_projector.bin"


def test_a_stage1_adapter_for_another_llm_width_is_refused_before_the_model_loads(tiny_setup, tmp_path):
    # was: the host's load_state_dict raised our shape ValueError as a traceback, after the LLM had loaded
    llm_width = json.loads((tiny_setup["llm"] / "config.json").read_text())["hidden_size"]
    adapter = _stage1_of_width(tmp_path / "stage1", 8, 8)
    with pytest.raises(usage.UsageError, match=rf"--model_name_or_path .*, an LLM of hidden_size {llm_width} \(stage "
                                               r"1: 8, the width its projector outputs\)"):
        checked(tmp_path, *DEEPMOLM, "--fusion_heads", "2", "--model_name_or_path", str(tiny_setup["llm"]),
                "--vision_tower_weights", "random", "--pretrain_mm_mlp_adapter", str(adapter))


def test_adapter_shapes_found_at_load_are_one_line(tiny_setup, tmp_path):
    # a config.json without the LLM width (another tool's copy): the shapes are found when the
    # host loads the adapter; was a traceback, now the launcher's one line
    adapter = _stage1_of_width(tmp_path / "stage1", 8, None)
    proc = run_module("deepmolm_plugin.train", train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion",
                                                          "--pretrain_mm_mlp_adapter", str(adapter), steps=1),
                      cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert (f"error: --pretrain_mm_mlp_adapter {adapter}: projector weights for this 'fusion' projector are unusable: "
            "image_newline: shape [8] vs projector [64]") in proc.stderr
