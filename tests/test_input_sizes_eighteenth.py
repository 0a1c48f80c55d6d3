"""Two input-size problems, eighteenth round.

1. A question past the model's context was tokenised whole before its length was checked
   (about 1-4 s per MB: a 50 MB question cost minutes before its refusal), in the GUI, the
   chat CLI and model_vqa. Now a prompt whose text alone must take more tokens than the
   context is refused from its length (`model.prompt_length.text_past_context`), with the
   bound the tokenizer cannot go below (`fewest_tokens`): never a prompt that fits, which
   is tokenised and counted as before.
2. `python -m deepmolm_plugin.eval.questions` ("deepmolm-questions' converter") built a
   record's atom list under the builders' default cap of 256 heavy atoms to check its
   molecule_fp rows, and refused a larger one with advice to raise --max-atoms, an option
   it does not have. The cap is the model's (model_vqa applies it), as for the converter's
   SMILES and given rows: the atom list is now built up to PARSE_BOUND heavy atoms, and its
   tokens read alone past that.
"""

from __future__ import annotations

import json
import sys
import threading
import unicodedata
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from gui_helpers import RecordingModel
from tiny_models import make_tiny_tokenizer

HUGE = "What is it? " * 100_000  # 1.2 MB: far past any tiny context, from its length alone


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture
def spied(monkeypatch):
    """llava's tokenizer_image_token, recording the length of every prompt it tokenises."""
    from llava import mm_utils

    seen, real = [], mm_utils.tokenizer_image_token
    monkeypatch.setattr(mm_utils, "tokenizer_image_token",
                        lambda prompt, *a, **k: seen.append(len(prompt)) or real(prompt, *a, **k))
    return seen, real


def _text_tokens(tokenizer, prompt: str) -> int:
    """What the model's check_prompt_fits counts: the text tokens tokenizer_image_token makes."""
    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.mm_utils import tokenizer_image_token

    return sum(1 for i in tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX) if i != IMAGE_TOKEN_INDEX)


# --- 1. the bound ----------------------------------------------------------------------------------
def _adversarial_texts(tokenizer) -> dict:
    vocab = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"]
    longest = max(vocab, key=len).replace("\u0120", " ")  # ByteLevel's space
    return {"words": "<image>\nWhat is the molecular weight of this molecule? " * 40,
            "the longest token": longest * 300, "spaces": " " * 4000, "digits": "1234567890" * 300,
            "combining marks (NFC joins 2 into 1)": "e\u0301" * 1500,
            "Hangul jamo (3 into 1)": "\u1100\u1161\u11a8" * 1000,
            "Greek (4 into 1, the longest decomposition)": "\u0391\u0313\u0342\u0345" * 800,
            "Kelvin sign": "\u212a" * 3000, "special tokens": "<|im_end|>" * 400, "emoji": "\U0001F600" * 800,
            "placeholders": "<image>" * 300}


def test_the_bound_is_never_above_the_count_and_never_refuses_a_prompt_that_fits(tokenizer):
    from deepmolm_plugin.model.prompt_length import chars_per_token, fewest_tokens, text_past_context

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    longest = max(len(t) for t in [*spec["model"]["vocab"], *(a["content"] for a in spec["added_tokens"])])
    assert chars_per_token(tokenizer) == 4 * longest == 4 * 13  # NFC's 4, the longest token's 13 characters
    for name, text in _adversarial_texts(tokenizer).items():
        counted = _text_tokens(tokenizer, text)
        assert fewest_tokens(tokenizer, text) <= counted, name
        assert text_past_context(tokenizer, text, counted) is None, name  # exactly filled: the count decides
        assert text_past_context(tokenizer, text, counted + 1) is None, name
    refusal = text_past_context(tokenizer, HUGE, 4096)
    assert refusal.at_least and refusal.limit == 4096 and refusal.positions == fewest_tokens(tokenizer, HUGE) > 4096
    assert str(refusal) == (f"the prompt's text is 1,200,000 characters long, at least {refusal.positions:,} tokens "
                            "of this model's tokenizer (one token stands for at most 52 characters), more than this "
                            "model's context of 4096: the end, with the question, would be cut off; ask a shorter "
                            "question (in a chat: start a new one)")
    assert text_past_context(tokenizer, HUGE, None) is None  # a model that states no context: nothing to refuse


def test_the_unicode_forms_join_at_most_four_code_points():
    """`_NORMALIZER_SPANS`' 4: a composed code point absorbs its canonical decomposition."""
    from deepmolm_plugin.model.prompt_length import _NORMALIZER_SPANS

    longest = max(len(unicodedata.normalize("NFD", chr(c))) for c in range(sys.maxunicode + 1))
    assert longest == 4 and all(_NORMALIZER_SPANS[form] == longest for form in ("NFC", "NFD", "NFKC", "NFKD"))


def _fast(model, normalizer=None, pre_tokenizer=None, added=()):
    import transformers
    from tokenizers import AddedToken, Tokenizer

    backend = Tokenizer(model)
    if normalizer is not None:
        backend.normalizer = normalizer
    if pre_tokenizer is not None:
        backend.pre_tokenizer = pre_tokenizer
    backend.add_special_tokens([AddedToken(content, **options) for content, options in added])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend)


def test_no_bound_for_a_tokenizer_that_may_drop_or_fuse_characters():
    """Whitespace drops what it splits on, Strip drops white space, a fused unknown token
    stands for any run of unknown characters, a WordPiece word past its length is one [UNK],
    an added token with rstrip takes the white space after it, and a BPE with neither an
    unknown token, byte fallback nor the whole byte-level alphabet drops the characters it
    lacks: the length tells nothing."""
    from tokenizers import models, normalizers, pre_tokenizers

    from deepmolm_plugin.model.prompt_length import chars_per_token

    vocab = {"a": 0, "b": 1, "ab": 2, "[UNK]": 3}
    bpe = lambda **k: models.BPE(vocab=vocab, merges=[("a", "b")], **{"unk_token": "[UNK]", **k})  # noqa: E731
    assert chars_per_token(_fast(bpe(), normalizers.NFKC(), pre_tokenizers.Digits())) == 4 * 5  # "[UNK]"
    assert chars_per_token(_fast(bpe(unk_token=None, byte_fallback=True))) == 5
    assert chars_per_token(_fast(bpe(), pre_tokenizer=pre_tokenizers.Whitespace())) is None
    assert chars_per_token(_fast(bpe(), normalizer=normalizers.Strip())) is None
    assert chars_per_token(_fast(bpe(fuse_unk=True))) is None
    assert chars_per_token(_fast(models.WordPiece(vocab=vocab, unk_token="[UNK]"))) is None
    assert chars_per_token(_fast(bpe(), added=[("<sep>", dict(rstrip=True))])) is None
    assert chars_per_token(_fast(bpe(), added=[("<a-long-added-token>", {})])) == 20
    # no unknown token: a character outside the vocabulary is dropped (12,000 CJK characters
    # were no token at all under a byte-level BPE trained without the whole byte alphabet)
    assert chars_per_token(_fast(bpe(unk_token=None))) is None
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert chars_per_token(_fast(bpe(unk_token=None), pre_tokenizer=byte_level)) is None
    alphabet = {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    whole = models.BPE(vocab={**alphabet, "ab": len(alphabet)}, merges=[("a", "b")])
    assert chars_per_token(_fast(whole, pre_tokenizer=byte_level)) == 2


# --- 1. the GUI ------------------------------------------------------------------------------------


def test_the_gui_refuses_a_huge_question_before_tokenising_it(tiny_config, tokenizer, spied):
    import deepmolm_plugin

    deepmolm_plugin.register()
    from llava.constants import IMAGE_TOKEN_INDEX

    from deepmolm_plugin.encoder.image_processor import DeepEncoderImageProcessor
    from deepmolm_plugin.gui.chat import ChatRefusal, build_prompt, stream_reply
    from deepmolm_plugin.gui.views import ModelViews

    seen, tokenize = spied
    processor = DeepEncoderImageProcessor.from_config(tiny_config)
    size = processor.image_size
    limit = processor.num_llm_positions((size, size)) + 60
    session = SimpleNamespace(model=RecordingModel(limit), tokenizer=tokenizer, conv_mode="qwen2", lock=threading.Lock(),
                              image_processor=processor)
    views = ModelViews(images=torch.zeros(1, 3, size, size), image_size=(size, size), tile_images=None,
                       tile_grid=None, view=Image.new("RGB", (size, size)), mosaic=None)
    molecule = SimpleNamespace(views=views, batch_fp=lambda device: None)
    with pytest.raises(ChatRefusal) as refused:
        list(stream_reply(session, molecule, [(HUGE, None)], 0.0, 4))
    assert seen == []  # refused from its length (was: the whole 1.2 MB tokenised first, then refused)
    assert "characters long, at least" in str(refused.value) and f"model's context of {limit}:" in str(refused.value)
    assert session.model.calls == [] and not session.lock.locked()
    # too long by the count only: tokenised and counted, as before (no refusal from the length)
    with pytest.raises(ChatRefusal, match=r"text tokens \+ \d+ for the image\), more than this model's context"):
        list(stream_reply(session, molecule, [("What is it? " * 40, None)], 0.0, 4))
    assert len(seen) == 1
    # one that fits: the same tokens as before, answered
    assert list(stream_reply(session, molecule, [("What is it?", None)], 0.0, 4))
    prompt = build_prompt("qwen2", [("What is it?", None)])
    assert session.model.calls[0].tolist() == [tokenize(prompt, tokenizer, IMAGE_TOKEN_INDEX)]


# --- 1. the chat CLI ----------------------------------------------------------------------------
def _host(tokenizer, seen, context=256):
    """A host script's module (its names for the loader and tokenizer_image_token) whose
    loader returns `tokenizer` and a model that records what `generate` gets."""
    from llava.mm_utils import tokenizer_image_token

    generated = []
    model = SimpleNamespace(dtype=torch.float32, config=SimpleNamespace(tokenizer_model_max_length=context),
                            generate=lambda inputs=None, **kw: generated.append(inputs.tolist()) or torch.tensor([[7]]))
    host = SimpleNamespace(load_pretrained_model=lambda *a, **k: (tokenizer, model, None, 2048),
                           tokenizer_image_token=lambda prompt, *a, **k: seen.append(len(prompt))
                           or tokenizer_image_token(prompt, *a, **k))
    return host, generated


def _ask(host, tokenizer, model, prompt: str, **kwargs):
    """The host scripts' turn: the prompt tokenised by their name for it, then `generate`."""
    from llava.constants import IMAGE_TOKEN_INDEX

    input_ids = host.tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
    return model.generate(input_ids.unsqueeze(0), **kwargs)


def test_the_chat_cli_refuses_a_huge_question_before_tokenising_it(tokenizer, capsys):
    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.mm_utils import tokenizer_image_token

    from deepmolm_plugin.cli import loader_binding_inputs

    seen = []
    host, generated = _host(tokenizer, seen)
    with loader_binding_inputs(host, None):
        _, model, _, _ = host.load_pretrained_model("checkpoint")
        assert _ask(host, tokenizer, model, "<image>\n" + HUGE).shape == (1, 0)  # no reply: the host stores ""
        assert seen == [] and generated == []  # (was: tokenised whole, then sent to generate)
        err = capsys.readouterr().err
        assert "error: the prompt's text is 1,200,008 characters long, at least " in err, err
        assert "more than this model's context of 256: the end, with the question, would be cut off" in err, err
        # a question that fits: the same tokens as before reach generate
        assert _ask(host, tokenizer, model, "<image>\nWhat is it?").tolist() == [[7]]
        assert generated == [[tokenizer_image_token("<image>\nWhat is it?", tokenizer, IMAGE_TOKEN_INDEX)]]
        # after an answered turn the refusal says that the earlier turns count, with the bound
        _ask(host, tokenizer, model, "<image>\nWhat is it?\n" + HUGE)
        assert "error: this question with the chat's earlier turns is at least " in capsys.readouterr().err
    assert len(generated) == 1 and seen == [len("<image>\nWhat is it?")]
    assert host.tokenizer_image_token is not tokenizer_image_token  # the host's own name is back (the spy)


# --- 1. model_vqa ------------------------------------------------------------------------------
def test_model_vqa_refuses_a_huge_question_before_tokenising_it(tokenizer, tmp_path, monkeypatch, capsys):
    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.mm_utils import tokenizer_image_token
    from llava.model import builder

    from deepmolm_plugin.eval.model_vqa import QuestionInput, QuestionInputs

    Image.new("RGB", (8, 8)).save(tmp_path / "m.png")
    seen = []
    host, generated = _host(tokenizer, seen)
    monkeypatch.setattr(builder, "load_pretrained_model", host.load_pretrained_model)
    failures = []
    questions = [QuestionInput("huge", str(tmp_path / "m.png")), QuestionInput("fits", str(tmp_path / "m.png"))]
    state = QuestionInputs(questions, uses_molecules=False, failures=failures)
    with state.installed(host):
        _, model, _, _ = host.load_pretrained_model("checkpoint")
        assert _ask(host, tokenizer, model, "<image>\n" + HUGE, do_sample=False).shape == (1, 0)
        assert _ask(host, tokenizer, model, "<image>\nWhat is it?", do_sample=False).tolist() == [[7]]
    state.finish()
    assert seen == [len("<image>\nWhat is it?")]  # the huge one never tokenised (was: all 1.2 MB)
    assert generated == [[tokenizer_image_token("<image>\nWhat is it?", tokenizer, IMAGE_TOKEN_INDEX)]]
    assert [f["question_id"] for f in failures] == ["huge"] and state.unanswered == {"huge"}
    assert failures[0]["reason"].startswith("the prompt's text is 1,200,008 characters long, at least ")
    assert "error: question 'huge': the prompt's text is" in capsys.readouterr().err


# --- 2. eval.questions and the atom cap ----------------------------------------------------------
def _waters(n: int) -> tuple:
    """`n` water molecules 4 A apart: `n` heavy atoms, built in a fraction of a second."""
    atoms, coordinates = [], []
    for i in range(n):
        x = 4.0 * i
        atoms += ["O", "H", "H"]
        coordinates += [[x, 0.0, 0.0], [x + 0.757, 0.586, 0.0], [x - 0.757, 0.586, 0.0]]
    return atoms, coordinates


def _record(atoms, coordinates, rows) -> dict:
    return {"id": "big", "atoms": atoms, "coordinates": coordinates, "molecule_fp": rows,
            "conversations": [{"from": "human", "value": "<image>\nDescribe the input molecule."},
                              {"from": "gpt", "value": "Water, many times."}]}


def test_deepmolm_questions_checks_an_atom_list_past_256_heavy_atoms_without_capping_it(tmp_path):
    from deepmolm_plugin.eval import questions as eval_questions
    from deepmolm_plugin.eval.questions import QuestionFileError
    from deepmolm_plugin.molecule import fingerprint_record
    from deepmolm_plugin.molecule.builders import molecule_from_atoms
    from deepmolm_plugin.molecule_fp import FingerprintSettings

    fp = FingerprintSettings(bits=64, levels=4)
    atoms, coordinates = _waters(257)
    rows = fingerprint_record(molecule_from_atoms(atoms, coordinates, "big", max_atoms=None), fp).tolist()
    # was: "too large: 257 heavy atoms > max_atoms=256 (the heavy-atom cap; raise it with max_atoms /
    # --max-atoms, 'none' lifts it)", an option this tool does not have; the cap is the model's
    converted = eval_questions.convert([_record(atoms, coordinates, rows)], tmp_path, fp)
    assert converted[0]["molecule_fp"] == rows and converted[0]["atoms"] == atoms
    # still checked against the atom list: a row too many is another molecule's tokens
    with pytest.raises(QuestionFileError, match=r"record 'big': cannot use its molecule_fp: .*molecule_fp has 258 "
                                                r"atom rows but its structure \(atoms\) has 257 heavy atoms"):
        eval_questions.convert([_record(atoms, coordinates, rows + rows[:1])], tmp_path, fp)


def test_deepmolm_questions_reads_the_rows_alone_past_its_parse_bound(tmp_path):
    """Past PARSE_BOUND the atom list is not built (as a SMILES is not parsed): the rows are
    made inline, and model_vqa compares them with it under the model's own cap."""
    from deepmolm_plugin.eval import questions as eval_questions
    from deepmolm_plugin.eval.questions import PARSE_BOUND, QuestionFileError
    from deepmolm_plugin.molecule_fp import FingerprintSettings

    fp = FingerprintSettings(bits=64, levels=4)
    atoms, coordinates = _waters(PARSE_BOUND + 1)
    rows = torch.randint(0, 64, (PARSE_BOUND + 1, 4), generator=torch.Generator().manual_seed(0)).tolist()
    converted = eval_questions.convert([_record(atoms, coordinates, rows)], tmp_path, fp)
    assert converted[0]["molecule_fp"] == rows
    # the rows themselves are still checked (a hash past the bits)
    with pytest.raises(QuestionFileError, match=r"record 'big': cannot use its molecule_fp: "):
        eval_questions.convert([_record(atoms, coordinates, rows[:-1] + [[64, 0, 0, 0]])], tmp_path, fp)


def test_deepmolm_questions_compares_rows_past_its_parse_bound_with_a_small_molecule(tmp_path):
    """Rows are never capped by the converter: 5000 rows beside the SMILES CCO or a 10-atom
    list are another molecule's tokens (a first version of the bound capped them, and its
    tokens-alone reading then let them through)."""
    from deepmolm_plugin.eval import questions as eval_questions
    from deepmolm_plugin.eval.questions import PARSE_BOUND, QuestionFileError
    from deepmolm_plugin.molecule_fp import FingerprintSettings

    fp = FingerprintSettings(bits=64, levels=4)
    rows = torch.randint(0, 64, (PARSE_BOUND + 1, 4), generator=torch.Generator().manual_seed(0)).tolist()
    ethanol = {**_record(["C"], [[0.0, 0.0, 0.0]], rows), "smiles": "CCO"}
    del ethanol["atoms"], ethanol["coordinates"]
    with pytest.raises(QuestionFileError, match=rf"has {PARSE_BOUND + 1} atom rows but its SMILES 'CCO' has 3 heavy"):
        eval_questions.convert([ethanol], tmp_path, fp)
    atoms, coordinates = _waters(10)
    with pytest.raises(QuestionFileError, match=rf"has {PARSE_BOUND + 1} atom rows but its structure \(atoms\) has 10"):
        eval_questions.convert([_record(atoms, coordinates, rows)], tmp_path, fp)
