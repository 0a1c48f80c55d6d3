#!/usr/bin/env python
"""SAM's rel-pos attention alone: the bias built in pieces ("pieces") against the rel-pos
terms folded into q and k ("folded"), per SDPA kernel, at one block's shapes (results
before this naming called the pieces way "sdpa (bias pieces)").

For each block kind of the 1024 px encoder (global: 64 x 64 tokens; windowed: 25 windows
of 14 x 14) at --batch views, times the attention of one block (its rel-pos terms and the
attention, not qkv or proj) in each way, and, as the reference in the same process, the
same attention without any rel-pos bias (what no implementation can beat): latency, ratio
to the pieces, TFLOP/s counting the plain attention's 4 * tokens^2 * dim FLOPs per head
(so a way that does more work shows as slower, not busier). "folded/<kernel>" forces one
SDPA kernel (torch.nn.attention.sdpa_kernel); one that does not take the shapes is
reported as such. "v unpadded": v keeps its 64 channels, so the flash kernels (one head
size for q, k and v) cannot run it, and the others do 1x instead of 3x the PV work. Every way's output is checked against the pieces' (max |diff|).

    python scripts/bench_sam_attention.py --batch 32            # CUDA, dtype "auto" (bf16; fp16 on older GPUs)
    python scripts/bench_sam_attention.py --tiny                 # CPU smoke run (tests)

Writes scripts/results/<name>.json and .md (--out-dir; --tiny is a smoke run:
bench_report.SMOKE_RESULTS, never scripts/results).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

import bench_report
from bench_encoder import MAX_BATCH, _sync

from deepmolm_plugin.encoder.sam_attention import folded_rel_pos_attention, rel_pos_attention, rel_pos_terms

# (kind, grid side, windows per view): the 1024 px encoder's two attention shapes
BLOCKS = {"global": (64, 1), "windowed": (14, 25)}
TINY_BLOCKS = {"global": (8, 1), "windowed": (5, 4)}


def kernels() -> Dict[str, object]:
    """SDPA kernels to force one at a time, by name (those this torch has)."""
    from torch.nn.attention import SDPBackend

    names = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION", "math": "MATH"}
    return {name: getattr(SDPBackend, attr) for name, attr in names.items() if hasattr(SDPBackend, attr)}


def ways() -> Dict[str, Callable]:
    """name -> fn(q, k, v, rel_pos_h, rel_pos_w, size): the attention of one block."""
    def pieces(q, k, v, rh, rw, size):
        return rel_pos_attention(q, k, v, *rel_pos_terms(q, rh, rw, size))

    def folded(pad_value: bool):
        def run(q, k, v, rh, rw, size):
            return folded_rel_pos_attention(q, k, v, *rel_pos_terms(q, rh, rw, size), pad_value=pad_value)
        return run

    def forced(kernel, way):
        from torch.nn.attention import sdpa_kernel

        def run(*a):
            with sdpa_kernel([kernel]):
                return way(*a)
        return run

    def no_bias(q, k, v, rh, rw, size):
        return F.scaled_dot_product_attention(q, k, v)

    found = {"pieces": pieces}
    for label, pad_value in (("folded", True), ("folded, v unpadded", False)):
        found[label] = folded(pad_value)
        found.update({f"{label}/{name}": forced(kernel, folded(pad_value)) for name, kernel in kernels().items()})
    found["no rel-pos (reference)"] = no_bias
    return found


def time_it(fn: Callable, args: tuple, device: torch.device, repeats: int) -> List[float]:
    """Seconds per call: a warm-up, then `repeats` samples (on CUDA each of 5 back-to-back calls)."""
    per_sample = 5 if device.type == "cuda" else 1
    fn(*args)
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per_sample):
            fn(*args)
        _sync(device)
        times.append((time.perf_counter() - start) / per_sample)
    return times


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                        help="default: on CUDA what dtype 'auto' means there (bfloat16, float16 on older GPUs); "
                             "float32 on CPU")
    parser.add_argument("--batch", type=bench_report.at_least(1, MAX_BATCH), default=1, help="1024 px views")
    parser.add_argument("--repeats", type=bench_report.at_least(1), default=5)
    parser.add_argument("--tiny", action="store_true", help="small grids and heads, for a smoke run")
    parser.add_argument("--out-dir", type=bench_report.out_dir, default=None,
                        help="default scripts/results; --tiny: bench_report.SMOKE_RESULTS")
    parser.add_argument("--name", type=bench_report.result_name, default=None,
                        help="result file name (default bench_sam_attention_<device>_b<batch>[_tiny])")
    args = parser.parse_args(argv)
    try:
        args.device = torch.device(args.device)
    except RuntimeError as e:
        parser.error(f"--device {args.device!r}: {e}")
    if args.device.type not in ("cpu", "cuda"):  # meta: a .item() traceback; mps, xla: dispatcher errors
        parser.error(f"--device {str(args.device)!r}: the benchmark runs on cpu or cuda")
    if args.device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA device")
    # CUDA: "auto" (bf16 was hard-coded, on GPUs without it too); CPU: fp32, the ways compared
    # exactly (max |diff| against the pieces), as in the committed CPU results
    args.dtype = args.dtype or (bench_report.auto_dtype_name(args.device) if args.device.type == "cuda" else "float32")
    args.out_dir = bench_report.results_folder(parser, "--out-dir", args.out_dir, bench_report.smoke_mode(args, "--tiny"))
    args.name = args.name or f"bench_sam_attention_{args.device.type}_b{args.batch}{'_tiny' if args.tiny else ''}"
    return args


def main(argv=None) -> dict:
    args = arguments(argv)
    device, dtype = args.device, getattr(torch, args.dtype)
    began = time.perf_counter()
    torch.manual_seed(0)
    heads, dim = (2, 8) if args.tiny else (12, 64)
    machine = bench_report.machine()
    rows = []
    for kind, (side, windows) in (TINY_BLOCKS if args.tiny else BLOCKS).items():
        n, tokens = args.batch * windows, side * side
        q, k, v = (torch.randn(n, heads, tokens, dim, device=device, dtype=dtype) for _ in range(3))
        rel_h, rel_w = (torch.randn(2 * side - 1, dim, device=device, dtype=dtype) * 0.5 for _ in range(2))
        flops = 4.0 * n * heads * tokens**2 * dim
        inputs = (q, k, v, rel_h, rel_w, (side, side))
        with torch.inference_mode():
            expected = ways()["pieces"](*inputs).float()
            base = None
            for name, fn in ways().items():
                row = {"block": kind, "way": name, "views": args.batch, "tokens": tokens}
                try:
                    out = fn(*inputs)
                except RuntimeError as e:  # a forced kernel that does not take these shapes
                    rows.append({**row, "error": str(e).splitlines()[0][:160]})
                    print(f"{kind:8s} {name:24s} not run: {rows[-1]['error']}", flush=True)
                    continue
                diff = math.nan if name.startswith("no rel-pos") else (out.float() - expected).abs().max().item()
                del out
                latency = statistics.median(time_it(fn, inputs, device, args.repeats))
                base = base or latency
                rows.append({**row, "latency_ms": latency * 1e3, "ratio_to_pieces": latency / base,
                             "tflops": flops / latency / 1e12, "max_abs_diff": diff})
                print(f"{kind:8s} {name:24s} {latency * 1e3:9.3f} ms  {latency / base:5.2f}x  "
                      f"{flops / latency / 1e12:7.2f} TFLOP/s  max|diff| {diff:.2e}", flush=True)
        del q, k, v, expected
    bench_report.run_ended(machine)
    report = {"machine": machine, "device": str(device), "dtype": args.dtype, "batch": args.batch, "tiny": args.tiny,
              "heads": heads, "head_dim": dim, "results": rows, "runtime_s": time.perf_counter() - began}
    markdown = [f"{bench_report.machine_line(machine)}. {args.dtype}, {args.batch} view(s) of 1024 px"
                f"{' (tiny shapes)' if args.tiny else ''}, one block's attention, median of {args.repeats}.",
                bench_report.table(
                    ["block", "way", "latency ms", "x pieces", "TFLOP/s", "max abs diff"],
                    [[r["block"], r["way"], r["latency_ms"], r["ratio_to_pieces"], r["tflops"],
                      f"{r['max_abs_diff']:.2e}" if not math.isnan(r["max_abs_diff"]) else "-"]
                     if "error" not in r else [r["block"], r["way"], "-", "-", "-", f"not run: {r['error']}"]
                     for r in rows])]
    bench_report.publish(args.name, report, markdown, args.out_dir)
    return report


if __name__ == "__main__":
    bench_report.interruptible(main, resumes=False)
