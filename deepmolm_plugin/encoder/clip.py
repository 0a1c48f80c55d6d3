"""CLIP-L/14 body driven with external patch embeddings.

open_clip's VisionTransformer has no patch-embedding input, so DeepEncoder drives the
pieces itself: prepend CLS, add the (resized) position table, `ln_pre`, then open_clip's
own `Transformer` (QuickGELU, pre-LN blocks). There is no `conv1` (the compressor map is
the patch embedding), no `ln_post` and no projection. Parameter names follow open_clip's
`visual.*` layout, so an open_clip checkpoint maps by dropping those three.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from open_clip.transformer import LayerNorm, QuickGELU, Transformer

from .config import DeepEncoderConfig


def resize_clip_positions(table: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(1 + G*G, C) CLS + grid positions -> (1 + num_tokens, C).

    The CLS position is kept; the grid part is resized bicubic with antialias in fp32,
    as DeepSeek-OCR's get_abs_pos.
    """
    if table.shape[0] == num_tokens + 1:
        return table
    src, tgt = math.isqrt(table.shape[0] - 1), math.isqrt(num_tokens)
    if tgt * tgt != num_tokens:
        raise ValueError(f"CLIP tokens must form a square grid, got {num_tokens}")
    cls_pos, grid = table[:1], table[1:]
    grid = grid.reshape(1, src, src, -1).permute(0, 3, 1, 2).float()  # (1, C, src, src)
    grid = F.interpolate(grid, size=(tgt, tgt), mode="bicubic", antialias=True, align_corners=False)
    grid = grid.to(table.dtype).permute(0, 2, 3, 1).reshape(tgt * tgt, -1)
    return torch.cat([cls_pos, grid], dim=0)


class ClipTrunk(nn.Module):
    """(B, N, 1024) patch embeddings -> (B, 1 + N, 1024) CLIP hidden states (CLS first)."""

    def __init__(self, config: DeepEncoderConfig):
        super().__init__()
        width = config.clip_width
        scale = width**-0.5  # open_clip's initialisation
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn(config.clip_position_grid**2 + 1, width)
        )
        norm = partial(LayerNorm, eps=config.clip_layer_norm_eps)
        self.ln_pre = norm(width)
        self.transformer = Transformer(
            width,
            config.clip_layers,
            config.clip_heads,
            mlp_ratio=config.clip_mlp_ratio,
            act_layer=QuickGELU,
            norm_layer=norm,
            batch_first=True,
        )
        self.transformer.grad_checkpointing = config.gradient_checkpointing

    def forward(self, patch_embeds: torch.Tensor) -> torch.Tensor:
        B, N, _ = patch_embeds.shape
        cls = self.class_embedding.to(patch_embeds.dtype).expand(B, 1, -1)  # (B, 1, C)
        x = torch.cat([cls, patch_embeds], dim=1)  # (B, 1 + N, C)
        x = x + resize_clip_positions(self.positional_embedding, N).to(x.dtype)
        return self.transformer(self.ln_pre(x))  # (B, 1 + N, C)
