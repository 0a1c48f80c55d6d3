"""SAM's attention with decomposed relative positions, computed near the matmul bound.

segment-anything's Attention (MViTv2 decomposed rel-pos) adds to every score
    rel_h[q, kh] + rel_w[q, kw]      q = (qh, qw) a query, k = (kh, kw) a key,
where rel_h = q . Rh[qh, kh] and rel_w = q . Rw[qw, kw] are small (h*w x h and h*w x w
per head). Upstream builds the whole (B, heads, h*w, h*w) fp32 score matrix; DeepSeek-OCR
and transformers build the whole bias as an SDPA mask. At 1024 px a global block has
4096 tokens, so either is 12 x 4096^2 floats = 805 MB per block, written and read again
(and, from einsum's output layout, copied once more): that, not the matmuls, was most of a
global block's time. Here the bias exists only for a band of query rows at a time
(`MASK_ELEMENTS`), built by one broadcasting add into a reused buffer, and each band goes
through scaled_dot_product_attention (PyTorch's fused CPU/CUDA kernels take an additive
mask). Same math as upstream; the band only changes which queries run together.

Windowed blocks: upstream pads the (B, H, W, C) map with zeros to a multiple of the window
and runs qkv and proj on the padding too (4900 instead of 4096 tokens at 1024 px, 18 %
more of those matmuls). A zero token's qkv is exactly qkv's bias, so qkv runs on the real
tokens and the padding is filled with the bias; proj runs after cropping.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from segment_anything.modeling.image_encoder import Attention, get_rel_pos

# Bias elements built at once in a global block: 32 M (128 MiB fp32, against 805 MB for
# the whole map) is 10 of the 64 query rows at 1024 px, batch 1: 7 bands. Bands of 4 to
# 16 rows ran equally fast on an AVX2 EPYC; one row was 25 % slower (per-call overhead,
# worse on a busy machine), the whole map 35 % slower (memory traffic).
MASK_ELEMENTS = 1 << 25


def rel_pos_table(size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """(2*size - 1, dim) table -> (size, size, dim): entry [i, j] = table[i - j + size - 1].

    segment-anything's get_rel_pos for square attention, whose table is only
    interpolated for a grid it was not trained at (then upstream's code runs); the index
    itself is built once per size and device instead of on every call.
    """
    if rel_pos.shape[0] != 2 * size - 1:
        return get_rel_pos(size, size, rel_pos)
    key = (size, rel_pos.device)
    if key not in _REL_INDEX:
        coords = torch.arange(size, device=rel_pos.device)
        _REL_INDEX[key] = (coords[:, None] - coords[None, :] + size - 1).reshape(-1)
    return rel_pos.index_select(0, _REL_INDEX[key]).view(size, size, -1)


_REL_INDEX: dict = {}  # (size, device) -> flat (size*size,) int64 index into a rel-pos table


def rel_pos_terms(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """q (B, heads, h*w, dim), unscaled as upstream uses it -> the two decomposed terms,
    rel_h (B, heads, h, w, h) and rel_w (B, heads, h, w, w), contiguous, in q's dtype.

    rel_h[b, n, y, x, k] = q[b, n, (y, x)] . Rh[y, k], rel_w[..., k] = q . Rw[x, k]:
    upstream's einsums, written as one batched matmul over y (resp. x) each.
    """
    h, w = size
    B, heads, _, dim = q.shape
    Rh = rel_pos_table(h, rel_pos_h).to(q.dtype)  # (h, h, dim)
    Rw = rel_pos_table(w, rel_pos_w).to(q.dtype)  # (w, w, dim)
    r_q = q.reshape(B * heads, h, w, dim)
    rel_h = torch.bmm(r_q.transpose(0, 1).reshape(h, B * heads * w, dim), Rh.transpose(1, 2))  # (h, B*heads*w, h)
    rel_h = rel_h.view(h, B, heads, w, h).permute(1, 2, 0, 3, 4).contiguous()
    rel_w = torch.bmm(r_q.permute(2, 0, 1, 3).reshape(w, B * heads * h, dim), Rw.transpose(1, 2))  # (w, B*heads*h, w)
    rel_w = rel_w.view(w, B, heads, h, w).permute(1, 2, 3, 0, 4).contiguous()
    # Contiguous terms keep the bias built from them contiguous: viewing it as a mask
    # costs no copy.
    return rel_h, rel_w


def rel_pos_mask(rel_h: torch.Tensor, rel_w: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B, heads, r, w, h) + (B, heads, r, w, w) -> additive mask (B, heads, r*w, h*w).

    `out`: a flat buffer to build it in (no autograd then), else a new tensor.
    """
    B, heads, r, w, h = rel_h.shape
    shape = (B, heads, r, w, h, rel_w.shape[-1])
    if out is None:
        bias = rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)  # contiguous inputs -> contiguous sum
    else:
        bias = torch.add(rel_h.unsqueeze(-1), rel_w.unsqueeze(-2), out=out[: rel_h.numel() * shape[-1]].view(shape))
    return bias.view(B, heads, r * w, h * shape[-1])


def rel_pos_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor
) -> torch.Tensor:
    """softmax(q k^T / sqrt(dim) + rel_h + rel_w) v, in bands of query rows.

    q, k, v: (B, heads, h*w, dim) contiguous; rel_h, rel_w from `rel_pos_terms`.
    Returns (B, heads, h*w, dim).
    """
    B, heads, r_all, w, h = rel_h.shape
    per_row = B * heads * w * q.shape[2]  # bias elements of one query row
    rows = max(1, MASK_ELEMENTS // per_row)
    if rows >= r_all:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=rel_pos_mask(rel_h, rel_w))
    graph = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, rel_h, rel_w))
    if graph:  # autograd: each band a node of its own
        bands = []
        for start, stop in _bands(r_all, rows):
            mask = rel_pos_mask(rel_h[:, :, start:stop], rel_w[:, :, start:stop])
            bands.append(F.scaled_dot_product_attention(q[:, :, start * w : stop * w], k, v, attn_mask=mask))
        return torch.cat(bands, dim=2)
    buffer = q.new_empty(rows * per_row)  # every band's bias, in turn
    out = torch.empty_like(q)
    for start, stop in _bands(r_all, rows):
        mask = rel_pos_mask(rel_h[:, :, start:stop], rel_w[:, :, start:stop], buffer)
        out[:, :, start * w : stop * w] = F.scaled_dot_product_attention(q[:, :, start * w : stop * w], k, v,
                                                                         attn_mask=mask)
    return out


def _bands(rows: int, step: int):
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


class SdpaAttention(Attention):
    """segment-anything's Attention (same parameters), computed by `rel_pos_attention`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global attention: x (B, H, W, C) -> (B, H, W, C)."""
        B, H, W, C = x.shape
        qkv = self.qkv(x).view(B, H * W, 3, self.num_heads, -1)
        # One copy to (3, B, heads, H*W, head_dim): q, k, v contiguous, as the fused kernels
        # want them (they would otherwise copy k and v again for every band).
        q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        out = self._attend(q, k, v, (H, W))  # (B, heads, H*W, head_dim)
        return self.proj(out.transpose(1, 2).reshape(B, H, W, C))

    def windowed(self, x: torch.Tensor, window: int) -> torch.Tensor:
        """Attention within window x window tiles: x (B, H, W, C) -> (B, H, W, C).

        Equal to upstream's window_partition -> attention -> window_unpartition, with qkv
        and proj run on real tokens only (see the module docstring).
        """
        B, H, W, C = x.shape
        Hp, Wp = -(-H // window) * window, -(-W // window) * window
        qkv = self.qkv(x)  # (B, H, W, 3C)
        if (Hp, Wp) != (H, W):
            padded = qkv.new_empty(B, Hp, Wp, 3 * C)
            # What qkv gives the zero tokens upstream pads with: its bias (or zero).
            fill = 0.0 if self.qkv.bias is None else self.qkv.bias
            padded[:, H:] = fill
            padded[:, :H, W:] = fill
            padded[:, :H, :W] = qkv
            qkv = padded
        nh, nw, heads = Hp // window, Wp // window, self.num_heads
        # (B, nh, win, nw, win, 3, heads, hd) -> (3, B, nh, nw, heads, win, win, hd): one copy
        # into windows in upstream's order (batch, window row, window column).
        qkv = qkv.view(B, nh, window, nw, window, 3, heads, -1).permute(5, 0, 1, 3, 6, 2, 4, 7)
        q, k, v = qkv.reshape(3, B * nh * nw, heads, window * window, -1).contiguous().unbind(0)
        out = self._attend(q, k, v, (window, window))  # (B*nh*nw, heads, win*win, hd)
        # (B, nh, nw, heads, win, win, hd) -> (B, nh, win, nw, win, heads, hd): one copy back.
        out = out.reshape(B, nh, nw, heads, window, window, -1).permute(0, 1, 4, 2, 5, 3, 6)
        out = out.reshape(B, Hp, Wp, C)[:, :H, :W]
        return self.proj(out)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        """q, k, v (N, heads, h*w, head_dim), contiguous -> (N, heads, h*w, head_dim)."""
        if not self.use_rel_pos:
            return F.scaled_dot_product_attention(q, k, v)
        rel_h, rel_w = rel_pos_terms(q, self.rel_pos_h, self.rel_pos_w, size)
        return rel_pos_attention(q, k, v, rel_h, rel_w)
