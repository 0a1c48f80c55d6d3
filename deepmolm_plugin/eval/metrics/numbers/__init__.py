"""Property answers: the number in free text, per-property valid ranges, valid ratio and MAE.

A package, one concept a module, in the order data flows (each imports only modules above it):

  normalise.py     rule 1: the text as the number parser reads it (LaTeX, superscripts, dashes)
  syntax.py        rule 2: the number token, its exponent, the uncertainty after it
  findings.py      what a reading gives back: `Reading`, or a `NoValue` code and its words
  units.py         a unit after a number: kinds, conversion factors, where the unit stands
  unit_headers.py  a unit before the number: `HOMO (Hartree): -0.19`, `In Hartree, ...`, `pH`
  one_value.py     rule 4: malformed numbers, ranges, choices, bounds, stray signs
  skips.py         rule 3: numbers that are no value (locants, list markers, citations, basis
                   sets, enumerations and orbital indices, a unit's power, `3D`, a function's
                   argument) or likely incidental (counts, years, versions: read last)
  rejections.py    rule 3: a number the answer rejects (`not 3 but 2.1`), and hedges
  scales.py        temperature scales (K, °C, °F)
  kinds.py         the kind of unit a property's name implies
  properties.py    `PropertySpec`, `PROPERTY_RANGES`, `property_spec`
  mentions.py      where an answer names a property (the asked one, another known or unscored one)
  labels.py        which mention labels a number (`HOMO: -5.2 eV; LUMO: -1.1 eV`, a table's header)
  conditions.py    a number stated as a condition (pH, temperature, pressure), skipped
  reader.py        `parse_number`, `why_no_value`, ...: the rules, and the order they apply in
  value.py         `parse_value`, `value_in_unit`: the value in the property's unit (rule 6)
  scores.py        `property_metrics`: valid ratio, MAE and RMSE

The names below are the ones callers use; everything else stays inside the package.
"""

from .findings import NO_VALUE_STATED, NoValue
from .mentions import own_mention_end
from .properties import PROPERTY_RANGES, is_property, property_name, property_spec
from .reader import no_value_finding, number_and_text_after, parse_number, why_no_value
from .scores import property_metrics, scored_value
from .units import converts_units
from .value import parse_value, value_in_unit

__all__ = ["NO_VALUE_STATED", "NoValue", "PROPERTY_RANGES", "converts_units", "is_property", "no_value_finding",
           "number_and_text_after", "own_mention_end", "parse_number", "parse_value", "property_metrics",
           "property_name", "property_spec", "scored_value", "value_in_unit", "why_no_value"]
