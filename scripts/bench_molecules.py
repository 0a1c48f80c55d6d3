#!/usr/bin/env python
"""Molecules per second for the whole per-molecule data path, 1 process vs all cores.

Per molecule: parse the SMILES, generate the conformer (ETKDGv3 + MMFF94), E3FP tokens
(``molecule_fp``) and the 1024 px depiction, exactly as data preparation does. Runs the
same molecules once in one process and once in a ``multiprocessing`` pool of
``--workers`` processes (pool start-up included), prints a table with the speedup, the
mean per-stage times of the single-process run, the failures, and whether both runs gave
identical tokens and pixels (CRC32). ``--json`` also writes the numbers to a file.

    python scripts/bench_molecules.py --limit 200
    python scripts/bench_molecules.py --csv ../shared/data/moleculenet/SAMPL.csv \
        --workers 2 --json bench.json
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
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

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "moleculenet" / "SAMPL.csv"


def load(path: Path, limit: int) -> list[tuple[str, str]]:
    """(id, smiles) pairs from a CSV with a ``smiles`` column (any case)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        column = next((c for c in reader.fieldnames or [] if c.lower() == "smiles"), None)
        if column is None:
            raise SystemExit(f"{path}: no 'smiles' column in {reader.fieldnames}")
        rows = [(f"{path.name}#{i}", row[column]) for i, row in enumerate(reader)]
    return rows[:limit]


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


def run(items: list[tuple[str, str]], workers: int) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    if workers == 1:
        results = [process(item) for item in items]
    else:
        chunk = max(1, len(items) // (workers * 8))
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(process, items, chunksize=chunk)
    return time.perf_counter() - start, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--csv", type=Path, default=DEFAULT_CSV, help=f"CSV with a smiles column (default {DEFAULT_CSV})"
    )
    parser.add_argument("--limit", type=int, default=200, help="first N molecules (default 200)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1,
        help="pool size for the parallel run (default: all cores)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    items = load(args.csv, args.limit)
    runs = []
    outputs = {}
    for workers in sorted({1, args.workers}):
        wall, results = run(items, workers)
        ok = [r for r in results if r["error"] is None]
        outputs[workers] = [(r["id"], r.get("crc")) for r in results]
        runs.append({"processes": workers, "molecules": len(items), "failed": len(results) - len(ok),
                     "wall_s": round(wall, 3), "mol_per_s": round(len(items) / wall, 2)})
        if workers == 1:
            stages = {
                k: round(1000 * sum(r[k] for r in ok) / max(1, len(ok)), 2)
                for k in ("structure", "e3fp", "render")
            }
            failures = [{"id": r["id"], "error": r["error"]} for r in results if r["error"]]
    for row in runs:
        row["speedup"] = round(row["mol_per_s"] / runs[0]["mol_per_s"], 2)
    identical = len({tuple(v) for v in outputs.values()}) == 1

    cores = os.cpu_count()
    print(f"{args.csv.name}: {len(items)} molecules, {cores} cores, python {platform.python_version()}")
    print(f"mean per molecule (1 process): parse+conformer {stages['structure']} ms, "
          f"E3FP {stages['e3fp']} ms, 1024 px render {stages['render']} ms")
    print(f"{'processes':>9} {'molecules':>9} {'failed':>6} {'wall_s':>8} {'mol/s':>8} {'speedup':>7}")
    for row in runs:
        print(f"{row['processes']:>9} {row['molecules']:>9} {row['failed']:>6} {row['wall_s']:>8} "
              f"{row['mol_per_s']:>8} {row['speedup']:>7}")
    print(f"identical tokens and pixels across runs: {'yes' if identical else 'NO'}")
    for failure in failures:
        print(f"FAILED {failure['id']}: {failure['error']}", file=sys.stderr)
    if args.json:
        result = {"csv": str(args.csv), "cores": cores, "stages_ms": stages, "runs": runs,
                  "identical": identical, "failures": failures}
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
