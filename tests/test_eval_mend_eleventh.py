"""Eleventh round, evaluation mended: what the review of the not-asked change found.

- run_eval.sh writes metrics.json and exits 1 when a chunk could not ask some questions; the
  fusion experiment's rerun took that metrics.json as a finished evaluation, then stopped on
  KeyError 'valid' / 'reference_value' / 'mae' reading the not-asked rows and tasks.
- Ctrl-C / SIGTERM removed OUT/.lock at once while the chunks still ran (model_vqa writes its
  <answers>.partial on SIGTERM): a second run_eval.sh could start beside them.
- Without GNU `stat -c` (macOS/BSD) every chunk that finished with questions it could not ask
  counted as failed, and the run stopped with no report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import deepmolm_plugin

import test_hostile_eval_eleventh as eleventh

# the tree whose package is imported (PYTHONPATH=<another tree> tests that one)
TREE = Path(deepmolm_plugin.__file__).resolve().parents[1]


def _rows(out):
    return {r["question_id"]: r for r in map(json.loads, (out / "per_question.jsonl").read_text().splitlines())}


def test_not_asked_rows_and_tasks_carry_the_keys_of_scored_ones_and_the_report_says_incomplete(tmp_path):
    qs, refs, a0, a1 = eleventh._setup(tmp_path)  # 'q2' (Molecular Weight, 60.05) not asked
    out = eleventh._report(tmp_path, [a0, a1], refs)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is False and metrics["counts"]["not_asked"] == 1
    rows = _rows(out)
    scored_keys = set(rows["q0"])
    assert scored_keys - {"not_asked", "reason"} <= set(rows["q2"]), scored_keys - set(rows["q2"])
    assert rows["q2"]["value"] is None and rows["q2"]["valid"] is False
    assert rows["q2"]["reference_value"] == pytest.approx(60.05)
    # a task none of whose questions was asked: its kind's metric keys, no score
    eleventh._write_jsonl(a0, [eleventh._answer(qs[0], "It is 46.07 g/mol.")])
    eleventh._write_jsonl(tmp_path / "answers" / "0.failures.jsonl", [{"question_id": "t0", "reason": "no image"}])
    out = eleventh._report(tmp_path, [a0, a1], refs, out="logp")
    report = json.loads((out / "metrics.json").read_text())
    logp, mw = report["tasks"]["LogP"]["metrics"], report["tasks"]["Molecular Weight"]["metrics"]
    assert set(mw) <= set(logp), set(mw) - set(logp)
    assert logp["mae"] is None and logp["valid_ratio"] is None and logp["n_valid"] == 0 and logp["n_not_asked"] == 1
    # every question asked: complete
    eleventh._write_jsonl(a0, [eleventh._answer(qs[0], "It is 46.07 g/mol."), eleventh._answer(qs[3], "It is 3.")])
    eleventh._write_jsonl(a1, [eleventh._answer(qs[1], "It is 80 g/mol."), eleventh._answer(qs[2], "It is 60 g/mol.")])
    for failures in (tmp_path / "answers").glob("*.failures.jsonl"):
        failures.unlink()
    out = eleventh._report(tmp_path, [a0, a1], refs, out="all")
    assert json.loads((out / "metrics.json").read_text())["complete"] is True


def test_rows_left_out_for_want_of_a_reference_carry_the_kinds_keys_too(tmp_path):
    q = [eleventh._question("q0", 46.07), {**eleventh._question("q1", 1), "answer": "It is not known."}]
    refs = eleventh._write_jsonl(tmp_path / "questions.jsonl", q)
    answers = eleventh._write_jsonl(tmp_path / "a.jsonl", [eleventh._answer(x, "It is 46 g/mol.") for x in q])
    rows = _rows(eleventh._report(tmp_path, [answers], refs))
    assert rows["q1"]["scored"] is False and rows["q1"]["valid"] is False and rows["q1"]["reference_value"] is None
    assert rows["q1"]["value"] == pytest.approx(46.0) and set(rows["q0"]) <= set(rows["q1"]) | {"reason"}


@pytest.mark.parametrize("kind", ["text", "iupac", "property", "smiles"])
def test_a_task_of_no_question_has_every_key_its_table_shows(kind):
    from deepmolm_plugin.eval import scoring
    from deepmolm_plugin.eval.markdown import TABLES

    metrics = scoring.empty_metrics("Molecular Weight" if kind == "property" else "t", kind)
    assert all(key in metrics for _, key in TABLES[kind]) and metrics["n"] == 0


def _fusion(monkeypatch):
    monkeypatch.syspath_prepend(str(TREE / "scripts"))
    sys.modules.pop("experiment_fusion", None)
    import experiment_fusion

    return experiment_fusion


@pytest.mark.parametrize("earlier", [{"complete": False, "counts": {"not_asked": 1}},
                                     {"counts": {"not_asked": 1}}])  # a report from before `complete`
def test_fusion_evaluate_reruns_an_evaluation_whose_report_is_incomplete(tmp_path, monkeypatch, earlier):
    ef = _fusion(monkeypatch)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({**earlier, "tasks": {}}))
    ran = []

    def fake_run(cmd, log, env=None):  # run_eval.sh: this time every question is asked
        ran.append(env.get("RESUME"))
        (out / "metrics.json").write_text(json.dumps({"complete": True, "counts": {"not_asked": 0}, "tasks": {}}))

    monkeypatch.setattr(ef, "run", fake_run)
    assert ef.evaluate(tmp_path / "model", tmp_path / "test.json", out, "cpu")["complete"] is True
    assert ran == ["1"]  # the answers made are kept: only the others are asked (review: all asked again)
    ef.evaluate(tmp_path / "model", tmp_path / "test.json", out, "cpu")  # finished now: not run again
    assert len(ran) == 1


def test_fusion_evaluate_that_still_cannot_ask_names_the_failures_files(tmp_path, monkeypatch):
    ef = _fusion(monkeypatch)
    out = tmp_path / "eval"
    (out / "answers").mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"complete": False, "counts": {"not_asked": 1}, "tasks": {}}))
    (out / "answers" / "0.failures.jsonl").write_text('{"question_id": "q1", "reason": "bad"}\n')

    def fails_again(cmd, log, env=None):  # run_eval.sh: the same question cannot be asked, exit 1
        raise SystemExit("error: command failed (1), log ...")

    monkeypatch.setattr(ef, "run", fails_again)
    with pytest.raises(SystemExit, match=r"model_vqa could not ask some questions, listed in .*0\.failures\.jsonl"):
        ef.evaluate(tmp_path / "model", tmp_path / "test.json", out, "cpu")


# --------------------------------------------------------------------------- run_eval.sh


# A chunk that takes a while to end on SIGTERM, as model_vqa writing <answers>.partial:
# after TERM it sleeps FAKE_TERM_S seconds, then writes the .partial and exits 1.
SLOW_VQA = r'''
import os, signal, sys, time
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
def on_term(*_):
    time.sleep(float(os.environ["FAKE_TERM_S"]))
    open(a["--answers-file"] + ".partial", "w").write("written after SIGTERM\n")
    sys.exit(1)
signal.signal(signal.SIGTERM, on_term)
open(os.environ["FAKE_STARTED"], "w").close()
time.sleep(120)
'''


def _start_slow_run(tmp_path, out, **extra):
    python = eleventh._fake_python(tmp_path, SLOW_VQA, "slow_vqa")
    started = tmp_path / "started"
    env = {**eleventh._env(tmp_path), "PYTHON": str(python), "FAKE_STARTED": str(started), **extra}
    run = subprocess.Popen(["bash", str(eleventh.SCRIPT), str(tmp_path), str(eleventh._data(tmp_path)), str(out), "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(600):
        if started.exists():
            break
        time.sleep(0.05)
    assert started.exists(), run.stderr.read() if run.poll() is not None else "the chunk did not start"
    return run


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 130), (signal.SIGHUP, 129)])
def test_run_eval_stopped_waits_for_its_chunk_before_removing_the_lock(tmp_path, sig, status):
    # SIGHUP (a closed terminal or ssh session; review): the EXIT trap removed the lock at once
    out = tmp_path / "out"
    run = _start_slow_run(tmp_path, out, FAKE_TERM_S="1.5")
    run.send_signal(sig)
    _, err = run.communicate(timeout=60)
    assert run.returncode == status, err
    # the chunk's last write happened before run_eval.sh ended and gave up OUT
    assert (out / "answers" / "0.jsonl.partial").exists() and not (out / ".lock").exists()


def test_run_eval_leaves_the_lock_of_a_chunk_that_does_not_end(tmp_path):
    out = tmp_path / "out"
    run = _start_slow_run(tmp_path, out, FAKE_TERM_S="4", STOP_WAIT="1")
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130
    assert "still run 1 s after SIGTERM" in err and f"{out}/.lock is left in place" in err
    assert (out / ".lock").exists()
    chunk = err.split("pid(s) ", 1)[1].split()[0]
    # the chunk still holds the lock: a second run is refused, naming the chunk (review: it named
    # the ended run_eval.sh, a pid no longer there)
    second = eleventh._run_eval(tmp_path, out, eleventh._env(tmp_path))
    assert second.returncode == 2 and f"is writing {out} (pid {chunk})" in second.stderr, second.stderr
    for _ in range(200):  # once the chunk has ended, the next run takes OUT
        if (out / "answers" / "0.jsonl.partial").exists():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    again = eleventh._run_eval(tmp_path, out, eleventh._env(tmp_path))
    assert again.returncode == 0, again.stderr


def _path_without_gnu_stat(tmp_path):
    """A PATH whose `stat` rejects -c (as BSD's), with the tools run_eval.sh uses."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "stat").write_text('#!/bin/sh\necho "stat: illegal option -- c" >&2\nexit 1\n')
    (shim / "stat").chmod(0o755)
    for tool in ["bash", "dirname", "mkdir", "rm", "cp", "head", "tr", "wc", "tail", "nproc", "cat", "sed", "grep",
                 "sleep", "flock"]:
        found = shutil.which(tool)
        if found:
            os.symlink(found, shim / tool)
    return str(shim)


def test_run_eval_without_gnu_stat_scores_the_questions_a_chunk_could_ask(tmp_path):
    out = tmp_path / "out"
    env = eleventh._env(tmp_path, FAKE_MODE="unasked", PATH=_path_without_gnu_stat(tmp_path))
    proc = eleventh._run_eval(tmp_path, out, env)
    assert proc.returncode == 1, proc.stderr
    assert "warning: chunk 1 of 2 could not ask 1 question(s)" in proc.stderr and "failed" not in proc.stderr
    report = json.loads((out / "metrics.json").read_text())
    assert report["counts"]["answers"] == 5 and report["complete"] is False
    assert not (out / ".lock").exists()


def test_run_eval_resumed_tells_a_replaced_answers_file_from_the_earlier_one(tmp_path):
    # model_vqa replaces its answers file whole when its chunk is done (a new inode); a chunk
    # that stopped leaves the earlier file, which must not pass for a finished one
    fake = eleventh.FAKE_VQA.replace('with open(out, "w") as f:', 'with open(out + ".tmp", "w") as f:').replace(
        "sys.exit(1 if fail else 0)", 'os.replace(out + ".tmp", out)\nsys.exit(1 if fail else 0)')
    out = tmp_path / "out"
    env = eleventh._env(tmp_path, FAKE_MODE="unasked", PATH=_path_without_gnu_stat(tmp_path))
    (tmp_path / "fake_vqa.py").write_text(fake)  # over the stand-in _env wrote
    assert eleventh._run_eval(tmp_path, out, env).returncode == 1  # answers/1.jsonl and 1.failures.jsonl
    resumed = eleventh._run_eval(tmp_path, out, {**env, "RESUME": "1"})
    assert resumed.returncode == 1 and "could not ask 1 question(s)" in resumed.stderr, resumed.stderr
    assert (out / "metrics.json").exists()
    stopped = eleventh._run_eval(tmp_path, out, {**env, "RESUME": "1", "FAKE_MODE": "crash"})
    assert stopped.returncode == 1 and "error: chunk 1 of 2 failed" in stopped.stderr, stopped.stderr
    assert not (out / "metrics.json").exists()
