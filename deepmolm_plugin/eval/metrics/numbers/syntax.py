"""Rule 2 of the reader (`reader.py`): what a number is, `[sign][digits][.digits]` with
thousands commas and an exponent, and the uncertainty written after it.

Separate because every other rule looks around a match of `_NUMBER`: the skips (rule 3),
the checks for one value (rule 4) and the labels all start from this token."""

import re

_NUMBER = re.compile(r"""
    (?<![\w.])                                   # not inside a word, formula or number
    (?: (?P<sign>[+-]) (?P<gap>[ ]?) )?
    (?P<mant> [1-9]\d{0,2}(?:,\d{3})+(?!\d)(?:\.\d+)?  # thousands-grouped ("0,125" is a decimal comma)
            | \d+\.(?=[eEdD][+-]?\d)                # "1.E+05", "5.e3" (Fortran / C style): was read as 1, 5
            | \d+(?:\.\d+)?
            | \.\d+ )
    (?P<exp>  [eEdD][+-]?\d+(?!\.\d)             # Fortran's D too (1.23D+02); a unit may follow
                                                 # (`1.2e2g/mol`), or a sentence's period (`is 1.5e3.`)
            | \s*[xX×*·⋅]\s*10\s*(?: (?:\^|\*\*)\s*(?:[+-]?\d+|\(\s*[+-]?\d+\s*\))
                                  | [+-]\d+(?![\d.]) ) )?   # "× 10-3": a superscript lost in copying
    """, re.VERBOSE)
# The power in a `× 10^n` exponent; `[ )]` here found none in "× 10^(3\t)", an AttributeError
_POWER_OF_TEN = re.compile(r"([+-]?[0-9]+)[\s)]*$")
_BARE_POWER = re.compile(r"\s*(?:\^|\*\*)\s*(?:([+-]?\d+)|\(\s*([+-]?\d+)\s*\))")
_LETTER = re.compile(r"[^\W\d_]")
# "3.2 ± 0.1 eV", "3.2 (+/- 0.1) eV": the uncertainty after the number is passed over, so
# that the unit after it is read (it was not: "-0.25 ± 0.01 Hartree" was -0.25 eV). Matched
# at the start of that text (a `^` pattern in `sub` is tried at every position).
_UNCERTAINTY = re.compile(r"\s*(\(\s*)?(?:±|\+/-|\+-)\s*\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?(1)\s*\))")
