"""A --deepencoder_config file whose tiles are refused names the size it left to its default
(twentieth round): `{"image_size": 512}` with --image_mode tiles was refused as "tile_size 640
is larger than image_size 512", a tile size the file never wrote."""

from __future__ import annotations

import json

import pytest

from deepmolm_plugin.training.inputs import check_encoder_config
from deepmolm_plugin.usage import UsageError


def _config(tmp_path, fields) -> str:
    path = tmp_path / "encoder.json"
    path.write_text(json.dumps(fields))
    return str(path)


def test_the_refusal_names_a_default_tile_size(tmp_path):
    path = _config(tmp_path, {"image_size": 512})
    with pytest.raises(UsageError, match=r"tile_size 640 is larger than image_size 512: .*; tile_size 640 is the "
                                         rf"default, which --deepencoder_config {path} does not set$"):
        check_encoder_config(path, "tiles")


def test_and_a_default_image_size(tmp_path):
    path = _config(tmp_path, {"tile_size": 2048})
    with pytest.raises(UsageError, match=r"tile_size 2048 is larger than image_size 1024: .*; image_size 1024 is "
                                         "the default, which"):
        check_encoder_config(path, "tiles")


def test_sizes_the_file_sets_are_not_called_defaults(tmp_path):
    path = _config(tmp_path, {"image_size": 512, "tile_size": 640})
    with pytest.raises(UsageError) as refused:
        check_encoder_config(path, "tiles")
    assert "is larger than image_size 512" in str(refused.value) and "default" not in str(refused.value)
    check_encoder_config(_config(tmp_path, {"image_size": 512, "tile_size": 256}), "tiles")  # fine
    check_encoder_config(_config(tmp_path, {"image_size": 512}), None)  # base mode cuts no tile
