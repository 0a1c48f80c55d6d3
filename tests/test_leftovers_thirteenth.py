"""Leftovers, thirteenth sweep: the GUI's note under a reply the model's context cut (by the
rule model_vqa records `metadata.capped` with), shard indexes whose "metadata" is not an
object, and every error of a structure file read with a SMILES beside it naming the file."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from rdkit import Chem
from rdkit.Chem import AllChem

import deepmolm_plugin

deepmolm_plugin.register()

from gui_helpers import loaded_tab  # noqa: E402
from deepmolm_plugin.gui.app import Page  # noqa: E402
from deepmolm_plugin.tensor_files import CheckpointError, open_checkpoint  # noqa: E402

NOTE = "reply stopped at the model's context"


# --- 1. the GUI's note under a reply the context cut ---------------------------------------------
class _Replying:
    """Stands in for the model's `generate`: streams `reply_ids`, says the context ended the
    reply (`on_context_end(room, context)`) when told to, returns the new tokens."""

    device, dtype = torch.device("cpu"), torch.float32
    config = SimpleNamespace(mm_use_im_start_end=False)
    generation_config = SimpleNamespace(eos_token_id=None)

    def __init__(self, reply_ids, context_end=None):
        self.reply_ids, self.context_end = reply_ids, context_end

    def generate(self, input_ids, streamer=None, on_context_end=None, **kwargs):
        streamer.put(input_ids)
        for token in self.reply_ids:
            streamer.put(torch.tensor([token]))
        streamer.end()
        if self.context_end is not None:
            on_context_end(*self.context_end)
        return torch.tensor([self.reply_ids])


def _stub_reply(model, conv_mode="qwen2"):
    from tiny_models import make_tiny_tokenizer

    from deepmolm_plugin.gui.chat import stream_reply
    from deepmolm_plugin.gui.views import ModelViews

    tokenizer = make_tiny_tokenizer()
    model.reply_ids = model.reply_ids(tokenizer) if callable(model.reply_ids) else model.reply_ids
    session = SimpleNamespace(model=model, tokenizer=tokenizer, conv_mode=conv_mode, lock=threading.Lock())
    views = ModelViews(images=torch.zeros(1, 3, 128, 128), image_size=(128, 128), tile_images=None,
                       tile_grid=None, view=Image.new("RGB", (128, 128)), mosaic=None)
    molecule = SimpleNamespace(views=views, batch_fp=lambda device: None)
    notes = []
    texts = list(stream_reply(session, molecule, [("Describe it?", None)], 0.0, 8, notes))
    return texts[-1], notes


def test_a_reply_the_context_cut_gets_a_note_with_the_numbers():
    reply, notes = _stub_reply(_Replying(lambda t: t("a long answer").input_ids, context_end=(3, 40)))
    assert reply == "a long answer"  # the reply itself is unchanged: the note is apart from it
    assert notes == ["reply stopped at the model's context (40 tokens: 37 for the image and the conversation, 3 "
                     "for this reply); it may be cut short. Clear the chat or ask a shorter question for a longer "
                     "reply."]


def test_a_reply_that_ended_on_its_end_token_gets_no_note():
    # the same rule as model_vqa's metadata.capped: a last token that ends generation is an end
    _, notes = _stub_reply(_Replying(lambda t: t("done").input_ids + [t.eos_token_id], context_end=(3, 40)))
    assert notes == []
    _, notes = _stub_reply(_Replying(lambda t: t("a long answer").input_ids))  # the context did not end it
    assert notes == []


def test_model_vqa_and_the_gui_share_one_rule():
    from deepmolm_plugin.eval import model_vqa
    from deepmolm_plugin.gui import chat

    assert model_vqa.stopped_at_cap is chat.stopped_at_cap and model_vqa.end_ids is chat.end_ids
    state = model_vqa.QuestionInputs([], uses_molecules=False)
    state.model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[9]))
    state.tokenizer = SimpleNamespace(eos_token_id=8, decode=lambda ids: "x")
    assert state.stopped_at_cap(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 2, 3]]), 3) is True
    assert state.stopped_at_cap(torch.tensor([[1, 2, 9]]), torch.tensor([[1, 2, 9]]), 3) is False


def _prompt_positions(session, molecule, question: str) -> int:
    """The LLM positions of the page's prompt for `question` (text tokens + image), as
    `check_context` counts them."""
    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.mm_utils import tokenizer_image_token

    from deepmolm_plugin.gui.chat import build_prompt, image_positions

    ids = tokenizer_image_token(build_prompt(session.conv_mode, [(question, None)]), session.tokenizer,
                                IMAGE_TOKEN_INDEX, return_tensors="pt")
    return int((ids != IMAGE_TOKEN_INDEX).sum()) + image_positions(session.image_processor, molecule.views)


def test_the_page_shows_the_note_under_the_reply_and_keeps_it_out_of_the_prompt(chat_session, monkeypatch):
    # Was: the chat CLI and model_vqa said a reply ran into the end of the context; the page
    # showed the cut reply as if whole.
    import deepmolm_plugin.gui.app as app_module

    model = chat_session.model
    page = Page(chat_session)
    tab = loaded_tab(page, "CCO")
    question = "What is it?"
    positions = _prompt_positions(chat_session, tab.molecule, question)
    monkeypatch.setattr(model.config, "tokenizer_model_max_length", positions + 3)  # room for 3 new tokens
    # no token may end the reply early: it runs into the context's end
    ends = sorted({chat_session.tokenizer.eos_token_id, chat_session.tokenizer.pad_token_id,
                   chat_session.tokenizer.convert_tokens_to_ids("<|im_end|>")})
    monkeypatch.setattr(model.generation_config, "suppress_tokens", ends, raising=False)
    outputs = list(page.ask(tab, question, 0.0, 10))  # more than the room: the model lowers it to 3
    bubble = outputs[-1][1][-1]
    assert bubble["role"] == "assistant"
    assert (f"<em>({NOTE} ({positions + 3} tokens: {positions} for the image and the conversation, 3 for this "
            "reply); it may be cut short.") in bubble["content"]
    assert NOTE not in tab.turns[0][1]  # the reply as the model said it: the next prompt's history
    prompts = []
    real = app_module.stream_reply

    def recorded(session_, molecule, turns, *settings):
        prompts.append(turns)
        yield from real(session_, molecule, turns, *settings)

    monkeypatch.setattr(app_module, "stream_reply", recorded)
    monkeypatch.setattr(model.config, "tokenizer_model_max_length", 256)
    outputs = list(page.ask(tab, "And?", 0.0, 2))
    assert all(NOTE not in (reply or "") for _, reply in prompts[0])
    chat = outputs[-1][1]
    assert NOTE in chat[1]["content"] and NOTE not in chat[3]["content"]  # still under the first reply only
    assert page.clear(tab) == [] and tab.notes == {}


# --- 2. shard indexes whose "metadata" is not an object ----------------------------------------
@pytest.fixture(scope="module")
def qwen2(tmp_path_factory) -> Path:
    from tiny_models import make_tiny_qwen2

    folder = tmp_path_factory.mktemp("qwen2")
    make_tiny_qwen2(folder, hidden_size=32, layers=1, heads=2, kv_heads=1, intermediate=64)
    return folder


def _sharded(src: Path, dst: Path, index: dict) -> Path:
    """`src`'s folder with its weights in two shards, indexed by `index` plus the weight_map."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    (dst / "model.safetensors").unlink()
    state = load_file(str(src / "model.safetensors"))
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[:3], "model-00002-of-00002.safetensors": names[3:]}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(dst / shard))
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (dst / "model.safetensors.index.json").write_text(json.dumps({**index, "weight_map": weight_map}))
    return dst


@pytest.mark.parametrize("metadata, kind", [([], "array"), ("total_size", "string"), (None, "null"),
                                            (5, "number")])
def test_index_metadata_that_is_no_object_is_one_error_naming_the_index(qwen2, tmp_path, metadata, kind):
    from deepmolm_plugin.model.loading import load_causal_lm_checked, load_llm

    folder = _sharded(qwen2, tmp_path / "sharded", {"metadata": metadata})
    index = folder / "model.safetensors.index.json"
    message = rf"{index}: its 'metadata' is a JSON {kind}, not an object"
    # was: open_checkpoint passed it, and transformers' from_pretrained raised TypeError
    for read in (open_checkpoint, load_llm, load_causal_lm_checked):
        with pytest.raises(CheckpointError, match=message):
            read(str(folder))


def test_an_index_without_metadata_is_read_by_our_loaders_and_named_for_transformers(qwen2, tmp_path):
    from deepmolm_plugin.tensor_files import missing_index_metadata

    folder = _sharded(qwen2, tmp_path / "bare", {})
    assert len(open_checkpoint(folder)) > 3  # nothing of ours needs it
    with pytest.raises(CheckpointError, match=rf"{folder / 'model.safetensors.index.json'} has no 'metadata' key, "
                                              "which transformers' from_pretrained reads"):
        missing_index_metadata(folder)
    written = _sharded(qwen2, tmp_path / "written", {"metadata": {"total_size": 1}})
    assert missing_index_metadata(written) is None and missing_index_metadata(qwen2) is None


@pytest.mark.parametrize("loader", ["load_llm", "load_causal_lm_checked"])
def test_the_llm_loaders_name_an_index_without_metadata(qwen2, tmp_path, loader):
    """transformers reads index["metadata"] itself: a KeyError 'metadata' traceback from both
    LLM loaders before; one CheckpointError naming the index now, and a written one loads."""
    from deepmolm_plugin.model import loading

    folder = _sharded(qwen2, tmp_path / "bare", {})
    with pytest.raises(CheckpointError, match="model.safetensors.index.json has no 'metadata' key"):
        getattr(loading, loader)(str(folder))
    written = _sharded(qwen2, tmp_path / "written", {"metadata": {"total_size": 1}})
    assert getattr(loading, loader)(str(written)) is not None


# --- 3. a structure file read with a SMILES beside it --------------------------------------------
def _xyz(folder: Path, smiles: str, name: str) -> Path:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    path = folder / name
    path.write_text(Chem.MolToXYZBlock(mol))
    return path


DIBORANE = """8
diborane
B 0.000 0.000 0.885
B 0.000 0.000 -0.885
H 0.000 0.970 0.000
H 0.000 -0.970 0.000
H 1.040 0.000 1.480
H -1.040 0.000 1.480
H 1.040 0.000 -1.480
H -1.040 0.000 -1.480
"""

SMILES_BESIDE = [
    ("N[C@@H](C)C(=O)O", "N[C@H](C)C(=O)O", "atom C2 is R in the SMILES, S in the structure"),  # stereo
    ("C/C=C/C", "C/C=C\\C", "is Z in the SMILES, E in the structure"),  # E/Z
    ("CCO", "CCO |Sg:n:2::ht|", "a repeat unit is not one concrete molecule"),  # a family, not a molecule
    ("CCO", "C(", "unparseable SMILES"),
    (None, "[BH2]1[H][BH2][H]1", "sanitization failed"),  # the bridged (unbonded in the file) form
]


@pytest.mark.parametrize("drawn, smiles, reason", SMILES_BESIDE, ids=["stereo", "e-z", "family", "unparseable",
                                                                      "bridging-h"])
def test_every_smiles_beside_structure_error_names_the_file_and_record(tmp_path, drawn, smiles, reason):
    from deepmolm_plugin.molecule import MoleculeError, read_structures
    from deepmolm_plugin.molecule.inputs import InputError, InputResolver

    if drawn is None:
        path = tmp_path / "b2h6.xyz"
        path.write_text(DIBORANE)
    else:
        path = _xyz(tmp_path, drawn, "given.xyz")
    (error,) = read_structures(path, smiles=smiles)
    assert isinstance(error, MoleculeError) and reason in error.reason
    # was: the reason alone ("SMILES '...' contradicts the coordinates: ..."), no file, no record
    assert f"(in {path}#0, read with its SMILES {smiles!r})" in error.reason
    with pytest.raises(InputError) as raised:
        InputResolver().resolve({"structure": str(path), "smiles": smiles}, "rec7", fingerprint=False,
                                depiction=False)
    assert "record 'rec7'" in str(raised.value) and f"{path}#0" in str(raised.value) and reason in str(raised.value)


def test_a_smiles_that_is_not_the_molecule_keeps_its_own_words(tmp_path):
    from deepmolm_plugin.molecule import read_structures

    path = _xyz(tmp_path, "CCO", "eth.xyz")
    (error,) = read_structures(path, smiles="C.CO")
    assert error.reason.endswith(f"its SMILES 'C.CO' is not the molecule in {path}#0 (bonds perceived from "
                                 "coordinates: CCO)")  # named once, as before
