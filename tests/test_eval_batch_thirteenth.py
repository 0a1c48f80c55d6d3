"""Evaluation as a batch job, thirteenth sweep (`eval.model_vqa`, `eval.report`, `eval.resume`); was:

1. a failures entry was trusted whatever its question holds now: a question whose SMILES was
   fixed since stayed "not asked" with the old error;
2. a question listed in two failures files (or twice in one) was accepted, the first reason kept;
3. an answer line edited by hand (its `metadata.content_digest` no longer the line's) was scored;
4. `metadata.capped` of another type ("true") was read as "not recorded";
5. `model_vqa --resume` dropped an unreadable answer line without a word;
6. a CJK task name was drawn as boxes, and metrics.json did not say which plot is whose;
7. refusals of a reference answer named no file or line, and the settings refusal one file twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deepmolm_plugin.eval import report
from deepmolm_plugin.eval.resume import content_digest
from test_host_cli_eval import FUSION_CONFIG, _stub_args, _stub_host, _write_questions

REF = "The molecular weight is 46.07 g/mol."


def _write(path: Path, lines) -> Path:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def _refs(tmp_path: Path, smiles=("CCO", "CCN"), name="q.jsonl") -> Path:
    return _write(tmp_path / name, [{"question_id": f"q{i}", "text": "What?", "answer": REF,
                                     "task": "Molecular Weight", "smiles": s} for i, s in enumerate(smiles)])


def _run_report(tmp_path: Path, capsys, *answers: Path, refs: Path, plots=False):
    """(exit message or None, stderr) of eval.report on `answers`."""
    argv = [*map(str, answers), "--references", str(refs), "--out", str(tmp_path / "out")]
    try:
        report.main(argv + ([] if plots else ["--no-plots"]))
    except SystemExit as e:
        return str(e.code), capsys.readouterr().err
    return None, capsys.readouterr().err


# --- 1. a failures entry for a question changed since --------------------------------------------
def _failed_run(tmp_path, monkeypatch, questions_lines):
    """model_vqa on a stub model: the answers file and its failures file."""
    from deepmolm_plugin.eval import model_vqa

    host, _ = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    questions = _write(tmp_path / "asked.jsonl", questions_lines)
    answers = tmp_path / "a.jsonl"
    with pytest.raises(model_vqa.QuestionsFailed):
        model_vqa.run_host_eval(host, _stub_args(questions, answers), FUSION_CONFIG)
    return answers


def test_model_vqa_failures_lines_record_what_was_asked(tmp_path, monkeypatch):
    from deepmolm_plugin.eval.resume import asked_digests

    line = {"question_id": "q1", "text": "What?", "smiles": "C1CC"}
    answers = _failed_run(tmp_path, monkeypatch, [{"question_id": "q0", "text": "What?", "smiles": "CCO"}, line])
    failed = json.loads((tmp_path / "a.failures.jsonl").read_text())
    assert failed["question_id"] == "q1" and failed["prompt"] == "What?"
    assert failed["metadata"]["asked"] == asked_digests(line)
    assert answers.is_file()


def test_report_refuses_a_failures_entry_whose_molecule_was_fixed_since(tmp_path, monkeypatch, capsys):
    answers = _failed_run(tmp_path, monkeypatch, [{"question_id": "q0", "text": "What?", "smiles": "CCO"},
                                                  {"question_id": "q1", "text": "What?", "smiles": "C1CC"}])
    error, _ = _run_report(tmp_path, capsys, answers, refs=_refs(tmp_path, ("CCO", "C1CC1")))
    assert error is not None and "failures entr" in error and "'q1'" in error and "smiles" in error
    assert "a.failures.jsonl, line 1" in error
    # unchanged references: counted as not asked
    error, err = _run_report(tmp_path, capsys, answers, refs=_refs(tmp_path, ("CCO", "C1CC")))
    assert error is None and "could not be asked" in err


def test_report_refuses_a_failures_entry_of_a_question_that_has_a_molecule_now(tmp_path, monkeypatch, capsys):
    """'has no molecule', then a SMILES added: no field on both sides to compare."""
    answers = _failed_run(tmp_path, monkeypatch, [{"question_id": "q0", "text": "What?", "smiles": "CCO"},
                                                  {"question_id": "q1", "text": "What?"}])
    error, _ = _run_report(tmp_path, capsys, answers, refs=_refs(tmp_path))
    assert error is not None and "molecule field" in error and "'q1'" in error and "smiles" in error


def test_report_notes_failures_entries_that_do_not_record_what_was_asked(tmp_path, capsys):
    answers = _write(tmp_path / "a.jsonl", [{"question_id": "q0", "prompt": "What?", "text": "It is 46 g/mol."}])
    _write(tmp_path / "a.failures.jsonl", [{"question_id": "q1", "reason": "unparseable SMILES"}])
    error, err = _run_report(tmp_path, capsys, answers, refs=_refs(tmp_path))
    assert error is None
    assert "note: 1 failures entr(ies) in" in err and "do not record what their question asked" in err and "'q1'" in err


# --- 2. a question in two failures files ------------------------------------------------------------
@pytest.mark.parametrize("same_file", [False, True])
def test_report_refuses_a_question_listed_twice_in_the_failures_files(tmp_path, capsys, same_file):
    refs = _refs(tmp_path, ("CCO", "CCN", "CCC"))
    shards = [_write(tmp_path / f"{i}.jsonl", [{"question_id": f"q{i}", "prompt": "What?", "text": "It is 46."}])
              for i in range(2)]
    if same_file:
        _write(tmp_path / "0.failures.jsonl", [{"question_id": "q2", "reason": "run A"},
                                              {"question_id": "q2", "reason": "run B"}])
    else:
        _write(tmp_path / "0.failures.jsonl", [{"question_id": "q2", "reason": "run A"}])
        _write(tmp_path / "1.failures.jsonl", [{"question_id": "q2", "reason": "run B"}])
    error, _ = _run_report(tmp_path, capsys, *shards, refs=refs)
    assert error is not None and "listed more than once in the failures files: 'q2'" in error
    second = "0.failures.jsonl, line 2" if same_file else "1.failures.jsonl, line 1"
    assert "0.failures.jsonl, line 1" in error and second in error


def test_report_refuses_a_failures_reason_that_is_not_text(tmp_path, capsys):
    answers = _write(tmp_path / "a.jsonl", [{"question_id": "q0", "prompt": "What?", "text": "It is 46."}])
    _write(tmp_path / "a.failures.jsonl", [{"question_id": "q1", "reason": None}])
    error, _ = _run_report(tmp_path, capsys, answers, refs=_refs(tmp_path))
    assert error is not None and "a.failures.jsonl, line 1 (question 'q1'): `reason` is null" in error


# --- 3. an answer edited by hand ---------------------------------------------------------------------
def _answer(qid: str, text: str, **metadata) -> dict:
    line = {"question_id": qid, "prompt": "What?", "text": text}
    return dict(line, metadata={"content_digest": content_digest(line), **metadata})


def test_report_refuses_answer_lines_edited_after_model_vqa_wrote_them(tmp_path, capsys):
    refs = _refs(tmp_path)
    lines = [_answer("q0", "It is 12.13 g/mol."), _answer("q1", "It is 40 g/mol.")]
    answers = _write(tmp_path / "a.jsonl", lines)
    assert _run_report(tmp_path, capsys, answers, refs=refs)[0] is None  # as written: scored
    lines[1]["text"] = "It is 46.07 g/mol."  # the reference value, typed in
    _write(answers, lines)
    error, _ = _run_report(tmp_path, capsys, answers, refs=refs)
    assert error is not None and "changed after model_vqa wrote them" in error
    assert f"{answers}, line 2 (question 'q1')" in error and "'q0'" not in error
    # another id is an edit too: the digest covers every field but `metadata`
    _write(answers, [_answer("q0", "It is 46 g/mol."), lines[0] | {"question_id": "q1"}])
    error, _ = _run_report(tmp_path, capsys, answers, refs=refs)
    assert error is not None and "line 2 (question 'q1')" in error
    # a line without a digest (an older file, another tool) is scored
    _write(answers, [{"question_id": "q0", "prompt": "What?", "text": "It is 46 g/mol."}, _answer("q1", "It is 4.")])
    assert _run_report(tmp_path, capsys, answers, refs=refs)[0] is None


# --- 4. metadata fields of another type --------------------------------------------------------------
@pytest.mark.parametrize("metadata, named", [
    ({"capped": "true"}, '`metadata.capped` is a JSON string "true"'),
    ({"capped": 1}, "`metadata.capped` is a JSON number 1"),
    ({"settings": "x"}, "`metadata.settings` is a JSON string"),
    ({"settings_digest": 5}, "`metadata.settings_digest` is a JSON number"),
    ({"asked": ["x"]}, "`metadata.asked` is a JSON array"),
    ({"asked": {"smiles": 1}}, "`metadata.asked` holds a value that is not a string"),
    ("x", '`metadata` is a JSON string "x"'),
])
def test_report_refuses_metadata_fields_of_another_type(tmp_path, capsys, metadata, named):
    answers = _write(tmp_path / "a.jsonl", [{"question_id": "q0", "prompt": "What?", "text": "It is 46."},
                                            {"question_id": "q1", "prompt": "What?", "text": "It is 4",
                                             "metadata": metadata}])
    error, _ = _run_report(tmp_path, capsys, answers, refs=_refs(tmp_path))
    assert error is not None and f"{answers}, line 2 (question 'q1'): {named}" in error


# --- 5. --resume and an unreadable line -----------------------------------------------------------
def test_resume_names_the_answer_lines_it_cannot_read(tmp_path, capsys):
    from deepmolm_plugin.eval.resume import answer_lines

    path = tmp_path / "a.jsonl"
    good = [json.dumps({"question_id": f"q{i}", "text": "x"}).encode() for i in range(3)]
    path.write_bytes(b"\n".join([good[0], good[1][:20], b'{"question_id": "q9", "text": "\xff"}', good[2]]) + b"\n")
    assert [line["question_id"] for line in answer_lines(path)] == ["q0", "q2"]
    err = capsys.readouterr().err
    assert f"note: {path}: line(s) 2, 3 of 4" in err and "damaged" in err and "asked again" in err
    path.write_bytes(good[0] + b"\n" + good[1][:20])  # a run killed while writing its last line
    assert len(answer_lines(path)) == 1
    assert "line(s) 2 of 2" in capsys.readouterr().err


# --- 6. figures: glyphs and their files ----------------------------------------------------------
def test_titles_no_font_can_draw_are_escaped_and_noted(tmp_path, monkeypatch, capsys):
    from deepmolm_plugin import plots as draw

    monkeypatch.setattr(draw, "_font_having", lambda characters: None, raising=False)  # no CJK font here
    fig, (ax,) = draw.panels(1, figsize=(3, 3))
    ax.set_title("分子量: MAE 1")
    draw.save(fig, tmp_path / "p.png", 50)
    assert ax.get_title() == "\\u5206\\u5b50\\u91cf: MAE 1"
    err = capsys.readouterr().err
    assert "no installed font draws '分', '子', '量'" in err and "p.png" in err


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # the stub font has none
def test_a_font_that_has_the_glyphs_draws_them(tmp_path, monkeypatch):
    from deepmolm_plugin import plots as draw

    monkeypatch.setattr(draw, "_font_having", lambda characters: "DejaVu Serif", raising=False)
    fig, (ax,) = draw.panels(1, figsize=(3, 3))
    ax.set_title("分子量")
    draw.save(fig, tmp_path / "p.png", 50)
    assert ax.get_title() == "分子量" and "DejaVu Serif" in ax.title.get_fontfamily()


def test_metrics_json_names_each_tasks_plot(tmp_path, capsys):
    refs = _write(tmp_path / "q.jsonl", [{"question_id": f"t{i}", "text": "Q?", "answer": f"The value is {v}.",
                                          "task": t, "properties": {t: v}}
                                         for i, (t, v) in enumerate([("分子量", 100.0), ("溶解度", 1.0)])])
    answers = _write(tmp_path / "a.jsonl", [{"question_id": f"t{i}", "prompt": "Q?", "text": "It is 2.0"}
                                            for i in range(2)])
    assert _run_report(tmp_path, capsys, answers, refs=refs, plots=True)[0] is None
    plots = json.loads((tmp_path / "out" / "metrics.json").read_text())["task_plots"]
    assert set(plots) == {"分子量", "溶解度"} and len(set(plots.values())) == 2
    assert all((tmp_path / "out" / p).is_file() for p in plots.values())


# --- 7. refusals that name file and line ---------------------------------------------------------
@pytest.mark.parametrize("answer, said", [(["The MW is 46."], "is a list of 1"), (46.07, "is float 46.07")])
def test_reference_answer_refusals_name_the_file_and_line(tmp_path, capsys, answer, said):
    refs = _refs(tmp_path)
    lines = [json.loads(line) for line in refs.read_text().splitlines()]
    lines[1]["answer"] = answer
    _write(refs, lines)
    answers = _write(tmp_path / "a.jsonl", [{"question_id": f"q{i}", "prompt": "What?", "text": "It is 46."}
                                            for i in range(2)])
    error, _ = _run_report(tmp_path, capsys, answers, refs=refs)
    assert error is not None and f"{refs}, line 2: question 'q1'" in error and said in error


def test_an_answer_without_settings_is_named_by_file_line_and_id(tmp_path, capsys):
    made = {"settings": {"model": "m"}, "settings_digest": "abc"}
    answers = _write(tmp_path / "a.jsonl", [{"question_id": "q0", "prompt": "What?", "text": "It is 46.", "metadata": made},
                                            {"question_id": "q1", "prompt": "What?", "text": "It is 46."}])
    error, _ = _run_report(tmp_path, capsys, answers, refs=_refs(tmp_path))
    assert error is not None and f"do: {answers}, line 2 (question 'q1') has no `metadata.settings`" in error
