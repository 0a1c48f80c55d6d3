"""Twelfth sweep (12A), the GUI and user images: (1) after a load, the panels follow the Heatmap
switch and "Colour atoms by" as the page shows them (was: heatmap on and attention colours under
controls that said otherwise); (2) an image of one colour throughout is refused, by name, by the
one check of an image file that the GUI, the chat CLI, eval, training and deepmolm-prepare run
(was: accepted as "your image")."""

from __future__ import annotations

import io

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from deepmolm_plugin.encoder.image_processor import check_host_conversion
from deepmolm_plugin.gui.app import COLOR_BY, Page, Tab, build_app, depiction_images, figure_for

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
COLOUR_BAR = "share of attention"  # the 3D view's colour bar title, shown only when coloured by attention


def _component(app, elem_id: str):
    return next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _fns_of(app, component, event: str) -> list:
    return [f for f in app.fns.values() if (component._id, event) in [tuple(t) for t in f.targets]]


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _assert_drawn_as(outputs, tab: Tab, overlay: bool, colour: str) -> None:
    """`outputs` (a load's panels) show the tab's molecule with the heatmap as `overlay` says
    and the 3D view coloured by `colour`."""
    molecule = tab.molecule
    chosen = outputs[5]["value"]
    assert molecule is not None and chosen is not None
    wanted, _ = depiction_images(molecule, chosen, overlay)
    other, _ = depiction_images(molecule, chosen, not overlay)
    assert np.array_equal(_pixels(outputs[2]), _pixels(wanted))
    assert not np.array_equal(_pixels(outputs[2]), _pixels(other))  # the premise: the two differ
    shown = outputs[4].to_json()
    assert shown == figure_for(molecule, colour, chosen).to_json()
    assert (COLOUR_BAR in shown) == (colour == COLOR_BY[0])


# --- 1. the panels follow the controls on every load ---------------------------------------------
def _set_controls(page: Page, tab: Tab, overlay: bool, colour: str) -> None:
    """The user sets the Heatmap switch (its event sends the radio as it was: here the other
    choice), then picks "Colour atoms by", as the page's events call the two handlers."""
    atom = tab.molecule and tab.molecule.atoms - 1
    page.choose(tab, atom, overlay, COLOR_BY[0] if colour == COLOR_BY[1] else COLOR_BY[1])
    page.recolour(tab, colour, atom)


@pytest.mark.parametrize("overlay, colour", [(False, COLOR_BY[1]), (True, COLOR_BY[1]), (False, COLOR_BY[0])])
def test_a_load_draws_the_panels_as_the_heatmap_switch_and_colour_choice_say(chat_session, overlay, colour):
    # The report's steps: aspirin, Heatmap off, colour by element, then caffeine. Was: caffeine's
    # panels had the heatmap and attention colours under controls showing "off" and "element".
    page, tab = Page(chat_session), Tab()
    page.load(tab, ASPIRIN, None, None)
    _set_controls(page, tab, overlay, colour)
    _assert_drawn_as(page.load(tab, CAFFEINE, None, None), tab, overlay, colour)
    fresh = Tab()  # set before any molecule, on the empty page
    _set_controls(page, fresh, overlay, colour)
    _assert_drawn_as(page.load(fresh, ASPIRIN, None, None), fresh, overlay, colour)


def test_a_new_tab_draws_the_pages_first_choice(chat_session):
    page, tab = Page(chat_session), Tab()
    _assert_drawn_as(page.load(tab, ASPIRIN, None, None), tab, True, COLOR_BY[0])


def test_a_control_changed_while_a_molecule_loads_is_followed(chat_session, monkeypatch):
    # a large molecule loads for minutes: the switch changed meanwhile (its event redraws the
    # molecule before) is what the new molecule is drawn by
    page, tab = Page(chat_session), Tab()
    page.load(tab, ASPIRIN, None, None)
    prepare = chat_session.molecule

    def slow(*args, **kwargs):
        _set_controls(page, tab, False, COLOR_BY[1])  # while the load runs
        return prepare(*args, **kwargs)

    monkeypatch.setattr(chat_session, "molecule", slow)
    _assert_drawn_as(page.load(tab, CAFFEINE, None, None), tab, False, COLOR_BY[1])


def test_every_way_to_load_follows_the_controls_set_on_the_page(chat_session, tmp_path):
    # through the page's own event functions: the switch's and the radio's, then each way to load
    app = build_app(chat_session)
    overlay, colour = _component(app, "overlay"), _component(app, "color-by")
    [switch], [radio] = _fns_of(app, overlay, "input"), _fns_of(app, colour, "input")
    smiles = _component(app, "smiles-input")
    example = next(f for f in app.fns.values() if f.name == "load_example")  # gradio's fill-in of the box
    loads = (_fns_of(app, _component(app, "load-smiles"), "click") + _fns_of(app, smiles, "submit")
             + [f for f in app.fns.values() if f.trigger_after == example._id])
    assert len(loads) == 3
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(ASPIRIN))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    sdf = tmp_path / "aspirin.sdf"
    Chem.MolToMolFile(mol, str(sdf))
    [structure] = _fns_of(app, _component(app, "load-structure"), "click")
    runs = [lambda tab, fn=fn: fn.fn(tab, ASPIRIN) for fn in loads] + [lambda tab: structure.fn(tab, str(sdf), None)]
    for load in runs:
        tab = Tab()
        switch.fn(tab, None, False, COLOR_BY[0])
        radio.fn(tab, COLOR_BY[1], None)
        _assert_drawn_as(load(tab), tab, False, COLOR_BY[1])


def test_settings_the_controls_never_send_are_refused_and_not_kept(chat_session):
    page, tab = Page(chat_session), Tab()
    with pytest.raises(gr.Error, match="the Heatmap switch must be true or false, got 'false'"):
        page.choose(tab, None, "false", COLOR_BY[1])
    with pytest.raises(gr.Error, match="colour atoms by 'by charge': choose"):
        page.recolour(tab, "by charge", None)
    _assert_drawn_as(page.load(tab, ASPIRIN, None, None), tab, True, COLOR_BY[0])


# --- 2. an image of one colour is refused, by name -----------------------------------------------
def _save(tmp_path, name: str, image: Image.Image, **kwargs) -> str:
    path = tmp_path / name
    image.save(path, **kwargs)
    return str(path)


def _noisy_white(spread: int) -> Image.Image:
    """White paper with noise: values from 255 - spread to 255."""
    rng = np.random.default_rng(0)
    return Image.fromarray((255 - rng.integers(0, spread + 1, (60, 90, 3))).astype(np.uint8))


def test_a_single_colour_image_is_refused_naming_the_file(tmp_path):
    white = _save(tmp_path, "gray.png", Image.new("L", (300, 100), 255))
    with pytest.raises(ValueError, match=r"^image '.*gray\.png' is one colour throughout \(RGB \(255, 255, 255\)\): "
                                         r"it shows no molecule$"):
        check_host_conversion(white)
    blue = _save(tmp_path, "blue.bmp", Image.new("RGB", (40, 30), (20, 40, 200)))
    with pytest.raises(ValueError, match=r"blue\.bmp' is one colour throughout \(RGB \(20, 40, 200\)\)"):
        check_host_conversion(blue)
    nothing = _save(tmp_path, "empty.png", Image.new("RGBA", (40, 30), (255, 255, 255, 0)))  # drawn nothing
    with pytest.raises(ValueError, match="empty.png' is one colour throughout"):
        check_host_conversion(nothing)


def test_near_uniform_images_count_as_one_colour_and_a_faint_line_does_not(tmp_path):
    # JPEG noise on white: each channel within ONE_COLOUR_SPREAD levels is one colour
    noisy = _save(tmp_path, "scan.jpg", _noisy_white(6), quality=75)
    with pytest.raises(ValueError, match=r"scan\.jpg' is one colour throughout \(RGB \(\d+, \d+, \d+\) to "):
        check_host_conversion(noisy)
    from deepmolm_plugin.encoder.image_processor import ONE_COLOUR_SPREAD  # 16 levels of 255

    edge = _noisy_white(ONE_COLOUR_SPREAD)
    with pytest.raises(ValueError, match="one colour throughout"):
        check_host_conversion(_save(tmp_path, "edge.png", edge))
    line = Image.new("RGB", (90, 60), "white")
    line.paste((255 - ONE_COLOUR_SPREAD - 1,) * 3, (10, 30, 80, 31))  # one faint grey line
    check_host_conversion(_save(tmp_path, "line.png", line))  # passes
    from deepmolm_plugin.molecule.render import render_molecule

    check_host_conversion(_save(tmp_path, "aspirin.png", render_molecule(ASPIRIN, size=128)))  # a drawing passes


def test_the_gui_refuses_a_blank_image_in_the_status(chat_session, tmp_path):
    # Was: "Image: yours, 300×100 px." and the chat answered about a blank square.
    white = _save(tmp_path, "gray.png", Image.new("L", (300, 100), 255))
    page, tab = Page(chat_session), Tab()
    outputs = page.load(tab, ASPIRIN, None, white)
    assert tab.molecule is None and outputs[2] is None
    assert "gray.png&#x27; is one colour throughout (RGB (255, 255, 255)): it shows no molecule" in outputs[1], \
        outputs[1]


def test_the_chat_cli_eval_and_prepare_refuse_a_blank_image(tmp_path):
    from deepmolm_plugin import usage
    from deepmolm_plugin.cli import readable_image
    from deepmolm_plugin.data.prepare.items import decode_image
    from deepmolm_plugin.eval.model_vqa import QuestionError, check_image

    white = _save(tmp_path, "white.png", Image.new("RGB", (64, 64), "white"))
    with pytest.raises(usage.UsageError, match=r"--image-file .*white\.png: image .* is one colour throughout"):
        readable_image(white, "--image-file")
    with pytest.raises(QuestionError, match=r"image .*white\.png: image .* is one colour throughout"):
        check_image("q1", white, None)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, "PNG")
    with pytest.raises(ValueError, match="images/1.png is one colour throughout"):
        decode_image(buffer.getvalue(), "images/1.png")
