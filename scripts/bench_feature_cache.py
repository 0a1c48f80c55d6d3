#!/usr/bin/env python
"""Training step time with and without the frozen-tower feature cache, through the launcher.

Why: in both DeepMoLM stages the tower is frozen, so `--vision_feature_cache DIR` lets
every view be encoded once; this measures what that buys per training step, with the real
launcher (`python -m deepmolm_plugin.train`) and a tiny from-scratch Qwen2 (2 layers,
width 64), so the encoder dominates as it does in real training on few GPUs.

For each encoder size (`demo`: 256 px views, widths of 64; `deepseek-ocr`: the real
DeepEncoder at 1024 px) it saves one random tower (the same weights digest for every run)
and trains three times on the same records and settings:
- `no cache`: every step encodes its views;
- `cache, cold`: an empty cache folder: encodes and stores (the first epoch of a run);
- `cache, warm`: the folder the cold run filled: every view is read (later epochs and runs).
It reports the Trainer's own train_runtime per step and samples/s (depictions are drawn at
start-up, before the timed loop) and the entries in the cache folder.

Writes scripts/results/bench_feature_cache.json and .md (--out-dir, --name; --quick is a
smoke run: bench_report.SMOKE_RESULTS, never scripts/results).
Runtime on a 2-core AVX2 EPYC, idle: ~1 min for `demo`, ~6 min with `deepseek-ocr`
(fp32, 3 steps of 2 views per run); --quick: `demo` only, unless --presets is given.

    python scripts/bench_feature_cache.py
    python scripts/bench_feature_cache.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_report

ROOT = Path(__file__).resolve().parents[1]
MOLECULES = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCC", "CCCl", "c1ccncc1", "OCCO",
             "CC(C)O", "C1CCCCC1", "CC(=O)C", "NCC(=O)O"]


TEXT_LENGTH = 256  # tokens of a record's text: its prompt and answer fit with room to spare


def write_setup(root: Path, preset: str, **llm_size) -> dict:
    """Tiny Qwen2 + tokenizer (`llm_size`: build_qwen2's sizes, default 2 layers of width
    64), records, a saved random tower of `preset`'s sizes."""
    from deepmolm_plugin.encoder import DeepEncoder, encoder_config
    from deepmolm_plugin.encoder.image_processor import num_llm_positions_for_grid
    from deepmolm_plugin.tiny_llm import build_qwen2, train_chatml_tokenizer

    corpus = [f"The molecule {s} is number {i}." for i, s in enumerate(MOLECULES)] * 20
    llm = build_qwen2(root / "qwen2", train_chatml_tokenizer(corpus, vocab_size=400), **llm_size)
    config = encoder_config(preset)
    (root / "deepencoder.json").write_text(json.dumps(config.to_dict()))
    DeepEncoder(config).save_pretrained(root / "tower")
    records = [{"id": f"mol{i}", "smiles": s, "conversations": [
        {"from": "human", "value": "<image>\nWhat is this molecule?"},
        {"from": "gpt", "value": f"The molecule {s} is number {i}."}]} for i, s in enumerate(MOLECULES)]
    (root / "train.json").write_text(json.dumps(records))
    # The image's LLM positions (273 for a 1024 px view) plus room for the turns' text: a
    # fixed 256 left no answer inside the cut at the real size, and the launcher refuses
    # such records.
    positions = num_llm_positions_for_grid(config.image_size, config.image_size, None, config.token_stride)
    max_length = positions + TEXT_LENGTH
    return {"llm": llm, "config": root / "deepencoder.json", "tower": root / "tower", "data": root / "train.json",
            "model_max_length": max_length}


def launcher_args(setup: dict, out: Path, steps: int, batch: int) -> list:
    """`deepmolm_plugin.train` arguments: projector-only stage (frozen tower and LLM)."""
    return [
        "--model_name_or_path", str(setup["llm"]), "--version", "qwen2",
        "--vision_tower", "deepencoder", "--vision_tower_weights", str(setup["tower"]),
        "--deepencoder_config", str(setup["config"]), "--mm_use_im_patch_token", "False",
        "--data_path", str(setup["data"]), "--image_aspect_ratio", "pad", "--lazy_preprocess", "True",
        "--output_dir", str(out), "--max_steps", str(steps), "--per_device_train_batch_size", str(batch),
        "--learning_rate", "1e-3", "--logging_steps", "1", "--report_to", "none", "--save_strategy", "no",
        "--model_max_length", str(setup["model_max_length"]), "--dataloader_num_workers", "0", "--seed", "0",
        "--tune_mm_mlp_adapter", "True",
    ]


def trainer_metrics(out: Path, steps: int) -> dict:
    """The Trainer's final metrics (trainer_state.json): runtime per step, samples/s."""
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    final = next(e for e in reversed(history) if "train_runtime" in e)
    return {"train_runtime_s": final["train_runtime"], "step_s": final["train_runtime"] / steps,
            "samples_per_s": final["train_samples_per_second"],
            "losses": [e["loss"] for e in history if "loss" in e]}


def train(setup: dict, out: Path, steps: int, batch: int, cache: "Path | None") -> dict:
    """One launcher run (one process); its metrics and the cache's entry count."""
    args = launcher_args(setup, out, steps, batch)
    if cache is not None:
        args += ["--vision_feature_cache", str(cache)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    began = time.perf_counter()
    proc = bench_report.run_command([sys.executable, "-m", "deepmolm_plugin.train", *args], cwd=out.parent, env=env,
                                    text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise SystemExit(f"launcher exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return {**trainer_metrics(out, steps), "process_s": time.perf_counter() - began,
            "cache_entries": len(list(cache.rglob("*.safetensors"))) if cache is not None else None}


def arguments(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=None, choices=["tiny", "demo", "deepseek-ocr"],
                   help="encoder sizes (default demo deepseek-ocr; --quick: demo)")
    p.add_argument("--steps", type=bench_report.at_least(1), default=3)  # -1 was "no limit": negative s/step
    p.add_argument("--batch", type=bench_report.at_least(1), default=2)
    p.add_argument("--quick", action="store_true", help="the demo size only, where --presets is not given")
    p.add_argument("--out-dir", type=bench_report.out_dir, default=None,
                   help="default scripts/results; --quick: bench_report.SMOKE_RESULTS")
    p.add_argument("--name", type=bench_report.result_name, default="bench_feature_cache")
    args = p.parse_args(argv)
    # --quick fills in only what is not given (--quick --presets deepseek-ocr ran demo)
    if args.presets is None:
        args.presets = ["demo"] if args.quick else ["demo", "deepseek-ocr"]
    bench_report.refuse_repeats(p, "--presets", args.presets)
    args.out_dir = bench_report.results_folder(p, "--out-dir", args.out_dir, bench_report.smoke_mode(args, "--quick"))
    if args.steps * args.batch > len(MOLECULES):
        p.error(f"--steps x --batch must be <= {len(MOLECULES)}: the cold run must see each view once")
    return args


def main(argv=None) -> int:
    args = arguments(argv)

    machine = bench_report.machine()
    began = time.perf_counter()
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_feature_cache_") as tmp:
        for preset in args.presets:
            root = Path(tmp) / preset
            root.mkdir()
            setup = write_setup(root, preset)
            cache = root / "features"
            runs = {}
            for label, folder in (("no cache", None), ("cache, cold", cache), ("cache, warm", cache)):
                runs[label] = train(setup, root / label.replace(", ", "_").replace(" ", "_"), args.steps,
                                    args.batch, folder)
                r = runs[label]
                print(f"{preset:13s} {label:12s} {r['step_s']:8.3f} s/step {r['samples_per_s']:8.2f} samples/s",
                      flush=True)
                rows.append([preset, label, round(r["step_s"], 3), round(r["samples_per_s"], 2),
                             "-" if r["cache_entries"] is None else r["cache_entries"]])
            runs["warm_speedup"] = runs["no cache"]["step_s"] / runs["cache, warm"]["step_s"]
            runs["cold_overhead"] = runs["cache, cold"]["step_s"] / runs["no cache"]["step_s"]
            results[preset] = runs
    bench_report.run_ended(machine)
    speedups = ", ".join(f"{k}: warm cache {v['warm_speedup']:.1f}x faster per step, cold run "
                         f"{v['cold_overhead']:.2f}x the uncached step" for k, v in results.items())
    md = [f"{bench_report.machine_line(machine)}. "
          f"Tiny Qwen2 (2 layers, width 64), {args.steps} steps x {args.batch} views per run, fp32.",
          bench_report.table(["encoder", "run", "s/step", "samples/s", "cache entries"], rows),
          speedups + "."]
    report = {"machine": machine, "steps": args.steps, "batch": args.batch, "results": results,
              "runtime_s": time.perf_counter() - began}
    bench_report.publish(args.name, report, md, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(bench_report.interruptible(main, resumes=False))
