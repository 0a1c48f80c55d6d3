"""CLIP-L/14 body driven with external patch embeddings.

open_clip's VisionTransformer has no patch-embedding input, so DeepEncoder drives the
pieces itself: prepend CLS, add the (resized) position table, `ln_pre`, then open_clip's
own `Transformer` (QuickGELU, pre-LN blocks). There is no `conv1` (the compressor map is
the patch embedding), no `ln_post` and no projection. Parameter names follow open_clip's
`visual.*` layout, so an open_clip checkpoint maps by dropping those three.

The blocks run `ClipBlock`, open_clip's ResidualAttentionBlock (same parameters) with
attention through scaled_dot_product_attention: nn.MultiheadAttention's inference fast
path (`_native_multi_head_attention`) does the 16 heads' 257x257 score matrices as small
batched matmuls, which on CPU took a sixth of CLIP's time for 4 % of its FLOPs. Training
(autograd on) already took the SDPA route inside nn.MultiheadAttention; this is the same
math either way. Residual adds, and QuickGELU when no graph is recorded, run in place.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from open_clip.transformer import LayerNorm, QuickGELU, ResidualAttentionBlock, Transformer

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
        for block in self.transformer.resblocks:
            # Same parameters, only the forward differs (see the module docstring).
            block.__class__ = ClipBlock
        self.transformer.grad_checkpointing = config.gradient_checkpointing

    def forward(self, patch_embeds: torch.Tensor) -> torch.Tensor:
        B, N, _ = patch_embeds.shape
        cls = self.class_embedding.to(patch_embeds.dtype).expand(B, 1, -1)  # (B, 1, C)
        x = torch.cat([cls, patch_embeds], dim=1)  # (B, 1 + N, C)
        x = x + resize_clip_positions(self.positional_embedding, N).to(x.dtype)
        return self.transformer(self.ln_pre(x))  # (B, 1 + N, C)


def _recording(x: torch.Tensor) -> bool:
    """Whether autograd records ops on x (then no op may overwrite a saved tensor)."""
    return torch.is_grad_enabled() and x.requires_grad


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(1.702 x), as open_clip's QuickGELU; in place of x when nothing records it."""
    if _recording(x):
        return x * torch.sigmoid(1.702 * x)
    gate = torch.mul(x, 1.702).sigmoid_()
    return x.mul_(gate)


class ClipBlock(ResidualAttentionBlock):
    """open_clip's pre-LN block: x + attn(ln_1(x)), then + mlp(ln_2(x)); self-attention only."""

    def forward(self, q_x: torch.Tensor, k_x=None, v_x=None, attn_mask=None) -> torch.Tensor:
        """(B, N, C) -> (B, N, C). Keeps open_clip's signature (its checkpointing passes
        k_x, v_x, attn_mask positionally), but only plain self-attention is supported."""
        if k_x is not None or v_x is not None or attn_mask is not None:
            raise ValueError("ClipBlock runs unmasked self-attention only")
        x = q_x
        B, N, C = x.shape
        heads = self.attn.num_heads
        qkv = F.linear(self.ln_1(x), self.attn.in_proj_weight, self.attn.in_proj_bias)  # (B, N, 3C)
        q, k, v = qkv.view(B, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, hd)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, hd)
        h = self.ls_1(self.attn.out_proj(h.transpose(1, 2).reshape(B, N, C)))
        x = h.add_(x)  # out_proj's fresh output, which no backward needs: in place is safe
        mlp = self.mlp
        h = mlp.c_fc(self.ln_2(x))  # (B, N, mlp_width)
        h = quick_gelu(h) if type(mlp.gelu) is QuickGELU else mlp.gelu(h)
        h = self.ls_2(mlp.c_proj(h))
        return h.add_(x)  # c_proj's fresh output, as above
