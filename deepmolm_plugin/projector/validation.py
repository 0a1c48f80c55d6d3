"""Image-feature checks shared by every projector, and the E3FP hash -> embedding index map.

molecule_fp batches follow the contract of `deepmolm_plugin.molecule_fp` (int (B, atoms,
levels), hashes in [0, fp_bits), PAD = -1) and are checked by its `validate_batch`. Every
problem is a ValueError that says which molecule (batch index) and which value; never a
clamp or a silent pad.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ..encoder.model import check_finite
from ..molecule_fp import PAD


def check_image_features(image_features: torch.Tensor, mm_hidden_size: int) -> None:
    """image_features must be float (B, N, mm_hidden_size) with B, N >= 1."""
    if not isinstance(image_features, torch.Tensor):
        raise TypeError(f"image_features must be a tensor, got {type(image_features).__name__}")
    if not image_features.is_floating_point():
        raise ValueError(f"image_features must be floating point, got {image_features.dtype}")
    if image_features.dim() != 3:
        raise ValueError(
            "image_features must have shape (batch, tokens, mm_hidden_size) for one view per "
            f"sample, got shape {tuple(image_features.shape)}"
        )
    batch, tokens, width = image_features.shape
    if width != mm_hidden_size:
        raise ValueError(
            f"image_features width is {width}, the projector expects mm_hidden_size={mm_hidden_size}"
        )
    if batch < 1 or tokens < 1:
        raise ValueError(f"image_features is empty: shape {tuple(image_features.shape)}")
    check_finite(image_features, "image_features")  # sample index: was NaN features without a word


def fingerprint_indices(molecule_fp: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Checked (B, A, L) hashes -> embedding indices (B, A*L) = hash + 1 (PAD -1 -> 0,
    the embeddings' padding_idx) and valid (B, A*L), True where the token is not padding."""
    flat = molecule_fp.flatten(1).long()  # (B, A*L), atom-major: token a*L + l
    return flat + 1, flat != PAD
