"""Normalisation of featuriser outputs, fitted on the training rows of a split only."""

from __future__ import annotations

import numpy as np

from .featurizers import Featurizer


class FeatureScaler:
    """Per-block normalisation fitted on training rows only; NaN imputed by the training median.

    ``quantile``: x -> empirical CDF of the training values (piecewise linear, in [0, 1]);
    ``standard``: (x - mean) / std; ``none``: only NaN imputation (0).
    """

    def __init__(self, blocks: list[tuple[int, int, str]]):
        self.blocks = blocks  # (first column, end column, kind) per featuriser

    @classmethod
    def for_featurizer(cls, featurizer: Featurizer) -> "FeatureScaler":
        blocks, start = [], 0
        for p in featurizer.parts:
            blocks.append((start, start + p.dim, p.scaling))
            start += p.dim
        return cls(blocks)

    def fit(self, x: np.ndarray) -> "FeatureScaler":
        self.params = []
        for lo, hi, kind in self.blocks:
            block = x[:, lo:hi].astype(np.float64)
            median = np.nanmedian(block, axis=0) if block.shape[0] else np.zeros(hi - lo)
            median = np.where(np.isfinite(median), median, 0.0)
            filled = np.where(np.isnan(block), median, block)
            if kind == "quantile":
                grids = [np.unique(filled[:, j]) for j in range(hi - lo)]
                self.params.append((median, grids))
            elif kind == "standard":
                mean, std = filled.mean(0), filled.std(0)
                self.params.append((median, (mean, np.where(std > 1e-8, std, 1.0))))
            else:
                self.params.append((np.zeros(hi - lo), None))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x, dtype=np.float32)
        for (lo, hi, kind), (median, p) in zip(self.blocks, self.params):
            block = x[:, lo:hi].astype(np.float64)
            block = np.where(np.isnan(block), median, block)
            if kind == "quantile":
                for j, grid in enumerate(p):
                    if grid.size < 2:
                        block[:, j] = 0.0
                    else:
                        block[:, j] = np.interp(block[:, j], grid, np.linspace(0.0, 1.0, grid.size))
            elif kind == "standard":
                block = np.clip((block - p[0]) / p[1], -10.0, 10.0)
            out[:, lo:hi] = block
        return out
