"""Hostile input to the report's number parser, tenth sweep (`metrics.numbers`); was:

1. a unit stated before the number (`HOMO (Hartree): -0.19`, `Molecular weight in kDa:
   0.18`, `TPSA (nm²): 0.202`) or in brackets with words (`-0.19 (in Hartree)`,
   `(Hartree units)`) was ignored: the number was read in the property's own unit;
2. units the parser did not know were the property's own: `-0.38 Ry` was -0.38 eV,
   `-5.2 Debye`, `-5.2 THz` and `-5.2 kcal/mol/Å` eV, `180.16 mM`, `180.16 oz`,
   `180.16 mol/g` g/mol, `72.1 bohr²` 72.1 Å², `20.2 m²` 20.2 Å²;
3. a cube of a length (`20.2 Å³`, NFKC's `Å3`; `A^3`, `nm³`) was an exact area, and the
   LaTeX square `Å^{2}` made a right answer invalid; `-190 mHartree` was invalid;
4. a string with no single value gave no reason why (a range, a bound, a decimal comma).
"""

from __future__ import annotations

import pytest

from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.eval.metrics import numbers
from deepmolm_plugin.eval.task_kinds import reference_value
from timing_guard import within_linear_time

HARTREE_EV = 27.211386245988


def _value(answer: str, prop: str):
    return numbers.value_in_unit(answer, numbers.property_spec(prop))


@pytest.mark.parametrize("answer, prop, value", [
    # the sweep's report (`t/units_report.py`): each answer states the right value
    ("HOMO (Hartree): -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO is -0.19 (in Hartree).", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO is -0.38 Ry.", "HOMO", -0.38 * HARTREE_EV / 2),
    ("The TPSA is 72.1 bohr².", "TPSA", 72.1 * 0.529177210903 ** 2),
    ("TPSA (nm²): 0.202", "TPSA", 20.2),
    ("The TPSA is 20.2 Å^{2}.", "TPSA", 20.2),
    ("Molecular weight in kDa: 0.18", "MW", 180.0),
    ("The molecular weight is 0.397 lb/mol.", "MW", 0.397 * 453.59237),
    # other headers and bracketed words
    ("HOMO [Ha] = -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("HOMO energy in Hartree: -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("HOMO in Hartree units: -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO (in eV) is -5.2", "HOMO", -5.2),
    ("HOMO (eV)\n-5.2", "HOMO", -5.2),
    ("MW (g/mol): 180.16", "MW", 180.16),
    ("The HOMO is -0.19 (Hartree units)", "HOMO", -0.19 * HARTREE_EV),
    ("-0.19 (in units of Hartree)", "HOMO", -0.19 * HARTREE_EV),
    ("-5 [in kcal/mol]", "FreeSolv", -5.0),
    # Rydberg and millihartree spellings
    ("-5.2 Rydberg", "HOMO", -5.2 * HARTREE_EV / 2),
    ("-380 mRy", "HOMO", -0.38 * HARTREE_EV / 2),
    ("-190 mHartree", "HOMO", -0.19 * HARTREE_EV),
    # every way a square is written
    ("20.2 Å²", "TPSA", 20.2), ("20.2 Å^2", "TPSA", 20.2), ("20.2 Å**2", "TPSA", 20.2),
    ("20.2 Å^(2)", "TPSA", 20.2),
    ("20.2 A^2", "TPSA", 20.2), ("20.2 $\\AA^2$", "TPSA", 20.2),
    ("20.2 sq. Å", "TPSA", 20.2),
    ("20.2 square angstroms", "TPSA", 20.2), ("20.2 angstrom squared", "TPSA", 20.2),
    ("0.202 nm^{2}", "TPSA", 20.2), ("72.1 a0^2", "TPSA", 72.1 * 0.529177210903 ** 2),
])
def test_units_before_the_number_and_new_units_convert(answer, prop, value):
    got, problem = _value(answer, prop)
    assert problem is None and got == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("answer, prop, kind", [
    ("The TPSA is 20.2 Å³.", "TPSA", "a volume"),
    ("20.2 A^3", "TPSA", "a volume"), ("20.2 nm³", "TPSA", "a volume"), ("20.2 cubic Å", "TPSA", "a volume"),
    ("20.2 m²", "TPSA", "an area in a unit that is not converted"),
    ("20.2 mm²", "TPSA", "an area in a unit that is not converted"),
    ("-5.2 Debye", "HOMO", "a dipole moment"), ("-5.2 D", "HOMO", "a dipole moment"),
    ("-5.2 Hz", "HOMO", "a frequency"), ("-5.2 THz", "HOMO", "a frequency"),
    ("1500 cm^-1", "HOMO", "an inverse length"),
    ("-5.2 kcal/mol/Å", "HOMO", "a compound unit"), ("-5.2 eV·Å", "HOMO", "a compound unit"),
    ("180.16 mol/g", "MW", "a compound unit"),
    ("180.16 oz", "MW", "a mass"), ("180.16 lb", "MW", "a mass"),
    ("180.16 mM", "MW", "a concentration"), ("180.16 M", "MW", "a concentration"),
    ("180.16 mol/L", "MW", "a concentration"), ("180.16 mmol", "MW", "an amount of substance"),
    ("180.16 Hz", "MW", "a frequency"), ("180.16 ppm", "MW", "a fraction"), ("180.16 mL", "MW", "a volume"),
    ("180.16 seconds", "MW", "a time"),
    # a header of the wrong kind, or two units that differ
    ("TPSA (Å): 20.2", "TPSA", "a length"),
    ("HOMO (g/mol): -5.2", "HOMO", "a molar mass"),
    ("HOMO (Hartree): -0.19 eV", "HOMO", "two units"),
    ("-5 eV", "MW", "an energy"),  # was "a energy"
])
def test_units_of_another_kind_make_the_answer_invalid(answer, prop, kind):
    got, problem = _value(answer, prop)
    assert got is None and problem is not None and kind in problem, problem


@pytest.mark.parametrize("answer, prop, value", [
    # prose after or before the number is no unit
    ("180.16 for this compound", "MW", 180.16),
    ("180 g/mol, which is light", "MW", 180.0),
    ("The molecular weight (MW) is 180", "MW", 180.0),
    ("-5.2 (in water)", "HOMO", -5.2),
    ("The HOMO of benzene (C6H6) is -6.7 eV", "HOMO", -6.7),
    ("Gap (HOMO−LUMO): 4.1 eV", "HOMO-LUMO Gap", 4.1),
    ("-5.2 eV per the DFT calculation", "HOMO", -5.2),
    ("-0.19 hartree/particle", "HOMO", -0.19 * HARTREE_EV),
    ("In summary: -5.2", "HOMO", -5.2),
    ("The HOMO is -5.2 eV (in Hartree: -0.19)", "HOMO", -5.2),
    ("From the 3D conformer, the HOMO is -5.2 eV", "HOMO", -5.2),  # `3D` still begins a word
    ("2 or 3D models", "HOMO", 2.0),
    ("-5.2", "LogP", -5.2),  # a property without a unit, given none (`-5.2 D` is invalid since the thirteenth round)
    ("HOMO (Hartree): -0.19", "property:homo", -0.19),  # the data's own property: as stated
])
def test_ordinary_prose_still_reads(answer, prop, value):
    got, problem = _value(answer, prop)
    assert problem is None and got == pytest.approx(value, rel=1e-9)


def test_the_report_scores_answers_with_a_unit_before_the_number():
    """The sweep's HOMO row: three of four right answers were scored 5 eV off."""
    answers = ["HOMO (Hartree): -0.19", "The HOMO is -0.19 (in Hartree).", "The HOMO is -0.38 Ry.", "-5.17 eV"]
    got = numbers.property_metrics(answers, [-5.17] * 4, "HOMO")
    assert got["n_valid"] == 4 and got["mae"] < 0.01


def test_a_reference_answer_with_a_unit_before_the_number_is_converted_or_refused():
    assert reference_value("HOMO", {"question_id": "q0", "answer": "HOMO (Hartree): -0.19"}) == \
        pytest.approx(-0.19 * HARTREE_EV)
    with pytest.raises(ReportError, match=r"question 'q4' \(TPSA\): the reference answer states '20.2 Å3', a volume"):
        reference_value("TPSA", {"question_id": "q4", "answer": "The TPSA is 20.2 Å³."})


@pytest.mark.parametrize("answer, reason", [
    ("The LogP is 1,7.", "a decimal comma or a list ('1,7.')"),
    ("The LogP is between 1.5 and 2.0.", "a range ('between 1.5 and 2.0.')"),
    ("The LogP is 1.5-2.0.", "a range ('1.5-2.0.')"),
    ("The LogP is less than 5.", "a bound ('less than 5.')"),
    ("5 or more", "a bound ('5 or more')"),
    ("2 or 3", "a choice ('2 or 3')"),
    ("1/2", "a fraction ('1/2')"),
    ("HOMO-5.2", "a sign before the number that is not its own ('HOMO-5.2')"),
    ("1e999", "not a finite number ('1e999')"),
    ("N/A", "no number"),
    (None, "not text but NoneType"),
    ("The LogP is 2.0.", None),
])
def test_why_no_value_names_what_it_found(answer, reason):
    assert numbers.why_no_value(answer) == reason
    assert (numbers.parse_number(answer) is None) == (reason is not None)


@pytest.mark.parametrize("answer", ["5 (in" + " " * 20000 + "x", "5 [in units of" + " " * 20000 + "x",
                                    "HOMO (" + " " * 20000 + "x): 5", "5 sq" + " " * 20000 + "x",
                                    "5 eV" + " " * 20000 + "/" + " " * 20000 + "x", "in " + "x " * 20000 + ": 5"])
def test_new_unit_patterns_are_linear_in_long_runs_of_spaces(answer):
    """`5 (in` and 2000 spaces took 8 s in a first draft of the bracket-with-words pattern."""
    spec = numbers.property_spec("HOMO")
    within_linear_time(lambda: numbers.value_in_unit(answer, spec), answer)


# --------------------------------------------------------------------------- review of the header rule
# Was: (3) a header's unit written with a power read the exponent as the answer
# (`TPSA (Å^2): 20.2` was 2.0); (4) the header's unit was dropped when emphasis, a table's
# `|`, `~`, an approximation word or a comma stood between it and the number (5 eV off);
# (6b) a basis set (`B3LYP/6-31G*`) was "a fraction", the answer without a value, and
# `why_no_value` cut its excerpt mid-word ('... is -5.2 e').


@pytest.mark.parametrize("answer, value", [
    ("TPSA (Å^2): 20.2", 20.2), ("TPSA [Å^2] = 20.2", 20.2), ("TPSA in Å^2: 20.2", 20.2),
    ("TPSA (A^2) 20.2", 20.2), ("TPSA (Å**2): 20.2", 20.2), ("TPSA (\\AA^{2}): 20.2", 20.2),
    ("TPSA (nm^2): 0.202", 20.2), ("TPSA (Å^(2)): 20.2", 20.2), ("TPSA in Å**(2): 20.2", 20.2),
    ("TPSA (Å ^ 2) = 20.2", 20.2), ("TPSA (a0^2): 72.1", 72.1 * 0.529177210903 ** 2),
])
def test_a_header_unit_with_a_power_reads_the_value_not_the_exponent(answer, value):
    got, problem = _value(answer, "TPSA")
    assert problem is None and got == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("answer, prop, value", [
    ("HOMO (Hartree): ~-0.19", "HOMO", -0.19 * HARTREE_EV),
    ("**HOMO (Hartree):** -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("HOMO (Hartree): **-0.19**", "HOMO", -0.19 * HARTREE_EV),
    ("| HOMO (Hartree) | -0.19 |", "HOMO", -0.19 * HARTREE_EV),
    ("HOMO (Hartree) is about -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("HOMO (in Hartree) is approximately -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO, in Hartree, is -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("MW (kDa): approximately 0.18", "MW", 180.0),
    ("HOMO (Hartree): approx. -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("HOMO (Hartree) was roughly -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("_HOMO (Hartree)_: -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("**HOMO in Hartree**: -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("HOMO in Hartree, -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("MW in kDa is ca. 0.18", "MW", 180.0),
    ("| TPSA (nm^2) | ≈ 0.202 |", "TPSA", 20.2),
])
def test_a_header_unit_is_read_past_emphasis_tables_and_approximation_words(answer, prop, value):
    got, problem = _value(answer, prop)
    assert problem is None and got == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("answer, prop", [
    ("**HOMO (Hartree):** -0.19 eV", "HOMO"), ("| HOMO (Hartree) | -0.19 eV |", "HOMO"),
    ("HOMO (Hartree) is about -0.19 eV", "HOMO"), ("The HOMO, in Hartree, is -0.19 eV", "HOMO"),
])
def test_a_header_unit_that_differs_from_the_unit_after_the_number_stays_invalid(answer, prop):
    got, problem = _value(answer, prop)
    assert got is None and "two units" in problem, problem


@pytest.mark.parametrize("answer, prop, value", [
    # a bracket or `in` that holds no unit is prose, whatever stands between it and the number
    ("HOMO (in water) is about -5.2", "HOMO", -5.2),
    ("The HOMO of benzene (C6H6), is about -6.7 eV", "HOMO", -6.7),
    ("The molecular weight (MW) is approximately 180", "MW", 180.0),
    ("Gap (HOMO−LUMO): ~4.1 eV", "HOMO-LUMO Gap", 4.1),
    ("Measured in water, **-5.2**", "HOMO", -5.2),
    ("HOMO in Hartree -0.19", "HOMO", -0.19),  # `in <unit>` with nothing between: prose, as before
    ("**LogP** 2", "LogP", 2.0),  # `**` that closes emphasis is no power
    ("1500 cm^-1 is the band; the HOMO is -5.2 eV", "HOMO", None),  # the first number decides
])
def test_prose_stays_prose(answer, prop, value):
    got, problem = _value(answer, prop)
    if value is None:
        assert got is None and "inverse length" in problem
    else:
        assert problem is None and got == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("answer", [
    "The HOMO energy (B3LYP/6-31G*) is -5.2 eV.", "At the B3LYP/6-311+G(d,p) level, the HOMO is -5.2 eV.",
    "M06-2X/def2-TZVP gives a HOMO of -5.2 eV.", "ωB97X-D/6-31G(d): HOMO = -5.2 eV",
    "HF/3-21G: -5.2 eV", "With 6-311++G(2df,2pd) the HOMO is -5.2 eV", "b3lyp/6-31g: -5.2 eV",
    "6-31G** (B3LYP) HOMO: -5.2 eV",
])
def test_a_method_and_basis_set_is_no_number_and_no_fraction(answer):
    assert numbers.why_no_value(answer) is None
    assert _value(answer, "HOMO") == (pytest.approx(-5.2), None)
    assert reference_value("HOMO", {"question_id": "q1", "answer": answer}) == pytest.approx(-5.2)


def test_a_glued_mass_range_is_no_basis_set():
    """Only a Pople name is skipped: a lower-case `g` glued to a range is grams."""
    assert numbers.why_no_value("MW 60-100g") == "a range ('60-100g')"


@pytest.mark.parametrize("answer, reason", [
    ("The LogP is between 1.5 and 2.0 in octanol/water.", "a range ('between 1.5 and 2.0 in octanol/water.')"),
    ("The LogP is less than 5 in most conformers.", "a bound ('less than 5 in most conformers.')"),
    ("The LogP is 1,7 in octanol/water at pH 7.4.", "a decimal comma or a list ('1,7 in octanol/water')"),
    ("The value (B3LYP/1/2) is -5.2 eV.", "a fraction ('(B3LYP/1/2) is -5.2 eV.')"),
])
def test_why_no_value_quotes_whole_words(answer, reason):
    assert numbers.why_no_value(answer) == reason


@pytest.mark.parametrize("answer", [
    "HOMO (Hartree)" + " *" * 20000 + " -0.19", "HOMO (Hartree)" + "*" * 20000 + " -0.19",
    "in Hartree" + " ," * 20000 + " -0.19", "in Hartree" + " about" * 20000 + " -0.19",
    "HOMO (Hartree) " + " " * 20000 + "~" + " " * 20000 + "-0.19", "Å^" + " " * 20000 + "2",
    "6-31G" * 20000 + " -5.2", "B3LYP/6-31G* " * 5000 + "-5.2", "1/2" + "x" * 40000,
    "x" * 40000 + "/1/2", "Å**(" * 10000 + "2",
])
def test_the_header_gap_basis_sets_and_excerpts_are_linear(answer):
    spec = numbers.property_spec("HOMO")
    within_linear_time(lambda: numbers.value_in_unit(answer, spec), answer)
    within_linear_time(lambda: numbers.why_no_value(answer), answer)


# review S, finding 6: a bracket holding one letter before the number is the quantity's symbol,
# not its unit: '(M)' read as M (mol/L) made these None (two units, or a concentration).
@pytest.mark.parametrize("task, answer, value", [
    ("Molecular Weight", "The molar mass (M) is about 180.16 g/mol", 180.16),
    ("Molecular Weight", "The molecular weight (M) of about 180.16 g/mol", 180.16),
    ("Molecular Weight", "The molar mass (M) is 180.16", 180.16),
    ("HOMO", "The HOMO energy (E) is -5.2 eV", -5.2),
    ("Topological Polar Surface Area", "The polar surface area (A): 20.2 Å²", 20.2),
])
def test_a_one_letter_quantity_symbol_in_brackets_is_no_unit_header(task, answer, value):
    assert numbers.parse_value(answer, numbers.property_spec(task)) == pytest.approx(value)


@pytest.mark.parametrize("task, answer", [
    ("HOMO", "HOMO (Hartree): -5.2 eV"), ("Molecular Weight", "| Molecular weight (kDa) | 180.16 g/mol |"),
    ("Topological Polar Surface Area", "TPSA (Å): 20.2"),
])
def test_a_unit_name_in_brackets_is_still_a_header(task, answer):
    value, problem = numbers.value_in_unit(answer, numbers.property_spec(task))
    assert value is None and problem


def test_number_and_text_after_ends_where_the_parsers_number_ends():
    assert numbers.number_and_text_after("The HOMO is -5.0 Hart") == (-5.0, " Hart")
    assert numbers.number_and_text_after("The HOMO is -5.0 ± 0.10 Hart") == (-5.0, " Hart")
    assert numbers.number_and_text_after("It is 1.5 × 10^3 g/mol") == (1500.0, " g/mol")
    assert numbers.number_and_text_after("It is 10^3 g") == (1000.0, " g")
    assert numbers.number_and_text_after("The LogP is 1,7") is None
    finding = numbers.no_value_finding("The LogP is 1.5-2.0")
    assert finding.kind is numbers.NoValue.RANGE and finding.text == numbers.why_no_value("The LogP is 1.5-2.0")
