"""Tower options read one way everywhere (2026-12-06).

- `--vision_tower_weights "sam.pth, clip.safetensors"`: the arguments class and the train
  launcher's early check split the text with one function (`split_weights_option`).
- `check_model_views` (chat, eval, GUI, before the model loads): a config without
  `image_aspect_ratio` is not padded by the host's `process_images` (it pads only for
  "pad"), so its views are checked as the processor will cut them; it was taken for "pad"
  and a 1 x 5000 px image passed the check, then failed once the model had loaded.
"""

from types import SimpleNamespace

import pytest
from PIL import Image

from deepmolm_plugin.encoder.checkpoint import split_weights_option
from deepmolm_plugin.encoder.presets import encoder_config
from deepmolm_plugin.encoder.tower import check_model_views


def test_weights_option_split_once_spaces_and_blanks_dropped():
    assert split_weights_option("sam.pth, clip.safetensors") == ["sam.pth", "clip.safetensors"]
    assert split_weights_option(" a.pth ,, b.pth ,") == ["a.pth", "b.pth"]
    assert split_weights_option("DeepSeek-OCR/") == ["DeepSeek-OCR/"]


def test_arguments_class_and_launcher_check_split_alike(tmp_path, monkeypatch):
    from deepmolm_plugin import usage
    from deepmolm_plugin.training.inputs import check_tower_weights

    sam = tmp_path / "sam.pth"
    sam.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    # the launcher's early check reads the list the arguments class will hold: the second
    # path " gone.safetensors" is named without its space
    with pytest.raises(usage.UsageError, match=r"--vision_tower_weights gone\.safetensors: no such file"):
        check_tower_weights(["--vision_tower_weights", "sam.pth, gone.safetensors"])


def _config(**fields):
    return SimpleNamespace(image_mode="base", deepencoder_config=encoder_config("tiny").to_dict(), **fields)


def test_a_config_without_aspect_ratio_is_checked_as_unpadded(tmp_path):
    needle = tmp_path / "needle.png"
    Image.new("RGB", (1, 5000), (255, 255, 255)).save(needle)
    check_model_views(str(needle), _config(image_aspect_ratio="pad"))  # squared by the host first: fits
    for config in (_config(), _config(image_aspect_ratio="square"), _config(image_aspect_ratio=None)):
        with pytest.raises(ValueError, match="1x5000"):
            check_model_views(str(needle), config)
