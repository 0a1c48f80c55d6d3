"""Where the model looks: the fusion projector's cross-attention, mapped back onto the image.

In the fusion projector every image token (a query) attends over the molecule's E3FP
tokens (the keys: one per heavy atom and E3FP level, -1 padding masked). The weights come
from the projector's opt-in `recording_attention()`, around the same `encode_images` call
that `generate` makes, so they are the weights of the tokens the LLM reads.

Token layout (DeepEncoder: one token per 64 px, row-major within a view):
- global view: the depiction padded to a square and resized to S x S; token (r, c) covers
  pixels [64r, 64r + 64) x [64c, 64c + 64) of it: a (S/64) x (S/64) grid;
- tiles mode: also the depiction stretched to cols x rows tiles of T px, each a
  (T/64) x (T/64) grid, row-major over the tile grid; placed in their grid they form a
  (rows T/64) x (cols T/64) token grid over the stretched image (the "mosaic").

The two reductions shown (`HEATMAP_REDUCTION`, `ATOM_REDUCTION` are the page's words):
- heatmap for atom a: per image token, its softmax weights to a's E3FP tokens summed over
  the levels, averaged over the heads: the share of that token's attention that goes to
  atom a (each token's shares over all atoms sum to 1);
- attention received by atom a: the weights summed over every image token of every view,
  every head and every level, divided by (tokens x heads), so all atoms' shares sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..projector.layout import tokens_per_side

Grid = Tuple[int, int]  # (cols, rows), as the image processor's `tile_grids`

HEATMAP_REDUCTION = (
    "Heatmap: for each image token (one 64 px patch of the view the encoder sees), the share of its "
    "cross-attention that goes to the chosen atom: softmax weights summed over the atom's E3FP levels "
    "and averaged over the heads (a token's shares over all atoms sum to 1). "
    "Colour scale: from the smallest to the largest share of any atom and token in that view (the "
    "numbers at the ends of the bar); one colour where they differ by no more than the rounding of the "
    "model's weights (uniform). A ring marks the chosen atom where the depiction was drawn here from "
    "the molecule's own atoms (not on an image you gave, nor on a SMILES given beside a file)."
)
ATOM_REDUCTION = (
    "3D colours: attention received by each heavy atom = softmax weights summed over all image tokens "
    "(global view and tiles), all heads and all E3FP levels, divided by tokens x heads, so the atoms' "
    "shares sum to 1, coloured from the smallest to the largest share (one colour where they differ by "
    "no more than rounding). Hydrogens have no E3FP tokens and stay grey."
)

# One colour scale for the heatmaps, the 3D view and the page's legend (YlOrBr, light -> dark).
COLOR_STOPS: Sequence[Tuple[float, str]] = (
    (0.0, "#fff7bc"), (0.25, "#fec44f"), (0.5, "#fe9929"), (0.75, "#d95f0e"), (1.0, "#8c2d04"),
)


@dataclass
class AttentionMaps:
    """One molecule's cross-attention, reduced for display.

    global_map (g, g, A): per global-view token, its share to each atom (mean over heads,
    sum over levels); tile_map (rows*t, cols*t, A) the same over the tiles mosaic, or None;
    received (A,): each atom's share of all attention (sums to 1); heads: head count;
    resolution: the relative spread rounding alone can make in these values
    (`rounding_resolution` of the recorded weights' dtype; 0: exact).
    """

    global_map: np.ndarray
    tile_map: Optional[np.ndarray]
    received: np.ndarray
    heads: int
    resolution: float = 0.0

    @property
    def atoms(self) -> int:
        return int(self.received.shape[0])


def attention_maps(calls: List[torch.Tensor], grid: Optional[Grid]) -> AttentionMaps:
    """The fusion projector's recorded calls for one image -> AttentionMaps.

    calls[0]: the global view, (1, heads, g*g, A, L); calls[1] (tiles mode, when the image
    has tiles, grid = (cols, rows)): all tiles, (cols*rows, heads, t*t, A, L).
    """
    expected = 1 if grid is None else 2
    if len(calls) != expected:
        raise ValueError(f"expected {expected} recorded projector call(s) for one image "
                         f"({'with' if grid else 'without'} tiles), got {len(calls)}")
    first = calls[0].float().cpu()
    if first.dim() != 5 or first.shape[0] != 1:
        raise ValueError(f"the global view's attention must be (1, heads, tokens, atoms, levels), "
                         f"got {tuple(first.shape)}")
    heads, atoms = first.shape[1], first.shape[3]
    g = tokens_per_side(first.shape[2], "the global view")
    per_atom = first[0].sum(dim=-1)  # (heads, g*g, A): levels summed
    global_map = per_atom.mean(dim=0).reshape(g, g, atoms)  # (g, g, A)
    total = per_atom.sum(dim=(0, 1))  # (A,)
    tokens = first.shape[2]
    tile_map = None
    if grid is not None:
        cols, rows = grid
        tiles = calls[1].float().cpu()
        if tiles.dim() != 5 or tiles.shape[0] != cols * rows or tuple(tiles.shape[1::2]) != (heads, atoms):
            raise ValueError(f"the tiles' attention must be ({cols * rows}, {heads}, tokens, {atoms}, levels) "
                             f"for a {cols}x{rows} grid, got {tuple(tiles.shape)}")
        t = tokens_per_side(tiles.shape[2], "a tile")
        tile_atoms = tiles.sum(dim=-1)  # (T, heads, t*t, A)
        total = total + tile_atoms.sum(dim=(0, 1, 2))
        tokens += tiles.shape[0] * tiles.shape[2]
        tile_map = (
            tile_atoms.mean(dim=1)  # (T, t*t, A)
            .reshape(rows, cols, t, t, atoms)  # (tile row, tile col, token row, token col, A)
            .permute(0, 2, 1, 3, 4)  # (tile row, token row, tile col, token col, A)
            .reshape(rows * t, cols * t, atoms)
        ).numpy()
    received = (total / (tokens * heads)).numpy()  # (A,)
    return AttentionMaps(global_map=global_map.numpy(), tile_map=tile_map, received=received, heads=heads,
                         resolution=rounding_resolution(calls[0].dtype))


# The maps are float32 sums of up to ~10^5 recorded weights (tiles mode: tiles x heads x
# tokens x levels); pairwise summation's rounding grows with log2 of that count, ~17 float32
# eps (2^-23 each): 2^-16 leaves room, and is far below what a colour can show.
SUM_RESOLUTION = 2.0 ** -16


def rounding_resolution(dtype: torch.dtype) -> float:
    """The relative spread rounding alone can make among values reduced from weights held
    in `dtype`: its eps (bf16 2^-7 = 0.78 %, fp16 2^-10), at least `SUM_RESOLUTION`.

    Each weight is rounded to the nearest `dtype` value, off by up to half an eps of its
    size, so two shares equal in exact arithmetic can come out up to one eps apart (sums and
    means of non-negative values keep that relative bound). Only that last rounding is
    counted (the logits' rounding before the softmax can add to it): a spread within it may
    be rounding alone, so it is no pattern to draw. Benzene's six carbons in bf16: global-view
    shares 16.650 % and 16.675 % (0.15 % of their size apart), drawn as three dark cells and
    one white one."""
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return max(float(eps), SUM_RESOLUTION)


def colorize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> RGB uint8 (..., 3) on COLOR_STOPS."""
    stops = np.array([s for s, _ in COLOR_STOPS])
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for _, c in COLOR_STOPS], dtype=np.float64)
    v = np.clip(values, 0.0, 1.0)
    out = np.stack([np.interp(v, stops, rgb[:, k]) for k in range(3)], axis=-1)
    return np.round(out).astype(np.uint8)


def value_range(values: np.ndarray, resolution: float = 0.0) -> Tuple[float, float]:
    """(smallest, largest) of `values`: the ends of a colour scale. Where they differ by no
    more than `resolution` of the largest magnitude (rounding: `rounding_resolution`), both
    ends are the values' mean: the values are uniform, drawn in one colour (`scaled`), and
    `is_uniform` says so. Stretched to the full scale, one bf16 step of benzene's shares was
    drawn as strong attention here and none there."""
    if not values.size:
        return 0.0, 0.0
    low, high = float(values.min()), float(values.max())
    if high - low <= resolution * max(abs(low), abs(high)):
        low = high = float(values.mean())
    return low, high


def is_uniform(low: float, high: float) -> bool:
    """Whether a scale's ends (`value_range`) are one value: no spread beyond rounding."""
    return not high > low


def percent_decimals(values: Sequence[float], least: int = 1, most: int = 9) -> int:
    """The fewest decimals (from `least` to `most`) that write `values` as percentages
    without two different values reading the same (a fixed 3 decimals of a fraction read
    "0.167 ... 0.167")."""
    distinct = sorted({float(v) for v in values})
    for decimals in range(least, most + 1):
        if len({f"{100 * v:.{decimals}f}" for v in distinct}) == len(distinct):
            return decimals
    return most


def percent(value: float, decimals: int = 1) -> str:
    """A share (a fraction of 1) as the page writes it: "16.7%"."""
    return f"{100 * value:.{decimals}f}%"


TICKS = 5  # values the 3D view's colour bar labels, its ends included


@dataclass(frozen=True)
class ShareScale:
    """One quantity's colour scale (`value_range`'s ends) and the decimals every text of it
    uses: the page's legend, the 3D colour bar's ticks, the atom list, the hover and the
    page's sentence (`share_scale`). Was: the legend took the decimals that told its two
    ends apart and the colour bar those of its ticks, so one quantity read "0.4% ... 0.6%"
    on one and "0.42% ... 0.58%" on the other."""

    low: float
    high: float
    decimals: int

    @property
    def uniform(self) -> bool:
        return is_uniform(self.low, self.high)

    def text(self, value: float) -> str:
        """A value of the scale; uniform, the one value the legend writes (the atoms' rounding
        spread read 16.7 % and 16.8 % next to "uniform")."""
        return percent(self.low if self.uniform else value, self.decimals)

    def ticks(self) -> List[float]:
        """The colour bar's labelled values: `TICKS` from low to high, or the one value when uniform."""
        if self.uniform or not (np.isfinite(self.low) and np.isfinite(self.high)):
            return [float(self.low)]
        return [float(v) for v in np.linspace(self.low, self.high, TICKS)]


def share_scale(values: np.ndarray, resolution: float = 0.0, named_top: bool = False) -> ShareScale:
    """`values`' ShareScale: the fewest decimals (`percent_decimals`) that keep the colour
    bar's ticks apart (so the ends too) and, with `named_top` (a page that names the largest
    value: "most: atom 40"), the largest value apart from the next one down, unless they
    differ by no more than `resolution` (rounding alone: which is larger is chance). Was:
    the decimals of the ends alone, and in a 200-atom chain the atom named "most" read 0.6%,
    as six others did."""
    low, high = value_range(values, resolution)
    scale = ShareScale(low, high, 1)
    if scale.uniform:
        return scale
    decimals = percent_decimals(scale.ticks())
    if named_top:
        flat = np.asarray(values, dtype=np.float64).ravel()
        top = float(flat.max())
        below = flat[top - flat > resolution * abs(top)]  # clearly below the largest
        if below.size:
            decimals = max(decimals, percent_decimals([float(below.max()), top]))
    return ShareScale(low, high, decimals)


def level_with_top(values: np.ndarray, resolution: float) -> List[int]:
    """Indices of the values other than the largest (`argmax`) that lie within `resolution` of
    it (rounding alone: `share_scale` gives no decimals to tell them from it): the page names
    them beside "most", where they read as the largest does."""
    top = int(np.argmax(values))
    peak = float(values[top])
    return [int(k) for k in np.flatnonzero(peak - values <= resolution * abs(peak)) if k != top]


def received_scale(received: np.ndarray, resolution: float) -> ShareScale:
    """The scale of "attention received" (the atoms' shares), one for the legend, the atom
    list, the sentence and the 3D view's colours, colour bar and hover: it names the most
    attended atom."""
    return share_scale(received, resolution, named_top=True)


def scaled(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """`values` mapped to [0, 1] between low and high (all 0, one colour, when they are
    equal: `value_range` makes them so for values uniform within rounding)."""
    if high <= low:
        return np.zeros_like(values, dtype=np.float64)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def heatmap_overlay(view: Image.Image, token_map: np.ndarray, low: float, high: float,
                    size: int = 768) -> Image.Image:
    """The view with one atom's token shares laid over it, one cell per token.

    token_map (rows, cols): shares of each token (`AttentionMaps.global_map[..., a]` or
    `.tile_map[..., a]`); low, high: the values drawn lightest and darkest (`value_range` of
    the whole map, all atoms, so atoms compare on one scale). The cell colour's opacity grows with
    the share, so the drawing stays readable where the atom gets little attention; thin
    lines mark the token grid. Returned at `size` px on the longer side.
    """
    rows, cols = token_map.shape
    scale = size / max(view.size)
    width, height = round(view.width * scale), round(view.height * scale)
    base = view.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    level = scaled(token_map, low, high)  # (rows, cols) in [0, 1]
    color = colorize(level)  # (rows, cols, 3)
    alpha = np.round(255 * (0.05 + 0.55 * level)).astype(np.uint8)  # (rows, cols)
    cells = Image.fromarray(np.dstack([color, alpha]), mode="RGBA")  # one pixel per token
    overlay = cells.resize((width, height), Image.Resampling.NEAREST)  # token cells, no smoothing
    out = Image.alpha_composite(base.convert("RGBA"), overlay)
    draw = ImageDraw.Draw(out)
    for c in range(1, cols):
        x = round(c * width / cols)
        draw.line([(x, 0), (x, height)], fill=(120, 120, 120, 110), width=1)
    for r in range(1, rows):
        y = round(r * height / rows)
        draw.line([(0, y), (width, y)], fill=(120, 120, 120, 110), width=1)
    return out.convert("RGB")


def mark_atom(image: Image.Image, xy: np.ndarray) -> Image.Image:
    """`image` (a view of the square depiction, any size) with a ring around the point
    `xy` = (x, y) given as fractions of the side: the chosen atom. Black inside white, so it
    shows on the drawing and on every heatmap colour."""
    out = image.convert("RGB")  # a copy: the caller's image is kept
    if not np.all(np.isfinite(xy)):
        return out
    x, y = float(xy[0]) * out.width, float(xy[1]) * out.height
    radius = max(6.0, 0.035 * max(out.size))
    draw = ImageDraw.Draw(out)
    for r, colour, width in ((radius + 2, (255, 255, 255), 5), (radius, (0, 0, 0), 2)):
        draw.ellipse([(x - r, y - r), (x + r, y + r)], outline=colour, width=width)
    return out
