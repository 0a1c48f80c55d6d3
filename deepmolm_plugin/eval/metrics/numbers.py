"""Property answers: the number in free text, per-property valid ranges, valid ratio and MAE.

`parse_number(text)` returns the answer's value (the first number that is a value, see
the rules) or None when the answer gives no single value. Rules, in order:

1. Text is normalised: superscript powers of ten (`10⁻³`) become `10^-3`, and a
   superscript after another number a power (`5²` is `5^2`, not 52); LaTeX's `\times`,
   `\cdot`, `^{-3}` and `$` become `×`, `·`, `^(-3)` and a space; digit groups
   separated by a thin, narrow no-break or no-break space (`1 234`) are joined; then
   Unicode NFKC (full-width digits, ...) and every minus-like dash (U+2212 minus, U+2012
   figure dash, U+2013 en dash, U+2014 em dash, U+FE63, U+FF0D) becomes `-`.
2. A number is `[sign][digits][.digits]` or `.digits`, with optional thousands commas
   (`1,234,567.5`: groups of exactly three digits) and an optional exponent: `e-3`,
   `E+03` (a sentence's final period may follow: `is 1.5e3.` is 1500), `× 10^-3`, `x10**3`,
   `* 10^(-3)`, `·10⁻³`, and `× 10-3` (a superscript lost in copying: it read 1.5 from
   `1.5 × 10−3`); a bare `10^3` is 1000. A sign
   directly before the digits, or separated by one space from them when the sign itself
   follows a space, `(`, `:`, `=` or the start (`is - 5.2 eV`), belongs to the number.
3. Candidates that are not values are skipped and the scan goes on: digits inside a word
   or formula (`C6H12O6`, `XLogP3`, `H2O`: preceded by a letter), IUPAC locants (`2-`,
   `2,3-`, `1H-`, `4'-` before a letter or bracket, as in `2-methylpropan-1-ol`) and
   ordinals (`1st`, `2nd`).
4. The first remaining number decides. The answer is invalid (None) when that number is
   malformed (`1.2.3`, an exponent that is none, `1.2e3.5`, `1e5e5`, `10^3.5`, a power of
   another base than 10, `5^2`, `2**10`, or a comma not followed by exactly three digits: `12,5`, `1,2,3`,
   which could be a decimal comma or a list; a fraction or ratio `1/2`, `4.5/5`; one to
   three digits, a plain space and three digits, `1 234.5`, which could be a thousands
   group or two numbers; a product other than a power of ten, `1.5 × 10`, `2 x 3`, which
   is not evaluated), is one end of a range (`3-4`, `3 to 4`, `3 eV - 4 eV`, `3 ~ 4`,
   `between 3 and 4`: a range is not one predicted value; the exponent of a known unit,
   `180 g·mol⁻¹`, `5 kJ mol-1`, is not one), is a bound (`< 5`, `>= 5`, `≤ 5`,
   `less than 5`, `at least 5`, `up to 5`, `above 5`, `over 5`), or is not finite (`1e999`).
5. Words around the number do not matter (`The value is about 180 g/mol.`, `≈ 5`,
   `~5`, `-0.5 eV`, `3.2 ± 0.1` is 3.2, `45%` is 45). Number words (`twelve`), `N/A`,
   `nan`, `inf` and text without digits are invalid.
6. Units (`parse_value`, for a property): a property whose unit is an energy (eV,
   kcal/mol), a molar mass (g/mol) or an area (Å²) reads a unit stated right after the
   number and converts it: `-0.25 Hartree` (`Ha`, `a.u.`) is -6.80 eV, `-100 meV` is
   -0.1 eV, `-25 kJ/mol` is -5.98 kcal/mol (a bare `kJ` or `kcal` is per mole), `0.18 kDa`
   is 180 g/mol, `0.2 nm^2` is 20 Å²; per-molecule and molar energies convert alike. A
   unit of another kind makes the answer invalid: another of these (`180 g/mol` for HOMO),
   a mass (`180 mg` for a molar mass), a temperature (`300 K`, `25 °C`) or a percentage
   (`45%`). No unit, a word that is not a known unit, and properties without such a unit
   (LogP, complexity, SCF energy, the data's own properties) take the number as stated.
   `parse_number` alone converts nothing.

`PROPERTY_RANGES` holds each known property's unit and inclusive valid range; a parsed
value outside it counts as invalid. Names match case-, space- and punctuation-
insensitively, with aliases (`MW`, `TPSA`, `XLogP`, `HOMO-LUMO gap`, ...), and a task
`property:<name>` (deepmolm_plugin.data.prompts) means the property `<name>`. A property
not listed (any other property in the data) has no range: every finite number is valid.

`property_metrics(preds, refs, name)`: n, n_valid, valid_ratio (x100), MAE and RMSE over
the valid predictions (None when none is valid), plus the property's unit and range. A
prediction whose error with the reference is not a finite float (1e308 against -1e308) is
invalid, so MAE and RMSE are always finite numbers (computed without overflow).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

from ..names import name_key

# --------------------------------------------------------------------------- parsing

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_SUPERSCRIPT_POWER = re.compile(r"10\s*([⁺⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
_SPACED_GROUPS = re.compile(r"(?<=\d)[\u2009\u202f\u00a0](?=\d{3}(?!\d))")
# A superscript right after a number other than 10 (`5²`, a footnote mark `5.2¹`): NFKC
# made it a digit of the number (52, 5.21). Written as a power, which rule 4 refuses.
_SUPERSCRIPT_AFTER_DIGIT = re.compile(r"(?<=[0-9])([⁺⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
# LaTeX as models write it: `$1.5 \times 10^{-3}$` was read as 1.5 (the product operator
# and the braced exponent were not seen), `$<$ 5` as 5 (the bound was not seen).
_LATEX = [(re.compile(r"\\(?:times|cdot|ast)(?![A-Za-z])"), "×"), (re.compile(r"\^\{\s*([+-]?[0-9]+)\s*\}"), r"^(\1)"),
          (re.compile(r"\\[,;:! ]|\$"), " ")]
# Characters typed or copied as a minus sign (hyphens and the modifier minus too: "‐1.7"
# read 1.7, the sign lost). NFKC runs first, so U+2011 arrives as U+2010.
_MINUS = str.maketrans({c: "-" for c in "\u2212\u2012\u2013\u2014\ufe63\uff0d\u2010\u2011\u02d7\u2796"})

_NUMBER = re.compile(r"""
    (?<![\w.])                                   # not inside a word, formula or number
    (?: (?P<sign>[+-]) (?P<gap>[ ]?) )?
    (?P<mant> \d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?  # thousands-grouped
            | \d+\.(?=[eE][+-]?\d)                  # "1.E+05", "5.e3" (Fortran / C style): was read as 1, 5
            | \d+(?:\.\d+)?
            | \.\d+ )
    (?P<exp>  [eE][+-]?\d+(?!\w|\.\d)           # a period may end the sentence: "is 1.5e3."
            | \s*[x×*·⋅]\s*10\s*(?: (?:\^|\*\*)\s*(?:[+-]?\d+|\(\s*[+-]?\d+\s*\))
                                  | [+-]\d+(?![\d.]) ) )?   # "× 10-3": a superscript lost in copying
    """, re.VERBOSE)
_BARE_POWER = re.compile(r"\s*(?:\^|\*\*)\s*(?:([+-]?\d+)|\(\s*([+-]?\d+)\s*\))")
_SIGN_CONTEXT = re.compile(r"(?:^|[\s(:=])$")
_LOCANT = re.compile(r"^'*(?:,\d+'*)*(?:[A-Z]\*?[,)\]]|[A-Z]?-[^\W\d_(\[]|[A-Z]?-[(\[])")
_ORDINAL = re.compile(r"^(?:st|nd|rd|th)\b")
# "1.2.3", "12,5", "1/2" (a fraction or ratio), an exponent that is none ("1.2e3.5", "1e5e5":
# read as 1.2 and 1)
_MALFORMED = re.compile(r"^(?:\.\d|,\d|\s*/\s*\d|[eE][+-]?\d)")
_POWER = re.compile(r"^\s*(?:\^|\*\*)\s*[(+-]?\s*\d")  # "5^2", "2**10": a power of another base than 10
_PRODUCT = re.compile(r"^\s*[x×*·⋅]\s*[+-]?\.?\d")  # "1.5 × 10", "2 x 3": a product, not a power of ten
# "1 234.5": a group after a plain space is a thousands group or a second number (it read 1)
_SPACE_GROUP = re.compile(r"^ \d{3}(?!\d)")
_UNIT = r"(?:[^\W\d_][^\s\d]*\s*)?"  # optional unit word between a range's ends
_RANGE_AFTER = re.compile(r"^\s*" + _UNIT + r"(?:-|~|to\b)\s*[+-]?\.?\d", re.IGNORECASE)
_RANGE_BEFORE = re.compile(r"\bbetween\s*$", re.IGNORECASE)
_BOUND_BEFORE = re.compile(r"(?:<|>|≤|≥|<=|>=|=<|=>|\b(?:(?:less|more|greater|fewer|lower|higher)\s+than|at\s+(?:least|most)"
                           r"|up\s+to|below|above|under|over|exceeds?|exceeding))\s*$", re.IGNORECASE)


def normalise(text: str) -> str:
    """Rule 1 of the module docstring."""
    text = _SUPERSCRIPT_POWER.sub(lambda m: "10^" + m.group(1).translate(_SUPERSCRIPTS), text)
    text = _SUPERSCRIPT_AFTER_DIGIT.sub(lambda m: "^" + m.group(1).translate(_SUPERSCRIPTS), text)
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    text = _SPACED_GROUPS.sub("", text)
    return unicodedata.normalize("NFKC", text).translate(_MINUS)


def parse_number(text) -> Optional[float]:
    """The value an answer states, or None (rules in the module docstring)."""
    parsed = _parse(text)
    return None if parsed is None else parsed[0]


def _parse(text) -> Optional[Tuple[float, str]]:
    """(the value an answer states, the text after its number), or None."""
    if not isinstance(text, str):
        return None
    text = normalise(text)
    for match in _NUMBER.finditer(text):
        start, end = match.start(), match.end()
        sign = match.group("sign") or ""
        if sign and match.group("gap") and not _SIGN_CONTEXT.search(text[:start]):
            sign = ""  # "a - 5": a dash between words, not a sign
            start = match.start("mant")
        after = text[end:]
        if not match.group("exp") and (_LOCANT.match(after) or _ORDINAL.match(after)):
            continue
        power = _POWER.match(after) and (match.group("mant") != "10" or match.group("exp"))  # "10^3" is rule 2's
        space_group = (not match.group("exp") and re.fullmatch(r"\d{1,3}", match.group("mant"))
                       and _SPACE_GROUP.match(after))
        if _MALFORMED.match(after) or _PRODUCT.match(after) or power or space_group:
            return None
        before = text[:start]
        if _RANGE_BEFORE.search(before) or _BOUND_BEFORE.search(before) or _range_after(after):
            return None
        mant, exp = match.group("mant").replace(",", ""), (match.group("exp") or "").strip()
        try:
            if exp[:1] in ("e", "E"):
                value = float(mant + exp)
            elif exp:  # "× 10^-3", "x10**(3)"
                value = float(f"{mant}e{int(re.search(r'([+-]?[0-9]+)[ )]*$', exp).group(1))}")
            else:
                value = float(mant)
                bare = _BARE_POWER.match(after) if mant == "10" else None
                if bare:  # "10^3"
                    value = float(f"1e{int(bare.group(1) or bare.group(2))}")
                    after = after[bare.end():]
                    if _range_after(after) or _MALFORMED.match(after):  # "10^3.5": was 1000
                        return None
        except OverflowError:
            return None
        if sign == "-":
            value = -value
        return (value, after) if math.isfinite(value) else None
    return None


# --------------------------------------------------------------------------- units

# A unit stated right after the number, as (kind, factor to the kind's base unit: eV,
# g/mol, Å²). Energies per molecule and per mole convert alike (1 eV per molecule is
# 96.485 kJ/mol). Matched case-insensitively, not followed by a letter or digit.
_HARTREE_EV = 27.211386245988  # CODATA 2018
_KCAL_MOL_EV = 1 / 23.060547830619
_KJ_MOL_EV = 1 / 96.48533212331
_PER_MOL = r"\s*(?:/|per\s|·|⋅|\s)\s*mole?(?:\s*\^?\s*-1)?"  # "/mol", " mol-1" ("mol⁻¹" after NFKC)
_SQUARED = r"\s*(?:\^|\*\*)?\s*2"
_UNITS = [(re.compile(r"\s*(?:" + pattern + r")(?![^\W_])", re.IGNORECASE), kind, factor) for pattern, kind, factor in (
    (r"mev", "energy", 1e-3),
    (r"e\.?v|electron[\s-]?volts?", "energy", 1.0),
    (r"hartrees?|ha|e_?h|a\.\s?u\.?|au|atomic\s+units?", "energy", _HARTREE_EV),
    (r"(?:kcal|kilocalories?)" + _PER_MOL, "energy", _KCAL_MOL_EV),
    (r"(?:kj|kilojoules?)" + _PER_MOL, "energy", _KJ_MOL_EV),
    (r"kcal|kilocalories?", "energy", _KCAL_MOL_EV),  # bare: per mole, as chemists write it (`-5 kcal`)
    (r"kj|kilojoules?", "energy", _KJ_MOL_EV),
    (r"(?:g|grams?)" + _PER_MOL + r"|daltons?|da|amu|u", "molar mass", 1.0),
    (r"kda|kilodaltons?", "molar mass", 1000.0),
    (r"(?:å|angstroms?)" + _SQUARED + r"|a\s*(?:\^|\*\*)\s*2|square\s+(?:å|angstroms?)", "area", 1.0),
    (r"nm" + _SQUARED + r"|square\s+nanometers?", "area", 100.0),
    # Kinds no property here is scored in: recognised only so that an answer stating one
    # (`180 mg` for a molar mass, `300 K` for an energy) is invalid instead of read as
    # the property's unit. Never converted, so their factors are unused.
    (r"[µμu]g|mg|kg|g|(?:micro|milli|kilo)?grams?", "mass", None),
    (r"°\s*[cf]|(?-i:K)|kelvins?|degrees?(?:\s+(?:celsius|fahrenheit))?", "temperature", None),
    (r"%|percent", "percentage", None),
)]
# A property's own unit, as (kind, factor): the unit its values are scored in.
_SPEC_UNITS = {"eV": ("energy", 1.0), "kcal/mol": ("energy", _KCAL_MOL_EV), "g/mol": ("molar mass", 1.0),
               "Å²": ("area", 1.0)}


def stated_unit(after: str) -> Optional[Tuple[str, float, str]]:
    """(kind, factor, as written) of the unit at the start of `after` (the text after a
    number), or None."""
    for pattern, kind, factor in _UNITS:
        match = pattern.match(after)
        if match:
            return kind, factor, match.group(0).strip()
    return None


def _range_after(after: str) -> bool:
    """Whether the text after a number makes it one end of a range (rule 4). A known unit
    is skipped first: the `-1` of `kcal·mol-1` (`mol⁻¹`) is an exponent, not `to 1`."""
    unit = stated_unit(after)
    if unit is not None:
        after = after.lstrip()[len(unit[2]):]
    return bool(_RANGE_AFTER.match(after))


def parse_value(text, spec: "PropertySpec") -> Optional[float]:
    """The value an answer states, in the property's unit (rule 6), or None."""
    return value_in_unit(text, spec)[0]


def value_in_unit(text, spec: "PropertySpec") -> Tuple[Optional[float], Optional[str]]:
    """(`parse_value`, why the unit the answer states cannot be a value of this property or
    None) from one parse."""
    parsed = _parse(text)
    if parsed is None:
        return None, None
    value, after = parsed
    own, stated = _SPEC_UNITS.get(spec.unit or ""), stated_unit(after)
    if own is None or stated is None:
        return value, None  # a property without a convertible unit, or no unit given: as stated
    if stated[0] != own[0]:
        return None, f"states {f'{value:g} {stated[2]}'!r}, a {stated[0]}, for {spec.name} in {spec.unit}"
    if stated[1] != own[1]:  # the property's own unit stays bit-exact
        value = value * stated[1] / own[1]
    return (value, None) if math.isfinite(value) else (None, None)


# --------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class PropertySpec:
    name: str
    unit: Optional[str]
    low: Optional[float]
    high: Optional[float]
    aliases: Tuple[str, ...] = field(default=())
    note: str = ""

    def in_range(self, value: float, reference: Optional[float] = None) -> bool:
        """Within the valid range, widened to take in `reference` when one is given: a
        reference value outside the range (a 12500 g/mol molecule) made every prediction
        of it invalid, the exact one included."""
        low = self.low if self.low is None or reference is None else min(self.low, reference)
        high = self.high if self.high is None or reference is None else max(self.high, reference)
        return (low is None or value >= low) and (high is None or value <= high)

    def describe(self) -> Dict[str, object]:
        out = {"property": self.name, "unit": self.unit, "range": [self.low, self.high]
               if self.low is not None or self.high is not None else None}
        if self.note:
            out["note"] = self.note
        return out


#: Valid ranges, inclusive: physically possible and wide enough for every molecule in
#: PubChem / PubChemQC, so that only nonsense falls outside.
PROPERTY_RANGES: Dict[str, PropertySpec] = {spec.name: spec for spec in (
    PropertySpec("Molecular Weight", "g/mol", 1.0, 10000.0, ("MW", "mol weight", "molecular mass", "MolWt")),
    PropertySpec("LogP", "log units", -30.0, 30.0, ("XLogP", "XLogP3", "log P", "octanol-water partition coefficient")),
    PropertySpec("Topological Polar Surface Area", "Å²", 0.0, 5000.0, ("TPSA", "polar surface area", "polararea")),
    PropertySpec("Complexity", "PubChem complexity (unitless)", 0.0, 100000.0, ("molecular complexity",)),
    PropertySpec("HOMO", "eV", -50.0, 10.0, ("HOMO energy",)),
    PropertySpec("LUMO", "eV", -30.0, 30.0, ("LUMO energy",)),
    PropertySpec("HOMO-LUMO Gap", "eV", 0.0, 50.0, ("gap", "HOMO LUMO gap", "HL gap", "band gap")),
    PropertySpec("SCF Energy", "as in the data (eV, 10^4 eV or Hartree)", -1.0e7, 0.0, ("SCF", "total energy"),
                 note="always negative; the range covers every unit the sources use"),
    PropertySpec("Log Solubility", "log(mol/L)", -20.0, 5.0, ("ESOL", "solubility", "logS")),
    PropertySpec("Hydration Free Energy", "kcal/mol", -50.0, 20.0, ("FreeSolv", "SAMPL", "hydration energy")),
    PropertySpec("LogD", "log units", -15.0, 15.0, ("Lipophilicity", "logD7.4")),
)}
_BY_KEY = {name_key(alias): spec for spec in PROPERTY_RANGES.values() for alias in (spec.name,) + spec.aliases}


PROPERTY_PREFIX = "property:"  # deepmolm_plugin.data.prompts: labelled-property tasks "property:<name>"


def property_name(task: str) -> str:
    """The property a task asks for: the task name, without a `property:` prefix."""
    return task[len(PROPERTY_PREFIX):].strip() if task.startswith(PROPERTY_PREFIX) else task


def property_spec(name: str) -> PropertySpec:
    """The spec of a property name or alias (or `property:<name>` task); an unknown
    property gets one with no range."""
    name = property_name(name)
    return _BY_KEY.get(name_key(name)) or PropertySpec(name, None, None, None)


def is_property(name: str) -> bool:
    """A known property, or any `property:<name>` task."""
    return name.startswith(PROPERTY_PREFIX) or name_key(name) in _BY_KEY


# --------------------------------------------------------------------------- metrics


def parse_prediction(text: str, spec: PropertySpec) -> Optional[float]:
    """The parsed value in the property's unit, or None if it is not a number, states a
    unit of another kind, or is out of the property's range."""
    value = parse_value(text, spec)
    return value if value is not None and spec.in_range(value) else None


def property_metrics(preds: Sequence[str], refs: Sequence[float], name: str) -> Dict[str, object]:
    """Valid ratio (x100) and MAE/RMSE over valid predictions for one property.

    preds: answer texts; refs: reference values (finite numbers)."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    spec = property_spec(name)
    errors = []
    for pred, ref in zip(preds, refs):
        ref = float(ref)
        if not math.isfinite(ref):
            raise ValueError(f"{name}: reference value {ref} is not finite")
        value = scored_value(pred, spec, ref)
        if value is not None:
            errors.append(abs(value - ref))
    n, n_valid = len(preds), len(errors)
    result = spec.describe()
    result.update({"n": n, "n_valid": n_valid, "valid_ratio": 100.0 * n_valid / n if n else None,
                   "n_references_out_of_range": sum(not spec.in_range(float(r)) for r in refs),
                   "mae": mean_error(errors), "rmse": root_mean_square(errors)})
    return result


def scored_value(text: str, spec: PropertySpec, reference: float) -> Optional[float]:
    """The value a prediction is scored with, or None when it is invalid: not a number, out
    of range (widened to take in the reference), or so far from the reference that the
    error is beyond the float range (a
    property without a range, the model answering 1e308): that error is no number."""
    value = parse_value(text, spec)
    if value is None or not spec.in_range(value, reference):
        return None
    return value if math.isfinite(value - reference) else None


def mean_error(errors: Sequence[float]) -> Optional[float]:
    """The mean, summed as e/n: a plain sum of large errors overflows to inf."""
    return sum(e / len(errors) for e in errors) if errors else None


def root_mean_square(errors: Sequence[float]) -> Optional[float]:
    """RMSE scaled by the largest error: e*e overflows to inf above 1.3e154 (an answer of
    1e200 for a property without a range), and metrics.json would hold `Infinity`."""
    if not errors:
        return None
    scale = max(errors)
    if scale == 0:
        return 0.0
    return scale * math.sqrt(sum((e / scale) ** 2 for e in errors) / len(errors))
