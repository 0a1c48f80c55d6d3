"""The GUI's handlers (no browser), fourth sweep (sweep G): the chat panel's own trash icon,
refusals shown without gradio's "Error" badges, the 3D colour bar's ticks, the Max-new-tokens
box, and the status texts. One real session (the demo-size fusion checkpoint) per module."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from gui_helpers import loaded_tab
from deepmolm_plugin.gui.app import Page, Tab, build_app, status_html


def _component(app, elem_id: str):
    return next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _listener(app, component, event: str):
    """The app's function that `component`'s `event` runs."""
    fns = [f for f in app.fns.values() if (component._id, event) in [tuple(t) for t in f.targets]]
    assert len(fns) == 1, f"{event} of {component.elem_id}: {len(fns)} listeners"
    return fns[0]


def _users(chat) -> list:
    return [m["content"] for m in chat if m["role"] == "user"]


# --- 1. the Chatbot's trash icon ---------------------------------------------------------------
def test_the_chat_panels_trash_icon_clears_the_conversation_too(chat_session, monkeypatch):
    # Was: gradio's trash icon on the Chatbot emptied the display only; the tab kept its turns,
    # the next question brought them back and the model got them as history.
    app = build_app(chat_session)
    chatbot = _component(app, "chat")
    trash = _listener(app, chatbot, "clear")
    assert [o._id for o in trash.outputs] == [chatbot._id]
    page = trash.fn.__self__
    tab = loaded_tab(page, "CCO")
    list(page.ask(tab, "First question?", 0.0, 2))
    assert [q for q, _ in tab.turns] == ["First question?"]
    assert trash.fn(tab) == []  # the icon: the conversation goes, not only its display
    assert tab.turns == []
    histories = []
    import deepmolm_plugin.gui.app as app_module

    real = app_module.stream_reply

    def recorded(session_, molecule, turns, *settings):
        histories.append([q for q, _ in turns])
        yield from real(session_, molecule, turns, *settings)

    monkeypatch.setattr(app_module, "stream_reply", recorded)
    outputs = list(page.ask(tab, "Second question?", 0.0, 2))
    assert histories == [["Second question?"]]  # the model got no history
    assert _users(outputs[-1][1]) == ["Second question?"]  # and the chat shows none


def test_the_trash_icon_while_a_reply_is_written_changes_nothing(chat_session):
    # The icon stays clickable while a reply is written (gradio has no option to switch it
    # off): the conversation is kept and the reply's next update draws the chat again.
    app = build_app(chat_session)
    trash = _listener(app, _component(app, "chat"), "clear")
    page = trash.fn.__self__
    tab = loaded_tab(page, "CCO")
    list(page.ask(tab, "First question?", 0.0, 2))
    reply = page.ask(tab, "Second question?", 0.0, 2)
    next(reply)
    with pytest.warns(UserWarning, match="A reply is being written"):
        assert trash.fn(tab) == gr.skip()
    outputs = list(reply)
    assert _users(outputs[-1][1]) == ["First question?", "Second question?"]
    assert [q for q, _ in tab.turns] == ["First question?", "Second question?"] and not tab.answering


# --- 2. refusals: a toast, the page intact -----------------------------------------------------
def test_a_question_too_long_for_the_context_is_a_toast_and_the_page_stays(chat_session):
    # Was: gr.Error after the restoring update: gradio drew an "Error" badge over every output
    # (the chat, the question box, the buttons) until dismissed, and the server log printed a
    # traceback. Now: the reason as a warning toast, the chat and the question as they were.
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    list(page.ask(tab, "What is it?", 0.0, 2))
    question = "Please describe the pharmacology of this compound in detail. " * 60
    with pytest.warns(UserWarning, match="more than this model's context") as record:
        outputs = list(page.ask(tab, question, 0.0, 4))  # no exception: the event ends normally
    assert any("Clear the chat or ask a shorter question" in str(w.message) for w in record)
    last = outputs[-1]
    assert last[0]["value"] == question.strip() and last[0]["interactive"] is True  # kept in its box
    assert _users(last[1]) == ["What is it?"]  # the chat as it was
    assert all(u == gr.update(interactive=True) for u in last[2:])  # Send, Clear, Load: on again
    assert [q for q, _ in tab.turns] == ["What is it?"] and not tab.answering


def test_a_bad_setting_is_a_toast_not_an_error(chat_session):
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    with pytest.warns(UserWarning, match="max new tokens must be a whole number, got 2.5"):
        outputs = list(page.ask(tab, "What is it?", 0.0, 2.5))
    assert outputs[-1][0]["value"] == "What is it?" and not tab.answering and tab.turns == []


# --- 3. the colour bar's ticks -----------------------------------------------------------------
def _colorbar(figure):
    return next(t for t in figure.data if t.name == "atom info").marker.colorbar


def test_the_colour_bar_labels_are_distinct_percentages():
    # Was: tickformat ".3f" on shares 0.0712-0.0721: 0.072, 0.072, 0.072, 0.071, ... .
    from deepmolm_plugin.gui.viewer3d import molecule_figure

    mol = Chem.AddHs(Chem.MolFromSmiles("Cn1c(=O)c2c(ncn2C)n(C)c1=O"))  # caffeine
    AllChem.EmbedMolecule(mol, randomSeed=1)
    received = np.linspace(0.0712, 0.0721, 14)
    bar = _colorbar(molecule_figure(mol, received, 0))
    labels = list(bar.ticktext)
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    assert all(label.endswith("%") for label in labels)  # as the atom list: "(7.2%)"
    assert labels[0].startswith("7.12") and labels[-1].startswith("7.21"), labels
    assert bar.tickvals[0] == pytest.approx(0.0712) and bar.tickvals[-1] == pytest.approx(0.0721)
    # a wide range keeps one decimal; all atoms equal: one tick
    assert list(_colorbar(molecule_figure(mol, np.linspace(0.0, 0.5, 14))).ticktext)[-1] == "50.0%"
    assert len(_colorbar(molecule_figure(mol, np.full(14, 1 / 14))).ticktext) == 1


# --- 4. the Max-new-tokens box -----------------------------------------------------------------
def test_the_max_new_tokens_slider_ends_at_the_models_context(chat_session, monkeypatch):
    # Was: 1 to 1024 whatever the model; the demo model's context is 256.
    from deepmolm_plugin.gui.chat import MAX_NEW_TOKENS, max_new_tokens_limit

    context = getattr(chat_session.config, "tokenizer_model_max_length", None)
    slider = _component(build_app(chat_session), "max-new-tokens")
    assert slider.maximum == (min(MAX_NEW_TOKENS, context) if context else MAX_NEW_TOKENS)
    assert slider.value <= slider.maximum
    monkeypatch.setattr(chat_session.config, "tokenizer_model_max_length", 100, raising=False)
    assert max_new_tokens_limit(chat_session) == 100
    slider = _component(build_app(chat_session), "max-new-tokens")
    assert (slider.maximum, slider.value) == (100, 100)
    monkeypatch.setattr(chat_session.config, "tokenizer_model_max_length", None, raising=False)
    assert max_new_tokens_limit(chat_session) == MAX_NEW_TOKENS


def test_the_max_new_tokens_box_shows_the_value_used(chat_session, monkeypatch):
    # Was: typing 0 left "0" in the box while 1 token was used; 5000 left "5000" (the slider
    # ends at 1024, or the context); 2.5 stayed and the question was refused.
    monkeypatch.setattr(chat_session.config, "tokenizer_model_max_length", 256, raising=False)
    app = build_app(chat_session)
    slider = _component(app, "max-new-tokens")
    release = _listener(app, slider, "release")
    assert [o._id for o in release.outputs] == [slider._id] and release.preprocess is False  # the raw typed value
    fix = release.fn
    for typed, used, why in ((0, 1, "whole number from 1 to 256"), (5000, 256, "context is 256"),
                             (2.5, 3, "whole number"), (-3, 1, "whole number"), ("40", 40, None)):
        if why is None:
            assert fix(typed) == used
            continue
        with pytest.warns(UserWarning, match=why):
            assert fix(typed) == used
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a value in range: no toast
        assert fix(24) == 24
    assert fix("abc") == gr.skip() and fix(float("nan")) == gr.skip()  # left for `ask` to name


# --- 5. the status texts -----------------------------------------------------------------------
def test_one_heavy_atom_is_singular(chat_session):
    page = Page(chat_session)
    outputs = page.load(Tab(), "[Na+]", None, None)
    assert "1 heavy atom," in outputs[1] and "1 heavy atoms" not in outputs[1], outputs[1]
    assert "2 heavy atoms," in page.load(Tab(), "CO", None, None)[1]
    assert "heavy atom" not in status_html(None)


def test_the_missing_input_message_starts_a_sentence(chat_session, tmp_path):
    page = Page(chat_session)
    status = page.load(Tab(), "  ", None, None)[1]
    assert "Cannot use this input.</b> Give either a SMILES or a structure file." in status, status
    image = tmp_path / "drawing.png"
    from PIL import Image

    Image.new("RGB", (32, 32), "white").save(image)
    status = page.load(Tab(), None, None, str(image))[1]  # the Structure tab with only an image
    assert "Give either a SMILES or a structure file (an image alone is not enough" in status, status
