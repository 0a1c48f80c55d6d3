"""The chat CLI and model_vqa, twelfth sweep (sw12F): replies capped at the room the context
leaves after the prompt (and said), a given image beside a molecule said, --conv-mode errors
as option errors without a leftover --answers-file folder, duplicate ids of mixed types."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_encoder_config

import deepmolm_plugin
from llava.constants import IMAGE_TOKEN_INDEX

deepmolm_plugin.register()

PROMPT = [5, 6, IMAGE_TOKEN_INDEX, 7, 8]
ROOM = 3  # positions the context leaves after the prompt in these tests


def _config(vocab_size=900):
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2Config

    return LlavaQwen2Config(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, max_position_embeddings=512, mm_vision_tower="deepencoder",
        deepencoder_config=tiny_encoder_config().to_dict(), vision_tower_weights="random", mm_projector_type="fusion",
        mm_hidden_size=64, fp_bits=64, fp_levels=4, fusion_heads=2)


@pytest.fixture(scope="module")
def model():
    """A tiny llava_qwen2 whose context leaves ROOM positions after PROMPT with its image."""
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2ForCausalLM

    torch.manual_seed(0)
    model = LlavaQwen2ForCausalLM(_config()).eval()
    model.generation_config.pad_token_id = 0
    spliced = model.prepare_inputs_labels_for_multimodal(torch.tensor([PROMPT]), None, None, None, None, _image(),
                                                         None, molecule_fp=_fp()[None])
    model.prompt_positions = spliced[4].shape[1]  # text tokens + the image's positions
    model.config.tokenizer_model_max_length = model.prompt_positions + ROOM
    return model


def _fp():
    return torch.randint(0, 64, (3, 4), generator=torch.Generator().manual_seed(1))


def _image():
    return torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))


def _generate(model, generate=None, **kwargs):
    kwargs = dict(dict(images=_image(), molecule_fp=_fp()[None], max_new_tokens=40, do_sample=False), **kwargs)
    return (generate or model.generate)(torch.tensor([PROMPT]), **kwargs)


# --- 1. replies capped at the context ------------------------------------------------------------
def test_generate_caps_new_tokens_at_the_room_the_prompt_leaves(model):
    ends = []
    out = _generate(model, on_context_end=lambda new_tokens, context: ends.append((new_tokens, context)))
    # was: 40 new tokens after a prompt that left 3 positions, without a word
    assert out.shape[1] == ROOM
    assert ends == [(ROOM, model.prompt_positions + ROOM)]


def test_generate_within_the_room_is_unchanged_and_not_reported(model):
    ends = []
    out = _generate(model, max_new_tokens=2, on_context_end=lambda *a: ends.append(a))
    assert out.shape[1] == 2 and ends == []


def test_a_prompt_that_fills_the_context_is_refused(model, monkeypatch):
    from deepmolm_plugin.model.llava_qwen2 import PromptTooLong

    monkeypatch.setattr(model.config, "tokenizer_model_max_length", model.prompt_positions)
    with pytest.raises(PromptTooLong, match=rf"the prompt is {model.prompt_positions} positions long, which fills "
                                            rf"this model's context of {model.prompt_positions}: no position is left"):
        _generate(model)


def test_the_chat_notes_a_reply_cut_by_the_context(model, capsys):
    from deepmolm_plugin.cli import bind_model_inputs

    out = _generate(model, bind_model_inputs(model.generate, model, _fp()[None]), molecule_fp=None)
    assert out.shape[1] == ROOM
    err = capsys.readouterr().err
    context = model.prompt_positions + ROOM
    assert (f"note: the reply stopped at the end of this model's context of {context} positions "
            f"({model.prompt_positions} for the prompt") in err and f"{ROOM} for the reply): it may be cut short" in err


def test_model_vqa_marks_an_answer_cut_by_the_context_as_capped(model, tmp_path, capsys):
    from PIL import Image

    from deepmolm_plugin.eval.model_vqa import QuestionInput, QuestionInputs

    image = tmp_path / "m.png"
    picture = Image.new("RGB", (32, 32), "white")
    picture.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    picture.save(image)
    state = QuestionInputs([QuestionInput("long", str(image), _fp())], uses_molecules=True)
    state.model = model
    # the host's own max_new_tokens=1024 (model_vqa without --max-new-tokens)
    out = _generate(model, state.bind(model.generate), molecule_fp=None, max_new_tokens=1024)
    assert out.shape[1] == ROOM and state.capped == {"long": True}
    assert ("note: question 'long': the answer stopped at the end of the model's context of "
            f"{model.prompt_positions + ROOM} positions") in capsys.readouterr().err


# --- 2. an image file beside a molecule ----------------------------------------------------------
def test_the_resolver_notes_a_given_image_beside_the_molecule():
    from deepmolm_plugin.molecule.inputs import InputResolver

    resolver = InputResolver(option_names={"image": "--image-file", "smiles": "--smiles"})
    notes = resolver.resolve({"smiles": "CCO", "image": "benzoic.png"}, "m", depiction=True).notes
    assert ("the picture comes from the image file (--image-file benzoic.png) and molecule_fp from the SMILES "
            "(--smiles 'CCO'); they are not checked against each other: make sure the image shows that molecule"
            in notes), notes
    drawn = InputResolver(render_folder=None).resolve({"smiles": "CCO"}, "m", depiction=False).notes
    assert not any("picture comes from" in n for n in drawn)


def test_model_vqa_notes_questions_with_their_own_image_once(model, tmp_path, capsys):
    from rdkit import Chem
    from rdkit.Chem import Draw

    from deepmolm_plugin.eval.model_vqa import prepare_questions

    Draw.MolToFile(Chem.MolFromSmiles("c1ccccc1C(=O)O"), str(tmp_path / "benzoic.png"), size=(200, 200))
    lines = [{"question_id": q, "text": "What is it?", "smiles": "CCO", "image": "benzoic.png"} for q in ("a", "b")]
    prepare_questions(lines + [{"question_id": "c", "text": "?", "smiles": "CCN"}], str(tmp_path),
                      tmp_path / "renders", model.config)
    err = [line for line in capsys.readouterr().err.splitlines() if "picture comes from" in line]
    assert err == ["note: 2 questions give their own `image` beside their molecule; e.g. question 'a': the picture "
                   "comes from the image file (`image` benzoic.png) and molecule_fp from the SMILES (`smiles` 'CCO'); "
                   "they are not checked against each other: make sure the image shows that molecule"]


# --- 3. --conv-mode: an option error, no folder left ---------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2ForCausalLM
    from tiny_models import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    path = tmp_path_factory.mktemp("ckpt") / "model"
    torch.manual_seed(0)
    LlavaQwen2ForCausalLM(_config(len(tokenizer))).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.mark.parametrize("mode,reason", [("vicuna_v1", "conversation mode 'vicuna_v1' does not fit"),
                                         ("nosuch", "unknown conversation mode 'nosuch'")])
def test_model_vqa_conv_mode_is_an_option_error_and_leaves_no_folder(checkpoint, tmp_path, capsys, mode, reason):
    from deepmolm_plugin.eval import model_vqa

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": 1, "text": "What is it?", "smiles": "CCO"}) + "\n")
    with pytest.raises(SystemExit) as stop:
        model_vqa.main(["--model-path", str(checkpoint), "--question-file", str(questions),
                        "--answers-file", str(tmp_path / "out" / "deeper" / "a.jsonl"), "--conv-mode", mode])
    assert stop.value.code == 2  # was 1, as the question file's content
    assert (f"python -m deepmolm_plugin.eval.model_vqa: error: --conv-mode: {reason}"
            in capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # was: the empty folder the lock had made


def test_an_existing_answers_folder_is_kept_on_a_refusal(checkpoint, tmp_path):
    from deepmolm_plugin.eval import model_vqa

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": 1, "text": "What is it?", "smiles": "CCO"}) + "\n")
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit):
        model_vqa.main(["--model-path", str(checkpoint), "--question-file", str(questions),
                        "--answers-file", str(tmp_path / "out" / "a.jsonl"), "--conv-mode", "nosuch"])
    assert (tmp_path / "out").is_dir() and not list((tmp_path / "out").iterdir())


# --- 5. duplicate ids --------------------------------------------------------------------------
@pytest.mark.parametrize("ids,message", [
    ((1, "1"), 'lines 1 and 3: question_id 1 and "1" are one id as text'),
    (("1", 1), 'lines 1 and 3: question_id "1" and 1 are one id as text'),
    ((7, 7), "lines 1 and 3: question_id 7 appears twice"),
])
def test_duplicate_ids_name_both_lines_and_spellings(tmp_path, ids, message):
    from deepmolm_plugin.eval.model_vqa import EvalInputError, read_questions

    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question_id": ids[0], "text": "a?"}) + "\n\n"  # a blank line is still counted
                    + json.dumps({"question_id": ids[1], "text": "b?"}) + "\n")
    with pytest.raises(EvalInputError) as refused:
        read_questions(str(path))
    assert str(refused.value).startswith(f"{path}, {message}"), str(refused.value)
