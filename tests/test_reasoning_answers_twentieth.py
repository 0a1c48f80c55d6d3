"""Answers of a reasoning model (twentieth round): `<think> ... </think>` before the answer was
scored whole, so the reasoning's numbers and SMILES were read as the answer and its words
counted in BLEU. Now the report scores the text after the block, counts such answers
(`n_reasoning_removed`) and flags their rows."""

from __future__ import annotations

import pytest

from deepmolm_plugin.eval.markdown import markdown
from deepmolm_plugin.eval.reasoning import visible_answer
from deepmolm_plugin.eval.scoring import build_report
from jsonl_helpers import write_jsonl


@pytest.mark.parametrize("text, expected", [
    ("<think>Ethanol's LogP is -0.31; this one is larger.</think>\n\nThe LogP is 2.1.", ("The LogP is 2.1.", True)),
    ("  <THINK>a</THINK>b", ("b", True)),
    ("<thinking>x</thinking> CCO", ("CCO", True)),
    ("reasoning first</think>\nYes.", ("Yes.", True)),  # DeepSeek-R1: the block opened in the prompt
    ("<think>still thinking when generation stopped", ("", True)),
    ("The LogP is 2.1 <think>an aside</think>", ("The LogP is 2.1 <think>an aside</think>", False)),
    ("The LogP is 2.1.", ("The LogP is 2.1.", False)),
])
def test_visible_answer(text, expected):
    assert visible_answer(text) == expected


def test_the_report_scores_the_answer_after_the_reasoning(tmp_path):
    refs = write_jsonl(tmp_path / "q.jsonl", [
        {"question_id": "a", "task": "LogP", "text": "LogP?", "answer": "The LogP is 2.1."},
        {"question_id": "b", "task": "LogP", "text": "LogP?", "answer": "The LogP is 1.0."},
        {"question_id": "s", "task": "smiles", "text": "SMILES?", "answer": "The SMILES is CCO."},
        {"question_id": "c", "task": "caption", "text": "Describe.", "answer": "An alcohol."}])
    answers = write_jsonl(tmp_path / "a.jsonl", [
        {"question_id": "a", "text": "<think>Ethanol's LogP is -0.31; add a ring.</think>\n\nThe LogP is 2.1."},
        {"question_id": "b", "text": "<think>Counting the carbons, the LogP is"},  # stopped while thinking
        {"question_id": "s", "text": "<think>Maybe c1ccccc1? No: two carbons.</think> The SMILES is CCO."},
        {"question_id": "c", "text": "An alcohol."}])
    report, rows = build_report([answers], refs)
    logp = report["tasks"]["LogP"]["metrics"]
    assert logp["mae"] == 0.0 and logp["n_valid"] == 1 and logp["n_empty"] == 1  # was -0.31 (2.41 off)
    assert logp["n_reasoning_removed"] == 2
    assert report["tasks"]["smiles"]["metrics"]["exact_match"] == 100.0  # was benzene
    assert report["tasks"]["caption"]["metrics"]["n_reasoning_removed"] == 0
    by_id = {r["question_id"]: r for r in rows}
    assert by_id["a"]["reasoning_removed"] is True and by_id["a"]["prediction"] == "The LogP is 2.1."
    assert by_id["c"]["reasoning_removed"] is False
    assert "opened with a reasoning block" in markdown(report)
