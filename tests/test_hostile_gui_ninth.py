"""The GUI, ninth sweep (a hostile sweep of `deepmolm-gui` in headless Chromium and through its
API with gradio_client, on the demo-size checkpoint). What was wrong:

1. The load event read any file its API named: a text file's first line came back in the
   error ("unparseable SMILES 'hunter2-password-line'"), a PNG as the global view, and the
   API took `.txt`/`.csv`/`.smi` "structures" the page's picker does not offer. (Over HTTP,
   gradio 6 itself refuses a path outside its upload folder; the sweep's gradio_client had
   uploaded its own copy of the file. Files in that folder that nobody uploaded, and
   in-process calls, still reached the handler.)
2. bf16 rounding noise was drawn as full-contrast attention: benzene's six equal shares,
   one bf16 step apart, were three dark cells and one white; the legend read
   "0.167 ... 0.167", in fractions, while the 3D colour bar and the atom texts used percent.
3. An atom choice left from the molecule before (or an atom sent as text, a colour not
   offered) got gradio's raw "Value: 12 is not in the list of choices: [0, 1, 2]" and a
   server traceback, never the app's message naming the atom range.
4. An uploaded file was named by gradio's altered copy: `a;b&c<d>.sdf` as `a;b&cd.sdf`,
   `"best"` as `%22best%22`.
5. A PDB or XYZ without hydrogens was refused with "(pass smiles=, ...)", advice the page
   could not follow: it refused a SMILES given with a structure file.

Handlers in-process through the app's own event functions; the page's API over HTTP against
the app served in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio.utils import get_upload_folder
from gradio_client.utils import strip_invalid_filename_characters
from PIL import Image
from rdkit import Chem
from rdkit.Chem import AllChem

from gui_helpers import loaded_tab
from test_hostile_gui_seventh import _component, _events_reading, _Rendered, served  # noqa: F401 (a fixture)
from deepmolm_plugin.gui.app import COLOR_BY, DISPLAY_SIZE, Page, Tab, build_app
from deepmolm_plugin.gui.attention import (AttentionMaps, attention_maps, heatmap_overlay, mark_atom, percent,
                                           rounding_resolution, value_range)
from deepmolm_plugin.gui.viewer3d import NO_TOKEN

SECRET = "hunter2-password-line"
SECRET_RGB = (12, 34, 56)


@pytest.fixture
def upload_folder():
    """A folder of this test's own inside gradio's upload folder, removed after."""
    folder = Path(get_upload_folder()) / f"test-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder)


def _upload(app, folder: Path, data: bytes, name: str) -> dict:
    """`data` as gradio's upload route hands a file `name` to the load event: saved under the
    name gradio makes of it, recorded in the app's `upload_file_set`, a FileData naming both."""
    copy = folder / uuid.uuid4().hex / strip_invalid_filename_characters(name)
    copy.parent.mkdir()
    copy.write_bytes(data)
    app.upload_file_set.add(str(copy))
    return {"path": str(copy), "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def _sdf(*smiles: str) -> bytes:
    lines = []
    for s in smiles:
        mol = Chem.AddHs(Chem.MolFromSmiles(s))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        lines.append(Chem.MolToMolBlock(mol) + "$$$$\n")
    return "".join(lines).encode()


def _png(rgb=(255, 255, 255), size=(80, 60)) -> bytes:
    import io

    out = io.BytesIO()
    picture = Image.new("RGB", size, rgb)
    picture.putpixel((0, 0), (0, 0, 0) if rgb != (0, 0, 0) else (255, 255, 255))  # one colour throughout is refused
    picture.save(out, format="PNG")
    return out.getvalue()


def _load_event(app):
    """The Load-structure event's function (the one gradio calls for the page and its API)."""
    [(_, load)] = _events_reading(app, _component(app, "structure-input"))
    return load


def _secrets(folder: Path) -> dict:
    """Files on the server that nobody uploaded: text that parses as a SMILES line, an image."""
    folder.mkdir()
    (folder / "notes.smi").write_text(f"{SECRET}\n")
    (folder / "private.png").write_bytes(_png(SECRET_RGB, (400, 200)))
    return {name: str(folder / name) for name in ("notes.smi", "private.png")}


def _shows_secret(outputs) -> bool:
    """Whether any output carries the secret file's text or the secret image's pixels."""
    for out in outputs:
        if isinstance(out, Image.Image) and SECRET_RGB in {c for _, c in out.convert("RGB").getcolors(1 << 24)}:
            return True
    return SECRET in str(outputs)


# --- 1. only uploads are read ----------------------------------------------------------------------
def test_the_load_event_reads_no_file_that_was_not_uploaded(chat_session, tmp_path, upload_folder):
    app = build_app(chat_session)
    load = _load_event(app)
    secret = _secrets(tmp_path / "secret")
    planted = upload_folder / "planted" / "notes.smi"  # in gradio's folder, as every image the app served, not uploaded
    planted.parent.mkdir()
    shutil.copy(secret["notes.smi"], planted)
    link = upload_folder / "link.smi"  # a link out of the folder, even recorded as an upload: resolved, it is outside
    link.symlink_to(secret["notes.smi"])
    app.upload_file_set.add(str(link))
    escape = upload_folder / ".." / os.path.relpath(secret["notes.smi"], upload_folder.parent)
    sdf = _upload(app, upload_folder, _sdf("CCO"), "ethanol.sdf")
    refused = {"outside": secret["notes.smi"], "planted": str(planted), "link": str(link), "dots": str(escape)}
    for how, path in refused.items():
        tab = Tab()
        outputs = load.fn(tab, {"path": path, "orig_name": "notes.smi"}, None)
        assert not _shows_secret(outputs), how  # was: "unparseable SMILES 'hunter2-password-line'"
        status = _Rendered(outputs[1]).text
        assert "'notes.smi' (the structure file) is not a file uploaded to this page" in status, (how, status)
        assert get_upload_folder() not in status and tab.molecule is None and outputs[2] is None, how
    # the server's image as "your image" next to a real upload: was returned as the global view
    tab = Tab()
    outputs = load.fn(tab, sdf, {"path": secret["private.png"], "orig_name": "private.png"})
    assert not _shows_secret(outputs) and outputs[2] is None and tab.molecule is None
    assert "'private.png' (the image) is not a file uploaded to this page" in _Rendered(outputs[1]).text
    # uploads of a type the pickers do not offer: refused by name, their text never quoted
    for name in ("notes.smi", "notes.txt", "lead.csv"):
        outputs = load.fn(tab, _upload(app, upload_folder, f"{SECRET}\n".encode(), name), None)
        status = _Rendered(outputs[1]).text
        assert f"'{name}' (the structure file) is not a file type this page reads: give SDF, SD, MOL, MOL2, XYZ " \
               "or PDB" in status and SECRET not in status, status
    outputs = load.fn(tab, sdf, _upload(app, upload_folder, b"%PDF-1.4\n", "scan.pdf"))
    assert "'scan.pdf' (the image) is not a file type this page reads: give PNG, JPG" in _Rendered(outputs[1]).text
    # what the page uploads is read
    outputs = load.fn(tab, sdf, _upload(app, upload_folder, _png(), "my drawing.png"))
    status = _Rendered(outputs[1]).text
    assert "ethanol.sdf: 3 heavy atoms" in status and "Image: yours, 80×60 px" in status, status
    # a JPEG as some browsers save it (.jfif), which the picker offers as an image: read (review, 2026-12-06)
    import io

    jpeg = io.BytesIO()
    photo = Image.new("RGB", (80, 60), (255, 255, 255))
    photo.paste((0, 0, 0), (0, 0, 4, 4))  # shows something: one colour throughout is refused
    photo.save(jpeg, format="JPEG")
    outputs = load.fn(tab, sdf, _upload(app, upload_folder, jpeg.getvalue(), "photo.jfif"))
    assert "Image: yours, 80×60 px" in _Rendered(outputs[1]).text, _Rendered(outputs[1]).text


def _over_http(app, fn, data: list) -> str:
    """The event `fn` called as any HTTP client can (gradio's /call/ route; gradio_client would
    upload its own copy of a file named in a FileData): the whole answer, as sent."""
    api = f"{app.local_url}gradio_api/call/{fn.api_name}"
    request = urllib.request.Request(api, json.dumps({"data": data}).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        event = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{api}/{event}", timeout=120) as response:
        return response.read().decode()


def test_the_page_api_reads_only_what_was_uploaded(served, tmp_path, upload_folder):
    from gradio_client import handle_file

    app, client = served
    load = _load_event(app)
    secret = _secrets(tmp_path / "secret")
    planted = upload_folder / "notes.smi"
    shutil.copy(secret["notes.smi"], planted)

    def data(path):  # the structure file, then nothing for the event's other inputs (the tab's State is not sent)
        return [{"path": path, "meta": {"_type": "gradio.FileData"}}] + [None] * (len(load.inputs) - 2)

    # in gradio's upload folder but not uploaded (was: its first line in the answer); outside it (gradio refuses)
    inside, outside = (_over_http(app, load, data(path)) for path in (str(planted), secret["notes.smi"]))
    for answer in (inside, outside):
        assert SECRET not in answer and "unparseable" not in answer, answer
    assert "&#x27;notes.smi&#x27; (the structure file) is not a file uploaded to this page" in inside, inside
    # a .smi the client really uploads: not a type the page's picker offers
    index = next(k for k, f in app.fns.items() if f is load)
    status = client.predict(handle_file(secret["notes.smi"]), None, fn_index=index)[1]
    assert "is not a file type this page reads" in status and SECRET not in status, status


# --- 2. attention uniform within rounding ----------------------------------------------------------
def _bf16_maps(atoms: int, heads: int = 2, side: int = 2, levels: int = 2) -> AttentionMaps:
    """Equal weights over `atoms` x `levels`, as recorded in bf16: each rounded up or down by
    one bf16 step at random (benzene's six carbons in the demo model)."""
    exact = 1.0 / (atoms * levels)
    below = torch.tensor(exact, dtype=torch.bfloat16).float()
    step = 2.0 ** (torch.floor(torch.log2(below)) - 7)  # one bf16 step at that size
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 2, (1, heads, side * side, atoms, levels))
    weights = (below + step * torch.from_numpy(noise)).to(torch.bfloat16)
    assert torch.equal(weights.float(), below + step * torch.from_numpy(noise))  # bf16 values, one step apart
    return attention_maps([weights], None)


def _squeezed(text: str) -> str:
    return "".join(text.split())


def test_attention_uniform_within_rounding_is_one_colour_and_said_so(chat_session):
    assert rounding_resolution(torch.bfloat16) == 2.0 ** -7 and rounding_resolution(torch.float16) == 2.0 ** -10
    assert rounding_resolution(torch.float32) == 2.0 ** -16  # the float32 sums behind the maps
    maps = _bf16_maps(6)
    assert maps.resolution == 2.0 ** -7  # read from the recorded weights' dtype
    assert np.ptp(maps.global_map) > 0 and np.ptp(maps.received) > 0  # the rounding spread
    page = Page(chat_session)
    tab = loaded_tab(page, "c1ccccc1")
    tab.molecule.attention = maps
    view, _, figure, text = page.choose(tab, 2, True, COLOR_BY[0])
    legends = _Rendered(text).text
    # was: "heatmap, global view 0.167 0.167", three dark cells and one white
    assert legends.count("uniform within rounding") == 3, legends  # the atom's sentence, the two legends
    assert "as every atom does" in legends and "most:" not in legends and "0.167" not in legends, legends
    low, high = value_range(maps.global_map, maps.resolution)
    assert low == high  # one colour: the drawing tinted alike in every cell
    assert _squeezed(f"heatmap, global view {percent(low)} uniform within rounding") in _squeezed(legends), legends
    share = percent(value_range(maps.received, maps.resolution)[0])
    assert f"receives {share} of all attention" in legends  # the value the legend writes, not the atom's noise
    assert {label.split("(")[1] for label, _ in page.panels(tab.molecule)[5]["choices"]} == {f"{share})"}
    flat = heatmap_overlay(tab.molecule.views.view, np.zeros((2, 2)), 0.0, 0.0, DISPLAY_SIZE)
    assert np.array_equal(np.asarray(view), np.asarray(mark_atom(flat, tab.molecule.atom_xy[2])))
    colours = set(next(t for t in figure.data if t.name == "atoms").vertexcolor) - {NO_TOKEN}
    assert len(colours) == 1, colours  # every heavy atom one colour (hydrogens: grey)
    bar = next(t for t in figure.data if t.name == "atom info").marker.colorbar
    assert list(bar.ticktext) == [f"{share} (uniform)"], list(bar.ticktext)
    # the exact case stays exact: two equal values are uniform, one step of a float32 map is not
    assert value_range(np.array([0.5, 0.5])) == (0.5, 0.5)
    assert value_range(np.array([0.5, 0.501]), rounding_resolution(torch.float32)) == (0.5, 0.501)


def test_shares_are_percent_with_the_decimals_that_tell_their_ends_apart(chat_session):
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    received = np.array([0.071201, 0.071249, 0.071230])  # ends 0.005 % apart
    tab.molecule.attention = AttentionMaps(global_map=np.full((2, 2, 3), 1 / 3), tile_map=None, received=received,
                                           heads=1, resolution=rounding_resolution(torch.float32))
    _, _, figure, text = page.choose(tab, 0, True, COLOR_BY[0])
    shown = _Rendered(text).text
    # was: "3D, attention received 0.071 0.071", a fraction, while the colour bar read percent
    assert _squeezed("3D, attention received 7.120% 7.125%") in _squeezed(shown), shown
    assert "Atom 0 (C) receives 7.120% of all attention; most: atom 1 (C), 7.125%." in shown, shown
    bar = next(t for t in figure.data if t.name == "atom info").marker.colorbar
    assert bar.ticktext[0] == "7.120%" and bar.ticktext[-1] == "7.125%", list(bar.ticktext)
    hover = next(t for t in figure.data if t.name == "atom info").hovertext
    assert hover[0] == "atom 0 · C · attention 7.120%", hover
    choices = page.panels(tab.molecule)[5]["choices"]
    assert choices[1][0] == "1 · C  (7.125%)", choices


# --- 3. an atom or colour the page did not offer ------------------------------------------------------
def test_a_stale_or_mistyped_atom_choice_gets_the_apps_message_and_no_traceback(served, capfd):
    from gradio_client.exceptions import AppError

    app, client = served
    smiles = _events_reading(app, _component(app, "smiles-input"))[0][0]
    choose = next(k for k, f in app.fns.items() if f.api_name == "choose")
    recolour = next(k for k, f in app.fns.items() if f.api_name == "recolour")
    client.predict("CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O", fn_index=smiles)
    assert "Atom 12 (C)" in client.predict(12, True, COLOR_BY[0], fn_index=choose)[3]
    client.predict("CCO", fn_index=smiles)  # the list still offers atom 12 for a moment in the browser
    capfd.readouterr()
    refused = {
        (choose, (12, True, COLOR_BY[0])): "atom 12 is not in 'CCO', which has 3 heavy atoms (0-2): choose again",
        (recolour, (COLOR_BY[1], 12)): "atom 12 is not in 'CCO', which has 3 heavy atoms (0-2): choose again",
        (choose, ("1", True, COLOR_BY[0])): "atom '1' is not an atom number: choose one from the list",
        (recolour, ("purple", 1)): "colour atoms by 'purple': choose 'attention received' or 'element'",
        (choose, (1, "false", COLOR_BY[0])): "the Heatmap switch must be true or false, got 'false'",
    }
    for (index, args), message in refused.items():
        with pytest.raises(AppError) as error:  # was: "Value: 12 is not in the list of choices: [0, 1, 2]"
            client.predict(*args, fn_index=index)
        assert str(error.value) == message, (args, str(error.value))
    assert "Traceback" not in capfd.readouterr().err  # was: one per refusal in the server's log
    for elem_id in ("atom-choice", "overlay", "color-by"):  # the app's checks get the raw values
        assert all(f.preprocess is False for _, f in _events_reading(app, _component(app, elem_id))), elem_id
    assert "Atom 2 (O)" in client.predict(2, False, COLOR_BY[1], fn_index=choose)[3]


# --- 4. an upload's own name ----------------------------------------------------------------------------
def test_an_upload_is_named_by_its_own_name(chat_session, upload_folder):
    app = build_app(chat_session)
    load = _load_event(app)
    name = "a;b&c<d>.sdf"
    sdf = _upload(app, upload_folder, _sdf("CCO", "CC"), name)
    assert Path(sdf["path"]).name == "a;b&cd.sdf"  # gradio's copy
    status = load.fn(Tab(), sdf, None)[1]
    shown = _Rendered(status)
    assert shown.tags == ["div", "b", "ul", "li"], shown.tags  # the name is text: no <d> element
    assert f"{name}: 3 heavy atoms" in shown.text, shown.text  # was: "a;b&cd.sdf: 3 heavy atoms"
    assert f"{name} holds more than one molecule; using the first ({name}#0)" in shown.text, shown.text
    assert "a;b&cd" not in shown.text
    # the browser sends `"` in a file name as %22: gradio saves `my mol's %22best%22 (1) é☃.sdf`
    name = "my mol's \"best\" (1) é☃.sdf"
    broken = _upload(app, upload_folder, b"not a molfile\n", name.replace('"', "%22"))
    broken["orig_name"] = name
    status = _Rendered(load.fn(Tab(), broken, None)[1]).text
    assert "Cannot use this input." in status and repr(name) in status and "%22" not in status, status


# --- 5. a PDB or XYZ without hydrogens ----------------------------------------------------------------
ETHANOL_PDB = (
    "HETATM    1  C1  EOH A   1       0.000   0.000   0.000  1.00  0.00           C\n"
    "HETATM    2  C2  EOH A   1       1.520   0.000   0.000  1.00  0.00           C\n"
    "HETATM    3  O   EOH A   1       2.030   1.410   0.000  1.00  0.00           O\n"
    "END\n"
)
ETHANOL_XYZ = "3\nethanol, no hydrogens\nC 0.000 0.000 0.000\nC 1.520 0.000 0.000\nO 2.030 1.410 0.000\n"


@pytest.mark.parametrize("name, text", [("ethanol.pdb", ETHANOL_PDB), ("ethanol.xyz", ETHANOL_XYZ)])
def test_a_structure_without_hydrogens_takes_its_smiles_on_the_structure_tab(chat_session, upload_folder, name,
                                                                               text):
    app = build_app(chat_session)
    load = _load_event(app)
    assert load.inputs[-1]._id == _component(app, "structure-smiles")._id  # last: a call giving the files alone fits
    upload = _upload(app, upload_folder, text.encode(), name)
    status = _Rendered(load.fn(Tab(), upload, None)[1]).text
    # was: "(pass smiles=, or use a format with bonds: SDF, MOL2)", and a SMILES beside a file was refused
    assert "no hydrogens in the coordinates" in status and "enter its SMILES beside the file" in status, status
    assert "smiles=" not in status
    tab = Tab()
    status = _Rendered(load.fn(tab, upload, None, " CCO ")[1]).text
    assert f"{name}: 3 heavy atoms" in status and "3D conformer from the file" in status, status
    assert "no ring marks the chosen atom" in status and tab.molecule.atom_xy is None, status
    assert tab.molecule.item.molecule.conformer == "file"
    status = _Rendered(load.fn(Tab(), upload, None, "CCC")[1]).text  # the resolver checks they are one molecule
    assert f"Cannot use this input. molecule '{name}'" in status, status
    status = _Rendered(load.fn(Tab(), upload, None, 5)[1]).text  # the page's API: the event takes raw values
    assert "the SMILES must be text, got 5" in status, status
