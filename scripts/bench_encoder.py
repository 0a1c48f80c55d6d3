"""Our DeepEncoder against the transformers reference and against the machine's matmul peak.

Why: the tower should run at the machine's compute bound. Per dtype this measures, in one
process and from the same random weights:
- the GEMM peak: the best of a large square matmul in that dtype (n = 4096 on CPU, 8192
  on CUDA; --gemm-n), measured before and after the models;
- the bound: the encoder's FLOPs (1.14 TFLOP per 1024 view, `encoder_flops`) / that peak;
- each implementation's latency (median of alternating rounds, the order flipping each
  round, so load on the machine hits both alike; in a round each runs twice, the second
  forward timed), the fraction of the bound it reaches, its peak memory (in a separate
  forward after the timed rounds) and its max |difference| from the reference;
- the goal of issue 14: ours <= max(0.5 x the reference's latency, 1.15 x the bound),
  and max |diff| <= 1e-4 in fp32.

Usage (runtimes on a 2-core AVX2 EPYC, idle; the reference's bf16 is emulated there, so
the default dtypes are float32 plus what dtype "auto" means on the device where that is not
float32: bfloat16 on GPUs and CPUs that compute it natively, float16 on older GPUs):
    .venv/bin/python scripts/bench_encoder.py            # 1024 px, batch 1, 3 rounds: ~3.5 min
    .venv/bin/python scripts/bench_encoder.py --quick    # 1 round, smaller GEMM probe: ~1.5 min
    .venv/bin/python scripts/bench_encoder.py --tiny     # tiny preset, 128 px: seconds (tests)
    .venv/bin/python scripts/bench_encoder.py --device cuda --dtypes bfloat16 --batch 8

Writes scripts/results/bench_encoder_<device>.json and .md (--out-dir, --name; --quick and
--tiny are smoke runs: bench_report.SMOKE_RESULTS, never scripts/results). On CPU,
PyTorch's transparent-huge-page allocation (THP_MEM_ALLOC_ENABLE=1) is switched on for
the run, for both implementations alike (--no-thp: off): a fresh 50 MB activation costs
~6x less in page faults with it; and glibc keeps freed memory for reuse
(`deepmolm_plugin.cpu_memory.keep_freed_memory`, as the CPU inference loader does;
--no-keep-freed: off). Peak memory is the forward's own: on CUDA max_memory_allocated
above the resident weights; on CPU the process RSS, sampled every 2 ms in a thread, above
its value before the forward (one more forward per implementation after the timed rounds,
from a trimmed heap). "process CPU s" is the CPU time of all threads per forward.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--no-thp" not in sys.argv[1:]:
    # Read by PyTorch's CPU allocator at its first allocation: must precede `import torch`.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import argparse
import copy
import ctypes
import dataclasses
import gc
import math
import statistics
import threading
import time
from typing import Callable, Dict, List, Tuple

import torch
import transformers

from deepmolm_plugin.cpu_memory import keep_freed_memory
from deepmolm_plugin.encoder import DeepEncoder, DeepEncoderConfig, encoder_config, to_deepseek_layout
from deepmolm_plugin.encoder.config import SAM_ATTENTION, resolve_dtype
from deepmolm_plugin.encoder.hf_reference import DeepEncoderReference

import bench_report

try:
    import psutil
except ImportError:  # optional: only used where /proc/self/statm is absent
    psutil = None

FP32_ATOL = 1e-4  # issue 14: numerics unchanged at full size
# The largest --batch: past it the first allocation failed with an allocator traceback,
# after the GEMM probe had run (gpu_check's --batches takes the same bound).
MAX_BATCH = 1024

# Forward cost of one 1024 px view, counting matmuls and convs as 2 FLOPs per
# multiply-add (windowed blocks on their padded 70x70 grid, as upstream runs them):
# encoder_flops() gives 1.138e12 from the config.
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


def random_encoder(config: DeepEncoderConfig) -> DeepEncoder:
    """Random weights, with SAM's zero-initialised position tables made non-zero."""
    model = DeepEncoder(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "rel_pos" in name or name == "sam.pos_embed":
                p.normal_(0.0, 0.02)
    return model



def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 3) -> float:
    """FLOP/s of the best of `repeats` samples of (n x n) @ (n x n) matmuls in `dtype`.

    On CUDA a sample is 10 back-to-back products: one 8192^3 bf16 product takes ~1.4 ms
    on an H100-class GPU, where the launch and the synchronising wait are not negligible;
    on CPU one product (seconds) is a sample."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    per_sample = 10 if device.type == "cuda" else 1
    best = math.inf
    with torch.inference_mode():
        for _ in range(1 + 2 * (device.type == "cuda")):  # warm-up: kernel selection, clocks up
            a @ b
        _sync(device)
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(per_sample):
                a @ b
            _sync(device)
            best = min(best, (time.perf_counter() - start) / per_sample)
    return 2.0 * n**3 / best


def timed_forward(model: torch.nn.Module, x: torch.Tensor, sample_memory: bool) -> Tuple[float, float, float]:
    """One forward: (wall seconds, process CPU seconds, peak MiB above what was held before
    it, or NaN when not sampled)."""
    peak = math.nan
    if sample_memory and x.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(x.device)
        baseline = torch.cuda.memory_allocated(x.device)
    elif sample_memory:
        release_cpu_memory()
        sampler = PeakRss().__enter__()
    start, cpu_start = time.perf_counter(), time.process_time()
    model(x)
    _sync(x.device)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if sample_memory and x.device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(x.device) - baseline) / 2**20
    elif sample_memory:
        sampler.__exit__(None, None, None)
        peak = sampler.delta / 2**20
    return wall, cpu, peak


def measure_interleaved(models: Dict[str, torch.nn.Module], x: torch.Tensor, repeats: int) -> Dict[str, Dict]:
    """A warm-up forward per model (its output is kept), `repeats` timed rounds over all
    models, alternating their order, then one forward per model that samples peak memory.

    In a round each model runs twice and the second forward is timed: the first one after
    the other model pays for the heap that model left (on a 2-core AVX2 EPYC ours took
    7.16 s right after the reference, 6.96 s after itself), which a process running one
    encoder never sees. Memory comes last and apart from the timing: sampling it starts
    from a trimmed heap (`release_cpu_memory`), and on CPU a trim also splits the heap's
    huge pages, which slowed every later forward of ours by 4-6 % there.
    """
    results = {}
    with torch.inference_mode():
        for name, model in models.items():
            out = model(x)  # (B, N, 2048)
            _sync(x.device)
            results[name] = {"output": out.float().cpu(), "times_s": [], "cpu_times_s": []}
            del out
        names = list(models)
        for round_ in range(repeats):
            for name in names if round_ % 2 == 0 else names[::-1]:
                models[name](x)  # untimed: after the other model (see above)
                wall, cpu, _ = timed_forward(models[name], x, sample_memory=False)
                results[name]["times_s"].append(wall)
                results[name]["cpu_times_s"].append(cpu)
        for name in names:
            results[name]["peak_mib"] = timed_forward(models[name], x, sample_memory=True)[2]
    for r in results.values():
        r["latency_s"] = statistics.median(r["times_s"])
        r["best_s"] = min(r["times_s"])
        r["cpu_s"] = statistics.median(r["cpu_times_s"])
    return results


def profile_forward(model: torch.nn.Module, x: torch.Tensor, rows: int) -> List[Dict[str, object]]:
    """The `rows` operators taking most self time in one forward (on CUDA: kernel time on
    the device; on CPU: CPU time), as torch.profiler counts them: where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if x.device.type == "cuda" else [])
    with torch.inference_mode():
        model(x)  # warm: kernel selection and caches outside the profile
        _sync(x.device)
        with profile(activities=activities) as prof:
            model(x)
            _sync(x.device)
    on_device = x.device.type == "cuda"
    events = prof.key_averages()
    if on_device:  # kernels and copies only: an aten op's row repeats its kernels' time (counted twice)
        events = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    key = (lambda e: e.self_device_time_total) if on_device else (lambda e: e.self_cpu_time_total)
    total = sum(key(e) for e in events) or 1.0
    return [{"op": e.key[:100], "calls": e.count, "self_ms": key(e) / 1e3, "share": key(e) / total}
            for e in sorted(events, key=key, reverse=True)[:rows]]


def default_dtypes(device: torch.device) -> List[str]:
    """float32, plus what dtype "auto" means on `device` where that is not float32 (bf16 on
    AMX / AVX512-BF16 CPUs and bf16 GPUs, fp16 on older GPUs: "any CUDA device" included
    bf16 on GPUs without it)."""
    auto = bench_report.auto_dtype_name(device)
    return ["float32"] if auto == "float32" else ["float32", auto]


def arguments(argv: "List[str] | None" = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "bfloat16", "float16"],
                        help="default: float32, plus dtype 'auto' (bfloat16 where native, float16 on older GPUs)")
    # Upper bounds a run can hold: past them the first allocation failed with an allocator
    # traceback (--image-size 1048576 asked for 13 TB), after the GEMM probe had run.
    parser.add_argument("--batch", type=bench_report.at_least(1, MAX_BATCH), default=1)
    parser.add_argument("--image-size", type=bench_report.at_least(64, 4096), default=None,
                        help="default: the config's (1024); a multiple of 64, at most 4096")
    parser.add_argument("--repeats", type=bench_report.at_least(1), default=None,
                        help="timed rounds per implementation (default 3; --quick: 1)")
    parser.add_argument("--gemm-n", type=bench_report.at_least(64, 16384), default=None,
                        help="side of the matmul probing the peak (default 4096 on CPU, 8192 on CUDA)")
    parser.add_argument("--quick", action="store_true", help="1 round, GEMM probe n=2048, where not given")
    parser.add_argument("--tiny", action="store_true", help="tiny preset, for a smoke run")
    # No CUDA-graph modes ("reduce-overhead", "max-autotune"): every block runs one shared
    # compiled graph, and on an H200 its replay for block i+1 overwrote block i's output
    # before the residual add read it ("accessing tensor output of CUDAGraphs that has
    # been overwritten by a subsequent run").
    parser.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                        choices=["default", "max-autotune-no-cudagraphs"],
                        help="ours with torch.compile'd blocks, in this torch.compile mode (default: 'default')")
    parser.add_argument("--sam-attention", choices=SAM_ATTENTION, default="sdpa",
                        help="ours: SAM's attention path (DeepEncoderConfig.sam_attention)")
    parser.add_argument("--profile", type=bench_report.at_least(1), default=None, metavar="ROWS",
                        help="also profile one forward of ours per dtype: the ROWS operators taking most self time")
    parser.add_argument("--no-thp", action="store_true", help="leave PyTorch's huge-page allocation off")
    parser.add_argument("--no-keep-freed", action="store_true",
                        help="leave glibc's thresholds as they are (freed memory goes back to the kernel)")
    parser.add_argument("--seed", type=bench_report.at_least(-2**63, 2**64 - 1), default=0)  # torch.manual_seed's range
    parser.add_argument("--out-dir", type=bench_report.out_dir, default=None,
                        help="default scripts/results; --quick, --tiny: bench_report.SMOKE_RESULTS")
    parser.add_argument("--name", type=bench_report.result_name, default=None, help="result file name (default bench_encoder_<device>[_tiny])")
    args = parser.parse_args(argv)
    if args.image_size is not None and args.image_size % 64:
        parser.error(f"--image-size must be a multiple of 64 (16x16 patches, then 4x compression), got {args.image_size}")
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        parser.error(f"--device {args.device!r}: {e}")
    if device.type not in ("cpu", "cuda"):  # meta / mps...: the reference's weights cannot be copied there
        parser.error(f"--device {args.device!r}: the benchmark runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA device")
    bench_report.refuse_repeats(parser, "--dtypes", args.dtypes or [])
    args.out_dir = bench_report.results_folder(parser, "--out-dir", args.out_dir,
                                               bench_report.smoke_mode(args, "--tiny", "--quick"))
    # --quick and --tiny fill in only the values not given (--quick --repeats 3 ran 1 round)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.gemm_n is None:  # a GPU needs a larger product to reach its peak
        args.gemm_n = 512 if args.tiny else 2048 if args.quick else 8192 if device.type == "cuda" else 4096
    args.device = device
    return args


def main(argv: "List[str] | None" = None) -> Dict[str, object]:
    args = arguments(argv)
    device = args.device
    began = time.perf_counter()
    torch.manual_seed(args.seed)
    keeps_freed = device.type == "cpu" and not args.no_keep_freed and keep_freed_memory()
    machine = bench_report.machine()
    config = dataclasses.replace(encoder_config("tiny" if args.tiny else "deepseek-ocr"), sam_attention=args.sam_attention)
    side = args.image_size or config.image_size
    flops = args.batch * encoder_flops(config, side)
    base = random_encoder(config)
    state = {k: v.detach().clone() for k, v in to_deepseek_layout(base).items()}  # fp32, CPU
    pixels = torch.randn(args.batch, 3, side, side)
    dtypes = args.dtypes or default_dtypes(device)

    def ours(dtype: torch.dtype) -> torch.nn.Module:
        model = copy.deepcopy(base).to(device=device, dtype=dtype)
        return model.compile_blocks(mode=args.compile) if args.compile else model

    builders: Dict[str, Callable[[torch.dtype], torch.nn.Module]] = {
        "ours": ours,
        "reference": lambda dtype: DeepEncoderReference.from_deepseek_state(state, config, dtype=dtype).to(device),
    }
    print(f"{bench_report.machine_line(machine)}\ndevice {device}, batch {args.batch}, {side} px, "
          f"{flops / 1e12:.4g} TFLOP per forward, dtypes {dtypes}", flush=True)
    results, per_dtype = [], {}
    for dtype_name in dtypes:
        dtype = resolve_dtype(dtype_name)
        peak_before = gemm_peak(device, dtype, args.gemm_n)
        x = pixels.to(device=device, dtype=dtype)
        models = {impl: build(dtype) for impl, build in builders.items()}
        measured = measure_interleaved(models, x, args.repeats)
        profiles = {dtype_name: profile_forward(models["ours"], x, args.profile)} if args.profile else {}
        del models
        release_cpu_memory()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        peak = max(peak_before, gemm_peak(device, dtype, args.gemm_n))
        bound = flops / peak
        outputs = {impl: r.pop("output") for impl, r in measured.items()}
        diff = (outputs["ours"] - outputs["reference"]).abs().max().item()
        for impl, r in measured.items():
            r.update(impl=impl, dtype=dtype_name, tflops=flops / r["latency_s"] / 1e12,
                     fraction_of_bound=bound / r["latency_s"])
            results.append(r)
            print(f"  {impl:9s} {dtype_name:8s} {r['latency_s']:.3f} s  {100 * r['fraction_of_bound']:.0f} % of "
                  f"the bound", flush=True)
        ours_s, ref_s = measured["ours"]["latency_s"], measured["reference"]["latency_s"]
        target = max(0.5 * ref_s, 1.15 * bound)
        per_dtype[dtype_name] = {
            "gemm_peak_tflops": peak / 1e12, "gemm_peak_before_tflops": peak_before / 1e12,
            "bound_s": bound, "target_s": target, "meets_target": ours_s <= target,
            "latency_ours_over_reference": ours_s / ref_s,
            "peak_mib_ours_over_reference": (measured["ours"]["peak_mib"] / measured["reference"]["peak_mib"]
                                             if measured["reference"]["peak_mib"] > 0 else None),
            "max_abs_diff": diff,
            "numerics_ok": diff <= FP32_ATOL if dtype == torch.float32 else None,
            **({"profile_ours": profiles[dtype_name]} if profiles else {}),
        }
    bench_report.run_ended(machine)

    md = [f"{bench_report.machine_line(machine)}; "
          f"THP allocation {'on' if machine['thp_mem_alloc'] == '1' else 'off'}, freed memory kept "
          f"{'on' if keeps_freed else 'off'}. {side} px, batch {args.batch}, "
          f"{flops / 1e12:.3g} TFLOP per forward, {args.repeats} rounds (median); ours: sam_attention "
          f"{args.sam_attention!r}{f', compiled blocks ({args.compile})' if args.compile else ''}.",
          bench_report.table(
              ["impl", "dtype", "latency s", "TFLOP/s", "% of bound", "peak MiB", "process CPU s"],
              [[r["impl"], r["dtype"], r["latency_s"], r["tflops"], round(100 * r["fraction_of_bound"], 1),
                round(r["peak_mib"], 1), r["cpu_s"]] for r in results]),
          bench_report.table(
              ["dtype", "GEMM peak TFLOP/s", "bound s", "target s", "ours/ref latency", "ours/ref peak memory",
               "max abs diff", "goal met"],
              [[d, v["gemm_peak_tflops"], v["bound_s"], v["target_s"], v["latency_ours_over_reference"],
                "n/a" if v["peak_mib_ours_over_reference"] is None else v["peak_mib_ours_over_reference"],
                f"{v['max_abs_diff']:.2e}", "yes" if v["meets_target"] else "no"] for d, v in per_dtype.items()])]
    for dtype_name, v in per_dtype.items():
        if "profile_ours" in v:
            md.append(f"Ours, {dtype_name}: operators by self {'device' if device.type == 'cuda' else 'CPU'} time "
                      f"in one forward\n\n" + bench_report.table(
                          ["operator", "calls", "self ms", "share %"],
                          [[r["op"], r["calls"], r["self_ms"], round(100 * r["share"], 1)]
                           for r in v["profile_ours"]]))
    print("\n" + "\n\n".join(md[1:]))
    report = {
        "machine": machine, "device": str(device), "transformers": transformers.__version__,
        "config": config.to_dict(), "image_size": side, "batch": args.batch, "repeats": args.repeats,
        "gemm_n": args.gemm_n, "compile": args.compile, "sam_attention": args.sam_attention,
        "keep_freed_memory": keeps_freed, "flops_per_forward": flops,
        "results": results, "per_dtype": per_dtype, "runtime_s": time.perf_counter() - began,
    }
    name = args.name or f"bench_encoder_{device.type}{'_tiny' if args.tiny else ''}"
    bench_report.publish(name, report, md, args.out_dir, show=False)
    return report


if __name__ == "__main__":
    bench_report.interruptible(main, resumes=False)
