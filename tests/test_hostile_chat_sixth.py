"""The chat CLI and the GUI, sixth sweep: `--conv-mode plain` refused before the model loads
(it crashed on the second question), an image the host pads square counted as the model gets
it (every question failed with a raw ValueError), every resolver note printed by the chat
CLI (only one kind was), and a question of invisible characters alone refused (it was
answered). One real tiny checkpoint per session (conftest's `trained_checkpoint`)."""

from __future__ import annotations

import socket

import pytest
import torch
from PIL import Image
from rdkit import Chem
from rdkit.Chem import AllChem

from gui_helpers import loaded_tab
from deepmolm_plugin.gui.app import NO_QUESTION, Page, Tab

INVISIBLE = ["\u200b", "\u200e", "\u200f\u202e", "\u202a\u202b\u202c\u202d", "\u2060", "\ufeff",
             "\u200b \u200c\u200d\t"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ModelLoads(Exception):
    """The chat CLI got as far as loading the model (the host CLI's first step)."""


def _no_model_load(monkeypatch) -> list:
    """The host CLI's model load replaced by one that records the conversation mode and stops
    the chat there (ModelLoads): no model loads and stdin is never read."""
    import llava.serve.cli as host_cli

    for layer in (torch.nn.Linear, torch.nn.LayerNorm):  # the host CLI's disable_torch_init() replaces these
        monkeypatch.setattr(layer, "reset_parameters", layer.reset_parameters)
    loads = []

    def load(*args, **kwargs):
        loads.append(args)
        raise ModelLoads

    monkeypatch.setattr(host_cli, "load_pretrained_model", load)
    return loads


def _err_lines(capsys) -> list:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# --- bug 1: --conv-mode plain in a chat ------------------------------------------------------
@pytest.mark.parametrize("mode", ["plain", "v0_plain"])
def test_the_stage1_plain_template_cannot_chat(mode):
    # was: accepted; its sep2 is None, so the second question's prompt was str + None (TypeError)
    import deepmolm_plugin

    deepmolm_plugin.register()
    from deepmolm_plugin.patches.conversation_qwen2 import check_chat_conv_mode

    with pytest.raises(ValueError, match=rf"conversation mode '{mode}' cannot chat: it is the stage-1 "
                                         r"\(pretraining\) template, which drops the question .* use 'qwen2'"):
        check_chat_conv_mode(mode)
    assert check_chat_conv_mode("qwen2") == "qwen2" and check_chat_conv_mode("llava_v1") == "llava_v1"


def test_eval_keeps_the_plain_template():
    # model_vqa is one question, one answer: a stage-1 model is evaluated in `plain`
    import deepmolm_plugin

    deepmolm_plugin.register()
    from deepmolm_plugin.patches.conversation_qwen2 import resolve_conv_mode

    assert resolve_conv_mode("plain", "llava_qwen2") == "plain"


def test_chat_cli_refuses_plain_in_one_line_before_the_model_loads(trained_checkpoint, monkeypatch, capsys):
    from deepmolm_plugin import cli

    loads = _no_model_load(monkeypatch)
    with pytest.raises(SystemExit) as exit_:  # was: ModelLoads: the chat started, and crashed on question 2
        cli.main(["--model-path", str(trained_checkpoint), "--conv-mode", "plain", "--smiles", "CCO",
                  "--device", "cpu"])
    assert exit_.value.code == 2 and loads == []
    errors = [line for line in _err_lines(capsys) if not line.startswith("note: ")]
    assert len(errors) == 1, errors
    assert errors[0].startswith("python -m deepmolm_plugin.cli: error: --conv-mode: conversation mode 'plain' "
                                "cannot chat: it is the stage-1 (pretraining) template"), errors
    assert "use 'qwen2'" in errors[0]


def test_gui_refuses_plain_in_one_line_before_the_model_loads(trained_checkpoint, monkeypatch, capsys):
    from deepmolm_plugin.gui import __main__ as gui_main
    from deepmolm_plugin.gui.session import ChatSession

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # main sets it: restored after the test
    loads = []
    monkeypatch.setattr(ChatSession, "load", classmethod(lambda cls, *a, **kw: loads.append(kw) or 1 / 0))
    with pytest.raises(SystemExit) as exit_:
        gui_main.main(["--model-path", str(trained_checkpoint), "--conv-mode", "plain", "--device", "cpu",
                       "--port", str(_free_port())])
    assert exit_.value.code == 2 and loads == []
    errors = _err_lines(capsys)
    assert len(errors) == 1 and errors[0].startswith(
        "deepmolm-gui: error: --conv-mode: conversation mode 'plain' cannot chat: it is the stage-1"), errors


def test_a_gui_session_refuses_plain_before_loading(trained_checkpoint, monkeypatch):
    # ChatSession.load is the GUI's API entry (the page's server and tests): the rule holds there too
    import deepmolm_plugin

    deepmolm_plugin.register()
    from llava.model import builder

    from deepmolm_plugin.gui.session import ChatSession

    loads = []
    monkeypatch.setattr(builder, "load_pretrained_model", lambda *a, **kw: loads.append(a) or 1 / 0)
    with pytest.raises(ValueError, match="'plain' cannot chat: it is the stage-1"):
        ChatSession.load(str(trained_checkpoint), device="cpu", conv_mode="plain")
    assert loads == []


# --- bug 2: an image the host pads square ----------------------------------------------------
@pytest.fixture
def thin_image_tab(chat_session, tmp_path):
    """A tab holding ethanol from an SDF with a 1 x 5000 px image (the host's `pad` squares it)."""
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    sdf, png = tmp_path / "ethanol.sdf", tmp_path / "thin.png"
    Chem.MolToMolFile(mol, str(sdf))
    thin = Image.new("RGB", (1, 5000), (255, 255, 255))
    thin.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    thin.save(png)
    page, tab = Page(chat_session), Tab()
    page.load(tab, None, str(sdf), str(png))
    assert tab.molecule is not None and tab.molecule.views.image_size == (1, 5000)
    return page, tab


def test_a_question_about_an_image_the_host_pads_is_answered(thin_image_tab):
    # was: check_context counted the raw 1 x 5000 image, the processor's aspect check raised a plain
    # ValueError on every question (gradio "Error" and a server traceback)
    page, tab = thin_image_tab
    assert getattr(page.session.config, "image_aspect_ratio", None) == "pad"
    outputs = list(page.ask(tab, "What is this?", 0.0, 3))
    assert [q for q, _ in tab.turns] == ["What is this?"] and not tab.answering
    assert outputs[-1][0] == {"__type__": "update", "interactive": True}


def test_the_gui_counts_the_image_positions_the_model_encodes(thin_image_tab):
    # the count check_context uses is the length of what encode_images gives the LLM (as the model's own
    # check_prompt_fits counts it for the chat CLI and eval)
    from deepmolm_plugin.gui.chat import image_positions

    page, tab = thin_image_tab
    session, molecule = page.session, tab.molecule
    inputs = molecule.views.generate_kwargs(session.model.device, session.model.dtype)
    with torch.inference_mode():
        features = session.model.encode_images(inputs["images"], molecule.batch_fp(session.model.device),
                                               inputs.get("tile_images"), inputs.get("tile_grids"))
    assert image_positions(session.image_processor, molecule.views) == len(features[0])


def test_the_models_own_too_long_verdict_is_a_refusal_not_a_traceback(chat_session, monkeypatch):
    # should the page's count ever pass a prompt the model finds too long, the model's PromptTooLong (raised
    # in generate's thread) is a toast, as check_context's refusal is; was re-raised to gradio as an error
    import deepmolm_plugin.gui.chat as chat

    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    monkeypatch.setattr(chat, "check_context", lambda *a: None)
    question = "Please describe the pharmacology of this compound in detail. " * 60
    with pytest.warns(UserWarning, match="more than this model's context"):
        outputs = list(page.ask(tab, question, 0.0, 2))
    assert outputs[-1][0]["value"] == question.strip() and tab.turns == [] and not tab.answering


def test_an_image_the_tiles_processor_cannot_view_is_refused_at_load_naming_it(chat_session, tmp_path, monkeypatch):
    # in tiles mode the 1 x 5000 image leaves nothing of itself in a tile: refused when loaded, by the chat
    # CLI's and eval's check (check_model_views), naming the file (was: the processor's words, no file named)
    png = tmp_path / "needle.png"
    needle = Image.new("RGB", (1, 5000), (255, 255, 255))
    needle.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    needle.save(png)
    monkeypatch.setattr(chat_session.config, "image_mode", "tiles", raising=False)
    page, tab = Page(chat_session), Tab()
    panels = page.load(tab, "CCO", None, str(png))
    assert tab.molecule is None
    assert "needle.png: image is 1x5000 px" in panels[1], panels[1]


# --- bug 3: the chat CLI's molecule notes ----------------------------------------------------
def test_chat_cli_prints_every_note_the_gui_shows(trained_checkpoint, chat_session, monkeypatch, capsys):
    # was: only "more than one molecule"; `[#6]-[#8]`, a C-O diradical, was chatted about without a word
    from deepmolm_plugin import cli

    smiles = "[#6]-[#8]"
    loads = _no_model_load(monkeypatch)
    with pytest.raises(ModelLoads):  # the chat goes on, after the notes
        cli.main(["--model-path", str(trained_checkpoint), "--smiles", smiles, "--device", "cpu"])
    assert loads
    notes = [line[len("note: "):] for line in _err_lines(capsys) if line.startswith("note: ")]
    assert any(n.startswith("radical: unpaired electrons on atoms C1, O2") for n in notes), notes
    shown = chat_session.molecule(smiles, None, None).notes  # the GUI's status box lists these
    assert shown and all(note in notes for note in shown), (shown, notes)


def test_chat_cli_prints_fragment_notes(trained_checkpoint, monkeypatch, capsys):
    from deepmolm_plugin import cli

    _no_model_load(monkeypatch)
    with pytest.raises(ModelLoads):
        cli.main(["--model-path", str(trained_checkpoint), "--smiles", "CCO.O", "--device", "cpu"])
    notes = [line for line in _err_lines(capsys) if line.startswith("note: ")]
    assert any("relative placement is arbitrary" in n for n in notes), notes


# --- bug 4: a question of invisible characters -----------------------------------------------
@pytest.mark.parametrize("question", INVISIBLE)
def test_a_question_of_invisible_characters_is_empty(question):
    from deepmolm_plugin.data.prompts import empty_question

    assert empty_question(question).startswith("is empty (only white space and invisible characters such as U+")
    assert empty_question("   ") == "is empty"
    assert empty_question("\u200bWhat is it?") is None  # something to read: asked


@pytest.mark.parametrize("question", INVISIBLE)
def test_chat_cli_asks_again_after_an_invisible_question(question, capsys):
    from deepmolm_plugin.cli import refuse_image_placeholder

    typed = iter([question, "What is it?"])
    assert refuse_image_placeholder(lambda prompt="": next(typed))("USER: ") == "What is it?"
    assert "error: the question is empty" in capsys.readouterr().err


def test_chat_cli_sends_a_question_without_the_white_space_around_it():
    # 2026-12-06: "  What is it?  " went into the prompt with its spaces (tokens training never put there: it
    # strips the first, image turn), while the GUI stripped the same question
    from deepmolm_plugin.cli import refuse_image_placeholder

    typed = iter(["  What is it?  \r", "\tAnd its formula? "])
    ask = refuse_image_placeholder(lambda prompt="": next(typed))
    assert [ask("USER: "), ask("USER: ")] == ["What is it?", "And its formula?"]


def test_gui_refuses_an_invisible_question_as_an_empty_one(chat_session, monkeypatch):
    import deepmolm_plugin.gui.app as app_module

    asked = []
    monkeypatch.setattr(app_module, "stream_reply", lambda *a: asked.append(a) or iter(["answer"]))
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    for question in INVISIBLE:
        with pytest.warns(UserWarning, match=NO_QUESTION):
            list(page.ask(tab, question, 0.0, 2))
    assert asked == [] and tab.turns == [] and not tab.answering


def test_eval_takes_an_image_only_question(tmp_path):
    # the image alone is a prompt (the plain template's, which eval keeps): only the chat
    # entry points, where a person types, refuse an empty question (review of the sixth sweep)
    import json

    from deepmolm_plugin.eval.model_vqa import read_questions

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question_id": f"q{i}", "text": text, "smiles": "CCO"}) + "\n"
                                 for i, text in enumerate(("", "\u200b\ufeff"))))
    assert [q["question_id"] for q in read_questions(str(questions))] == ["q0", "q1"]


def test_the_page_api_refuses_more_new_tokens_than_the_slider_allows(chat_session):
    # was: only the slider's release handler capped it; the page's API took 10**9 new tokens
    from deepmolm_plugin.gui.chat import max_new_tokens_limit

    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    limit = max_new_tokens_limit(chat_session)
    with pytest.warns(UserWarning, match=rf"max new tokens must be at most {limit} here, got {10**9}"):
        list(page.ask(tab, "What is this?", 0.0, 10**9))
    assert tab.turns == [] and not tab.answering
    list(page.ask(tab, "What is this?", 0.0, limit))  # the slider's end is allowed
    assert [q for q, _ in tab.turns] == ["What is this?"]


def test_chat_cli_says_when_the_earlier_turns_fill_the_context(capsys):
    # 2026-12-06: once a long reply had filled the context, every later question, "ok" included, was refused
    # with "ask a shorter question", which could not help
    import torch

    from deepmolm_plugin.cli import bind_model_inputs
    from deepmolm_plugin.model.llava_qwen2 import PromptTooLong

    replies = iter([torch.tensor([[7]]), PromptTooLong("the prompt is 281 positions long", 281, 256)])

    def generate(inputs=None, **kwargs):
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    model = type("Model", (), {"dtype": torch.float32})()
    chat = bind_model_inputs(generate, model, None)
    assert chat(torch.tensor([[1]])).tolist() == [[7]]
    assert chat(torch.tensor([[1, 2]])).tolist() == [[1, 2]]  # nothing new: the host stores an empty reply
    err = capsys.readouterr().err
    assert "error: this question with the chat's earlier turns is 281 positions long, more than this model's " \
           "context of 256: ask a shorter question, or end the chat (an empty line) and start a new one" in err, err
    first = bind_model_inputs(lambda inputs=None, **kw: (_ for _ in ()).throw(PromptTooLong("the prompt is 300 "
                                                                                          "positions long", 300, 256)),
                              model, None)
    first(torch.tensor([[1]]))
    assert "error: the prompt is 300 positions long" in capsys.readouterr().err  # the question itself is too long


def test_transformers_length_warning_is_not_printed_before_the_models_own_refusal(trained_checkpoint, caplog):
    # 2026-12-06: "Token indices sequence length is longer than ... will result in indexing errors" came first
    from deepmolm_plugin.model.loading import load_tokenizer

    tokenizer = load_tokenizer(str(trained_checkpoint))
    with caplog.at_level("WARNING"):
        tokenizer("word " * (tokenizer.model_max_length + 10))
    assert "indexing errors" not in caplog.text
