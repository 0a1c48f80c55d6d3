"""Yes/no (binary) tasks, twentieth round: what such answers and references say in words a
chemist or a model writes (class words, "The answer is ...", percentages), a `metric` that
contradicts its task's name, and the mean over the tasks of a multi-task set (Tox21's 12
assays). Each case failed on the code before it: a class word and a percentage were no
answer (invalid) or invalid, "No answer" was class 0, a binary metric on a SMILES task left
every question unreferenced, and the report had no mean row."""

from __future__ import annotations

import pytest

from deepmolm_plugin.eval.markdown import markdown
from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.eval.metrics.classes import binary_metrics, mean_over_tasks, stated_label
from deepmolm_plugin.eval.scoring import build_report
from deepmolm_plugin.eval.task_kinds import reference_label, task_kind
from jsonl_helpers import write_jsonl


@pytest.mark.parametrize("answer, expected", [
    # an outcome word as the whole statement
    ("Active.", 1.0), ("Inactive, it does not bind the receptor.", 0.0), ("**Positive**", 1.0),
    ("negative", 0.0), ("Negative (it does not cross).", 0.0), ("Inactive - no binding", 0.0),
    ("The answer is positive.", 1.0),
    # ... but not a word that qualifies another one
    ("Positive charge sits on the nitrogen.", None), ("Active site residues bind it.", None),
    ("Negative LogP values mean it is polar.", None), ("Positive or negative", None),
    # an answer label before yes / no
    ("The answer is yes.", 1.0), ("The answer is: No", 0.0), ("Final answer: Yes", 1.0), ("Answer is no", 0.0),
    ("My answer: yes", 1.0),
    # "no" that says nothing is stated
    ("No answer.", None), ("No clear answer can be given.", None), ("No data", None), ("No answers", None),
    ("No, it does not.", 0.0), ("No it does not cross", 0.0),
    # percentages: their fraction of 1
    ("90%", 0.9), ("The p_np is 85 %.", 0.85), ("p_np: 73 percent", 0.73), ("**12%**", 0.12),
    ("p_np: 150%", None),  # 1.5: no score
    ("The molecule has 40% carbon by mass and does not cross.", None),  # a number the label does not introduce
])
def test_words_and_percentages(answer, expected):
    got = stated_label(answer, "p_np")
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize("answer, expected", [
    # review (a corpus of 24,704 answers in 82 styles): an outcome word that is a heading, a
    # form field, the question restated, an adjective or one of a list is no answer
    ("Positive: low MW.\nNegative: high TPSA.\nConclusion: no", None),
    # ... but a form's outcome field, or the question restated, is followed by its answer
    ("Active: no", 0.0), ("Inactive: yes", 0.0), ("Inactive: no", 1.0), ("**Active**: No", 0.0),
    ("Active: Inactive.", None), ("Active: no data", None),
    ("Active? no.", 0.0), ("Is it active? No.", 0.0), ("Does it cross the BBB?\nYes, it does.", 1.0),
    ("Is it active? Answer: No.", 0.0), ("Why? No idea.", None), ("Is it toxic? Yes or no?", None),
    ("Negative (ionised) carboxylates rarely cross; this one crosses.", None),
    ("Active, inactive and inconclusive calls are made by the assay; this compound is inactive.", None),
    ("Negative, then positive, charges alternate along the chain; it crosses.", None),
    ("The answer is no simple matter, but it crosses.", None),
    # ... and the outcome word that ends its line or meets a dash is the answer
    ("**ACTIVE**\n\nSimilar scaffolds bind it.", 1.0), ("Positive—the lipophilic core binds.", 1.0),
    # yes / no said twice in one class ("No / inactive") is that class; in two, none
    ("No / inactive", 0.0), ("YES/ACTIVE", 1.0), ("No or negative", 0.0), ("Yes / positive", 1.0),
    ("Positive or negative", None), ("Yes or no.", None),
    # a "no" over a heading is the answer; "no" as a determiner is a "no"
    ("**No**\n\n**Data:** none measured.", 0.0), ("No\n\nConclusion: it does not cross.", 0.0),
    ("No data indicate binding to the receptor; it is inactive.", 0.0), ("No data available.", None),
    # the label's name followed by its word, a table cell, a label outside the emphasis
    ("p_np: no", 0.0), ("p_np = Yes", 1.0), ("| p_np | active |", 1.0), ("**Answer**: yes", 1.0),
    ("The correct answer is YES.", 1.0), ("Prediction: NO", 0.0), ("Conclusion: No.", 0.0),
    # a number after an answer label is the answer's
    ("The answer is 1.", 1.0), ("Answer: 0", 0.0), ("Final answer: 0.13", 0.13), ("The answer is 85%.", 0.85),
    # a hedge before the word, what the outcome is for after it
    ("Probably yes.", 1.0), ("Most likely no.", 0.0), ("Likely active", 1.0), ("Presumably inactive (weak)", 0.0),
    ("Negative for NR-AR.", 0.0), ("INACTIVE in this assay.", 0.0), ("Active against HIV.", 1.0),
    ("Active against HIV? No.", 0.0), ("Active compound.", None), ("Probably not.", 0.0),  # was no answer (round 21)
    # an answer that states both classes states none; a number not right after the name is no class
    ("Yes, it crosses (p_np = 0).", None), ("Yes. p_np: no", None), ("No. The molecule has p_np of 1", None),
    ("Yes (p_np = 0.83)", 1.0), ("No. The p_np is 0.", 0.0), ("No, its p_np is not 1.", 0.0),
    ("No. The p_np assay flags a QED of 0.6", 0.0),
    # a percentage further on is another quantity's, not the label's score
    ("p_np: inactive (12% inhibition at 10 µM)", 0.0), ("p_np (60% accuracy model): 0", None),
    ("p_np: NO, although only 51% of the dose is unbound.", 0.0),
])
def test_review_readings(answer, expected):
    got = stated_label(answer, "p_np")
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize("text", ["1" + " " * 64000 + "x", "1" + "\n" * 64000 + "x", "1" * 64000 + "x",
                                  "The answer is " * 50000, "Final answer: " + "1" * 200000 + "x",
                                  "probably" + " " * 100000 + "x", "answer" + " " * 100000 + "x"])
def test_long_answers_are_read_in_linear_time(text):
    import time

    start = time.process_time()
    assert stated_label(text, "p_np") is None
    # review: 21.6 s for the first (quadratic), 27 s for the third; a first hedge rule took 20 s
    # for "probably" and 4,000 spaces
    assert time.process_time() - start < 5


def test_references_in_those_words_are_classes():
    assert reference_label("property:NR-AR", {"question_id": "q", "answer": "Active."}) == 1.0
    assert reference_label("property:NR-AR", {"question_id": "q", "answer": "Inactive."}) == 0.0
    assert reference_label("property:NR-AR", {"question_id": "q", "answer": "The answer is no."}) == 0.0
    with pytest.raises(ReportError, match="'q'.*not 0.4"):
        reference_label("property:NR-AR", {"question_id": "q", "answer": "40%"})


@pytest.mark.parametrize("task, metric, message", [
    ("SMILES", "binary", "metric 'binary' does not fit: the task 'SMILES' asks for a SMILES"),
    ("text2smiles", "property", "metric 'property' does not fit"),
    ("IUPAC name", "binary", "asks for an IUPAC name"),
    ("LogP", "smiles", "the task 'LogP' is a property"),
    ("HOMO", "iupac", "is a property"),
])
def test_a_metric_the_task_name_contradicts_is_refused(task, metric, message):
    with pytest.raises(ReportError, match=f"question 7: .*{message}"):
        task_kind(task, {"question_id": 7, "metric": metric})


@pytest.mark.parametrize("task, metric, message", [
    ("text-to-SMILES", "binary", "asks for a SMILES"), ("description2smiles", "property", "asks for a SMILES"),
    ("caption2mol", "binary", "asks for a SMILES"), ("SMILES Generation Task", "property", "asks for a SMILES"),
    ("SMILES to IUPAC", "binary", "asks for an IUPAC name"), ("IUPAC nomenclature", "property", "an IUPAC name"),
    ("iupac_naming", "smiles", "asks for an IUPAC name"), ("smiles", "iupac", "asks for a SMILES"),
])
def test_task_names_of_smiles_and_iupac_forms(task, metric, message):
    with pytest.raises(ReportError, match=message):
        task_kind(task, {"question_id": 7, "metric": metric})
    assert task_kind(task, {}) == ("iupac" if "iupac" in message.lower() else "smiles")  # were text tasks


@pytest.mark.parametrize("task", ["recognition", "Caption", "molecule", "description"])
def test_other_names_stay_text_tasks(task):
    assert task_kind(task, {}) == "text"


@pytest.mark.parametrize("task, metric", [("property:p_np", "binary"), ("SMILES", "text"), ("LogP", "binary"),
                                          ("caption", "smiles"), ("IUPAC", "text")])
def test_a_metric_that_fits_is_taken(task, metric):
    assert task_kind(task, {"question_id": 7, "metric": metric}) == metric


def test_a_binary_metric_on_a_smiles_task_stops_the_report_naming_the_question(tmp_path):
    refs = write_jsonl(tmp_path / "q.jsonl", [{"question_id": "s1", "task": "SMILES", "text": "SMILES?",
                                          "answer": "CCO", "metric": "binary"}])
    answers = write_jsonl(tmp_path / "a.jsonl", [{"question_id": "s1", "text": "CCO"}])
    with pytest.raises(ReportError, match="'s1'.*metric 'binary' does not fit"):
        build_report([answers], refs)


def test_mean_over_tasks():
    a = binary_metrics([1.0, 0.0, 1.0, 0.0], [1, 0, 0, 0], "a")  # accuracy 75, AUROC 83.3
    b = binary_metrics([1.0, None], [1, 1], "b")  # one reference class: balanced acc., MCC, AUROC undefined
    mean = mean_over_tasks({"a": a, "b": b})
    assert mean["n_tasks"] == 2 and mean["n"] == 6 and mean["n_valid"] == 5 and mean["tasks"] == ["a", "b"]
    assert mean["accuracy"] == pytest.approx((75.0 + 50.0) / 2)
    assert mean["auroc"] == pytest.approx(a["auroc"])  # over the task where it is defined
    assert mean["left_out"] == {"balanced_accuracy": ["b"], "mcc": ["b"], "auroc": ["b"]}
    assert mean["valid_ratio"] == pytest.approx(500 / 6)
    assert mean_over_tasks({"a": a}) is None  # one task: its own row says it
    assert mean_over_tasks({"a": a, "c": binary_metrics([], [], "c")}) is None  # nothing scored in c


def test_the_report_has_a_mean_row_for_a_multi_task_set(tmp_path):
    assays = ["property:NR-AR", "property:SR-p53", "property:NR-AhR"]
    refs, answers = [], []
    for t, task in enumerate(assays):
        for i, (ref, ans) in enumerate([("Active.", "Active"), ("Inactive.", "Inactive."), ("Active.", "No."),
                                        ("Inactive.", "Yes" if t == 0 else "No")]):
            qid = f"{t}-{i}"
            refs.append({"question_id": qid, "task": task, "text": "Is it active?", "answer": ref, "metric": "binary"})
            answers.append({"question_id": qid, "text": ans})
    refs.append({"question_id": "e", "task": "LogP", "text": "LogP?", "answer": "1.5"})
    answers.append({"question_id": "e", "text": "1.2"})
    report, _ = build_report([write_jsonl(tmp_path / "a.jsonl", answers)], write_jsonl(tmp_path / "q.jsonl", refs))
    mean = report["means"]["binary"]
    per_task = [report["tasks"][t]["metrics"]["accuracy"] for t in assays]
    assert per_task == [50.0, 75.0, 75.0] and mean["accuracy"] == pytest.approx(200 / 3)
    assert mean["n_tasks"] == 3 and mean["n"] == 12 and mean["left_out"] == {}
    text = markdown(report)
    assert "| **mean of 3 tasks** | 12 | 100.00 | 66.67 |" in text
    assert "unweighted mean over the tasks" in text
    # one binary task: no mean
    one = [r for r in refs if r["task"] in (assays[0], "LogP")]
    kept = {r["question_id"] for r in one}
    report, _ = build_report([write_jsonl(tmp_path / "a1.jsonl", [a for a in answers if a["question_id"] in kept])],
                             write_jsonl(tmp_path / "q1.jsonl", one))
    assert "means" not in report and "mean of" not in markdown(report)
