"""Numeric answers, thirteenth review (eval/metrics/numbers.py): pressures are conditions, the
labels of properties the report does not score (pKa, IC50, density, ...) label their numbers,
a unit of another kind is never a unitless property's value, a property's name implies its
kind of unit, and a number the answer rejects (`not 3 but 2.1`) is not read."""

import pytest

from deepmolm_plugin.eval.metrics import numbers


def _read(answer: str, prop: str):
    return numbers.value_in_unit(answer, numbers.property_spec(prop))


# --- 1. a pressure is a measurement's condition, skipped like a pH or a temperature ----------


@pytest.mark.parametrize("answer, prop, value", [
    ("At 1 atm, the LogP is 2.1.", "LogP", 2.1),  # was 1
    ("At 760 mmHg the HOMO is -5.2 eV", "HOMO", -5.2),  # was 760
    ("Under 1 bar, LogP 2.1", "LogP", 2.1),  # was no value, "a bound"
    ("At 101.3 kPa and 25 °C, the LogD is 1.2", "LogD", 1.2),
    ("At 298.15 K and 1 bar, -5.2 kcal/mol", "Hydration Free Energy", -5.2),  # was invalid: '1 bar' no unit
    ("At 20-25 °C, the LogP is 2.1", "LogP", 2.1),  # a condition's range: was "a range"
    ("At 760 mmHg, the boiling point is 100 °C", "Boiling Point", 100.0),  # was 760
    ("at 10 Torr: 120 °C", "property:boiling_point", 120.0),  # was 10
])
def test_a_pressure_is_a_condition_and_skipped(answer, prop, value):
    assert _read(answer, prop) == (pytest.approx(value), None)


def test_an_answer_that_states_only_a_pressure_says_so():
    value, why = _read("1 atm", "LogP")
    assert value is None and why == "states '1 atm', a pressure, for LogP in log units"  # was 1.0


# --- 2. another property's label precedes (or follows) its own value --------------------------


@pytest.mark.parametrize("answer, prop, value", [
    ("pKa 4.2, LogP 2.1", "LogP", 2.1),  # was 4.2
    ("pKa = 4.2 and logP = 2.1", "LogP", 2.1),  # was 4.2
    ("With a pKa of 4.2, the LogP is 2.1", "LogP", 2.1),
    ("4.2 (pKa) and 2.1 (LogP)", "LogP", 2.1),  # was 4.2
    ("IC50 = 5 nM, LogP 2.1", "LogP", 2.1),
    ("mp 120-122 °C; LogP 2.1", "LogP", 2.1),  # was "a range"
    ("Density 1.2 g/cm³, molecular weight 180.16 g/mol", "Molecular Weight", 180.16),  # was invalid
    ("-5.2 eV (HOMO) and -1.1 eV (LUMO)", "LUMO", -1.1),  # was no value
    ("IC50 = 5 nM, pKa 4.2", "pKa", 4.2),  # a question file's pKa: its own label reads; was 5
    ("At 760 mmHg, bp 250 °C; LogP 2.1", "Boiling Point", 250.0),  # `bp` names the boiling point; was 760
])
def test_another_propertys_number_is_skipped(answer, prop, value):
    assert _read(answer, prop) == (pytest.approx(value), None)


def test_an_answer_with_only_another_propertys_number_has_none():
    finding = numbers.no_value_finding("The pKa is 4.2.", numbers.property_spec("LogP"))
    assert finding is not None and finding.kind is numbers.NoValue.OTHER_PROPERTY  # was 4.2 read as the LogP


# --- 3. a unit of another kind is never a unitless property's value ---------------------------


@pytest.mark.parametrize("answer, prop, why", [
    ("1.5 eV", "LogP", "states '1.5 eV', an energy, for LogP in log units"),  # was 1.5
    ("45%", "LogP", "states '45 %', a percentage, for LogP in log units"),  # was 45
    ("5.0nM", "LogD", "states '5 nM', a concentration, for LogD in log units"),
    ("180 g/mol", "Log Solubility", "states '180 g/mol', a molar mass, for Log Solubility in log(mol/L)"),
    ("350 Da", "Complexity", "states '350 Da', a molar mass, for Complexity in PubChem complexity (unitless)"),
    ("2.1 eV", "property:logp_exp", "states '2.1 eV', an energy, for logp_exp (a quantity without a unit)"),
    ("0.0032 mol/L", "property:logS", "states '0.0032 mol/L', a concentration, for logS (a quantity without a unit)"),
])
def test_a_unit_on_a_unitless_property_is_invalid_with_the_reason(answer, prop, why):
    assert _read(answer, prop) == (None, why)


# --- 4. a property whose unit is not known: its name implies the kind --------------------------


@pytest.mark.parametrize("answer, prop, why", [
    ("1.5 eV", "Boiling Point", "states '1.5 eV', an energy, for Boiling Point (a temperature)"),  # was 1.5
    ("-0.25 K", "property:homo", "states '-0.25 K', a temperature, for homo (an energy)"),  # was -0.25
    ("180 K", "property:mw", "states '180 K', a temperature, for mw (a molar mass)"),
])
def test_a_unit_of_another_kind_than_the_name_implies_is_invalid(answer, prop, why):
    assert _read(answer, prop) == (None, why)


def test_the_scored_value_drops_a_unit_of_another_kind():
    metrics = numbers.property_metrics(["1.5 eV", "2.0"], [2.0, 2.0], "LogP")
    assert metrics["n_valid"] == 1 and metrics["mae"] == 0.0  # was 2 valid, MAE 0.25


# --- 5. a number the answer rejects is not its value -----------------------------------------


@pytest.mark.parametrize("answer", ["not 3 but 2.1", "The LogP is not 3 but 2.1", "It's not 3, it's 2.1",
                                    "Rather than 3.0, the LogP is 2.1", "The answer isn't 3; it's 2.1",
                                    "LogP cannot be 3; 2.1", "not 3-4; 2.1"])
def test_a_rejected_number_is_skipped(answer):
    assert numbers.parse_value(answer, numbers.property_spec("LogP")) == pytest.approx(2.1)  # each read 3


def test_an_answer_that_only_rejects_has_no_value():
    finding = numbers.no_value_finding("The LogP is not 3.")
    assert finding is not None and finding.kind is numbers.NoValue.DENIED
    assert finding.text == "only a number it says is not the value ('not 3.')"
