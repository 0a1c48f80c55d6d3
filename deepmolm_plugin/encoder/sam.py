"""SAM ViT-B image encoder: segment-anything's ImageEncoderViT, made resolution-flexible.

Two changes to the upstream module, both keeping its parameter names (so Meta's and
DeepSeek's checkpoints load unchanged):

1. ``forward`` resizes the absolute position embedding to the input grid (bicubic,
   antialiased, computed in fp32 as DeepSeek-OCR does). Upstream adds the 64x64 table as
   is, which crashes for 640/512/1280 px views.
2. Attention runs through ``scaled_dot_product_attention`` with the decomposed
   relative-position term passed as an additive float mask. Upstream materialises full
   fp32 score matrices; this is the same math, but lets PyTorch pick a fused kernel.
   ``sam_attention="eager"`` keeps upstream's module, for reference checks.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from segment_anything.modeling.image_encoder import Attention, ImageEncoderViT, get_rel_pos

from .config import DeepEncoderConfig


def rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: Tuple[int, int]
) -> torch.Tensor:
    """Decomposed relative-position logits (MViTv2), as an additive attention mask.

    q: (B, heads, h*w, head_dim), unscaled, as upstream's add_decomposed_rel_pos uses it.
    Returns (B, heads, h*w, h*w) in q's dtype.
    """
    h, w = size
    Rh = get_rel_pos(h, h, rel_pos_h).to(q.dtype)  # (h, h, head_dim)
    Rw = get_rel_pos(w, w, rel_pos_w).to(q.dtype)  # (w, w, head_dim)
    B, heads, _, dim = q.shape
    r_q = q.reshape(B, heads, h, w, dim)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, Rh)  # (B, heads, h, w, h)
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, Rw)  # (B, heads, h, w, w)
    bias = rel_h[..., :, None] + rel_w[..., None, :]  # (B, heads, h, w, h, w)
    return bias.reshape(B, heads, h * w, h * w)


class SdpaAttention(Attention):
    """segment-anything's Attention (same parameters), computed with SDPA."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape  # x: (B, H, W, C), one window or the whole grid
        qkv = self.qkv(x).reshape(B, H * W, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, H*W, head_dim)
        bias = rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (H, W)) if self.use_rel_pos else None
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, heads, H*W, head_dim)
        x = x.transpose(1, 2).reshape(B, H, W, -1)
        return self.proj(x)


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
        if config.sam_attention == "sdpa":
            for blk in self.blocks:
                blk.attn = _to_sdpa(blk.attn)
        self.gradient_checkpointing = config.gradient_checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, S/16, S/16, 768)
        x = x + resize_pos_embed(self.pos_embed, x.shape[1:3])
        for blk in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))  # (B, 256, S/16, S/16)


def _to_sdpa(attn: Attention) -> SdpaAttention:
    """Same-shaped SdpaAttention carrying `attn`'s parameters."""
    head_dim, dim = attn.rel_pos_h.shape[1], attn.qkv.in_features
    new = SdpaAttention(
        dim,
        num_heads=attn.num_heads,
        qkv_bias=attn.qkv.bias is not None,
        use_rel_pos=attn.use_rel_pos,
        input_size=((attn.rel_pos_h.shape[0] + 1) // 2, (attn.rel_pos_w.shape[0] + 1) // 2),
    )
    assert new.rel_pos_h.shape[1] == head_dim
    new.load_state_dict(attn.state_dict())
    return new
