"""The one prompt table: a task's instruction wording, shared by preparation and evaluation.

A model learns the exact wording it was trained with, so a task must be asked the same
way when records are prepared, when the model is trained on them and when it is
evaluated. Data preparation (`deepmolm_plugin.data.prepare`) and evaluation import
`TASKS` / `instruction_for` from here; nothing else spells an instruction.

Tasks (the ones DeepMoLM trains on):

- PubChem text: ``Caption``, ``Description``;
- PubChem computed properties: ``Molecular Weight``, ``LogP``,
  ``Topological Polar Surface Area``, ``Complexity``;
- PubChemQC DFT properties: ``HOMO``, ``LUMO``, ``HOMO-LUMO Gap``, ``SCF Energy``;
- ChEBI-20 (Vis-CheBI20 / ChEBI-20-MM / MolT5): ``caption``, ``description``,
  ``iupac_naming``, ``smiles``, ``recognition``;
- any labelled property (CSV / SDF columns): ``property:<name>``, asked as
  "What is the <name> of this molecule?" and answered "The <name> is <value>."

`conversation` builds the host's two-turn record with the image token first in the
human turn (``"<image>\\n" + instruction``), exactly as LLaVA's training data has it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Dict, List, Optional

IMAGE_TOKEN = "<image>"  # llava.constants.DEFAULT_IMAGE_TOKEN, spelled here to stay import-light
# IMAGE_TOKEN and llava's DEFAULT_IM_START_TOKEN / DEFAULT_IM_END_TOKEN: typed in a user's
# question, each becomes a second image slot for the one image (chat, GUI, eval questions)
IMAGE_PLACEHOLDERS = (IMAGE_TOKEN, "<im_start>", "<im_end>")
PROPERTY_PREFIX = "property:"
PROPERTY_INSTRUCTION = "What is the {name} of this molecule?"
PROPERTY_ANSWER = "The {name} is {value}."

TASKS: Dict[str, str] = {
    # PubChem (3D-MoIT): text
    "Caption": "Describe the input molecule.",
    "Description": "Describe the input molecule.",
    # PubChem computed properties (3D-MoIT)
    "Molecular Weight": "What is the molecular weight of this molecule?",
    "LogP": "What is the LogP of this molecule?",
    "Topological Polar Surface Area": "What is the topological polar surface area (TPSA) of this molecule?",
    "Complexity": "What is the complexity of this molecule?",
    # PubChemQC DFT properties (3D-MoIT)
    "HOMO": "What is the HOMO energy of this molecule?",
    "LUMO": "What is the LUMO energy of this molecule?",
    "HOMO-LUMO Gap": "What is the HOMO-LUMO gap of this molecule?",
    "SCF Energy": "What is the SCF energy of this molecule?",
    # ChEBI-20 family (Vis-CheBI20 task names mapped to DeepMoLM's)
    "caption": "Provide a caption for the input molecule.",
    "description": "Describe the input molecule.",
    "iupac_naming": "What is the IUPAC name of the input molecule?",
    "smiles": "What is the SMILES of the input molecule?",
    "recognition": "Recognize the structure of the input molecule.",
}


def property_task(name: str) -> str:
    """The task name of a labelled property column, e.g. ``property:expt``."""
    if not name or not name.strip():
        raise ValueError("a property task needs a non-empty name")
    return PROPERTY_PREFIX + name.strip()


def is_known_task(task: str) -> bool:
    return task in TASKS or (task.startswith(PROPERTY_PREFIX) and bool(task[len(PROPERTY_PREFIX):].strip()))


def instruction_for(task: str, name: Optional[str] = None) -> str:
    """The instruction of `task`; ``property:<name>`` (or ``"property"`` with `name`) is the
    generic labelled-property question. Unknown task -> KeyError listing the known ones."""
    if task == "property" and name:
        task = property_task(name)
    if task in TASKS:
        return TASKS[task]
    if task.startswith(PROPERTY_PREFIX) and task[len(PROPERTY_PREFIX):].strip():
        return PROPERTY_INSTRUCTION.format(name=task[len(PROPERTY_PREFIX):].strip())
    known = ", ".join(repr(t) for t in TASKS)
    raise KeyError(f"unknown task {task!r}: known tasks are {known} and 'property:<name>'")


def property_answer(name: str, value: str) -> str:
    """The answer text of a labelled property, the value written as the source wrote it. A
    value that ends in a full stop (``5.``, a Fortran or SAS export) ends the sentence
    itself: was "The y is 5..", a doubled stop the model learned to answer with."""
    text = PROPERTY_ANSWER.format(name=name, value=value)
    return text[:-1] if str(value).endswith(".") and text.endswith("..") else text


def without_image_token(text: str) -> str:
    """The text without its `<image>` placeholders, the pieces between them joined by one
    space. In linear time: a regex with `\\s*` on both sides of the token took seconds on a
    turn of 10^4 blanks (every position of the run rescanned it)."""
    return " ".join(trimmed(part) for part in text.split(IMAGE_TOKEN) if trimmed(part))


def trained_question_text(turn: str) -> str:
    """The words of a record's human turn as training sees them: the host's
    preprocess_multimodal (llava/train/train.py) removes every `<image>`, strips the ends and
    puts one `<image>\n` in front, so eval must ask exactly these words ("Look at <image>
    and name it." trains as "Look at  and name it.", two spaces; eval asked it with one)."""
    return turn.replace(IMAGE_TOKEN, "").strip()


def conversation(instruction: str, answer: str) -> List[Dict[str, str]]:
    """The host's record turns: the image token, a newline, the instruction; then the answer.

    A source instruction that already carries ``<image>`` (Vis-CheBI20's user turns) has it
    moved to the front, so every record holds exactly one image token in the same place.
    Both texts are `trimmed`: white space and invisible format characters at their ends go.
    Line ends are "\n": a quoted CSV cell of a CRLF file kept "\r\n" inside its answer,
    which the model was then trained to write.
    """
    instruction, answer = (v.replace("\r\n", "\n").replace("\r", "\n") if isinstance(v, str) else v
                           for v in (instruction, answer))
    # Both texts lose the white space and invisible format characters at their ends
    # (`trimmed`): a description ending in U+202E (RIGHT-TO-LEFT OVERRIDE) trained the model
    # to write one. Inside a text they stay (bidi controls are legitimate in RTL text).
    text = trimmed(without_image_token(instruction))
    if not text or blank(text):
        raise ValueError(f"empty instruction {instruction!r}")
    if not isinstance(answer, str) or blank(answer):
        raise ValueError(f"empty answer {answer!r}")
    answer = trimmed(answer)
    problem = reply_problem(answer)
    if problem:  # training (qwen2) refuses it: the whole dataset was refused later
        raise ValueError(f"the answer {problem}")
    # Texts training refuses (a second placeholder, a control token or the image's start/end
    # tokens, which it would read as template structure): deepmolm-prepare wrote them, and the
    # whole dataset was refused later.
    for what, problem in (("instruction", question_problem(text)), ("answer", question_problem(answer))):
        if problem:
            raise ValueError(f"the {what} {problem}")
    return [{"from": "human", "value": f"{IMAGE_TOKEN}\n{text}"}, {"from": "gpt", "value": answer}]


# The ChatML template's own tokens (Qwen2): typed in a question, the tokenizer reads them as
# template structure, ending the user's turn early or opening another speaker's.
CONTROL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def blank(text: str) -> bool:
    """Nothing a reader sees: only white space and invisible format characters (Unicode
    category Cf: zero-width space U+200B, the direction marks U+200E/F and U+202A-E, word
    joiner U+2060, BOM U+FEFF), which str.strip() keeps. The one emptiness rule for a typed
    question (chat CLI, GUI: `empty_question`) and a record's turn."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


# What `trimmed` removes at a text's ends besides white space: characters that do nothing
# there. Zero-width space / non-joiner / joiner, word joiner and BOM at either end; a bidi
# control that opens an embedding, override or isolate (LRE, RLE, LRO, RLO, LRI, RLI, FSI) at
# the end, where it opens nothing, and one that closes one (PDF, PDI) at the start, where it
# closes nothing. Kept: the direction marks U+200E/F (a leading RLM sets the paragraph's
# direction), a pair of controls around the text's first or last words, the visible format
# characters (Arabic number signs U+0600-0605, U+06DD) and emoji tag sequences.
_INERT = "\u200b\u200c\u200d\u2060\ufeff"
_INERT_AT_START = _INERT + "\u202c\u2069"
_INERT_AT_END = _INERT + "\u202a\u202b\u202d\u202e\u2066\u2067\u2068"


def trimmed(text: str) -> str:
    """`text` without the white space and inert invisible characters (`_INERT_AT_START`,
    `_INERT_AT_END`) at its ends: the ends of a record's instruction and answer
    (`conversation`): a source text ending in U+202E (RIGHT-TO-LEFT OVERRIDE) trained the
    model to write one; str.strip() keeps such characters. The characters inside are kept
    (bidi controls are legitimate in right-to-left text). A text `trimmed` leaves empty is
    `blank`; `blank` also takes texts of direction marks alone."""
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or text[start] in _INERT_AT_START):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _INERT_AT_END):
        end -= 1
    return text[start:end]


def empty_question(question: str) -> Optional[str]:
    """"is empty (...)" for a question a reader sees nothing of, else None: the chat CLI asks
    again, the GUI says so (was: a question of U+200B alone passed their strip() checks and
    was answered). Eval takes an empty question (the image alone is a prompt)."""
    if not blank(question):
        return None
    invisible = next((c for c in question if not c.isspace()), None)
    return "is empty" + (f" (only white space and invisible characters such as U+{ord(invisible):04X})"
                         if invisible else "")


# A reply's leading line break (after spaces or tabs, or none) joins the qwen2 template's
# "assistant\n" in one token: the training prompt is then not the inference prompt.
_LEADING_LINE_BREAK = re.compile(r"[^\S\r\n]*[\r\n]")


def reply_problem(reply: str) -> Optional[str]:
    """Why a reply cannot follow the qwen2 template's assistant header as it is, or None."""
    if _LEADING_LINE_BREAK.match(reply):
        return "starts with a line break, which merges with the chat template's own: strip it"
    return None


def question_problem(question: str) -> Optional[str]:
    """Why a user's question cannot be put into a prompt as it is, or None; worded to follow
    "the question ...". Every place that takes questions (chat CLI, GUI, model_vqa) asks."""
    typed = typed_placeholder(question)
    if typed:
        return (f"contains {typed!r}, the image placeholder: the image is already given once; write it "
                "another way")
    control = first_of(CONTROL_TOKENS, question)
    if control:  # was taken as template structure, changing the prompt without a word
        return f"contains {control!r}, a control token of the chat template; write it another way"
    bad = next((i for i, c in enumerate(question) if "\ud800" <= c <= "\udfff"), None)
    if bad is not None:  # stdin's surrogateescape: the tokenizer failed with a TypeError traceback
        return f"holds bytes that are not UTF-8 (at character {bad}): type or save it as UTF-8"
    bad = next((i for i, c in enumerate(question) if unicodedata.category(c) == "Cc" and c not in "\t\n\r"), None)
    if bad is not None:  # a NUL passed the empty-question check (strip() keeps it) and was answered
        return f"holds the control character U+{ord(question[bad]):04X} (at character {bad}): leave it out"
    return None


WORD_JOINER = "\u2060"  # invisible; splits a token's spelling so the tokenizer cannot match it


def reply_as_text(reply: str) -> str:
    """A model's earlier reply, to be put back into the next prompt as plain text: an image
    placeholder or a chat-template control token it wrote has a WORD JOINER (U+2060) put
    after its "<", so the tokenizer reads it as text. As written, `<image>` became a
    second image slot for the one image (an IndexError on every later turn) and
    `<|im_end|>` ended the reply early, making the rest template structure."""
    for token in IMAGE_PLACEHOLDERS + CONTROL_TOKENS:
        reply = reply.replace(token, token[0] + WORD_JOINER + token[1:])
    return reply


def first_of(tokens, text: str) -> Optional[str]:
    """The first of `tokens` (in their order) that `text` holds, else None."""
    return next((t for t in tokens if t in text), None)


def typed_placeholder(question: str) -> Optional[str]:
    """The first image placeholder a user's question holds (see IMAGE_PLACEHOLDERS), else None:
    the image is given once, before the first question, and the model's inputs must match it."""
    return first_of(IMAGE_PLACEHOLDERS, question)


def history_messages(messages: list, roles) -> list:
    """The messages a chat's next prompt is built from: earlier replies as plain text
    (`prompts.reply_as_text`), and a question the model answered with nothing (one the chat
    CLI refused as too long) left out with its empty reply, its image
    placeholder moved on to the next question. The template left that empty turn open, so
    the next question landed inside the reply; and a too-long question kept in the history
    made every later prompt too long as well."""
    kept, carried = [], ""
    for k in range(0, len(messages) - 1, 2):
        (user, question), (assistant, reply) = messages[k], messages[k + 1]
        if isinstance(question, str) and carried:
            question, carried = carried + question, ""
        if reply is not None and not reply.strip():
            placeholder = typed_placeholder(question) if isinstance(question, str) else None
            if placeholder is not None:  # the host put the image before the first question
                carried = question[:question.index("\n") + 1]
            continue
        kept += [[user, question], [assistant, None if reply is None else reply_as_text(reply)]]
    if len(messages) % 2:  # a question without its reply slot yet
        kept.append(list(messages[-1]))
    return kept
