"""What the reader (`reader.py`) gives back: a `Reading` (the value and the text around
its number), or a `NoValueFinding` (the `NoValue` code and, in words, where it was found).

Separate because callers (`scoring`, `task_kinds`, `questions`) act on the codes without
reading answers, and the word-bounded excerpt (`_shown`) is the one way findings are shown."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class NoValue(enum.Enum):
    """What a text holds instead of one value (`no_value_finding`): a code for callers, its
    value the words `why_no_value` starts with. Was: callers matched those English words
    (eval.questions refused a reference answer whose finding started with "a range", ...)."""
    NO_NUMBER = "no number"
    NOT_TEXT = "not text"
    DECIMAL_COMMA = "a decimal comma or a list"
    DIGIT_GROUPS = "digits grouped other than by three"
    SPACE_GROUP = "digits split by a space"
    FRACTION = "a fraction"
    RATIO = "a ratio"
    MALFORMED = "a malformed number"
    MALFORMED_POWER = "a malformed power of ten"
    POWER = "a power of another base than 10"
    PRODUCT = "a product other than a power of ten"
    STRAY_SIGN = "a sign before the number that is not its own"
    RANGE = "a range"
    BOUND = "a bound"
    CHOICE = "a choice"
    NOT_FINITE = "not a finite number"
    # every number it states is one it rejects: `The LogP is not 3.` (was: read as 3)
    DENIED = "only a number it says is not the value"
    # every number it states is labelled as another known property (`_Labels`): `The LogP is
    # 3.1.` for Log Solubility (was: read as 3.1, until 4a2dea4)
    OTHER_PROPERTY = "only another property's number"


#: The findings that mean a text states no value at all; every other finding is a value
#: written so that it cannot be read (`1,7`, `12 345.6`, `1.234.5`, `3-4`, `< 5`). A method
#: or basis-set name (`B3LYP/6-31G*`) is skipped as words (rule 3), so it is "no number".
NO_VALUE_STATED = frozenset({NoValue.NO_NUMBER})


@dataclass(frozen=True)
class NoValueFinding:
    """Why a text states no one value: the code, and it in words with where it was found
    (`"a range ('1.5-2.0')"`)."""
    kind: NoValue
    text: str


@dataclass(frozen=True)
class Reading:
    """What `_parse` reads: the value, the (normalised) text before its number, and the text
    after its number and uncertainty (where its unit stands: `-0.25 ± 0.01 Hartree`)."""
    value: float
    before: str
    after: str


_SHOWN_AFTER = 16  # characters after the number that `why_no_value` shows


def _shown(text: str, at: int, end: int, reason: str) -> str:
    """`reason` and the text from `at` to a little after the number's `end` (its line only),
    cut at word boundaries (`_word_start`, `_word_end`; was: `'/6-31G*) is -5.2 e'`)."""
    line_end = text.find("\n", end)
    stop = _word_end(text, end, min(end + _SHOWN_AFTER, len(text) if line_end < 0 else line_end))
    shown = text[_word_start(text, at):stop].strip()
    return f"{reason} ({shown!r})"


def _word_end(text: str, end: int, stop: int) -> int:
    """`stop`, moved past the rest of a word it cuts (up to `_SHOWN_AFTER` more characters:
    `... is -5.2 eV.`), else back to the last space after the number's `end`; a word
    longer than that, glued to the number, stays cut."""
    if stop <= end or stop >= len(text) or text[stop - 1].isspace() or text[stop].isspace():
        return stop
    space = _SPACE.search(text, stop, stop + _SHOWN_AFTER + 1)
    if space:
        return space.start()
    if stop + _SHOWN_AFTER >= len(text):
        return len(text)
    last = text.rfind(" ", end, stop)
    return last if last > end else stop


def _word_start(text: str, at: int) -> int:
    """`at`, moved back to the start of the word it falls in (up to `_SHOWN_AFTER`
    characters: `B3LYP/6`, not `/6`)."""
    start = at
    while start > 0 and at - start < _SHOWN_AFTER and not text[start - 1].isspace():
        start -= 1
    return start if start == 0 or text[start - 1].isspace() else at


_SPACE = re.compile(r"\s")
