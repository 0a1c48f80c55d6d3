"""Yes/no (binary) tasks: deepmolm-prepare's `binary_labels` -> records with `metric` "binary"
-> eval.questions -> the report's classification scores (accuracy, balanced accuracy, F1,
MCC, AUROC). Before, a BBBP-like 0/1 label was scored as a regression (MAE over 0 and 1),
and an answer "Yes." had no value at all."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sklearn.metrics as sk

from deepmolm_plugin.data.sources.csv_source import read_csv
from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.eval.metrics.classes import binary_metrics, roc_auc, stated_label
from deepmolm_plugin.eval.scoring import build_report
from deepmolm_plugin.property.train import roc_auc as kflm2_roc_auc
from jsonl_helpers import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
TASK = "property:p_np"


@pytest.mark.parametrize("answer, expected", [
    ("Yes.", 1.0), ("yes", 1.0), ("**No**, it does not cross the barrier.", 0.0), ("No", 0.0), ("True", 1.0),
    ("> False: it is too polar.", 0.0), ("The p_np is 1.", 1.0), ("p_np: 0", 0.0), ("The p_np is 0.83.", 0.83),
    ("Nonetheless, the p_np is 1.", 1.0),  # "No" inside a word is no answer
    ("Note: p_np = 0.2", 0.2),
    ("The p_np is 5.", None),  # neither a class nor a probability
    ("I cannot say.", None), ("", None), ("no-go", None),
    # review: a number the label's name does not introduce is no answer (the first number was taken)
    ("The molecule has 1 aromatic ring and does not cross the blood-brain barrier.", None),
    ("1. No, it does not cross the BBB.", 0.0), ("1) Yes", 1.0), ("- Yes", 1.0), ("Answer: No", 0.0),
    ("1", 1.0), ("0.83.", 0.83), ("**0**", 0.0),
    ("It has a LogP of 3.2 and p_np is 0", 0.0), ("TPSA is 0.9 and p_np is 0", 0.0),
    ("This molecule has MW 350 and p np 1", 1.0),
    ("Yes or no.", None), ("Yes/No", None), ("yes and no", None), ("True / False", None),
    ("Yes, and no side effects", 1.0),
])
def test_the_class_an_answer_states(answer, expected):
    assert stated_label(answer, "p_np") == expected


def test_scores_match_sklearn():
    rng = random.Random(3)
    refs = [rng.randint(0, 1) for _ in range(200)]
    scores = [None if rng.random() < 0.1 else rng.choice([0.0, 1.0, rng.random()]) for _ in refs]
    m = binary_metrics(scores, refs, "p_np")
    # accuracy and balanced accuracy count every answer, an invalid one being right in neither class
    classes = [1 - r if s is None else int(s >= 0.5) for s, r in zip(scores, refs)]
    assert m["n"] == 200 and m["n_valid"] == sum(s is not None for s in scores)
    assert m["accuracy"] == pytest.approx(100 * sk.accuracy_score(refs, classes))
    assert m["balanced_accuracy"] == pytest.approx(100 * sk.balanced_accuracy_score(refs, classes))
    # F1, MCC and AUROC: the valid answers' classes and scores
    valid = [(s, r) for s, r in zip(scores, refs) if s is not None]
    valid_refs, valid_classes = [r for _, r in valid], [int(s >= 0.5) for s, _ in valid]
    assert m["f1"] == pytest.approx(100 * sk.f1_score(valid_refs, valid_classes))
    assert m["mcc"] == pytest.approx(sk.matthews_corrcoef(valid_refs, valid_classes))
    assert m["auroc"] == pytest.approx(100 * sk.roc_auc_score([r for _, r in valid], [s for s, _ in valid]))
    assert m["n_positive_references"] == sum(refs)
    assert m["n_positive_answers"] == sum(s >= 0.5 for s, _ in valid)
    assert m["undefined"] == {}


def test_a_model_that_never_answers_is_no_inverted_classifier():
    m = binary_metrics([None] * 4, [0, 1, 0, 1], "p_np")
    assert m["accuracy"] == 0.0 and m["balanced_accuracy"] == 0.0  # no right answer
    assert m["mcc"] is None and m["f1"] is None and m["auroc"] is None  # was MCC -1: "always the wrong class"
    assert set(m["undefined"]) == {"f1", "mcc", "auroc"}


def test_undefined_scores_are_none_with_a_reason():
    m = binary_metrics([1.0, 1.0, None], [1, 1, 1], "p_np")  # one class among the references
    assert m["accuracy"] == pytest.approx(200 / 3)
    assert m["balanced_accuracy"] is None and m["mcc"] is None and m["auroc"] is None
    assert set(m["undefined"]) == {"balanced_accuracy", "mcc", "auroc"}
    empty = binary_metrics([], [], "p_np")
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["valid_ratio"] is None
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics([1.0], [2], "p_np")


def test_one_roc_auc_for_the_report_and_kflm2():
    y, s = [0, 1, 1, 0, 1], [0.1, 0.9, 0.4, 0.4, 0.8]  # a tie across the classes counts a half
    assert roc_auc(s, y) == pytest.approx(sk.roc_auc_score(y, s))
    assert kflm2_roc_auc(y, s) == roc_auc(s, y)
    assert roc_auc([0.3], [1]) is None
    assert kflm2_roc_auc([1, 1], [0.2, 0.3]) != kflm2_roc_auc([1, 1], [0.2, 0.3])  # NaN, KFLM2's convention


def _question(qid, answer, **fields):
    return {"question_id": qid, "task": TASK, "text": "What is the p_np of this molecule?", "answer": answer,
            "metric": "binary", **fields}


def test_report_scores_a_binary_task_as_a_classifier(tmp_path):
    refs = write_jsonl(tmp_path / "q.jsonl", [
        _question("a", "The p_np is 1.", properties={"p_np": 1.0}), _question("b", "The p_np is 0."),
        _question("c", "Yes."), _question("d", "No, it does not."),
        {"question_id": "e", "task": "LogP", "text": "LogP?", "answer": "The LogP is 1.5."}])
    answers = write_jsonl(tmp_path / "a.jsonl", [{"question_id": q, "text": t} for q, t in [
        ("a", "Yes."), ("b", "The p_np is 0.2."), ("c", "p_np: 0.4"), ("d", "Unknown."), ("e", "1.2")]])
    report, rows = build_report([answers], refs)
    result = report["tasks"][TASK]
    assert result["kind"] == "binary" and result["n"] == 4
    m = result["metrics"]
    # a right, b right, c wrong (0.4 -> 0), d invalid -> wrong
    assert m["accuracy"] == 50.0 and m["n_valid"] == 3 and m["valid_ratio"] == 75.0
    assert "mae" not in m  # no regression score of 0 and 1
    assert report["tasks"]["LogP"]["kind"] == "property"
    by_id = {r["question_id"]: r for r in rows}
    assert by_id["c"]["value"] == 0.4 and by_id["c"]["label"] == 0 and by_id["c"]["reference_value"] == 1.0
    assert by_id["d"]["valid"] is False and by_id["d"]["label"] is None
    from deepmolm_plugin.eval.markdown import markdown

    text = markdown(report)
    assert "## Yes/no (binary) tasks" in text and "| property:p_np | 4 | 75.00 | 50.00 |" in text


@pytest.mark.parametrize("record, message", [
    (_question("x", "The p_np is 2."), "'x'.*is 0 or 1 .*not 2"),
    (_question("x", "Yes.", properties={"p_np": 0.0}), "'x'.*'Yes.' states 1 but `properties` holds 0"),
    (_question("x", "The p_np is 0.5."), "'x'.*not 0.5"),
])
def test_a_reference_that_is_no_class_is_refused_naming_its_question(tmp_path, record, message):
    refs = write_jsonl(tmp_path / "q.jsonl", [record])
    answers = write_jsonl(tmp_path / "a.jsonl", [{"question_id": "x", "text": "Yes"}])
    with pytest.raises(ReportError, match=message):
        build_report([answers], refs)


def test_a_binary_task_none_of_whose_questions_was_asked_has_its_keys(tmp_path):
    refs = write_jsonl(tmp_path / "q.jsonl", [_question("a", "Yes."), _question("b", "No."),
                                         {"question_id": "e", "task": "LogP", "text": "LogP?", "answer": "1.5"}])
    answers = write_jsonl(tmp_path / "a.jsonl", [{"question_id": "e", "text": "1.2"}])
    write_jsonl(tmp_path / "a.failures.jsonl", [{"question_id": q, "reason": "image unreadable"} for q in "ab"])
    report, rows = build_report([answers], refs)
    result = report["tasks"][TASK]
    assert result["n"] == 0 and result["metrics"]["accuracy"] is None and result["metrics"]["n_not_asked"] == 2
    assert {r["question_id"]: r["reference_value"] for r in rows if r["task"] == TASK} == {"a": 1.0, "b": 0.0}


def _csv(tmp_path, rows) -> Path:
    path = tmp_path / "bbbp.csv"
    path.write_text("smiles,p_np,logp\n" + "".join(f"{s},{y},{v}\n" for s, y, v in rows))
    return path


def test_prepare_binary_labels_mark_their_items_and_refuse_other_values(tmp_path):
    path = _csv(tmp_path, [("CCO", "1", "0.1"), ("CCN", "0.0", "0.2"), ("CCC", "2", "0.3"), ("CCCl", "", "0.4")])
    items = list(read_csv(str(path), {"label_columns": ["p_np", "logp"], "binary_labels": ["p_np"]}))
    binary = {i.id: i for i in items if getattr(i, "task", None) == TASK}
    assert {i.metric for i in binary.values()} == {"binary"}
    assert binary["bbbp#0:property:p_np"].properties == {"p_np": 1.0}
    assert {i.metric for i in items if getattr(i, "task", None) == "property:logp"} == {None}
    errors = [i for i in items if not hasattr(i, "task")]
    assert [(e.id, e.stage) for e in errors] == [("bbbp#2:property:p_np", "label")]
    assert "'2' is not 0 or 1" in errors[0].reason and "binary_labels" in errors[0].reason
    with pytest.raises(ValueError, match=r"binary_labels \['pnp'\] name no label column"):
        list(read_csv(str(path), {"label_columns": ["p_np"], "binary_labels": ["pnp"]}))
    renamed = list(read_csv(str(path), {"label_columns": ["p_np=BBB"], "binary_labels": ["BBB"]}))
    assert {i.metric for i in renamed if hasattr(i, "task")} == {"binary"}


def test_prepare_to_questions_carries_the_metric(tmp_path):
    path = _csv(tmp_path, [("CCO", "1", "0.1"), ("CCN", "0", "0.2")])
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "deepmolm_plugin.data.prepare", "--format", "csv", "--input",
                          str(path), "--out", str(out), "--label-columns", "p_np", "--binary-labels", "p_np",
                          "--image-size", "128", "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    records = json.loads((out / "train.json").read_text())
    assert [r["metric"] for r in records] == ["binary", "binary"]
    run = subprocess.run([sys.executable, "-m", "deepmolm_plugin.eval.questions", str(out / "train.json"),
                          str(tmp_path / "q.jsonl")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    questions = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [q["metric"] for q in questions] == ["binary", "binary"]


def test_sdf_binary_labels(tmp_path):
    from rdkit import Chem

    from deepmolm_plugin.data.sources.sdf_source import read_sdf

    path = tmp_path / "m.sdf"
    writer = Chem.SDWriter(str(path))
    for smiles, label in (("CCO", "1"), ("CCN", "3")):
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("active", label)
        writer.write(mol)
    writer.close()
    items = list(read_sdf(str(path), {"label_columns": ["active"], "binary_labels": ["active"]}))
    assert [getattr(i, "metric", None) for i in items if hasattr(i, "task")] == ["binary"]
    errors = [i for i in items if not hasattr(i, "task")]
    assert len(errors) == 1 and "'3' is not 0 or 1" in errors[0].reason


def test_a_reference_is_read_as_the_answers_are():
    from deepmolm_plugin.eval.task_kinds import reference_label

    # review: a count in a reference answer was its class
    assert reference_label(TASK, {"question_id": "q", "answer": "It has 1 ring and does not cross."}) is None
    assert reference_label(TASK, {"question_id": "q", "answer": "It has 1 ring.", "properties": {"p_np": 0}}) == 0.0
    assert reference_label(TASK, {"question_id": "q", "answer": "1. No."}) == 0.0


def test_baselines_of_a_binary_task_are_the_positive_rate_and_the_majority_class(tmp_path):
    from deepmolm_plugin.eval.baselines import mean_baseline, score_answers, task_means, task_medians
    from deepmolm_plugin.eval.questions import convert

    def record(rid, label):
        return {"id": rid, "smiles": "CCO", "task": TASK, "metric": "binary", "properties": {"p_np": float(label)},
                "conversations": [{"from": "human", "value": "<image>\nWhat is the p_np of this molecule?"},
                                  {"from": "gpt", "value": f"The p_np is {label}."}]}

    train = [record(f"r{i}", label) for i, label in enumerate([1, 1, 1, 0])]
    assert task_means(train) == {TASK: 0.75} and task_medians(train) == {TASK: 1.0}  # was: no property question
    test = [record(f"t{i}", label) for i, label in enumerate([1, 0, 1, 1, 0])]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in convert(test, tmp_path)))
    report = score_answers(mean_baseline(convert(test, tmp_path), task_means(train)), questions, tmp_path / "out")
    m = report["tasks"][TASK]["metrics"]
    assert report["tasks"][TASK]["kind"] == "binary"
    assert m["accuracy"] == 60.0 and m["balanced_accuracy"] == 50.0 and m["auroc"] == 50.0  # the majority class


def test_binary_tasks_get_a_roc_plot_and_a_rerun_removes_it(tmp_path):
    from deepmolm_plugin.eval.outputs import write_outputs

    refs = write_jsonl(tmp_path / "q.jsonl", [_question(f"q{i}", f"The p_np is {i % 2}.") for i in range(6)])
    answers = write_jsonl(tmp_path / "a.jsonl", [{"question_id": f"q{i}", "text": f"p_np: {s}"}
                                            for i, s in enumerate([0.2, 0.9, 0.6, 0.7, 0.1, 0.4])])
    report, rows = build_report([answers], refs)
    out = tmp_path / "out"
    write_outputs(report, rows, out)
    assert report["task_plots"] == {TASK: "plots/roc_property_p_np.png"}
    assert (out / "plots" / "roc_property_p_np.png").stat().st_size > 0
    from deepmolm_plugin.eval.outputs import remove_stale

    remove_stale(out)
    assert not list((out / "plots").glob("roc_*.png"))
