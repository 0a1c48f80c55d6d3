"""Qwen2 ChatML conversation template for the llava-torch host, for training and inference.

What it fixes: the host has no Qwen template. Its closest one, ``chatml_direct``, runs through
``preprocess_mpt``, which with a Qwen2 tokenizer masks every label (the loss is 0 and
nothing is learned). This patch registers ``conv_templates["qwen2"]`` (Qwen's own ChatML
with its default system prompt) and routes ``llava.train.train.preprocess`` to
``preprocess_qwen2`` whenever the active template is a ``qwen2`` one.

Training and inference build byte-identical prompts: both come from the same template's
``get_prompt()``, the training ids are ``tokenizer_image_token``'s (or the tokenizer's)
ids of the whole prompt, and for every reply we check that the ids before it are exactly
what inference would feed the model at that turn.

``resolve_conv_mode`` implements ``--conv-mode auto``: the template the model was trained
with when its config records it (``deepmolm_run.version``, ``trained_conv_mode``), else
``qwen2`` for Qwen2 models and the host CLI's name-based choice otherwise. ``check_chat_conv_mode`` is the chat entry points'
one rule on top of it: no ``plain`` (stage-1) template in a chat.
"""

import importlib
import sys

import torch

from llava import conversation as conversation_lib
from llava.constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.conversation import Conversation, SeparatorStyle

from . import _host

PATCH = "conversation_qwen2"
QWEN2_VERSION = "qwen2"
REPLY_END = "<|im_end|>"  # closes every reply; supervised so the model learns to stop
QWEN2_MODEL_TYPES = ("qwen2", "llava_qwen2")
# The templates a Qwen2-family model trains with (the launcher refuses others: their
# preprocess miscounts Qwen2 tokens) and so the only ones it can answer in.
QWEN2_MODES = (QWEN2_VERSION, "plain")

# Host MPT style renders `system + sep + (role + message + sep)*` and a bare role for a None
# message, which with these strings is exactly Qwen's ChatML.
QWEN2_TEMPLATE = Conversation(
    system="<|im_start|>system\nYou are a helpful assistant.",
    roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
    messages=(),  # a tuple, as the host's templates: use .copy() before appending
    offset=0,
    sep_style=SeparatorStyle.MPT,
    sep=REPLY_END + "\n",
    version=QWEN2_VERSION,
)

_RENDER_CHECK = (
    (("hi", "hello"), ("more?", None)),
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
    "<|im_start|>user\nmore?<|im_end|>\n<|im_start|>assistant\n",
)


def _render(template: Conversation, turns) -> str:
    conv = template.copy()
    for user, reply in turns:
        conv.append_message(conv.roles[0], user)
        conv.append_message(conv.roles[1], reply)
    return conv.get_prompt()


def _host_train():
    """Import the host's training module; it needs the transformers-compat patches first."""
    try:
        return importlib.import_module("llava.train.train")
    except ImportError as err:
        raise RuntimeError(
            f"{PATCH}: cannot import llava.train.train to route its preprocess "
            f"({err}). With transformers 5.x apply the trainer-compatibility patches "
            "before this one."
        ) from err


def _check_host():
    """Raise RuntimeError unless the host is a version and shape this patch was checked on."""
    _host.require_host(PATCH)
    for name in ("Conversation", "SeparatorStyle", "conv_templates", "default_conversation"):
        if not hasattr(conversation_lib, name):
            raise RuntimeError(f"{PATCH}: llava.conversation has no {name}")
    if not hasattr(SeparatorStyle, "MPT"):
        raise RuntimeError(f"{PATCH}: llava.conversation.SeparatorStyle has no MPT")
    turns, expected = _RENDER_CHECK
    if _render(QWEN2_TEMPLATE, turns) != expected:
        raise RuntimeError(f"{PATCH}: the host's MPT separator style no longer renders ChatML")


def _qwen2_aware_preprocess(sources, tokenizer, has_image=False):
    """Replaces llava.train.train.preprocess: qwen2 templates here, all others to the host."""
    conv = conversation_lib.default_conversation
    if conv.version == QWEN2_VERSION:
        return preprocess_qwen2(sources, tokenizer, has_image=has_image, template=conv)
    host_preprocess = _host.original(sys.modules["llava.train.train"], "preprocess")
    return host_preprocess(sources, tokenizer, has_image=has_image)


def apply():
    """Register the qwen2 template and wrap the host's preprocess. Idempotent."""
    _check_host()
    train = _host_train()
    existing = conversation_lib.conv_templates.get(QWEN2_VERSION)
    if existing is not None and existing is not QWEN2_TEMPLATE:
        raise RuntimeError(f"{PATCH}: conv_templates['qwen2'] already holds another template")
    if not callable(getattr(train, "preprocess", None)):
        raise RuntimeError(f"{PATCH}: llava.train.train has no preprocess()")
    conversation_lib.conv_templates[QWEN2_VERSION] = QWEN2_TEMPLATE
    _host.apply_once(train, PATCH,
                     lambda: _host.replace(train, "preprocess", _qwen2_aware_preprocess))


def is_applied() -> bool:
    """True when the template is registered and the host's preprocess is wrapped."""
    train = sys.modules.get("llava.train.train")
    return (conversation_lib.conv_templates.get(QWEN2_VERSION) is QWEN2_TEMPLATE
            and PATCH in getattr(train, _host._APPLIED_ATTR, ()))


# Where training records its --version in the saved config (patches/arguments.py, RUN_FIELDS).
RUN_RECORD, RUN_VERSION = "deepmolm_run", "version"


def host_template_of_version(version: str) -> str:
    """The conv_templates name the host's train.py trains a ``--version`` with: ``v0`` and
    ``v0.5`` keep its default_conversation (``vicuna_v1``), a template's name is that
    template, any other name falls back to ``vicuna_v1``."""
    if version in ("v0", "v0.5"):
        return "vicuna_v1"
    if version == QWEN2_VERSION or version in conversation_lib.conv_templates:
        return version
    return "vicuna_v1"


def trained_conv_mode(model_config) -> "str | None":
    """The template the model was trained with, from the ``--version`` training recorded in its
    config (``deepmolm_run.version``; a config object or config.json's dict); None when there
    is no record (a model saved by other code, or before the record existed)."""
    get = model_config.get if isinstance(model_config, dict) else lambda name: getattr(model_config, name, None)
    run = get(RUN_RECORD)
    version = run.get(RUN_VERSION) if isinstance(run, dict) else None
    return host_template_of_version(version) if isinstance(version, str) and version else None


def resolve_conv_mode(mode: str, model_config_or_type, model_name: str = None) -> str:
    """Resolve ``--conv-mode``: ``auto`` picks from the model, anything else must exist.

    ``model_config_or_type`` is a config (its ``model_type``, ``_name_or_path`` and
    ``deepmolm_run`` are used) or a model-type string. ``auto`` gives the template the model
    was trained with when the config records it (``trained_conv_mode``: a model trained with
    ``--version plain`` is asked in ``plain``; was ``qwen2``, ChatML it never saw, without a
    word); else ``qwen2`` for Qwen2 models; for others the host CLI's choice from the model
    name (``model_name``, else the config's path, else the type string): llama-2 ->
    llava_llama_2, mistral -> mistral_instruct, v1.6-34b -> chatml_direct, v1 -> llava_v1,
    mpt -> mpt, else llava_v0.
    """
    trained = None
    if isinstance(model_config_or_type, str):
        model_type, path = model_config_or_type, ""
    else:
        model_type = getattr(model_config_or_type, "model_type", None)
        path = getattr(model_config_or_type, "_name_or_path", "") or ""
        trained = trained_conv_mode(model_config_or_type) if model_config_or_type is not None else None
    if mode != "auto":
        known = sorted(set(conversation_lib.conv_templates) | {QWEN2_VERSION})
        if mode not in known:
            raise ValueError(f"unknown conversation mode {mode!r}; known: auto, {', '.join(known)}")
        if model_type in QWEN2_MODEL_TYPES and mode not in QWEN2_MODES:  # was: garbage answers, no word
            raise ValueError(f"conversation mode {mode!r} does not fit this {model_type} model: it trains and answers "
                             f"in {' or '.join(map(repr, QWEN2_MODES))} (another template builds prompts it never "
                             "saw); use auto")
        return mode
    if model_config_or_type is None:
        raise ValueError("conv mode 'auto' needs a model config or model type")
    if not model_type:
        raise ValueError(f"cannot tell the model type of {type(model_config_or_type).__name__}")
    if trained is not None:
        if model_type in QWEN2_MODEL_TYPES and trained not in QWEN2_MODES:
            raise ValueError(f"conversation mode auto: config.json's {RUN_RECORD}.{RUN_VERSION} says this {model_type} "
                             f"model was trained in {trained!r}, not {' or '.join(map(repr, QWEN2_MODES))} (the only "
                             "templates a Qwen2 model trains in); give --conv-mode")
        return trained
    if model_type in QWEN2_MODEL_TYPES:
        return QWEN2_VERSION
    name = (model_name or path or model_type).lower()
    for key, conv_mode in (("llama-2", "llava_llama_2"), ("mistral", "mistral_instruct"),
                           ("v1.6-34b", "chatml_direct"), ("v1", "llava_v1"), ("mpt", "mpt")):
        if key in name:
            return conv_mode
    return "llava_v0"


def conv_mode_note(mode: str, model_config) -> "str | None":
    """A note when ``mode`` (an explicit ``--conv-mode``, resolved) is not the template the
    model's config records it was trained in (``trained_conv_mode``): its prompts are laid
    out as the model never saw them (a ``plain``-trained model asked in ChatML answered
    without a word said). Not a refusal: trying another template on purpose is legitimate.
    None when they agree or nothing is recorded."""
    trained = trained_conv_mode(model_config) if model_config is not None else None
    if trained is None or trained == mode:
        return None
    return (f"note: this model was trained in conversation mode {trained!r} (config.json's {RUN_RECORD}.{RUN_VERSION}); "
            f"--conv-mode {mode!r} lays prompts out as it never saw them, so its answers may mean little "
            "(--conv-mode auto uses the trained one)")


def plain_style(mode: str) -> bool:
    """Whether conv_templates' ``mode`` is of the host's PLAIN style (``plain``, ``v0_plain``:
    the stage-1 template, which the host's training runs through ``preprocess_plain``)."""
    template = conversation_lib.conv_templates.get(mode)
    return template is not None and template.sep_style == SeparatorStyle.PLAIN


def check_chat_conv_mode(mode: str, model_config=None) -> str:
    """``mode`` (a ``--conv-mode`` value, before or after ``resolve_conv_mode``), unless a chat
    cannot use it: ValueError for a template of the host's PLAIN style (``plain``,
    ``v0_plain``). The chat entry points (the chat CLI, the GUI) call this before the model
    loads; eval (model_vqa: one question, one answer) does not and keeps taking ``plain``
    (asking with the image alone, the prompt ``preprocess_plain`` trains on).
    Given the ``model_config``, a model trained in ``plain`` (which ``--conv-mode auto`` then
    picks) is refused as such: no template of it can chat.

    PLAIN is the stage-1 (pretraining) template: the host's ``preprocess_plain`` trains on
    the image placeholder and the answer alone, dropping the question text, so a model
    trained in it never saw a question, let alone a conversation. The template has no turns
    either: its ``sep2`` is None, and its ``get_prompt`` appends ``seps[i % 2]`` after every
    message (was: the second question crashed with "can only concatenate str (not
    "NoneType") to str", in the chat CLI and the GUI)."""
    if plain_style(mode):
        why = ("it is the stage-1 (pretraining) template, which drops the question (training keeps only the image and "
               "the answer) and has no turns")
        trained = trained_conv_mode(model_config) if model_config is not None else None
        if trained == mode:  # auto chose it from the record: "use auto" would say the same again
            raise ValueError(f"conversation mode {mode!r} cannot chat: this model was trained in it (config.json's "
                             f"{RUN_RECORD}.{RUN_VERSION}), and {why}; evaluate it with model_vqa (--conv-mode auto "
                             f"uses {mode!r} there), or chat with a model trained with --version {QWEN2_VERSION}")
        raise ValueError(f"conversation mode {mode!r} cannot chat: {why}; use {QWEN2_VERSION!r} (or auto) to chat, and "
                         f"{mode!r} only for eval (model_vqa)")
    return mode


def _check_template(template: Conversation):
    sep = REPLY_END + "\n"
    if (template.version != QWEN2_VERSION or template.sep_style != SeparatorStyle.MPT
            or template.sep != sep):
        raise ValueError(
            f"preprocess_qwen2 needs a qwen2 template (version 'qwen2', MPT style, sep {sep!r}); "
            f"got version {template.version!r}, style {template.sep_style}, sep {template.sep!r}")


def _build_prompt(index: int, source, template: Conversation):
    """Return (prompt, [(reply_start, reply_end)]): character spans of reply + <|im_end|>.

    A reply starts where the inference prompt for that turn (history + bare assistant
    role, from the same ``get_prompt()``) ends.
    """
    conv = template.copy()
    conv.messages = []
    spans = []
    for j, turn in enumerate(source):
        expected = ("human", "gpt")[j % 2]
        if turn.get("from") != expected:
            raise ValueError(
                f"conversation {index}, turn {j}: role {turn.get('from')!r}, expected "
                f"{expected!r} (turns must alternate human/gpt, starting with human)")
        value = turn.get("value")
        if not isinstance(value, str) or not value:
            raise ValueError(f"conversation {index}, turn {j}: empty or non-string value {value!r}")
        if expected == "human":
            conv.append_message(conv.roles[0], value)
            continue
        conv.append_message(conv.roles[1], None)
        head = conv.get_prompt()
        conv.messages[-1][1] = value
        spans.append((head, value))
    if not spans:
        raise ValueError(f"conversation {index} has no gpt reply to learn from")
    prompt = conv.get_prompt()
    out = []
    for head, value in spans:
        start, end = len(head), len(head) + len(value) + len(REPLY_END)
        if prompt[:start] != head or prompt[start:end] != value + REPLY_END:
            raise RuntimeError("preprocess_qwen2: template rendering is not prefix-stable")
        out.append((start, end))
    return prompt, out


def _encode(index, source, tokenizer, has_image, template):
    """Token ids and labels for one conversation (unpadded, untruncated)."""
    from llava.mm_utils import tokenizer_image_token

    prompt, spans = _build_prompt(index, source, template)
    if has_image:
        if DEFAULT_IMAGE_TOKEN not in prompt:
            raise ValueError(f"conversation {index} has an image but no {DEFAULT_IMAGE_TOKEN} "
                             "placeholder: the image would be silently unused")

        def encode(text):
            return tokenizer_image_token(text, tokenizer, IMAGE_TOKEN_INDEX)
    else:
        def encode(text):
            return tokenizer(text).input_ids

    ids = list(encode(prompt))
    labels = [IGNORE_INDEX] * len(ids)
    for start, end in spans:
        head, upto = encode(prompt[:start]), encode(prompt[:end])
        if ids[:len(head)] != head:
            raise ValueError(
                f"conversation {index}: the reply {prompt[start:start + 30]!r}... merges "
                "into a token with the assistant header (a leading newline?), so training "
                "would not see the inference prompt; strip the reply")
        if ids[:len(upto)] != upto:
            raise RuntimeError(f"conversation {index}: tokens of a reply + {REPLY_END} are "
                               "not a prefix of the conversation's tokens")
        labels[len(head):len(upto)] = ids[len(head):len(upto)]
    labels = [IGNORE_INDEX if t == IMAGE_TOKEN_INDEX else t for t in labels]
    return ids, labels


def preprocess_qwen2(sources, tokenizer, has_image=False, template=None):
    """Host-style preprocess for qwen2 templates: ``dict(input_ids=(B, L), labels=(B, L))``.

    ``sources`` are conversations as the host's dataset gives them (lists of
    ``{"from": "human"|"gpt", "value": str}``, ``<image>`` already moved to the front of
    the first human turn when ``has_image``). Labels keep exactly each reply's tokens and
    its ``<|im_end|>``; system, user turns, role headers and the newline after
    ``<|im_end|>`` are IGNORE_INDEX. Sequences are truncated to
    ``tokenizer.model_max_length`` and padded (pad token / IGNORE_INDEX) to the longest.
    Works with slow and fast tokenizers (the host loads them with ``use_fast=False``).
    """
    template = QWEN2_TEMPLATE if template is None else template
    _check_template(template)
    if not sources:
        raise ValueError("preprocess_qwen2: no conversations given")
    max_len = tokenizer.model_max_length
    rows = [_encode(i, source, tokenizer, has_image, template) for i, source in enumerate(sources)]
    rows = [(ids[:max_len], labels[:max_len]) for ids, labels in rows]
    width = max(len(ids) for ids, _ in rows)
    if any(len(ids) != width for ids, _ in rows) and tokenizer.pad_token_id is None:
        raise ValueError("preprocess_qwen2: the tokenizer has no pad token to batch "
                         "conversations of different lengths")
    pad_id = 0 if tokenizer.pad_token_id is None else tokenizer.pad_token_id  # 0: never used
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, labels) in enumerate(rows):
        input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        targets[row, :len(labels)] = torch.tensor(labels, dtype=torch.long)
    return dict(input_ids=input_ids, labels=targets)
