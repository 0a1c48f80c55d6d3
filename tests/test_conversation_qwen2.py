"""The qwen2 ChatML template: exact prompts, label masking, train == inference, host wiring."""

import copy
import types

import pytest
import torch
import transformers

from llava import conversation as conversation_lib
from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.mm_utils import tokenizer_image_token

from deepmolm_plugin.patches import _host, trainer_imports
from deepmolm_plugin.patches import conversation_qwen2 as cq
from tiny_models import make_tiny_qwen2, make_tiny_tokenizer

ORIGINAL, APPLIED = "_deepmolm_original_preprocess", _host._APPLIED_ATTR  # where _host keeps them
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
TURNS = [
    ("What is the name of this molecule?", "It is aspirin, an analgesic."),
    ("Give its SMILES.", "CC(=O)Oc1ccccc1C(=O)O"),
    ("Predict the logP of the molecule.", "The logP is 1.19."),
]


def conversation(turns=TURNS, image=False):
    """Host dataset form; with an image, <image> at the front as preprocess_multimodal puts it."""
    source = []
    for k, (user, reply) in enumerate(turns):
        value = ("<image>\n" + user) if image and k == 0 else user
        source.append({"from": "human", "value": value})
        source.append({"from": "gpt", "value": reply})
    return source


def runs(labels):
    """Contiguous runs of supervised label ids."""
    out, current = [], []
    for t in labels.tolist():
        if t == IGNORE_INDEX:
            if current:
                out.append(current)
            current = []
        else:
            current.append(t)
    return out + ([current] if current else [])


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def host_train():
    """llava.train.train, importable on transformers 5.x once trainer_imports has run."""
    trainer_imports.apply()
    import llava.train.train as train
    return train


@pytest.fixture
def host_state(host_train):
    """Start un-patched; restore the host globals this file mutates, whatever happens."""
    train = host_train
    names = ("preprocess", ORIGINAL, APPLIED)
    saved = {name: train.__dict__[name] for name in names if name in train.__dict__}
    saved_default = conversation_lib.default_conversation
    saved_templates = dict(conversation_lib.conv_templates)
    try:
        train.preprocess = _host.original(train, "preprocess")
        train.__dict__.pop(ORIGINAL, None)
        train.__dict__[APPLIED] = set(train.__dict__.get(APPLIED, ())) - {cq.PATCH}
        conversation_lib.conv_templates.pop(cq.QWEN2_VERSION, None)
        yield train
    finally:
        for name in names:
            train.__dict__.pop(name, None)
        train.__dict__.update(saved)
        conversation_lib.default_conversation = saved_default
        conversation_lib.conv_templates.clear()
        conversation_lib.conv_templates.update(saved_templates)


@pytest.fixture
def applied(host_state):
    cq.apply()
    return host_state


def test_prompt_is_qwen_chatml():
    conv = cq.QWEN2_TEMPLATE.copy()
    for user, reply in TURNS[:2]:
        conv.append_message(conv.roles[0], user)
        conv.append_message(conv.roles[1], reply)
    assert conv.get_prompt() == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is the name of this molecule?<|im_end|>\n"
        "<|im_start|>assistant\nIt is aspirin, an analgesic.<|im_end|>\n"
        "<|im_start|>user\nGive its SMILES.<|im_end|>\n"
        "<|im_start|>assistant\nCC(=O)Oc1ccccc1C(=O)O<|im_end|>\n")
    conv.append_message(conv.roles[0], "<image>\nAnd this one?")
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt().endswith(
        "CC(=O)Oc1ccccc1C(=O)O<|im_end|>\n"
        "<|im_start|>user\n<image>\nAnd this one?<|im_end|>\n<|im_start|>assistant\n")
    assert cq.QWEN2_TEMPLATE.messages == ()  # copies never write into the shared template


@pytest.mark.parametrize("image", [False, True])
def test_labels_supervise_exactly_the_replies(tokenizer, image):
    out = cq.preprocess_qwen2([conversation(image=image)], tokenizer, has_image=image)
    ids, labels = out["input_ids"][0], out["labels"][0]
    assert ids.shape == labels.shape and out["input_ids"].dim() == 2

    supervised = [tokenizer.decode(run) for run in runs(labels)]
    assert supervised == [reply + "<|im_end|>" for _, reply in TURNS]
    kept = labels != IGNORE_INDEX
    assert torch.equal(labels[kept], ids[kept])
    ignored_text = tokenizer.decode([t for t in ids[~kept].tolist() if t >= 0])
    assert ignored_text.startswith(SYSTEM + "<|im_start|>user\n")
    for user, _ in TURNS:
        assert user in ignored_text
    assert ignored_text.count("<|im_start|>assistant\n") == len(TURNS)

    prompt = cq._build_prompt(0, conversation(image=image), cq.QWEN2_TEMPLATE)[0]
    if image:
        expected = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX)
        at = len(tokenizer(SYSTEM + "<|im_start|>user\n").input_ids)
        assert (ids == IMAGE_TOKEN_INDEX).nonzero().flatten().tolist() == [at]
        assert labels[at] == IGNORE_INDEX
    else:
        expected = tokenizer(prompt).input_ids
        assert IMAGE_TOKEN_INDEX not in ids.tolist()
    assert ids.tolist() == expected


@pytest.mark.parametrize("image", [False, True])
def test_training_prefix_equals_inference_prompt(tokenizer, applied, image):
    """Through the host: preprocess_multimodal + train.preprocess vs the CLI's prompt."""
    train = applied
    conversation_lib.default_conversation = conversation_lib.conv_templates["qwen2"]
    source = conversation()
    if image:  # the dataset may put <image> anywhere; the host moves it to the front
        source[0]["value"] = source[0]["value"] + " <image>"
        data_args = types.SimpleNamespace(is_multimodal=True, mm_use_im_start_end=False)
        source = train.preprocess_multimodal([source], data_args)[0]
    out = train.preprocess([source], tokenizer, has_image=image)
    ids, labels = out["input_ids"][0].tolist(), out["labels"][0]
    supervised = (labels != IGNORE_INDEX).int()
    starts = supervised.diff(prepend=torch.tensor([0])).eq(1).nonzero().flatten()
    assert len(starts) == len(TURNS)

    for k, start in enumerate(starts.tolist()):
        conv = conversation_lib.conv_templates["qwen2"].copy()
        for j, (user, reply) in enumerate(TURNS[:k + 1]):
            conv.append_message(conv.roles[0], ("<image>\n" + user) if image and j == 0 else user)
            conv.append_message(conv.roles[1], reply if j < k else None)
        prompt = conv.get_prompt()
        inference = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
        assert ids[:start] == inference.tolist(), f"turn {k}"
        assert tokenizer.decode(ids[start:]).startswith(TURNS[k][1] + "<|im_end|>")


def test_stock_chatml_direct_masks_every_label(tokenizer, host_state, capsys):
    """Why the qwen2 template exists: the host's ChatML path learns nothing from Qwen tokens."""
    conversation_lib.default_conversation = conversation_lib.conv_templates["chatml_direct"]
    for image in (False, True):
        out = host_state.preprocess([conversation(image=image)], tokenizer, has_image=image)
        assert (out["labels"] == IGNORE_INDEX).all()
    assert "tokenization mismatch" in capsys.readouterr().out


def test_apply_is_idempotent_and_routes_by_template(tokenizer, host_state, monkeypatch):
    train = host_state
    host_preprocess = train.preprocess
    assert not cq.is_applied()
    cq.apply()
    cq.apply()
    assert cq.is_applied()
    assert conversation_lib.conv_templates["qwen2"] is cq.QWEN2_TEMPLATE
    assert train.preprocess is cq._qwen2_aware_preprocess
    assert _host.original(train, "preprocess") is host_preprocess

    source = conversation()
    conversation_lib.default_conversation = conversation_lib.conv_templates["qwen2"]
    routed = train.preprocess([copy.deepcopy(source)], tokenizer)
    direct = cq.preprocess_qwen2([copy.deepcopy(source)], tokenizer)
    assert torch.equal(routed["labels"], direct["labels"])

    calls = []
    monkeypatch.setattr(train, ORIGINAL, lambda *a, **k: calls.append(k) or "host")
    conversation_lib.default_conversation = conversation_lib.conv_templates["chatml_direct"]
    assert train.preprocess([source], tokenizer, has_image=True) == "host"
    assert calls == [{"has_image": True}]


def test_apply_refuses_unknown_hosts_and_foreign_templates(host_state, monkeypatch):
    monkeypatch.setattr(_host, "host_version", lambda: "1.3.0")
    with pytest.raises(RuntimeError, match="1.3.0"):
        cq.apply()
    monkeypatch.undo()
    conversation_lib.conv_templates["qwen2"] = conversation_lib.conv_templates["mpt"]
    with pytest.raises(RuntimeError, match="another template"):
        cq.apply()
    assert not cq.is_applied()


def test_roles_must_alternate_from_human(tokenizer):
    human, gpt = {"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}
    for bad, where in (([gpt, human], "turn 0"), ([human, human], "turn 1"),
                       ([human, {"from": "system", "value": "x"}], "'system'")):
        with pytest.raises(ValueError, match="alternate") as err:
            cq.preprocess_qwen2([bad], tokenizer)
        assert where in str(err.value)
    with pytest.raises(ValueError, match="no gpt reply"):
        cq.preprocess_qwen2([[human]], tokenizer)
    with pytest.raises(ValueError, match="empty"):
        cq.preprocess_qwen2([[human, {"from": "gpt", "value": ""}]], tokenizer)
    with pytest.raises(ValueError, match="placeholder"):
        cq.preprocess_qwen2([[human, gpt]], tokenizer, has_image=True)


def test_reply_merging_into_the_header_is_an_error(tokenizer):
    """'\\n\\n' is one token: a reply starting with a newline can't match the inference prompt."""
    with pytest.raises(ValueError, match="assistant header"):
        cq.preprocess_qwen2([conversation([("q", "\nCCO")])], tokenizer)


def test_batch_is_padded_and_truncated(tokenizer):
    short, long = conversation(TURNS[:1]), conversation()
    out = cq.preprocess_qwen2([short, long], tokenizer)
    n_short = len(cq.preprocess_qwen2([short], tokenizer)["input_ids"][0])
    assert out["input_ids"].shape[0] == 2
    assert (out["input_ids"][0, n_short:] == tokenizer.pad_token_id).all()
    assert (out["labels"][0, n_short:] == IGNORE_INDEX).all()

    limited = copy.copy(tokenizer)
    limited.model_max_length = 20
    cut = cq.preprocess_qwen2([long], limited)
    assert cut["input_ids"].shape == cut["labels"].shape == (1, 20)
    assert torch.equal(cut["input_ids"][0], out["input_ids"][1, :20])


def test_host_loaded_checkpoint_trains_on_replies(tokenizer, tmp_path):
    """A Qwen2 folder loaded the host's way (use_fast=False) gives the same ids and a real loss."""
    folder = make_tiny_qwen2(tmp_path / "qwen2", tokenizer)
    host_tok = transformers.AutoTokenizer.from_pretrained(
        folder, model_max_length=256, padding_side="right", use_fast=False)
    out = cq.preprocess_qwen2([conversation()], host_tok)
    in_memory = cq.preprocess_qwen2([conversation()], tokenizer)
    assert torch.equal(out["input_ids"], in_memory["input_ids"])
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    loss = model(input_ids=out["input_ids"], labels=out["labels"]).loss
    assert torch.isfinite(loss) and loss > 0


@pytest.mark.parametrize("mode, model, name, expected", [
    ("auto", "qwen2", None, "qwen2"),
    ("auto", "llava_qwen2", None, "qwen2"),
    ("auto", transformers.Qwen2Config(), None, "qwen2"),
    ("auto", transformers.LlamaConfig(name_or_path="liuhaotian/llava-v1.5-7b"), None, "llava_v1"),
    ("auto", "llava_llama", "llava-llama-2-13b-chat", "llava_llama_2"),
    ("auto", "mistral", None, "mistral_instruct"),
    ("auto", "llava_llama", "llava-v1.6-34b", "chatml_direct"),
    ("auto", "mpt", None, "mpt"),
    ("auto", "llava_llama", None, "llava_v0"),
    ("plain", "qwen2", None, "plain"),
    ("llava_v1", "llava_llama", None, "llava_v1"),
    ("qwen2", "llava_llama", None, "qwen2"),
])
def test_resolve_conv_mode(mode, model, name, expected):
    assert cq.resolve_conv_mode(mode, model, model_name=name) == expected


def test_resolve_conv_mode_rejects_unknown_modes():
    with pytest.raises(ValueError, match="llava_v1") as err:
        cq.resolve_conv_mode("qwen", "qwen2")
    assert "qwen2" in str(err.value)
    with pytest.raises(ValueError, match="model config or model type"):
        cq.resolve_conv_mode("auto", None)
    # a host template on a Qwen2 model: answers were garbage, without a word
    with pytest.raises(ValueError, match="mode 'llava_v1' does not fit this llava_qwen2 model: .*'qwen2' or 'plain'"):
        cq.resolve_conv_mode("llava_v1", "llava_qwen2")
