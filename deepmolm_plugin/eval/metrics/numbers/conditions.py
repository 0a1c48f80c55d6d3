"""A number stated as a measurement's condition, a pH, a temperature or a pressure (`The
LogD at pH 7.4 is 1.2.`, `At 1 atm, the LogP is 2.1.`), for a property of another kind:
no value of the property, so the reader skips it (rule 6 of `reader.py`).

Separate because which kinds are conditions depends on the property (`_conditions_for`),
while the skips of rule 3 depend on the text alone."""

from __future__ import annotations

from .findings import Reading
from .kinds import _implied_kind
from .properties import _CONDITIONS, PropertySpec
from .unit_headers import _PH_BEFORE
from .units import _UNIT_REACH, _unit_after, converts_units

# Conditions skipped before a value (`_condition`): more, and the answer is invalid for the first
_MAX_CONDITIONS = 4


def _condition(reading: Reading, spec: "PropertySpec") -> bool:
    """Whether a number is stated as a measurement's condition, a pH (`at pH 7.4`, `(pH=7.4)`),
    a temperature (`at 25 °C`, `298 K`) or a pressure (`at 1 atm`, `760 mmHg`, `under 1 bar`),
    for a property of another kind (`_conditions_for`): no value of theirs, skipped
    (`_parse_or_reason`). Was (4a2dea4): the answer was invalid, `The LogD at pH 7.4 is 1.2.`
    too; before it, 7.4; a pressure was read as the value (`At 1 atm, the LogP is 2.1` was 1)."""
    conditions = _conditions_for(spec)
    if not conditions:
        return False
    if "pH" in conditions and _PH_BEFORE.search(reading.before[-_UNIT_REACH:]):
        return True
    unit = _unit_after(reading.before, reading.after)
    return unit is not None and unit[0] in conditions


def _conditions_for(spec: "PropertySpec") -> frozenset:
    """The kinds a number of this property is measured under, not its value: pH, temperature
    and pressure for a property that reads units or has none (`converts_units`,
    `PropertySpec.refused_kinds`); for any other, those its name does not make its own kind
    (`_implied_kind`: `Boiling Point` skips `at 760 mmHg`, not its `100 °C`), and none where
    the name tells no kind (`property:<name>`: a temperature may be its value)."""
    if converts_units(spec) or spec.refused_kinds:
        return _CONDITIONS
    implied = _implied_kind(spec)
    return _CONDITIONS - {implied} if implied is not None else frozenset()
