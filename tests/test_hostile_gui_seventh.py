"""The GUI, seventh sweep (a hostile sweep of `deepmolm-gui` in headless Chromium). What was wrong:

1. The chat rendered questions and replies as Markdown and HTML: `[C@@H](C)` of the page's own
   ibuprofen example became a link, `*CC(C)*` italics, a backslash before `[` vanished, `<b>`
   was bold and `<img src="http://...">` was requested from that server (the page is offline).
   Toasts quoting what was sent (an atom of the page's API, `<image>` in a question) too.
2. A file that is no image in the Image upload (text saved as photo.png, a PDF, a truncated
   download) was gradio's raw "Could not preprocess input component" toast with the temporary
   path, "Error" badges and a server traceback: gr.Image opened it with PIL before the app.
3. Each atom pick or colour switch on a 250-atom molecule took 2-4 s: the 3D labels were
   spread again each time, over all label pairs (1.2-1.9 s).
4. The index label of a big atom (Na, K, Cs) sat inside its sphere (a fixed offset).
5. Through the page's API a temperature or max new tokens of text or None was gradio's
   "Could not preprocess" error and a server TypeError, never the app's own message.
6. A reply the model ended at once was an empty bubble, and its question, left out of the
   conversation the model sees, still showed as if answered.

Handlers and figures in-process; the page's API through gradio_client against the app served
in this process; one browser test for what only the browser shows.
"""

from __future__ import annotations

import shutil
import socket
import uuid
from html.parser import HTMLParser
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio.utils import get_upload_folder
from PIL import Image
from rdkit import Chem
from rdkit.Chem import AllChem
from rdkit.Geometry import Point3D

from gui_helpers import loaded_tab
from deepmolm_plugin.gui import app as gui_app
from deepmolm_plugin.gui import viewer3d
from deepmolm_plugin.gui.app import COLOR_BY, Page, Tab, build_app, chat_messages

IBUPROFEN = "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O"
TYPED = [
    f"Is {IBUPROFEN} the S form?",
    r"And CC/C=C\[C@H](N)O or F/C=C/F\(x\)?",
    "Polymer *CC(C)* or C*C*C? __init__ and _x_",
    '<b>x</b> <img src="http://192.0.2.1/track.png"> a < b && c > d &amp; &lt;',
    "$$E = mc^2$$ `code` # not a heading\n- not a list\n\n  two  spaces",
]


class _Rendered(HTMLParser):
    """What a browser makes of a message inserted as HTML: its tags and its text."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], ""
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text += data


def _component(app, elem_id: str):
    return next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _events_reading(app, component) -> list:
    """(index, function) of the app's events whose inputs include `component`."""
    return [(k, f) for k, f in app.fns.items() if any(b._id == component._id for b in f.inputs)]


def _ethanol_sdf(path) -> str:
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    Chem.MolToMolFile(mol, str(path))
    return str(path)


def _not_images(folder) -> dict:
    """Files named as images that are none (or only the start of one)."""
    png = folder / "real.png"
    Image.new("RGB", (64, 64), "white").save(png)
    files = {"photo.png": b"this is not an image", "scan.pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
             "cut.png": png.read_bytes()[:60], "photo.heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"}
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = str(folder / name)
    return paths


# --- 1. text as typed ------------------------------------------------------------------------------
def test_the_chat_shows_questions_and_replies_as_typed(chat_session):
    chatbot = _component(build_app(chat_session), "chat")
    assert chatbot.render_markdown is False and chatbot.latex_delimiters == [] and chatbot.sanitize_html
    assert not chatbot.buttons  # gradio's copy buttons copied the escaped text ("pKa &lt; 5")
    messages = chat_messages([(text, text) for text in TYPED])  # each as a question and as a reply
    assert [m["role"] for m in messages] == ["user", "assistant"] * len(TYPED)
    for message, text in zip(messages, [t for t in TYPED for _ in "qa"]):
        shown = _Rendered(message["content"])  # was: <b>, <img> tags; and Markdown on top
        assert shown.tags == [] and shown.text == text, message


def test_toasts_in_the_page_quote_what_was_sent_as_text(chat_session):
    from gradio.context import LocalContext

    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    sent = '<img src="http://192.0.2.1/track.png">'
    with pytest.raises(gr.Error) as plain:  # in-process: a Python exception, its text as it is
        page.choose(tab, sent, True, COLOR_BY[0])
    assert sent in plain.value.message
    tokens = LocalContext.blocks.set(build_app(chat_session)), LocalContext.event_id.set("an event")
    try:  # in a page's event: gradio shows the message as HTML
        with pytest.raises(gr.Error) as served:
            page.choose(tab, sent, True, COLOR_BY[0])
    finally:
        LocalContext.blocks.reset(tokens[0])
        LocalContext.event_id.reset(tokens[1])
    shown = _Rendered(served.value.message)
    assert shown.tags == [] and shown.text == plain.value.message


# --- 2. an upload that is no image -------------------------------------------------------------------
def test_an_upload_that_is_no_image_is_named_in_the_status_box(chat_session):
    app = build_app(chat_session)
    [(_, load)] = _events_reading(app, _component(app, "image-input"))
    assert load.preprocess is False  # gr.Image's preprocess opened the upload with PIL before the app
    # where gradio keeps an upload, and registered as its upload route does: only uploads are read
    cache = Path(get_upload_folder()) / uuid.uuid4().hex
    cache.mkdir(parents=True)
    try:
        sdf = {"path": _ethanol_sdf(cache / "ethanol.sdf"), "orig_name": "ethanol.sdf"}
        good = cache / "drawing.png"
        drawing = Image.new("RGB", (80, 60), "white")
        drawing.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
        drawing.save(good)
        app.upload_file_set.update(str(p) for p in cache.iterdir())
        for name, path in _not_images(cache).items():
            app.upload_file_set.add(path)
            tab = Tab()
            status = _Rendered(load.fn(tab, sdf, {"path": path, "orig_name": name})[1]).text
            assert f"'{name}' (the image)" in status and str(cache) not in status, status
            assert tab.molecule is None
        status = _Rendered(load.fn(Tab(), sdf, {"path": str(good), "orig_name": "my drawing.png"})[1]).text
        assert "Image: yours, 80×60 px" in status, status
    finally:
        shutil.rmtree(cache)


# --- 3. atom picks on a big molecule -----------------------------------------------------------------
def test_label_spreading_is_fast_and_done_once_per_molecule(chat_session, monkeypatch):
    line = np.c_[np.arange(250) * 0.5, np.zeros(250)]  # 250 labels, each pair too close at first
    # (all pairs, 300 rounds: 1.2 s for these; a k-d tree now. Timed by no unit test.)
    assert viewer3d.spread_labels(line, 1.0).shape == (250, 2)
    cloud = np.random.default_rng(0).normal(size=(120, 2))
    spread = viewer3d.spread_labels(cloud, 0.5)
    gaps = np.linalg.norm(spread[:, None] - spread[None], axis=-1) + np.diag(np.full(120, np.inf))
    assert gaps.min() >= 0.5 * 0.999

    calls = []
    spread_labels = viewer3d.spread_labels
    monkeypatch.setattr(viewer3d, "spread_labels", lambda *a, **k: calls.append(1) or spread_labels(*a, **k))
    page = Page(chat_session)
    tab = loaded_tab(page, "CC(=O)Oc1ccccc1C(=O)O")
    figures = [page.choose(tab, atom, True, COLOR_BY[0])[2] for atom in (0, 5, 12)]
    figures.append(page.recolour(tab, COLOR_BY[1], 5))
    labels = [next(t for t in f.data if t.name == "atom index") for f in figures]
    assert len(calls) == 1, len(calls)  # was once per pick and per colour switch
    assert all(np.array_equal(l.x, labels[0].x) and np.array_equal(l.y, labels[0].y) for l in labels)


# --- 4. labels of big atoms -----------------------------------------------------------------------
@pytest.mark.parametrize("element", ["Na", "K", "Cs", "Fe", "Pt", "I", "C"])
def test_a_label_is_outside_its_atoms_sphere(element):
    mol = Chem.RWMol(Chem.MolFromSmiles(f"[{element}]C"))
    conf = Chem.Conformer(2)
    conf.SetAtomPosition(0, Point3D(0.0, 0.0, 0.0))
    conf.SetAtomPosition(1, Point3D(2.5, 0.0, 0.0))
    mol.AddConformer(conf)
    figure = viewer3d.molecule_figure(mol.GetMol())
    labels = next(t for t in figure.data if t.name == "atom index")
    radius = 0.12 + 0.3 * Chem.GetPeriodicTable().GetRcovalent(mol.GetAtomWithIdx(0).GetAtomicNum())  # as drawn
    label = np.array([labels.x[0], labels.y[0], labels.z[0]])
    assert label[2] > radius + 0.05, (element, label, radius)  # in front of the sphere, seen from the camera
    assert np.linalg.norm(label[:2]) > radius + 0.05, (element, label, radius)  # and beside it


# --- 5. the page's API -------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(chat_session):
    """The page served by this process, and a gradio_client on it."""
    from gradio_client import Client

    app = build_app(chat_session)
    app.queue().launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True,
                       ssr_mode=False, share=False)
    try:
        yield app, Client(app.local_url, verbose=False)
    finally:
        app.close()


def test_the_page_api_refuses_settings_with_the_apps_message(served, chat_session):
    app, client = served
    smiles = _events_reading(app, _component(app, "smiles-input"))[0][0]
    asks = _events_reading(app, _component(app, "question"))  # Send and Enter
    assert len(asks) == 2 and all(f.preprocess is False for _, f in asks)
    question = asks[0][0]
    client.predict("CCO", fn_index=smiles)
    for temperature, tokens in (("0.5", 4), (None, 4), (0.0, "4"), (0.0, None), (True, 4)):
        # was: gradio_client's AppError "Could not preprocess input component ... slider", a TypeError in the log
        box, chat = client.predict("What is it?", temperature, tokens, fn_index=question)[:2]
        assert box["value"] == "What is it?" and chat == [], (temperature, tokens)
    # gradio's bounds check is off with the preprocessing: the app keeps the slider's end
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    with pytest.warns(UserWarning, match=r"temperature must be at most 1.5 here, got 5"):
        list(page.ask(tab, "What is it?", 5.0, 4))
    with pytest.warns(UserWarning, match=r"The question must be text, got 7"):
        list(page.ask(tab, 7, 0.0, 4))
    assert tab.turns == []


def test_the_page_api_takes_an_upload_that_is_no_image_with_the_apps_message(served, tmp_path):
    from gradio_client import handle_file

    app, client = served
    [(structure, _)] = _events_reading(app, _component(app, "image-input"))
    photo = _not_images(tmp_path)["photo.png"]
    outputs = client.predict(handle_file(_ethanol_sdf(tmp_path / "ethanol.sdf")), handle_file(photo),
                             fn_index=structure)  # was: AppError "Could not preprocess ... a 'image' component"
    status = _Rendered(outputs[1]).text
    assert "Cannot use this input." in status and "'photo.png' (the image) is not a readable image" in status
    assert "gradio" not in status, status


# --- 6. an empty reply -----------------------------------------------------------------------------
def test_an_empty_reply_says_so_and_is_not_sent_to_the_model(chat_session, monkeypatch):
    from deepmolm_plugin.gui.chat import build_prompt

    monkeypatch.setattr(gui_app, "stream_reply", lambda *a, **k: iter(["", " "]))  # generate's first token: EOS
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    outputs = list(page.ask(tab, "What is its boiling point?", 0.2, 16))
    while_written = [o[1] for o in outputs[:-1]]
    assert all(m["role"] == "user" for chat in while_written for m in chat)  # no bubble before it ends
    last = outputs[-1][1][-1]
    assert last["role"] == "assistant" and "(the model answered nothing; this question is not part of the " \
                                          "conversation)" in _Rendered(last["content"]).text, last
    assert tab.turns == [("What is its boiling point?", "")]  # the note is the page's, never the model's
    prompt = build_prompt(chat_session.conv_mode, tab.turns + [("And its density?", None)])
    assert "boiling" not in prompt and "answered nothing" not in prompt


# --- in the browser --------------------------------------------------------------------------------
def test_the_browser_shows_the_typed_question_and_the_apps_upload_message(trained_checkpoint, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from test_gui import CHROMEDRIVER, CHROMIUM, App, _css, _external_requests, _load_smiles, _tab, _text, _wait

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1480,1400"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    app = App(trained_checkpoint, tmp_path / "gui.log")
    try:
        driver.get(app.url)
        _wait(driver, lambda d: d.find_elements("css selector", "#smiles-input input"), "the page")
        _load_smiles(driver, "CCO")
        question = "\n".join(TYPED[:4])
        driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                              _css(driver, "#question textarea"), question)
        _css(driver, "#send").click()
        shown = _wait(driver, lambda d: (u := d.find_elements("css selector", "#chat .user")) and u[0], "the question")
        assert shown.text == question
        assert not shown.find_elements("css selector", "img, b, a, em")
        assert _external_requests(driver, app.url) == []  # the <img> was fetched

        _wait(driver, lambda d: _css(d, "#send").is_enabled(), "the reply to end")
        _tab(driver, "Structure file").click()
        _css(driver, "#structure-input input[type=file]").send_keys(_ethanol_sdf(tmp_path / "ethanol.sdf"))
        _wait(driver, lambda d: "ethanol" in _text(d, "structure-input"), "the structure upload")
        _css(driver, "#image-input input[type=file]").send_keys(_not_images(tmp_path)["photo.png"])
        _wait(driver, lambda d: d.find_elements("css selector", "#image-input img"), "the image upload")
        _css(driver, "#load-structure").click()
        status = _wait(driver, lambda d: "Cannot use this input" in (t := _text(d, "molecule-status")) and t,
                       "the app's message")
        assert "'photo.png' (the image) is not a readable image" in status, status
        assert "Could not preprocess" not in _text(driver, "molecule-status") + driver.find_element(
            "tag name", "body").text  # gradio's error toast
        assert "Could not preprocess" not in (tmp_path / "gui.log").read_text()
    finally:
        app.stop()
        driver.quit()
