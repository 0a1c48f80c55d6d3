"""Property answers, eighteenth review (eval/metrics/numbers): where an answer names the asked
property, the number that property's mention labels is its value, not the first number in the
text. Each answer below read another number before (exit 0, a wrong value scored, or a right
one counted invalid), on the prediction side and on the reference side alike:

1. a count before the name (`7 carbon atoms`, `2 aromatic rings`, `0 violations`, `rule of 5`);
2. a number another quantity labels (exact mass, ionization potential, a year, a version, a
   compound's number, a function's argument `logD(7.4)`, a difference `5.1 eV above the HOMO`,
   an unnamed quantity before the asked one: `The 3D PSA is 45 Å² and the TPSA is 40.5 Å²`);
3. a table whose header names the properties over their columns;
4. a right answer read as another number out of the property's range, so counted invalid;
5. where the asked property is not named, a count or year before the value;
6. where the asked property's own number cannot be read, the answer is invalid with that
   reason, not read as an earlier number."""

import pytest

from deepmolm_plugin.eval.metrics import numbers
from deepmolm_plugin.eval.metrics.numbers.scores import parse_prediction
from deepmolm_plugin.eval.task_kinds import reference_value


def _read(answer: str, prop: str):
    return numbers.value_in_unit(answer, numbers.property_spec(prop))


# --- 1. a count before the asked property's name ------------------------------------------------


@pytest.mark.parametrize("answer, prop, value", [
    ("The molecule has 7 carbon atoms and a molecular weight of 100 g/mol.", "Molecular Weight", 100.0),  # was 7
    ("The molecule has 3 nitrogen atoms and a TPSA of 40.5 Å².", "TPSA", 40.5),  # was 3
    ("The molecule has 2 aromatic rings and a LogP of 3.1.", "LogP", 3.1),  # was 2
    ("The molecule has 10 pi electrons and a HOMO of -6.1 eV.", "HOMO", -6.1),  # was 10
    ("Lipinski: 0 violations. LogP 2.1", "LogP", 2.1),  # was 0
    ("According to Lipinski's rule of 5, the logP of 2.1 is acceptable", "LogP", 2.1),  # was 5
    ("With 5 double bonds, the HOMO energy is -6.1 eV.", "HOMO", -6.1),  # was 5
    ("It contains 2 hydroxyl groups; TPSA 40.5", "TPSA", 40.5),  # was 2
    ("The molecule has 12 C atoms and a molecular weight of 264.32 g/mol.", "Molecular Weight", 264.32),  # was 12
    ("It violates 1 Lipinski rule; logP 2.1", "LogP", 2.1),  # was 1
    ("The TPSA from 3 nitrogen atoms, by RDKit, is 40.5", "TPSA", 40.5),  # was 3
])
def test_a_count_before_the_asked_property_is_not_its_value(answer, prop, value):
    assert _read(answer, prop) == (pytest.approx(value), None)


# --- 2. a number another quantity labels ----------------------------------------------------------


@pytest.mark.parametrize("answer, prop, value", [
    ("The ionization potential is 6.1 eV, so the HOMO is -6.1 eV.", "HOMO", -6.1),  # was 6.1
    ("The LUMO lies 5.1 eV above the HOMO, at -1.0 eV.", "LUMO", -1.0),  # was 5.1
    ("logD(7.4) = 1.1", "LogD", 1.1),  # was 7.4
    ("The exact mass is 180.06 and the molecular weight is 180.16 g/mol.", "Molecular Weight", 180.16),  # was 180.06
    ("Using RDKit 2023.09, the MW is 180.16 g/mol.", "Molecular Weight", 180.16),  # was 2023.09
    ("RDKit (version 2023.09) gives MW 180.16.", "Molecular Weight", 180.16),  # was 2023.09
    ("Compound 5 has MW 300.2", "Molecular Weight", 300.2),  # was 5
    ("The LogP of compound 2 is 2.1", "LogP", 2.1),  # was 2
    ("The HOMO (orbital 21 of 40) is -6.1 eV.", "HOMO", -6.1),  # was 40
    ("In 2020 the MW was measured as 300.2", "Molecular Weight", 300.2),  # was 2020
    ("Using the Crippen method (1999), the LogP is 2.1.", "LogP", 2.1),  # was 1999
    ("The 3D PSA is 45 Å² and the TPSA is 40.5 Å².", "Topological Polar Surface Area", 40.5),  # was 45
    ("Below the 140 Å² threshold, its TPSA is 40.5 Å².", "Topological Polar Surface Area", 40.5),  # was 140
    ("Like toluene (2.7), its logP is 3.5.", "LogP", 3.5),  # was 2.7
    ("LogP = log(125) = 2.1", "LogP", 2.1),  # was 125
    ("The monoisotopic mass is 264.1 g/mol and the molecular weight is 264.32 g/mol.", "Molecular Weight",
     264.32),  # was 264.1
    ("Its CAS number is 50-99-7 and its MW 180.16", "Molecular Weight", 180.16),  # was no value, "a range"
])
def test_a_number_another_quantity_labels_is_not_the_value(answer, prop, value):
    assert _read(answer, prop) == (pytest.approx(value), None)


# --- 3. a table's header over its columns ----------------------------------------------------------


@pytest.mark.parametrize("answer, prop, value", [
    ("| LogP | MW |\n|---|---|\n| 2.1 | 180.16 |", "Molecular Weight", 180.16),  # was 2.1
    ("| MW | LogP |\n|---|---|\n| 180.2 | 2.1 |", "LogP", 2.1),  # was 180.2
    ("MW | LogP\n--- | ---\n180.2 | 2.1", "LogP", 2.1),  # no outer pipes; was 180.2
    ("| Compound | LogP | MW |\n|:--|--:|--:|\n| ethanol | -0.3 | 46.07 |", "Molecular Weight", 46.07),  # was -0.3
])
def test_a_table_cell_is_read_under_its_columns_header(answer, prop, value):
    assert _read(answer, prop) == (pytest.approx(value), None)


# --- 4. a right answer that was counted invalid ----------------------------------------------------


@pytest.mark.parametrize("answer, prop, value", [
    # the HOMO's -6.1 was read as the gap, out of its range (0-50 eV): invalid
    ("The energy gap between HOMO (-6.1 eV) and LUMO (-1.0 eV) is 5.1 eV.", "HOMO-LUMO Gap", 5.1),
    ("P = 125 (logP 2.1)", "LogP", 2.1),  # P's 125, out of LogP's range: invalid
    ("The partition coefficient P is 125, so logP = 2.1", "LogP", 2.1),
])
def test_a_right_answer_is_scored_valid(answer, prop, value):
    assert parse_prediction(answer, numbers.property_spec(prop)) == pytest.approx(value)


@pytest.mark.parametrize("task, answer, value", [
    ("HOMO", "The ionization potential is 6.1 eV, so the HOMO is -6.1 eV.", -6.1),  # was 6.1
    ("LogD", "logD(7.4) = 1.1", 1.1),  # was 7.4
    ("Molecular Weight", "Using RDKit 2023.09, the MW is 180.16 g/mol.", 180.16),  # was 2023.09
    ("Molecular Weight", "| LogP | MW |\n|---|---|\n| 2.1 | 180.16 |", 180.16),  # was 2.1
])
def test_a_reference_answer_is_read_the_same_way(task, answer, value):
    assert reference_value(task, {"question_id": "q", "answer": answer}) == pytest.approx(value)


# --- 5. the asked property not named: a count or year before the value ---------------------------


@pytest.mark.parametrize("answer, prop, value", [
    ("The molecule has 2 rings and weighs 264.32 g/mol.", "Molecular Weight", 264.32),  # was 2
    ("It has 6 oxygens and weighs 264.32", "Molecular Weight", 264.32),  # was 6
    ("3 rings; it weighs 264.32 g/mol", "Molecular Weight", 264.32),  # was 3
    ("In 2020 it was measured as 300.2 g/mol", "Molecular Weight", 300.2),  # was 2020
    ("Compound 5 weighs 300.2 g/mol", "Molecular Weight", 300.2),  # was 5
])
def test_without_the_name_a_count_or_year_yields_to_a_value(answer, prop, value):
    assert _read(answer, prop) == (pytest.approx(value), None)


# --- 6. the asked property's own number unreadable: invalid, with its reason ------------------------


@pytest.mark.parametrize("answer, prop, kind", [
    ("The molecule has 3 rings; its LogP is 2-3.", "LogP", numbers.NoValue.RANGE),  # was 3
    ("With 12 carbons, the molecular weight is 1,80 g/mol.", "Molecular Weight",
     numbers.NoValue.DECIMAL_COMMA),  # was 12
])
def test_the_asked_propertys_unreadable_number_is_not_replaced_by_another(answer, prop, kind):
    assert _read(answer, prop) == (None, None)
    assert numbers.no_value_finding(answer, numbers.property_spec(prop)).kind is kind
