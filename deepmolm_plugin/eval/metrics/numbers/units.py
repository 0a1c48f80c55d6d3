"""Units stated after a number (rule 6 of `reader.py`): the kinds of unit, the factors that
convert one to its kind's base unit (eV, g/mol, Å²), and where after a number its unit
stands (past markdown and brackets, in the next table cell, `in <unit>`).

Separate because the tables are data: the reader asks only "is this a unit, of which kind"
(`stated_unit`), and the conversion (`value.py`) only for the factor. Which properties read
units at all is here too (`converts_units`: their own unit is one of `_SPEC_UNITS`); "PropertySpec"
is only an annotation here (properties.py imports this module)."""

from __future__ import annotations

import re
from typing import Optional, Tuple

_UNIT_REACH = 64  # characters after a number in which a unit is looked for (a window: not the whole rest)

# A unit stated with the number, as (kind, factor to the kind's base unit: eV, g/mol, Å²).
# Energies per molecule and per mole convert alike (1 eV per molecule is 96.485 kJ/mol).
# Matched case-insensitively (but for `meV` and `MeV`, `K`, `J`, `Ry`, `nm`, `mM`, ...), not
# followed by a letter or digit, or in brackets, alone or with words: `-0.19 (Hartree)`,
# `[a.u.]` (read as eV before), `-0.19 (in Hartree)`, `(Hartree units)`, `(in units of
# Hartree)` (these three were read as eV).
_HARTREE_EV = 27.211386245988  # CODATA 2018
_RYDBERG_EV = _HARTREE_EV / 2  # 13.605693 eV: Quantum ESPRESSO's energy unit (`-0.38 Ry` was -0.38 eV)
_KCAL_MOL_EV = 1 / 23.060547830619
_KJ_MOL_EV = 1 / 96.48533212331
_JOULE_EV = 1 / 1.602176634e-19  # exact (SI 2019): `-8.3e-19 J/molecule` is -5.18 eV
_BARE_JOULE_KIND = "energy in joules, per molecule or per mole (write J/molecule or J/mol)"
_BOHR_ANGSTROM = 0.529177210903  # CODATA 2018 (`72.1 bohr²` was 72.1 Å²)
_POUND_GRAM = 453.59237  # exact
_MOLAR = 1.0  # mol/L, `M`: a concentration's factor, read only by `_log_of_molar` (no property is a concentration)
# "/mol", " mol-1" ("mol⁻¹" after NFKC), "mol^(-1)" (LaTeX's `^{-1}`), "gmol-1", "g.mol-1"
_PER_MOL = r"(?:\s*(?:/|per\s|[·⋅*])\s*|\.|\s*)mole?(?:\s*(?:\^\s*)?(?:-1|\(\s*-1\s*\)))?"
_SQUARED = r"\s*(?:(?:\^|\*\*)\s*)?2"  # no two `\s*` meet around an optional token: quadratic


def _unit_regex(pattern: str) -> "re.Pattern":
    # `(?=(\s*))\1` takes the spaces after a bracket whole (no unit starts with one): given
    # back one at a time, each of the patterns below retried its unit at every space of a
    # long run (`5 (` and 100000 spaces took 0.3 s). `pattern` has no capturing group.
    return re.compile(r"\s*(?:\((?=(\s*))\1(?:{0})\s*\)|\[(?=(\s*))\2(?:{0})\s*\]|(?:{0})(?![^\W_]))".format(pattern),
                      re.IGNORECASE)


_UNITS = [(_unit_regex(pattern), kind, factor) for pattern, kind, factor in (
    (r"(?-i:meV)|milli-?electron[\s-]?volts?", "energy", 1e-3),
    (r"(?-i:MeV)|mega-?electron[\s-]?volts?", "energy", 1e6),  # it was read as meV
    (r"mev", "meV or MeV (unclear case)", None),  # `MEV`, `mev`: invalid, not a guess
    (r"e\.?v|electron[\s-]?volts?", "energy", 1.0),
    (r"hartrees?|ha|e_?h|a\.\s?u\.?|au|atomic\s+units?", "energy", _HARTREE_EV),
    # `-20 mHa` was -20 eV, `-190 mHartree` invalid
    (r"(?-i:m)(?:hartrees?|ha|e_?h)|milli-?hartrees?", "energy", _HARTREE_EV / 1000),
    (r"(?-i:Ry)|rydbergs?", "energy", _RYDBERG_EV),  # `-5.2 Rydberg` was -5.2 eV
    (r"(?-i:mRy)|milli-?rydbergs?", "energy", _RYDBERG_EV / 1000),
    (r"(?:kcal|kilocalories?)" + _PER_MOL, "energy", _KCAL_MOL_EV),
    (r"(?:kj|kilojoules?)" + _PER_MOL, "energy", _KJ_MOL_EV),
    (r"(?:cal|calories?)" + _PER_MOL, "energy", _KCAL_MOL_EV / 1000),  # `-5 cal/mol` was -5 kcal/mol
    (r"(?:(?-i:J)|joules?)" + _PER_MOL, "energy", _KJ_MOL_EV / 1000),
    (r"(?:(?-i:J)|joules?)\s*(?:/|per\s)\s*molecules?", "energy", _JOULE_EV),
    (r"kcal|kilocalories?", "energy", _KCAL_MOL_EV),  # bare: per mole, as chemists write it (`-5 kcal`)
    (r"kj|kilojoules?", "energy", _KJ_MOL_EV),
    (r"cal|calories?", "energy", _KCAL_MOL_EV / 1000),
    # A bare `J` is SI, per particle in physics usage: `-8.3e-19 J` is a HOMO of -5.18 eV, and
    # per mole it was -8.6e-24 eV, inside HOMO's range and scored valid. Neither is assumed.
    (r"(?-i:J)|joules?", _BARE_JOULE_KIND, None),
    (r"(?:g|grams?)" + _PER_MOL + r"|daltons?|da|amu|u", "molar mass", 1.0),
    (r"(?:kg|kilograms?)" + _PER_MOL, "molar mass", 1000.0),  # was a mass: invalid
    (r"kda|kilodaltons?", "molar mass", 1000.0),
    (r"(?:lbs?|pounds?)" + _PER_MOL, "molar mass", _POUND_GRAM),  # `0.397 lb/mol` was 0.397 g/mol
    # Kinds no property here is scored in: recognised only so that an answer stating one
    # (`180 mg` for a molar mass, `300 K` for an energy) is invalid instead of read as
    # the property's unit. Never converted, so their factors are unused. Each of `-5.2
    # Debye`, `-5.2 THz`, `180.16 mM`, `180.16 mol/g`, `180.16 oz` was read as the number
    # in the property's unit.
    # A pressure is a measurement's condition (`bp 100 °C at 760 mmHg`, `At 1 atm, the LogP is
    # 2.1`): was no unit, so `At 760 mmHg the HOMO is -5.2 eV` read 760 eV, and `5psi` a word.
    (r"atm(?:ospheres?)?|(?:m|milli)?bars?|mm[^\S\n]?hg|torrs?|psi|(?-i:[hkMG]?Pa)|(?:hecto|kilo|mega)?pascals?",
     "pressure", None),
    (r"[µμu]g|mg|kg|g|(?:micro|milli|kilo)?grams?|lbs?|pounds?|oz|ounces?", "mass", None),
    (r"°\s*[cf]|(?-i:K)|kelvins?|degrees?(?:\s+(?:celsius|fahrenheit))?", "temperature", None),
    (r"%|percent", "percentage", None),
    # `-5.2 V` was read as eV, `20.2 Å` (no square) and `300 nm` as Å² and eV
    (r"(?-i:[munµμkMG]?V)|volts?", "voltage", None),
    (r"debyes?", "dipole moment", None),
    (r"(?:[kmgtpµμ]|kilo|mega|giga|tera|milli|micro)?-?(?:hz|hertz)|wavenumbers?", "frequency", None),
    # mol/L itself (factor 1: `_log_of_molar` reads a log solubility's `-3.4 mol/L` as the log)
    (r"mol(?:es?|s)?\s*(?:/|per\s)\s*(?:l|liters?|litres?|dm\s*(?:\^\s*)?3)", "concentration", _MOLAR),
    (r"(?:[mµμunp]|milli|micro|nano|pico)mol(?:es?|s)?\s*(?:/|per\s)\s*(?:l|liters?|litres?|dm\s*(?:\^\s*)?3)"
     r"|(?-i:[mµμunp]M)", "concentration", None),
    (r"(?:[mµμunp]|milli|micro|nano|pico)?mol(?:es?|s)?", "amount of substance", None),
    (r"pp[mbt]|parts\s+per\s+(?:million|billion|trillion)", "fraction (parts per million)", None),
    (r"liters?|litres?|(?-i:[mµμd]L)", "volume", None),
    (r"seconds?|minutes?|hours?", "time", None),
)]
# One capital letter, a unit only when set apart from the number (`-5.2 D`, `0.1 M`):
# glued, it begins a word (`3D`, rule 3).
_SPACED_UNITS = [(_unit_regex(pattern), kind, factor) for pattern, kind, factor in (
    (r"(?-i:D)", "dipole moment", None), (r"(?-i:M)", "concentration", _MOLAR), (r"(?-i:L)", "volume", None))]
# A stem of the units above after an SI prefix not listed with it (`keV`, `kHa`, `µEh`,
# `MDa`, `GJ`, `km^2`, `microhartree`): not converted, and not the number in the
# property's unit either (`-20 mHa` was -20 eV before millihartrees were listed). Tried
# last, so that every listed form (`meV`, `kcal`, `kDa`, `mg`, `nm^2`) is matched first.
_PREFIXED = _unit_regex(
    r"(?:(?-i:[yzafpnuµμmcdhkMGTPEZY]|da)|(?:yocto|zepto|atto|femto|pico|nano|micro|milli|centi|deci|hecto|kilo"
    r"|mega|giga|tera|peta|exa)-?)(?:(?-i:eV)|electron[\s-]?volts?|hartrees?|ha|e_?h|(?-i:J)|joules?|cal|calories?"
    r"|(?-i:Ry)|rydbergs?|da|daltons?|m" + _SQUARED + r"|met(?:er|re)s?" + _SQUARED + r")")
_PREFIXED_KIND = "unit with a prefix that is not converted"
# Lengths, as (pattern, factor to Å, or None for a macroscopic length no molecule is
# measured in), with a power written after (`Å2`, NFKC's `Å²`; `Å^2`, `Å**2`, `Å^(2)`,
# LaTeX's `Å^{2}`; `Å squared`) or before (`square Å`, `sq. Å`, `cubic Å`). Only the
# square of a molecular length is an area that converts: `20.2 Å³`, `20.2 A^3`, `20.2
# nm³` (volumes), `20.2 m²` were each read as 20.2 Å², and `Å^{2}` made an answer invalid.
_POWER_BEFORE = r"(?P<before>(?:square|cubic)\s+|(?:sq|cu)(?:\.\s*|\s+))?"
_POWER_AFTER = (r"(?:\s*(?:\^|\*\*)\s*(?:(?P<caret>[+-]?\d+)|\(\s*(?P<bracket>[+-]?\d+)\s*\))|(?P<glued>\d)(?!\d)"
                r"|[^\S\n]{1,3}(?P<word>squared|cubed))?(?![^\W_])")
_LENGTHS = [(re.compile(_POWER_BEFORE + "(?:" + pattern + ")" + _POWER_AFTER, re.IGNORECASE), factor)
            for pattern, factor in (
    (r"å|ångströms?|angstroms?|a(?=\s*(?:\^|\*\*))", 1.0),  # a bare `A` is a word: `A^2` only
    (r"(?-i:nm)|nanomet(?:er|re)s?", 10.0),
    (r"(?-i:pm)|picomet(?:er|re)s?", 0.01),
    (r"bohrs?|a_?0", _BOHR_ANGSTROM),
    (r"(?-i:[cmµμ]?m)|(?:centi|milli|micro)?met(?:er|re)s?|microns?", None),
)]
_POWER_WORDS = {"square": 2, "sq": 2, "squared": 2, "cubic": 3, "cu": 3, "cubed": 3}
# A second unit joined to the first (`kcal/mol/Å`, `eV·Å`, `mol/g`, `eV per K`): a compound
# unit the report does not convert (each was read as the first unit alone).
_COMPOUND = re.compile(r"[^\S\n]*(?:/|·|⋅|per[^\S\n]+)[^\S\n]*", re.IGNORECASE)
_COMPOUND_KIND = "compound unit that is not converted"
# A unit in brackets with words: `(in Hartree)`, `(Hartree units)`, `[in units of eV]`.
# Matched in the first `_UNIT_REACH` characters only: on `5 (in` and a long run of spaces
# the spaces before the bracket's end were tried anew for every split (2000 took 8 s).
_BRACKETED = re.compile(r"(?:\((?=(\s*))\1|\[(?=(\s*))\2)(?:in\s+)?(?:units?\s+of\s+)?(?P<unit>[^()\[\]\n]{1,40}?)"
                        r"(?P<units>\s+units?)?\s*[)\]]", re.IGNORECASE)
# A property's own unit, as (kind, factor): the unit its values are scored in.
_NO_UNIT_KIND = "quantity without a unit"  # LogP, a pKa: any unit stated is another kind
_SPEC_UNITS = {"eV": ("energy", 1.0), "kcal/mol": ("energy", _KCAL_MOL_EV), "g/mol": ("molar mass", 1.0),
               "Å²": ("area", 1.0)}


def stated_unit(after: str) -> Optional[Tuple[str, Optional[float], str]]:
    """(kind, factor, as written) of the unit at the start of `after` (the text after a
    number), or None."""
    spaced = after[:1].isspace()
    after = after.lstrip()  # once, not by each pattern's `\s*` (a long run of spaces was slow)
    if after[:1] in ("(", "["):
        bracketed = _bracketed_unit(after)
        if bracketed:
            return bracketed
    return _compound_unit(after, spaced)


# What may stand between a number and its unit on its line: markdown emphasis or code that
# closes around the number (`**-0.19** Hartree`, `` `-0.19` Ha ``), LaTeX's `~` (its `$` and
# `\,` are spaces by rule 1: `$-0.19~\text{Ha}$`) and the bracket the number stands in
# (`(-0.19 ± 0.01) Hartree`). Was: the unit after them was not read, and the number was taken
# in the property's unit (5 eV off), in predictions and references alike.
_CLOSER = re.compile(r"[^\S\n]*(?:\*{1,3}|_{1,3}|`+|~|[)\]])")
# The next cell of a markdown table, when all it holds is a unit: `| HOMO | -0.19 | Ha |`
_NEXT_CELL = re.compile(r"[^\S\n]*\|[^\S\n]*(?P<cell>[^|\n]{1,40}?)[^\S\n]*(?:\||$|\n)")
# `-0.19 in Hartree.`, `-21 in kJ/mol`, `0.2 in units of nm^2`, `-0.19, in atomic units`: the
# unit ends its clause (`_IN_UNIT_END`), so `2.1 in K-space` or `in water` are prose
_IN_UNIT = re.compile(r"[^\S\n]*,?[^\S\n]*in[^\S\n]+(?:units?[^\S\n]+of[^\S\n]+)?", re.IGNORECASE)
_IN_UNIT_END = re.compile(r"(?:[^\S\n]+units?)?[^\S\n]*(?:$|\n|[.,;:!?)\]*_`'\"])", re.IGNORECASE)


def unit_text_after(before: str, after: str) -> str:
    """The text after a number where its unit stands: `after` (the text after the number and
    its uncertainty, `Reading.after`) without the markdown, LaTeX `~` and brackets that close
    around the number (`_CLOSER`; a `)` or `]` only where one opened before the number on its
    line), looked for in its first `_UNIT_REACH` characters."""
    window = after[:_UNIT_REACH]
    line = before[before.rfind("\n") + 1:]
    opened = line.count("(") + line.count("[") - line.count(")") - line.count("]")
    position = 0
    while True:
        closer = _CLOSER.match(window, position)
        if closer is None:
            return after[position:]
        if closer.group(0).strip() in (")", "]"):
            if opened <= 0:
                return after[position:]
            opened -= 1
        position = closer.end()


def _unit_after(before: str, after: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit stated after a number (`stated_unit`), also past markdown, LaTeX and bracket
    closers (`unit_text_after`), in the table cell that follows (`| -0.19 | Ha |`) or as
    `in <unit>` (`-0.19 in Hartree`); was: only right after the number or its uncertainty."""
    text = unit_text_after(before, after)[:_UNIT_REACH]
    unit = stated_unit(text)
    if unit is not None:
        return unit
    cell = _NEXT_CELL.match(text)
    if cell:
        unit = _compound_unit(cell.group("cell"), spaced=True)
        return unit if unit is not None and unit[2] == cell.group("cell") else None
    words = _IN_UNIT.match(text)
    if words:
        unit = _compound_unit(text[words.end():], spaced=True)
        if unit is not None and _IN_UNIT_END.match(text, words.end() + len(unit[2])):
            return unit[0], unit[1], f"in {unit[2]}"
    return None


def _bracketed_unit(text: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit that a bracket at the start of `text` holds, alone or with words (`(in
    Hartree)`, `(Hartree units)`), or None when it holds anything else."""
    match = _BRACKETED.match(text[:_UNIT_REACH])
    if not match:
        return None
    for inner in (match.group("unit").strip(), (match.group("unit") + (match.group("units") or "")).strip()):
        # `(in atomic units)`: `units` is the unit's own word here (was: `atomic`, no unit)
        unit = _compound_unit(inner, spaced=True)
        if unit and unit[2] == inner:
            return unit[0], unit[1], match.group(0)
    return None


def _compound_unit(text: str, spaced: bool) -> Optional[Tuple[str, Optional[float], str]]:
    """`_unit_at`, or a compound unit (`_COMPOUND`) when a second unit is joined to it."""
    unit = _unit_at(text, spaced)
    if unit is None:
        return None
    end = len(unit[2])
    joint = _COMPOUND.match(text, end)
    if joint:
        other = _unit_at(text[joint.end():], spaced=False)
        if other:
            return _COMPOUND_KIND, None, text[:joint.end() + len(other[2])]
    return unit


def _unit_at(text: str, spaced: bool) -> Optional[Tuple[str, Optional[float], str]]:
    """(kind, factor, as written) of one unit at the very start of `text`, or None; a
    one-letter unit only where the number was `spaced` from it."""
    for pattern, kind, factor in _UNITS:
        match = pattern.match(text)
        if match:
            return kind, factor, match.group(0).strip()
    length = _length_at(text)
    if length:
        return length
    match = _PREFIXED.match(text)
    if match:
        return _PREFIXED_KIND, None, match.group(0).strip()
    for pattern, kind, factor in (_SPACED_UNITS if spaced else ()):
        match = pattern.match(text)
        if match:
            return kind, factor, match.group(0).strip()
    return None


def _length_at(text: str) -> Optional[Tuple[str, Optional[float], str]]:
    """A length, or a power of one, at the start of `text` (`_LENGTHS`): an area in a
    molecular unit converts to Å²; any other is a kind no property here is scored in."""
    for pattern, factor in _LENGTHS:
        match = pattern.match(text)
        if match:
            break
    else:
        return None
    power = 1
    for name in ("before", "word"):
        if match.group(name):
            power *= _POWER_WORDS[match.group(name).strip().rstrip(".").lower()]
    written = match.group("caret") or match.group("bracket") or match.group("glued")
    power *= int(written) if written else 1
    if power == 2 and factor is not None:
        kind, factor = "area", factor * factor
    else:
        kind, factor = {1: "length", 2: "area in a unit that is not converted", 3: "volume",
                        -1: "inverse length (a wavenumber)"}.get(power, f"length to the power {power}"), None
    return kind, factor, match.group(0)


def converts_units(spec: "PropertySpec") -> bool:
    """Whether a unit an answer states is read for this property (eV, kcal/mol, g/mol, Å²:
    converted, or invalid as another kind); without one (LogP, Complexity, `property:<name>`)
    numbers are taken as stated (`value_in_unit`)."""
    return (spec.unit or "") in _SPEC_UNITS
