"""The benchmark scripts' smoke modes, signals, dtypes, defaults and reports (the eighth sweep).

What was wrong -> what happens now:
- `gpu_check.py --dry-run`, `bench_prepare.py --quick`, `bench_feature_cache.py --quick` and
  `bench_encoder.py --quick` wrote over the committed scripts/results files the README
  quotes -> a smoke run (--quick, --tiny, --dry-run) writes to bench_report.SMOKE_RESULTS
  unless --out-dir is given, and is refused scripts/results (bench_report.results_folder).
- bench_molecules' pool workers inherited Ctrl-C and `interruptible`'s SIGTERM handler: a
  worker traceback after successful runs, a hang after Ctrl-C -> the workers ignore SIGINT
  and die by SIGTERM's default action, no Python handler (bench_report.pool_worker_signals;
  the nineteenth sweep: the parent ends them without signals, tests/test_bench_pool_nineteenth.py).
- the dry run never ran the GPU's folded SAM attention and its encoder was fp32 where the CPU
  has bf16 -> "sdpa" takes the GPU's ways there, in the GPU run's dtype where native.
- `gpu_check --batches 1025` ran the SAM check, then failed in bench_encoder's parser ->
  refused up front, with bench_encoder's bound.
- bf16 was hard-coded for any CUDA device (and every CPU in bench_kflm2) -> dtype "auto"
  (deepmolm_plugin.dtypes) decides: fp16/fp32 on GPUs without bf16, fp32 on AVX2 CPUs.
- defaults were not checked: 1 worker on a 1-core machine published a "speedup", and the
  refusal named an option not given -> one line naming the cores and what needs 2.
- silent long units -> a line as seeds / training steps progress.
- an empty or header-only --csv ran deepmolm-prepare (exit 1); run_eval.sh with OUT under a
  file printed mkdir's error twice -> one line, exit 2.
- machine lines without the end-of-run load average (bench_molecules without "Machine:"),
  the experiment's markdown without each seed's values, --quick --size large silently
  ignoring --size -> all there, and the latter refused.
"""

import json
import subprocess
import sys
import time

import pytest
import torch

from host_fixtures import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import bench_encoder  # noqa: E402
import bench_feature_cache  # noqa: E402
import bench_kflm2  # noqa: E402
import bench_molecules  # noqa: E402
import bench_prepare  # noqa: E402
import bench_report  # noqa: E402
import bench_sam_attention  # noqa: E402
import experiment_fusion  # noqa: E402
import gpu_check  # noqa: E402

import deepmolm_plugin.dtypes as dtypes  # noqa: E402
from deepmolm_plugin.encoder import sam_attention  # noqa: E402


def test_smoke_runs_never_write_into_the_committed_results(monkeypatch, capsys):
    # was: scripts/results, where gpu_check --dry-run replaced the H200 numbers
    assert gpu_check.arguments(["--dry-run"]).out_dir.resolve() != bench_report.RESULTS.resolve()
    assert bench_prepare.arguments(["--quick"]).out_dir.resolve() != bench_report.RESULTS.resolve()
    smoke = bench_report.SMOKE_RESULTS
    assert bench_prepare.arguments(["--quick"]).out_dir == smoke
    assert bench_prepare.arguments([]).out_dir == bench_report.RESULTS
    assert bench_feature_cache.arguments(["--quick"]).out_dir == smoke
    assert bench_encoder.arguments(["--device", "cpu", "--quick"]).out_dir == smoke
    assert bench_encoder.arguments(["--device", "cpu", "--tiny"]).out_dir == smoke
    assert bench_encoder.arguments(["--device", "cpu"]).out_dir == bench_report.RESULTS
    assert bench_sam_attention.arguments(["--device", "cpu", "--tiny"]).out_dir == smoke
    assert gpu_check.arguments(["--dry-run"]).out_dir == smoke
    # named explicitly: refused, one line, before any work
    with pytest.raises(SystemExit) as exit_:
        gpu_check.arguments(["--dry-run", "--out-dir", str(bench_report.RESULTS)])
    assert exit_.value.code == 2
    assert "a --dry-run run does not write into scripts/results" in capsys.readouterr().err


# Run in a fresh interpreter: the pool forks, and a fork of a pytest worker that holds other
# tests' threads (tqdm's monitor, torch's pools) can deadlock in the child on a lock one of them
# held (the full suite once hung here for 13 minutes); the timeout makes any hang a failure.
POOL_SIGNALS = """
import json, signal, sys
sys.path.insert(0, sys.argv[1])
import bench_molecules, bench_report

def worker_signals(item):
    # in a pool worker: how it treats Ctrl-C and SIGTERM
    # was: interruptible's handler (KeyboardInterrupt, a traceback per worker); then a Python
    # handler raising SystemExit, which never ran when it was due as the worker blocked on a lock
    term = signal.getsignal(signal.SIGTERM)
    on_term = "default" if term is signal.SIG_DFL else getattr(term, "__name__", repr(term))
    return {"error": None, "sigint_ignored": signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "on_term": on_term}

bench_molecules.process = worker_signals
# as under bench_report.interruptible: SIGTERM raises KeyboardInterrupt in the parent
_, results = bench_report.interruptible(bench_molecules.run, [("a", "C"), ("b", "CC")], 2)
print(json.dumps(results))
"""


def test_pool_workers_leave_ctrl_c_and_sigterm_to_the_parent():
    proc = subprocess.run([sys.executable, "-c", POOL_SIGNALS, str(ROOT / "scripts")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results == [{"error": None, "sigint_ignored": True, "on_term": "default"}] * 2


def test_dry_run_runs_the_gpu_attention_path_in_the_gpu_dtype_where_native(tmp_path, monkeypatch):
    calls = []
    folded = sam_attention.folded_rel_pos_attention
    monkeypatch.setattr(sam_attention, "folded_rel_pos_attention", lambda *a, **k: calls.append(1) or folded(*a, **k))
    cpu_rule = sam_attention.folds
    assert gpu_check.main(["--dry-run", "--only", "encoder", "--batches", "1", "--sam-attention", "sdpa",
                           "--out-dir", str(tmp_path)]) == 0
    assert calls, "the dry run's 'sdpa' tower never folded a global block, as the GPU does"
    assert sam_attention.folds is cpu_rule  # the GPU rule only during the dry run
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    native = dtypes.cpu_has_native_bf16()
    assert {r["dtype"] for r in report["encoder"]} == {"bfloat16" if native else "float32"}
    assert report["encoder_dtype"] in (tmp_path / "gpu_check.md").read_text()


def test_gpu_check_batches_bound_is_checked_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu_check.arguments(["--dry-run", "--only", "encoder", "--batches", "1025", "--out-dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert f"--batches: must be <= {bench_encoder.MAX_BATCH}, got 1025" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_dtypes_follow_auto_not_a_hard_coded_bf16(monkeypatch, tmp_path):
    # a GPU without bf16 (auto: float16), a CPU without native bf16 (auto: float32)
    monkeypatch.setattr(dtypes, "auto_dtype", lambda d: torch.float16 if torch.device(d).type == "cuda" else torch.float32)
    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bench_encoder.default_dtypes(torch.device("cuda")) == ["float32", "float16"]
    assert bench_encoder.default_dtypes(torch.device("cpu")) == ["float32"]
    assert bench_sam_attention.arguments(["--device", "cuda", "--tiny", "--out-dir", str(tmp_path)]).dtype == "float16"
    args = gpu_check.arguments(["--out-dir", str(tmp_path)])
    assert (args.dtype, args.train_precision) == ("float16", [])
    assert bench_report.trainer_precision("cuda") == []

    commands = []

    def command(cmd, **popen):
        commands.append(cmd)
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_report, "run_command", command)
    monkeypatch.setattr(bench_report, "STOPPING", {"now": False})
    with pytest.raises(KeyboardInterrupt):
        bench_kflm2.main(["--out", str(tmp_path / "k"), "--datasets", "FreeSolv", "--splits", "random",
                          "--seeds", "1", "--jobs", "1"])
    assert "--bf16" not in commands[0]


def test_default_workers_on_one_core_are_refused_without_naming_an_option(monkeypatch, capsys):
    monkeypatch.setattr(bench_report, "usable_cores", lambda: 1)
    with pytest.raises(SystemExit) as exit_:
        bench_prepare.arguments(["--quick"])
    assert exit_.value.code == 2
    assert "this machine has 1 usable core: the n-worker measurement needs 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        bench_molecules.main(["--limit", "2"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "this machine has 1 usable core: the parallel run needs 2" in err
    assert "--workers" not in err.splitlines()[-1]


def test_progress_of_units_that_write_only_to_files(tmp_path, monkeypatch, capsys):
    log = tmp_path / "train.log"
    log.write_text("$ train\n  5%|5 | 3/60 [00:01<00:20]\r{'loss': 2.5, 'epoch': 0.1}\n 10%|# | 6/60 [00:02<00:18]\r")
    assert experiment_fusion.training_progress(log, "train fusion seed 0") == \
        "    train fusion seed 0: step 6/60, loss 2.5"

    fast = bench_report.progress
    monkeypatch.setattr(bench_report, "progress", lambda poll, every: fast(poll, every=0.02))

    def command(cmd, **popen):  # deepmolm-kflm2, --quiet: a seed file as each seed ends
        out = tmp_path / "FreeSolv_random"
        (out / "seeds").mkdir(parents=True)
        (out / "seeds" / "seed_0.json").write_text("{}")
        (out / "results.json").write_text(json.dumps({"per_seed": [{"seed": 0, "seconds": 1.0}]}))
        time.sleep(0.5)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(bench_report, "run_command", command)
    args = bench_kflm2.argparse.Namespace(out=str(tmp_path), data=str(tmp_path), seeds=2, cache_dir=None, fp32=True)
    bench_kflm2.run_cell("FreeSolv", "random", args)
    assert "FreeSolv       random   1/2 seeds trained" in capsys.readouterr().out


def test_empty_inputs_and_outputs_under_a_file_are_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "header_only.csv").write_text("smiles,expt\n")
    monkeypatch.setattr(sys, "argv", ["bench_prepare.py", "--csv", str(tmp_path / "header_only.csv"),
                                      "--out-dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_:
        bench_prepare.main()
    assert exit_.value.code == 2 and "no molecules (a header line only)" in capsys.readouterr().err

    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SystemExit) as exit_:
        bench_molecules.main(["--csv", str(tmp_path / "empty.csv"), "--workers", "2"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "the file is empty" in err and "None" not in err

    (tmp_path / "model").mkdir()
    (tmp_path / "data.json").write_text("[]")
    (tmp_path / "afile").write_text("")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "eval" / "run_eval.sh"), str(tmp_path / "model"),
                           str(tmp_path / "data.json"), str(tmp_path / "afile" / "sub"), "1"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == f"error: OUT {tmp_path / 'afile' / 'sub'}: {tmp_path / 'afile'} is a file, not a folder\n"


def test_reports_end_with_the_load_and_show_every_seed(tmp_path, monkeypatch):
    # in a child Python: its pool forks, and a fork of this threaded pytest worker can deadlock in the child
    done = subprocess.run([sys.executable, bench_molecules.__file__, "--limit", "2", "--workers", "2", "--out-dir",
                           str(tmp_path), "--name", "m"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    first = (tmp_path / "m.md").read_text().splitlines()[0]
    assert first.startswith("Machine: ") and "at the end" in first
    bench_sam_attention.main(["--tiny", "--repeats", "1", "--out-dir", str(tmp_path), "--name", "a"])
    assert "at the end" in (tmp_path / "a.md").read_text().splitlines()[0]

    targets, seeds = ["t1"], [0, 1, 2]
    arm = {"mae": {"t1": [0.5, 0.25, None]}, "valid_ratio": {"t1": [1.0, 1.0, 0.0]},
           "distinct_answers": {"t1": [1.0, 1.0, 1.0]}}
    results = {"quick": False, "command": "c", "machine": "m", "seeds": seeds, "targets": targets,
               "data": {"molecules": 3, "split": {"sizes": {}}}, "timings_s": {"total": 1.0},
               "settings": {"precision": "fp32"}, "arms": {a: arm for a in experiment_fusion.ARMS},
               "paired": {"x-y": {"t1": {"mean": 0.1, "se": 0.01}}}, "verdict": {"t1": {"ok": True}}}
    monkeypatch.setitem(experiment_fusion.TARGET_KIND, "t1", "kind")
    text = experiment_fusion.markdown(results)
    assert "| fusion | 0.500, 0.250, n/a |" in text and "Training precision: fp32" in text

    def started(*a, **k):
        raise AssertionError("the experiment started work")

    monkeypatch.setattr(experiment_fusion, "build_dataset", started)
    with pytest.raises(SystemExit) as exit_:
        experiment_fusion.main(["--quick", "--size", "large", "--out", str(tmp_path / "o"),
                                "--work", str(tmp_path / "w")])
    assert exit_.value.code == 2
