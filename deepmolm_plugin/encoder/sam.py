"""SAM ViT-B image encoder: segment-anything's ImageEncoderViT, made resolution-flexible.

Changes to the upstream module, all keeping its parameter names (so Meta's and
DeepSeek's checkpoints load unchanged):

1. ``forward`` resizes the absolute position embedding to the input grid (bicubic,
   antialiased, computed in fp32 as DeepSeek-OCR does). Upstream adds the 64x64 table as
   is, which crashes for 640/512/1280 px views.
2. With ``sam_attention="sdpa"`` (the default) the blocks run `SdpaBlock`: attention
   through scaled_dot_product_attention, qkv/proj only on real (unpadded) tokens
   (sam_attention.py), and, when no graph is recorded, GELU and residual adds in place
   (no new 50 MB buffers per block). The decomposed relative-position terms enter either
   as a bias built a band of query rows at a time ("pieces") or as extra q/k channels
   ("folded"); "sdpa" takes the way measured faster on the device (`sam_attention.folds`),
   "pieces" and "folded" force one. Same math as upstream; ``sam_attention="eager"``
   keeps upstream's modules, for reference checks.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from segment_anything.modeling.image_encoder import Block, ImageEncoderViT

from .config import DeepEncoderConfig
from .sam_attention import SdpaAttention


def resize_pos_embed(pos_embed: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """(1, G, G, C) absolute position table -> (1, grid_h, grid_w, C).

    Bicubic with antialias in fp32, as DeepSeek-OCR's get_abs_pos_sam; identity at 1024 px.
    """
    if tuple(pos_embed.shape[1:3]) == tuple(grid):
        return pos_embed
    table = pos_embed.permute(0, 3, 1, 2).float()  # (1, C, G, G)
    table = F.interpolate(table, size=grid, mode="bicubic", antialias=True, align_corners=False)
    return table.to(pos_embed.dtype).permute(0, 2, 3, 1)


class SamEncoder(ImageEncoderViT):
    """(B, 3, S, S) pixels -> (B, 256, S/16, S/16) neck features."""

    def __init__(self, config: DeepEncoderConfig):
        super().__init__(
            img_size=config.image_size,
            patch_size=config.patch_size,
            embed_dim=config.sam_width,
            depth=config.sam_depth,
            num_heads=config.sam_heads,
            mlp_ratio=config.sam_mlp_ratio,
            out_chans=config.sam_out_chans,
            qkv_bias=True,
            norm_layer=lambda dim: nn.LayerNorm(dim, eps=config.sam_layer_norm_eps),
            act_layer=nn.GELU,
            use_abs_pos=True,
            use_rel_pos=True,
            window_size=config.sam_window_size,
            global_attn_indexes=config.sam_global_attn_indexes,
        )
        if config.sam_attention != "eager":
            for blk in self.blocks:
                # Same parameters and buffers, only the forward differs: swapping the
                # classes keeps the modules (and their initialised tensors) as they are.
                blk.__class__ = SdpaBlock
                blk.attn.__class__ = SdpaAttention
                blk.attn.way = config.sam_attention
        self.gradient_checkpointing = config.gradient_checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).contiguous()  # (B, S/16, S/16, 768), tokens' channels adjacent
        x = x + resize_pos_embed(self.pos_embed, x.shape[1:3])
        for blk in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))  # (B, 256, S/16, S/16)


def _recording(x: torch.Tensor) -> bool:
    """Whether autograd records ops on x (then no op may overwrite a saved tensor)."""
    return torch.is_grad_enabled() and x.requires_grad


class SdpaBlock(Block):
    """segment-anything's Block (same parameters): norm -> attention -> residual -> MLP.

    `attn` is an SdpaAttention; windowing happens inside it (see sam_attention.py).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        h = self.norm1(x)
        h = self.attn.windowed(h, self.window_size) if self.window_size > 0 else self.attn(h)
        h += x  # proj's fresh output, which no backward needs: adding in place is safe
        x = h
        h = self.mlp.lin1(self.norm2(x))  # (B, H, W, mlp_dim)
        if _recording(h) or type(self.mlp.act) is not nn.GELU:
            h = self.mlp.act(h)
        else:  # nothing keeps lin1's output: GELU overwrites it instead of allocating
            h = torch.ops.aten.gelu_(h, approximate=self.mlp.act.approximate)
        h = self.mlp.lin2(h)
        h += x  # lin2's fresh output, as above
        return h
