"""Hostile input to the evaluation report (`eval.report`, `eval.outputs`, `plots`); was:

- a task name with `$` (`solubility in $\\ce{H2O}$`, `$$`, `x^2 $_$`) was drawn as matplotlib
  math text, whose parser failed at layout: a ValueError traceback, after the earlier
  report's plots were deleted and with its metrics.json left listing them;
- a run that failed while writing left the earlier report's metrics.json (the mark of a
  finished report) beside its own files, and an OSError was a traceback;
- a task name of 275 characters (an assay description) gave a file name too long for the
  file system (OSError: File name too long);
- one answer of more than `text.MAX_TOKENS` tokens (a model generating until
  --max-new-tokens) stopped the whole report: no task was scored.
"""

from __future__ import annotations

import json

import pytest

from deepmolm_plugin import plots as draw
from deepmolm_plugin.eval import outputs, report
from deepmolm_plugin.eval.metrics import text
from deepmolm_plugin.eval.metrics import wordnet as wn_setup
from deepmolm_plugin.eval.outputs import write_outputs
from deepmolm_plugin.eval.scoring import build_report

MATH_NAMES = ["solubility in $\\ce{H2O}$", "$$", "x^2 $_$"]


def _files(tmp_path, questions, name="run"):
    """(answers, references) files of [(question_id, task, reference answer, metric, prediction)]."""
    refs, answers = tmp_path / f"{name}_q.jsonl", tmp_path / f"{name}_a.jsonl"
    refs.write_text("".join(json.dumps({"question_id": q, "task": t, "answer": a, "metric": m}) + "\n"
                            for q, t, a, m, _ in questions))
    answers.write_text("".join(json.dumps({"question_id": q, "text": p}) + "\n" for q, _, _, _, p in questions))
    return answers, refs


def _report(tmp_path, questions, name="run"):
    answers, refs = _files(tmp_path, questions, name)
    return build_report([answers], refs)


# --- text from user data is plain text in every figure ---------------------------------------------
@pytest.mark.parametrize("kind", ["property", "text"])
def test_task_names_with_dollar_signs_are_drawn_as_plain_text(tmp_path, kind, wordnet):
    questions = [(f"q{i}", task, f"The value is {i}.5 here", kind, f"The value is {i}.4")
                 for i, task in enumerate(MATH_NAMES)]
    rep, rows = _report(tmp_path, questions)
    write_outputs(rep, rows, tmp_path / "out")
    assert len(rep["plots"]) == (3 if kind == "property" else 1)
    assert all((tmp_path / "out" / p).stat().st_size > 1000 for p in rep["plots"])


def test_every_text_of_a_figure_is_plain(tmp_path):
    # titles, axis labels, legend entries, tick labels: all may hold user data
    fig, (ax,) = draw.panels(1, figsize=(3, 3))
    draw.bars(ax, ["$\\ce{A}$", "$$"], [[1.0, 2.0]], labels=["x^2 $_$"])
    ax.set_title("$\\ce{H2O}$")
    ax.set_xlabel("$\\unknown$")
    ax.legend()
    draw.save(fig, tmp_path / "f.png", 50)
    assert (tmp_path / "f.png").stat().st_size > 500


# --- a rerun that fails midway ----------------------------------------------------------------------
def test_a_rerun_that_fails_while_drawing_leaves_no_earlier_metrics_json(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_outputs(*_report(tmp_path, [("1", "solubility", "1.5", "property", "1.4")], "first"), out)
    assert (out / "metrics.json").is_file()

    def fails(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(draw, "save", fails)
    with pytest.raises(RuntimeError, match="drawing failed"):
        write_outputs(*_report(tmp_path, [("1", "LogS", "1.5", "property", "1.4")], "second"), out)
    # the earlier metrics.json listed plots/parity_solubility.png, deleted by this run
    assert sorted(p.name for p in out.rglob("*")) == ["plots"]


def test_an_os_error_while_writing_is_a_clear_error(tmp_path, monkeypatch):
    answers, refs = _files(tmp_path, [("1", "solubility", "1.5", "property", "1.4")])
    out = tmp_path / "out"
    report.main([str(answers), "--references", str(refs), "--out", str(out), "--no-plots"])

    def disk_full(path, content):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(outputs, "write_atomic", disk_full)
    with pytest.raises(SystemExit, match=r"error: writing the report in .*No space left on device.*\n"
                                         r"note: this run wrote no metrics.json"):
        report.main([str(answers), "--references", str(refs), "--out", str(out), "--no-plots"])
    assert not (out / "metrics.json").exists()


# --- long task names --------------------------------------------------------------------------------
def test_long_task_names_get_short_distinct_file_names(tmp_path):
    assay = ("Inhibition of recombinant human carbonic anhydrase isoform two expressed in Escherichia coli "
             "assessed as reduction in carbon dioxide hydration activity preincubated for fifteen minutes "
             "followed by substrate addition measured by stopped flow assay, ")
    tasks = [assay + "inhibition constant in nanomolar", assay + "half maximal inhibitory concentration", "LogP"]
    assert min(len(t) for t in tasks[:2]) > 255  # a file system's limit on a file name, in bytes
    rep, rows = _report(tmp_path, [(str(i), t, "1.5", "property", "1.4") for i, t in enumerate(tasks)])
    write_outputs(rep, rows, tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out" / "plots").iterdir())
    assert len(files) == len(set(rep["plots"])) == 3, files
    assert "parity_LogP.png" in files  # a short name is kept as it is
    assert max(len(f) for f in files) <= len("parity_.png") + outputs.MAX_NAME + 9  # + "-" and 8 hex digits


# --- a runaway answer ---------------------------------------------------------------------------------
def test_an_answer_beyond_max_tokens_is_scored_on_its_first_tokens_and_counted(tmp_path, capsys, wordnet):
    runaway = "The molecule is " + "C(" * 6000  # 12,003 tokens
    answers, refs = _files(tmp_path, [
        ("q0", "description", "The molecule is an alcohol.", "text", "It is an alcohol."),
        ("q1", "description", "The molecule is an alcohol.", "text", runaway),
        ("p1", "LogP", "The LogP is 1.5.", "property", "The LogP is 1.4.")])
    out = tmp_path / "out"
    report.main([str(answers), "--references", str(refs), "--out", str(out), "--no-plots",
                 "--nltk-data", str(wn_setup.find_wordnet().parent.parent)])
    tasks = json.loads((out / "metrics.json").read_text())["tasks"]
    assert tasks["LogP"]["metrics"]["mae"] == pytest.approx(0.1)  # the other tasks are scored too
    metrics = tasks["description"]["metrics"]
    assert metrics["n_truncated"] == 1 and "truncated" not in metrics
    # the scores are those of the answer cut to its first MAX_TOKENS tokens
    cut = " ".join(text.tokenize_all([runaway])[0][:text.MAX_TOKENS])
    expected = text.text_metrics(["It is an alcohol.", cut], ["The molecule is an alcohol."] * 2, wordnet=wordnet)
    assert {k: metrics[k] for k in text.METRIC_NAMES} == {k: expected[k] for k in text.METRIC_NAMES}
    rows = [json.loads(x) for x in (out / "per_question.jsonl").read_text().splitlines()]
    assert [r.get("truncated") for r in rows] == [False, True, None]
    assert f"Answers of more than {text.MAX_TOKENS} tokens" in (out / "metrics.md").read_text()
    assert f"note: 1 answer(s) have more than {text.MAX_TOKENS} tokens" in capsys.readouterr().err


def test_a_reference_beyond_max_tokens_is_still_refused_by_name():
    # a references file is the user's data: cut, it would be another ground truth
    with pytest.raises(text.TextTooLong, match=f"reference 2 of 2 has {text.MAX_TOKENS + 1} tokens"):
        text.text_metrics(["a", "a"], ["a", "a " * (text.MAX_TOKENS + 1)], wordnet=object())


def test_the_report_names_the_question_of_a_too_long_reference(tmp_path):
    answers, refs = _files(tmp_path, [("1", "description", "loop " * 20000, "text", "an alcohol")])
    with pytest.raises(SystemExit, match="error: task 'description', question '1': reference 1 of 1 has 20000 tokens"):
        report.main([str(answers), "--references", str(refs), "--out", str(tmp_path / "out"), "--no-plots",
                     "--nltk-data", str(wn_setup.find_wordnet().parent.parent)])
    assert not (tmp_path / "out" / "metrics.json").exists()
