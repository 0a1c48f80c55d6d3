"""Does it learn? The fusion experiment's plumbing (scripts/experiment_fusion.py --quick) and
the baselines it is compared with (deepmolm_plugin.eval.baselines). The numbers themselves
come from the full run, a benchmark, not from the suite."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from host_fixtures import ROOT

from deepmolm_plugin.eval.baselines import BaselineError, mean_baseline, score_answers, task_means, task_medians
from deepmolm_plugin.eval.questions import convert


def _record(rid, task, answer, smiles="CCO"):
    return {"id": rid, "smiles": smiles, "task": task, "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": answer}]}


def test_mean_baseline_is_the_training_mean_scored_by_the_report(tmp_path):
    train = [_record("a", "Molecular Weight", "The molecular weight is 40.0 g/mol."),
             _record("b", "Molecular Weight", "The molecular weight is 60.0 g/mol."),
             _record("c", "property:heavy atom count", "The heavy atom count is 3."),
             _record("d", "description", "An alcohol.")]  # not a property: no mean
    means = task_means(train)
    assert means == {"Molecular Weight": 50.0, "property:heavy atom count": 3.0}
    skewed = train + [_record("e", "Molecular Weight", "The molecular weight is 200.0 g/mol.")]
    assert task_medians(skewed)["Molecular Weight"] == 60.0 and task_means(skewed)["Molecular Weight"] == 100.0
    test = [_record("t1", "Molecular Weight", "The molecular weight is 46.0 g/mol."),
            _record("t2", "Molecular Weight", "The molecular weight is 78.0 g/mol."),
            _record("t3", "property:heavy atom count", "The heavy atom count is 6.")]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in convert(test, tmp_path)))
    answers = mean_baseline(convert(test, tmp_path), means)
    report = score_answers(answers, questions, tmp_path / "out")
    mw = report["tasks"]["Molecular Weight"]["metrics"]
    assert mw["mae"] == pytest.approx((4.0 + 28.0) / 2) and mw["valid_ratio"] == 100.0
    assert report["tasks"]["property:heavy atom count"]["metrics"]["mae"] == pytest.approx(3.0)
    tiny = mean_baseline([{"question_id": "x", "task": "LogP"}], {"LogP": 1.25e-05})
    assert tiny == {"x": "1.25e-05"}  # was "0.0000"
    with pytest.raises(BaselineError, match="no property question"):
        task_means([train[-1]])
    with pytest.raises(BaselineError, match="not in"):
        score_answers({"nope": "1"}, questions, tmp_path / "bad")


def test_quick_experiment_reports_every_arm_and_target(tmp_path):
    out, work = tmp_path / "results", tmp_path / "work"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "experiment_fusion.py"), "--quick",
                           "--out", str(out), "--work", str(work)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads((out / "experiment_fusion_quick.json").read_text())
    targets = ["log solubility", "radius of gyration", "heavy atom count"]
    assert result["targets"] == targets and result["seeds"] == [0]
    assert set(result["arms"]) == {"fusion", "image_only", "fusion_shuffled_fp", "mean_baseline", "median_baseline",
                                   "classical"}
    for arm, entry in result["arms"].items():
        for key in ("mae", "valid_ratio"):
            assert set(entry[key]) == set(targets), (arm, key)
            assert all(len(v) == 1 for v in entry[key].values()), (arm, key)
    # the two references that are not LLMs always give a number for every test question
    for arm in ("mean_baseline", "median_baseline", "classical"):
        assert all(v == [1.0] for v in result["arms"][arm]["valid_ratio"].values())
    split = result["data"]["split"]
    assert sum(split["sizes"].values()) == result["data"]["molecules"] == result["data"]["conformers_checked"]
    assert not set(split["ids"]["train"]) & set(split["ids"]["test"])
    for name in ("experiment_fusion_quick.md", "experiment_fusion_quick.png", "experiment_fusion_quick_parity.png"):
        assert (out / name).stat().st_size > 0
    # a rerun resumes: nothing is retrained, the same numbers come out
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "experiment_fusion.py"), "--quick",
                            "--out", str(out), "--work", str(work)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    assert json.loads((out / "experiment_fusion_quick.json").read_text())["arms"] == result["arms"]


def test_a_rerun_that_selects_another_checkpoint_scores_that_one(tmp_path, monkeypatch):
    # was: the test scores sat in one `eval/test` folder whatever checkpoint they came from: a
    # rerun with another --select-last picked checkpoint-2 and reported checkpoint-1's test MAE
    import types
    from pathlib import Path

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import experiment_fusion as ef

    run_dir = tmp_path / "work" / "runs" / "image_only-seed0"
    for name in ("checkpoint-1", "checkpoint-2"):
        (run_dir / "checkpoints" / name).mkdir(parents=True)
    (run_dir / "done").write_text("ok")  # trained already
    task = ef.PROPERTY_PREFIX + "heavy atom count"
    mae = {"checkpoint-1": 1.0, "checkpoint-2": 5.0}  # checkpoint-1 is better on valid and on test

    def fake_eval(cmd, log, env=None):  # run_eval.sh MODEL DATA OUT: the report of that checkpoint
        model, out = Path(cmd[2]), Path(cmd[4])
        out.mkdir(parents=True, exist_ok=True)
        answer = {"task": task, "reference_value": 10.0, "value": 10.0 + mae[model.name], "valid": True}
        (out / "per_question.jsonl").write_text(json.dumps(answer) + "\n")
        (out / "metrics.json").write_text(json.dumps({"tasks": {task: {"metrics": {
            "mae": mae[model.name], "valid_ratio": 100.0}}}}))

    monkeypatch.setattr(ef, "run", fake_eval)
    for select_last, expected in ((2, "checkpoint-1"), (1, "checkpoint-2")):
        args = types.SimpleNamespace(work=str(tmp_path / "work"), device="cpu", select_last=select_last)
        result = ef.run_unit("image_only", 0, args, {}, tmp_path / "prepared", {"heavy atom count": 10.0},
                             {"heavy atom count": 3.0}, ef.Clock())
        assert result["selected"]["checkpoint"] == expected
        assert result["test"]["heavy atom count"][0] == mae[expected]
