"""The GUI's parts that need no browser, on CPU: the fusion projector's opt-in attention
recording, the attention -> image token -> pixel mapping (base and tiles layouts), the
encoder's views turned back into pixels, the 3D figure and the chat prompt."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.gui.attention import attention_maps, colorize, heatmap_overlay, mark_atom, value_range
from deepmolm_plugin.projector import FusionProjector, ProjectorConfig

HEADS, LEVELS = 2, 4


def _projector() -> FusionProjector:
    return FusionProjector(ProjectorConfig(hidden_size=16, mm_hidden_size=12, num_heads=HEADS, fp_bits=64,
                                           fp_levels=LEVELS)).eval()


def _molecules() -> torch.Tensor:
    """(2, 3, 4): molecule 0 has 3 atoms (level 3 missing on atom 2), molecule 1 has 2 and a padding row."""
    fp = torch.randint(0, 64, (2, 3, LEVELS))
    fp[0, 2, 3] = -1
    fp[1, 2] = -1
    return fp


# --- the projector's opt-in --------------------------------------------------------------------------
def test_recording_is_off_by_default_and_changes_nothing():
    projector, features, fp = _projector(), torch.randn(2, 9, 12), _molecules()
    plain = projector(features, fp)
    assert projector._attention_log is None
    with projector.recording_attention() as calls:
        recorded = projector(features, fp)
        again, per_atom = projector(features, fp, return_attention=True)
    torch.testing.assert_close(recorded, plain)
    torch.testing.assert_close(again, plain)
    assert len(calls) == 2 and projector._attention_log is None  # closed after the block
    weights = calls[0]
    assert weights.shape == (2, HEADS, 9, 3, LEVELS)  # (B, heads, N, atoms, levels)
    torch.testing.assert_close(weights.sum(dim=(-2, -1)), torch.ones(2, HEADS, 9))  # softmax per head and token
    assert (weights[0, :, :, 2, 3] == 0).all() and (weights[1, :, :, 2] == 0).all()  # padding keys get nothing
    # return_attention's per-atom attention is the recorded weights, head-averaged, levels summed.
    torch.testing.assert_close(per_atom, weights.mean(dim=1).sum(dim=-1))
    with projector.recording_attention():
        with pytest.raises(RuntimeError, match="already recording"):
            with projector.recording_attention():
                pass


def test_embed_images_records_the_global_view_then_the_tiles():
    projector, fp = _projector(), _molecules()[:1]
    tiles = torch.randn(6, 4, 12)  # 3x2 grid of 2x2-token tiles
    with projector.recording_attention() as calls:
        projector.embed_images(torch.randn(1, 9, 12), fp, [tiles], [(3, 2)])
    assert [tuple(c.shape) for c in calls] == [(1, HEADS, 9, 3, LEVELS), (6, HEADS, 4, 3, LEVELS)]
    maps = attention_maps(calls, (3, 2))
    assert maps.global_map.shape == (3, 3, 3) and maps.tile_map.shape == (4, 6, 3)
    assert maps.received.sum() == pytest.approx(1.0, abs=1e-5)


def test_blank_tiles_are_projected_where_tiles_are_and_change_nothing():
    """ZeRO-3 lockstep: a rank without tiles projects a blank tile in the tiles' place, with
    sample 0's molecule, times zero into the result (so its backward runs too)."""
    projector, fp = _projector().eval(), _molecules()[:1]  # eval: no dropout, so outputs compare
    glob = torch.randn(1, 9, 12, requires_grad=True)
    plain = projector.embed_images(glob, fp)
    with projector.recording_attention() as calls:
        projector.embed_images(glob, fp, blank_tiles=torch.randn(1, 4, 12))
    assert [tuple(c.shape) for c in calls] == [(1, HEADS, 9, 3, LEVELS), (1, HEADS, 4, 3, LEVELS)]
    joined = projector.embed_images(glob, fp, blank_tiles=torch.randn(1, 4, 12))  # (recording computes apart)
    assert len(joined) == 1 and torch.equal(joined[0], plain[0])
    joined[0].sum().backward()
    assert all(p.grad is not None for p in projector.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="blank_tiles stand in for tiles"):
        projector.embed_images(glob, fp, [torch.randn(6, 4, 12)], [(3, 2)], blank_tiles=torch.randn(1, 4, 12))


# --- tokens -> atoms -> pixels -----------------------------------------------------------------------
def _one_hot_calls(atom_of, batch: int, tokens: int, atoms: int) -> torch.Tensor:
    """(batch, heads, tokens, atoms, levels): token n of view b gives all its weight to atom_of(b, n), level 0."""
    weights = torch.zeros(batch, HEADS, tokens, atoms, LEVELS)
    for b in range(batch):
        for n in range(tokens):
            weights[b, :, n, atom_of(b, n), 0] = 1.0
    return weights


def test_global_view_tokens_map_row_major_onto_the_view():
    g, atoms = 3, 9
    maps = attention_maps([_one_hot_calls(lambda b, n: n, 1, g * g, atoms)], None)
    for r in range(g):
        for c in range(g):  # token (r, c) is number r*g + c and covers pixels [64r, 64r+64) x [64c, 64c+64)
            assert maps.global_map[r, c, r * g + c] == 1.0
            assert maps.global_map[r, c].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(maps.received, np.full(atoms, 1 / atoms), rtol=1e-6)
    assert maps.tile_map is None and maps.heads == HEADS


def test_tiles_are_placed_in_their_grid():
    cols, rows, t = 3, 2, 2
    cols_rows = (cols, rows)
    tile_of = _one_hot_calls(lambda b, n: b, cols * rows, t * t, cols * rows)  # tile k: all to atom k
    cell_of = _one_hot_calls(lambda b, n: n, cols * rows, t * t, cols * rows)  # token n of any tile: atom n
    glob = _one_hot_calls(lambda b, n: 0, 1, 4, cols * rows)  # 2x2 global view, all to atom 0
    by_tile = attention_maps([glob, tile_of], cols_rows).tile_map  # (rows*t, cols*t, atoms)
    by_cell = attention_maps([glob, cell_of], cols_rows).tile_map
    assert by_tile.shape == (rows * t, cols * t, cols * rows)
    for y in range(rows * t):
        for x in range(cols * t):
            k = (y // t) * cols + x // t  # tiles are row-major over the grid
            assert by_tile[y, x, k] == 1.0
            assert by_cell[y, x, (y % t) * t + x % t] == 1.0  # tokens row-major within a tile
    # received: the global view's 4 tokens and the tiles' 24, every one a unit of attention per head.
    received = attention_maps([glob, tile_of], cols_rows).received
    np.testing.assert_allclose(received, np.array([4 + 4, 4, 4, 4, 4, 4]) / 28, rtol=1e-6)


def test_bad_recordings_are_errors():
    with pytest.raises(ValueError, match="expected 2 recorded"):
        attention_maps([_one_hot_calls(lambda b, n: 0, 1, 4, 2)], (2, 2))
    with pytest.raises(ValueError, match="not a square grid"):
        attention_maps([_one_hot_calls(lambda b, n: 0, 1, 6, 2)], None)


def test_heatmap_cells_follow_the_token_grid():
    view = Image.new("RGB", (128, 128), "white")
    token_map = np.array([[0.0, 1.0], [0.25, 0.5]])  # token (0, 1): the top-right 64x64 patch
    out = np.asarray(heatmap_overlay(view, token_map, *value_range(token_map), size=256)).astype(int)
    assert out.shape == (256, 256, 3)
    centre = {(r, c): out[64 + 128 * r, 64 + 128 * c] for r in range(2) for c in range(2)}
    darkness = {k: 765 - v.sum() for k, v in centre.items()}
    assert darkness[(0, 1)] > darkness[(1, 1)] > darkness[(1, 0)] > darkness[(0, 0)]
    np.testing.assert_array_equal(colorize(np.array([0.0, 1.0])), [[255, 247, 188], [140, 45, 4]])
    flat = heatmap_overlay(view, np.full((2, 2), 0.3), 0.3, 0.3, size=128)  # no spread: drawn lightest
    assert np.asarray(flat)[32, 32].sum() > 700


def test_the_chosen_atom_is_ringed_where_it_was_drawn():
    view = Image.new("RGB", (200, 100), (200, 220, 240))
    out = np.asarray(mark_atom(view, np.array([0.25, 0.5]))).astype(int)  # (50, 50) in pixels
    radius = 0.035 * 200 if 0.035 * 200 > 6 else 6
    assert out[50, 50].tolist() == [200, 220, 240]  # the atom itself stays visible
    ring = out[50, int(50 + radius) - 2:int(50 + radius) + 1].sum(axis=1)
    assert ring.min() < 100, ring  # black ring at the radius (PIL draws the outline inwards)
    assert (out[:, 100:] == [200, 220, 240]).all()  # nothing drawn away from the atom
    assert np.asarray(view).tolist() == np.asarray(Image.new("RGB", (200, 100), (200, 220, 240))).tolist()
    unplaced = mark_atom(view, np.array([np.nan, np.nan]))  # an atom the drawing does not show
    assert np.asarray(unplaced).tolist() == np.asarray(view).tolist()


def test_depiction_panel_rings_the_chosen_atom_only_on_a_drawn_depiction():
    from deepmolm_plugin.gui.app import DISPLAY_SIZE, depiction_images

    view = Image.new("RGB", (64, 64), "white")
    views = SimpleNamespace(view=view, mosaic=None)
    maps = SimpleNamespace(global_map=np.zeros((1, 1, 2)), tile_map=None, resolution=0.0)
    drawn = SimpleNamespace(views=views, attention=maps, atom_xy=np.array([[0.25, 0.25], [0.75, 0.75]]))
    for overlay in (True, False):
        out = np.asarray(depiction_images(drawn, 1, overlay)[0]).astype(int)
        assert out.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3)
        r = 0.035 * DISPLAY_SIZE
        centre = round(0.75 * DISPLAY_SIZE)
        assert out[centre, int(centre + r) - 2:int(centre + r) + 1].sum(axis=1).min() < 100  # ring around atom 1
        other = round(0.25 * DISPLAY_SIZE)
        assert out[other, int(other + r) - 2:int(other + r) + 1].sum(axis=1).min() > 600  # none around atom 0
    given = SimpleNamespace(views=views, attention=maps, atom_xy=None)  # the user's own image
    assert (np.asarray(depiction_images(given, 1, False)[0]) == 255).all()


# --- what the encoder sees ---------------------------------------------------------------------------
def test_views_are_the_tensors_turned_back_into_pixels(tiny_config):
    from deepmolm_plugin.encoder.image_processor import DeepEncoderImageProcessor
    from deepmolm_plugin.gui.views import model_views

    processor = DeepEncoderImageProcessor.from_config(tiny_config, mode="tiles")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (100, 200, 3), dtype=np.uint8))  # wide: padded, 2x1 tiles
    views = model_views(image, processor, SimpleNamespace(image_aspect_ratio="pad"))
    assert views.images.shape == (1, 3, 128, 128) and views.image_size == (200, 100)
    assert views.tile_grid == (2, 1) and views.tile_images.shape == (2, 3, 64, 64)
    # The pixels shown are the tensors' pixels: normalising them again gives the tensors back.
    torch.testing.assert_close(processor.normalize(views.view), views.images[0], atol=1e-6, rtol=0)
    assert views.mosaic.size == (128, 64)
    torch.testing.assert_close(processor.normalize(views.mosaic.crop((64, 0, 128, 64))), views.tile_images[1],
                               atol=1e-6, rtol=0)
    assert views.view.getpixel((64, 2)) == processor.pad_color  # the square padding is part of the view
    kwargs = views.generate_kwargs(torch.device("cpu"), torch.float32)
    assert kwargs["tile_grids"] == [(2, 1)] and kwargs["image_sizes"] == [(200, 100)]


# --- the 3D figure -----------------------------------------------------------------------------------
def _alanine() -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles("C[C@H](N)C(=O)O"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    return mol


def test_figure_labels_heavy_atoms_by_their_molecule_fp_row():
    from deepmolm_plugin.gui.viewer3d import NO_TOKEN, atom_colors, heavy_atom_rows, molecule_figure

    mol = Chem.AddHs(Chem.MolFromSmiles("OCC"), addCoords=False)
    mol = Chem.RenumberAtoms(mol, [3, 0, 4, 1, 5, 2, 6, 7, 8])  # hydrogens between heavy atoms
    AllChem.EmbedMolecule(mol, randomSeed=1)
    rows = heavy_atom_rows(mol)
    assert [r for r in rows if r is not None] == [0, 1, 2]
    assert rows[0] is None and rows[1] == 0
    received = np.array([0.5, 0.2, 0.3])
    colors = atom_colors(mol, received)
    heavy = [i for i, r in enumerate(rows) if r is not None]
    assert colors[heavy[0]] == "#8c2d04" and colors[heavy[1]] == "#fff7bc"  # largest share darkest
    assert all(colors[i] == NO_TOKEN for i, r in enumerate(rows) if r is None)  # hydrogens: no tokens
    figure = molecule_figure(mol, received, selected=2)
    labels = next(t for t in figure.data if t.name == "atom index")
    assert list(labels.text) == ["0", "1", "2"]
    info = next(t for t in figure.data if t.name == "atom info")
    assert info.hovertext[0] == "atom 0 · O · attention 50.0%"  # percent, as the colour bar and the atom list
    np.testing.assert_allclose([info.x[0], info.y[0], info.z[0]], mol.GetConformer().GetPositions()[heavy[0]])
    assert any(t.name == "chosen atom" for t in figure.data)
    assert not any(t.name == "chosen atom" for t in molecule_figure(mol).data)


def test_oriented_is_a_rotation():
    from deepmolm_plugin.gui.viewer3d import oriented

    mol = _alanine()
    turned = oriented(mol)
    a, b = mol.GetConformer().GetPositions(), turned.GetConformer().GetPositions()
    distances = lambda p: np.linalg.norm(p[:, None] - p[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(distances(a), distances(b), atol=1e-8)
    Chem.AssignStereochemistryFrom3D(turned)
    Chem.AssignStereochemistryFrom3D(mol)
    assert Chem.MolToSmiles(Chem.RemoveHs(turned)) == Chem.MolToSmiles(Chem.RemoveHs(mol))  # no mirror image
    spread = b.var(axis=0)  # principal axes: the largest spread along x, the smallest along z (the view)
    assert spread[0] >= spread[1] >= spread[2]
    np.testing.assert_allclose(b.mean(axis=0), 0, atol=1e-9)


# --- the chat prompt ---------------------------------------------------------------------------------
def test_prompt_is_the_templates_with_the_image_first():
    import deepmolm_plugin

    deepmolm_plugin.register()
    from deepmolm_plugin.gui.chat import build_prompt, sampling_kwargs

    prompt = build_prompt("qwen2", [("What is this molecule?", "Ethanol."), ("Its formula?", None)])
    assert prompt == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                      "<|im_start|>user\n<image>\nWhat is this molecule?<|im_end|>\n"
                      "<|im_start|>assistant\nEthanol.<|im_end|>\n"
                      "<|im_start|>user\nIts formula?<|im_end|>\n<|im_start|>assistant\n")
    assert sampling_kwargs(0, 8) == {"do_sample": False, "max_new_tokens": 8}
    assert sampling_kwargs(0.7, 8)["temperature"] == 0.7
    with pytest.raises(ValueError, match="at least 1"):
        sampling_kwargs(0.2, 0)


class _StubModel:
    """Stands in for the LLaVA model's `generate`: streams fixed tokens, keeps its arguments."""

    device, dtype = torch.device("cpu"), torch.float32
    config = SimpleNamespace(mm_use_im_start_end=False)

    def __init__(self, reply_ids, fail=False):
        self.reply_ids, self.fail, self.calls = reply_ids, fail, []

    def generate(self, input_ids, streamer=None, **kwargs):
        self.calls.append(dict(kwargs, input_ids=input_ids))
        streamer.put(input_ids)  # as transformers does: the prompt first (skipped)
        for token in self.reply_ids:
            if self.fail:
                raise RuntimeError("out of memory, say")
            streamer.put(torch.tensor([token]))
        streamer.end()


def test_replies_stream_with_the_molecule_as_an_explicit_argument():
    import threading

    import deepmolm_plugin

    deepmolm_plugin.register()
    from llava.constants import IMAGE_TOKEN_INDEX
    from tiny_models import make_tiny_tokenizer

    from deepmolm_plugin.gui.chat import stream_reply
    from deepmolm_plugin.gui.views import ModelViews

    tokenizer = make_tiny_tokenizer()
    reply = "The molecule CCO is ethanol."
    model = _StubModel(tokenizer(reply).input_ids)
    session = SimpleNamespace(model=model, tokenizer=tokenizer, conv_mode="qwen2", lock=threading.Lock())
    fp = torch.tensor([[5, 6, -1, -1], [7, 8, 9, -1]])
    views = ModelViews(images=torch.zeros(1, 3, 128, 128), image_size=(1024, 1024), tile_images=None,
                       tile_grid=None, view=Image.new("RGB", (128, 128)), mosaic=None)
    molecule = SimpleNamespace(views=views, batch_fp=lambda device: fp.unsqueeze(0).to(device))
    texts = list(stream_reply(session, molecule, [("What is this molecule?", None)], 0.0, 16))
    assert len(texts) > 1 and texts[-1] == reply  # grew piece by piece
    call = model.calls[0]
    assert torch.equal(call["molecule_fp"], fp.unsqueeze(0))  # (1, atoms, levels), explicit
    assert call["do_sample"] is False and "temperature" not in call and call["max_new_tokens"] == 16
    assert call["image_sizes"] == [(1024, 1024)] and "tile_images" not in call
    assert (call["input_ids"] == IMAGE_TOKEN_INDEX).sum() == 1
    failing = SimpleNamespace(model=_StubModel([1, 2], fail=True), tokenizer=tokenizer, conv_mode="qwen2",
                              lock=threading.Lock())
    with pytest.raises(RuntimeError, match="out of memory"):  # the worker's error reaches the page
        list(stream_reply(failing, molecule, [("Hi?", None)], 0.7, 4))
    assert not failing.lock.locked()


def test_a_reply_nobody_reads_any_more_stops_the_model():
    import threading

    import deepmolm_plugin

    deepmolm_plugin.register()
    from tiny_models import make_tiny_tokenizer

    from deepmolm_plugin.gui.chat import stream_reply
    from deepmolm_plugin.gui.views import ModelViews

    class Endless(_StubModel):
        def generate(self, input_ids, streamer=None, stopping_criteria=(), **kwargs):
            streamer.put(input_ids)
            ids = input_ids
            while not any(bool(c(ids, None).all()) for c in stopping_criteria[1:]):  # [0]: the template's stop
                streamer.put(torch.tensor([self.reply_ids[0]]))
                ids = torch.cat([ids, torch.tensor([[self.reply_ids[0]]])], dim=1)
            self.calls.append(ids.shape[1])
            streamer.end()

    tokenizer = make_tiny_tokenizer()
    model = Endless(tokenizer("word").input_ids)
    session = SimpleNamespace(model=model, tokenizer=tokenizer, conv_mode="qwen2", lock=threading.Lock())
    views = ModelViews(images=torch.zeros(1, 3, 128, 128), image_size=(128, 128), tile_images=None,
                       tile_grid=None, view=Image.new("RGB", (128, 128)), mosaic=None)
    molecule = SimpleNamespace(views=views, batch_fp=lambda device: None)
    replies = stream_reply(session, molecule, [("Go on?", None)], 0.0, 1_000)  # the most a reply may ask for is 1024
    next(replies)
    replies.close()  # what gradio does when the page goes away
    assert model.calls and not session.lock.locked()  # generate returned; the model is free
