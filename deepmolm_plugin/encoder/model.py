"""DeepEncoder: SAM-base -> 16x conv compressor -> CLIP-L, one view at a time.

    pixels (B, 3, S, S)
      -> SamEncoder            (B, 256, S/16, S/16)
      -> Compressor            (B, 1024, S/64, S/64)  -> tokens (B, N, 1024), N = (S/64)^2
      -> ClipTrunk(tokens)     (B, 1 + N, 1024)
      -> concat[CLIP without CLS, tokens]  (B, N, 2048)

S = 1024 gives 256 tokens, a 640 tile 100, 512 px 64. Gradients flow through every
part (DeepSeek-OCR's training code ran the encoder under no_grad: tuning it did nothing);
freezing is the caller's choice via requires_grad_.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, List, Optional, Sequence

import torch
from torch import nn

from .clip import ClipTrunk
from .compressor import Compressor
from .config import WEIGHTS_NAME, DeepEncoderConfig, dtype_name, resolve_dtype
from .sam import SamEncoder



class NonFiniteValues(ValueError):
    """NaN/inf values in a batch: ``rows`` the samples (positions along dim 0) holding them,
    ascending, ``counts`` how many each holds, ``size`` the batch's length. The message names the
    first sample by ``label(row)``; a caller that knows where the rows came from re-raises it
    with its own names (`relabelled`, `moved`), as the host tower does for ``images[k]``."""

    def __init__(self, rows: List[int], counts: List[int], size: int, label: Callable[[int], str]):
        self.rows, self.counts, self.size = rows, counts, size
        others = len(rows) - 1
        more = f" (and {others} more of the {size})" if others else ""
        super().__init__(f"{label(rows[0])} has {counts[0]} NaN/inf values{more}")

    def relabelled(self, label: Callable[[int], str]) -> "NonFiniteValues":
        """The same failure, its samples named by ``label(row)``."""
        return NonFiniteValues(self.rows, self.counts, self.size, label)

    def moved(self, rows: Sequence[int], size: int, label: Callable[[int], str]) -> "NonFiniteValues":
        """The same failure in a larger batch this one was taken from: row ``r`` is ``rows[r]``
        there, of ``size``."""
        return NonFiniteValues([rows[r] for r in self.rows], self.counts, size, label)


def check_finite(x: torch.Tensor, name: str) -> None:
    """A `NonFiniteValues` (a ValueError) naming the first sample of `x` (indexed along dim 0)
    holding NaN/inf values and how many: `views[0] has 1 NaN/inf values`. When all is well: one
    float32 sum over `x` (NaN/inf propagate into it; no bool tensor the size of `x`) and one
    host sync for its verdict; only a sum that is not finite (NaN/inf, or finite values adding
    past float32's range) scans `x` per sample. Was: a NaN pixel (a user's own normalisation, a
    bad cached view) or feature went through the tower and projectors and made that sample's
    features, and the loss, NaN; for one revision the host tower scanned each image and the
    encoder the batch again, a sync per image."""
    if not x.numel() or bool(torch.isfinite(x.detach().sum(dtype=torch.float32))):
        return
    bad = (~torch.isfinite(x.detach())).flatten(1).sum(1)
    rows = bad.nonzero().flatten().tolist()
    if rows:  # none: finite values whose sum overflowed float32
        raise NonFiniteValues(rows, bad[rows].tolist(), len(x), lambda row: f"{name}[{row}]")


class DeepEncoder(nn.Module):
    def __init__(self, config: DeepEncoderConfig | None = None):
        super().__init__()
        self.config = config or DeepEncoderConfig()
        self.sam = SamEncoder(self.config)
        self.compressor = Compressor(self.config.sam_out_chans, self.config.compressor_channels)
        self.clip = ClipTrunk(self.config)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def dtype(self) -> torch.dtype:
        return self.compressor.net_2.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.compressor.net_2.weight.device

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        self._check_input(pixel_values)
        if not len(pixel_values):  # no views: the reshapes inside SAM's windows cannot take 0
            tokens = self.config.tokens_per_side(pixel_values.shape[2]) ** 2
            return torch.empty(0, tokens, self.hidden_size, dtype=self.dtype, device=self.device)
        pixel_values = pixel_values.to(device=self.device, dtype=self.dtype)
        feats = self.compressor(self.sam(pixel_values))  # (B, 1024, S/64, S/64)
        tokens = feats.flatten(2).transpose(1, 2)  # (B, N, 1024)
        clip_out = self.clip(tokens)  # (B, 1 + N, 1024)
        return torch.cat([clip_out[:, 1:], tokens], dim=-1)  # (B, N, 2048)

    def _check_input(self, x: torch.Tensor) -> None:
        """Views as the image processor makes them. Integer (or bool, complex) views were
        cast and encoded: raw 0..255 pixels, where the encoder expects normalised values
        (features up to 2.9 off, without a word); a list, a 0 px side or an empty batch failed
        deep inside SAM."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"DeepEncoder takes a tensor of views (B, 3, S, S), got a {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"DeepEncoder views have dtype {x.dtype}; they are the image processor's normalised "
                             "float tensors (DeepEncoderImageProcessor.preprocess(...)['pixel_values']), not pixels")
        stride = self.config.token_stride
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or x.shape[2] % stride or not x.shape[2]:
            raise ValueError(
                f"DeepEncoder takes square RGB views (B, 3, S, S) with S a positive multiple of "
                f"{stride}; got shape {tuple(x.shape)}"
            )
        check_finite(x, "DeepEncoder views")

    def compile_blocks(self, **options) -> "DeepEncoder":
        """torch.compile every SAM and CLIP block in place; parameter names and checkpoints
        are unchanged. Optional and off by default: inductor fuses the norms, activations
        and residual adds around the matmuls, but on a 2-core AVX2 EPYC compiled blocks ran
        within 3 % of eager ones (they are matmul-bound), after 5-19 s of compilation per
        block kind and view size."""
        for block in [*self.sam.blocks, *self.clip.transformer.resblocks]:
            block.compile(**options)
        return self

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.config.gradient_checkpointing = enabled
        self.sam.gradient_checkpointing = enabled
        self.clip.transformer.grad_checkpointing = enabled

    def save_pretrained(self, directory: "str | os.PathLike") -> None:
        """Our own format: deepencoder_config.json + deepencoder.safetensors, the weights file
        recording the configuration in its metadata too (checkpoint.config_metadata), so a
        copy of it alone or renamed is still checked against the tower it is loaded into
        (was: metadata {"format": "pt"} only)."""
        from ..tensor_files import save_tensors
        from .checkpoint import config_metadata

        directory = os.path.expanduser(directory)  # as every loader (was: a folder named "~" here)
        os.makedirs(directory, exist_ok=True)
        self.config.save(directory)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_tensors(state, os.path.join(directory, WEIGHTS_NAME), metadata=config_metadata(self.config))

    @classmethod
    def from_pretrained(cls, path, config: Optional[DeepEncoderConfig] = None, dtype=None) -> "DeepEncoder":
        """Build the tower and load its weights from any supported checkpoint layout
        (`encoder.checkpoint`: DeepSeek-OCR, SAM + CLIP, our own folder; a file, a folder or
        a list of them). config: default the folder's deepencoder_config.json, else
        DeepSeek-OCR's sizes; dtype: default config.dtype. The model carries `load_report`."""
        from .checkpoint import checkpoint_config, load_weights

        config = config or checkpoint_config(path)
        if dtype is not None:
            # The config carries the dtype the weights will live in: the value check
            # (overflow to inf once cast: 1e6 in float16) and a later save_pretrained read
            # it there (they saw the config's float32 while the tower became float16).
            config = dataclasses.replace(config, dtype=dtype_name(dtype))
        model = cls(config)
        model.load_report = load_weights(model, path)
        model.to(dtype=resolve_dtype(config.dtype))
        return model


def load_deepencoder(path, config: Optional[DeepEncoderConfig] = None, dtype=None) -> DeepEncoder:
    """`DeepEncoder.from_pretrained`: one loader for every public checkpoint layout."""
    return DeepEncoder.from_pretrained(path, config=config, dtype=dtype)


def check_deepencoder_weights(path, config: Optional[DeepEncoderConfig] = None,
                              config_source: Optional[str] = None):
    """What `load_deepencoder(path, config)` would refuse, from the files' headers alone
    (`checkpoint.check_weights`), the tower built on the meta device (no memory, no
    initialisation); returns its LoadReport, or None where only the configuration could be
    checked cheaply."""
    from .checkpoint import check_weights, checkpoint_config

    config = config or checkpoint_config(path)
    with torch.device("meta"):
        model = DeepEncoder(config)
    return check_weights(model, path, config_source=config_source)
