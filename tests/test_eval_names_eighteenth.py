"""Eval and property reports, eighteenth sweep: a question file with a question_id twice in
the baseline scorer, and a backslash before '|' in a name in a markdown table.
"""

from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt

from deepmolm_plugin.eval import baselines, report
from deepmolm_plugin.eval.markdown import cell
from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.property.report import _cell as property_cell


def _questions(path, rows):
    path.write_text("".join(json.dumps({"text": "?", "task": "Molecular Weight", **row}) + "\n" for row in rows))
    return path


def test_the_baseline_scorer_names_a_question_id_listed_twice(tmp_path):
    """Was: "-1 answer(s) to questions not in blq.jsonl" (a negative count, no id)."""
    questions = _questions(tmp_path / "q.jsonl", [
        {"question_id": "q0", "answer": "The molecular weight is 100 g/mol."},
        {"question_id": "q1", "answer": "The molecular weight is 200 g/mol."},
        {"question_id": "q1", "answer": "The molecular weight is 900 g/mol."}])
    with pytest.raises(ReportError, match=r"question_id listed more than once: 'q1'"):
        baselines.score_answers({"q0": "150", "q1": "150"}, questions, tmp_path / "out")


def test_the_baseline_scorer_names_answers_to_questions_it_lacks(tmp_path):
    questions = _questions(tmp_path / "q.jsonl", [{"question_id": "q0", "answer": "The molecular weight is 100 g/mol."}])
    with pytest.raises(baselines.BaselineError, match=r"1 answer\(s\) to questions not in .*q.jsonl: 'q7'"):
        baselines.score_answers({"q0": "150", "q7": "150"}, questions, tmp_path / "out")
    result = baselines.score_answers({"q0": "150"}, questions, tmp_path / "out")
    assert result["tasks"]["Molecular Weight"]["metrics"]["mae"] == pytest.approx(50)


NAMES = ["a\\|b", "a\\\\|b", "ends with \\", "a|b", "plain"]


def _rendered_cells(table: str) -> list[str]:
    """The body cells of a markdown table as a GFM renderer shows them."""
    html = MarkdownIt("commonmark").enable("table").render(table)
    body = html.split("<tbody>")[1]
    return [part.split(">", 1)[1].split("</td>")[0] for part in body.split("<td")[1:]]


@pytest.mark.parametrize("escape", [cell, property_cell], ids=["eval", "property"])
def test_a_name_in_a_table_cell_reads_back_as_written(escape):
    # was: `a\|b` written `a\\|b`, shown as "a|b" (or split into two cells by GitHub's renderer)
    table = "| name | n |\n|---|---:|\n" + "".join(f"| {escape(name)} | 1 |\n" for name in NAMES)
    shown = _rendered_cells(table)
    assert shown[0::2] == [name.replace("&", "&amp;") for name in NAMES]
    assert shown[1::2] == ["1"] * len(NAMES)


def test_the_eval_report_writes_a_task_name_with_a_backslash_and_a_pipe(tmp_path):
    task = "prop a\\|b"
    refs = tmp_path / "refs.jsonl"
    refs.write_text(json.dumps({"question_id": 0, "text": "?", "task": task, "answer": "a caption"}) + "\n")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"question_id": 0, "text": "a caption"}) + "\n")
    report.main([str(answers), "--references", str(refs), "--out", str(tmp_path / "out"), "--no-plots"])
    table = (tmp_path / "out" / "metrics.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| prop")]
    assert rows and _rendered_cells("| task | n |\n|---|---:|\n" + rows[0] + "\n")[0] == task
