"""Report number reading, mend of 4a2dea4 (`metrics.numbers`, `scoring`, `task_kinds`); was:

1. an answer naming another known property was read from the asked property's first mention
   on: value-first answers (`-5.2 eV. The HOMO energy is high, ... HOMO-LUMO gap.`) had no
   value or took another property's number, references too;
2. a log solubility stated in mol/L or M (`-3.4 mol/L`, `-2.31 M`, `mols per litre`) was
   invalid, and such a reference stopped the report;
3. the capped-answer check read the first number while the score read the asked property's;
4. a reference dropped for the property was reported as "a malformed number";
5. `The LogD at pH 7.4 is 1.2.` and `The LogP at 25 °C is 2.1.` were invalid (a condition).
Predictions and references are read by the same code: each reference case goes through
`task_kinds.reference_value`.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest

from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.eval.metrics import numbers
from deepmolm_plugin.eval.task_kinds import no_value_reason

from test_eval_numbers_twelfth import HARTREE_EV, _reference, _value  # the same readers of one answer


# ---------------------------------------------------------------- 1: which property's number

@pytest.mark.parametrize("answer, task, value", [
    ("-5.2 eV. The HOMO energy is relatively high, indicating a small HOMO-LUMO gap.", "HOMO", -5.2),
    ("-5.2 eV\n\nExplanation: the HOMO of an aromatic amine lies high; its LUMO is low.", "HOMO", -5.2),
    ("**-5.2 eV**\n\nThe HOMO is raised by the amino group, narrowing the gap.", "HOMO", -5.2),
    ("Answer: -5.2 eV (the HOMO; the LUMO would be near -1 eV).", "HOMO", -5.2),
    ("The predicted value is -5.2 eV. This HOMO level, together with the LUMO, determines reactivity.",
     "HOMO", -5.2),
    ("-5.2 eV is the HOMO energy; the LUMO is -1.1 eV.", "HOMO", -5.2),
    ("-5.2 eV is the HOMO energy; the LUMO is -1.1 eV.", "LUMO", -1.1),  # labelled after it
    ("-1.1 eV (LUMO), compared with the HOMO at -5.2 eV.", "LUMO", -1.1),
    ("-1.1 eV (LUMO), compared with the HOMO at -5.2 eV.", "HOMO", -5.2),
    ("The answer: -1.1 eV. This is the LUMO; the gap to the HOMO is 4.1 eV.", "LUMO", -1.1),
    ("2.1\n\nThe LogP indicates moderate lipophilicity and low aqueous solubility.", "LogP", 2.1),
    ("Answer: 2.1. A LogP in this range suggests limited solubility.", "LogP", 2.1),
    ("The value is 2.1; this LogP corresponds to a LogD near 2 at pH 7.4.", "LogP", 2.1),
    ("180.16 g/mol. This molecular weight together with a TPSA of 40 Å² suggests good permeability.",
     "Molecular Weight", 180.16),
    ("180.16 g/mol (MW); LogP 1.2", "Molecular Weight", 180.16),
    ("-3.4\n\nThe low solubility is consistent with its LogP of 3.1.", "Log Solubility", -3.4),
    ("245\n\nThe complexity reflects its fused rings; molecular weight 180 g/mol.", "Complexity", 245.0),
    ("-5.20 eV. The HOMO is stabilised by the nitro group; the LUMO is lowered more.", "HOMO", -5.2),
    # labelled before it, as in 4a2dea4
    ("HOMO: -5.2 eV; LUMO: -1.1 eV", "LUMO", -1.1),
    ("Given a HOMO of -5.2 eV and a gap of 4.1 eV, the LUMO is -1.1 eV.", "LUMO", -1.1),
    ("The HOMO (-5.2 eV) and LUMO (-1.1 eV) give a gap of 4.1 eV.", "HOMO-LUMO Gap", 4.1),
    ("The HOMO-LUMO gap is 4.1 eV, and the HOMO is -5.2 eV.", "HOMO", -5.2),
    ("HOMO: -5.2 ± 0.1 eV; LUMO: -1.1 eV", "LUMO", -1.1),  # the other's uncertainty is its own
    ("### HOMO\n-5.2 eV\n### LUMO\n-1.1 eV", "LUMO", -1.1),  # a line holding only a label
    # names that qualify or restate another
    ("The energy gap between the HOMO and LUMO is 4.1 eV.", "HOMO-LUMO Gap", 4.1),
    ("Gap (HOMO-LUMO): 4.1 eV", "HOMO-LUMO Gap", 4.1),
    ("Lipophilicity (LogP): 2.1", "LogP", 2.1),
    ("HOMO/LUMO: -5.2 eV / -1.1 eV", "HOMO", -5.2),
])
def test_a_number_is_skipped_only_where_another_property_labels_it(answer, task, value):
    assert _value(answer, task) == (pytest.approx(value), None)
    assert _reference(answer, task) == pytest.approx(value)


@pytest.mark.parametrize("answer, task", [
    ("The LogP is 3.1.", "Log Solubility"),
    ("HOMO: -5.2 eV", "LUMO"),
    ("The energy gap between the HOMO and LUMO is 4.1 eV.", "HOMO"),
])
def test_an_answer_with_only_another_propertys_number_has_none_and_says_so(answer, task):
    assert _value(answer, task) == (None, None)
    spec = numbers.property_spec(task)
    assert numbers.no_value_finding(answer, spec).kind is numbers.NoValue.OTHER_PROPERTY
    what, why = no_value_reason(answer, task)
    assert what is numbers.NoValue.OTHER_PROPERTY
    assert why.startswith(f"the reference answer states no number of {task}, only another property's number (")


def test_the_reports_reason_for_a_dropped_reference_is_read_for_its_property():
    from deepmolm_plugin.eval.scoring import unreferenced_reasons

    refs = OrderedDict([("q1", {"question_id": "q1", "task": "Log Solubility", "answer": "The LogP is 3.1."})])
    reasons = unreferenced_reasons("Log Solubility", "property", refs, ["q1"], [None])
    what, reason = reasons[0]
    assert what is numbers.NoValue.OTHER_PROPERTY  # was: MALFORMED, "a malformed number"
    assert "no number of Log Solubility, only another property's number ('LogP is 3.1.')" in reason


# ---------------------------------------------------------------- 2: a log solubility in mol/L

@pytest.mark.parametrize("answer", [
    "The log solubility is -2.3 mol/L.", "LogS = -2.31 M", "Log solubility: -2.3 (mol/L)",
    "The log solubility is -2.3 in mol/L.", "| Property | Value | Unit |\n|---|---|---|\n| logS | -2.3 | mol/L |",
    "The log solubility is -2.3 mols per litre.", "log S = -2.3 (in mol/L)",
])
def test_a_log_solubility_at_or_below_zero_in_mol_per_litre_is_the_log(answer):
    assert _value(answer, "Log Solubility") == (pytest.approx(-2.3, abs=0.011), None)
    assert _reference(answer, "Log Solubility") == pytest.approx(-2.3, abs=0.011)


@pytest.mark.parametrize("answer, problem", [
    ("The solubility is 0.0032 mol/L.", "states '0.0032 mol/L', a concentration"),
    ("The log solubility is -3.4 mM.", "states '-3.4 mM', a concentration"),  # the log of which unit?
])
def test_a_positive_or_prefixed_concentration_stays_refused(answer, problem):
    got, why = _value(answer, "Log Solubility")
    assert got is None and why.startswith(problem)


# ---------------------------------------------------------------- 5: conditions

@pytest.mark.parametrize("answer, task, value", [
    ("The LogD at pH 7.4 is 1.2.", "LogD", 1.2),
    ("logD (pH 7.4) = 1.2", "LogD", 1.2),
    ("The logD (pH=7.4) is 1.2.", "LogD", 1.2),
    ("At pH 7.4, the LogD is 1.2.", "LogD", 1.2),
    ("The LogP at 25 °C is 2.1.", "LogP", 2.1),
    ("At 298 K the LogP is 2.1.", "LogP", 2.1),
    ("At 25 °C, the log solubility is -2.3.", "Log Solubility", -2.3),
    ("The complexity at **298** K is 350.", "Complexity", 350.0),
    ("At pH 7, the HOMO is -5.2 eV.", "HOMO", -5.2),
    ("At 298 ± 1 K, the HOMO is -0.19 Hartree.", "HOMO", -0.19 * HARTREE_EV),
])
def test_a_condition_is_skipped_and_the_value_after_it_read(answer, task, value):
    assert _value(answer, task) == (pytest.approx(value), None)
    assert _reference(answer, task) == pytest.approx(value)


@pytest.mark.parametrize("answer, task, problem", [
    ("The LogP value is 2.1 K", "LogP", "states '2.1 K', a temperature, for LogP in log units"),
    ("-0.25 ± 0.01 K", "HOMO", "states '-0.25 K', a temperature, for HOMO in eV"),
    ("The LogD is given at pH 7.4.", "LogD", "states 'pH 7.4', a pH, for LogD in log units"),
])
def test_a_condition_with_no_number_after_it_is_invalid(answer, task, problem):
    assert _value(answer, task) == (None, problem)
    with pytest.raises(ReportError, match="question 'q7'"):
        _reference(answer, task)


# ---------------------------------------------------------------- 3: the capped-answer check

@pytest.mark.parametrize("answer, cut", [
    ("HOMO: -5.2 eV; LUMO: -0.04 Hart", True),  # the LUMO's unit is cut (was: the HOMO's -5.2 eV looked at)
    ("HOMO: -5.2 eV; LUMO: -1", True),  # its number may be cut
    ("HOMO: -5.2 eV; LUMO: -1.15 eV.", False),
])
def test_the_capped_answer_check_reads_the_number_the_score_reads(answer, cut):
    from deepmolm_plugin.eval.scoring import value_may_be_cut

    assert value_may_be_cut(answer, numbers.property_spec("LUMO")) is cut
