"""Twelfth sweep, tower checkpoints and stage-1 adapters (sweep 12C findings 3 and 8).

A tower's configuration was compared with the one saved beside its weights only when it was
found the one canonical way (a folder, or `deepencoder.safetensors` itself): a renamed weights
file, a file copied alone, or a DeepMoLM config.json naming its tower configuration by path
loaded under other CLIP heads / norm eps (no tensor shape shows them) without a word. And a
stage-1 adapter holding each projector tensor under two prefixes passed the launcher's check.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import tiny_encoder_config
from deepmolm_plugin.encoder import DeepEncoder, load_deepencoder
from deepmolm_plugin.tensor_files import CheckpointError

# Fields no tensor shape shows: a tower built with these loads every tensor of one saved with the
# tiny preset's values (clip_heads 2, eps 1e-5) and computes something else.
OTHER_HEADS = {"clip_heads": 4, "clip_layer_norm_eps": 1e-2}


def _tower() -> DeepEncoder:
    return DeepEncoder(tiny_encoder_config()).eval()


def _plain_state(tower: DeepEncoder) -> dict:
    return {k: v.detach().contiguous() for k, v in tower.state_dict().items()}


def test_a_renamed_weights_file_is_checked_against_the_config_beside_it(tmp_path):
    tower = _tower()
    tower.config.save(tmp_path)  # deepencoder_config.json
    # a weights file without recorded metadata (as every file saved before), under another name
    save_file(_plain_state(tower), str(tmp_path / "deepencoder_step500.safetensors"))
    other = dataclasses.replace(tiny_encoder_config(), **OTHER_HEADS)
    # was: loaded, the tower's outputs 0.29 off
    with pytest.raises(CheckpointError, match=r"saved with the weights .*clip_heads: given 4 vs saved 2; "
                                              r"clip_layer_norm_eps: given 0.01 vs saved 1e-05"):
        load_deepencoder(tmp_path / "deepencoder_step500.safetensors", config=other)


def test_a_weights_file_copied_alone_carries_its_configuration(tmp_path):
    tower = _tower()
    tower.save_pretrained(tmp_path / "saved")
    alone = tmp_path / "alone" / "tower.safetensors"
    alone.parent.mkdir()
    shutil.copy(tmp_path / "saved" / "deepencoder.safetensors", alone)
    with safe_open(str(alone), framework="pt") as f:  # was: {"format": "pt"} only
        assert json.loads(f.metadata()["deepencoder_config"])["clip_heads"] == 2
    other = dataclasses.replace(tiny_encoder_config(), **OTHER_HEADS)
    with pytest.raises(CheckpointError, match=rf"recorded in {alone} \(its metadata\): clip_heads: given 4 vs saved 2"):
        load_deepencoder(alone, config=other)
    # without a configuration, the one recorded builds the tower (was: DeepSeek-OCR's sizes: every tensor "wrong shape")
    loaded = load_deepencoder(alone).eval()
    assert loaded.config.clip_heads == 2
    x = torch.randn(1, 3, loaded.config.image_size, loaded.config.image_size)
    with torch.no_grad():
        assert torch.equal(loaded(x), tower(x))


def test_unusable_recorded_configuration_names_the_file(tmp_path):
    tower = _tower()
    path = tmp_path / "tower.safetensors"
    save_file(_plain_state(tower), str(path), metadata={"format": "pt", "deepencoder_config": '{"clip_heads": "two"'})
    # was: the metadata was never read, and the tower loaded with DeepSeek-OCR's sizes or the given ones
    with pytest.raises(CheckpointError, match=rf"{path}: the DeepEncoder configuration in its metadata is unusable"):
        load_deepencoder(path, config=tiny_encoder_config())


def _model_folder(folder, deepencoder_config) -> None:
    """A DeepMoLM checkpoint folder as the tower loader reads it: config.json with
    `deepencoder_config`, the tower under model.vision_tower.vision_tower.* (no metadata)."""
    folder.mkdir()
    state = {f"model.vision_tower.vision_tower.{k}": v for k, v in _plain_state(_tower()).items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llava_qwen2", "deepencoder_config": deepencoder_config}))


def test_a_model_config_naming_its_tower_config_by_path_is_followed(tmp_path):
    config_file = tmp_path / "deepencoder.json"
    config_file.write_text(json.dumps(tiny_encoder_config().to_dict()))
    folder = tmp_path / "model"
    _model_folder(folder, str(config_file))
    # was: the path was ignored: DeepSeek-OCR's sizes ("missing (404)") without a configuration ...
    assert load_deepencoder(folder).config.clip_heads == 2
    # ... and no check with one
    other = dataclasses.replace(tiny_encoder_config(), **OTHER_HEADS)
    with pytest.raises(CheckpointError, match=r"saved with the weights .*clip_heads: given 4 vs saved 2"):
        load_deepencoder(folder, config=other)


def test_a_model_config_naming_a_tower_config_that_is_gone_names_both(tmp_path):
    gone = tmp_path / "moved" / "deepencoder.json"
    folder = tmp_path / "model"
    _model_folder(folder, str(gone))
    with pytest.raises(CheckpointError, match=rf"{folder / 'config.json'}: its deepencoder_config names '{gone}', "
                                              r"which cannot be read \(No such file"):
        load_deepencoder(folder, config=tiny_encoder_config())


def test_an_adapter_holding_each_projector_tensor_twice_is_refused(tmp_path):
    from deepmolm_plugin.projector import ProjectorConfig, build_projector
    from deepmolm_plugin.training.adapter import check_adapter_file
    from deepmolm_plugin.usage import UsageError

    projector = build_projector("fusion", ProjectorConfig(hidden_size=16, mm_hidden_size=16, num_heads=2))
    state = {f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()}
    state.update({f"base_model.model.model.mm_projector.{k}": torch.zeros_like(v)
                  for k, v in projector.state_dict().items()})
    path = tmp_path / "mm_projector.bin"
    torch.save(state, path)
    # was: accepted (a set of names hid the repeat); the host's get_w kept the zero copy, read last
    with pytest.raises(UsageError, match=r"under two names each.*'model\.mm_projector\.image_proj\.weight' and "
                                         r"'base_model\.model\.model\.mm_projector\.image_proj\.weight'"):
        check_adapter_file(["--pretrain_mm_mlp_adapter", str(path), "--vision_tower", "deepencoder",
                            "--mm_projector", "fusion"])
    # the host's own projector reads the file the same way: refused too
    with pytest.raises(UsageError, match=r"under two names each"):
        check_adapter_file(["--pretrain_mm_mlp_adapter", str(path), "--vision_tower", "openai/clip-vit-large-patch14"])
