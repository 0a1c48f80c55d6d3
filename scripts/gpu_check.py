#!/usr/bin/env python
"""The GPU checks of issue 14, as one prepared script for a machine with one CUDA device.

1. Encoder throughput: `bench_encoder.py` on CUDA in bf16 at batch 1, 8 and 32 (1024 px
   views): ours against the transformers reference, TFLOP/s and the fraction of the
   device's bf16 matmul peak measured in the same run, peak memory, max |diff|.
2. Training: a few steps of the real launcher under DeepSpeed ZeRO-2 and ZeRO-3
   (scripts/zero2.json, zero3.json; one process via torch.distributed.run) with the
   real-size DeepEncoder (random weights, frozen) and a small from-scratch Qwen2
   (4 layers, width 512), in bf16: s/step, samples/s, losses, and again with the
   feature cache cold and warm.

`--dry-run` runs the same code on the CPU at tiny sizes (the `tiny` encoder preset at
batch 1 and 2, a width-64 Qwen2, fp32, `--use_cpu True`): what tests/test_gpu_check.py
runs, so the script is known to work before device time is spent on it.

Needs the project's environment already installed on the device machine (no network
there). Writes scripts/results/gpu_check.json and .md (and bench_encoder's own
gpu_encoder_b<batch> files). Runtime on one H200: ~6 min; --dry-run on 2 CPU cores: ~3 min.

    python scripts/gpu_check.py
    python scripts/gpu_check.py --dry-run --out-dir /tmp/gpu_check
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as bench_encoder.py: before torch

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import bench_encoder
import bench_report
from bench_feature_cache import launcher_args, trainer_metrics, write_setup

ROOT = Path(__file__).resolve().parents[1]
SMALL_QWEN2 = dict(hidden_size=512, layers=4, heads=8, kv_heads=2, intermediate=1408)


def encoder_checks(args) -> list:
    rows = []
    for batch in args.batches:
        argv = ["--device", args.device, "--dtypes", args.dtype, "--batch", str(batch), "--repeats", str(args.repeats),
                "--out-dir", str(args.out_dir), "--name", f"gpu_encoder_b{batch}"]
        if args.dry_run:
            argv += ["--tiny"]
        report = bench_encoder.main(argv)
        for r in report["results"]:
            d = report["per_dtype"][r["dtype"]]
            rows.append({"batch": batch, "impl": r["impl"], "dtype": r["dtype"], "latency_s": r["latency_s"],
                         "tflops": r["tflops"], "device_peak_tflops": d["gemm_peak_tflops"],
                         "fraction_of_peak": r["fraction_of_bound"], "peak_mib": r["peak_mib"],
                         "max_abs_diff": d["max_abs_diff"]})
    return rows


def training_checks(args, tmp: Path) -> list:
    preset = "tiny" if args.dry_run else "deepseek-ocr"
    setup = write_setup(tmp / "setup", preset, **({} if args.dry_run else SMALL_QWEN2))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.dry_run:
        env["OMP_NUM_THREADS"] = "1"
    rows = []
    runs = [("zero2", None), ("zero3", None), ("zero2", "cold"), ("zero2", "warm")]
    for stage, cache in runs:
        out = tmp / f"{stage}_{cache or 'nocache'}"
        argv = launcher_args(setup, out, args.steps, args.train_batch)
        argv += ["--deepspeed", str(ROOT / "scripts" / f"{stage}.json")]
        # The dry run trains in bf16 too (CPU autocast): the same mixed-precision path, where
        # the projector's fp32 parameters meet bf16 activations (a crash found only there).
        argv += ["--bf16", "True"] + (["--use_cpu", "True"] if args.dry_run else [])
        if cache:
            argv += ["--vision_feature_cache", str(tmp / "features")]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               "-m", "deepmolm_plugin.train", *argv]
        began = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, text=True, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"{stage} ({cache or 'no cache'}) exited {proc.returncode}:\n{proc.stderr[-6000:]}")
        metrics = trainer_metrics(out, args.steps)
        rows.append({"zero": stage, "feature_cache": cache or "off", **metrics,
                     "process_s": time.perf_counter() - began})
        print(f"{stage} cache {cache or 'off':4s} {metrics['step_s']:.3f} s/step {metrics['samples_per_s']:.2f} "
              f"samples/s losses {[round(x, 3) for x in metrics['losses']]}", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: the same code path")
    p.add_argument("--batches", type=int, nargs="+", default=None, help="encoder batches (default 1 8 32)")
    p.add_argument("--steps", type=int, default=4, help="training steps per launcher run")
    p.add_argument("--train-batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out-dir", type=Path, default=bench_report.RESULTS)
    p.add_argument("--name", default="gpu_check")
    args = p.parse_args(argv)
    import torch

    if args.dry_run:
        args.device, args.dtype, args.repeats = "cpu", "float32", 1
        args.batches = args.batches or [1, 2]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --dry-run for the CPU rehearsal")
        args.device, args.dtype = "cuda", "bfloat16"
        args.batches = args.batches or [1, 8, 32]

    began = time.perf_counter()
    machine = bench_report.machine()
    encoder = encoder_checks(args)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        training = training_checks(args, Path(tmp))
    md = [f"Machine: {bench_report.machine_line(machine)}. {'CPU dry run, tiny sizes' if args.dry_run else ''}",
          bench_report.table(
              ["batch", "impl", "dtype", "latency s", "TFLOP/s", "device peak TFLOP/s", "% of peak", "peak MiB"],
              [[r["batch"], r["impl"], r["dtype"], r["latency_s"], r["tflops"], r["device_peak_tflops"],
                round(100 * r["fraction_of_peak"], 1), round(r["peak_mib"], 1)] for r in encoder]),
          bench_report.table(
              ["ZeRO", "feature cache", "s/step", "samples/s", "first loss", "last loss"],
              [[r["zero"], r["feature_cache"], r["step_s"], r["samples_per_s"], r["losses"][0], r["losses"][-1]]
               for r in training])]
    report = {"machine": machine, "dry_run": args.dry_run, "encoder": encoder, "training": training,
              "runtime_s": time.perf_counter() - began}
    bench_report.publish(args.name, report, md, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
