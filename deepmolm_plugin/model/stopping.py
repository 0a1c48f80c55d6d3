"""How a generation ended: at an end token, at its stop text, or at the `max_new_tokens` cap.

One rule for every caller that reports a reply cut short: model_vqa's `metadata.capped` and
the GUI's note under a reply (`gui.chat.context_note`). It lives beside the model, not in
either caller, so evaluation does not import the GUI.
"""

from __future__ import annotations

from typing import Optional


def end_ids(model, tokenizer) -> set:
    """The token ids that end generation: the model's generation config's end-of-sequence
    ids (the loader makes `<|im_end|>` one) and the tokenizer's."""
    ends = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        found = getattr(source, "eos_token_id", None)
        ends.update(found if isinstance(found, (list, tuple, set)) else [] if found is None else [found])
    return ends


def stopped_at_cap(output_ids, answer_ids, max_new_tokens: Optional[int], stop: Optional[str], tokenizer,
                   ends: set) -> Optional[bool]:
    """Whether generation stopped at the `max_new_tokens` cap rather than at an end: it
    made that many new tokens (`output_ids` (1, N): `generate` returns the new ones only),
    the last is none of `ends` (`end_ids`), and no `stop` text ends `answer_ids` (the new
    tokens up to the stop text, where one cut them). Such an answer may end mid-number (Qwen2
    writes a digit per token: "... is 12" of "... is 1234.5"). None where the cap is not
    known. One rule for model_vqa's `metadata.capped` and the page's note (`context_note`)."""
    if max_new_tokens is None:
        return None
    ids = output_ids[0].tolist()
    if len(ids) < max_new_tokens:  # ended early
        return False
    if stop is not None and stop in tokenizer.decode(answer_ids[0].tolist()[-1:]):
        return False  # the answer ended at its separator (the rest, if any, was cut off)
    return ids[-1] not in ends
