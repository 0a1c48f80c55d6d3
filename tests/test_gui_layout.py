"""The 3D view's layout: the whole molecule on a phone, the colour bar off the atoms, index
labels apart. Fast tests of the plotly figure, and one browser test at a phone's width
(390 x 844 CSS px, the app as `test_gui.py` starts it)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.gui.viewer3d import (FOV_TAN, NARROWEST_SCENE, heavy_atom_rows, molecule_figure,
                                          oriented)

IMATINIB = "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"  # 37 heavy atoms, long and flat
CROWDED = {
    "imatinib": IMATINIB,
    "atorvastatin": "CC(C)c1c(C(=O)Nc2ccccc2)c(-c2ccccc2)c(-c2ccc(F)cc2)n1CC[C@@H](O)C[C@@H](O)CC(=O)O",  # 41
    "cholesterol": "C[C@H](CCCC(C)C)[C@H]1CC[C@@H]2[C@@]1(CC[C@H]3[C@H]2CC=C4[C@@]3(CCC(C4)O)C)C",  # 28, fused rings
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
}


def _molecule(smiles: str) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    AllChem.MMFFOptimizeMolecule(mol)
    return oriented(mol)


def _trace(figure, name: str):
    return next(t for t in figure.data if t.name == name)


def _scene_px(figure) -> float:
    y0, y1 = figure.layout.scene.domain.y or (0, 1)
    return (y1 - y0) * figure.layout.height


def _projected(figure, points: np.ndarray, wide: float) -> np.ndarray:
    """(n, 2) screen positions of `points` as plotly.js draws them (perspective, vertical field
    of view pi/4, the cube of the axis ranges spanning 1, camera on +z): -1..1 is the view."""
    scene = figure.layout.scene
    ranges = [scene.xaxis.range, scene.yaxis.range, scene.zaxis.range]
    assert all(r is not None for r in ranges), "the view is left to plotly's autorange: nothing fits it"
    low = np.array([r[0] for r in ranges])
    side = np.array([r[1] - r[0] for r in ranges])
    np.testing.assert_allclose(side, side[0])  # a cube: the molecule is not stretched
    world = (points - low) / side - 0.5
    depth = scene.camera.eye.z - world[:, 2]
    return np.stack([world[:, 0] / (FOV_TAN * depth * wide), world[:, 1] / (FOV_TAN * depth)], axis=1)


def test_the_colour_bar_has_a_strip_of_its_own_under_the_scene():
    # Was: a vertical bar at x=0.98 over the scene, hiding the atoms at the right edge.
    mol = _molecule(CROWDED["aspirin"])
    figure = molecule_figure(mol, np.linspace(0.05, 0.1, mol.GetNumHeavyAtoms()), 0)
    bar = _trace(figure, "atom info").marker.colorbar
    assert bar.orientation == "h" and bar.yanchor == "bottom"
    # its ticks and title (a line of text each, ~18 px) and the bar, from its foot up
    top = bar.y + (bar.thickness + 2 * 18) / figure.layout.height
    assert top <= figure.layout.scene.domain.y[0], (top, figure.layout.scene.domain)
    assert bar.title.text == "share of attention" and len(set(bar.ticktext)) == len(bar.ticktext) == 5
    # element colours: no bar, the scene takes the whole figure
    assert (molecule_figure(mol).layout.scene.domain.y or (0, 1))[0] == 0


@pytest.mark.parametrize("name", ["imatinib", "aspirin"])
@pytest.mark.parametrize("attention", [True, False])
def test_the_whole_molecule_is_in_view_on_the_narrowest_panel(name, attention):
    # Was: aspectmode "data" and the camera at a fixed distance: a long molecule ran off both
    # sides, at a phone's width and at a desktop's.
    mol = _molecule(CROWDED[name])
    received = np.linspace(0.01, 0.05, mol.GetNumHeavyAtoms()) if attention else None
    figure = molecule_figure(mol, received, 3)
    wide = NARROWEST_SCENE / _scene_px(figure)  # the phone: width-bound; a wider panel shows more
    atoms, labels = _trace(figure, "atoms"), _trace(figure, "atom index")
    points = np.concatenate([np.stack([t.x, t.y, t.z], axis=1) for t in (atoms, labels)])
    screen = _projected(figure, points, wide)
    assert np.abs(screen).max() <= 1.0, np.abs(screen).max(axis=0)
    assert np.abs(screen).max() > 0.7  # ...and not a speck in the middle


@pytest.mark.parametrize("name", list(CROWDED))
def test_index_labels_of_crowded_molecules_are_apart_on_screen(name):
    # Was: 15 px labels pushed out from the middle: 8 pairs of cholesterol's within 1 angstrom
    # (0.22 at the closest), written over each other.
    mol = _molecule(CROWDED[name])
    rows = [r for r in heavy_atom_rows(mol) if r is not None]
    figure = molecule_figure(mol, np.full(len(rows), 1 / len(rows)))
    labels, info = _trace(figure, "atom index"), _trace(figure, "atom info")
    assert list(labels.text) == [str(r) for r in rows]  # every heavy atom keeps its label
    assert len(info.hovertext) == len(rows) and info.hovertext[0].startswith("atom 0 · ")
    xy = np.stack([labels.x, labels.y], axis=1)
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.diag(np.full(len(xy), np.inf))
    assert gaps.min() >= 0.5, gaps.min()  # angstrom: two labels half a bond apart are written over each other
    # angstrom per px on the phone's panel (the most of any width), from the figure's camera
    scene = figure.layout.scene
    side = scene.xaxis.range[1] - scene.xaxis.range[0]
    wide = NARROWEST_SCENE / _scene_px(figure)
    per_px = 2 * FOV_TAN * scene.camera.eye.z * wide * side / NARROWEST_SCENE
    font = labels.textfont.size
    assert font <= 15 and (len(rows) <= 20 or font <= 12)
    assert gaps.min() / per_px >= 1.15 * font, (gaps.min() / per_px, font)  # centres a label's width apart
    # ...and each label still by its atom (within two bond lengths)
    atoms = np.stack([info.x, info.y], axis=1)
    assert np.linalg.norm(xy - atoms, axis=1).max() < 3.0


def test_a_phone_shows_the_whole_3d_view(trained_checkpoint, tmp_path):
    # Was: at 390 px a long SMILES in the status box widened the page to 579 px; the 3D view,
    # 513 px wide, ran off the screen, and its molecule off the view's own edges.
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from test_gui import CHROMEDRIVER, CHROMIUM, App, _load_smiles, _non_blank, _pixels, _wait

    width, height = 390, 844
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader"):
        options.add_argument(arg)
    # a phone's viewport (headless Chromium's window is never narrower than 500 px)
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": width, "height": height,
                                                                          "pixelRatio": 1.0}})
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    app = App(trained_checkpoint, tmp_path / "gui.log")
    try:
        driver.get(app.url)
        _wait(driver, lambda d: d.find_elements("css selector", "#smiles-input input"), "the page")
        assert "37 heavy atoms" in _load_smiles(driver, IMATINIB)
        _wait(driver, lambda d: d.find_elements("css selector", "#viewer3d canvas"), "the 3D canvas")
        plot = driver.find_element("css selector", "#viewer3d .js-plotly-plot")
        driver.execute_script("arguments[0].scrollIntoView()", plot)
        time.sleep(2)  # WebGL draws after the canvas appears
        driver.save_screenshot(str(tmp_path / "phone.png"))
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width

        def rect(element):
            return driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", element)

        box = rect(plot)
        assert box["left"] >= 0 and box["right"] <= width, box
        scene = driver.find_element("css selector", "#viewer3d #scene")
        bar = rect(driver.find_element("css selector", "#viewer3d .colorbar"))
        assert bar["top"] >= rect(scene)["bottom"] - 1, (bar, rect(scene))  # the bar under the atoms, not on them
        pixels = _pixels(scene)
        assert _non_blank(pixels, 0.01), "the 3D view is blank"
        # the molecule is not cut: the view's left, right and bottom edges are background
        # (the top is left out: gradio's label sits over it)
        edges = np.asarray(pixels)[60:]
        for strip in (edges[:, :3], edges[:, -3:], edges[-3:]):
            assert strip.min() >= 235, "the molecule runs off the 3D view"
    finally:
        app.stop()
        driver.quit()
