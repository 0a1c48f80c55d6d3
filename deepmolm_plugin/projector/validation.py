"""Input checks shared by every projector, and the E3FP hash -> embedding index map.

molecule_fp is int (B, atoms, levels): entry (b, a, l) is the E3FP hash, in [0, fp_bits),
of the shell centred on heavy atom a of molecule b at level l; -1 is padding (atoms past
the molecule's end, or a level E3FP gave no shell). Every problem is a ValueError that
says which molecule (batch index) and which value; never a clamp or a silent pad.
"""

from __future__ import annotations

from typing import Tuple

import torch

PAD_HASH = -1  # molecule_fp padding value


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


def check_molecule_fp(
    molecule_fp: torch.Tensor, batch_size: int, fp_bits: int, fp_levels: int
) -> None:
    """molecule_fp must be an integer (batch_size, atoms, fp_levels) tensor with values in
    [-1, fp_bits), and every molecule must have at least one valid (non -1) token."""
    if not isinstance(molecule_fp, torch.Tensor):
        raise TypeError(f"molecule_fp must be a tensor, got {type(molecule_fp).__name__}")
    if molecule_fp.is_floating_point() or molecule_fp.is_complex() or molecule_fp.dtype == torch.bool:
        raise ValueError(
            f"molecule_fp must be an integer tensor (int64 E3FP hashes), got {molecule_fp.dtype}"
        )
    if molecule_fp.dim() != 3:
        raise ValueError(
            "molecule_fp must have shape (batch, atoms, levels) padded with -1, got shape "
            f"{tuple(molecule_fp.shape)}"
        )
    if molecule_fp.shape[2] != fp_levels:
        raise ValueError(
            f"molecule_fp has {molecule_fp.shape[2]} levels per atom, the projector expects "
            f"fp_levels={fp_levels} (shape {tuple(molecule_fp.shape)})"
        )
    if molecule_fp.shape[0] != batch_size:
        raise ValueError(
            f"molecule_fp holds {molecule_fp.shape[0]} molecules but there are {batch_size} "
            "images: one molecule per image"
        )
    bad = (molecule_fp < PAD_HASH) | (molecule_fp >= fp_bits)  # (B, A, L)
    if bad.any():
        b, a, l = (int(i) for i in bad.nonzero()[0])
        value = int(molecule_fp[b, a, l])
        raise ValueError(
            f"molecule {b} has E3FP hash {value} at molecule_fp[{b}, {a}, {l}] "
            f"({int(bad.sum())} bad entries in the batch): hashes must be in [0, {fp_bits}) "
            f"(fp_bits) or {PAD_HASH} for padding; were the fingerprints folded to {fp_bits} bits?"
        )
    empty = (molecule_fp == PAD_HASH).flatten(1).all(dim=1)  # (B,)
    if empty.any():
        which = [int(i) for i in empty.nonzero()[:, 0]]
        raise ValueError(
            f"molecule {which[0]} has no valid fingerprint token (all entries are {PAD_HASH}); "
            f"molecules without tokens in this batch: {which}"
        )


def fingerprint_indices(molecule_fp: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Checked (B, A, L) hashes -> embedding indices (B, A*L) = hash + 1 (padding -1 -> 0,
    the embeddings' padding_idx) and valid (B, A*L), True where the token is not padding."""
    flat = molecule_fp.flatten(1).long()  # (B, A*L), atom-major: token a*L + l
    return flat + 1, flat != PAD_HASH
