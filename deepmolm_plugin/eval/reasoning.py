"""A reasoning model's thinking block before its answer: what the report scores is the answer.

Models such as Qwen3 or DeepSeek-R1 write their reasoning first, `<think> ... </think>`, then
the answer (DeepSeek-R1's template opens the block in the prompt, so its output may hold only
the closing tag). Scored whole, the reasoning's numbers, SMILES and words were read as the
answer: `<think>Ethanol's LogP is -0.31 ...</think> The LogP is 2.1.` had the value -0.31,
and a caption's BLEU counted the reasoning's words. `visible_answer` returns the text after
the block; an answer that opens a block it never closes (generation stopped while the model
was thinking) has no visible answer, an empty one. A lone `</think>` (no `<think>` before
it) ends the reasoning too, as DeepSeek-R1 writes it. A block that does not open the answer
(`The LogP is 2.1 <think>...</think>`) is left in the text.
"""

from __future__ import annotations

import re
from typing import Tuple

_OPEN = re.compile(r"\s*<(think|thinking|reasoning)>", re.IGNORECASE)
_CLOSE = {tag: re.compile(rf"</{tag}>", re.IGNORECASE) for tag in ("think", "thinking", "reasoning")}
# DeepSeek-R1's output with the opening tag in the prompt: reasoning, then a lone `</think>`
_LONE_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def visible_answer(text: str) -> Tuple[str, bool]:
    """(the answer without its leading reasoning block, whether there was one)."""
    opened = _OPEN.match(text)
    if opened is not None:
        closed = _CLOSE[opened.group(1).lower()].search(text, opened.end())
        return ("" if closed is None else text[closed.end():].strip()), True
    closed = _LONE_CLOSE.search(text)
    if closed is not None and "<think" not in text[:closed.start()].lower():
        return text[closed.end():].strip(), True
    return text, False
