"""A property's value in its unit (rule 6 of `reader.py`): `parse_value`, `value_in_unit`.
The unit after the number or in a header before it is converted to the property's unit, or
makes the answer invalid when it is of another kind; a property without a unit refuses any
unit (but a log solubility's `-3.4 mol/L`), one whose name implies a kind takes that kind.

Separate because the reader reads numbers for any caller; only scoring a property needs
the number in that property's unit."""

from __future__ import annotations

import math
import re
from typing import Optional, Tuple

from ...names import name_key
from .kinds import _a, _implied_kind
from .properties import _NO_UNIT, PropertySpec
from .reader import _parse
from .scales import _in_named_scale
from .unit_headers import _PH, _PH_BEFORE, _unit_before
from .units import _MOLAR, _NO_UNIT_KIND, _SPEC_UNITS, _UNIT_REACH, _unit_after, converts_units


def parse_value(text, spec: "PropertySpec") -> Optional[float]:
    """The value an answer states, in the property's unit (rule 6), or None."""
    return value_in_unit(text, spec)[0]


def value_in_unit(text, spec: "PropertySpec") -> Tuple[Optional[float], Optional[str]]:
    """(`parse_value`, why the unit the answer states cannot be a value of this property or
    None) from one parse. The unit is the one after the number (`stated_unit`) or the one a
    header right before it states (`_unit_before`: `HOMO (Hartree): -0.19`); both, when
    they differ, make the answer invalid."""
    parsed = _parse(text, spec)
    if parsed is None:
        return None, None
    value, before, after = parsed.value, parsed.before, parsed.after
    magnitude = _MAGNITUDE.match(after)
    if magnitude is not None and not (magnitude.group(1) and _implied_kind(spec) == "temperature"):
        return None, f"states '{value:g}{magnitude.group()}', a number scaled by a word, which is not read"
    stated = _unit_after(before, after)
    implied = None if converts_units(spec) or spec.refused_kinds else _implied_kind(spec)
    if converts_units(spec):
        own, header = _SPEC_UNITS[spec.unit], _unit_before(before)
    elif spec.refused_kinds or implied == _NO_UNIT_KIND:
        # LogP, LogD, log solubility, complexity (and `property:logp_exp`, a question file's
        # pKa): a number stated with any unit is not their value (`1.5 eV`, `45%`, `5.0 nM`,
        # `180 g/mol` for log solubility; was read as stated), a condition (`25 °C`, `pH 7.4`)
        # is skipped before, except a log solubility's `-3.4 mol/L` (`_log_of_molar`). Headers
        # are not read (`log solubility in mol/L: -2.49` names the unit under the log).
        own, header = _NO_UNIT, (_PH if _PH_BEFORE.search(before[-_UNIT_REACH:]) else None)
        if stated is not None and _is_log_solubility(spec) and _log_of_molar(value, stated):
            stated = None
        if stated is not None and _ARBITRARY_UNITS.fullmatch(stated[2].strip()):
            stated = None  # `350 a.u.`: arbitrary units, no unit (was: a Hartree, and invalid)
    elif implied is not None:
        # a unit its name implies (`Boiling Point`, `property:homo`): one of another kind makes
        # the answer invalid (`1.5 eV` for a boiling point; was read as stated); one of its kind
        # is taken as stated, not converted (the data's unit is not known), except a
        # temperature where the name states its scale (`_in_named_scale`)
        if stated is not None and stated[0] != implied:
            return None, _other_kind(f"{value:g} {stated[2]}", stated[0], spec.name, f"({_a(implied)})")
        if stated is not None and implied == "temperature":
            return _in_named_scale(value, stated[2], spec.name)
        return value, None
    else:
        return value, None  # a property whose name tells no kind (`property:<name>`): as stated
    if stated is not None and header is not None and stated[:2] != header[:2]:
        return None, f"states two units, {header[2]!r} before {value:g} and {stated[2]!r} after it, for {spec.name}"
    if stated is None and header is None:
        return value, None  # no unit given: as stated
    written = f"{value:g} {stated[2]}" if stated is not None else f"{header[2]} {value:g}"
    stated = stated or header
    if stated[0] != own[0]:
        return None, _other_kind(written, stated[0], spec.name, f"in {spec.unit}" if spec.unit else f"({_a(own[0])})")
    if stated[1] != own[1]:  # the property's own unit stays bit-exact
        value = value * stated[1] / own[1]
    return (value, None) if math.isfinite(value) else (None, None)


# A magnitude after a number: a `k` glued to it (`1.2k`; a capital or spaced K is a kelvin,
# `kcal`, `kDa` are units, `k_B`, `k_{B}` a constant's symbol; for a property whose name
# implies a temperature, a lowercase `k` is a kelvin too: `373.15k`) or a word (`1.2
# thousand`, `3 million`). Was: the number alone, `The complexity is 1.2k` read 1.2, scored
# as stated, a thousandth of what the answer says. Not scaled either: a review of 22,043
# answers found the scaled value 1000x or 10^6 x wrong wherever the reader's pick was
# another number (`Trained on 1.2 million molecules, it predicts 3.2`) or a bound or choice
# followed the word (`5.8k+`, `2.7k or 3.7k`), so such an answer is invalid, with the reason.
_MAGNITUDE = re.compile(r"(?:((?-i:k))|[^\S\n]*(thousand|million|billion)s?)(?![\w{])", re.IGNORECASE)

# `a.u.`, `AU`, `arb. units`, `arbitrary units`: for a property without a unit, arbitrary units
_ARBITRARY_UNITS = re.compile(r"a\.?[ \t]?u\.?|arb(?:\.|itrary)?[ \t]*(?:units?|u\.?)", re.IGNORECASE)


def _other_kind(written: str, kind: str, name: str, wanted: str) -> str:
    """Why a number stated in a unit of another kind is not the property's value (`value_in_unit`)."""
    return f"states {written!r}, {_a(kind)}, for {name} {wanted}"


def _is_log_solubility(spec: "PropertySpec") -> bool:
    """Log Solubility, or a property named as one (ESOL's column `measured log solubility in
    mols per litre`, `property:logS`): its `-3.4 mol/L` names the unit under the log."""
    return "concentration" in spec.refused_kinds or "solubility" in name_key(spec.name) or any(
        word in ("logs", "esol") for word in re.findall(r"[^\W_]+", spec.name.casefold()))


def _log_of_molar(value: float, stated: Tuple[str, Optional[float], str]) -> bool:
    """Whether a log solubility's number stated in mol/L (or `M`, `mols per litre`) is the log
    itself: a concentration is never negative, so `-3.4 mol/L` names the unit under the log, as
    ESOL's column "measured log solubility in mols per litre" does. A positive one (`0.0032
    mol/L`) and a prefixed one (`-3.4 mM`: the log of what, mol/L or mM?) stay refused. Was
    (4a2dea4): every concentration was refused, a reference `logS = -3.40 mol/L` stopped the report."""
    return stated[0] == "concentration" and stated[1] == _MOLAR and value <= 0
