"""Rule 1 of the reader (`reader.py`): the answer's text as the number parser reads it.

Invisible characters go, LaTeX, superscripts, digit groups, dashes and look-alike characters
become what the number pattern (`syntax.py`) knows. Separate because it runs once, before
any number is looked for, and knows nothing of numbers or units."""

from __future__ import annotations

import re
import unicodedata

from ..text import without_format_characters

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_SUPERSCRIPT_POWER = re.compile(r"10\s*([⁺⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
# Thin, narrow no-break and no-break spaces, apostrophes (Swiss `1'000`, `1’000`) and
# underscores (`1_000`) only ever group digits: joined before three digits (they read 1).
_DIGIT_GROUPS = re.compile(r"(?<=\d)[\u2009\u202f\u00a0'’_](?=\d{3}(?!\d))")
# A superscript right after a number other than 10 (`5²`, a footnote mark `5.2¹`): NFKC
# made it a digit of the number (52, 5.21). Written as a power, which rule 4 refuses.
_SUPERSCRIPT_AFTER_DIGIT = re.compile(r"(?<=[0-9])([⁺⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
# LaTeX as models write it: `$1.5 \times 10^{-3}$` was read as 1.5 (the product operator
# and the braced exponent were not seen), `$<$ 5` and `\leq 5` as 5 (the bound was not
# seen), `\frac{1}{2}` as 1, `3.5 \text{ to } 4.0` as 3.5 and `C_6H_{12}O_6` as 12. In order:
# operators, exponents and subscripts, text wrappers to their contents, a fraction to
# `a/{b}`, named symbols.
_LATEX_SYMBOLS = {"le": "≤", "leq": "≤", "leqslant": "≤", "ge": "≥", "geq": "≥", "geqslant": "≥", "lt": "<",
                  "gt": ">", "ll": "≪", "gg": "≫", "lesssim": "≲", "gtrsim": "≳", "ne": "≠", "neq": "≠",
                  "approx": "≈", "sim": "~", "pm": "±", "to": " to ", "%": "%", "AA": "Å"}
_LATEX = [(re.compile(r"\\(?:times|cdot|ast)(?![A-Za-z])"), "×"), (re.compile(r"\^\{\s*([+-]?[0-9]+)\s*\}"), r"^(\1)"),
          (re.compile(r"_\{([^{}]*)\}"), r"_\1"),
          (re.compile(r"\\(?:text(?:rm|it|bf|normal)?|math(?:rm|it|bf|sf|tt)|mbox|operatorname)\s*\{([^{}]*)\}"), r"\1"),
          (re.compile(r"\\[dtc]?frac\s*\{([^{}]*)\}\s*\{"), r"\1/{"),
          (re.compile(r"\\(" + "|".join(sorted(_LATEX_SYMBOLS, key=len, reverse=True)) + r")(?![A-Za-z])"),
           lambda m: _LATEX_SYMBOLS[m.group(1)]),
          (re.compile(r"\\[,;:! ]|\$"), " ")]
# Markdown emphasis by underscores, which are word characters to the number pattern: `_-3.5_`
# and `HOMO_-5.2` read 3.5 and 5.2 (the sign was "inside a word"). An underscore not after a
# letter or digit, or before a sign, becomes a space; `C_6` (a LaTeX subscript) stays. Each
# run is tried from its first underscore only (linear in a line of underscores).
_UNDERSCORE = re.compile(r"(?<!\w)_+(?=[+-]?\.?\d)|(?<!_)_+(?=[+-]\.?\d)")
# A spaced en or em dash after a word or bracket is punctuation, not a minus: `LogP — 2.1`
# read -2.1. It becomes `~`, which rule 5 ignores before a number and rule 4 reads as a
# range after one (`3 eV – 4 eV`). A dash attached to the digits (`–3.5`) stays a minus, and
# so does one after a word that a value follows (`is – 5.2`), as a spaced hyphen does.
_PUNCTUATION_DASH = re.compile(r"((?<![^\W\d_])[^\W\d_]+|[)\]])(\s+)[\u2013\u2014](?=\s)")  # from a word's start: linear
_BEFORE_A_VALUE = frozenset({"is", "are", "was", "were", "be", "equals", "of", "at", "about", "around",
                             "approximately", "roughly"})
# Characters typed or copied as a minus sign (hyphens and the modifier minus too: "‐1.7"
# read 1.7, the sign lost). NFKC runs first, so U+2011 arrives as U+2010.
_MINUS = str.maketrans({c: "-" for c in "\u2212\u2012\u2013\u2014\ufe63\uff0d\u2010\u2011\u02d7\u2796"})
# Other characters written for what the parser reads: NFKC writes `½` as `1⁄2` (a fraction
# slash: it read 1, `3½` 31); times signs (`1.2 ✕ 10^3` read 1.2); Arabic decimal and
# thousands separators (`٣٫٥` read 3).
_LOOKALIKES = str.maketrans({"\u2044": "/", "\u2215": "/", "\u00f7": "/", "\u2715": "×", "\u2716": "×",
                             "\u2a2f": "×", "\u2217": "×", "\u2219": "×", "\u066b": ".", "\u066c": ","})


def normalise(text: str) -> str:
    """Rule 1 of the reader's rules (`reader.py`)."""
    text = without_format_characters(text)
    text = _SUPERSCRIPT_POWER.sub(lambda m: "10^" + m.group(1).translate(_SUPERSCRIPTS), text)
    text = _SUPERSCRIPT_AFTER_DIGIT.sub(lambda m: "^" + m.group(1).translate(_SUPERSCRIPTS), text)
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    text = _DIGIT_GROUPS.sub("", text)
    # These two are tried at every position of the text (neither starts with a fixed
    # character): only where what they change is there (most of a long answer's time).
    if "_" in text:
        text = _UNDERSCORE.sub(" ", text)
    if "\u2013" in text or "\u2014" in text:
        text = _PUNCTUATION_DASH.sub(_dash_as_punctuation, text)
    return unicodedata.normalize("NFKC", text).translate(_MINUS).translate(_LOOKALIKES)


def _dash_as_punctuation(match: "re.Match") -> str:
    word, space = match.group(1), match.group(2)
    return match.group(0) if word.lower() in _BEFORE_A_VALUE else f"{word}{space}~"
