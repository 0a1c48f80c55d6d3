#!/usr/bin/env python
"""Molecules per second for the whole per-molecule data path, 1 process vs all cores.

Per molecule: parse the SMILES, generate the conformer (ETKDGv3 + MMFF94), E3FP tokens
(``molecule_fp``) and the 1024 px depiction, exactly as data preparation does. Runs the
same molecules once in one process and once in a process pool of
``--workers`` processes (pool start-up included), prints a table with the speedup, the
mean per-stage times of the single-process run, the failures, and whether both runs gave
identical tokens and pixels (CRC32); writes scripts/results/bench_molecules.json and .md
(--out-dir, --name).

    python scripts/bench_molecules.py --limit 200
    python scripts/bench_molecules.py --csv ../shared/data/moleculenet/SAMPL.csv --workers 2
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

from deepmolm_plugin.molecule import (
    MoleculeError,
    fingerprint_record,
    molecule_from_smiles,
    render_molecule,
)

import bench_report

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "moleculenet" / "SAMPL.csv"


def load(parser, path: Path, limit: int) -> list[tuple[str, str]]:
    """(id, smiles) pairs from a CSV with a ``smiles`` column (any case); a CSV without one,
    or without a row, is parser.error (bench_report.csv_rows). The id is the file and line,
    "ids.csv line 5" (was: "ids.csv#3", the 0-based data row, which named another molecule
    to a reader counting lines or rows)."""
    rows = bench_report.csv_rows(parser, "--csv", path, ["smiles"])
    column = next(c for c in rows[0].values if c.lower() == "smiles")
    return [(f"{path.name} {row.lines}", row.values[column]) for row in rows][:limit]


def process(item: tuple[str, str], size: int = 1024) -> dict:
    """Whole data path for one molecule; timings in seconds, or the failure reason."""
    id, smiles = item
    try:
        t0 = time.perf_counter()
        record = molecule_from_smiles(smiles, id)  # parse + ETKDGv3 + MMFF94
        t1 = time.perf_counter()
        tokens = fingerprint_record(record)  # [heavy_atoms, 4]
        t2 = time.perf_counter()
        image = render_molecule(record, size=size)  # 1024 x 1024 RGB
        t3 = time.perf_counter()
    except MoleculeError as error:
        return {"id": id, "error": error.reason}
    crc = zlib.crc32(image.tobytes(), zlib.crc32(tokens.numpy().tobytes()))
    return {"id": id, "error": None, "structure": t1 - t0, "e3fp": t2 - t1, "render": t3 - t2, "crc": crc}


# Molecules per task of the parallel run: a task costs ~1 ms of pickling against ~0.1-1 s per
# molecule, and on Ctrl-C the workers end only after their current task (was: up to
# len(items) / (workers * 8) molecules, minutes for --limit 10000).
TASK_MOST = 4


def run(items: list[tuple[str, str]], workers: int) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    if workers == 1:
        results = [process(item) for item in items]
    else:
        chunk = max(1, min(TASK_MOST, len(items) // (workers * 8)))
        results = bench_report.pool_map(process, items, workers, chunk)
    return time.perf_counter() - start, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=bench_report.input_file, default=str(DEFAULT_CSV),
                        help=f"CSV with a smiles column (default {DEFAULT_CSV})")
    parser.add_argument("--limit", type=bench_report.at_least(1), default=200, help="first N molecules (default 200)")
    # 2 at least: with 1 the "parallel" run was the same run again, and "identical" compared it with itself
    parser.add_argument("--workers", type=bench_report.at_least(2), default=None,
                        help="pool size for the parallel run (default: all cores)")
    parser.add_argument("--out-dir", type=bench_report.out_dir, default=None, help="default scripts/results")
    parser.add_argument("--name", type=bench_report.result_name, default="bench_molecules")
    args = parser.parse_args(argv)
    # more measure the scheduler; the default (every core) must be 2 at least too
    args.workers = bench_report.parallel_workers(parser, "--workers", args.workers, "the parallel run")
    args.out_dir = bench_report.results_folder(parser, "--out-dir", args.out_dir, None)
    # read before any work: an empty CSV was a ZeroDivisionError after the machine survey
    items = load(parser, args.csv, args.limit)

    machine = bench_report.machine()
    began = time.perf_counter()
    runs = []
    outputs = {}
    for workers in (1, args.workers):
        wall, results = run(items, workers)
        ok = [r for r in results if r["error"] is None]
        outputs[workers] = [(r["id"], r.get("crc")) for r in results]
        # mol/s: the molecules that went through the whole path (was: every molecule tried, so
        # SMILES that failed at parsing, almost free, raised the rate); tried/s beside it
        runs.append({"processes": workers, "molecules": len(items), "failed": len(results) - len(ok),
                     "wall_s": round(wall, 3), "mol_per_s": round(len(ok) / wall, 2),
                     "tried_per_s": round(len(items) / wall, 2)})
        if workers == 1:
            stages = {
                k: round(1000 * sum(r[k] for r in ok) / max(1, len(ok)), 2)
                for k in ("structure", "e3fp", "render")
            }
            failures = [{"id": r["id"], "error": r["error"]} for r in results if r["error"]]
    bench_report.run_ended(machine)
    for row in runs:
        # the same molecules in both runs: the ratio of the walls (mol/s is 0 when all failed)
        row["speedup"] = round(runs[0]["wall_s"] / row["wall_s"], 2)
    identical = outputs[1] == outputs[args.workers]

    bench_report.report_failures(failures)
    result = {"csv": str(args.csv), "machine": machine, "stages_ms": stages, "runs": runs,
              "identical": identical, "failures": failures, "runtime_s": time.perf_counter() - began}
    markdown = [
        bench_report.machine_line(machine),
        f"{args.csv.name}: {len(items)} molecules; mean per molecule (1 process): parse+conformer "
        f"{stages['structure']} ms, E3FP {stages['e3fp']} ms, render {stages['render']} ms",
        bench_report.table(["processes", "molecules", "failed", "wall s", "mol/s (went through)", "tried/s",
                            "speedup"],
                           [[r["processes"], r["molecules"], r["failed"], r["wall_s"], r["mol_per_s"], r["tried_per_s"],
                             r["speedup"]] for r in runs]),
        f"identical tokens and pixels across runs: {'yes' if identical else 'NO'}",
    ]
    print(markdown[0])
    bench_report.publish(args.name, result, markdown, args.out_dir)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(bench_report.interruptible(main, resumes=False))
