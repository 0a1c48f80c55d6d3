"""Eleventh round, evaluation: questions model_vqa could not ask, and one writer per output.

- One question model_vqa could not ask (listed in `<answers stem>.failures.jsonl`) made the
  report refuse the merge ("2 question(s) have no answer in any shard"): no score at all, and
  run_eval.sh stopped at that chunk. Now they are counted as not asked and the others scored.
- Two run_eval.sh runs into one OUT mixed their questions and answers, both exit 0; two
  model_vqa runs on one answers file and two reports into one --out were not refused either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from pathlib import Path

import pytest

import deepmolm_plugin

# the script of the tree whose package is imported (PYTHONPATH=<another tree> tests that one)
SCRIPT = Path(deepmolm_plugin.__file__).resolve().parents[1] / "scripts" / "eval" / "run_eval.sh"
MW = "What is the molecular weight of this molecule?"


def _question(qid, value, task="Molecular Weight"):
    return {"question_id": qid, "text": MW, "task": task, "answer": f"The molecular weight is {value} g/mol."}


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _answer(question, text):
    return {"question_id": question["question_id"], "prompt": question["text"], "text": text, "model_id": "m"}


def _report(tmp_path, answers, references, out="rep"):
    from deepmolm_plugin.eval import report

    report.main([*map(str, answers), "--references", str(references), "--out", str(tmp_path / out), "--no-plots"])
    return tmp_path / out


def _setup(tmp_path):
    """Four questions of two tasks; chunk 1 could not ask 'q2' (its failures file)."""
    qs = [_question("q0", 46.07), _question("q1", 78.11), _question("q2", 60.05), _question("t0", 30.0, "LogP")]
    refs = _write_jsonl(tmp_path / "questions.jsonl", qs)
    a0 = _write_jsonl(tmp_path / "answers" / "0.jsonl", [_answer(qs[0], "It is 46.07 g/mol."),
                                                        _answer(qs[3], "The LogP is 31.0.")])
    a1 = _write_jsonl(tmp_path / "answers" / "1.jsonl", [_answer(qs[1], "It is 80.11 g/mol.")])
    _write_jsonl(tmp_path / "answers" / "1.failures.jsonl", [{"question_id": "q2", "reason": "bad molecule X"}])
    return qs, refs, a0, a1


def test_report_scores_the_answered_and_counts_the_questions_not_asked(tmp_path, capsys):
    _, refs, a0, a1 = _setup(tmp_path)
    out = _report(tmp_path, [a0, a1], refs)  # no SystemExit: exit status 0
    err = capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["not_asked"] == 1 and metrics["counts"]["questions"] == 4
    assert metrics["inputs"]["failures"] == [str(tmp_path / "answers" / "1.failures.jsonl")]
    mw = metrics["tasks"]["Molecular Weight"]
    assert mw["n"] == 2 and mw["metrics"]["n_not_asked"] == 1 and mw["metrics"]["mae"] == pytest.approx(1.0)
    assert metrics["tasks"]["LogP"]["metrics"]["n_not_asked"] == 0
    rows = {r["question_id"]: r for r in map(json.loads, (out / "per_question.jsonl").read_text().splitlines())}
    assert rows["q2"]["scored"] is False and rows["q2"]["not_asked"] is True and rows["q2"]["prediction"] is None
    assert "bad molecule X" in rows["q2"]["reason"] and "1.failures.jsonl" in rows["q2"]["reason"]
    assert rows["q0"]["scored"] is True
    md = (out / "metrics.md").read_text()
    assert "Not asked, 1 question(s) model_vqa could not ask" in md and "Molecular Weight: 1" in md
    assert "warning: 1 question(s) could not be asked by model_vqa and are not scored" in err and "'q2'" in err


def test_report_still_refuses_a_question_with_neither_answer_nor_failure(tmp_path):
    qs, refs, a0, a1 = _setup(tmp_path)
    _write_jsonl(refs, [*qs, _question("q9", 1.0)])  # a chunk that did not run, or was stopped
    with pytest.raises(SystemExit) as e:
        _report(tmp_path, [a0, a1], refs)
    assert "1 question(s) have no answer in any shard and are in no failures file" in str(e.value)
    assert "'q9'" in str(e.value) and not (tmp_path / "rep" / "metrics.json").exists()


def test_report_refuses_failures_of_another_run(tmp_path):
    qs, refs, a0, a1 = _setup(tmp_path)
    # a failures entry for an answered question, and one for a question not in the references
    _write_jsonl(tmp_path / "answers" / "0.failures.jsonl", [{"question_id": "q0", "reason": "r"},
                                                             {"question_id": "zz", "reason": "r"}])
    with pytest.raises(SystemExit) as e:
        _report(tmp_path, [a0, a1], refs)
    assert "1 question(s) are answered and also listed as not asked" in str(e.value)
    assert "1 question(s) in the failures file(s) are not in the references" in str(e.value)


def test_task_of_no_question_asked_is_not_scored_and_all_unasked_is_an_error(tmp_path, capsys):
    qs, refs, a0, a1 = _setup(tmp_path)
    _write_jsonl(a0, [_answer(qs[0], "It is 46.07 g/mol.")])  # LogP's only question not asked
    _write_jsonl(tmp_path / "answers" / "0.failures.jsonl", [{"question_id": "t0", "reason": "no image"}])
    out = _report(tmp_path, [a0, a1], refs)
    logp = json.loads((out / "metrics.json").read_text())["tasks"]["LogP"]
    assert logp["n"] == 0 and logp["metrics"]["n_not_asked"] == 1 and "could be asked" in logp["not_scored"]
    assert "task 'LogP' is not scored (n=0)" in capsys.readouterr().err
    _write_jsonl(a0, [])
    _write_jsonl(a1, [])
    _write_jsonl(tmp_path / "answers" / "1.failures.jsonl", [{"question_id": q, "reason": "r"} for q in ("q0", "q1", "q2")])
    with pytest.raises(SystemExit) as e:
        _report(tmp_path, [a0, a1], refs, out="none")
    assert "no task is left to report" in str(e.value)


def test_report_refuses_an_out_another_report_holds(tmp_path, capsys):
    from deepmolm_plugin import output_lock

    _, refs, a0, a1 = _setup(tmp_path)
    lock = output_lock.hold(output_lock.folder_lock(tmp_path / "rep", "test"))
    try:
        with pytest.raises(SystemExit) as e:
            _report(tmp_path, [a0, a1], refs)
    finally:
        lock.release()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"python -m deepmolm_plugin.eval.report: error: another eval.report (or run_eval.sh) is writing "
                   f"{tmp_path / 'rep'} (pid {os.getpid()})")
    assert not (tmp_path / "rep" / "metrics.json").exists()
    _report(tmp_path, [a0, a1], refs)  # released: the report runs, and leaves no lock file
    assert (tmp_path / "rep" / "metrics.json").exists() and not (tmp_path / "rep" / ".lock").exists()


def test_model_vqa_refuses_an_answers_file_another_run_writes(tmp_path, capsys):
    from deepmolm_plugin import output_lock
    from deepmolm_plugin.eval import model_vqa

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    questions = _write_jsonl(tmp_path / "q.jsonl", [_question("q0", 46.07)])
    answers = tmp_path / "ans" / "0.jsonl"
    lock = output_lock.hold(output_lock.file_lock(answers, "test"))
    try:
        with pytest.raises(SystemExit) as e:
            model_vqa.main(["--model-path", str(model), "--question-file", str(questions), "--answers-file",
                            str(answers)])
    finally:
        lock.release()
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"error: another model_vqa is writing {answers} (pid {os.getpid()})")


# A stand-in for model_vqa (the real questions and report run): chunk 1 of FAKE_MODE
# "unasked" answers all but its first question, listed as failed, and exits 1 as model_vqa
# does; "crash" writes the failures file and no answers (a run that stopped); "wait" waits
# for the file FAKE_GO, then answers everything.
FAKE_VQA = r'''
import json, os, sys, time
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
qs = [json.loads(l) for l in open(a["--question-file"])]
n, i = int(a["--num-chunks"]), int(a["--chunk-idx"])
mine = qs[i::n]
mode = os.environ.get("FAKE_MODE", "") if i == 1 else ""
if mode == "wait":
    for _ in range(600):
        if os.path.exists(os.environ["FAKE_GO"]):
            break
        time.sleep(0.1)
out = a["--answers-file"]
fail = open(out[:-len(".jsonl")] + ".failures.jsonl", "w") if mode in ("unasked", "crash") else None
if fail:
    fail.write(json.dumps({"question_id": mine[0]["question_id"], "reason": "bad molecule"}) + "\n")
    fail.close()
    if mode == "crash":
        sys.exit(1)
    mine = mine[1:]
with open(out, "w") as f:
    for q in mine:
        f.write(json.dumps({"question_id": q["question_id"], "prompt": q["text"], "text": q["answer"],
                            "model_id": "m"}) + "\n")
sys.exit(1 if fail else 0)
'''


def _fake_python(tmp_path, script=FAKE_VQA, name="fake_vqa"):
    """A `python` for run_eval.sh's PYTHON that runs `script` in model_vqa's place, the rest as is."""
    (tmp_path / f"{name}.py").write_text(script)
    fake = tmp_path / f"{name}_python"
    fake.write_text(f"""#!/bin/bash
if [[ $2 == deepmolm_plugin.eval.model_vqa ]]; then shift 2; exec {sys.executable} {tmp_path / f'{name}.py'} "$@"; fi
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    return fake


def _data(tmp_path, n=6):
    data = [{"id": f"r{i}", "smiles": "CCO", "task": "Molecular Weight", "properties": {"Molecular Weight": 46.07},
             "conversations": [{"from": "human", "value": f"<image>\n{MW}"},
                               {"from": "gpt", "value": "The molecular weight is 46.07 g/mol."}]} for i in range(n)]
    path = tmp_path / "data" / "test.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _env(tmp_path, **extra):
    env = {**os.environ, "PYTHON": str(_fake_python(tmp_path)), "REPORT_ARGS": "--no-plots", **extra}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("DEEPMOLM_OUTPUT_LOCK_FD", None)
    return env


def _run_eval(tmp_path, out, env, chunks=2):
    return subprocess.run(["bash", str(SCRIPT), str(tmp_path), str(_data(tmp_path)), str(out), str(chunks)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_run_eval_scores_the_other_questions_when_a_chunk_could_not_ask_some(tmp_path):
    out = tmp_path / "out"
    proc = _run_eval(tmp_path, out, _env(tmp_path, FAKE_MODE="unasked"))
    assert proc.returncode == 1, proc.stderr
    assert "warning: chunk 1 of 2 could not ask 1 question(s)" in proc.stderr
    assert "error: chunk(s) 1 could not ask some questions" in proc.stderr.splitlines()[-1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["answers"] == 5 and metrics["counts"]["not_asked"] == 1
    assert not (out / ".lock").exists()
    # a chunk that did not finish (no answers file, a failures file) still stops the run
    proc = _run_eval(tmp_path, out, _env(tmp_path, FAKE_MODE="crash"))
    assert proc.returncode == 1 and "error: chunk 1 of 2 failed" in proc.stderr
    assert not (out / "metrics.json").exists()


def test_run_eval_refuses_an_out_another_run_holds(tmp_path):
    from deepmolm_plugin import output_lock

    out = tmp_path / "out"
    lock = output_lock.hold(output_lock.folder_lock(out, "test"))  # a Python tool's lock: the same file
    try:
        proc = _run_eval(tmp_path, out, _env(tmp_path))
    finally:
        lock.release()
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: another run_eval.sh (or eval.report) is writing {out} (pid {os.getpid()})"
    assert not (out / "questions.jsonl").exists()
    # two run_eval.sh runs: the second is refused while the first waits in its chunks
    go = tmp_path / "go"
    env = _env(tmp_path, FAKE_MODE="wait", FAKE_GO=str(go))
    first = subprocess.Popen(["bash", str(SCRIPT), str(tmp_path), str(_data(tmp_path)), str(out), "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(300):  # until the first run's chunks are running
            if (out / "logs" / "chunk-1.log").exists():
                break
            time.sleep(0.1)
        second = _run_eval(tmp_path, out, _env(tmp_path))
        assert second.returncode == 2 and f"is writing {out} (pid {first.pid})" in second.stderr
    finally:
        go.write_text("")
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads((out / "metrics.json").read_text())["counts"]["answers"] == 6
    assert not (out / ".lock").exists()
