"""The benchmark and experiment scripts, thirteenth sweep (gpu_check, bench_prepare,
bench_molecules, experiment_fusion).

What was wrong -> what happens now:
- gpu_check stopped during the encoder checks said "the report has the checks that ended"
  while it had written no report (an older run's stood there) -> the report is written
  after each check, and the stop line names the check stopped and what this run wrote.
- gpu_check --name renamed only its report: every run wrote gpu_encoder_b*/gpu_sam_attention_b*,
  so a second run replaced the numbers the first run's report quotes -> those files take
  the --name stem (the default name keeps the committed files' names).
- bench_prepare counted failed molecules without naming them -> a FAILED line each on
  stderr (id, file line, reason) and the list in the JSON ("failed_items").
- bench_molecules named a failure "ids.csv#3" (the 0-based data row) -> "ids.csv line 5";
  its mol/s counted failed molecules -> mol/s of those that went through, tried/s beside.
- experiment_fusion --help named experiment_fusion.* for --quick -> the _quick stem too.
- two experiment_fusion runs in one --work: the second deleted the first's unfinished
  training -> one writer per work folder, the second refused in one line.
"""

import json
import os
import sys
import time

from pathlib import Path

import pytest

import deepmolm_plugin

# the scripts beside the deepmolm_plugin imported (PYTHONPATH=<another tree> tests that tree's)
sys.path.insert(0, str(Path(deepmolm_plugin.__file__).resolve().parents[1] / "scripts"))

import bench_encoder  # noqa: E402
import bench_molecules  # noqa: E402
import bench_prepare  # noqa: E402
import bench_sam_attention  # noqa: E402
import experiment_fusion  # noqa: E402
import gpu_check  # noqa: E402

from deepmolm_plugin import output_lock  # noqa: E402


# --- gpu_check: the report after each encoder batch, a true stop line, names under --name


def _encoder_report(dtype: str) -> dict:
    """What bench_encoder.main returns, reduced to what gpu_check reads."""
    row = {"dtype": dtype, "latency_s": 0.5, "tflops": 1.0, "fraction_of_bound": 0.1, "peak_mib": 10.0}
    return {"results": [{**row, "impl": "ours"}, {**row, "impl": "reference"}],
            "per_dtype": {dtype: {"gemm_peak_tflops": 10.0, "max_abs_diff": 0.0}}}


def _fake_checks(monkeypatch, stop_at: "int | None" = None, stop_sam: bool = False) -> list:
    """bench_sam_attention / bench_encoder replaced by stand-ins recording their argv; the
    encoder run number `stop_at` (0-based) or the SAM check is "stopped" (Ctrl-C, SIGTERM)."""
    calls = []

    def sam(argv):
        calls.append(argv)
        if stop_sam:
            raise KeyboardInterrupt

    def encoder(argv):
        calls.append(argv)
        if stop_at is not None and sum("--dtypes" in c for c in calls) - 1 == stop_at:
            raise KeyboardInterrupt
        return _encoder_report(argv[argv.index("--dtypes") + 1])

    monkeypatch.setattr(bench_sam_attention, "main", sam)
    monkeypatch.setattr(bench_encoder, "main", encoder)
    return calls


def test_gpu_check_stopped_in_the_encoder_checks_keeps_the_batches_that_ended(tmp_path, monkeypatch, capsys):
    # an older run's report under the same name: it must not be passed off as this run's
    (tmp_path / "gpu_check.json").write_text(json.dumps({"encoder": [{"batch": 99}], "training": []}))
    _fake_checks(monkeypatch, stop_at=1)
    code = gpu_check.main(["--dry-run", "--only", "encoder", "--batches", "1", "2", "--sam-attention", "sdpa",
                           "--out-dir", str(tmp_path)])
    assert code == 130
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    # was: no report written until every batch ended, so the older run's batch 99 stood there
    assert sorted({r["batch"] for r in report["encoder"]}) == [1]
    assert report["complete"] is False
    assert report["checks_ended"] == ["SAM attention batch 2", "encoder batch 1 (sdpa)"]
    assert "Incomplete: written after encoder batch 1 (sdpa)" in (tmp_path / "gpu_check.md").read_text()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"interrupted: encoder batch 2 (sdpa) was stopped; {tmp_path / 'gpu_check.json'} and .md have "
                   "the 2 check(s) that ended: SAM attention batch 2, encoder batch 1 (sdpa)"]


def test_gpu_check_stopped_before_any_check_ended_says_it_wrote_no_report(tmp_path, monkeypatch, capsys):
    (tmp_path / "gpu_check.json").write_text("{}")
    _fake_checks(monkeypatch, stop_sam=True)
    assert gpu_check.main(["--dry-run", "--only", "encoder", "--out-dir", str(tmp_path)]) == 130
    assert (tmp_path / "gpu_check.json").read_text() == "{}"
    # was: "the launcher run in progress was stopped; the report has the checks that ended"
    assert capsys.readouterr().err.strip() == (
        f"interrupted: SAM attention batch 2 was stopped; no check had ended, so this run wrote no report "
        f"({tmp_path / 'gpu_check.json'} is an earlier run's)")


def _names(calls: list) -> list:
    return [c[c.index("--name") + 1] for c in calls]


def test_gpu_check_name_covers_every_file_it_writes(tmp_path, monkeypatch):
    calls = _fake_checks(monkeypatch)
    assert gpu_check.main(["--dry-run", "--only", "encoder", "--batches", "1", "2", "--sam-attention", "sdpa",
                           "folded", "--name", "runA", "--out-dir", str(tmp_path)]) == 0
    # was: gpu_sam_attention_b2, gpu_encoder_b1, ... whatever --name said
    assert _names(calls) == ["runA_sam_attention_b2", "runA_encoder_b1", "runA_encoder_b2",
                             "runA_encoder_b1_folded", "runA_encoder_b2_folded"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runA.json", "runA.md"]
    # the default name keeps the names of the committed scripts/results files
    calls.clear()
    assert gpu_check.main(["--dry-run", "--only", "encoder", "--batches", "1", "--sam-attention", "sdpa", "folded",
                           "--out-dir", str(tmp_path)]) == 0
    assert _names(calls) == ["gpu_sam_attention_b1", "gpu_encoder_b1", "gpu_encoder_b1_folded"]
    assert json.loads((tmp_path / "gpu_check.json").read_text())["complete"] is True


@pytest.mark.parametrize("name", ["gpu", "gpu_encoder_b1", "runA_sam_attention_b32"])
def test_gpu_check_refuses_a_name_of_another_runs_check_file(name, capsys):
    # was: --name gpu_encoder_b1 wrote its report over the default run's batch-1 file
    with pytest.raises(SystemExit) as exit_:
        gpu_check.arguments(["--dry-run", "--name", name])
    assert exit_.value.code == 2
    assert f"--name {name}: the name of a per-check result file of another run" in capsys.readouterr().err


# --- bench_prepare names its failed molecules


def test_bench_prepare_names_each_failed_molecule(tmp_path, monkeypatch, capsys):
    csv = tmp_path / "t.csv"
    csv.write_text("smiles,y\nCCO,1\n\nC1CC(,2\nc1ccccc1,3\n")  # the bad one is on line 4 (a blank line 3)
    monkeypatch.setattr(sys, "argv", ["bench_prepare.py", "--csv", str(csv), "--label-columns", "y",
                                      "--image-size", "64", "--workers", "2", "--out-dir", str(tmp_path / "out")])
    assert bench_prepare.main() == 0
    failed = json.loads((tmp_path / "out" / "bench_prepare.json").read_text())["failed_items"]
    assert [(f["id"], f["where"], f["stage"]) for f in failed] == [("t#2", "t.csv line 4", "smiles")]
    assert "unparseable SMILES 'C1CC('" in failed[0]["error"]  # the reader's wording, as the other tools'
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert err == [f"FAILED t#2 (t.csv line 4): {failed[0]['error']}"]


# --- bench_molecules: failures by file line, the rate of molecules that went through


# bench_molecules with `process` replaced by _fake_process, run in a child Python: its pool forks,
# and a fork of this pytest worker (torch's threads running) once deadlocked in the child
_FAKE_BENCH = """
import sys, time
sys.path.insert(0, sys.argv[1])
import bench_molecules
{source}
bench_molecules.process = _fake_process  # the forked pool workers see it
sys.exit(bench_molecules.main(sys.argv[2:]))
"""


def _bench_molecules(tmp_path, monkeypatch, capsys=None) -> dict:
    import inspect
    import subprocess

    csv = tmp_path / "ids.csv"
    csv.write_text('smiles\nCCO\n\nC1CC(\n"CCN"\n')
    scripts = str(Path(bench_molecules.__file__).resolve().parent)
    script = _FAKE_BENCH.format(source=inspect.getsource(_fake_process))
    done = subprocess.run([sys.executable, "-c", script, scripts, "--csv", str(csv), "--workers", "2", "--out-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    if capsys is not None:
        sys.stderr.write(done.stderr)
    return json.loads((tmp_path / "bench_molecules.json").read_text())


def test_bench_molecules_names_a_failure_by_its_line(tmp_path, monkeypatch, capsys):
    result = _bench_molecules(tmp_path, monkeypatch, capsys)
    # was: "ids.csv#1", the 0-based data row, blank lines not counted
    assert result["failures"] == [{"id": "ids.csv line 4", "error": "unparseable"}]
    assert "FAILED ids.csv line 4: unparseable" in capsys.readouterr().err


def test_bench_molecules_rates_the_molecules_that_went_through(tmp_path, monkeypatch):
    result = _bench_molecules(tmp_path, monkeypatch)
    for run in result["runs"]:
        # was: 3 / wall, the failed molecule counted as processed
        assert run["mol_per_s"] == pytest.approx(2 / run["wall_s"], rel=0.02)
        assert run["tried_per_s"] == pytest.approx(3 / run["wall_s"], rel=0.02)


def _fake_process(item):
    """bench_molecules.process without RDKit: a known time per molecule, C1CC( fails."""
    id, smiles = item
    time.sleep(0.05)
    if smiles == "C1CC(":
        return {"id": id, "error": "unparseable"}
    return {"id": id, "error": None, "structure": 0.01, "e3fp": 0.01, "render": 0.01, "crc": len(smiles)}


# --- experiment_fusion: help text true for --quick, one run per work folder


def test_experiment_fusion_help_names_the_quick_outputs(capsys):
    with pytest.raises(SystemExit):
        experiment_fusion.build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "experiment_fusion_quick for --quick" in text  # was: only experiment_fusion.json named


def test_experiment_fusion_refuses_a_work_folder_another_run_holds(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    training = work / "runs" / "fusion-seed0"  # an unfinished training of the first run
    training.mkdir(parents=True)
    (training / "train.log").write_text("step 3\n")

    def started(*args, **kwargs):  # the old code went on into the experiment (it would also rmtree the run)
        raise AssertionError("the experiment started in a work folder another run holds")

    monkeypatch.setattr(experiment_fusion, "build_dataset", started)
    first = output_lock.hold(output_lock.folder_lock(work, "experiment_fusion"))
    try:
        with pytest.raises(SystemExit) as exit_:
            experiment_fusion.experiment(["--quick", "--work", str(work), "--out", str(tmp_path / "out")])
    finally:
        first.release()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f"error: --work: another experiment_fusion is writing {work} (pid {os.getpid()})")
    assert (training / "train.log").read_text() == "step 3\n"
    assert not (work / "settings").exists()  # refused before its stamp was written
