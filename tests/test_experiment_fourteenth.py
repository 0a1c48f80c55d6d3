"""experiment_fusion and the demo, fourteenth sweep.

What was wrong -> what happens now:
- "fusion beats X by > 2 SE" said yes for any gap between arms that give the same
  difference in every seed (deterministic baselines, constant answers: SE 0), and 2 SE over
  3 seeds is a one-sided p ~ 0.09 -> a one-sided paired t-test at p < 0.05 (t critical value
  for the seeds), stated above the table; "not decidable" where there is no spread.
- the shipped experiment_fusion.md predated the current report (no per-seed table, no
  training precision) -> `--from-json FILE` writes the markdown and plots again from a
  results file; the shipped report is what the code writes from the shipped JSON.
- an evaluation stopped midway was asked again from the start: RESUME was set only when an
  incomplete metrics.json was there -> resumed whenever the folder holds earlier answers.
- the wall time of a results file did not say whether it covered parts done in an earlier
  start -> the report says over how many starts, every part included (or that an older file
  does not).
- the data folder was fixed -> --data-dir, named in the missing-file error.
- the training progress line read the last tqdm bar ("Writing model shards 1/1") -> the
  Trainer's own (unlabelled) bar.
- the bar plot drew zero-height error bars and no seed's value; the parity plot pooled the
  seeds -> a dot per seed, an error bar only where seeds differ; a colour and legend per seed.
- the demo trained on geraniol while nerol (its E/Z isomer: the same MW and TPSA, the scored
  answers) was held out -> a training molecule that is a held-out one up to stereo is left out
  (FreeSolv and the solubility SDF, one rule), and the count said.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest

import deepmolm_plugin

# the scripts beside the deepmolm_plugin imported (PYTHONPATH=<another tree> tests that tree's)
TREE = Path(deepmolm_plugin.__file__).resolve().parents[1]
sys.path.insert(0, str(TREE / "scripts"))

import experiment_fusion as ef  # noqa: E402

from deepmolm_plugin import plots as draw  # noqa: E402

ARMS = ("fusion", "image_only", "fusion_shuffled_fp", "mean_baseline", "median_baseline", "classical")


def _results(maes: dict, seeds=(0, 1, 2)) -> dict:
    """A results dict for target "t1": `maes` {arm: per-seed MAE} (an arm not given: 1.0 each seed)."""
    n = len(seeds)
    arms = {a: {"mae": {"t1": list(maes.get(a, [1.0] * n))}, "valid_ratio": {"t1": [1.0] * n},
                "distinct_answers": {"t1": [0.5] * n}} for a in ARMS}
    return {"schema": ef.SCHEMA, "quick": False, "command": "c", "machine": "m", "seeds": list(seeds),
            "targets": ["t1"], "data": {"molecules": 3, "split": {"sizes": {}}},
            "timings_s": {"data": 5.0, "total": 10.0}, "settings": {"precision": "fp32"}, "arms": arms}


def _verdict(results: dict, monkeypatch) -> dict:
    monkeypatch.setitem(ef.TARGET_KIND, "t1", "kind")
    comparisons = (("fusion", "mean_baseline"), ("fusion", "median_baseline"), ("fusion", "image_only"),
                   ("fusion_shuffled_fp", "fusion"), ("image_only", "mean_baseline"), ("fusion", "classical"))
    results["paired"] = {f"{a}-{b}": ef.paired(results, a, b) for a, b in comparisons}
    results["verdict"] = ef.verdict(results)
    return results["verdict"]["t1"]


def _beats(checks: dict, arm: str):
    (value,) = [v for k, v in checks.items() if k.startswith(f"fusion beats {arm}")]
    return value


# --- 1. the verdict's test


def test_a_gap_without_spread_over_seeds_is_not_a_win(monkeypatch):
    # the shipped heavy atom count: fusion-median = -0.315 in every seed, SE 0 -> "yes"
    checks = _verdict(_results({"fusion": [6.825] * 3, "median_baseline": [7.140] * 3,
                                "mean_baseline": [6.826] * 3}), monkeypatch)
    for arm in ("median_baseline", "mean_baseline"):
        assert _beats(checks, arm) is not True
        assert "not decidable" in _beats(checks, arm)
    # a rounding residue of SE 0 (0.1 + 0.1 + 0.1 != 0.3) is no spread either
    checks = _verdict(_results({"fusion": [0.1] * 3, "median_baseline": [0.2] * 3}), monkeypatch)
    assert "not decidable" in _beats(checks, "median_baseline")


def test_beats_takes_the_t_critical_value_for_the_seeds(monkeypatch):
    # mean -0.2, SE 0.0866: 2.31 SE, over 2 (was: yes) but under t(0.95, 2) = 2.92
    checks = _verdict(_results({"fusion": [0.95, 0.8, 0.65]}), monkeypatch)
    assert _beats(checks, "mean_baseline") is False
    checks = _verdict(_results({"fusion": [0.9, 0.8, 0.7]}), monkeypatch)  # 3.46 SE
    assert _beats(checks, "mean_baseline") is True
    results = _results({"fusion": [0.9, 0.8, 0.7]})
    _verdict(results, monkeypatch)
    text = ef.markdown(results)
    assert "one-sided paired t-test over the 3 seeds, p < 0.05" in text and "2.92" in text
    assert "2 SE" not in text


# --- 2. the shipped report, and writing it again from its JSON


def test_the_shipped_report_is_what_the_code_writes_from_the_shipped_json():
    results = json.loads((TREE / "scripts" / "results" / "experiment_fusion.json").read_text())
    shipped = (TREE / "scripts" / "results" / "experiment_fusion.md").read_text()
    assert "Test MAE of each seed" in shipped and "Training precision" in shipped
    assert shipped == ef.markdown(results)


def test_from_json_writes_the_report_and_keeps_the_measurements(tmp_path, capsys):
    path = tmp_path / "experiment_fusion.json"
    shutil.copy(TREE / "scripts" / "results" / "experiment_fusion.json", path)
    before = json.loads(path.read_text())
    ef.experiment(["--from-json", str(path)])
    after = json.loads(path.read_text())
    for key in ("arms", "timings_s", "data", "settings", "seeds", "command", "machine"):
        assert after[key] == before[key], key  # the measurements are not changed
    assert after["paired"] == before["paired"]
    text = (tmp_path / "experiment_fusion.md").read_text()
    assert "Test MAE of each seed" in text and "Training precision: fp32" in text
    assert (tmp_path / "experiment_fusion.png").stat().st_size > 0
    assert "experiment_fusion_parity.png is not drawn again" in capsys.readouterr().err  # no --work: said
    with pytest.raises(SystemExit) as exit_:  # an option it would not use is refused
        ef.experiment(["--from-json", str(path), "--quick"])
    assert exit_.value.code == 2 and "--quick would not be used" in capsys.readouterr().err


# --- 3. an evaluation stopped midway


@pytest.mark.parametrize("left", ["0.jsonl.partial", ".0.jsonl.partial-4242", "0.jsonl", "earlier/1/0.jsonl"])
def test_an_evaluation_stopped_midway_keeps_its_answers(tmp_path, monkeypatch, left):
    stopped, fresh = tmp_path / "eval" / "test-checkpoint-3", tmp_path / "eval" / "valid-checkpoint-3"
    (stopped / "answers" / left).parent.mkdir(parents=True)
    (stopped / "answers" / left).write_text('{"question_id": "q1", "text": "1"}\n')  # no metrics.json: killed
    seen = {}

    def fake_run(cmd, log, env=None):  # run_eval.sh MODEL DATA OUT
        out = Path(cmd[4])
        seen[out] = env
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"complete": True, "tasks": {}}))

    monkeypatch.setattr(ef, "run", fake_run)
    ef.evaluate(tmp_path / "model", tmp_path / "test.json", stopped, "cpu")
    ef.evaluate(tmp_path / "model", tmp_path / "valid.json", fresh, "cpu")
    assert seen[stopped].get("RESUME") == "1"  # was: unset, and run_eval.sh deleted the answers
    assert "RESUME" not in seen[fresh]  # nothing earlier: a plain run


# --- 4. the wall time over every start


def test_the_report_says_its_total_covers_every_start(tmp_path, monkeypatch):
    path = tmp_path / "timings.json"
    first = ef.Clock(path)
    with first.part("data"):
        pass
    first.report()
    resumed = ef.Clock(path)  # a second start of the command: the data part is found done
    assert resumed.starts == 2
    results = _results({})
    _verdict(results, monkeypatch)
    results["starts"] = resumed.starts
    assert "over 2 starts of the command, every part included" in ef.markdown(results)
    del results["starts"]  # a results file from before: the report does not claim a total it has not
    assert "as recorded" in ef.markdown(results)


# --- 5. --data-dir


def test_the_data_folder_is_an_option_named_in_its_error(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    assert ef.build_parser().get_default("data_dir") == str(ef.SHARED_DATA)
    with pytest.raises(SystemExit) as exit_:
        ef.experiment(["--quick", "--data-dir", str(empty), "--work", str(tmp_path / "w"),
                       "--out", str(tmp_path / "o")])
    message = str(exit_.value.code) + capsys.readouterr().err
    assert f"{empty / 'delaney-processed.csv'} is missing" in message and "--data-dir" in message


# --- 6. the training progress line


def test_progress_reads_the_trainers_bar_not_a_labelled_one(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("$ train\nLoading weights: 100%|##########| 27/27 [00:00<00:00]\n"
                   "  0%|          | 0/3 [00:00<?, ?it/s]\r 33%|###3      | 1/3 [00:06<00:13]\r"
                   "100%|##########| 3/3 [00:20<00:00,  7.23s/it]\n{'train_runtime': '20.82', 'train_loss': '5.737'}\n"
                   "Writing model shards:   0%|          | 0/1 [00:00<?, ?it/s]\r"
                   "Writing model shards: 100%|##########| 1/1 [00:00<00:00, 282.25it/s]\n")
    assert ef.training_progress(log, "train fusion seed 0") == "    train fusion seed 0: step 3/3"  # was 1/1


# --- 7. the plots


def _figures(monkeypatch) -> list:
    """The axes of every figure `plots` saves, captured just before saving."""
    seen = []
    save = draw.save
    monkeypatch.setattr(draw, "save", lambda fig, path, dpi: seen.append(fig.axes) or save(fig, path, dpi))
    return seen


def test_bars_show_each_seed_and_an_error_bar_only_where_seeds_differ(tmp_path, monkeypatch):
    from matplotlib.collections import PathCollection
    from matplotlib.container import ErrorbarContainer

    results = _results({"fusion": [0.9, 0.8, 0.7], "image_only": [1.0, 1.2, 1.1]})  # the others: no spread
    _verdict(results, monkeypatch)
    seen = _figures(monkeypatch)
    ef.plots(results, tmp_path / "exp", {})
    (bar_ax,) = seen[0]
    dots = [c for c in bar_ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == 3 * len(ARMS)  # was: no seed drawn
    errors = [c for c in bar_ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(errors) == 2  # fusion and image_only (was: one for every arm, 0 high for the baselines)


def test_parity_has_a_colour_and_legend_entry_per_seed(tmp_path, monkeypatch):
    results = _results({})
    _verdict(results, monkeypatch)
    seen = _figures(monkeypatch)
    rows = {"t1": [{"reference_value": float(i), "value": 1.0 + seed, "valid": True, "seed": seed}
                   for seed in (0, 1) for i in range(4)]}
    ef.plots(results, tmp_path / "exp", rows)
    (parity_ax,) = seen[1]
    legend = parity_ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["seed 0", "seed 1"]


# --- 8. the demo's held-out molecules


def test_no_training_molecule_is_a_held_out_one_up_to_stereo(tmp_path, capsys):
    from rdkit import Chem

    from deepmolm_plugin import demo

    flat = lambda smiles: Chem.MolToSmiles(Chem.MolFromSmiles(smiles), isomericSmiles=False)  # noqa: E731
    records, held_out, _ = demo.build_records(tmp_path, 400, 16, 0)
    held = {flat(row["smiles"]) for row in held_out}
    trained = {flat(r["smiles"]) for r in records}
    assert not held & trained  # was: geraniol trained, nerol (2Z) held out
    assert "1 FreeSolv and 7 solubility SDF molecule(s)" in capsys.readouterr().out
