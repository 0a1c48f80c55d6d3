"""The LLM token layout of one image, and the base class every projector shares.

Layout (DeepSeek-OCR's, which DeepMoLM keeps), for one image:

    local mosaic: the tiles placed in their grid form rows*t token rows of cols*t tokens
                  (t = tokens per tile side); each row is followed by `image_newline`
    global view:  its g rows of g tokens, each row followed by `image_newline`
    separator:    one `view_seperator` (sic, the checkpoint spelling)

so an image takes g*(g+1) + 1 positions without tiles (273 at 1024 px) plus
rows*t*(cols*t + 1) with them (693 for 1024 px + 2x2 tiles of 640 px): exactly
`deepmolm_plugin.encoder.image_processor.num_llm_positions_for_grid`.

`ProjectorBase` owns the two layout vectors and the shared call path (checks, dtype and
device, `embed_images`); each projector only implements `project`.
`full_parameters` gives a projector's initialisation whole tensors under DeepSpeed ZeRO-3.
"""

from __future__ import annotations

import contextlib
import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .config import ProjectorConfig
from ..molecule_fp import validate_batch
from .validation import check_image_features
from .weights import check_projector_state

Grid = Tuple[int, int]  # (cols, rows), as the image processor's `tile_grids`


def full_parameters(*modules: nn.Module):
    """A context in which `modules`' parameters are whole tensors, to initialise them.

    Under DeepSpeed ZeRO-3's `zero.Init` (transformers builds a model in it when a ZeRO-3
    config is alive: `from_pretrained` of a DeepMoLM checkpoint in a `--deepspeed zero3.json`
    run) each submodule's parameters are partitioned as soon as that submodule is built, so
    the parent initialising them afterwards found empty tensors (`weight[0]`: IndexError).
    Here they are gathered, and on leaving, rank 0's values are partitioned back to every
    rank (modifier_rank=0). Outside ZeRO-3 this does nothing: the same ops run on the same
    tensors, and a seed gives the same weights as before."""
    partitioned = [p for m in modules for p in m.parameters() if hasattr(p, "ds_id")]
    if not partitioned:
        return contextlib.nullcontext()
    import deepspeed  # optional: only reached when DeepSpeed partitioned these (ds_id)

    return deepspeed.zero.GatheredParameters(partitioned, modifier_rank=0)


def tokens_per_side(num_tokens: int, what: str) -> int:
    """Side of a square token grid; a non-square count is an error."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens or side < 1:
        raise ValueError(f"{what} has {num_tokens} tokens, not a square grid")
    return side


def assemble_tokens(
    global_tokens: torch.Tensor,
    tile_tokens: Optional[torch.Tensor],
    grid: Optional[Grid],
    newline: torch.Tensor,
    separator: torch.Tensor,
) -> torch.Tensor:
    """One image's projected views -> its LLM positions (P, H), in the layout above.

    global_tokens (g*g, H); tile_tokens (cols*rows, t*t, H) in row-major tile order, or
    None (or zero tiles) when grid is None; newline (H,); separator (H,).
    """
    if global_tokens.dim() != 2:
        raise ValueError(f"global_tokens must be (tokens, H), got shape {tuple(global_tokens.shape)}")
    hidden = global_tokens.shape[1]
    for name, vec in (("newline", newline), ("separator", separator)):
        if vec.shape != (hidden,) or not vec.is_floating_point():
            raise ValueError(f"{name} must be a ({hidden},) float vector like the tokens, got {tuple(vec.shape)} {vec.dtype}")
    # Under autocast (`--bf16 True` training: the host keeps the projector's parameters in
    # fp32 and runs its matmuls in bf16) the tokens come out bf16 while these two stay fp32
    # parameters; they join the tokens in the tokens' dtype (the cast is differentiable).
    newline, separator = newline.to(global_tokens.dtype), separator.to(global_tokens.dtype)
    g = tokens_per_side(global_tokens.shape[0], "the global view")
    glob = global_tokens.view(g, g, hidden)  # (g, g, H)
    glob = torch.cat([glob, newline.view(1, 1, hidden).expand(g, 1, hidden)], dim=1)  # (g, g+1, H)
    parts = [glob.reshape(-1, hidden), separator.view(1, hidden)]  # [(g*(g+1), H), (1, H)]

    num_tiles = 0 if tile_tokens is None else tile_tokens.shape[0]
    if grid is None:
        if num_tiles:
            raise ValueError(f"{num_tiles} tiles given without a tile grid")
        return torch.cat(parts, dim=0)  # (g*(g+1) + 1, H)

    cols, rows = grid
    if cols < 1 or rows < 1:
        raise ValueError(f"tile grid must be at least 1x1, got {grid}")
    if tile_tokens is None or tile_tokens.dim() != 3 or tile_tokens.shape[2] != hidden:
        got = None if tile_tokens is None else tuple(tile_tokens.shape)
        raise ValueError(f"tile grid {grid} needs tile_tokens of shape (tiles, tokens, {hidden}), got {got}")
    if num_tiles != cols * rows:
        raise ValueError(f"tile grid {grid} (cols, rows) needs {cols * rows} tiles, got {num_tiles}")
    t = tokens_per_side(tile_tokens.shape[1], "a tile")
    mosaic = (
        tile_tokens.view(rows, cols, t, t, hidden)  # (tile row, tile col, token row, token col, H)
        .permute(0, 2, 1, 3, 4)  # (tile row, token row, tile col, token col, H)
        .reshape(rows * t, cols * t, hidden)
    )
    mosaic = torch.cat(
        [mosaic, newline.view(1, 1, hidden).expand(rows * t, 1, hidden)], dim=1
    )  # (rows*t, cols*t + 1, H)
    return torch.cat([mosaic.reshape(-1, hidden)] + parts, dim=0)  # (P, H)


class ProjectorBase(nn.Module):
    """Shared by all projectors: the layout vectors, input checks and `embed_images`.

    forward(image_features (B, N, mm_hidden_size), molecule_fp (B, atoms, levels) or None,
    return_attention=False) -> (B, N, H); with return_attention, (tokens, attention) where
    attention is (B, N, atoms) (projectors that have attention only).

    Inputs are moved to the parameters' device and image features cast to their dtype.
    """

    projector_type: str = ""
    uses_molecule: bool = True  # False: an image-only ablation that ignores molecule_fp
    has_attention: bool = False

    def __init__(self, config: ProjectorConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden_size
        self.image_newline = nn.Parameter(torch.empty(hidden))  # (H,)
        self.view_seperator = nn.Parameter(torch.empty(hidden))  # (H,), sic
        nn.init.normal_(self.image_newline, std=hidden**-0.5)
        nn.init.normal_(self.view_seperator, std=hidden**-0.5)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """nn.Module.load_state_dict after `check_projector_state`: the host loads a stage-1
        adapter through this; torch alone cast integer or NaN weights in silently and named
        neither the adapter's projector type nor the setting behind a wrong shape."""
        check_projector_state(self, state_dict, strict=strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @property
    def dtype(self) -> torch.dtype:
        return self.image_newline.dtype

    @property
    def device(self) -> torch.device:
        return self.image_newline.device

    def project(
        self, image_features: torch.Tensor, molecule_fp: Optional[torch.Tensor], return_attention: bool
    ):
        """Checked (B, N, mm_hidden_size) features [+ (B, A, L) hashes] -> (B, N, H)."""
        raise NotImplementedError

    def forward(
        self,
        image_features: torch.Tensor,
        molecule_fp: Optional[torch.Tensor] = None,
        return_attention: bool = False,
    ):
        check_image_features(image_features, self.config.mm_hidden_size)
        if return_attention and not self.has_attention:
            raise ValueError(f"the {self.projector_type!r} projector has no attention weights to return")
        if molecule_fp is None and self.uses_molecule:
            raise ValueError(f"the {self.projector_type!r} projector needs molecule_fp")
        if molecule_fp is not None:
            # Checked even where unused, so image-only ablations see the same data rules.
            validate_batch(molecule_fp, image_features.shape[0], self.config.fingerprint)
            molecule_fp = molecule_fp.to(self.device) if self.uses_molecule else None
        x = image_features.to(device=self.device, dtype=self.dtype)  # (B, N, mm_hidden_size)
        return self.project(x, molecule_fp, return_attention)

    def embed_images(
        self,
        global_features: torch.Tensor,
        molecule_fp: Optional[torch.Tensor] = None,
        tile_features: Optional[Sequence[Optional[torch.Tensor]]] = None,
        tile_grids: Optional[Sequence[Optional[Grid]]] = None,
        blank_tiles: Optional[torch.Tensor] = None,
    ) -> List[torch.Tensor]:
        """Project every view of every sample and lay each image out for the LLM.

        global_features (B, g*g, mm_hidden_size); molecule_fp (B, atoms, levels);
        tile_features: None, or per sample a (T_i, t*t, mm_hidden_size) tensor (None or
        T_i = 0 when the sample has no tiles); tile_grids: per sample (cols, rows) or None,
        as the image processor returns them. Every view (global and tiles) of sample i is
        projected with molecule i. Returns B tensors (P_i, H).

        blank_tiles: (1, t*t, mm_hidden_size) features of a blank tile, given instead of
        tiles by a rank with none while other ranks project theirs under DeepSpeed ZeRO-3
        (the model's `_blank_tile`): projected where tiles are, with sample 0's molecule,
        and added times zero, so that this rank's weight gathers, forward and backward,
        follow the others' in number and order. It changes no value.
        """
        global_tokens = self(global_features, molecule_fp)  # (B, g*g, H)
        if blank_tiles is not None:
            if tile_features is not None:
                raise ValueError("blank_tiles stand in for tiles: give one or the other")
            blank = self(blank_tiles, None if molecule_fp is None else molecule_fp[:1])  # (1, t*t, H)
            global_tokens = global_tokens + 0 * blank.sum()
        batch = global_tokens.shape[0]
        tiles_of: List[Optional[torch.Tensor]] = [None] * batch
        grids: List[Optional[Grid]] = [None] * batch
        if (tile_features is None) != (tile_grids is None):
            raise ValueError("tile_features and tile_grids must be given together")
        if tile_features is not None:
            if len(tile_features) != batch or len(tile_grids) != batch:
                raise ValueError(
                    f"{batch} images but {len(tile_features)} tile_features and "
                    f"{len(tile_grids)} tile_grids entries"
                )
            grids = [None if g is None else (int(g[0]), int(g[1])) for g in tile_grids]
            counts = [0 if f is None else f.shape[0] for f in tile_features]
            for i, (grid, count) in enumerate(zip(grids, counts)):
                if (grid is None) != (count == 0):
                    raise ValueError(f"sample {i}: tile grid {grid} but {count} tile views")
            views = [f for f, count in zip(tile_features, counts) if count]  # (T_i, t*t, C) each
            if views:
                sizes = sorted({tuple(v.shape[1:]) for v in views})
                if len(sizes) != 1:
                    raise ValueError(f"tile views of different sizes in one batch: {sizes}")
                tile_mol = None  # (sum T_i, A, L): each tile gets its own sample's molecule
                if molecule_fp is not None:
                    owner = torch.repeat_interleave(
                        torch.arange(batch, device=molecule_fp.device),
                        torch.tensor(counts, device=molecule_fp.device),
                    )
                    tile_mol = molecule_fp[owner]
                tile_tokens = self(torch.cat(views, dim=0), tile_mol)  # (sum T_i, t*t, H)
                tiles_of = list(torch.split(tile_tokens, counts, dim=0))
        return [
            assemble_tokens(global_tokens[i], tiles_of[i], grids[i], self.image_newline, self.view_seperator)
            for i in range(batch)
        ]
