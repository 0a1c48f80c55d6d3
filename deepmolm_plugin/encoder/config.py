"""DeepEncoderConfig: every size of the DeepEncoder vision tower in one place.

The defaults are DeepSeek-OCR's DeepEncoder: SAM ViT-B at 1024 px,
a 16x conv compressor (256 -> 512 -> 1024 channels, two stride-2 convs), and a CLIP-L/14
body that takes the compressor map as its patch embeddings. Tests build tiny variants
(e.g. 128 px, width 32, depth 2) through the same code by overriding fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import torch

from ..dtypes import AUTO
from ..dtypes import resolve_dtype as resolve_auto_dtype

CONFIG_NAME = "deepencoder_config.json"
WEIGHTS_NAME = "deepencoder.safetensors"  # our own format: the two files side by side (save_pretrained)

SAM_ATTENTION = ("sdpa", "pieces", "folded", "eager")  # DeepEncoderConfig.sam_attention's values
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype_name(dtype: "str | torch.dtype") -> str:
    """The config's name for a dtype ('bfloat16' for torch.bfloat16 or 'bfloat16')."""
    target = resolve_dtype(dtype)
    for name, value in _DTYPES.items():
        if value == target:
            return name
    raise ValueError(f"unsupported dtype {dtype!r}; expected one of {sorted(_DTYPES)}")


def resolve_dtype(dtype: "str | torch.dtype | None") -> "torch.dtype | None":
    """'bfloat16' / torch.bfloat16 / 'auto' / None -> torch.dtype or None; anything else is
    an error. 'auto' is deepmolm_plugin.dtypes' choice (the chat, eval and GUI default) for
    the device the tower runs on by default: CUDA when there is one, else the CPU (was:
    "unknown dtype 'auto'")."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == AUTO:
        return resolve_auto_dtype(AUTO, "cuda" if torch.cuda.is_available() else "cpu")
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected {AUTO!r} or one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


_POSITIVE_INTS = ("image_size", "tile_size", "patch_size", "sam_width", "sam_depth", "sam_heads", "sam_out_chans",
                  "clip_width", "clip_layers", "clip_heads", "clip_position_grid")
_POSITIVE_FLOATS = ("sam_mlp_ratio", "sam_layer_norm_eps", "clip_mlp_ratio", "clip_layer_norm_eps")
# LayerNorm adds its eps to the variance of activations of order 1: published towers use 1e-6
# (SAM) and 1e-5 (CLIP), and past 1 the eps outweighs the variance, so the layer no longer
# normalises (1e3 divides by ~32 instead of ~1). A larger value is a lost minus sign (1e3 for
# 1e-3); up to 1 is allowed, which tests use for "another eps, same tensor shapes".
_LAYER_NORM_EPS = ("sam_layer_norm_eps", "clip_layer_norm_eps")
MAX_LAYER_NORM_EPS = 1.0


# Fields that change what the weights compute without changing any tensor's shape (or
# that do both): a tower built with other values than the checkpoint's own
# deepencoder_config.json would load every tensor and compute something else.
ARCHITECTURE_FIELDS = (
    "image_size", "patch_size", "sam_width", "sam_depth", "sam_heads", "sam_mlp_ratio", "sam_window_size",
    "sam_global_attn_indexes", "sam_out_chans", "sam_layer_norm_eps", "compressor_channels", "clip_width",
    "clip_layers", "clip_heads", "clip_mlp_ratio", "clip_layer_norm_eps", "clip_position_grid",
)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a size


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(name: str, value, kind, least, what: str) -> None:
    """value must be of `kind` and (least None) > 0 or (else) >= least."""
    ok = kind(value) and math.isfinite(value) and (value > 0 if least is None else value >= least)
    if not ok:
        side = " (views are square: one side in pixels)" if name in ("image_size", "tile_size") else ""
        raise ValueError(f"DeepEncoderConfig.{name} must be {what}{side}, got {value!r}")


@dataclass
class DeepEncoderConfig:
    # --- input views -----------------------------------------------------------------
    image_size: int = 1024  # base (global) view side, pixels
    tile_size: int = 640  # local tile side in "tiles" mode
    patch_size: int = 16  # SAM patch; the compressor adds another 4x: one token per 64 px

    # --- SAM ViT-B (segment-anything ImageEncoderViT) -------------------------------
    sam_width: int = 768
    sam_depth: int = 12
    sam_heads: int = 12
    sam_mlp_ratio: float = 4.0
    sam_window_size: int = 14
    sam_global_attn_indexes: Tuple[int, ...] = (2, 5, 8, 11)
    sam_out_chans: int = 256  # neck output
    sam_layer_norm_eps: float = 1e-6
    # "sdpa": scaled_dot_product_attention, the decomposed rel-pos terms either as a
    # float mask built a piece at a time or folded into extra q/k channels (one unmasked
    # call per block), whichever was measured faster on the device (global blocks folded
    # on GPUs, everything in pieces on CPUs); "pieces" / "folded": one of the two
    # everywhere; "eager": segment-anything's own Attention. All the same math.
    sam_attention: str = "sdpa"

    # --- 16x compressor: bias-free 3x3 stride-2 convs (`net_2`, `net_3`) -------------
    compressor_channels: Tuple[int, ...] = (512, 1024)

    # --- CLIP-L/14 body (open_clip Transformer, QuickGELU) ---------------------------
    clip_width: int = 1024
    clip_layers: int = 24
    clip_heads: int = 16
    clip_mlp_ratio: float = 4.0
    clip_layer_norm_eps: float = 1e-5
    # Side of the CLIP position table (without CLS). CLIP-L/14 at 224 px has 16x16
    # patches, which DeepEncoder reuses for its 16x16 compressor grid at 1024 px.
    clip_position_grid: int = 16

    # --- runtime -----------------------------------------------------------------------
    gradient_checkpointing: bool = False
    dtype: str = "float32"  # weights dtype when loading; "bfloat16" for training

    extra: Dict[str, Any] = field(default_factory=dict)  # free-form, saved verbatim

    def __post_init__(self) -> None:
        self._check_field_types()
        self.sam_global_attn_indexes = tuple(self.sam_global_attn_indexes)
        self.compressor_channels = tuple(self.compressor_channels)
        for width, heads in (("sam_width", "sam_heads"), ("clip_width", "clip_heads")):
            if getattr(self, width) % getattr(self, heads):
                raise ValueError(f"DeepEncoderConfig.{heads} ({getattr(self, heads)}) must divide {width} ({getattr(self, width)})")
        if self.clip_width != self.compressor_channels[-1]:
            raise ValueError(
                f"clip_width ({self.clip_width}) must equal the compressor's last channel "
                f"count ({self.compressor_channels[-1]}): compressor tokens are CLIP's patch "
                "embeddings"
            )
        if self.sam_attention not in SAM_ATTENTION:
            raise ValueError(f"sam_attention must be one of {', '.join(map(repr, SAM_ATTENTION))}, "
                             f"got {self.sam_attention!r}")
        if any(not 0 <= i < self.sam_depth for i in self.sam_global_attn_indexes):
            raise ValueError(
                f"sam_global_attn_indexes {self.sam_global_attn_indexes} must be block indexes in "
                f"[0, sam_depth={self.sam_depth})"
            )
        # a block is global when its index is in the list: a repeat ([2, 5, 8, 8] for
        # [2, 5, 8, 11]) left the block meant windowed, without a word
        repeated = sorted({i for i in self.sam_global_attn_indexes if self.sam_global_attn_indexes.count(i) > 1})
        if repeated:
            raise ValueError(f"DeepEncoderConfig.sam_global_attn_indexes {list(self.sam_global_attn_indexes)} names "
                             f"block {', '.join(map(str, repeated))} more than once: give each global block once")
        # stored by name: a torch.dtype object was kept as given (torch.float64 built a float64
        # tower, torch.int8 failed in Module.to) and save() stopped inside json.dump, leaving a
        # config file cut at '"dtype": '
        self.dtype = None if self.dtype is None else dtype_name(self.dtype)  # None: the weights' own
        for side in (self.image_size, self.tile_size):
            if side % self.token_stride:
                raise ValueError(f"view side {side} is not a multiple of {self.token_stride} px")

    def _check_field_types(self) -> None:
        """Every size must be a number of the right kind: a config file is user input, and a
        string, list, float or zero would otherwise fail deep inside the network build (or a
        forward pass) with a message that names no field."""
        for name in _POSITIVE_INTS:
            _require(name, getattr(self, name), _is_int, 1, "a positive int")
        _require("sam_window_size", self.sam_window_size, _is_int, 0, "an int >= 0 (0: global attention)")
        for name in _POSITIVE_FLOATS:
            _require(name, getattr(self, name), _is_number, None, "a positive number")
        for name in _LAYER_NORM_EPS:
            if getattr(self, name) > MAX_LAYER_NORM_EPS:
                raise ValueError(f"DeepEncoderConfig.{name} must be <= {MAX_LAYER_NORM_EPS:g} (a LayerNorm eps: "
                                 f"towers use 1e-6 or 1e-5; a larger one stops the layer normalising), "
                                 f"got {getattr(self, name)!r}")
        for name, least in (("compressor_channels", 1), ("sam_global_attn_indexes", 0)):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
                raise ValueError(f"DeepEncoderConfig.{name} must be a list of ints, got {value!r}")
        if not self.compressor_channels or min(self.compressor_channels) < 1:
            raise ValueError(f"DeepEncoderConfig.compressor_channels must be positive ints, got {self.compressor_channels!r}")
        if not isinstance(self.gradient_checkpointing, bool):
            raise ValueError(f"DeepEncoderConfig.gradient_checkpointing must be true or false, got {self.gradient_checkpointing!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"DeepEncoderConfig.extra must be a mapping, got {self.extra!r}")
        for key, value in self.extra.items():
            # saved verbatim as JSON (was: a bare TypeError from save_pretrained, an empty folder left)
            if not isinstance(key, str):  # JSON would turn 1 into "1": not verbatim
                raise ValueError(f"DeepEncoderConfig.extra key {key!r} must be a string (JSON object keys are)")
            try:
                json.dumps({key: value}, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise ValueError(f"DeepEncoderConfig.extra[{key!r}] cannot be saved as JSON "
                                 f"({type(value).__name__}: {e})") from e

    def check_tiles(self, max_tiles: int) -> None:
        """The tile views against the global view, for a tower that cuts tiles ("tiles" mode;
        in "base" mode tile_size is never read, so __post_init__ does not ask this:
        DeepEncoderImageProcessor.from_config asks it of every tiles-mode processor). A
        ValueError naming tile_size and image_size when:
        - tile_size > image_size: tiles bigger than the global view. An image that fits one
          tile gets none (so tiles mode adds nothing for every image up to tile_size px), and a
          larger one is enlarged into tiles of more tokens each than the whole global view;
        - max_tiles * tile_size <= image_size: the mosaic is at most `max_tiles` (the image
          processor's, which the caller gives) tiles along one side, so it never shows the
          image larger than the global view does: the tiles add tokens and no detail (64 px
          tiles at 1024 px: one token each).
        DeepSeek-OCR's sizes (1024, 640) and the presets (tile_size half the global view) pass."""
        if self.tile_size > self.image_size:
            raise ValueError(f"DeepEncoderConfig.tile_size {self.tile_size} is larger than image_size "
                             f"{self.image_size}: an image up to {self.tile_size} px a side would get no tile at all, "
                             "and a larger one be enlarged into tiles of more tokens each than the global view; give "
                             "tile_size <= image_size (DeepSeek-OCR: 640 with 1024)")
        if max_tiles * self.tile_size <= self.image_size:
            least = (self.image_size // (max_tiles * self.token_stride) + 1) * self.token_stride
            raise ValueError(f"DeepEncoderConfig.tile_size {self.tile_size} is too small for image_size "
                             f"{self.image_size}: the tile mosaic is at most {max_tiles} tiles a side, "
                             f"{max_tiles * self.tile_size} px, no larger than the global view, so the tiles would "
                             f"add tokens and no detail; give tile_size >= {least} (a multiple of "
                             f"{self.token_stride} px; DeepSeek-OCR: 640 with 1024)")

    # --- derived sizes -------------------------------------------------------------------
    @property
    def token_stride(self) -> int:
        """Pixels per output token: SAM patch x 2^(number of stride-2 convs)."""
        return self.patch_size * 2 ** len(self.compressor_channels)

    @property
    def hidden_size(self) -> int:
        """Channels per output token: CLIP features + compressor features (2048)."""
        return self.clip_width + self.compressor_channels[-1]

    def tokens_per_side(self, side: int) -> int:
        """Output tokens per row for a square view of `side` pixels (16 at 1024)."""
        return side // self.token_stride

    # --- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sam_global_attn_indexes"] = list(self.sam_global_attn_indexes)
        d["compressor_channels"] = list(self.compressor_channels)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any], saved: bool = False) -> "DeepEncoderConfig":
        """saved: `d` was saved with weights (a deepencoder_config.json, a model's config.json,
        a weights file's metadata), so every ARCHITECTURE_FIELDS entry must be there: a missing
        one took DeepSeek-OCR's 1024 px value without a word (was: then refused as a
        configuration "given" with sam_depth 12, or as 140 missing tensors). The runtime
        fields (tile_size, sam_attention, gradient_checkpointing, dtype, extra) may be absent:
        they do not change what the weights compute, and a field added to the class later
        belongs there so that older saved files stay loadable."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DeepEncoderConfig fields: {unknown}")
        missing = [name for name in ARCHITECTURE_FIELDS if name not in d] if saved else []
        if missing:
            present = [name for name in ARCHITECTURE_FIELDS if name in d]
            only = f" (it gives only {', '.join(present) or 'none of them'})" if len(present) < len(missing) else ""
            raise ValueError(f"it lacks {', '.join(missing)}{only}, which a configuration saved with weights must "
                             "give (save_pretrained writes every field; only tile_size, sam_attention, "
                             "gradient_checkpointing, dtype and extra may be absent)")
        return cls(**d)

    def save(self, directory: "str | os.PathLike") -> str:
        from ..result_files import write_atomic

        # `~` expanded as every loader expands it (tensor_files.checkpoint_path); was: a
        # folder literally named "~" in the working directory
        path = os.path.join(os.path.expanduser(directory), CONFIG_NAME)
        write_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))  # whole or not at all
        return path

    @classmethod
    def load(cls, path: "str | os.PathLike", saved: bool = False) -> "DeepEncoderConfig":
        """A configuration file (or a folder's deepencoder_config.json); saved: as from_dict."""
        from ..usage import RepeatedKeyError, json_loads_unique

        path = os.path.expanduser(path)  # as save and every weights loader
        if os.path.isdir(path):
            path = os.path.join(path, CONFIG_NAME)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            fields = json_loads_unique(text)
        except RepeatedKeyError as e:  # was: the last of them, without a word (`"sam_depth": 4, ... 2` built 2)
            raise ValueError(f"{os.fspath(path)}: {e.reason()}") from e
        return cls.from_dict(fields, saved=saved)
