"""The properties the report knows: `PropertySpec` (unit, inclusive valid range, aliases,
the kinds refused as conditions), `PROPERTY_RANGES`, and a task's spec (`property_spec`).

`PROPERTY_RANGES` holds each known property's unit and inclusive valid range; a parsed
value outside it counts as invalid. Names match case-, space- and punctuation-
insensitively, with aliases (`MW`, `TPSA`, `XLogP`, `HOMO-LUMO gap`, ...). A task
`property:<name>` (deepmolm_plugin.data.prompts: deepmolm-prepare's name for a CSV or SDF
label column) is the data's own property `<name>`, whatever its name: no unit and no
range, its numbers taken as stated (unless stated in a unit of another kind than its name
implies, rule 6) (QM9's `homo` column is in Hartree; as the known HOMO
in eV, the exact answer "-0.25 Hartree" was converted to -6.80 eV and scored 6.55 off);
its spec's `note` (metrics.json) names the known property it is named like. The known
properties are the task names without the prefix (3D-MoIT's `HOMO`, `Molecular Weight`,
..., or a question file's own `FreeSolv`). A property not listed (any other property in
the data) has no range either: every finite number is valid.

Separate because it is the table every other part looks names up in (mentions, labels,
conditions, scores), and it reads no answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ...names import name_key
from .kinds import _implied_note
from .units import _NO_UNIT_KIND


@dataclass(frozen=True)
class PropertySpec:
    name: str
    unit: Optional[str]
    low: Optional[float]
    high: Optional[float]
    aliases: Tuple[str, ...] = field(default=())
    note: str = ""
    # a log or a count (no unit: any unit stated makes a number not its value, `value_in_unit`): the
    # conditions skipped before its value, and for log solubility the concentrations under the log
    refused_kinds: frozenset = frozenset()

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


_NO_UNIT = (_NO_UNIT_KIND, None)  # `PropertySpec.refused_kinds`: a unit stated is another kind
# A measurement's conditions (`The LogP at 25 °C is 2.1.`, `At pH 7.4, the LogD is 1.2.`, `at
# 1 atm`), skipped before the value (`_condition`), and for log solubility its concentration
# (`3.2 mM`, `0.0032 mol/L`), which marks `-3.4 mol/L` as the log's unit (`_log_of_molar`);
# any unit makes a unitless property's number invalid (was: a LogP's `5.0nM`, `1.5 eV` read as stated)
_CONDITIONS = frozenset({"temperature", "pH", "pressure"})
_CONCENTRATIONS = frozenset({"concentration", "amount of substance"})

#: Valid ranges, inclusive: physically possible and wide enough for every molecule in
#: PubChem / PubChemQC, so that only nonsense falls outside.
PROPERTY_RANGES: Dict[str, PropertySpec] = {spec.name: spec for spec in (
    PropertySpec("Molecular Weight", "g/mol", 1.0, 10000.0, ("MW", "mol weight", "molecular mass", "MolWt")),
    PropertySpec("LogP", "log units", -30.0, 30.0, ("XLogP", "XLogP3", "log P", "octanol-water partition coefficient"),
                 refused_kinds=_CONDITIONS),
    PropertySpec("Topological Polar Surface Area", "Å²", 0.0, 5000.0, ("TPSA", "polar surface area", "polararea")),
    PropertySpec("Complexity", "PubChem complexity (unitless)", 0.0, 100000.0, ("molecular complexity",),
                 refused_kinds=_CONDITIONS),
    PropertySpec("HOMO", "eV", -50.0, 10.0, ("HOMO energy",)),
    PropertySpec("LUMO", "eV", -30.0, 30.0, ("LUMO energy",)),
    PropertySpec("HOMO-LUMO Gap", "eV", 0.0, 50.0, ("gap", "HOMO LUMO gap", "HL gap", "band gap")),
    PropertySpec("SCF Energy", "as in the data (eV, 10^4 eV or Hartree)", -1.0e7, 0.0, ("SCF", "total energy"),
                 note="always negative; the range covers every unit the sources use"),
    PropertySpec("Log Solubility", "log(mol/L)", -20.0, 5.0, ("ESOL", "solubility", "logS", "log S"),
                 refused_kinds=_CONDITIONS | _CONCENTRATIONS),
    PropertySpec("Hydration Free Energy", "kcal/mol", -50.0, 20.0, ("FreeSolv", "SAMPL", "hydration energy")),
    PropertySpec("LogD", "log units", -15.0, 15.0, ("Lipophilicity", "logD7.4", "log D"), refused_kinds=_CONDITIONS),
)}
_BY_KEY = {name_key(alias): spec for spec in PROPERTY_RANGES.values() for alias in (spec.name,) + spec.aliases}


PROPERTY_PREFIX = "property:"  # deepmolm_plugin.data.prompts: labelled-property tasks "property:<name>"


def property_name(task: str) -> str:
    """The property a task asks for: the task name, without a `property:` prefix."""
    return task[len(PROPERTY_PREFIX):].strip() if task.startswith(PROPERTY_PREFIX) else task


def property_spec(name: str) -> PropertySpec:
    """The spec of a property name or alias; an unknown property, and a `property:<name>`
    task (a column of the data, whatever its name), get one with no unit and no range."""
    if name.startswith(PROPERTY_PREFIX):
        # deepmolm-prepare names a CSV or SDF label column `property:<column>`: QM9's `homo`
        # column holds Hartree, and as the known HOMO (eV) a right answer "-0.25 Hartree"
        # was converted to -6.80 and scored 6.55 off. The data's unit is not known here.
        own = property_name(name)
        known = _BY_KEY.get(name_key(own))
        note = (f"the data's own property, taken as stated; named like the known property {known.name} ("
                f"{known.unit}), whose unit and range are not assumed" if known else "")
        note = "; ".join(part for part in (note, _implied_note(own)) if part)
        return PropertySpec(own, None, None, None, note=note)
    return _BY_KEY.get(name_key(name)) or PropertySpec(name, None, None, None, note=_implied_note(name))


def is_property(name: str) -> bool:
    """A known property, or any `property:<name>` task."""
    return name.startswith(PROPERTY_PREFIX) or name_key(name) in _BY_KEY
