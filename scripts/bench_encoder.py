"""Benchmark our DeepEncoder against the transformers reference on one view.

Why: our tower replaces segment-anything's attention with SDPA and drives open_clip's
Transformer itself; this measures what that buys (latency, achieved TFLOP/s, peak
memory) against an independent transformers build of the same network with the same
random weights, and prints their max |difference| as a check that the math is equal.

Usage:
    .venv/bin/python scripts/bench_encoder.py                  # 1024 px, batch 1, fp32 + bf16
    .venv/bin/python scripts/bench_encoder.py --tiny           # seconds-long smoke run
    .venv/bin/python scripts/bench_encoder.py --device cuda --batch 4 --dtypes bfloat16 \
        --image-size 640 --repeats 5 --out bench_640.json

Peak memory is the forward's own: on CUDA max_memory_allocated above the resident
weights; on CPU the process RSS, sampled every 2 ms in a thread, above its value before
the timed runs. "process CPU s" is the CPU time of all the process's threads per forward:
on a machine shared with other jobs it varies less than wall time. Writes all numbers
as JSON to --out.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import json
import math
import os
import statistics
import sys
import threading
import time
from typing import Tuple, Callable, Dict, List

import torch
import transformers

from deepmolm_plugin.encoder import DeepEncoder, DeepEncoderConfig, encoder_config, to_deepseek_layout
from deepmolm_plugin.encoder.config import resolve_dtype
from deepmolm_plugin.encoder.hf_reference import DeepEncoderReference

try:
    import psutil
except ImportError:  # optional: only used where /proc/self/statm is absent
    psutil = None

# DeepSeek-OCR's DeepEncoder: forward cost of one 1024 px view, counting matmuls and convs as
# 2 FLOPs per multiply-add. encoder_flops() reproduces it from the config (1.138e12).
DESIGN_FLOPS_1024 = 1.14e12



def encoder_flops(config: DeepEncoderConfig, side: int) -> float:
    """Forward FLOPs (2 x multiply-adds of matmuls and convs) for one square view."""
    C, g = config.sam_width, side // config.patch_size  # SAM width, grid side (64 at 1024)
    T, mlp = g * g, int(C * config.sam_mlp_ratio)
    macs = T * 3 * config.patch_size**2 * C  # patch conv
    for i in range(config.sam_depth):
        win = g if i in config.sam_global_attn_indexes else config.sam_window_size
        n_win, L = math.ceil(g / win) ** 2, win * win  # windows (grid padded to a multiple), tokens each
        macs += n_win * L * 4 * C * C  # qkv + proj, on padded windows
        macs += n_win * (2 * L * L * C + L * 2 * win * C)  # QK^T, AV, decomposed rel-pos
        macs += T * 2 * C * mlp  # MLP
    out = config.sam_out_chans
    macs += T * (C * out + 9 * out * out)  # neck: conv1x1, conv3x3
    cin, side_tokens = out, g
    for ch in config.compressor_channels:  # 3x3 stride-2 convs
        side_tokens = (side_tokens + 1) // 2
        macs += side_tokens**2 * 9 * cin * ch
        cin = ch
    n, D = side_tokens**2 + 1, config.clip_width  # CLIP tokens incl. CLS
    macs += config.clip_layers * (n * 4 * D * D + 2 * n * n * D + n * 2 * D * int(D * config.clip_mlp_ratio))
    return 2.0 * macs


def rss_bytes() -> int:
    """Resident memory of this process: /proc/self/statm (cheap) on Linux, else psutil."""
    if os.path.exists("/proc/self/statm"):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    if psutil is None:
        raise RuntimeError("CPU peak memory needs /proc/self/statm or psutil")
    return psutil.Process().memory_info().rss


def release_cpu_memory() -> None:
    """Free what the allocator still holds so RSS baselines are comparable."""
    gc.collect()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakRss:
    """Context manager: peak process RSS above its value at entry, sampled in a thread."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s

    def __enter__(self) -> "PeakRss":
        self.baseline = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def delta(self) -> int:
        return self.peak - self.baseline


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_forward(model: torch.nn.Module, x: torch.Tensor) -> Tuple[float, float]:
    """One forward: (wall seconds, process CPU seconds)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    model(x)
    _sync(x.device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def peak_memory_mib(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Peak memory of one forward above what was held before it."""
    if x.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(x.device)
        baseline = torch.cuda.memory_allocated(x.device)
        model(x)
        _sync(x.device)
        return (torch.cuda.max_memory_allocated(x.device) - baseline) / 2**20
    release_cpu_memory()
    with PeakRss() as mem:
        model(x)
    return mem.delta / 2**20


def measure_interleaved(models: Dict[str, torch.nn.Module], x: torch.Tensor, repeats: int) -> Dict[str, Dict]:
    """Warm up every model, then time them in alternating rounds (the order flips each
    round), so drift and other load on the machine hit every implementation alike."""
    results = {}
    with torch.inference_mode():
        for name, model in models.items():
            out = model(x)  # warm-up; (B, N, 2048)
            _sync(x.device)
            results[name] = {"output": out.float().cpu(), "times_s": [], "cpu_times_s": []}
        names = list(models)
        for round_ in range(repeats):
            for name in names if round_ % 2 == 0 else names[::-1]:
                wall, cpu = timed_forward(models[name], x)
                results[name]["times_s"].append(wall)
                results[name]["cpu_times_s"].append(cpu)
        for name, model in models.items():
            results[name]["peak_mib"] = peak_memory_mib(model, x)
    for r in results.values():
        r["latency_s"] = statistics.median(r["times_s"])
        r["cpu_s"] = statistics.median(r["cpu_times_s"])
    return results


def random_encoder(config: DeepEncoderConfig) -> DeepEncoder:
    """Random weights, with SAM's zero-initialised position tables made non-zero."""
    model = DeepEncoder(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "rel_pos" in name or name == "sam.pos_embed":
                p.normal_(0.0, 0.02)
    return model


def main(argv: "List[str] | None" = None) -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                        choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=None, help="default: the config's (1024)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="tiny config, for a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_encoder.json")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    config = encoder_config("tiny" if args.tiny else "deepseek-ocr")
    side = args.image_size or config.image_size
    flops = args.batch * encoder_flops(config, side)
    base = random_encoder(config)
    state = {k: v.detach().clone() for k, v in to_deepseek_layout(base).items()}  # fp32, CPU
    pixels = torch.randn(args.batch, 3, side, side)

    builders: Dict[str, Callable[[torch.dtype], torch.nn.Module]] = {
        "ours": lambda dtype: copy.deepcopy(base).to(device=device, dtype=dtype),
        "reference": lambda dtype: DeepEncoderReference.from_deepseek_state(state, config, dtype=dtype).to(device),
    }
    print(f"device {device} ({torch.get_num_threads()} CPU threads), batch {args.batch}, {side} px, "
          f"{flops / 1e12:.4g} TFLOP per forward (DeepEncoder: {DESIGN_FLOPS_1024 / 1e12:.2f} per 1024 view)",
          flush=True)
    results, diffs = [], {}
    fp32_out = None  # ours in fp32, once measured: (B, N, 2048)
    for dtype_name in args.dtypes:
        dtype = resolve_dtype(dtype_name)
        x = pixels.to(device=device, dtype=dtype)
        models = {impl: build(dtype) for impl, build in builders.items()}
        measured = measure_interleaved(models, x, args.repeats)
        del models
        release_cpu_memory()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        outputs = {}
        for impl, r in measured.items():
            outputs[impl] = r.pop("output")
            r.update(impl=impl, dtype=dtype_name, tflops=flops / r["latency_s"] / 1e12)
            if fp32_out is not None:  # how far reduced precision moves each implementation
                r["max_abs_diff_vs_fp32_ours"] = (outputs[impl] - fp32_out).abs().max().item()
            results.append(r)
            print(f"  {impl:9s} {dtype_name:8s} {r['latency_s']:.3f} s", flush=True)
        diffs[dtype_name] = (outputs["ours"] - outputs["reference"]).abs().max().item()
        if dtype == torch.float32:
            fp32_out = outputs["ours"]

    print("\n| impl | dtype | latency s | TFLOP/s | peak MiB | process CPU s | max abs diff vs ours fp32 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        vs_fp32 = r.get("max_abs_diff_vs_fp32_ours")
        print(f"| {r['impl']} | {r['dtype']} | {r['latency_s']:.3f} | {r['tflops']:.3g} | {r['peak_mib']:.1f} "
              f"| {r['cpu_s']:.2f} | {'-' if vs_fp32 is None else f'{vs_fp32:.2e}'} |")
    ratios = {}
    print("\n| dtype | latency ours/ref | peak ours/ref | max abs diff ours vs ref |\n|---|---:|---:|---:|")
    for dtype_name in args.dtypes:
        ours, ref = (next(r for r in results if r["impl"] == i and r["dtype"] == dtype_name)
                     for i in ("ours", "reference"))
        ratios[dtype_name] = {
            "latency": ours["latency_s"] / ref["latency_s"],
            "peak_mib": ours["peak_mib"] / ref["peak_mib"] if ref["peak_mib"] > 0 else None,
        }
        peak_ratio = ratios[dtype_name]["peak_mib"]
        print(f"| {dtype_name} | {ratios[dtype_name]['latency']:.2f} | "
              f"{'n/a' if peak_ratio is None else f'{peak_ratio:.2f}'} | {diffs[dtype_name]:.2e} |")

    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "config": config.to_dict(),
        "image_size": side,
        "batch": args.batch,
        "repeats": args.repeats,
        "flops_per_forward": flops,
        "results": results,
        "ratios_ours_over_reference": ratios,
        "max_abs_diff": diffs,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()
