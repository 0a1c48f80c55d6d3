"""The benchmark scripts check their command line before any work: each case below ran
for minutes and then failed with a traceback, or published nonsense (negative s/step, a
report for 5 workers on 2 cores, a relative --csv that the reruns, run elsewhere, lost)."""

import sys
from pathlib import Path

import pytest

from host_fixtures import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import bench_encoder  # noqa: E402
import bench_report  # noqa: E402
import bench_feature_cache  # noqa: E402
import bench_kflm2  # noqa: E402
import bench_molecules  # noqa: E402
import bench_prepare  # noqa: E402
import bench_sam_attention  # noqa: E402
import gpu_check  # noqa: E402


@pytest.mark.parametrize("script, argv, message", [
    (bench_encoder, ["--tiny", "--batch", "0"], "--batch: must be >= 1, got 0"),  # was: a reshape error
    (bench_encoder, ["--tiny", "--repeats", "0"], "--repeats: must be >= 1"),  # was: StatisticsError
    (bench_encoder, ["--tiny", "--image-size", "100"], "--image-size must be a multiple of 64"),
    # was: allocator tracebacks (13 TB for --image-size 1048576) and "Overflow when unpacking long long"
    (bench_encoder, ["--tiny", "--image-size", "1048576"], "--image-size: must be <= 4096, got 1048576"),
    (bench_encoder, ["--tiny", "--gemm-n", "10000000"], "--gemm-n: must be <= 16384"),
    (bench_encoder, ["--tiny", "--batch", "100000"], "--batch: must be <= 1024"),
    (bench_encoder, ["--tiny", "--seed", str(2**70)], "--seed: must be <= 18446744073709551615"),
    (bench_encoder, ["--tiny", "--device", "foo"], "--device 'foo'"),
    (bench_encoder, ["--tiny", "--out-dir", "{file}"], "--out-dir: folder {file}: is a file"),  # was: after the run
    (bench_feature_cache, ["--steps", "-1"], "--steps: must be >= 1, got -1"),  # was: negative s/step published
    (bench_feature_cache, ["--steps", "100", "--batch", "100"], "--steps x --batch must be <="),  # was: exit 1
    (bench_kflm2, ["--seeds", "0"], "--seeds: must be >= 1"),
    (bench_kflm2, ["--data", "{missing}"], "no delaney-processed.csv"),  # was: FileNotFoundError
    (bench_prepare, ["--csv", "{missing}/x.csv"], "--csv: no such file"),
    (bench_prepare, ["--workers", "4096"], "--workers 4096: this machine has"),  # was: "64 workers" in the report
    # a result name with a folder failed after the whole run; "" wrote hidden files; ".." left --out-dir
    (bench_prepare, ["--name", "sub/x"], "--name: a plain file name"),
    (bench_prepare, ["--name", ""], "--name: a plain file name"),
    (bench_feature_cache, ["--name", "../x"], "--name: a plain file name"),
    (bench_encoder, ["--tiny", "--name", ".hidden"], "--name: a plain file name"),
    (bench_molecules, ["--name", "a\\b"], "--name: a plain file name"),
    (bench_prepare, ["--image-size", "9000"], "--image-size: must be <= 8192, got 9000"),  # was: prepare's usage text
    # one value twice: a crash after the first preset's training; two writers of one cell's folder;
    # a dtype's summary row overwritten by its second measurement
    (bench_feature_cache, ["--presets", "tiny", "tiny"], "--presets: tiny is given twice"),
    (bench_kflm2, ["--datasets", "FreeSolv", "FreeSolv"], "--datasets: FreeSolv is given twice"),
    (bench_kflm2, ["--splits", "random", "random"], "--splits: random is given twice"),
    (bench_encoder, ["--tiny", "--dtypes", "float32", "float32"], "--dtypes: float32 is given twice"),
    (bench_encoder, ["--tiny", "--device", "meta"], "the benchmark runs on cpu or cuda"),  # was: a copy error
    # bench_molecules checked nothing: ZeroDivisionError for --limit 0 and --workers 0, a traceback for a
    # missing CSV, "all but the last" for --limit -1, a run compared with itself for --workers 1
    (bench_molecules, ["--limit", "0"], "--limit: must be >= 1, got 0"),
    (bench_molecules, ["--limit", "-1"], "--limit: must be >= 1, got -1"),
    (bench_molecules, ["--workers", "1"], "--workers: must be >= 2, got 1"),
    (bench_molecules, ["--csv", "{missing}.csv"], "--csv: no such file"),
    (bench_molecules, ["--out-dir", "{file}"], "--out-dir: folder {file}: is a file"),
    (bench_molecules, ["--csv", "{header_only}"], "no molecules"),  # was: ZeroDivisionError
    (bench_molecules, ["--csv", "{file}"], "no 'smiles' column"),
    (bench_molecules, ["--workers", "4096"], "--workers 4096: this machine has"),  # was: "4096 processes" published
    (bench_prepare, ["--workers", "1"], "--workers: must be >= 2, got 1"),  # was: "speedup 1.43x on 1 workers"
    (gpu_check, ["--dry-run", "--batches", "0"], "--batches: must be >= 1, got 0"),
    (gpu_check, ["--dry-run", "--sam-attention", "sdpa", "sdpa"], "--sam-attention: sdpa is given twice"),
    (gpu_check, ["--dry-run", "--run-timeout", "0"], "--run-timeout: must be >= 1, got 0"),
    (bench_encoder, ["--tiny", "--profile", "0"], "--profile: must be >= 1, got 0"),
    (bench_encoder, ["--tiny", "--compile", "fast"], "--compile: invalid choice: 'fast'"),
    (bench_sam_attention, ["--tiny", "--batch", "0"], "--batch: must be >= 1, got 0"),
    (bench_sam_attention, ["--tiny", "--name", "a/b"], "--name: a plain file name"),
    (bench_sam_attention, ["--tiny", "--device", "meta"], "the benchmark runs on cpu or cuda"),  # was: .item() error
    (bench_kflm2, ["--jobs", "4096"], "--jobs 4096: this machine has"),  # was: "4096 runs side by side"
    (bench_kflm2, ["--cache-dir", ""], "--cache-dir: folder"),  # was: no cache, silently
])
def test_bad_arguments_are_one_line_before_any_work(tmp_path, monkeypatch, capsys, script, argv, message):
    (tmp_path / "file").write_text("")
    (tmp_path / "header_only.csv").write_text("smiles\n")
    fill = {"file": str(tmp_path / "file"), "missing": str(tmp_path / "missing"),
            "header_only": str(tmp_path / "header_only.csv")}
    argv = [a.format(**fill) for a in argv]
    monkeypatch.setattr(sys, "argv", [script.__name__ + ".py", *argv])
    with pytest.raises(SystemExit) as exit_:
        script.main(argv) if script in (bench_encoder, bench_kflm2, bench_molecules, gpu_check) else script.main()
    assert exit_.value.code == 2
    assert message.format(**fill) in capsys.readouterr().err


def test_quick_fills_only_the_values_not_given():
    # --quick --image-size 1024 ran at 512 px, and said so only in the JSON
    quick = bench_prepare.arguments(["--quick"])
    assert (quick.limit, quick.image_size, quick.chunk_size) == (48, 512, 16)
    given = bench_prepare.arguments(["--quick", "--image-size", "1024", "--chunk-size", "64", "--limit", "100"])
    assert (given.limit, given.image_size, given.chunk_size) == (100, 1024, 64)
    full = bench_prepare.arguments([])
    assert (full.limit, full.image_size, full.chunk_size) == (200, 1024, 64)


def test_bench_molecules_writes_json_and_markdown(tmp_path):
    # it wrote JSON only on request, and no markdown table (every benchmark writes both)
    import json
    import subprocess

    # in a child Python: its pool forks, and a fork of this threaded pytest worker can deadlock in the child
    done = subprocess.run([sys.executable, bench_molecules.__file__, "--limit", "3", "--workers", "2", "--out-dir",
                           str(tmp_path), "--name", "m"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((tmp_path / "m.json").read_text())
    assert [r["processes"] for r in result["runs"]] == [1, 2] and result["identical"] is True
    assert "| processes |" in (tmp_path / "m.md").read_text()


def test_encoder_profile_lists_where_the_time_goes(tmp_path):
    """`bench_encoder.py --profile N`: the N operators with most self time in one forward
    of ours, in the JSON and as a markdown table (on CUDA: kernels only, an aten op's row
    would count its kernels' time twice)."""
    import json

    bench_encoder.main(["--tiny", "--repeats", "1", "--profile", "4", "--out-dir", str(tmp_path), "--name", "p"])
    rows = json.loads((tmp_path / "p.json").read_text())["per_dtype"]["float32"]["profile_ours"]
    assert len(rows) == 4 and all(r["op"] and r["calls"] >= 1 and r["self_ms"] > 0 for r in rows)
    assert [r["self_ms"] for r in rows] == sorted((r["self_ms"] for r in rows), reverse=True)
    assert 0 < sum(r["share"] for r in rows) <= 1
    assert "operators by self CPU time in one forward" in (tmp_path / "p.md").read_text()


def test_sam_attention_bench_times_every_way_and_checks_its_numbers(tmp_path):
    """`bench_sam_attention.py`: per block kind, the bias pieces, the folded ways (each SDPA
    kernel forced; one that does not take the shapes is a row saying so, not a crash) and
    the no-bias reference, every result checked against the pieces."""
    import json

    bench_sam_attention.main(["--tiny", "--repeats", "1", "--out-dir", str(tmp_path), "--name", "a"])
    rows = json.loads((tmp_path / "a.json").read_text())["results"]
    assert {r["block"] for r in rows} == {"global", "windowed"}
    ran = [r for r in rows if "error" not in r]
    assert {"pieces", "folded", "folded, v unpadded", "folded/math", "no rel-pos (reference)"} <= {r["way"] for r in ran}
    assert all(r["max_abs_diff"] <= 1e-5 for r in ran if not r["way"].startswith("no rel-pos"))
    assert all(r["latency_ms"] > 0 and r["tflops"] > 0 for r in ran)
    assert [r for r in rows if r["way"] == "pieces"][0]["ratio_to_pieces"] == 1.0
    assert "| global | folded |" in (tmp_path / "a.md").read_text()


# --- scripts/experiment_fusion.py: its arguments, Ctrl-C and its timings

import experiment_fusion  # noqa: E402


@pytest.mark.parametrize("argv, message", [
    # was: a FileExistsError traceback
    (["--out", "{file}"], "--out {file}: is a file, not a folder"),
    (["--work", "{file}"], "--work {file}: is a file, not a folder"),
    # deepmolm-prepare refused these only after the dataset was built (9 minutes), and the
    # settings stamp written before then refused the corrected rerun
    (["--image-size", "-5"], "--image-size: must be >= 16, got -5"),
    (["--image-size", "9000"], "--image-size: must be <= 8192, got 9000"),
    (["--workers", "0"], "--workers: must be >= 1, got 0"),
    (["--jobs", "0"], "--jobs: must be >= 1, got 0"),
    (["--jobs", "{many}"], "--jobs {many}: this machine has"),  # was: 64 one-thread trainings on 2 cores, timed
    (["--workers", "{many}"], "--workers {many}: this machine has"),
    (["--out", ""], "--out is empty: give a folder"),  # was: the current folder
])
def test_experiment_arguments_are_checked_before_any_work(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("")
    fill = {"file": str(tmp_path / "file"), "many": str(bench_report.usable_cores() + 1)}
    argv = [a.format(**fill) for a in argv]
    folders = {"--out": str(tmp_path / "out"), "--work": str(tmp_path / "work")}
    for option, folder in folders.items():
        if option not in argv:
            argv += [option, folder]
    with pytest.raises(SystemExit) as exit_:
        experiment_fusion.main(["--quick", *argv])
    assert exit_.value.code == 2
    assert message.format(**fill) in capsys.readouterr().err
    assert not (tmp_path / "work" / "settings").exists()  # nothing locks the work folder


def test_experiment_ctrl_c_starts_no_queued_unit(monkeypatch):
    # Ctrl-C during the first unit: leaving the thread pool's `with` block waited for the
    # queued units, each a training of minutes
    started = []

    def unit(arm, seed, *rest):
        started.append((arm, seed))
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment_fusion, "run_unit", unit)
    monkeypatch.setattr(bench_report, "STOPPING", {"now": False})
    args = type("Args", (), {"jobs": 1})()
    with pytest.raises(KeyboardInterrupt):
        experiment_fusion.run_trained_arms([0, 1], args, {}, None, {}, {}, {}, experiment_fusion.Clock())
    assert started == [("fusion", 0)]


def test_bench_kflm2_ctrl_c_starts_no_queued_cell_and_exits_130(monkeypatch, tmp_path, capsys):
    # was: Ctrl-C killed the running cell, then the queued cells ran to their end (hours on the
    # full benchmark) before a KeyboardInterrupt traceback; SIGTERM was not handled
    started = []

    def command(cmd, **popen):
        started.append(cmd[cmd.index("--data") + 1])
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_report, "run_command", command)
    monkeypatch.setattr(bench_report, "STOPPING", {"now": False})
    with pytest.raises(SystemExit) as exit_:
        bench_report.interruptible(bench_kflm2.main, ["--out", str(tmp_path / "out"), "--jobs", "1", "--seeds", "1"])
    assert exit_.value.code == 130 and len(started) == 1
    assert capsys.readouterr().err.strip() == ("interrupted: the commands it ran are stopped; rerun the same command "
                                               "to resume")


def test_experiment_stop_ends_a_running_command_and_its_children(tmp_path, monkeypatch):
    import threading
    from pathlib import Path

    monkeypatch.setattr(bench_report, "STOPPING", {"now": False})
    pid_file = tmp_path / "child.pid"
    failure = []

    def command():
        try:
            experiment_fusion.run(["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"], tmp_path / "c.log")
        except SystemExit as e:
            failure.append(str(e))

    thread = threading.Thread(target=command)
    thread.start()
    while not pid_file.is_file() or not pid_file.read_text().strip():
        thread.join(0.05)
    bench_report.stop_commands(grace=5)
    thread.join()
    assert failure == ["error: interrupted"]
    grandchild = int(pid_file.read_text())
    # the `sleep`, not only the shell, was ended (gone, or a zombie its new parent has not
    # reaped); its signal is delivered when it next runs, which on a loaded machine can be a
    # moment after stop_commands returns (it waits for its own child, the shell)
    import time

    status = Path(f"/proc/{grandchild}/status")
    deadline = time.monotonic() + 10
    while status.exists() and "State:\tZ" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not status.exists() or "State:\tZ" in status.read_text()
    with pytest.raises(SystemExit, match="interrupted"):  # and nothing new starts
        experiment_fusion.run(["true"], tmp_path / "d.log")


def test_experiment_timings_keep_a_part_that_was_cut_short(tmp_path):
    # timings.json was written once, at the very end: an interrupted run's parts were lost
    path = tmp_path / "timings.json"
    clock = experiment_fusion.Clock(path)
    with clock.part("done part"):
        pass
    with pytest.raises(KeyboardInterrupt), clock.part("train fusion seed 0"):
        raise KeyboardInterrupt
    saved = experiment_fusion.json.loads(path.read_text())
    assert "done part" in saved["parts"] and "train fusion seed 0" in saved["interrupted"]
    resumed = experiment_fusion.Clock(path)
    with resumed.part("train fusion seed 0"):
        pass
    report = resumed.report()
    assert set(report) == {"done part", "train fusion seed 0", "total"}
    assert len(experiment_fusion.json.loads(path.read_text())["invocations"]) == 2


def test_quick_and_dry_run_fill_only_the_values_not_given():
    # --quick --repeats 3 ran 1 round (and --gemm-n was capped), --quick --presets deepseek-ocr
    # ran demo, --dry-run --repeats 3 ran 1 round: each without a word
    quick = bench_encoder.arguments(["--device", "cpu", "--quick"])
    assert (quick.repeats, quick.gemm_n) == (1, 2048)
    given = bench_encoder.arguments(["--device", "cpu", "--quick", "--repeats", "3", "--gemm-n", "4096"])
    assert (given.repeats, given.gemm_n) == (3, 4096)
    tiny = bench_encoder.arguments(["--device", "cpu", "--tiny", "--quick", "--gemm-n", "1024"])
    assert (tiny.repeats, tiny.gemm_n) == (1, 1024)
    assert bench_encoder.arguments(["--device", "cpu", "--tiny"]).gemm_n == 512
    full = bench_encoder.arguments(["--device", "cpu"])
    assert (full.repeats, full.gemm_n) == (3, 4096)

    assert bench_feature_cache.arguments(["--quick"]).presets == ["demo"]
    assert bench_feature_cache.arguments(["--quick", "--presets", "deepseek-ocr"]).presets == ["deepseek-ocr"]
    assert bench_feature_cache.arguments([]).presets == ["demo", "deepseek-ocr"]

    assert gpu_check.arguments(["--dry-run"]).repeats == 1
    assert gpu_check.arguments(["--dry-run", "--repeats", "3"]).repeats == 3


def test_kflm2_rerun_reports_the_reused_seeds_and_its_own_advice(tmp_path, monkeypatch):
    # A rerun into an existing --out said "whole benchmark 0.1 min wall" of hours of reused
    # seeds; a cell made with another configuration was refused with "--overwrite", an
    # option of deepmolm-kflm2 that bench_kflm2 does not take.
    import json
    import os
    import subprocess

    cell = tmp_path / "FreeSolv_random"
    (cell / "seeds").mkdir(parents=True)
    (cell / "seeds" / "seed_0.json").write_text("{}")
    os.utime(cell / "seeds" / "seed_0.json", (1, 1))  # finished by an earlier invocation
    (cell / "results.json").write_text(json.dumps({"per_seed": [{"seed": 0, "seconds": 600.0}]}))
    args = bench_kflm2.argparse.Namespace(out=str(tmp_path), data=str(tmp_path), seeds=1, cache_dir=None, fp32=True)
    monkeypatch.setattr(bench_report, "run_command", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", ""))
    result = bench_kflm2.run_cell("FreeSolv", "random", args)
    assert (result["reused_seeds"], result["reused_seconds"]) == (1, 600.0)
    assert "1 seed runs were reused from an earlier one" in bench_kflm2.reused({"reused_seeds": 1,
                                                                                 "reused_seconds": 600.0})
    refusal = "error: --out x holds results of a different configuration: use another --out or --overwrite"
    monkeypatch.setattr(bench_report, "run_command", lambda *a, **k: subprocess.CompletedProcess(a, 2, "", refusal))
    with pytest.raises(SystemExit) as exit_:
        bench_kflm2.run_cell("FreeSolv", "random", args)
    assert "--overwrite" not in str(exit_.value) and f"delete {cell}" in str(exit_.value)


def test_results_json_is_strict_and_an_interrupted_benchmark_is_one_line(tmp_path, capsys):
    # was: "max_abs_diff": NaN in bench_sam_attention's JSON (jq and browsers refuse it), and
    # Ctrl-C in bench_molecules, bench_feature_cache, bench_encoder or bench_sam_attention a traceback
    import json
    import math

    bench_report.write("x", {"value": math.nan}, ["| a |"], tmp_path)
    assert json.loads((tmp_path / "x.json").read_text()) == {"value": None}

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_:
        bench_report.interruptible(interrupted, resumes=False)
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "interrupted: the commands it ran are stopped; no results were written\n"
    for script in (bench_molecules, bench_feature_cache, bench_encoder, bench_sam_attention, bench_prepare):
        assert "bench_report.interruptible(main" in Path(script.__file__).read_text(), script.__name__


def test_run_eval_refuses_an_out_that_is_a_file(tmp_path):
    import subprocess

    (tmp_path / "model").mkdir()
    (tmp_path / "data.json").write_text("[]")
    (tmp_path / "out").write_text("")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "eval" / "run_eval.sh"), str(tmp_path / "model"),
                           str(tmp_path / "data.json"), str(tmp_path / "out"), "1"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr == f"error: OUT {tmp_path / 'out'} is a file, not a folder\n"


def test_cores_are_the_affinity_mask_not_the_machine(monkeypatch):
    # was: experiment_fusion gave each of its --jobs os.cpu_count() // jobs threads and the
    # reports named os.cpu_count(): 2 cores granted on a 64-core node ran 32 threads per job.
    import os

    from deepmolm_plugin.data.prepare import schedule

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert experiment_fusion.threads_per_job(2, "cpu") == 1
    assert experiment_fusion.threads_per_job(1, "cpu") == 2
    assert experiment_fusion.threads_per_job(2, "cuda") is None
    assert ", 2 cores, " in experiment_fusion.machine()
    assert bench_kflm2._machine()["usable_cores"] == 2
    assert schedule.usable_workers(8) == 2
