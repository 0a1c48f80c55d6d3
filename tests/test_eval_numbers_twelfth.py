"""Number and molecule readers of the report, twelfth sweep (`metrics.numbers`,
`metrics.molecules`); was:

1. a unit after a closing `**`, `` ` ``, `)`, LaTeX `~` or in the next table cell was not
   read: `The HOMO is **-0.19** Hartree.` was -0.19 eV, valid (5 eV off);
2. `-0.19 in Hartree`, `(in atomic units)`, `In Hartree, the HOMO is -0.19.` and `HOMO /
   Hartree: -0.19` were read in eV;
3. a bare `J` was per mole: `-8.3e-19 J` (a HOMO of -5.18 eV per molecule) was -8.6e-24 eV;
4. an answer stating several properties was read as its first number (`HOMO: -5.2 eV; LUMO:
   -1.1 eV` was -5.2 for the LUMO, in a reference too);
5. IUPAC exact match and SMILES validity kept zero-width spaces, soft hyphens, word joiners
   and U+2011;
6. `The LogP at 25 °C is 2.1.` was 25, `At pH 7.4, the LogD is 1.2.` 7.4, `3.2 mM` a logS of 3.2;
7. `Ethanol (SMILES: CCO)` gave the invalid SMILES `CCO)`;
8. `1 80.16`, `-5 .2`, `2 .1` read 1, -5 and 2.
Predictions and references are read by the same code: each reference case goes through
`task_kinds.reference_value`, which eval.questions and the report use.
"""

from __future__ import annotations

import json

import pytest

from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.eval.metrics import molecules, numbers
from deepmolm_plugin.eval.task_kinds import no_value_reason, reference_value

HARTREE_EV = 27.211386245988
KJ_PER_KCAL = 4.184


def _value(answer: str, prop: str):
    return numbers.value_in_unit(answer, numbers.property_spec(prop))


def _reference(answer: str, task: str):
    return reference_value(task, {"question_id": "q7", "task": task, "answer": answer})


# ---------------------------------------------------------------- 1 and 2: where the unit stands

@pytest.mark.parametrize("answer, prop, value", [
    ("The HOMO is **-0.19** Hartree.", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO is __-0.19__ Hartree.", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO is *-0.19* Ha.", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO is `-0.19` Ha.", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO is (-0.19 ± 0.01) Hartree.", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO is [-0.19] Ha.", "HOMO", -0.19 * HARTREE_EV),
    (r"The HOMO is $-0.19~\text{Ha}$.", "HOMO", -0.19 * HARTREE_EV),
    (r"The HOMO is $-0.19\,\mathrm{Ha}$.", "HOMO", -0.19 * HARTREE_EV),
    ("| HOMO | -0.19 | Ha |", "HOMO", -0.19 * HARTREE_EV),
    ("ΔG is **-21** kJ/mol.", "Hydration Free Energy", -21 / KJ_PER_KCAL),
    ("TPSA: **0.2** nm².", "TPSA", 20.0),
    ("MW: **(0.18)** kDa", "MW", 180.0),
    ("The HOMO is -0.19 in Hartree.", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO is -0.19, in atomic units.", "HOMO", -0.19 * HARTREE_EV),
    ("In atomic units, the HOMO is -0.19.", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO (in atomic units) is -0.19.", "HOMO", -0.19 * HARTREE_EV),
    ("The HOMO is -0.19 (atomic units).", "HOMO", -0.19 * HARTREE_EV),
    ("In Hartree, the HOMO is -0.19.", "HOMO", -0.19 * HARTREE_EV),
    ("HOMO / Hartree: -0.19", "HOMO", -0.19 * HARTREE_EV),
    ("E/eV = -5.2", "HOMO", -5.2),
    ("It is -21 in kJ/mol.", "Hydration Free Energy", -21 / KJ_PER_KCAL),
    ("The TPSA is 0.2 in nm^2.", "TPSA", 20.0),
    ("The TPSA is 0.2 in units of nm^2.", "TPSA", 20.0),
])
def test_a_unit_after_markdown_brackets_latex_a_table_cell_or_in_words_is_read(answer, prop, value):
    got, problem = _value(answer, prop)
    assert problem is None and got == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("answer, prop, value", [
    ("In water, the HOMO is -5.2 eV.", "HOMO", -5.2),  # `In <word>,` that is no unit
    ("The HOMO is -5.2 in water.", "HOMO", -5.2),
    ("In this case, the HOMO is -5.2.", "HOMO", -5.2),
    ("Molecular weight g/mol: 180.2", "MW", 180.2),  # a unit written whole, not quantity / unit
    ("| HOMO | -5.2 | LUMO | -1.1 |", "HOMO", -5.2),  # the next cell is no unit
    ("The HOMO is -5.2) eV", "HOMO", -5.2),  # a `)` that opened nowhere does not close the number
    ("HOMO: -5.2 eV. In Hartree, the gap is 0.15", "HOMO", -5.2),  # another sentence's unit
    ("The HOMO is **-0.19 Hartree**.", "HOMO", -0.19 * HARTREE_EV),  # as before
])
def test_prose_around_the_number_is_still_no_unit(answer, prop, value):
    got, problem = _value(answer, prop)
    assert problem is None and got == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("answer", ["The HOMO is **-0.19** Hartree.", "The HOMO is -0.19 in Hartree.",
                                    "In Hartree, the HOMO is -0.19.", "HOMO / Hartree: -0.19"])
def test_a_reference_so_written_is_converted_like_a_prediction(answer):
    assert _reference(answer, "HOMO") == pytest.approx(-0.19 * HARTREE_EV)


def test_a_unit_of_another_kind_past_the_closers_makes_the_answer_invalid():
    got, problem = _value("The HOMO is **300** K.", "HOMO")
    assert got is None and problem == "states '300 K', a temperature, for HOMO in eV"
    got, problem = _value("The HOMO is -0.19 in kelvin.", "HOMO")
    assert got is None and problem == "states '-0.19 in kelvin', a temperature, for HOMO in eV"


def test_a_capped_answer_cut_inside_a_unit_past_emphasis_is_flagged():
    from deepmolm_plugin.eval.scoring import value_may_be_cut

    spec = numbers.property_spec("HOMO")
    assert value_may_be_cut("The HOMO is **-0.19** Hart", spec)
    assert not value_may_be_cut("The HOMO is **-0.19** Hartree.", spec)


# ---------------------------------------------------------------- 3: joules

@pytest.mark.parametrize("answer", ["The HOMO energy is -8.3e-19 J.", "The HOMO energy is -8.3 × 10^-19 joules."])
def test_bare_joules_are_no_value_and_a_reference_in_them_is_refused(answer):
    got, problem = _value(answer, "HOMO")
    assert got is None and "per molecule or per mole (write J/molecule or J/mol)" in problem
    with pytest.raises(ReportError, match=r"question 'q7' \(HOMO\): the reference answer states '-8\.3e-19 "):
        _reference(answer, "HOMO")


def test_joules_per_mole_or_per_molecule_are_converted():
    assert _value("-5000 J/mol", "Hydration Free Energy") == (pytest.approx(-5 / KJ_PER_KCAL), None)
    got, problem = _value("The HOMO is -8.3e-19 J/molecule.", "HOMO")
    assert problem is None and got == pytest.approx(-8.3e-19 / 1.602176634e-19)


# ---------------------------------------------------------------- 6: units of unitless properties

@pytest.mark.parametrize("answer, prop, problem", [
    # a condition is skipped, and the answer is invalid only when no other number follows
    # (tests/test_eval_numbers_mend_twelfth.py; was here: `The LogP at 25 °C is 2.1.` invalid)
    ("The LogP was measured at 25 °C.", "LogP", "states '25 °C', a temperature, for LogP in log units"),
    ("The LogP was measured at 298 K.", "LogP", "states '298 K', a temperature, for LogP in log units"),
    ("The LogD is given at pH 7.4.", "LogD", "states 'pH 7.4', a pH, for LogD in log units"),
    ("The aqueous solubility is 0.0032 mol/L.", "Log Solubility",
     "states '0.0032 mol/L', a concentration, for Log Solubility in log(mol/L)"),
    ("The solubility is 3.2 mM.", "Log Solubility",
     "states '3.2 mM', a concentration, for Log Solubility in log(mol/L)"),
    ("The complexity was computed at **298** K.", "Complexity",
     "states '298 K', a temperature, for Complexity in PubChem complexity (unitless)"),
    ("The HOMO was computed at pH 7.", "HOMO", "states 'pH 7', a pH, for HOMO in eV"),  # converted ones alike
])
def test_a_condition_or_concentration_is_not_a_unitless_propertys_value(answer, prop, problem):
    assert _value(answer, prop) == (None, problem)
    with pytest.raises(ReportError, match="question 'q7'"):
        _reference(answer, prop)


@pytest.mark.parametrize("answer, prop, value", [
    ("The log solubility in mol/L is -2.49.", "Log Solubility", -2.49),  # the unit under the log
    ("logS: -2.49 log(mol/L)", "Log Solubility", -2.49),
    ("The LogP is 2.1 at 25 °C.", "LogP", 2.1),  # the condition after the value
    ("The logD7.4 is 1.2.", "LogD", 1.2),
    ("The LogP is 2.1 at 5.0nM.", "LogP", 2.1),
    ("The LogP is 2.1 (pKa 4.2).", "LogP", 2.1),  # `5.0nM` alone for LogP is invalid since the thirteenth round
])
def test_a_unitless_propertys_own_value_still_reads(answer, prop, value):
    assert _value(answer, prop) == (pytest.approx(value), None)


# ---------------------------------------------------------------- 8: digits split by a space

@pytest.mark.parametrize("answer", ["The molecular weight is 1 80.16 g/mol.", "The HOMO is -5 .2 eV.",
                                    "The LogP is 2 .1.", "The LogP is 2 1."])
def test_digits_split_by_a_space_are_no_single_value(answer):
    assert numbers.parse_number(answer) is None
    assert numbers.no_value_finding(answer).kind is numbers.NoValue.SPACE_GROUP
    assert no_value_reason(answer)[0] is numbers.NoValue.SPACE_GROUP  # a reference so written


@pytest.mark.parametrize("answer, value", [("2 or 3D models", 2.0), ("The LogP is 2 3D", 2.0),
                                           ("1. 2.5", 2.5), ("The LogP is 2. 3 rings follow.", 2.0)])
def test_a_space_before_other_text_is_no_split(answer, value):
    assert numbers.parse_number(answer) == value


# ---------------------------------------------------------------- 4: several properties

@pytest.mark.parametrize("answer, task, value", [
    ("HOMO: -5.2 eV; LUMO: -1.1 eV.", "LUMO", -1.1),
    ("The HOMO is -5.2 eV and the LUMO is -1.1 eV.", "LUMO", -1.1),
    ("The HOMO is -5.2 eV and the LUMO is -1.1 eV.", "HOMO", -5.2),
    ("The HOMO is -5.2 eV and the LUMO is -1.1 eV, so the gap is 4.1 eV.", "HOMO-LUMO Gap", 4.1),
    ("The HOMO-LUMO gap is 4.1 eV; the LUMO is -1.1 eV.", "LUMO", -1.1),
    ("TPSA 20.2 Å², XLogP3 2.1", "LogP", 2.1),
    ("Gap (HOMO−LUMO): 4.1 eV", "HOMO-LUMO Gap", 4.1),  # its own name first, the others inside
    ("homo: -0.25, lumo: 0.01", "property:lumo", 0.01),
    ("The homo_ev is -5.2", "property:homo_ev", -5.2),  # its own name, not the known HOMO's
])
def test_the_number_the_task_names_is_read(answer, task, value):
    assert _value(answer, task) == (pytest.approx(value), None)
    assert _reference(answer, task) == pytest.approx(value)


# ---------------------------------------------------------------- 5 and 7: molecules

def test_iupac_exact_match_ignores_format_characters_and_non_ascii_hyphens(wordnet):
    preds = ["(2R)-butan-2\u200b-ol", "2-methyl\xadpropan-1-ol", "4\u2011aminobenzoic acid", "eth\u2060anol",
             "\ufeffpropan\u2010 2-ol"]
    refs = ["(2R)-butan-2-ol", "2-methylpropan-1-ol", "4-aminobenzoic acid", "ethanol", "propan- 2-ol"]
    assert [molecules.extract_iupac(p) for p in preds] == refs
    assert molecules.iupac_metrics(preds, refs, wordnet=wordnet)["exact_match"] == pytest.approx(100.0)


def test_smiles_validity_ignores_format_characters():
    got = molecules.smiles_metrics(["CCO\u200b", "\ufeffc1ccccc1O", "C\u2060C"], ["CCO", "Oc1ccccc1", "CC"])
    assert got["validity"] == pytest.approx(100.0) and got["exact_match"] == pytest.approx(100.0)


@pytest.mark.parametrize("answer, smiles", [
    ("Ethanol (SMILES: CCO)", "CCO"),
    ("acetic acid (SMILES: CC(=O)O)", "CC(=O)O"),
    ("acetic acid (SMILES: CC(=O)O).", "CC(=O)O"),
    ("The product [SMILES: c1ccccc1] is benzene.", "c1ccccc1"),
    ("SMILES: [NH4+]", "[NH4+]"),  # a bracket it opened stays
    ("SMILES: C1CC(C1)", "C1CC(C1)"),
])
def test_a_smiles_named_in_brackets_loses_the_bracket_only(answer, smiles):
    assert molecules.extract_smiles(answer) == smiles


# ---------------------------------------------------------------- the report, end to end

def test_the_report_scores_these_answers_in_the_propertys_unit(tmp_path):
    from deepmolm_plugin.eval import report

    rows = [("HOMO", "The HOMO is **-0.19** Hartree.", "The HOMO is -5.17 eV."),
            ("HOMO", "The HOMO is -5.17 eV.", "| HOMO | -0.19 | Ha |"),
            ("LUMO", "The HOMO is -5.2 eV and the LUMO is -1.1 eV.", "HOMO: -5.2 eV; LUMO: -1.1 eV."),
            ("LogP", "The LogP is 2.1.", "The LogP was measured at 25 °C."),
            ("HOMO", "The HOMO is -5.2 eV.", "The HOMO is -5 .2 eV.")]
    questions, answers = tmp_path / "q.jsonl", tmp_path / "a.jsonl"
    questions.write_text("".join(json.dumps({"question_id": f"q{i}", "text": "?", "task": t, "answer": r}) + "\n"
                                 for i, (t, r, _) in enumerate(rows)))
    answers.write_text("".join(json.dumps({"question_id": f"q{i}", "prompt": "?", "text": p}) + "\n"
                               for i, (_, _, p) in enumerate(rows)))
    report.main([str(answers), "--references", str(questions), "--out", str(tmp_path / "out"), "--no-plots"])
    lines = (tmp_path / "out" / "per_question.jsonl").read_text().splitlines()
    got = {r["question_id"]: r for r in map(json.loads, lines)}
    assert got["q0"]["reference_value"] == pytest.approx(-0.19 * HARTREE_EV) and got["q0"]["valid"]
    assert got["q1"]["value"] == pytest.approx(-0.19 * HARTREE_EV) and got["q1"]["valid"]
    assert got["q2"]["reference_value"] == pytest.approx(-1.1) and got["q2"]["value"] == pytest.approx(-1.1)
    assert got["q3"]["valid"] is False and got["q4"]["valid"] is False
