"""Named DeepEncoder sizes: `encoder_config("tiny")`, as segment-anything's `sam_model_registry`.

- `deepseek-ocr`: DeepSeek-OCR's DeepEncoder, DeepEncoderConfig's own defaults (SAM ViT-B
  at 1024 px, 16x compressor 256 -> 512 -> 1024 channels, CLIP-L/14 body).
- `tiny`: 128 px base view (2x2 tokens), 64 px tiles, width 32, depth 2: runs in
  milliseconds (the tests' encoder, `scripts/bench_encoder.py --tiny`).
- `demo`: 256 px views (4x4 tokens), widths of 64: trains in seconds per step on a CPU
  (`make demo`, `scripts/experiment_fusion.py`).

The train launcher's `--deepencoder_config` takes a JSON file of DeepEncoderConfig fields
or one of these names (`config_argument`).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Union

from .config import DeepEncoderConfig

# name -> the DeepEncoderConfig fields that differ from its defaults
ENCODER_PRESETS: Dict[str, Dict[str, Any]] = {
    "deepseek-ocr": {},
    "tiny": dict(
        image_size=128, tile_size=64, sam_width=32, sam_depth=2, sam_heads=2, sam_window_size=4,
        sam_global_attn_indexes=(1,), sam_out_chans=16, compressor_channels=(24, 32),
        clip_width=32, clip_layers=2, clip_heads=2, clip_position_grid=2,
    ),
    "demo": dict(
        image_size=256, tile_size=128, sam_width=64, sam_depth=2, sam_heads=4, sam_window_size=8,
        sam_global_attn_indexes=(1,), sam_out_chans=32, compressor_channels=(48, 64), clip_width=64,
        clip_layers=2, clip_heads=4, clip_position_grid=4,
    ),
}


def encoder_config(name: str, **overrides) -> DeepEncoderConfig:
    """The preset `name`, with `overrides` (DeepEncoderConfig fields) on top."""
    if name not in ENCODER_PRESETS:
        raise ValueError(f"unknown DeepEncoder preset {name!r}: use one of {', '.join(ENCODER_PRESETS)}")
    return DeepEncoderConfig(**{**ENCODER_PRESETS[name], **overrides})


def config_argument(value: "str | os.PathLike") -> Union[str, Dict[str, Any]]:
    """`--deepencoder_config VALUE` as the tower takes it (`tower.config_from_args`): an
    existing file is its path (`~` expanded; a file wins over a preset of the same name);
    otherwise a preset name becomes the preset's fields. Neither is a ValueError naming
    the presets."""
    path = os.path.expanduser(os.fspath(value))
    if os.path.isfile(path):
        return path
    if path in ENCODER_PRESETS:
        return encoder_config(path).to_dict()
    problem = "is a folder, not a file" if os.path.isdir(path) else "no such file"
    raise ValueError(f"--deepencoder_config {path}: {problem}, and not a preset name "
                     f"(presets: {', '.join(ENCODER_PRESETS)})")
