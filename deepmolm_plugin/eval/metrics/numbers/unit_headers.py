"""Units stated before the number (rule 6 of `reader.py`): a header (`HOMO (Hartree): -0.19`,
`MW [kDa] = 0.18`, `E/eV = -5.2`), a sentence that opens with its unit (`In Hartree, the
HOMO is -0.19.`), and `pH` before a number.

Separate from `units.py` because it reads the text before the number, with cue words and
markdown between (whose tokens `labels.py` reuses), where `units.py` reads the text after it."""

from __future__ import annotations

import re
from typing import Optional, Tuple

from .units import _UNIT_REACH, _bracketed_unit, _compound_unit

# A unit stated before the number, for the value after it: `HOMO (Hartree): -0.19`, `MW [kDa]
# = 0.18`, `TPSA (nm²) 0.202`, `Molecular weight in kDa: 0.18`, `The HOMO (in eV) is -5.2`
# (each was read in the property's own unit). Looked for in the characters right before the
# number (`_UNIT_REACH`); a bracket or `in` that holds no unit is ordinary text. Between the
# header and the number may stand cues (`:`, `=`, `≈`, `~`, a table's `|`, is, are, was, were,
# equals, of, about, around, approximately, approx., roughly, nearly, circa, ca.) and markdown
# emphasis or a comma (`**HOMO (Hartree):** ~-0.19`, `| HOMO (Hartree) | -0.19 |`, `The HOMO,
# in Hartree, is -0.19`); was: the number right after the header (or `:`, `=`, `≈`, `~`, is,
# was, equals, of) only, and each of these read in the property's unit (5 eV off). An `in`
# header needs one of these before the number (`in kDa: 0.18`, `in kDa, 0.18`; `in kDa 0.18`
# is prose). Each token is matched whole (`\*{1,3}(?!\*)`): no run is split between
# repetitions (linear in the window).
_HEADER_APPROXIMATELY = r"about|around|approximately|approx\.?|roughly|nearly|circa|ca\."
_HEADER_CUE = (r"(?:[:=≈~|]|(?<![^\W\d_])(?:is|are|was|were|equals|of|" + _HEADER_APPROXIMATELY
               + r")(?![^\W\d_]))")
_HEADER_FILLER = r"(?:\*{1,3}(?!\*)|_{1,3}(?!_)|,)"
_HEADER_TOKEN = r"(?:[^\S\n]*(?:" + _HEADER_CUE + "|" + _HEADER_FILLER + r"))"
# A word of an `in` header's unit: no cue word (`in Hartree is`), comma, emphasis or bracket,
# but `**` before a power (`in Å**2:`)
_HEADER_WORD = (r"(?!(?:in|is|are|was|were|equals|" + _HEADER_APPROXIMATELY + r")(?![^\W\d_]))"
                r"(?:[^\s:=,|*~≈()\[\]]|\*\*(?=[+-]?\d))+")
_UNIT_HEADER = re.compile(r"(?:(?P<bracket>\([^()\n]{1,40}\)|\[[^\[\]\n]{1,40}\])" + _HEADER_TOKEN + "{0,8}"
                          + r"|(?<![^\W\d_])in[^\S\n]+(?P<words>" + _HEADER_WORD + r"(?:[^\S\n]+" + _HEADER_WORD
                          + r"){0,3})" + _HEADER_TOKEN + r"{1,8})\s*\Z", re.IGNORECASE)
# `Å^(2)` (LaTeX's `Å^{2}`) as `Å^2` in a header: a bracket in the header's bracket ended it
# (`TPSA (Å^(2)): 20.2` read no header)
_BRACKETED_POWER = re.compile(r"(\^|\*\*)[^\S\n]*\([^\S\n]*([+-]?\d{1,2})[^\S\n]*\)")


# A bracket holding one Latin letter before the number names the quantity, not its unit:
# `The molar mass (M) is 180.16 g/mol`, `The energy (E) is -5.2 eV` (was: `(M)` read as the
# unit M, mol/L, which made the answer invalid, or two units with the g/mol after it). A
# unit spelled out, `(Hartree)`, `(kDa)`, `(Å²)`, stays a header.
_QUANTITY_SYMBOL = re.compile(r"[(\[][^\S\n]*[A-Za-z][^\S\n]*[)\]]")


# IUPAC's quantity calculus, `HOMO / Hartree: -0.19`, `E/eV = -5.2` (was: read in the
# property's unit): a word, `/`, the unit, then a cue as for `_UNIT_HEADER`. `g/mol: 180` is
# a unit written whole, not a quantity over a unit (`_unit_before`).
_SLASH_HEADER = re.compile(r"(?P<quantity>[^\s/]*)[^\S\n]*/[^\S\n]*(?P<words>" + _HEADER_WORD + r"(?:[^\S\n]+"
                           + _HEADER_WORD + r"){0,3})" + _HEADER_TOKEN + r"{1,8}\s*\Z", re.IGNORECASE)
# A sentence that opens with its unit, `In Hartree, the HOMO is -0.19.` (was: read in eV):
# `In <unit>,` at the text's, a line's or a sentence's start, and no sentence end between it
# and the number.
_SENTENCE_UNIT = re.compile(r"(?:\A|[.!?][^\S\n]+|\n)[^\S\n]*(?:\*{1,3}|_{1,3})?in[^\S\n]+(?P<words>[^,.!?\n]{1,40}?)"
                            r"[^\S\n]*,(?:[^.!?\n]|[.!?](?!\s|\Z))*\Z", re.IGNORECASE)
# A number right after `pH` is a pH, not a property's value: `At pH 7.4, the LogD is 1.2`
# read 7.4 (and `the HOMO at pH 7` read 7 eV).
_PH_BEFORE = re.compile(r"(?<![^\W\d_])pH[^\S\n]*(?:=|:|of|is)?[^\S\n]*\Z")
_PH = ("pH", None, "pH")
_SENTENCE_REACH = 256  # characters before the number in which a sentence's `In <unit>,` is looked for


def _unit_before(before: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit a header right before the number states (`_UNIT_HEADER`, `_SLASH_HEADER`),
    the unit a sentence opens with (`_SENTENCE_UNIT`), `pH` (`_PH_BEFORE`), or None."""
    window = _BRACKETED_POWER.sub(r"\1\2", before[-_UNIT_REACH:])
    if _PH_BEFORE.search(window):
        return _PH
    header = _UNIT_HEADER.search(window)
    if not header:
        return _slash_unit(window) or _sentence_unit(before)
    if header.group("bracket"):
        if _QUANTITY_SYMBOL.fullmatch(header.group("bracket")):
            return None
        return _bracketed_unit(header.group("bracket"))
    words = header.group("words").strip()
    return _bracketed_unit(f"({words})")  # `in Hartree units:` as `(Hartree units)`


def _slash_unit(window: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit of a quantity-calculus header (`_SLASH_HEADER`: `HOMO / Hartree:`), or None;
    None too where the quantity and unit together are one unit (`g/mol:`, `kcal/mol =`)."""
    header = _SLASH_HEADER.search(window)
    if not header:
        return None
    joined = f"{header.group('quantity')}/{header.group('words')}"
    whole = _compound_unit(joined, spaced=False) if header.group("quantity") else None
    if whole is not None and whole[2] == joined:
        return None
    return _bracketed_unit(f"({header.group('words').strip()})")


def _sentence_unit(before: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit a sentence opens with (`_SENTENCE_UNIT`: `In Hartree, the HOMO is`), or None."""
    # from a few sentences back only (search's `pos`: `\A` stays the text's own start)
    opening = _SENTENCE_UNIT.search(before, max(0, len(before) - _SENTENCE_REACH))
    return None if opening is None else _bracketed_unit(f"({opening.group('words').strip()})")
