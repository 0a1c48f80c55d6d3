"""How few tokens a prompt's text can take, from its length alone: a prompt certainly longer
than the model's context is refused before it is tokenised (`text_past_context`), where
tokenising it whole first took minutes for a 50 MB question (about 1-4 s per MB). The chat
CLI and model_vqa (`cli.refusing_long_texts`) and the GUI (`gui.chat.check_text_length`)
ask it; a prompt it cannot decide is tokenised and counted as before (`check_prompt_fits`).
"""

from __future__ import annotations

import weakref
from typing import Optional

from .llava_qwen2 import PromptTooLong


def text_past_context(tokenizer, prompt: str, limit: Optional[int]) -> Optional[PromptTooLong]:
    """The refusal of a prompt whose text alone must take more tokens of `tokenizer` than
    `limit` (the model's context), found from its length before it is tokenised; None where
    its length cannot tell (the caller then tokenises it and counts, as before). Was: every
    prompt tokenised whole first (about 1-4 s per MB here), so a 50 MB question cost minutes
    before its refusal. Never refuses a prompt that fits: `fewest_tokens` is a count the
    tokenizer cannot go below."""
    if limit is None or len(prompt) <= limit:  # no token stands for less than one character: cannot tell
        return None
    fewest = fewest_tokens(tokenizer, prompt)
    if fewest is None or fewest <= limit:
        return None
    return PromptTooLong(f"the prompt's text is {len(prompt):,} characters long, at least {fewest:,} tokens of this "
                         f"model's tokenizer (one token stands for at most {chars_per_token(tokenizer)} characters), "
                         f"more than this model's context of {limit}: the end, with the question, would be cut off; "
                         "ask a shorter question (in a chat: start a new one)", fewest, limit, at_least=True)


def fewest_tokens(tokenizer, prompt: str) -> Optional[int]:
    """The fewest text tokens llava's `tokenizer_image_token` can make of `prompt` (what
    `check_prompt_fits` counts), from its length alone; None where `chars_per_token` has no
    bound. The tokens of each piece between image placeholders cover every character of it,
    each at most `chars_per_token`; the host drops a piece's first token after each
    placeholder (meant for a BOS the tokenizer may not add): one less per placeholder."""
    from llava.constants import DEFAULT_IMAGE_TOKEN

    span = chars_per_token(tokenizer)
    if span is None:
        return None
    images = prompt.count(DEFAULT_IMAGE_TOKEN)
    characters = len(prompt) - images * len(DEFAULT_IMAGE_TOKEN)
    return max(0, -(-characters // span) - images)


# A Unicode normal form joins at most 4 code points of a text into one (the longest canonical
# decomposition, U+1F82's, is what one composed code point absorbs); Lowercase and Prepend join none.
_NORMALIZER_SPANS = {"NFC": 4, "NFD": 4, "NFKC": 4, "NFKD": 4, "Lowercase": 1, "Prepend": 1}
# Pre-tokenizers that keep every character (Whitespace, BertPreTokenizer and CharDelimiterSplit drop
# what they split on, Split and Punctuation do with behavior Removed)
_KEEPING_PRE_TOKENIZERS = {"ByteLevel", "Split", "Metaspace", "Digits", "Punctuation"}
_SPANS = weakref.WeakKeyDictionary()  # tokenizer -> (its length, chars_per_token): read once per tokenizer


def chars_per_token(tokenizer) -> Optional[int]:
    """The most characters of a text one token of `tokenizer` can stand for; None where its
    pipeline gives no bound (a slow tokenizer, a model other than BPE, a normalizer or
    pre-tokenizer that may drop characters, unknown characters fused into one token, an
    added token that takes the white space beside it). A fast tokenizer's tokens cover the
    text: a BPE token of k characters (k bytes under ByteLevel) stands for at most k
    characters of the normalised text (an added token for its own), which stand for at most
    the normalizer's span of the text's (`_NORMALIZER_SPANS`)."""
    known = _SPANS.get(tokenizer)
    if known is None or known[0] != len(tokenizer):  # tokens added since: the longest may have grown
        known = _SPANS[tokenizer] = (len(tokenizer), _chars_per_token(tokenizer))
    return known[1]


def _chars_per_token(tokenizer) -> Optional[int]:
    """`chars_per_token`, read from the fast tokenizer's own description (tokenizer.json)."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    model, added = spec.get("model") or {}, spec.get("added_tokens") or []
    span = _normalizer_span(spec.get("normalizer"))
    if span is None or not _keeps_characters(spec.get("pre_tokenizer")) or model.get("type") != "BPE":
        return None
    if (model.get("unk_token") is not None and model.get("fuse_unk")) or any(
            token.get("lstrip") or token.get("rstrip") for token in added):
        return None
    if not _covers_every_character(model, spec.get("pre_tokenizer")):
        return None
    longest = max([len(token) for token in model.get("vocab") or {}] + [len(token["content"]) for token in added]
                  + [1])
    return span * longest


def _covers_every_character(model: dict, pre_tokenizer: Optional[dict]) -> bool:
    """Whether the BPE `model` gives every character of a text a token: byte fallback, an
    unknown token per character (not fused), or a byte-level pre-tokenizer whose 256 symbols
    are all in the vocabulary. Else a character outside the vocabulary is dropped (a
    byte-level BPE trained without the whole byte alphabet made 12,000 CJK characters into
    no token at all), and a length bound would refuse prompts that fit."""
    if model.get("byte_fallback") or model.get("unk_token") is not None:
        return True
    if not any(part.get("type") == "ByteLevel" for part in _steps(pre_tokenizer, "pretokenizers")):
        return False
    from tokenizers.pre_tokenizers import ByteLevel

    return set(ByteLevel.alphabet()) <= set(model.get("vocab") or {})


def _normalizer_span(normalizer: Optional[dict]) -> Optional[int]:
    """How many characters of the text one character of the normalised text stands for, at
    most; None for a normalizer that may drop or merge characters (Strip, Replace, ...)."""
    span = 1
    for part in _steps(normalizer, "normalizers"):
        part_span = _NORMALIZER_SPANS.get(part.get("type"))
        if part_span is None:
            return None
        span *= part_span
    return span


def _keeps_characters(pre_tokenizer: Optional[dict]) -> bool:
    """Whether a pre-tokenizer passes every character of the text on to the model."""
    return all(part.get("type") in _KEEPING_PRE_TOKENIZERS and part.get("behavior") != "Removed"
               for part in _steps(pre_tokenizer, "pretokenizers"))


def _steps(spec: Optional[dict], key: str) -> list:
    """The single steps of a tokenizer.json normalizer or pre-tokenizer (`key`: the list a
    "Sequence" holds its steps in), nested sequences flattened; none for None."""
    if spec is None:
        return []
    if spec.get("type") != "Sequence":
        return [spec]
    return [step for part in spec.get(key) or [] for step in _steps(part, key)]
