"""SAM's attention with decomposed relative positions, computed near the matmul bound.

segment-anything's Attention (MViTv2 decomposed rel-pos) adds to every score
    rel_h[q, kh] + rel_w[q, kw]      q = (qh, qw) a query, k = (kh, kw) a key,
where rel_h = q . Rh[qh, kh] and rel_w = q . Rw[qw, kw] are small (h*w x h and h*w x w
per head). Upstream builds the whole (B, heads, h*w, h*w) fp32 score matrix; DeepSeek-OCR
and transformers build the whole bias as an SDPA mask. At 1024 px a global block has
4096 tokens, so either is 12 x 4096^2 floats = 805 MB per block, written and read again
(and, from einsum's output layout, copied once more): that, not the matmuls, was most of a
global block's time. Here the bias exists only for a piece at a time, a few (batch, head)
pairs or a band of one pair's query rows, small enough to stay in cache (`MASK_ELEMENTS`),
built by one broadcasting add into a reused buffer, and each piece goes through
scaled_dot_product_attention (PyTorch's fused CPU/CUDA kernels take an additive mask).
Same math as upstream; the pieces only change which queries run together.

On a GPU the pieces' bias kernels and launches cost more than the attention itself, so
there (`folds`) a global block folds the two terms into q and k instead,
    [q / sqrt(dim), rel_h, rel_w] . [k, onehot(key row), onehot(key column)],
and runs one unmasked fused-attention call (`folded_rel_pos_attention`).

Windowed blocks: upstream pads the (B, H, W, C) map with zeros to a multiple of the window
and runs qkv and proj on the padding too (4900 instead of 4096 tokens at 1024 px, 18 %
more of those matmuls). A zero token's qkv is exactly qkv's bias, so qkv runs on the real
tokens and the padding is filled with the bias; proj runs after cropping. qkv goes from
the map into windows in one copy (the padding filled in place: no padded map first), the
output back into the cropped map in one copy.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from segment_anything.modeling.image_encoder import Attention, get_rel_pos

# Bias elements built at once: 4 M (16 MiB fp32). The bias is built and read back by the
# attention kernel while it is still in cache, so the piece is small: at 1024 px, batch 1,
# a global block runs one (batch, head) pair at a time in bands of 16 of its 64 query rows
# (48 pieces), a windowed block 109 of its 300 (window, head) pairs at once. Measured on a
# 2-core AVX2 EPYC, one global block: 0.41 s this way, 0.46 s with bands of 10 rows over
# all heads at once (32 M elements), 0.55 s with one row over all heads (per-call
# overhead), 0.35 s for the same attention with no bias at all.
MASK_ELEMENTS = 1 << 22
# On a GPU the bias costs little memory time and every piece is a kernel launch that
# should fill the device: 128 M elements (256 MiB bf16), so batch 1 is two calls per global
# block and batch 32 is 48, where the CPU's budget would make them 1536 small ones.
MASK_ELEMENTS_GPU = 1 << 27


def mask_budget(device: torch.device) -> int:
    """Bias elements built at once on `device`: MASK_ELEMENTS on CPU, MASK_ELEMENTS_GPU else."""
    return MASK_ELEMENTS if device.type == "cpu" else MASK_ELEMENTS_GPU


def rel_pos_table(size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """(2*size - 1, dim) table -> (size, size, dim): entry [i, j] = table[i - j + size - 1].

    segment-anything's get_rel_pos for square attention, whose table is only
    interpolated for a grid it was not trained at (then upstream's code runs); the index
    itself is built once per size and device instead of on every call.
    """
    if rel_pos.shape[0] != 2 * size - 1:
        return get_rel_pos(size, size, rel_pos)

    def build() -> torch.Tensor:
        coords = torch.arange(size, device=rel_pos.device)
        return (coords[:, None] - coords[None, :] + size - 1).reshape(-1)

    index = _cached(_REL_INDEX, (size, rel_pos.device), build)
    return rel_pos.index_select(0, index).view(size, size, -1)


def _cached(cache: dict, key: tuple, build) -> torch.Tensor:
    """cache[key], made by build() on first use. Inside a compiled graph it is built there
    instead (a constant the compiler folds): a tensor the graph stored in the cache would
    be one of its outputs, which a CUDA graph overwrites on its next replay. Built as a
    normal tensor even when the first call runs under inference_mode (chat, eval, a
    benchmark): an inference tensor in the cache made every later forward with autograd
    in the process fail ("Inference tensors cannot be saved for backward")."""
    if torch.compiler.is_compiling():
        return build()
    if key not in cache:
        with torch.inference_mode(False):
            cache[key] = build()
    return cache[key]


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
        bias = rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)  # row-major inputs (slices too) -> contiguous sum
    else:
        bias = torch.add(rel_h.unsqueeze(-1), rel_w.unsqueeze(-2), out=out[: rel_h.numel() * shape[-1]].view(shape))
    return bias.view(B, heads, r * w, h * shape[-1])


def rel_pos_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor
) -> torch.Tensor:
    """softmax(q k^T / sqrt(dim) + rel_h + rel_w) v, a piece of the bias at a time.

    q, k, v: (B, heads, h*w, dim) contiguous; rel_h, rel_w from `rel_pos_terms`.
    Returns (B, heads, h*w, dim). A piece is a group of (batch, head) pairs with all their
    query rows, or one pair with a band of its rows, so that its bias has at most
    `mask_budget(device)` elements (see MASK_ELEMENTS).
    """
    B, heads, rows, w, h = rel_h.shape
    shape = q.shape
    # Every (batch, head) pair as one head of a single batch: pieces slice one dimension.
    q, k, v, rel_h, rel_w = (t.reshape(1, B * heads, *t.shape[2:]) for t in (q, k, v, rel_h, rel_w))
    groups = _pieces(B * heads, rows, w * k.shape[2], mask_budget(q.device))

    def attend(pairs: slice, band: slice, buffer: Optional[torch.Tensor] = None) -> torch.Tensor:
        mask = rel_pos_mask(rel_h[:, pairs, band], rel_w[:, pairs, band], buffer)  # (1, n, band*w, h*w)
        queries = q[:, pairs, band.start * w : band.stop * w]
        return F.scaled_dot_product_attention(queries, k[:, pairs], v[:, pairs], attn_mask=mask)

    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, rel_h, rel_w)):
        # autograd: each piece a node of its own, joined by cat
        out = torch.cat([torch.cat([attend(pairs, band) for band in bands], dim=2) for pairs, bands in groups], 1)
        return out.view(shape)
    largest = max((p.stop - p.start) * (b.stop - b.start) for p, bands in groups for b in bands)
    buffer = q.new_empty(largest * w * k.shape[2])  # every piece's bias, in turn
    out = torch.empty_like(q)
    for pairs, bands in groups:
        for band in bands:
            out[:, pairs, band.start * w : band.stop * w] = attend(pairs, band, buffer)
    return out.view(shape)


def folded_rel_pos_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor,
    pad_value: bool = True,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(dim) + rel_h + rel_w) v as one bias-free SDPA call.

    The two terms enter the scores as extra channels of q and k:
        [q / sqrt(dim), rel_h[q], rel_w[q]] . [k, onehot(key row), onehot(key column)]
    so no bias exists in memory and the fused kernels run unmasked, at (dim + h + w) / dim
    times the QK^T work (3x at a 64 x 64 global grid, 1.4x in 14 x 14 windows).
    q, k, v: (N, heads, h*w, dim); rel_h, rel_w from `rel_pos_terms`. Returns like q.

    The folded width is padded with zero channels to a multiple of 8, and (`pad_value`) v
    with zero channels to the same width, so that the flash kernels (which want one head
    size for q, k and v) take it; the padding's outputs are dropped. Without it only the
    kernels that take a smaller v (cuDNN, memory-efficient, math) can run: on the H200
    cuDNN's took a global block in 8.1 ms against 9.7 ms padded, but where cuDNN's fused
    attention is not available the memory-efficient kernel took 28 ms, against 18 ms for
    flash on the padded v and 24 ms for the bias pieces. Padded is the default for that.
    """
    N, heads, rows, w, h = rel_h.shape
    dim = q.shape[-1]
    width = -(-(dim + h + w) // 8) * 8
    keys = _key_positions(h, w, width - dim, q.dtype, q.device)  # (h*w, width - dim)
    pad = width - dim - h - w
    q_parts = [q * dim**-0.5, rel_h.view(N, heads, rows * w, h), rel_w.view(N, heads, rows * w, w)]
    if pad:
        q_parts.append(q.new_zeros(()).expand(N, heads, rows * w, pad))
    folded_q = torch.cat(q_parts, dim=-1)  # (N, heads, h*w, width)
    folded_k = torch.cat([k, keys.expand(N, heads, -1, -1)], dim=-1)  # (N, heads, h*w, width)
    folded_v = F.pad(v, (0, width - dim)) if pad_value else v  # (N, heads, h*w, width or dim)
    out = F.scaled_dot_product_attention(folded_q, folded_k, folded_v, scale=1.0)
    return out[..., :dim]


def _key_positions(h: int, w: int, channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(h*w, channels): key (y, x)'s one-hot row y in channels [0, h), one-hot column x in
    [h, h + w), zeros after; cached per shape, dtype and device (`_cached`)."""
    def build() -> torch.Tensor:
        channel = torch.arange(channels, device=device)
        y, x = torch.arange(h, device=device), torch.arange(w, device=device)
        hot = (channel == y[:, None, None]) | (channel == h + x[None, :, None])  # (h, w, channels)
        return hot.to(dtype).view(h * w, channels)

    return _cached(_KEY_POSITIONS, (h, w, channels, dtype, device), build)


_KEY_POSITIONS: dict = {}  # (h, w, channels, dtype, device) -> (h*w, channels) one-hot key positions


def _pieces(pairs: int, rows: int, per_row: int, budget: int) -> List[Tuple[slice, List[slice]]]:
    """Split (pairs x rows) query rows, `per_row` bias elements each, into pieces of at most
    `budget` elements: [(pair slice, [row band slices])], pairs grouped whole where one fits."""
    per_pair = rows * per_row
    if per_pair <= budget:
        step = budget // per_pair
        return [(slice(p, min(p + step, pairs)), [slice(0, rows)]) for p in range(0, pairs, step)]
    step = max(1, budget // per_row)
    bands = [slice(r, min(r + step, rows)) for r in range(0, rows, step)]
    return [(slice(p, p + 1), bands) for p in range(pairs)]


def _window_regions(H: int, W: int, window: int):
    """The map cut into at most four regions of whole or partial windows: yields
    (row slice, column slice, index into the tiled view (B, nh, win, nw, win, ...)), where
    the region of the (B, H, W, ...) map and the indexed tiles have the same elements in
    an order a view converts between."""
    def parts(size: int):
        whole, rest = divmod(size, window)
        if whole:  # rows [0, whole*win): window rows 0..whole-1, every row in them
            yield slice(0, whole * window), (slice(0, whole), slice(None))
        if rest:  # the last, partial window row: its first `rest` rows
            yield slice(whole * window, size), (whole, slice(0, rest))

    for rows, row_index in parts(H):
        for cols, col_index in parts(W):
            yield rows, cols, (slice(None), *row_index, *col_index)


def folds(way: str, device: torch.device, windowed: bool) -> bool:
    """Whether a block's rel-pos terms go into q and k (`folded_rel_pos_attention`) rather
    than into a bias built in pieces (`rel_pos_attention`), for DeepEncoderConfig.sam_attention
    `way`: "folded" always, "pieces" never, "sdpa" (the default) where it was measured faster.

    Measured per block at 1024 px (scripts/bench_sam_attention.py): on one H200 in bf16 at
    32 views, a global block's attention took 23.8 ms in pieces and 9.7 ms folded (8.1 ms
    with v unpadded), a windowed block's 2.9 ms in pieces and 3.7 ms folded (its 14 x 14
    windows' bias is small; folding adds 44 % to its QK^T work); on a 2-core AVX2 CPU in
    fp32 a global block took 0.74 s in pieces and 1.45 s folded (there the extra QK^T work
    costs what it says). So "sdpa" folds the global blocks off the CPU only.
    """
    if way == "folded":
        return True
    if way == "pieces":
        return False
    return device.type != "cpu" and not windowed


class SdpaAttention(Attention):
    """segment-anything's Attention (same parameters), computed by `rel_pos_attention` or
    `folded_rel_pos_attention` (`folds` decides per block kind and device)."""

    way = "sdpa"  # DeepEncoderConfig.sam_attention, set per module by SamEncoder (see `folds`)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global attention: x (B, H, W, C) -> (B, H, W, C)."""
        B, H, W, C = x.shape
        qkv = self.qkv(x).view(B, H * W, 3, self.num_heads, -1)
        # One copy to (3, B, heads, H*W, head_dim): q, k, v contiguous, as the fused kernels
        # want them (they would otherwise copy k and v again for every band).
        q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        out = self._attend(q, k, v, (H, W), windowed=False)  # (B, heads, H*W, head_dim)
        return self.proj(out.transpose(1, 2).reshape(B, H, W, C))

    def windowed(self, x: torch.Tensor, window: int) -> torch.Tensor:
        """Attention within window x window tiles: x (B, H, W, C) -> (B, H, W, C).

        Equal to upstream's window_partition -> attention -> window_unpartition, with qkv
        and proj run on real tokens only (see the module docstring).
        """
        B, H, W, C = x.shape
        nh, nw, heads = -(-H // window), -(-W // window), self.num_heads
        qkv = self.qkv(x).view(B, H, W, 3, heads, C // heads)
        # Straight from the map into windows, q, k, v each (B*nh*nw, heads, win*win, hd)
        # contiguous as the fused kernels want them, in upstream's window order (batch,
        # window row, window column): one copy, padding included.
        windows = qkv.new_empty(3, B, nh, nw, heads, window, window, C // heads)
        tiled = windows.permute(1, 2, 5, 3, 6, 0, 4, 7)  # (B, nh, win, nw, win, 3, heads, hd), the padded map
        for rows, cols, tile_index in _window_regions(H, W, window):
            target = tiled[tile_index]
            target.copy_(qkv[:, rows, cols].reshape(target.shape))
        if (nh * window, nw * window) != (H, W):
            # What qkv gives the zero tokens upstream pads with: its bias (or zero).
            fill = 0.0 if self.qkv.bias is None else self.qkv.bias.view(3, heads, -1)
            tiled[:, -1, H - (nh - 1) * window :] = fill
            tiled[:, :, :, -1, W - (nw - 1) * window :] = fill
        q, k, v = windows.view(3, B * nh * nw, heads, window * window, -1).unbind(0)
        out = self._attend(q, k, v, (window, window), windowed=True)  # (B*nh*nw, heads, win*win, hd)
        # Back to the map, cropped, tokens' channels (heads, hd) adjacent for proj: one copy.
        tiled = out.view(B, nh, nw, heads, window, window, -1).permute(0, 1, 4, 2, 5, 3, 6)
        merged = out.new_empty(B, H, W, heads, C // heads)
        for rows, cols, tile_index in _window_regions(H, W, window):
            source = tiled[tile_index]
            merged[:, rows, cols].view(source.shape).copy_(source)
        return self.proj(merged.view(B, H, W, C))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: Tuple[int, int],
                windowed: bool) -> torch.Tensor:
        """q, k, v (N, heads, h*w, head_dim), contiguous -> (N, heads, h*w, head_dim)."""
        if not self.use_rel_pos:
            return F.scaled_dot_product_attention(q, k, v)
        rel_h, rel_w = rel_pos_terms(q, self.rel_pos_h, self.rel_pos_w, size)
        attend = folded_rel_pos_attention if folds(self.way, q.device, windowed) else rel_pos_attention
        return attend(q, k, v, rel_h, rel_w)

