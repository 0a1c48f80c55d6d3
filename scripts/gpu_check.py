#!/usr/bin/env python
"""The GPU speed checks (encoder throughput, ZeRO training steps), as one prepared script
for a machine with one CUDA device.

1. Encoder throughput: `bench_encoder.py` on CUDA in the dtype "auto" means there (bf16;
   fp16 on a GPU without bf16) at batch 1, 8 and 32 (1024 px views): ours against the
   transformers reference, TFLOP/s and the fraction of the device's matmul peak in that
   dtype measured in the same run, peak memory, max |diff|; ours with
   each SAM attention path asked for (`--sam-attention`, default sdpa and pieces), and
   before that `bench_sam_attention.py` at the largest batch (one block's attention in
   each way and SDPA kernel).
2. Training: a few steps of the real launcher under DeepSpeed ZeRO-2 and ZeRO-3
   (scripts/zero2.json, zero3.json; one process via torch.distributed.run) with the
   real-size DeepEncoder (random weights, frozen) and a small from-scratch Qwen2
   (4 layers, width 512), in bf16 (fp32 on a GPU without it): s/step, samples/s, losses, and again with the
   feature cache cold and warm. --model_max_length leaves room for the view's 273 image
   positions (bench_feature_cache.write_setup).

A check that fails (a launcher that exits non-zero or runs past --run-timeout, an encoder
batch that runs out of memory) is recorded under "failures" with its error, and the
other checks still run; the script then exits 1. The result files are rewritten after the
SAM attention check, after each encoder batch and after each launcher run, so a run cut
short keeps what it measured (was: only after every encoder batch had ended, and a stop
before that said "the report has the checks that ended" of a report this run never wrote);
Ctrl-C or SIGTERM says which check it stopped and what this run wrote.
`--only encoder|training` runs one of the two.

`--dry-run` runs the same code on the CPU at tiny sizes (the `tiny` encoder preset at
batch 1 and 2, a width-64 Qwen2, `--use_cpu True`): what tests/test_gpu_check.py runs, so
the script is known to work before device time is spent on it. It runs what the GPU
runs: SAM attention "sdpa" takes the GPU's ways (global blocks folded, windowed blocks in
pieces; on a CPU "sdpa" is pieces everywhere), the encoder runs in the GPU run's bf16 where
the CPU computes bf16 natively, else in fp32 (the table says which), and the launcher
trains in bf16 autocast as on the GPU (emulated where the CPU lacks bf16: tiny sizes).
Its files go to bench_report.SMOKE_RESULTS unless --out-dir is given, never to
scripts/results.

Needs the project's environment already installed on the device machine (no network
there). Writes scripts/results/gpu_check.json and .md, and each check's own files:
gpu_sam_attention_b<batch> (bench_sam_attention) and gpu_encoder_b<batch>[_<attention>]
(bench_encoder). With --name NAME they are NAME.json/.md, NAME_sam_attention_b<batch> and
NAME_encoder_b<batch>[_<attention>] (was: --name renamed only the report, and a second run
overwrote the per-batch files the first run's report quotes; a rerun with the same --name
replaces its own set, as a rerun of the default does). Runtime on one H200: ~6 min;
--dry-run on 2 CPU cores: ~3 min.

    python scripts/gpu_check.py
    python scripts/gpu_check.py --dry-run --out-dir /tmp/gpu_check
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as bench_encoder.py: before torch

import argparse
import contextlib
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import bench_encoder
import bench_report
import bench_sam_attention
from bench_feature_cache import launcher_args, trainer_metrics, write_setup

from deepmolm_plugin.encoder.config import SAM_ATTENTION

ROOT = Path(__file__).resolve().parents[1]
SMALL_QWEN2 = dict(hidden_size=512, layers=4, heads=8, kv_heads=2, intermediate=1408)


@contextlib.contextmanager
def gpu_attention_ways(dry_run: bool):
    """In the dry run, SAM attention "sdpa" chooses its ways as on a GPU (`folds` asked for
    a CUDA device): on the CPU it never folds, so the GPU's default global-block path,
    folded_rel_pos_attention, went untested until device time was spent."""
    from deepmolm_plugin.encoder import sam_attention

    if not dry_run:
        yield
        return
    import torch

    cpu_rule = sam_attention.folds
    sam_attention.folds = lambda way, device, windowed: cpu_rule(way, torch.device("cuda"), windowed)
    try:
        yield
    finally:
        sam_attention.folds = cpu_rule


DEFAULT_NAME = "gpu_check"


def check_file(args, check: str) -> str:
    """The result-file stem of one check ("sam_attention_b32", "encoder_b8_folded"): under
    the --name stem, so that two runs with two names keep two sets; "gpu_<check>" for the
    default name, the names of the committed scripts/results files the README quotes."""
    return f"{'gpu' if args.name == DEFAULT_NAME else args.name}_{check}"


class Progress:
    """What this run has done, for the line Ctrl-C or SIGTERM prints: the check running
    now, the checks that ended, and whether the report holds them yet."""

    def __init__(self):
        self.running: "str | None" = None
        self.ended: list = []
        self.reported = 0  # how many of `ended` the report file holds

    def start(self, check: str) -> None:
        self.running = check

    def end(self) -> None:
        self.ended.append(self.running)
        self.running = None

    def interrupted(self, report: Path) -> str:
        """One line: which check was stopped, and what this run wrote (was: "the launcher run
        in progress was stopped; the report has the checks that ended", in every stage, when
        no report existed or an older run's stood under the name)."""
        stopped = f"interrupted: {self.running} was stopped" if self.running else "interrupted"
        if not self.reported:
            older = f" ({report} is an earlier run's)" if report.exists() else ""
            return f"{stopped}; no check had ended, so this run wrote no report{older}"
        return (f"{stopped}; {report} and .md have the {self.reported} check(s) that ended: "
                f"{', '.join(self.ended[:self.reported])}")


def encoder_checks(args, failures: list, rows: list, progress: Progress, report) -> None:
    with gpu_attention_ways(args.dry_run):
        measure_encoder(args, failures, rows, progress, report)


def measure_encoder(args, failures: list, rows: list, progress: Progress, report) -> None:
    """The SAM attention check, then a bench_encoder run per attention path and batch:
    their rows appended to `rows`, a failure to `failures`; `report()` after each check."""
    batch = max(args.batches)  # SAM's attention ways alone, one block of each kind
    argv = ["--device", args.device, "--dtype", args.dtype, "--batch", str(batch), "--repeats", str(args.repeats),
            "--out-dir", str(args.out_dir), "--name", check_file(args, f"sam_attention_b{batch}")]
    progress.start(f"SAM attention batch {batch}")
    try:
        bench_sam_attention.main(argv + (["--tiny"] if args.dry_run else []))
    except RuntimeError as e:
        failures.append({"check": progress.running, "error": f"{type(e).__name__}: {e}"[-2000:]})
    progress.end()
    report()
    for attention, batch in ((a, b) for a in args.sam_attention for b in args.batches):
        suffix = "" if attention == "sdpa" else f"_{attention}"
        argv = ["--device", args.device, "--dtypes", args.dtype, "--batch", str(batch), "--repeats", str(args.repeats),
                "--sam-attention", attention, "--out-dir", str(args.out_dir),
                "--name", check_file(args, f"encoder_b{batch}{suffix}")]
        if args.dry_run:
            argv += ["--tiny"]
        check = f"encoder batch {batch} ({attention})"
        progress.start(check)
        try:
            result = bench_encoder.main(argv)
        except RuntimeError as e:  # CUDA out of memory is one: the other batches' rows stand
            failures.append({"check": check, "error": f"{type(e).__name__}: {e}"[-2000:]})
            print(f"{check} FAILED: {failures[-1]['error']}", flush=True)
            progress.end()
            report()
            continue
        rows.extend(encoder_rows(result, batch, attention))
        progress.end()
        report()


def encoder_rows(report: dict, batch: int, attention: str) -> list:
    """The report's rows of one bench_encoder run."""
    rows = []
    for r in report["results"]:
        d = report["per_dtype"][r["dtype"]]
        rows.append({"batch": batch, "impl": r["impl"], "sam_attention": attention if r["impl"] == "ours" else "-",
                     "dtype": r["dtype"], "latency_s": r["latency_s"],
                     "tflops": r["tflops"], "device_peak_tflops": d["gemm_peak_tflops"],
                     "fraction_of_peak": r["fraction_of_bound"], "peak_mib": r["peak_mib"],
                     "max_abs_diff": d["max_abs_diff"]})
    return rows


def descendants(pid: int) -> list:
    """Every process below `pid` (Linux /proc): children, their children, ..."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, ...
        except (OSError, IndexError):  # the process ended while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_group(cmd: list, cwd: Path, env: dict, timeout: float, grace: float = 10.0) -> "tuple[int | None, str]":
    """Run `cmd`: (exit code, or None when it ran past `timeout` and was stopped; its stderr).

    torch.distributed.run starts each worker in a session of its own, so killing the
    launcher's process group leaves the workers running, holding the GPU and the stderr
    pipe. Past the timeout: every descendant is listed first, the launcher gets SIGTERM
    (on which it stops its workers itself) and `grace` seconds, then whatever is left of
    them gets SIGKILL. stderr goes to a file, which no leftover process can hold open.
    Ctrl-C (or SIGTERM, which main turns into it) stops the tree the same way and is raised
    again: the launcher, in a session of its own, does not see the terminal's Ctrl-C, and
    kept training (on the GPU) after the script had ended and deleted its folder."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_tree(proc, grace)
            returncode = None
        except BaseException:
            stop_tree(proc, grace)
            raise
        err.seek(0)
        return returncode, err.read()


def stop_tree(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the launcher, `grace` seconds, then SIGKILL to it and to every process that
    was below it when we started (its workers, each in a session of its own)."""
    tree = descendants(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    for pid in [proc.pid, *tree]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # already gone
            pass
    proc.wait()


def training_checks(args, tmp: Path, failures: list, rows: list, progress: Progress, report) -> None:
    """Append a row per launcher run to `rows` (a failure to `failures`), calling `report()`
    after each run."""
    preset = "tiny" if args.dry_run else "deepseek-ocr"
    setup = write_setup(tmp / "setup", preset, **({} if args.dry_run else SMALL_QWEN2))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.dry_run:
        env["OMP_NUM_THREADS"] = "1"
    for stage, cache in [("zero2", None), ("zero3", None), ("zero2", "cold"), ("zero2", "warm")]:
        check = f"{stage} (feature cache {cache or 'off'})"
        progress.start(f"the launcher run {check}")
        if cache == "warm" and any(f["check"] == "zero2 (feature cache cold)" for f in failures):
            error, stderr = "skipped: the cold run that fills the cache failed", ""
        else:
            error, stderr, metrics = launch(args, setup, tmp, env, stage, cache)
        if error:
            failures.append({"check": check, "error": error, "stderr": stderr[-4000:]})
            print(f"{check} FAILED: {error}\n{stderr[-4000:]}", flush=True)
        else:
            rows.append({"zero": stage, "feature_cache": cache or "off", **metrics})
            print(f"{stage} cache {cache or 'off':4s} {metrics['step_s']:.3f} s/step {metrics['samples_per_s']:.2f} "
                  f"samples/s losses {[round(x, 3) for x in metrics['losses']]}", flush=True)
        progress.end()
        report()


def launch(args, setup: dict, tmp: Path, env: dict, stage: str, cache: "str | None") -> tuple:
    """One launcher run under DeepSpeed `stage` (one process via torch.distributed.run):
    (error or None, its stderr, its metrics with `process_s`)."""
    out = tmp / f"{stage}_{cache or 'nocache'}"
    argv = launcher_args(setup, out, args.steps, args.train_batch)
    argv += ["--deepspeed", str(ROOT / "scripts" / f"{stage}.json")]
    # args.train_precision: bf16 where the GPU has it, and in the dry run too (see arguments)
    argv += args.train_precision + (["--use_cpu", "True"] if args.dry_run else [])
    if cache:
        argv += ["--vision_feature_cache", str(tmp / "features")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
           "-m", "deepmolm_plugin.train", *argv]
    began = time.perf_counter()
    returncode, stderr = run_group(cmd, tmp, env, args.run_timeout)
    if returncode != 0:
        return (f"no result after {args.run_timeout} s" if returncode is None else f"exited {returncode}"), stderr, None
    try:
        metrics = trainer_metrics(out, args.steps)
    except (OSError, ValueError, KeyError, StopIteration) as e:  # exit 0 without a usable trainer_state.json
        return f"exited 0 but left no training metrics ({type(e).__name__}: {e})", stderr, None
    return None, stderr, {**metrics, "process_s": time.perf_counter() - began}


def write_report(args, machine: dict, encoder: list, training: list, failures: list, began: float,
                 final: bool, progress: Progress) -> None:
    """gpu_check.json / .md: written after each check, so a run cut short keeps what it
    measured ("complete": false and a line saying so until the last write); the final one
    is also printed."""
    bench_report.run_ended(machine)  # each write: the latest load average
    precision = "bf16" if args.train_precision else "fp32"
    dry = ("CPU dry run, tiny sizes, SAM attention 'sdpa' in the GPU's ways; encoder in "
           f"{args.dtype}{'' if args.dtype == 'bfloat16' else ' (no native bf16 on this CPU)'}. ") if args.dry_run else ""
    md = [f"{bench_report.machine_line(machine)}. {dry}Training in {precision}.",
          bench_report.table(
              ["batch", "impl", "SAM attention", "dtype", "latency s", "TFLOP/s", "device peak TFLOP/s", "% of peak",
               "peak MiB"],
              [[r["batch"], r["impl"], r["sam_attention"], r["dtype"], r["latency_s"], r["tflops"], r["device_peak_tflops"],
                round(100 * r["fraction_of_peak"], 1), round(r["peak_mib"], 1)] for r in encoder]),
          bench_report.table(
              ["ZeRO", "feature cache", "s/step", "samples/s", "first loss", "last loss"],
              [[r["zero"], r["feature_cache"], r["step_s"], r["samples_per_s"], r["losses"][0], r["losses"][-1]]
               for r in training])]
    if failures:
        md.append("Failed: " + "; ".join(f"{f['check']}: {f['error']}" for f in failures))
    if not final:
        md.append(f"Incomplete: written after {progress.ended[-1]}, while the run went on.")
    report = {"machine": machine, "dry_run": args.dry_run, "encoder_dtype": args.dtype, "train_precision": precision,
              "complete": final, "checks_ended": list(progress.ended), "encoder": encoder, "training": training,
              "failures": failures, "runtime_s": time.perf_counter() - began}
    (bench_report.publish if final else bench_report.write)(args.name, report, md, args.out_dir)
    progress.reported = len(progress.ended)


def arguments(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: the same code path")
    p.add_argument("--only", choices=["encoder", "training"], help="run one of the two checks")
    p.add_argument("--batches", type=bench_report.at_least(1, bench_encoder.MAX_BATCH), nargs="+", default=None,
                   help="encoder batches (default 1 8 32)")
    p.add_argument("--sam-attention", nargs="+", choices=SAM_ATTENTION, default=None,
                   help="ours' SAM attention paths to measure (default: sdpa pieces)")
    p.add_argument("--steps", type=bench_report.at_least(1), default=4, help="training steps per launcher run")
    p.add_argument("--train-batch", type=bench_report.at_least(1), default=2)
    p.add_argument("--repeats", type=bench_report.at_least(1), default=None,
                   help="encoder timing rounds (default 5; --dry-run: 1)")
    p.add_argument("--run-timeout", type=bench_report.at_least(1), default=240,
                   help="seconds one launcher run may take before it counts as failed")
    p.add_argument("--out-dir", type=bench_report.out_dir, default=None,
                   help="default scripts/results; --dry-run: bench_report.SMOKE_RESULTS")
    p.add_argument("--name", type=bench_report.result_name, default="gpu_check")
    args = p.parse_args(argv)
    import torch

    if args.dry_run:
        # the dry run fills in only the values not given (--dry-run --repeats 3 ran 1 round)
        args.device = "cpu"
        # the GPU run's bf16 where this CPU has it natively; emulated bf16 would only be slow
        args.dtype = "bfloat16" if bench_report.native_bf16("cpu") else "float32"
        # bf16 autocast even where emulated (tiny sizes): the GPU run's mixed-precision path,
        # where the projector's fp32 parameters meet bf16 activations (a crash found only there)
        args.train_precision = ["--bf16", "True"]
        args.repeats = args.repeats or 1
        args.batches = args.batches or [1, 2]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --dry-run for the CPU rehearsal")
        args.device = "cuda"
        args.dtype = bench_report.auto_dtype_name("cuda")  # fp16 on a GPU without bf16
        args.train_precision = bench_report.trainer_precision("cuda")
        args.repeats = args.repeats or 5
        args.batches = args.batches or [1, 8, 32]
    args.out_dir = bench_report.results_folder(p, "--out-dir", args.out_dir, "--dry-run" if args.dry_run else None)
    args.sam_attention = args.sam_attention or ["sdpa", "pieces"]
    refuse_check_file_name(p, args.name)
    bench_report.refuse_repeats(p, "--sam-attention", args.sam_attention)
    bench_report.refuse_repeats(p, "--batches", args.batches)
    return args


def refuse_check_file_name(parser, name: str) -> None:
    """parser.error for a --name that is, or could be, another run's per-check file: "gpu"
    (the default run's stem, check_file) or NAME_encoder_b<batch> / NAME_sam_attention_b<batch>
    (its report would replace that run's numbers)."""
    if name == "gpu" or re.search(r"_(encoder|sam_attention)_b[0-9]", name):
        parser.error(f"--name {name}: the name of a per-check result file of another run "
                     "(gpu_encoder_b1, NAME_sam_attention_b32, ...); choose another")


def main(argv=None) -> int:
    args = arguments(argv)

    def stop(signum, frame):  # SIGTERM (a job's time limit) stops the launcher as Ctrl-C does
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    progress = Progress()
    try:
        return checks(args, progress)
    except KeyboardInterrupt:
        print(progress.interrupted(args.out_dir / f"{args.name}.json"), file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def checks(args, progress: Progress) -> int:
    began = time.perf_counter()
    machine = bench_report.machine()
    encoder, training, failures = [], [], []

    def report():
        write_report(args, machine, encoder, training, failures, began, False, progress)

    if args.only != "training":
        encoder_checks(args, failures, encoder, progress, report)
    if args.only != "encoder":
        with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
            training_checks(args, Path(tmp), failures, training, progress, report)
    write_report(args, machine, encoder, training, failures, began, True, progress)
    if failures:
        print(f"{len(failures)} check(s) FAILED: " + "; ".join(f["check"] for f in failures), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
