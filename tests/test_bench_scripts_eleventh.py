"""The user-run scripts, eleventh sweep (scripts/bench_report.py, experiment_fusion.py, bench_prepare.py).

What was wrong -> what happens now:
- bench_report.run_jobs: a unit that failed did not stop the queue: its thread took the next
  unit before the main thread could cancel it (with --jobs 1 a whole training more, waited
  for before the error showed) -> a failure sets the same stop flag Ctrl-C does.
- experiment_fusion --seeds 4294967296 failed in the trainer after the dataset, prepare and
  the baselines were built -> refused up front with the trainer's bound, one line, exit 2.
- an arm with no valid answer: an empty bar (read as MAE 0, the best), an empty parity frame,
  `nan (0.00)` in the main table; one seed without an MAE made the arm's mean NaN and hid the
  other seeds -> "n/a" / "no valid answer(s)" written, means over the seeds that have one,
  "k of n seeds" where some have none.
- the report's "Command:" could not be pasted back with a path holding a space -> shlex.join.
- bench_prepare's "molecules/s" counted failed items -> items/s and records/s, failures named.
"""

import json
import shlex
import sys
import threading

import pytest

from host_fixtures import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import bench_prepare  # noqa: E402
import bench_report  # noqa: E402
import experiment_fusion  # noqa: E402

from deepmolm_plugin import plots as draw  # noqa: E402

# --- 2. a failed unit starts no queued unit


def test_a_failed_unit_starts_no_queued_unit_with_one_job(monkeypatch):
    # the tester's case: --jobs 1, the fusion training failed, image_only was started anyway
    started = []

    def unit(arm, seed, *rest):
        started.append((arm, seed))
        raise SystemExit("error: command failed (2), log train.log")

    monkeypatch.setattr(experiment_fusion, "run_unit", unit)
    monkeypatch.setattr(bench_report, "STOPPING", {"now": False})
    args = type("Args", (), {"jobs": 1})()
    with pytest.raises(SystemExit, match="command failed"):
        experiment_fusion.run_trained_arms([0, 1], args, {}, None, {}, {}, {}, experiment_fusion.Clock())
    assert started == [("fusion", 0)]


def test_a_failed_unit_stops_the_queue_while_another_runs(monkeypatch):
    # Deterministic: "slow" holds the main thread (it waits on slow's result) until the free
    # thread has decided about "queued", started (old code) or refused (NotStarted), so the
    # main thread's cancel cannot be what stopped it.
    decided = threading.Event()
    started = []

    class Refused(Exception):
        def __init__(self, *a):
            super().__init__(*a)
            decided.set()

    monkeypatch.setattr(bench_report, "NotStarted", Refused, raising=False)

    def work(name):
        started.append(name)
        if name == "slow":
            assert decided.wait(60), "the free thread neither started nor refused the queued unit"
            return "slow done"
        if name == "fail":
            raise SystemExit("error: fail broke")
        decided.set()
        return name

    with pytest.raises(SystemExit, match="fail broke"):
        bench_report.run_jobs(work, [("slow",), ("fail",), ("queued",)], 2)
    assert "queued" not in started and sorted(started) == ["fail", "slow"]


def test_units_that_all_succeed_are_all_returned():
    assert bench_report.run_jobs(lambda x: x * 2, [(1,), (2,), (3,)], 2) == {(1,): 2, (2,): 4, (3,): 6}


# --- 3. --seeds within the trainer's range, checked before any work


def test_seeds_beyond_the_trainers_range_are_refused_before_any_work(tmp_path, monkeypatch, capsys):
    def started(*a, **k):
        raise AssertionError("the experiment started work")

    monkeypatch.setattr(experiment_fusion, "build_dataset", started)
    for seeds, message in ((["4294967296"], "--seeds: must be <= 4294967295, got 4294967296"),
                           (["-1"], "--seeds: must be >= 0, got -1"),
                           (["1", "1"], "--seeds: 1 is given twice")):
        with pytest.raises(SystemExit) as exit_:
            experiment_fusion.main(["--quick", "--seeds", *seeds, "--out", str(tmp_path / "o"),
                                    "--work", str(tmp_path / "w")])
        err = capsys.readouterr().err
        # argparse's usage, then one line: the error (was: the trainer's, inside a 40-line log dump)
        assert exit_.value.code == 2 and err.strip().splitlines()[-1].endswith(message) and "Traceback" not in err
        assert not (tmp_path / "w" / "settings").exists()
    # the largest seed the trainer takes (numpy's range) is taken
    assert experiment_fusion.build_parser().parse_args(["--seeds", "4294967295"]).seeds == [4294967295]


# --- 5. the command line can be pasted back


def test_the_command_line_can_be_pasted_back():
    argv = ["--quick", "--out", "/tmp/fq out", "--work", "it's here"]
    line = experiment_fusion.command_line(argv)
    assert shlex.split(line) == ["python", "scripts/experiment_fusion.py", *argv]


# --- 4. arms and seeds without an MAE


def results_with_missing_maes(monkeypatch) -> dict:
    """One target; fusion-like arms without any valid answer, classical with one seed of three
    without one, the baselines complete."""
    monkeypatch.setitem(experiment_fusion.TARGET_KIND, "t1", "kind")
    none = {"mae": {"t1": [None, None, None]}, "valid_ratio": {"t1": [0.0, 0.0, 0.0]},
            "distinct_answers": {"t1": [0.0, 0.0, 0.0]}}
    full = {"mae": {"t1": [2.0, 2.0, 2.0]}, "valid_ratio": {"t1": [1.0, 1.0, 1.0]},
            "distinct_answers": {"t1": [0.2, 0.2, 0.2]}}
    partial = {"mae": {"t1": [0.5, None, 0.7]}, "valid_ratio": {"t1": [1.0, 0.0, 1.0]},
               "distinct_answers": {"t1": [1.0, 0.0, 1.0]}}
    arms = {"fusion": none, "image_only": none, "fusion_shuffled_fp": none, "mean_baseline": full,
            "median_baseline": full, "classical": partial}
    return {"quick": False, "command": "c", "machine": "m", "seeds": [0, 1, 2], "targets": ["t1"],
            "data": {"molecules": 3, "split": {"sizes": {}}}, "timings_s": {"total": 1.0},
            "settings": {"precision": "fp32"}, "arms": arms,
            "paired": {"fusion-classical": {"t1": {"mean": None, "se": None}}},
            "verdict": {"t1": {"ok": False, "ratio": None}}}


def test_tables_say_n_a_and_count_the_seeds_with_an_mae(monkeypatch):
    text = experiment_fusion.markdown(results_with_missing_maes(monkeypatch))
    assert "nan" not in text.lower()
    assert "| fusion | n/a (0.00) |" in text  # was: nan (0.00)
    # the mean of the two seeds that have an MAE, and that it is two of three (was: nan)
    assert "| classical | 0.600 ± 0.141 (0.67, 2 of 3 seeds) |" in text
    assert "| mean_baseline | 2.000 ± 0.000 (1.00) |" in text
    assert "| classical | 0.500, n/a, 0.700 |" in text
    assert "| fusion-classical | n/a |" in text  # was: n/a ± n/a


def figure_texts(monkeypatch) -> list:
    """Every figure `plots` saves, as (its texts, its axes), captured just before saving."""
    seen = []
    save = draw.save

    def capture(fig, path, dpi):
        from matplotlib.text import Text

        seen.append(([t.get_text() for t in fig.findobj(Text)], fig.axes))
        return save(fig, path, dpi)

    monkeypatch.setattr(draw, "save", capture)
    return seen


def test_an_arm_without_mae_is_marked_not_drawn_as_zero(tmp_path, monkeypatch):
    results = results_with_missing_maes(monkeypatch)
    seen = figure_texts(monkeypatch)
    written = experiment_fusion.plots(results, tmp_path / "exp", {})
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    (bar_texts, (bar_ax,)), (parity_texts, (parity_ax,)) = seen
    assert bar_texts.count("no valid answer") == 3  # fusion, image_only, fusion_shuffled_fp
    assert "classical\n(2 of 3\nseeds)" in bar_texts
    heights = [p.get_height() for p in bar_ax.patches]
    assert heights[3:] == pytest.approx([2.0, 2.0, 0.6])  # classical: over the seeds that have an MAE
    assert bar_ax.get_xlim()[0] < -0.4  # the first group (fusion) inside the frame, not on it
    assert "no valid answers" in parity_texts  # was: an empty 0..1 frame


def test_parity_leaves_out_values_it_cannot_draw_and_says_so(tmp_path, monkeypatch):
    results = results_with_missing_maes(monkeypatch)
    seen = figure_texts(monkeypatch)
    rows = {"t1": [{"reference_value": 1.0, "value": 1.5, "valid": True},
                   {"reference_value": 2.0, "value": 1e305, "valid": True},
                   {"reference_value": 3.0, "value": None, "valid": False}]}
    experiment_fusion.plots(results, tmp_path / "exp", rows)  # was: ValueError from draw.parity
    parity_texts = seen[1][0]
    assert "t1 (test, all seeds)\n1 beyond ±1e+300 not drawn" in parity_texts
    assert "no valid answers" not in parity_texts


# --- 6. bench_prepare's rates


def test_bench_prepare_rates_name_items_records_and_failures(tmp_path, monkeypatch, capsys):
    csv = tmp_path / "bad mols.csv"
    csv.write_text("smiles,y\nCCO,1\nnotasmiles,2\nc1ccccc1,3\n")
    monkeypatch.setattr(sys, "argv", ["bench_prepare.py", "--csv", str(csv), "--label-columns", "y",
                                      "--image-size", "64", "--limit", "3", "--workers", "2",
                                      "--out-dir", str(tmp_path / "out")])
    assert bench_prepare.main() == 0
    table = (tmp_path / "out" / "bench_prepare.md").read_text()
    assert "molecules/s" not in table  # was: the items' rate, the failed one counted as prepared
    result = json.loads((tmp_path / "out" / "bench_prepare.json").read_text())
    assert (result["items"], result["records"], result["failures"]) == (3, 2, 1)
    # the JSON's seconds are rounded, the rate is of the unrounded time: equal to a rounding step
    assert result["one_worker_records_per_s"] == pytest.approx(2 / result["one_worker_s"], rel=0.02, abs=0.011)
    one = next(line for line in table.splitlines() if line.startswith("| 1 worker |"))
    assert (f"{result['one_worker_items_per_s']:.2f} items/s, {result['one_worker_records_per_s']:.2f} records/s "
            "(1 failed item)") in one
    assert "3 items, 2 records, 1 failure, 64 px" in table
