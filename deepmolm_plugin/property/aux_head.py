"""KFLM2 as DeepMoLM's auxiliary task: a property head on the LLM's pooled hidden states.

The LLM side of KFLM2 (a mean-pooled last hidden state) is DeepMoLM's own LLM here,
fused with the molecular-graph branch (D-MPNN) by the same `PropertyModel` the standalone
tool uses (gated fusion by default). Pooling covers the positions the LM loss does not
supervise — image tokens and prompt — so training and evaluation, where no answer exists
yet, pool over the same positions.

Targets come from records' `properties: {name: value}` and are normalised with running
per-property statistics (Welford, updated in training only; buffers, so they are saved
with the model and frozen at evaluation). A record without a property contributes
nothing to that property's loss: the loss is a mean over the labels present.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from .features import GraphBatch
from .models import PropertyModel


class AuxPropertyHead(nn.Module):
    def __init__(self, llm_hidden_size: int, names: Sequence[str], fusion: str = "gated", hidden: int = 128,
                 depth: int = 3):
        super().__init__()
        if not names:
            raise ValueError("the auxiliary property head needs at least one property name")
        self.names: List[str] = list(names)
        self.model = PropertyModel(len(self.names), graph=True, embed_dim=llm_hidden_size, fusion=fusion,
                                   hidden=hidden, depth=depth, ffn_hidden=hidden, fusion_dim=hidden)
        n = len(self.names)
        self.register_buffer("count", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(n, dtype=torch.float64))

    def targets(self, properties: Sequence[Optional[Dict[str, float]]], device) -> tuple:
        """Records' property dicts -> values (B, n) float64 and mask (B, n) bool."""
        values = torch.zeros(len(properties), len(self.names), dtype=torch.float64)
        mask = torch.zeros_like(values, dtype=torch.bool)
        for i, props in enumerate(properties):
            for j, name in enumerate(self.names):
                value = (props or {}).get(name)
                if value is not None:
                    values[i, j], mask[i, j] = float(value), True
        return values.to(device), mask.to(device)

    @torch.no_grad()
    def update_stats(self, values: torch.Tensor, mask: torch.Tensor) -> None:
        """Welford update of the per-property mean and variance with the labels present."""
        for j in range(len(self.names)):
            for x in values[mask[:, j], j].tolist():
                self.count[j] += 1
                delta = x - self.mean[j]
                self.mean[j] += delta / self.count[j]
                self.m2[j] += delta * (x - self.mean[j])

    @property
    def std(self) -> torch.Tensor:
        var = torch.where(self.count > 1, self.m2 / (self.count - 1).clamp(min=1), torch.ones_like(self.m2))
        return var.sqrt().clamp(min=1e-6)

    def forward(self, pooled: torch.Tensor, graph: GraphBatch) -> torch.Tensor:
        """(B, H) pooled LLM states + graphs -> (B, n) predictions in normalised units."""
        weight = next(self.model.parameters())
        return self.model(graph=graph.to(weight.device), embed=pooled.to(weight.dtype))

    def loss(self, prediction: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error in normalised units over the labels present (0 if none)."""
        target = ((values - self.mean) / self.std).to(prediction.dtype)
        error = (prediction - target).square() * mask
        return error.sum() / mask.sum().clamp(min=1)

    def denormalize(self, prediction: torch.Tensor) -> torch.Tensor:
        return prediction.double() * self.std + self.mean

    def predict_dicts(self, prediction: torch.Tensor) -> List[Dict[str, float]]:
        values = self.denormalize(prediction).tolist()
        return [dict(zip(self.names, row)) for row in values]


def pool_unsupervised(hidden: torch.Tensor, attention_mask: Optional[torch.Tensor],
                      labels: Optional[torch.Tensor], ignore_index: int = -100) -> torch.Tensor:
    """(B, L, H) last hidden states -> (B, H) mean over attended positions without a label."""
    keep = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    if attention_mask is not None:
        keep &= attention_mask.bool()
    if labels is not None:
        keep &= labels == ignore_index
    weights = keep.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
