"""Final-answer markup (twenty-first round): models trained on math-style rewards write their
working out, then mark the answer, `\\boxed{No}` or `<answer>No</answer>`. The readers look at
an answer's opening or the first number after the property's name, so such answers were no
answer (yes/no), another number (a property), or the wrong SMILES. Now the report scores what
the markup marks where it holds the kind's answer (`scoring.scored_text`), counts such answers
(`n_final_answer_marked`) and flags their rows; elsewhere the answer is read as before."""

from __future__ import annotations

import time

import pytest

from deepmolm_plugin.eval.markdown import markdown
from deepmolm_plugin.eval.metrics import classes, molecules, numbers
from deepmolm_plugin.eval.reasoning import Marked, answer_part, marked_answers
from deepmolm_plugin.eval.scoring import build_report, scored_text
from jsonl_helpers import write_jsonl


@pytest.mark.parametrize("text, expected", [
    ("Three rings and one donor, so it does not cross.\n\n\\boxed{No}", ["No"]),
    ("So: $\\boxed{\\text{Yes}}$", ["Yes"]),
    ("\\boxed{\\textbf{\\text{ Inactive }}}", ["Inactive"]),
    ("<answer> No </answer>", ["No"]),
    ("<ANSWER>The SMILES is CCO.</ANSWER>", ["The SMILES is CCO."]),
    ("<answer>The SMILES is \\boxed{CCO}.</answer>", ["CCO", "The SMILES is \\boxed{CCO}."]),
    ("\\boxed{1.2 \\times 10^{3}}", ["1.2 \\times 10^{3}"]),  # braces inside a box
    ("\\boxed{F/C=C\\F}", ["F/C=C\\F"]),  # a SMILES's backslash bond is no LaTeX
    ("\\boxed{85\\%} and \\boxed{CC\\#N}", []),  # escapes undone (and two boxes that differ)
    ("\\(\\boxed{85\\%}\\)", ["85%"]),
    ("\\fbox{2.1}", ["2.1"]),
    ("\\boxed{2.1} and again \\boxed{ 2.1 }", ["2.1"]),  # the same answer twice
    ("<answer>No", ["No"]),  # generation stopped inside the block
    ("Answer in <answer>...</answer>. <answer>2.1</answer>", ["2.1"]),  # the format repeated
    # marks nothing: an empty box, boxes or blocks that differ, a box never closed, no markup
    ("The TPSA is 98.1. (Answer format: \\boxed{}.)", []),
    ("\\boxed{2.1} for LogP and \\boxed{45} for TPSA", []),
    ("<answer>yes</answer> then <answer>no</answer>", []),
    ("The LogP is \\boxed{2.1", []),
    ("\\{2.1\\}", []),
    ("The answer is yes.", []),
    # boxes that differ inside an answer block: the block is the answer
    ("<answer>\\boxed{1} or \\boxed{2}</answer>", ["\\boxed{1} or \\boxed{2}"]),
])
def test_marked_answers(text, expected):
    assert [m.text for m in marked_answers(text)] == expected


def test_a_box_keeps_the_words_of_its_sentence():
    marked, = marked_answers("Step 1: 2 donors.\nIn Hartree, the HOMO is \\[ \\boxed{-0.34} \\] here; so")
    assert marked == Marked("-0.34", "In Hartree, the HOMO is   ", "   here")
    # back to the last number before it: another number of the sentence is not read with it
    assert marked_answers("With 2 donors and MW 46, the LogP is \\boxed{1.2} kJ/mol, I think.")[0] == \
        Marked("1.2", " the LogP is ", " kJ/mol")


def test_answer_part_after_the_reasoning():
    # the box inside the thinking block is the reasoning's, not the answer's
    part = answer_part("<think>Maybe \\boxed{Yes}? No: too polar.</think> <answer>\\boxed{No}</answer>")
    assert part.reasoning_removed and [m.text for m in part.marked] == ["No", "\\boxed{No}"]
    assert answer_part("The LogP is 2.1.") == ("The LogP is 2.1.", False, [])


def _read(task, kind, reply):
    text, marked = scored_text(task, kind, answer_part(reply))
    if kind == "property":
        return numbers.parse_value(text, numbers.property_spec(task)), marked
    if kind == "binary":
        return classes.stated_label(text, task), marked
    return molecules.canonical_smiles(molecules.extract_smiles(text)), marked


@pytest.mark.parametrize("task, kind, reply, expected", [
    # the box is the answer
    ("LogP", "property", "With 2 donors and MW 46, I estimate \\boxed{1.2}.", (1.2, True)),
    ("LogP", "property", "0.3 + 0.5 + 1.3 = \\boxed{2.1}", (2.1, True)),
    ("HOMO", "property", "In Hartree, the HOMO is \\fbox{-0.3377}.", (pytest.approx(-9.1893, abs=1e-3), True)),
    ("Hydration Free Energy", "property", "\\(\\boxed{-21.8}\\) kJ/mol", (pytest.approx(-5.2103, abs=1e-3), True)),
    ("LogP", "property", "About 1.5 by fragments, so \\boxed{2.0-2.5}.", (None, True)),  # a range: invalid
    ("p_np", "binary", "Its TPSA is 120, so it does not cross.\n\\boxed{\\text{No}}", (0.0, True)),
    ("p_np", "binary", "\\[ \\boxed{85\\%} \\]", (0.85, True)),
    ("smiles", "smiles", "Benzene is c1ccccc1; this one: \\(\\boxed{\\mathrm{CC\\#N}}\\) (acetonitrile)",
     ("CC#N", True)),
    ("smiles", "smiles", "Maybe c1ccccc1? No: \\boxed{C1CC}", (None, True)),  # an invalid SMILES is the answer
    # the box holds no answer to the question: read whole, as before
    ("LogP", "property", "The LogP is 3.55, and the TPSA is \\boxed{25.4}.", (3.55, False)),
    ("LogP", "property", "For $\\boxed{C_9H_8O_4}$, the LogP is 1.57.", (1.57, False)),
    ("LogP", "property", "The LogP is 1.9. \\boxed{A}", (1.9, False)),
    ("p_np", "binary", "No, it does not cross. Final answer: \\fbox{\\text{BBB}^-}", (0.0, False)),
    ("p_np", "binary", "Yes, it crosses: its TPSA is only \\fbox{56.7 \\text{ Å}^2}.", (1.0, False)),
    ("smiles", "smiles", "SMILES: C#CC\n\n\\fbox{\\text{propyne}}", ("C#CC", False)),
])
def test_scored_text(task, kind, reply, expected):
    assert _read(task, kind, reply) == expected


@pytest.mark.parametrize("hostile", ["\\boxed{" * 200_000, "{" * 400_000 + "}" * 400_000,
                                     "<answer>" * 100_000, "\\boxed{\\text{" * 100_000 + "}" * 200_000,
                                     "\\boxed{1}" + "." * 1_000_000, "1" * 1_000_000 + "\\boxed{1}"])
def test_hostile_markup_is_read_in_linear_time(hostile):
    began = time.perf_counter()
    marked_answers(hostile)  # nested boxes each kept their text: memory quadratic, killed at 24 GiB
    assert time.perf_counter() - began < 5.0


def test_the_report_scores_the_marked_answer(tmp_path):
    refs = write_jsonl(tmp_path / "q.jsonl", [
        {"question_id": "b", "task": "p_np", "metric": "binary", "text": "Does it cross?", "answer": "No."},
        {"question_id": "l", "task": "LogP", "text": "LogP?", "answer": "The LogP is 1.2."},
        {"question_id": "s", "task": "smiles", "text": "SMILES?", "answer": "The SMILES is CCO."},
        {"question_id": "h", "task": "HOMO", "text": "HOMO?", "answer": "The HOMO is -5.17 eV."},
        {"question_id": "c", "task": "caption", "text": "Describe.", "answer": "An alcohol."}])
    answers = write_jsonl(tmp_path / "a.jsonl", [
        {"question_id": "b", "text": "It has 3 rings and a TPSA of 120, so it does not cross.\n\\boxed{No}"},
        {"question_id": "l", "text": "With 2 donors and MW 46, \\boxed{1.2}."},
        {"question_id": "s", "text": "Benzene, c1ccccc1, has a ring; this has none: <answer>CCO</answer>"},
        {"question_id": "h", "text": "Orbital 12 of 20 is the HOMO: \\boxed{-0.19} Hartree."},
        {"question_id": "c", "text": "An alcohol."}])
    report, rows = build_report([answers], refs)
    tasks = report["tasks"]
    binary = tasks["p_np"]["metrics"]
    assert binary["n_valid"] == 1 and binary["accuracy"] == 100.0  # was no answer (invalid)
    assert tasks["LogP"]["metrics"]["mae"] == 0.0  # was 2 (the donors' count)
    assert tasks["smiles"]["metrics"]["exact_match"] == 100.0  # was benzene
    assert tasks["HOMO"]["metrics"]["mae"] < 0.01  # the unit after the box: -0.19 Hartree in eV
    marked = [tasks[t]["metrics"]["n_final_answer_marked"] for t in ("p_np", "LogP", "smiles", "HOMO", "caption")]
    assert marked == [1, 1, 1, 1, 0]
    by_id = {r["question_id"]: r for r in rows}
    assert by_id["b"]["final_answer_marked"] is True and by_id["b"]["prediction"] == "No"
    assert by_id["c"]["final_answer_marked"] is False
    assert "mark their final answer" in markdown(report)
