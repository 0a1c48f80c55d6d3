"""Projectors: the original DeepMoLM state dict, padding invariance, gradients, layout, checks."""

import types

import pytest
import torch

from deepmolm_plugin.encoder.image_processor import num_llm_positions_for_grid
from deepmolm_plugin.projector import (
    PROJECTORS,
    FusionProjector,
    ProjectorConfig,
    assemble_tokens,
    build_projector,
)

# Tiny sizes: C = 12 image channels, H = 16, 32 hash bits, 4 levels.
C, H, BITS, LEVELS = 12, 16, 32, 4
MOLECULE_PROJECTORS = ("fusion", "concat")


def tiny_config(**overrides) -> ProjectorConfig:
    fields = dict(hidden_size=H, mm_hidden_size=C, num_heads=2, fp_bits=BITS, fp_levels=LEVELS)
    fields.update(overrides)
    return ProjectorConfig(**fields)


def molecule(atoms: int) -> torch.Tensor:
    """(atoms, LEVELS) random hashes with one level missing (-1), as E3FP can give."""
    fp = torch.randint(0, BITS, (atoms, LEVELS))
    fp[-1, -1] = -1
    return fp


def batch_fp(mols, max_atoms=None) -> torch.Tensor:
    """Pad (atoms_i, L) molecules with -1 to (B, max_atoms, L)."""
    max_atoms = max_atoms or max(m.shape[0] for m in mols)
    out = torch.full((len(mols), max_atoms, LEVELS), -1, dtype=torch.long)
    for i, m in enumerate(mols):
        out[i, : m.shape[0]] = m
    return out


# --------------------------------------------------------------------------------------
# State dict (the original DeepMoLM projector's names and shapes)
# --------------------------------------------------------------------------------------

# DeepMoLM's fusion projector at Qwen2-0.5B width (H = 896), 8 heads, 4096 bits.
RELEASED_FUSION_SHAPES = {
    "image_proj.weight": (896, 2048),
    "image_proj.bias": (896,),
    "molecule_embed.weight": (4097, 896),
    "cross_attn.in_proj_weight": (2688, 896),
    "cross_attn.in_proj_bias": (2688,),
    "cross_attn.out_proj.weight": (896, 896),
    "cross_attn.out_proj.bias": (896,),
    "cross_attn_norm.weight": (896,),
    "cross_attn_norm.bias": (896,),
    "ffn.0.weight": (3584, 896),
    "ffn.0.bias": (3584,),
    "ffn.2.weight": (896, 3584),
    "ffn.2.bias": (896,),
    "ffn_norm.weight": (896,),
    "ffn_norm.bias": (896,),
    "image_newline": (896,),
    "view_seperator": (896,),
}


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_fusion_state_dict_matches_design_at_real_size(dropout):
    with torch.device("meta"):  # shapes only, no memory, no compute
        proj = build_projector("fusion", ProjectorConfig(hidden_size=896, dropout=dropout))
    shapes = {k: tuple(v.shape) for k, v in proj.state_dict().items()}
    assert shapes == RELEASED_FUSION_SHAPES  # dropout does not shift ffn indices
    assert proj.cross_attn.num_heads == 8 and proj.cross_attn.batch_first
    assert proj.molecule_embed.padding_idx == 0


def test_released_fusion_state_dict_loads_strictly():
    with torch.device("meta"):
        proj = build_projector("fusion", ProjectorConfig(hidden_size=896))
        released = {k: torch.empty(s) for k, s in RELEASED_FUSION_SHAPES.items()}
    proj.load_state_dict(released, strict=True, assign=True)

    # Tiny size, real values: a loaded projector computes what the saved one did.
    torch.manual_seed(1)
    saved = FusionProjector(tiny_config())
    state = {k: v.clone() for k, v in saved.state_dict().items()}
    assert set(state) == set(RELEASED_FUSION_SHAPES)
    torch.manual_seed(2)
    loaded = FusionProjector(tiny_config())
    loaded.load_state_dict(state, strict=True)
    x, fp = torch.randn(2, 4, C), batch_fp([molecule(3), molecule(5)])
    torch.testing.assert_close(loaded.eval()(x, fp), saved.eval()(x, fp), rtol=0, atol=0)


def test_ablation_state_dicts():
    shapes = {
        name: {k: tuple(v.shape) for k, v in build_projector(name, tiny_config()).state_dict().items()}
        for name in ("linear", "mlp2x_gelu", "concat")
    }
    layout = {"image_newline": (H,), "view_seperator": (H,)}
    assert shapes["linear"] == {**layout, "layers.weight": (H, C), "layers.bias": (H,)}
    assert shapes["mlp2x_gelu"] == {
        **layout, "layers.0.weight": (H, C), "layers.0.bias": (H,),
        "layers.2.weight": (H, H), "layers.2.bias": (H,),
    }
    e = H // 4
    assert shapes["concat"] == {
        **layout, "molecule_embed.weight": (BITS + 1, e), "layers.0.weight": (H, C + e),
        "layers.0.bias": (H,), "layers.2.weight": (H, H), "layers.2.bias": (H,),
    }


# --------------------------------------------------------------------------------------
# Registry and config
# --------------------------------------------------------------------------------------


def test_registry_and_unknown_name():
    assert set(PROJECTORS) == {"fusion", "concat", "linear", "mlp2x_gelu"}
    for name, cls in PROJECTORS.items():
        proj = build_projector(name, tiny_config())
        assert type(proj) is cls and proj.projector_type == name
    with pytest.raises(ValueError, match=r"unknown projector 'mlp3x'.*'concat'.*'fusion'"):
        build_projector("mlp3x", tiny_config())


def test_config_from_host_config():
    host = types.SimpleNamespace(
        hidden_size=24, mm_hidden_size=C, fusion_heads=3, fp_bits=64, fp_levels=2,
        fusion_dropout=0.25, concat_embed_dim=None, num_attention_heads=7,
    )
    cfg = ProjectorConfig.from_host_config(host)
    assert (cfg.hidden_size, cfg.mm_hidden_size, cfg.num_heads, cfg.fp_bits, cfg.fp_levels) == (24, C, 3, 64, 2)
    assert cfg.dropout == 0.25 and cfg.molecule_embed_dim == 6
    assert build_projector("fusion", host).cross_attn.num_heads == 3  # host config accepted
    defaults = ProjectorConfig.from_host_config({"hidden_size": 896})
    assert (defaults.mm_hidden_size, defaults.num_heads, defaults.fp_bits, defaults.fp_levels) == (2048, 8, 4096, 4)
    attrs = cfg.to_host_attributes()
    assert attrs["fusion_heads"] == 3 and "hidden_size" not in attrs
    assert ProjectorConfig.from_host_config({"hidden_size": 24, "mm_hidden_size": C, **attrs}) == cfg
    with pytest.raises(ValueError, match="no hidden_size"):
        ProjectorConfig.from_host_config(types.SimpleNamespace(mm_hidden_size=C))
    with pytest.raises(ValueError, match="num_heads=5 does not divide hidden_size=16"):
        FusionProjector(tiny_config(num_heads=5))  # only fusion has heads; linear etc. accept any


# --------------------------------------------------------------------------------------
# Behaviour
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROJECTORS))
def test_padding_does_not_change_outputs(name):
    proj = build_projector(name, tiny_config()).eval()
    mols = [molecule(2), molecule(5), molecule(3)]
    x = torch.randn(3, 9, C)
    with torch.no_grad():
        tight = proj(x, batch_fp(mols))  # (3, 9, H), padded to 5 atoms
        padded = proj(x, batch_fp(mols, max_atoms=11))  # 6 more all -1 atom rows for all
        alone = [proj(x[i : i + 1], mols[i][None]) for i in range(3)]  # no padding at all
    torch.testing.assert_close(padded, tight, rtol=0, atol=1e-6)
    for i in range(3):
        torch.testing.assert_close(tight[i : i + 1], alone[i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PROJECTORS))
def test_gradients_reach_every_parameter(name):
    proj = build_projector(name, tiny_config(dropout=0.1)).train()
    fp = batch_fp([molecule(3), molecule(4)])
    tiles = [torch.randn(2, 4, C), None]  # sample 0: 2x1 tiles of 2x2 tokens
    out = proj.embed_images(torch.randn(2, 4, C), fp, tiles, [(2, 1), None])
    loss = sum((o * torch.randn_like(o)).sum() for o in out)  # not a plain sum: LayerNorm
    loss.backward()
    for pname, p in proj.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_fusion_uses_image_and_molecule_and_concat_uses_molecule():
    x, fp = torch.randn(2, 4, C), batch_fp([molecule(3), molecule(4)])
    other_fp = batch_fp([molecule(3), molecule(4)])
    for name in MOLECULE_PROJECTORS:
        proj = build_projector(name, tiny_config()).eval()
        base = proj(x, fp)
        assert not torch.allclose(proj(x, other_fp), base, atol=1e-4), name
        assert not torch.allclose(proj(torch.randn(2, 4, C), fp), base, atol=1e-4), name


@pytest.mark.parametrize("name", ["linear", "mlp2x_gelu"])
def test_image_only_ablations_shapes_and_ignore_molecule(name):
    proj = build_projector(name, tiny_config())
    x = torch.randn(3, 5, C)
    out = proj(x)
    assert out.shape == (3, 5, H)
    torch.testing.assert_close(proj(x, batch_fp([molecule(2)] * 3)), out, rtol=0, atol=0)
    with pytest.raises(ValueError, match="molecule_fp holds 2 molecules but there are 3 images"):
        proj(x, batch_fp([molecule(2)] * 2))  # still checked


def test_attention_weights_per_atom():
    proj = FusionProjector(tiny_config()).eval()
    mols = [molecule(2), molecule(5)]
    fp = batch_fp(mols, max_atoms=6)
    x = torch.randn(2, 9, C)
    out, attn = proj(x, fp, return_attention=True)
    assert attn.shape == (2, 9, 6)  # (B, image tokens, atoms)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 9), rtol=0, atol=1e-5)
    assert (attn[0, :, 2:] == 0).all() and (attn[1, :, 5:] == 0).all()  # padding atoms
    assert (attn[0, :, :2] > 0).all()
    torch.testing.assert_close(out, proj(x, fp), rtol=0, atol=1e-5)  # same tokens either way


def test_head_count_changes_attention():
    two = FusionProjector(tiny_config(num_heads=2)).eval()
    four = FusionProjector(tiny_config(num_heads=4)).eval()
    four.load_state_dict(two.state_dict())  # same weights, only the head split differs
    assert four.cross_attn.num_heads == 4
    x, fp = torch.randn(1, 4, C), batch_fp([molecule(5)])
    out2, attn2 = two(x, fp, return_attention=True)
    out4, attn4 = four(x, fp, return_attention=True)
    assert not torch.allclose(attn2, attn4, atol=1e-4)
    assert not torch.allclose(out2, out4, atol=1e-4)


@pytest.mark.parametrize("name", MOLECULE_PROJECTORS)
def test_bfloat16(name):
    proj = build_projector(name, tiny_config()).to(torch.bfloat16)
    out = proj.embed_images(torch.randn(2, 4, C), batch_fp([molecule(2), molecule(3)]))
    assert all(o.dtype == torch.bfloat16 and torch.isfinite(o).all() for o in out)


@pytest.mark.parametrize("name", MOLECULE_PROJECTORS)
def test_fp32_parameters_under_bf16_autocast(name):
    """`--bf16 True` training without DeepSpeed runs the fp32 projector under autocast:
    its tokens come out bf16 while image_newline / view_seperator stay fp32 parameters,
    which the layout refused ("newline must be a (H,) torch.bfloat16 vector")."""
    proj = build_projector(name, tiny_config()).train()
    tiles = [torch.randn(2, 4, C), None]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = proj.embed_images(torch.randn(2, 4, C), batch_fp([molecule(2), molecule(3)]), tiles, [(2, 1), None])
    assert all(o.dtype == torch.bfloat16 and torch.isfinite(o).all() for o in out)
    sum((o.float() * torch.randn_like(o.float())).sum() for o in out).backward()
    assert proj.image_newline.grad is not None and proj.image_newline.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------


def _bad(fp_edit=None, fp=None, x=None):
    fp = batch_fp([molecule(3), molecule(4)]) if fp is None else fp
    if fp_edit:
        fp_edit(fp)
    return (torch.randn(2, 4, C) if x is None else x), fp


@pytest.mark.parametrize("name", MOLECULE_PROJECTORS)
@pytest.mark.parametrize(
    "case, match",
    [
        (lambda: _bad(lambda f: f.__setitem__((1, 2, 3), BITS)),
         rf"molecule 1 has E3FP hash {BITS} at molecule_fp\[1, 2, 3\].*\[0, {BITS}\)"),
        (lambda: _bad(lambda f: f.__setitem__((0, 1, 0), -2)), r"molecule 0 has E3FP hash -2"),
        (lambda: _bad(fp=torch.zeros(2, LEVELS, dtype=torch.long)), r"shape \(batch, atoms, levels\)"),
        (lambda: _bad(fp=torch.zeros(2, 3, LEVELS)), "must be an integer tensor"),
        (lambda: _bad(fp=torch.zeros(2, 3, 3, dtype=torch.long)), "3 levels per atom.*fp_levels=4"),
        (lambda: _bad(fp=torch.zeros(3, 3, LEVELS, dtype=torch.long)),
         "molecule_fp holds 3 molecules but there are 2 images"),
        (lambda: _bad(lambda f: f.__setitem__(1, -1)), "molecule 1 has no valid fingerprint token"),
        (lambda: _bad(x=torch.randn(2, 4, C + 1)), f"width is {C + 1}.*mm_hidden_size={C}"),
        (lambda: _bad(x=torch.randn(4, C)), r"shape \(batch, tokens, mm_hidden_size\)"),
    ],
)
def test_invalid_inputs_raise(name, case, match):
    proj = build_projector(name, tiny_config())
    x, fp = case()
    with pytest.raises(ValueError, match=match):
        proj(x, fp)


def test_missing_molecule_and_attention_requests():
    x = torch.randn(2, 4, C)
    for name in MOLECULE_PROJECTORS:
        with pytest.raises(ValueError, match=f"the '{name}' projector needs molecule_fp"):
            build_projector(name, tiny_config())(x)
    with pytest.raises(ValueError, match="'concat' projector has no attention weights"):
        build_projector("concat", tiny_config())(x, batch_fp([molecule(2)] * 2), return_attention=True)


# --------------------------------------------------------------------------------------
# Token layout
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("image_size, tile_size", [(1024, 640), (128, 64), (640, 640)])
@pytest.mark.parametrize("grid", [None, (2, 2), (3, 2), (2, 3), (1, 2), (6, 1), (1, 1)])
def test_layout_count_matches_encoder(image_size, tile_size, grid):
    g, t = image_size // 64, tile_size // 64
    vec = torch.zeros(1)  # H = 1 keeps the 1024 px cases tiny
    tiles = None if grid is None else torch.zeros(grid[0] * grid[1], t * t, 1)
    out = assemble_tokens(torch.zeros(g * g, 1), tiles, grid, vec, vec)
    assert out.shape == (num_llm_positions_for_grid(image_size, tile_size, grid), 1)
    if (image_size, tile_size) == (1024, 640):
        assert out.shape[0] == {None: 273, (2, 2): 693}.get(grid, out.shape[0])


def test_layout_positions_base_mode():
    g = 3
    glob = torch.arange(1, g * g + 1, dtype=torch.float32)[:, None]  # token k has value k+1
    out = assemble_tokens(glob, None, None, torch.tensor([-1.0]), torch.tensor([-2.0]))[:, 0]
    expected = []
    for r in range(g):
        expected += [r * g + c + 1 for c in range(g)] + [-1]
    assert out.tolist() == expected + [-2]


def test_layout_positions_tiles_mode():
    cols, rows, t, g = 3, 2, 2, 2
    # Tile k (row-major), token (i, j) encoded as 1000 + 100 k + 10 i + j.
    tiles = torch.tensor(
        [[1000 + 100 * k + 10 * i + j for i in range(t) for j in range(t)] for k in range(cols * rows)],
        dtype=torch.float32,
    )[..., None]
    glob = torch.arange(1, g * g + 1, dtype=torch.float32)[:, None]
    out = assemble_tokens(glob, tiles, (cols, rows), torch.tensor([-1.0]), torch.tensor([-2.0]))[:, 0]
    expected = []
    for mosaic_row in range(rows * t):
        tile_row, i = divmod(mosaic_row, t)
        for mosaic_col in range(cols * t):
            tile_col, j = divmod(mosaic_col, t)
            expected.append(1000 + 100 * (tile_row * cols + tile_col) + 10 * i + j)
        expected.append(-1)
    for r in range(g):
        expected += [r * g + c + 1 for c in range(g)] + [-1]
    assert out.tolist() == expected + [-2]


def test_layout_errors():
    vec = torch.zeros(2)
    with pytest.raises(ValueError, match="not a square grid"):
        assemble_tokens(torch.zeros(5, 2), None, None, vec, vec)
    with pytest.raises(ValueError, match=r"needs 4 tiles, got 3"):
        assemble_tokens(torch.zeros(4, 2), torch.zeros(3, 4, 2), (2, 2), vec, vec)
    with pytest.raises(ValueError, match="without a tile grid"):
        assemble_tokens(torch.zeros(4, 2), torch.zeros(3, 4, 2), None, vec, vec)


def test_embed_images_tiles_use_their_own_molecule():
    proj = FusionProjector(tiny_config()).eval()
    fp = batch_fp([molecule(3), molecule(4), molecule(2)])
    glob = torch.randn(3, 4, C)  # 128 px global views: 2x2 tokens
    tiles = [torch.randn(2, 1, C), None, torch.randn(4, 1, C)]  # 64 px tiles: 1 token
    grids = [(2, 1), None, (2, 2)]
    out = proj.embed_images(glob, fp, tiles, grids)
    for i in range(3):
        assert out[i].shape == (num_llm_positions_for_grid(128, 64, grids[i]), H)
        expected = assemble_tokens(
            proj(glob[i : i + 1], fp[i : i + 1])[0],
            None if tiles[i] is None else proj(tiles[i], fp[i : i + 1].expand(len(tiles[i]), -1, -1)),
            grids[i], proj.image_newline, proj.view_seperator,
        )
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"sample 1: tile grid \(1, 2\) but 0 tile views"):
        proj.embed_images(glob, fp, tiles, [(2, 1), (1, 2), (2, 2)])
    with pytest.raises(ValueError, match="given together"):
        proj.embed_images(glob, fp, tiles, None)
