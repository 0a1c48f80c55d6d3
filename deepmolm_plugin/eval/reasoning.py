"""A reasoning model's reply: the thinking block before its answer, and the markup around
its final answer. What the report scores is the answer (`answer_part`).

Models such as Qwen3 or DeepSeek-R1 write their reasoning first, `<think> ... </think>`, then
the answer (DeepSeek-R1's template opens the block in the prompt, so its output may hold only
the closing tag). Scored whole, the reasoning's numbers, SMILES and words were read as the
answer: `<think>Ethanol's LogP is -0.31 ...</think> The LogP is 2.1.` had the value -0.31,
and a caption's BLEU counted the reasoning's words. `visible_answer` returns the text after
the block; an answer that opens a block it never closes (generation stopped while the model
was thinking) has no visible answer, an empty one. A lone `</think>` (no `<think>` before
it) ends the reasoning too, as DeepSeek-R1 writes it. A block that does not open the answer
(`The LogP is 2.1 <think>...</think>`) is left in the text.

Models trained on math-style rewards mark the final answer after their working out:
`<answer>No</answer>` (DeepSeek-R1-Zero's template) or LaTeX's `\\boxed{No}`. The readers
look at an answer's opening or at the first number after the property's name, so
"Three rings and one donor ... so it does not cross. \\boxed{No}" was no answer and
"... 2 donors, MW 180 ... \\boxed{1.2}" read 2. `marked_answers` lists what the markup marks,
the most specific first, for the scorer to read in turn (`scoring.scored_text`: the first
whose kind's reader finds an answer in it, else the visible text as before):
- the box (`\\boxed{...}`, `\\fbox{...}`; braces balanced; a box never closed is no box) in
  the `<answer>` block if there is one, else in the text: its content without LaTeX's text
  wrappers (`\\text{Yes}`), escapes (`85\\%`, `CC\\#N`) and `$`, with the words leading to it
  in its sentence (after the sentence's last number before it: "In Hartree, the HOMO is
  \\boxed{-0.34}", "the TPSA is \\boxed{25.4}" for a LogP question) and the rest of its
  sentence (a unit after it: `\\boxed{-21.8} kJ/mol.`), which property answers read with it;
- the `<answer>` block's text (a block never closed, generation stopped in it: the text
  after it).
Boxes or blocks that say the same are that answer; ones that differ (`\\boxed{2.1} for LogP
and \\boxed{45} for TPSA`) mark nothing. An empty one (`\\boxed{}`, `<answer>...</answer>`: a
format instruction repeated) marks nothing either.
"""

from __future__ import annotations

import re
from typing import List, NamedTuple, Tuple

_OPEN = re.compile(r"\s*<(think|thinking|reasoning)>", re.IGNORECASE)
_CLOSE = {tag: re.compile(rf"</{tag}>", re.IGNORECASE) for tag in ("think", "thinking", "reasoning")}
# DeepSeek-R1's output with the opening tag in the prompt: reasoning, then a lone `</think>`
_LONE_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<(/?)answer>", re.IGNORECASE)
# a box's opening and every brace: one pass pairs them (a pattern per box scanned on to the
# end of the text for each unclosed `\boxed{`: quadratic on a hostile answer)
_BOX_OR_BRACE = re.compile(r"\\(?:boxed|fbox)\s*\{|(?<!\\)[{}]")
# LaTeX's text wrappers inside a box (`\boxed{\text{Yes}}`, `\boxed{\textbf{CCO}}`); innermost
# first, so nested ones unwrap in turn
_WRAPPER = re.compile(r"\\(?:text(?:rm|it|bf|normal|tt|sc)?|math(?:rm|it|bf|sf|tt)|mbox|operatorname)\s*\{([^{}]*)\}")
_ESCAPE = re.compile(r"\\([%#_&$])")
# a box's sentence: it ends at a full stop, `;`, `,`, `!` or `?` before white space or the end,
# or at the line's end; what opens or closes the math around the box is not its words
_SENTENCE_REST = re.compile(r"[^\n]*?(?=[.;,!?](?:\s|$)|\n|$)")
_SENTENCE_END = re.compile(r"[.;!?](?:\s|$)|\n")
_NUMBER = re.compile(r"\d[\d.,]*")
_MATH_DELIMITER = re.compile(r"\\[()\[\]]|\$")
_LEAD_WINDOW = 300  # characters looked back for the box's sentence start
_PLACEHOLDER = re.compile(r"\s*(?:\.\.\.|…)?\s*")  # `\boxed{}`, `<answer>...</answer>`: a format, no answer


class Marked(NamedTuple):
    """What final-answer markup marks: `text`; for a box, the words of its sentence leading
    to it (`lead`) and after it (`rest`), "" for an `<answer>` block."""
    text: str
    lead: str = ""
    rest: str = ""


class AnswerPart(NamedTuple):
    """A reply's visible answer (after its thinking block) and what its markup marks."""
    text: str
    reasoning_removed: bool  # a leading thinking block (`visible_answer`)
    marked: List[Marked]  # `marked_answers`, most specific first


def answer_part(reply: str) -> AnswerPart:
    visible, removed = visible_answer(reply)
    return AnswerPart(visible, removed, marked_answers(visible))


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


def marked_answers(text: str) -> List[Marked]:
    """What the final-answer markup in `text` marks (module docstring), most specific first."""
    tagged = _one(_tagged(text))
    inner = text if tagged is None else tagged
    boxes = [(_unwrapped(content), start, end) for content, start, end in _boxed(inner)]
    boxes = [box for box in boxes if not _PLACEHOLDER.fullmatch(box[0])]
    found = []
    if _one(content for content, _, _ in boxes) is not None:
        content, start, end = boxes[-1]
        found.append(Marked(content.strip(), _lead(inner, start), _rest(inner, end)))
    if tagged is not None:
        found.append(Marked(tagged))
    return found


def _one(contents):
    """The one text `contents` holds (stripped), None for none or for several."""
    found = {c.strip() for c in contents}
    found = {c for c in found if not _PLACEHOLDER.fullmatch(c)}
    return found.pop() if len(found) == 1 else None


def _tagged(text: str) -> List[str]:
    """The `<answer>` blocks' texts; an unclosed last block runs to the end."""
    contents, start = [], None
    for tag in _ANSWER_TAG.finditer(text):
        if not tag.group(1):
            start = tag.end()
        elif start is not None:
            contents.append(text[start:tag.start()])
            start = None
    if start is not None:
        contents.append(text[start:])
    return contents


def _boxed(text: str) -> List[Tuple[str, int, int]]:
    """The closed outermost boxes' (content, where the box starts, where it ends); a box
    inside a box is its content's (keeping each nested one's text too took memory quadratic
    in the nesting)."""
    contents, stack, boxes_open = [], [], 0
    for token in _BOX_OR_BRACE.finditer(text):
        if token.group(0) == "}":
            if stack:
                opened = stack.pop()
                if opened is not None:
                    boxes_open -= 1
                    if not boxes_open:
                        contents.append((text[opened.end():token.start()], opened.start(), token.end()))
        else:  # a box's start, or a plain `{` (None)
            boxed = token.group(0) != "{"
            stack.append(token if boxed else None)
            boxes_open += boxed
    return contents


def _unwrapped(latex: str) -> str:
    """A box's content without LaTeX's text wrappers (up to 4 deep: each level is another
    pass), escapes and math delimiters."""
    for _ in range(4):
        latex, unwrapped = _WRAPPER.subn(r"\1", latex)
        if not unwrapped:
            break
    return _MATH_DELIMITER.sub(" ", _ESCAPE.sub(r"\1", latex))


def _lead(text: str, start: int) -> str:
    """The words leading to a box at `start`: from its sentence's start, or the end of the
    sentence's last number before the box, to the box (at most `_LEAD_WINDOW` characters)."""
    window = text[max(0, start - _LEAD_WINDOW):start]
    cut = max((m.end() for m in _SENTENCE_END.finditer(window)), default=0)
    cut = max((m.end() for m in _NUMBER.finditer(window, cut)), default=cut)
    return _MATH_DELIMITER.sub(" ", window[cut:])


def _rest(text: str, end: int) -> str:
    """The rest of a box's sentence after it (its unit)."""
    return _MATH_DELIMITER.sub(" ", _SENTENCE_REST.match(text, end).group(0))
