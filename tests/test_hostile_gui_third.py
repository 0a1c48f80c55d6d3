"""Hostile input to the GUI's handlers (no browser), third sweep: each test is a case that
showed another molecule's state, held the page, or gave the model another image than the
one uploaded before its fix. One real session (the demo-size fusion checkpoint) per module."""

from __future__ import annotations

import threading

import gradio as gr
import numpy as np
import pytest
from PIL import Image
from rdkit import Chem
from rdkit.Chem import AllChem

from gui_helpers import loaded_tab
from deepmolm_plugin.gui.app import (COLOR_BY, NO_QUESTION, WAIT_FOR_MOLECULE, WAIT_FOR_REPLY, Page, Tab,
                                     build_app)


def _warnings(record) -> list:
    return [str(w.message) for w in record]


# --- one thing at a time per tab ---------------------------------------------------------------
def test_a_load_or_clear_while_a_reply_is_written_is_refused(chat_session):
    # Was: gradio ran the load beside the streaming reply; the new molecule's empty chat was
    # then overwritten by the old conversation, and the next question was asked about the new
    # molecule with the old one's history (a SMILES' Enter key and the examples stayed active).
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    reply = page.ask(tab, "What is it?", 0.0, 4)
    next(reply)  # the question is in; the reply is being written
    with pytest.warns(UserWarning, match=WAIT_FOR_REPLY):
        assert all(out == gr.skip() for out in page.load(tab, "c1ccccc1", None, None))
    with pytest.warns(UserWarning, match=WAIT_FOR_REPLY):
        assert page.clear(tab) == gr.skip()
    list(reply)
    assert tab.molecule.name == "CCO" and [q for q, _ in tab.turns] == ["What is it?"] and not tab.answering
    page.load(tab, "c1ccccc1", None, None)  # once it has ended: a new molecule, a new chat
    assert tab.molecule.name == "c1ccccc1" and tab.turns == []


def test_a_second_click_on_a_question_leaves_the_first_reply_alone(chat_session):
    # Was: Enter and Send (or a double click) before the switches went off: the second `ask`
    # blanked the chat and switched every control on while the first reply was written, or,
    # queued behind it, asked the same question a second time.
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    untouched = (gr.update(),) * (2 + page.busy_controls)
    assert page.hold(tab) == [gr.update(interactive=False)] * (1 + page.busy_controls)
    page.hold(tab)  # the second click, before the first reached `ask`
    first = page.ask(tab, "What is it?", 0.0, 4)
    next(first)
    with pytest.warns(UserWarning, match=WAIT_FOR_REPLY):
        assert list(page.ask(tab, "What is it?", 0.0, 4)) == [untouched]  # was: an empty chat, controls on
    outputs = list(first)
    assert [q for q, _ in tab.turns] == ["What is it?"] and not tab.answering and not tab.held
    assert outputs[-1][0] == gr.update(interactive=True)  # the first reply switches them on when it ends
    page.hold(tab)  # a later question is claimed and asked
    list(page.ask(tab, "Why?", 0.0, 4))
    # a double click whose second ask ran after the first reply ended: it is dropped, and
    # leaves the tab free (it set `answering` again, refusing every later question)
    page.hold(tab)
    page.hold(tab)
    list(page.ask(tab, "And?", 0.0, 4))
    with pytest.warns(UserWarning, match=WAIT_FOR_REPLY):
        list(page.ask(tab, "And?", 0.0, 4))
    assert not tab.answering and not tab.held
    assert [q for q, _ in tab.turns] == ["What is it?", "Why?", "And?"]  # asked once


def test_a_question_while_a_molecule_loads_waits_and_the_latest_load_wins(chat_session, monkeypatch):
    # Was: a question sent while a molecule loaded was asked about the molecule before, and
    # its reply landed in the new molecule's chat; of two loads in flight, the one that ended
    # last was shown, so a slow first SMILES replaced the second one the user asked for.
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    entered, release = threading.Event(), threading.Event()
    resolve = chat_session.molecule

    def slow_first(smiles, *args):
        if smiles == "CCN":
            entered.set()
            release.wait(30)
        return resolve(smiles, *args)

    monkeypatch.setattr(chat_session, "molecule", slow_first)
    slow = threading.Thread(target=page.load, args=(tab, "CCN", None, None))
    slow.start()
    assert entered.wait(30)
    with pytest.warns(UserWarning, match="being loaded") as record:
        outputs = list(page.ask(tab, "What is it?", 0.0, 4))
    assert _warnings(record) == [WAIT_FOR_MOLECULE] and len(outputs) == 1 and tab.turns == []
    page.load(tab, "CCC", None, None)  # started later, ends first
    release.set()
    slow.join(30)
    assert tab.molecule.name == "CCC" and tab.loading == 0


def test_an_empty_question_is_named(chat_session):
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    with pytest.warns(UserWarning) as record:  # was: nothing happened, and nothing said why
        list(page.ask(tab, "   \n ", 0.0, 4))
    assert _warnings(record) == [NO_QUESTION] and tab.turns == [] and not tab.answering


# --- the attention view ------------------------------------------------------------------------
def test_an_atom_not_in_the_molecule_is_refused_by_name(chat_session):
    # Was: -1 showed the last atom's heatmap as if chosen, and a row of the molecule before
    # (still in the list for a moment after a smaller one loaded) an IndexError traceback.
    page = Page(chat_session)
    tab = loaded_tab(page, "c1ccccc1")
    for atom in (6, -1):
        with pytest.raises(gr.Error, match=r"atom .* is not in 'c1ccccc1', which has 6 heavy atoms \(0-5\)"):
            page.choose(tab, atom, True, COLOR_BY[0])
        with pytest.raises(gr.Error, match="choose again"):
            page.recolour(tab, COLOR_BY[0], atom)
    view, _, figure, text = page.choose(tab, 5, True, COLOR_BY[0])
    assert "Atom 5 (C)" in text and figure is not None and view is not None


# --- uploads -----------------------------------------------------------------------------------
def test_an_uploaded_transparent_image_reaches_the_model_as_the_cli_reads_it(chat_session, tmp_path):
    # Was: gradio's Image input re-saved any non-RGB upload as RGB by dropping the alpha: a
    # black drawing on a transparent background (RGB 0 under alpha 0) became all black.
    from gradio.data_classes import ImageData

    from deepmolm_plugin.encoder.image_processor import load_image

    drawing = np.zeros((64, 64, 4), dtype=np.uint8)
    drawing[20:44, 30:34, 3] = 255  # a black bond; the rest transparent black
    path = tmp_path / "drawing.png"
    Image.fromarray(drawing, mode="RGBA").save(path)
    app = build_app(chat_session)
    upload = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "image-input")
    given = upload.preprocess(ImageData(path=str(path), orig_name="drawing.png"))
    seen = np.asarray(load_image(given))
    np.testing.assert_array_equal(seen, np.asarray(load_image(str(path))))
    assert seen[0, 0].tolist() == [255, 255, 255]  # the background is white, as the CLIs read it


def test_a_many_molecule_file_builds_only_the_record_it_uses(chat_session, tmp_path, monkeypatch):
    # Was: every record was built with its 3D work and all but the first thrown away: 300
    # 2D records took 12 s, a 10,000-molecule library held the page for many minutes.
    import deepmolm_plugin.molecule.io as io

    path = tmp_path / "library.sdf"
    with Chem.SDWriter(str(path)) as writer:
        for k in range(30):
            mol = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O" if k == 0 else "c1ccccc1O")
            AllChem.Compute2DCoords(mol)
            writer.write(mol)
    built = []  # records taken from each read, by 3D policy
    read = io.read_structures

    def counted(*args, **kwargs):
        built.append([kwargs.get("policy"), 0])
        for record in read(*args, **kwargs):
            built[-1][1] += 1
            yield record

    monkeypatch.setattr(io, "read_structures", counted)
    molecule = chat_session.molecule(None, str(path), None)
    assert molecule.atoms == 13
    assert max(n for policy, n in built if policy != "keep") == 1, built
    assert max(n for policy, n in built if policy == "keep") <= 2, built  # only to say there are more
    assert "library.sdf holds more than one molecule; using the first" in " ".join(molecule.notes)


def test_a_question_the_chat_refuses_shows_its_reason_and_keeps_the_question(chat_session):
    # Was: the refusal (here: the image placeholder typed into the question) reached gradio
    # as a plain ValueError: a bare "Error" pop-up and a traceback in the server's log.
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    # The reason is a toast (gr.Warning), not gr.Error: that put an "Error" badge over the chat
    # and the question box (sweep G).
    with pytest.warns(UserWarning, match="contains '<image>', the image placeholder"):
        outputs = list(page.ask(tab, "What is <image> here?", 0.0, 4))  # the question shown, then put back
    assert len(outputs) == 2 and outputs[-1][0]["value"] == "What is <image> here?"
    assert tab.turns == [] and not tab.answering


def test_an_image_file_that_is_gone_is_a_message_not_a_traceback(chat_session, tmp_path):
    # was: FileNotFoundError out of the handler (gradio's temporary copy cleaned up, or the API)
    page, tab = Page(chat_session), Tab()
    outputs = page.load(tab, "CCO", None, str(tmp_path / "missing.png"))
    assert tab.molecule is None and "image file not found" in str(outputs[1])
    # a folder in the image's place said only "[Errno 21] Is a directory", not that it was the image
    outputs = page.load(Tab(), "CCO", None, str(tmp_path))
    assert "image path is a folder, not an image file (the image)" in str(outputs[1])


@pytest.mark.parametrize("temperature, tokens, message", [
    (None, 5, "temperature must be a number, got None"), ("abc", 5, "temperature must be a number"),
    (0.2, float("nan"), "max new tokens must be a whole number"), (0.2, None, "max new tokens must be a whole"),
    (float("inf"), 5, "temperature must be a finite number"),
    (True, 5, "temperature must be a number, got True"), ("0.5", 5, "temperature must be a number, got '0.5'"),
])
def test_settings_no_slider_sends_are_a_message(chat_session, temperature, tokens, message):
    # was: Python's TypeError / ValueError out of the handler (through the page's API)
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    with pytest.warns(UserWarning, match=message):  # a toast, the question kept (was gr.Error: sweep G)
        outputs = list(page.ask(tab, "What is it?", temperature, tokens))
    assert outputs[-1][0]["value"] == "What is it?" and not tab.answering and tab.turns == []
    for atom in (True, 1.7, "x", float("nan"), float("inf")):  # True was atom 1, 1.7 atom 1, the rest tracebacks
        with pytest.raises(gr.Error, match="is not an atom number"):
            page.choose(tab, atom, False, COLOR_BY[0])


def test_a_long_running_page_leaves_no_file_per_molecule(chat_session, tmp_path, monkeypatch):
    # Was: every molecule's drawn depiction (a 1024 px PNG) stayed in the server's render
    # folder, and gradio kept every image it served, for as long as the page ran.
    import tempfile

    from deepmolm_plugin.molecule import inputs

    written = []
    monkeypatch.setattr(inputs, "write_depiction", lambda image, path, **kw: written.append(path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for smiles in ("CCO", "c1ccccc1O", "CC(=O)N"):
        assert chat_session.molecule(smiles, None, None).views.images.shape[0] == 1
    assert written == [] and list(tmp_path.rglob("*")) == []
    app = build_app(chat_session)
    assert app.delete_cache is not None and app.delete_cache[1] > 0  # gradio's own cache is swept


def test_a_depiction_drawn_in_memory_is_the_file_training_reads(chat_session, tmp_path):
    # The GUI draws in memory; training, the CLI and eval draw into a render folder and read
    # the file back: the model must get the same pixels either way.
    from deepmolm_plugin.encoder.image_processor import load_image
    from deepmolm_plugin.gui.views import model_views
    from deepmolm_plugin.molecule.inputs import InputResolver

    smiles = "O=C(O)c1ccccc1OC(C)=O"
    training = InputResolver(chat_session.resolver.fp, render_folder=str(tmp_path))
    drawn = training.resolve({"smiles": smiles}, "r0", fingerprint=False).image
    from_file = model_views(load_image(drawn), chat_session.image_processor, chat_session.config)
    shown = chat_session.molecule(smiles, None, None).views
    np.testing.assert_array_equal(shown.images.numpy(), from_file.images.numpy())


def test_an_image_the_clis_and_training_refuse_is_refused_here_too(chat_session, tmp_path):
    # Was: a black drawing on a transparent background (or a 16-bit grey PNG), which the chat
    # CLI, eval and training refuse (the host's loaders read another picture), was taken by
    # the GUI, read on white: an input no other entry point gives the model.
    drawing = np.zeros((64, 64, 4), dtype=np.uint8)
    drawing[20:44, 30:34, 3] = 255
    path = tmp_path / "transparent.png"
    Image.fromarray(drawing, mode="RGBA").save(path)
    with pytest.raises(ValueError, match=r"transparent.png.*the host reads it with PIL's convert\('RGB'\)"):
        chat_session.molecule("CCO", None, str(path))


def test_a_huge_smiles_is_named_shortly_in_its_error(chat_session):
    """was: the 5000-atom SMILES repeated whole in the error shown in the status box (5133
    characters)."""
    with pytest.raises(ValueError) as error:
        chat_session.molecule("C" * 5000, None, None)
    assert "too large: 5000 heavy atoms" in str(error.value) and "(5000 characters)" in str(error.value)
    assert len(str(error.value)) < 400
