"""Thirteenth sweep, the DeepEncoder / projector / molecule_fp Python API (sweep 13G findings 1-10).

A tower saved into a DeepMoLM checkpoint folder was silently loaded from the checkpoint instead;
"dtype": null (written by save_pretrained) was an AttributeError on load; a saved configuration
lacking a field took DeepSeek-OCR's 1024 px value; NaN/inf views and features went through;
image_std took NaN/inf and strings; "~" was not expanded on save; in-memory images skipped the
pixel limit; validate_batch took atoms without a level-0 token; and
DeepEncoderConfig.extra took values save could not write.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from conftest import tiny_encoder_config
from deepmolm_plugin.encoder import DeepEncoder, DeepEncoderConfig, DeepEncoderImageProcessor, load_deepencoder
from deepmolm_plugin.encoder.model import check_deepencoder_weights
from deepmolm_plugin.molecule_fp import MoleculeFpError, validate_batch
from deepmolm_plugin.projector.validation import check_image_features
from deepmolm_plugin.tensor_files import CheckpointError


def _tower(**fields) -> DeepEncoder:
    return DeepEncoder(tiny_encoder_config(**fields)).eval()


def _model_folder(folder) -> None:
    """A DeepMoLM model checkpoint folder: config.json + model.safetensors holding a tower."""
    folder.mkdir()
    other = _tower()
    state = {f"model.vision_tower.vision_tower.{k}": v.detach().contiguous() for k, v in other.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llava_qwen2",
                                                    "deepencoder_config": other.config.to_dict()}))


def test_a_tower_saved_into_a_model_checkpoint_folder_is_refused_naming_both_files(tmp_path):
    folder = tmp_path / "ckpt"
    _model_folder(folder)
    mine = _tower()
    mine.save_pretrained(folder)
    # was: the checkpoint's tower loaded, the file just written skipped without a word
    for load in (load_deepencoder, check_deepencoder_weights):
        with pytest.raises(CheckpointError, match=r"holds two kinds of weights.*deepencoder\.safetensors.*"
                                                  r"model\.safetensors.*give the file you mean"):
            load(folder)
    loaded = load_deepencoder(folder / "deepencoder.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), mine.state_dict().values()))


def test_dtype_null_loads_in_the_weights_own_dtype(tmp_path):
    tower = _tower(dtype=None).to(torch.bfloat16)
    tower.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "deepencoder_config.json").read_text())["dtype"] is None
    loaded = load_deepencoder(tmp_path)  # was: AttributeError 'NoneType' object has no attribute 'is_floating_point'
    assert loaded.dtype == torch.bfloat16


def test_a_saved_configuration_lacking_a_field_names_file_and_field(tmp_path):
    _tower().save_pretrained(tmp_path)
    config_file = tmp_path / "deepencoder_config.json"
    fields = json.loads(config_file.read_text())
    del fields["sam_depth"]
    config_file.write_text(json.dumps(fields))
    # was: DeepSeek-OCR's sam_depth 12 taken, then "the configuration given ... sam_depth: given 12"
    with pytest.raises(CheckpointError, match=r"deepencoder_config\.json is not a usable DeepEncoder configuration: "
                                              r"it lacks sam_depth"):
        load_deepencoder(tmp_path)


def test_a_saved_configuration_lacking_only_runtime_fields_still_loads(tmp_path):
    _tower().save_pretrained(tmp_path)
    config_file = tmp_path / "deepencoder_config.json"
    fields = json.loads(config_file.read_text())
    for runtime in ("sam_attention", "gradient_checkpointing", "extra", "tile_size"):
        del fields[runtime]
    config_file.write_text(json.dumps(fields))
    assert load_deepencoder(tmp_path).config.sam_depth == tiny_encoder_config().sam_depth


def test_nan_views_and_features_are_refused_naming_the_sample():
    tower = _tower()
    side = tower.config.image_size
    views = torch.zeros(2, 3, side, side)
    views[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"DeepEncoder views\[1\] has 1 NaN/inf values"):
        tower(views)
    features = torch.zeros(2, 4, 8)
    features[0, 1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"image_features\[0\] has 1 NaN/inf values"):
        check_image_features(features, 8)


def test_nan_inputs_are_refused_by_the_host_tower_and_the_fusion_projector():
    from types import SimpleNamespace

    from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower
    from deepmolm_plugin.projector import FusionProjector, ProjectorConfig

    tower = DeepEncoderVisionTower("deepencoder", SimpleNamespace(vision_tower_weights="random",
                                                                  deepencoder_config=tiny_encoder_config()))
    view = torch.zeros(3, 128, 128)
    bad = view.clone()
    bad[0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match=r"vision tower images\[1\] has 1 NaN/inf values"):
        tower([view, bad])
    projector = FusionProjector(ProjectorConfig(hidden_size=16, mm_hidden_size=12, num_heads=2, fp_bits=32,
                                                fp_levels=4)).eval()
    features = torch.zeros(2, 4, 12)
    features[1, 0, 0] = float("nan")
    molecule_fp = torch.tensor([[[1, 2, 3, 4]], [[5, 6, 7, -1]]])
    with pytest.raises(ValueError, match=r"image_features\[1\] has 1 NaN/inf values"):
        projector(features, molecule_fp)


@pytest.mark.parametrize("std", [[float("nan")] * 3, [float("inf")] * 3, ["0.5"] * 3, 0.5])
def test_image_std_must_be_three_finite_positive_numbers(std):
    with pytest.raises(ValueError, match=r"image_std must be 3 finite positive numbers, got "):
        DeepEncoderImageProcessor(image_size=128, tile_size=128, image_std=std)


def test_image_mean_message_shows_a_string_as_a_string():
    with pytest.raises(ValueError, match=r"image_mean must be 3 .*got '0\.5'"):
        DeepEncoderImageProcessor(image_size=128, tile_size=128, image_mean="0.5")


def test_save_expands_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "wd").mkdir()
    monkeypatch.chdir(tmp_path / "wd")
    tower = _tower()
    tower.save_pretrained("~/enc")
    os.makedirs(tmp_path / "home" / "cfg")
    tower.config.save("~/cfg")
    assert not (tmp_path / "wd" / "~").exists()  # was: a folder literally named "~" here
    assert DeepEncoderConfig.load("~/cfg") == tower.config
    assert load_deepencoder("~/enc").config.sam_depth == tower.config.sam_depth


@pytest.mark.parametrize("kind", ["pil", "numpy", "tensor"])
def test_in_memory_images_get_the_pixel_limit_files_get(kind, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    pixels = np.zeros((40, 40, 3), dtype=np.uint8)
    pixels[5:10, 5:10] = 255
    image = {"pil": Image.fromarray(pixels), "numpy": pixels, "tensor": torch.from_numpy(pixels)}[kind]
    processor = DeepEncoderImageProcessor(image_size=128, tile_size=128)
    with pytest.raises(ValueError, match=r"40x40 = 1600 px, over PIL's decompression-bomb limit"):
        processor.preprocess(image)


def test_validate_batch_refuses_an_atom_without_its_level_zero_token():
    batch = torch.tensor([[[5, 6, 7, 8], [-1, -1, -1, -1]], [[5, 6, 7, 8], [-1, 17, 3, -1]]])
    with pytest.raises(MoleculeFpError, match=r"molecule 1 has an atom without a level-0 token at molecule_fp\[1, 1\]"):
        validate_batch(batch, 2)


def test_config_extra_must_be_json_named_by_key(tmp_path):
    with pytest.raises(ValueError, match=r"DeepEncoderConfig\.extra\['smiles_seen'\] cannot be saved as JSON"):
        DeepEncoderConfig(extra={"smiles_seen": {"CCO"}})
    with pytest.raises(ValueError, match=r"DeepEncoderConfig\.extra key 1 must be a string"):
        DeepEncoderConfig(extra={1: "one"})
