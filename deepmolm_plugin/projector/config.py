"""ProjectorConfig: every size of the multimodal projectors in one dataclass.

Defaults are DeepMoLM's: DeepEncoder features of width 2048, E3FP
hashes folded to 4096 bits at 4 levels (0..3), 8 cross-attention heads (the original had
no head setting and fell back to 8). `hidden_size` is the LLM width H and has no default.

Inside the LLaVA host the settings live on the model config (saved in config.json), under
the names in `HOST_ATTRIBUTES`; `from_host_config` reads them and `to_host_attributes`
gives what to write back so a saved model rebuilds the same projector.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..molecule_fp import FingerprintSettings

# ProjectorConfig field -> attribute name on the host (HF / LLaVA) model config.
HOST_ATTRIBUTES = {
    "hidden_size": "hidden_size",  # the LLM's own width
    "mm_hidden_size": "mm_hidden_size",  # set by LLaVA from the vision tower
    "num_heads": "fusion_heads",
    "dropout": "fusion_dropout",
    "fp_bits": "fp_bits",
    "fp_levels": "fp_levels",
    "layer_norm_eps": "fusion_layer_norm_eps",
    "concat_embed_dim": "concat_embed_dim",
}


# The embedding table has fp_bits + 1 rows of hidden_size: 4096 bits at H 3584 are 15 M
# elements; 2**24 bits would be 60 G, a model that fits nowhere (was: found at allocation).
MAX_TABLE_ELEMENTS = 2**31


@dataclass(kw_only=True)
class ProjectorConfig:
    hidden_size: int  # H, the LLM width: every projector outputs (B, N, H)
    mm_hidden_size: int = 2048  # vision tower width (CLIP 1024 + compressor 1024)
    num_heads: int = 8  # fusion cross-attention heads; must divide hidden_size
    dropout: float = 0.0  # fusion only: attention-probability and residual dropout
    fp_bits: int = FingerprintSettings.bits  # E3FP hashes lie in [0, fp_bits); -1 is padding
    fp_levels: int = FingerprintSettings.levels  # E3FP iterations per atom (levels 0..3)
    layer_norm_eps: float = 1e-5  # fusion's two LayerNorms
    concat_embed_dim: Optional[int] = None  # concat's molecule embedding width; None -> H // 4

    def __post_init__(self) -> None:
        for name in ("hidden_size", "mm_hidden_size", "num_heads", "fp_bits", "fp_levels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ProjectorConfig.{name} must be a positive int, got {value!r}")
        self.fingerprint  # the settings' own bounds (fp_bits 2..2**32, fp_levels 1..64), named
        if (self.fp_bits + 1) * self.hidden_size > MAX_TABLE_ELEMENTS:
            raise ValueError(f"ProjectorConfig.fp_bits {self.fp_bits} makes a fingerprint embedding table of "
                             f"({self.fp_bits} + 1) x {self.hidden_size} = {(self.fp_bits + 1) * self.hidden_size} "
                             f"elements, more than {MAX_TABLE_ELEMENTS} (8 GiB in float32): use fewer bits")
        # was: compared only, so dropout="0.1" was a bare TypeError naming no field, and
        # layer_norm_eps=inf was taken (both LayerNorms then output their bias alone: every
        # image token the same, whatever the image and molecule)
        for name in ("dropout", "layer_norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"ProjectorConfig.{name} must be a finite number, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ProjectorConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"ProjectorConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if self.concat_embed_dim is not None and (
            isinstance(self.concat_embed_dim, bool)
            or not isinstance(self.concat_embed_dim, int)
            or self.concat_embed_dim < 1
        ):
            raise ValueError(
                f"ProjectorConfig.concat_embed_dim must be a positive int or None, "
                f"got {self.concat_embed_dim!r}"
            )
        if self.concat_embed_dim is None and self.hidden_size < 4:
            raise ValueError(
                f"hidden_size={self.hidden_size} is too small for the default concat_embed_dim "
                "(hidden_size // 4); set concat_embed_dim"
            )

    @property
    def fingerprint(self) -> FingerprintSettings:
        """The molecule_fp settings the embedding tables were sized for."""
        return FingerprintSettings(self.fp_bits, self.fp_levels)

    @property
    def molecule_embed_dim(self) -> int:
        """Width of the concat projector's molecule embedding (DeepMoLM: hidden_size // 4)."""
        return self.concat_embed_dim if self.concat_embed_dim is not None else self.hidden_size // 4

    @classmethod
    def from_host_config(cls, cfg: Any) -> "ProjectorConfig":
        """Read the fields from a host config object (or a dict) by `HOST_ATTRIBUTES` names.

        `hidden_size` is required; any other attribute that is absent or None keeps its
        default.
        """
        from ..config_fields import config_field

        def get(name):
            return config_field(cfg, name)

        if get("hidden_size") is None:
            raise ValueError(
                f"host config {type(cfg).__name__} has no hidden_size (the LLM width)"
            )
        values = {
            field: get(attr) for field, attr in HOST_ATTRIBUTES.items() if get(attr) is not None
        }
        return cls(**values)

    def to_host_attributes(self) -> Dict[str, Any]:
        """{host attribute name: value} of the projector's own settings, to set on the host
        config before saving. hidden_size and mm_hidden_size are left out: the host owns them."""
        values = dataclasses.asdict(self)
        return {
            attr: values[field]
            for field, attr in HOST_ATTRIBUTES.items()
            if field not in ("hidden_size", "mm_hidden_size")
        }
