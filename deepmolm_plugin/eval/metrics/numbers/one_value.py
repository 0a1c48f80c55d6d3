"""Rule 4 of the reader (`reader.py`): whether a number is one value. A malformed number, a
fraction or ratio, a power of another base, a product, digits split by a space, a range, a
choice, a bound or a sign that is not the number's own make an answer state no one value.

Separate because these decide the answer (`NoValue`) where the skips of rule 3 only pass a
number over; the same checks tell a condition's range (`At 20-25 °C`) to skip."""

from __future__ import annotations

import re
from typing import Optional, Tuple

from .findings import NoValue
from .syntax import _LETTER, _UNCERTAINTY
from .units import stated_unit

# Where a sign one space from its digits is the number's own (rule 2: `is - 5.2 eV`)
_SIGN_CONTEXT = re.compile(r"(?:^|[\s(:=])$")
# "1.2.3", "12,5", "1'00" (a group not of three digits), a fraction or ratio ("1/2", "3:1",
# `\frac{1}{\pi}` as "1/{\pi}"), an exponent that is none ("1.2e3.5", "1e5e5": read as 1.2
# and 1) or one set apart by a space ("1.2 E+3" read 1.2, while "1.2 E-3" was a range), a
# doubled point ("2..5", read 2) and an exponent without digits ("2.5e", "2.5e-": read 2.5;
# "2.5eV" is a unit). No two `\s*` meet around an optional token here or below: on a long
# run of spaces they tried every split of it (`5/` and 20000 spaces took 8.7 s).
_MALFORMED = re.compile(r"^(?:\.\d|\.\.+\s*\d|,\d|['’_]\d|\s*/\s*(?:[{(]\s*)?(?:\.?\d|\\)|:\d|[dD][+-]?\d"
                        r"|\s*[eE]\s*(?:[+-]\s*)?\d|[eE][+-]?(?![^\W\d_]))")
_SIGN_BEFORE = re.compile(r"[+\-±∓]$")  # "--2.5": a sign after a sign (read -2.5); "±-5"
_SIGN_WORD = re.compile(r"\b(?:minus|negative)\s*$", re.IGNORECASE)  # "minus 2.5" read 2.5
_DENOMINATOR = re.compile(r"/\s*(?:[{(]\s*)?$")  # `\frac{\pi}{2}` ("\pi/{2}") read 2
_POWER = re.compile(r"^\s*(?:\^|\*\*)\s*(?:[(+-]\s*)?\d")  # "5^2", "2**10": a power of another base than 10
_PRODUCT = re.compile(r"^\s*[xX×*·⋅]\s*[+-]?\.?\d")  # "1.5 × 10", "2 x 3": a product, not a power of ten
# "1 234.5": a group after a plain space is a thousands group or a second number (it read 1)
_SPACE_GROUP = re.compile(r"^ \d{3}(?!\d)")
# Digits or a point after whole digits and one plain space, `1 80.16`, `-5 .2`, `2 1.` (a
# decoder's token joins): no single value either (was: read 1, -5 and 2, valid); digits that
# begin a word (`2 3D models`) are not
_SPLIT_DIGITS = re.compile(r"^ (?:\d+(?:\.\d+)?|\.\d+)(?!\w|\.\d)")
_UNIT = r"(?:[^\W\d_][^\s\d]*\s*)?"  # optional unit word between a range's ends
# One end of a range, or one of a choice: `3-4`, `3 to 4`, `2 or 3`, `2 vs. 3`, `2 through
# 3`, `2 .. 3`, `2 (or 3)` (`or`, `vs`, `through` and `..` read 2: only `-`, `~` and `to`
# were seen, and `2.1 or -2.1` was refused only because `or` passed for a unit word)
_RANGE_AFTER = re.compile(r"^\s*" + _UNIT + r"(?:-|~|to\b|(?P<choice>\.{2,}|(?:\(\s*)?(?:to|or|vs|versus|through|thru)\b\.?))"
                          r"\s*[+-]?(?P<other>\.?\d+(?:\.\d+)?)", re.IGNORECASE)  # `-5.2 eV (-0.19 Ha)` is one value
_RANGE_BEFORE = re.compile(r"\bbetween\s*$", re.IGNORECASE)
# A bound written after the number (and its unit or uncertainty), as `_BOUND_BEFORE` before
# it: `5 or more`, `5 and above`, `5 and up`, `5 at most`, `5 (at least)`, `5+`, `5 max`,
# `5 (max)`, `5 minimum`, `5 < x`; each read 5. `or more` and the like are a bound wherever
# they stand (`5 or more rotatable bonds`, `140 or more indicates ...`), unless the word
# after them makes them none (`_NOT_A_BOUND`: `180 g/mol or more precisely 180.2`, `2 or
# less polar.`, `and lower-lying orbitals`, `and above all`); `max` / `minimum` end their
# clause (`_CLAUSE_END`), and a `max` in brackets is all they hold (`5.2 (max. abs. error
# 0.1)` is no bound); `min` alone is minutes, no bound.
_CLAUSE_END = r"(?=[^\S\n]*(?:$|\n|[.,;:!?)\]}*_\"'”’<~])|[^\S\n]+-(?:\s|$))"
# An adjective after `or more` / `or less` compares (`2 or less polar`, `... polar than water`)
# only where its clause ends or `than` follows; before a noun the words count it (`2 or more
# polar groups` read 2).
_NOT_A_BOUND = (r"(?!-[^\W\d_]|[^\S\n]+(?:precisely|exactly|accurately|specifically|correctly|likely|probably"
                r"|all|it|that|this)\b|[^\S\n]+(?:polar|soluble|lipophilic|hydrophilic|stable|reactive)\b"
                r"(?:[^\S\n]+than\b|" + _CLAUSE_END + r"))")
_BOUND_AFTER = re.compile(r"""^(?:
    \+(?![\d(/-]|\.\d)                           # `5+`, not `5+/-0.1` (an uncertainty) or `5+3`
  | \s*(?:\(\s*)?(?: (?: (?:or|and)\s+(?:more|less|greater|fewer|higher|lower|larger|smaller|bigger|above
                                       |below|over|under|beyond|up|upwards?|down|downwards?)\b
                        | at\s+(?:least|most)\b ) """ + _NOT_A_BOUND + r"""
                    | (?:max(?:imum)?|minimum)\.?\s*\) )
  | \s*(?:max(?:imum)?|minimum)\b""" + _CLAUSE_END + r"""
  | [^\S\n]*(?:[≤≥≲≳⩽⩾≦≧≪≫≮≯≰≱]|[<>]=?(?=\s|$|[+-]?\.?\d)) )""", re.IGNORECASE | re.VERBOSE)
_BOUND_BEFORE = re.compile(r"(?:[<>≤≥≲≳⩽⩾≦≧≪≫≮≯≰≱≠]|<=|>=|=<|=>|\b(?:(?:less|more|greater|fewer|lower|higher|smaller"
                           r"|larger|bigger)\s+than(?:\s+or\s+equal\s+to)?|at\s+(?:least|most)|up\s+to|below|above"
                           r"|under|over|beyond|exceeds?|exceeding|in\s+excess\s+of|upwards\s+of|(?:maximum|minimum)\s+of))"
                           r"\s*$", re.IGNORECASE)
# The other end of a range after a number (`20-25 °C`, `20 to 25`, `between 20 and 25`)
_OTHER_END = re.compile(r"[^\S\n]*(?:-|~|to\b|and\b)[^\S\n]*[+-]?\d+(?:\.\d+)?", re.IGNORECASE)


def _not_one_value(before: str, after: str, start: int) -> Tuple[Optional[NoValue], int]:
    """(NoValue.RANGE, BOUND, FRACTION or CHOICE, where its cue starts) when the words around a
    number at `start` make it no one value (rule 4: `between 3 and 4`, `< 5`, `\\frac{\\pi}{2}`,
    `3-4`, `2 or 3`), else (None, start)."""
    for pattern, kind in ((_RANGE_BEFORE, NoValue.RANGE), (_BOUND_BEFORE, NoValue.BOUND),
                          (_DENOMINATOR, NoValue.FRACTION)):
        cue = pattern.search(before)
        if cue:
            return kind, cue.start()
    return _not_one_value_reason(after), start


def _past_range(after: str) -> str:
    """The text after a number, past the other end of a range it begins, where the unit of
    both stands (`20-25 °C`)."""
    other = _OTHER_END.match(after)
    return after[other.end():] if other else after


def _range_or_choice_length(after: str) -> int:
    """How far the rest of a range or choice a number begins reaches into `after` (`3-4`, `3
    or 4`: `_RANGE_AFTER`, past an uncertainty), else 0."""
    uncertainty = _UNCERTAINTY.match(after)
    skip = uncertainty.end() if uncertainty else 0
    other = _RANGE_AFTER.match(after, skip)
    return other.end() if other else skip


# What `_MALFORMED` found, in words (`why_no_value`): the first that matches the text after
# the number, else "a malformed number".
_MALFORMED_REASONS = ((re.compile(r",\d"), NoValue.DECIMAL_COMMA), (re.compile(r"['’_]\d"), NoValue.DIGIT_GROUPS),
                      (re.compile(r"\s*/"), NoValue.FRACTION), (re.compile(r":\d"), NoValue.RATIO))


def _malformed_reason(after: str) -> NoValue:
    return next((kind for pattern, kind in _MALFORMED_REASONS if pattern.match(after)), NoValue.MALFORMED)


def _stray_sign(before: str, match: "re.Match") -> bool:
    """Whether a sign or sign word before the number is not the number's own (rules 2 and 4):
    read without it, a negative answer scored as positive."""
    if match.group("sign"):  # "--2.5"; "x,- 5" (a one-space gap outside rule 2's places)
        stray = _SIGN_BEFORE.search(before) or (match.group("gap") and not _SIGN_CONTEXT.search(before))
    else:  # "HOMO-5.2" (glued to a word: `_NUMBER` does not take it), "-\t5.2", "-  5.2"
        stray = before.rstrip()[-1:] in ("+", "-", "±", "∓")  # "± 5" is no one value: it read 5
    return bool(stray or _SIGN_WORD.search(before))  # "minus 2.5", "negative -2.5"


def _not_one_value_reason(after: str) -> Optional[NoValue]:
    """NoValue.RANGE, CHOICE or BOUND when the text after a number makes it one end of
    a range or one of a choice (`_RANGE_AFTER`), or a bound (`_BOUND_AFTER`): rule 4; else
    None. An uncertainty and a known unit are passed over first (`5 eV or more`, `5 ± 0.1
    or more`): the `-1` of `kcal·mol-1` (`mol⁻¹`) is an exponent, not `to 1`."""
    if _BOUND_AFTER.match(after):  # `5+` first: `+/-` and `+-` would start an uncertainty
        return NoValue.BOUND
    uncertainty = _UNCERTAINTY.match(after)
    after = after[uncertainty.end():] if uncertainty else after
    unit = stated_unit(after)
    if unit is not None:
        after = after.lstrip()[len(unit[2]):]
    if _BOUND_AFTER.match(after):
        return NoValue.BOUND
    other = _RANGE_AFTER.match(after)
    if other and other.group("choice"):
        # the other number of a choice is a number: not the digits that begin a word, `2 or
        # 3D models`, `2.1 vs 2nd` (a unit, `2 or 3eV`, or an exponent, `2 or 3e5`, may follow)
        rest = after[other.end():]
        word = _LETTER.match(rest) and stated_unit(rest) is None and not re.match(r"[eEdD][+-]?\d", rest)
        return None if word else (NoValue.RANGE if other.group("choice").startswith("..") or
                                  re.search(r"through|thru|to", other.group("choice"), re.IGNORECASE)
                                  else NoValue.CHOICE)
    return NoValue.RANGE if other else None
