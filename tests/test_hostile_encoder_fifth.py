"""The encoder as a library, fifth sweep (sweep D of 2026-12-05): DeepEncoder itself refuses
what the host tower refused (pixels that are not the processor's float views, a list, a 0 px
side) and returns no features for no views; its config keeps a dtype by name (a torch.dtype
object was kept as given, and saving it cut the config file); the image processor names a
bad argument."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tiny_encoder_config
from deepmolm_plugin.encoder import DeepEncoder, DeepEncoderConfig, DeepEncoderImageProcessor, load_deepencoder


def test_the_encoder_refuses_pixels_and_takes_no_views():
    encoder = DeepEncoder(tiny_encoder_config()).eval()
    side = encoder.config.image_size
    raw = torch.randint(0, 256, (1, 3, side, side), dtype=torch.uint8)
    for views in (raw, raw > 127, raw.to(torch.complex64)):  # was: cast and encoded, features 2.9 off
        with pytest.raises(ValueError, match=f"DeepEncoder views have dtype {views.dtype}; .* not pixels"):
            encoder(views)
    with pytest.raises(TypeError, match="DeepEncoder takes a tensor of views .* got a list"):
        encoder([raw.float()])  # was: AttributeError 'list' object has no attribute 'dim'
    with pytest.raises(ValueError, match=r"positive multiple of .*got shape \(1, 3, 0, 0\)"):
        encoder(torch.zeros(1, 3, 0, 0))  # was: a convolution's "Kernel size can't be greater"
    with torch.no_grad():
        none = encoder(torch.zeros(0, 3, side, side))  # was: a reshape error inside SAM's windows
        one = encoder(torch.zeros(1, 3, side, side))
    assert none.shape == (0, *one.shape[1:]) and none.dtype == one.dtype


def test_a_torch_dtype_in_the_config_is_kept_by_name_and_saved_whole(tmp_path):
    config = tiny_encoder_config(dtype=torch.bfloat16)
    assert config.dtype == "bfloat16"  # was: the torch.dtype object
    for bad in (torch.float64, torch.int8):  # was: a float64 tower; a failure inside Module.to
        with pytest.raises(ValueError, match="unsupported dtype"):
            tiny_encoder_config(dtype=bad)
    DeepEncoder(config).save_pretrained(tmp_path)  # was: TypeError mid-json.dump, a cut config file
    assert json.loads((tmp_path / "deepencoder_config.json").read_text())["dtype"] == "bfloat16"
    assert load_deepencoder(tmp_path).dtype == torch.bfloat16
    assert DeepEncoderConfig(**{**config.to_dict(), "dtype": "float32"}).dtype == "float32"


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": "1024"}, "image_size must be a positive int, got '1024'"),
    ({"token_stride": 0}, "token_stride must be a positive int, got 0"),
    ({"max_tiles": 2.5}, "max_tiles must be a positive int"),
    ({"image_mean": (2, 2, 2)}, r"image_mean must be 3 values in 0..1"),
    ({"image_mean": (-0.5, 0.5, 0.5)}, r"image_mean must be 3 values in 0..1"),
])
def test_the_image_processor_names_a_bad_argument(kwargs, message):
    # was: a bare TypeError / ZeroDivisionError, or a pad colour of 510 accepted
    with pytest.raises(ValueError, match=message):
        DeepEncoderImageProcessor(**kwargs)
    assert DeepEncoderImageProcessor(image_size=np.int64(1024)).image_size == 1024  # numpy ints are ints


def test_a_saved_encoder_is_readable_as_its_config_is_and_dtype_none_loads(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        DeepEncoder(tiny_encoder_config()).save_pretrained(tmp_path)
    finally:
        os.umask(mask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"deepencoder_config.json": 0o644, "deepencoder.safetensors": 0o644}  # weights were 0600
    assert tiny_encoder_config(dtype=None).dtype is None  # "dtype": null in a saved config loads again
