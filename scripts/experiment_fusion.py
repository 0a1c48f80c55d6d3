"""Does DeepMoLM learn, and does the fusion projector earn its place?

    python scripts/experiment_fusion.py --jobs 2         # the full experiment (~70 min on 2 CPU cores)
    python scripts/experiment_fusion.py --quick --out /tmp/q   # every arm for a few steps (a smoke run)
                                                               # (--quick's own sizes: no --size)
    python scripts/experiment_fusion.py --device cuda --size large  # on a GPU

An end-to-end benchmark through exactly the public commands a user runs:
`deepmolm-prepare` -> `python -m deepmolm_plugin.train` (the host's train.py) ->
`scripts/eval/run_eval.sh` (questions -> the host's model_vqa -> `deepmolm_plugin.eval.report`).

Data: real molecules, ESOL (delaney-processed.csv) and FreeSolv (SAMPL.csv) from
--data-dir (default `../shared/data/moleculenet`, beside the repository), deduplicated by
canonical SMILES, one fixed balanced
scaffold split (80/10/10, seed 0) saved with the results. Three question types in one
multi-task training set, each answered "The <name> is <value>." (the shared prompt table's
labelled-property template, `deepmolm_plugin.data.prompts`):

- `log solubility`: ESOL's measured log solubility (ESOL molecules only);
- `radius of gyration`: of the heavy atoms of the very conformer that produced the
  molecule's `molecule_fp` (the project's seeded ETKDG + MMFF conformer; after
  preparation every molecule's tokens are checked to equal the tokens of the conformer
  the target was computed on), in Angstrom, 2 decimals;
- `heavy atom count`: a 2D-computable integer.

Arms (identical except for what is named; same LLM, encoder config, data, steps, seeds):
`fusion` (DeepEncoder -> fusion projector with molecule_fp -> Qwen2), `image_only` (the
`linear` projector: DeepMoLM's image path without molecule_fp), `fusion_shuffled_fp`
(each seed's selected fusion model, evaluated with molecule_fp permuted across test
molecules), `mean_baseline` (training-set mean per target), `median_baseline` (the training
median: the constant with the lowest MAE on the training set, which a model that learned one
typical answer lands near; on the test split another constant, the mean among them, can
score lower) and `classical` (a random forest on Morgan count fingerprints). Every arm is
scored by the project's eval code. "Beats" in the verdict is a one-sided paired t-test over
the seeds (p < 0.05); where every seed gives the same difference (deterministic arms) there is
no spread to test and the verdict says "not decidable".

Models: a from-scratch tiny Qwen2 (ChatML BPE tokenizer trained on the training answers)
and a trainable tiny DeepEncoder, trained from random weights (nothing can be downloaded).
Model selection uses the validation split only: each run's checkpoint
of the last two epochs (--select-last) is
scored on valid, the best (mean over targets of the MAE normalised by the mean baseline's,
an invalid answer counting as the mean baseline's error) is kept, and the test split is
scored once per run with it.

Outputs in --out (default scripts/results), under the stem experiment_fusion, or
experiment_fusion_quick for --quick (a smoke run: default folder bench_report.SMOKE_RESULTS,
never scripts/results; was: this text named only experiment_fusion.*): STEM.json (schema
below), STEM.md (every seed's values next to mean +- std), and
STEM.png (per-target MAE bars: the mean over the seeds with an MAE, each seed's value a
dot on it, +- std where the seeds differ; "no valid answer" in place of the bar of an arm
without any) plus STEM_parity.png (fusion, one parity plot per target, a colour per seed).
`--from-json STEM.json` writes the markdown and plots again from a results file (its
paired statistics and verdict recomputed from the per-seed MAEs; the parity plot needs the
run's --work folder, which holds the answers). JSON:
`{"targets": [...], "seeds": [...], "arms": {ARM: {"mae": {TARGET: [per seed]},
"valid_ratio": {TARGET: [per seed]}}}, "paired": ..., "verdict": {TARGET: {CHECK: true, false,
"not decidable: ..." or a ratio}}, "verdict_test": the test "beats" means, "timings_s": {PART:
s, "total": s}, "starts": how many starts of the command the times add up}`.

The work folder (--work) keeps every intermediate result: rerunning the same command
resumes (prepared data, finished trainings and evaluations are reused, and an evaluation
stopped midway keeps the answers it made: only the others are asked); a work folder
made with other settings is refused, and so is one another run is using (one writer per
work folder, its ``.lock``: was: a second run deleted the unfinished training the first
was running, to start it again).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "moleculenet"
sys.path.insert(0, str(REPO))  # run from a checkout without installing too

from deepmolm_plugin.data.prompts import PROPERTY_PREFIX  # noqa: E402
from deepmolm_plugin.eval.baselines import mean_baseline, score_answers, task_means, task_medians  # noqa: E402
from deepmolm_plugin.eval.jsonl import read_jsonl  # noqa: E402
from deepmolm_plugin.molecule.inputs import MAX_RENDER_SIZE, MIN_RENDER_SIZE  # noqa: E402
from deepmolm_plugin.patches.arguments import SEED_MAX  # noqa: E402  (the trainer's --seed bound)

import bench_report  # noqa: E402  (a sibling module: scripts/ is on sys.path)



SCHEMA = "deepmolm-experiment-fusion/1"
ARMS = ("fusion", "image_only", "fusion_shuffled_fp", "mean_baseline", "median_baseline", "classical")
TRAINED = {"fusion": "fusion", "image_only": "linear"}  # arm -> --mm_projector
# target name (the question's property name) -> CSV column written by build_dataset
TARGETS = {"log solubility": "log_solubility", "radius of gyration": "radius_of_gyration",
           "heavy atom count": "heavy_atom_count"}
TARGET_KIND = {"log solubility": "measured (ESOL)", "radius of gyration": "3D shape of the molecule_fp conformer",
               "heavy atom count": "2D-computable"}
SPLIT_SEED = 0
ENCODER_PRESET = "demo"  # deepmolm_plugin.encoder.presets: 256 px views, widths of 64, as `make demo`
TARGET_FP = "target_conformer_fp.npz"  # molecule_fp of each target's conformer, {smiles, fp<i>}

# Model and training sizes. `small` is what fits the 90-minute CPU budget; `large` is for a GPU.
SIZES = {
    "quick": dict(llm=dict(hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate=128),
                  epochs=1, max_steps=3, batch=8, lr=3e-3, molecules=48),
    "small": dict(llm=dict(hidden_size=192, layers=3, heads=4, kv_heads=2, intermediate=512),
                  epochs=3, max_steps=-1, batch=16, lr=2e-3, molecules=None),
    "large": dict(llm=dict(hidden_size=512, layers=6, heads=8, kv_heads=4, intermediate=1536),
                  epochs=12, max_steps=-1, batch=32, lr=1e-3, molecules=None),
}


# --------------------------------------------------------------------------- bookkeeping


class Clock:
    """Wall time of each part, printed as it ends and kept for the report (parts of trained
    units overlap in time when --jobs > 1). With a `path` (<work>/timings.json) the times
    are saved as each part ends, so an interrupted or failed invocation keeps what its
    parts took: a part that finished keeps its longest time (a resumed part that found its
    result takes ~0 s), the time of a part cut short is added to it, and the total adds up
    every invocation's wall time."""

    def __init__(self, path: Path | None = None):
        import threading

        self.parts: dict[str, float] = {}
        self.path = path
        self.start = time.perf_counter()
        self.lock = threading.Lock()  # parts end in the --jobs threads
        saved = json.loads(path.read_text()) if path is not None and path.is_file() else {}
        self.saved = {"parts": saved.get("parts", {}), "interrupted": saved.get("interrupted", {}),
                      "invocations": saved.get("invocations", []) + [0.0]}

    @contextmanager
    def part(self, name: str):
        start = time.perf_counter()
        print(f"--- {name}", flush=True)
        try:
            yield
        except BaseException:
            took = time.perf_counter() - start
            with self.lock:
                self.saved["interrupted"][name] = round(self.saved["interrupted"].get(name, 0.0) + took, 1)
                self.save()
            print(f"--- {name}: stopped after {took:.1f} s", flush=True)
            raise
        took = time.perf_counter() - start
        with self.lock:
            self.parts[name] = self.parts.get(name, 0.0) + took
            self.saved["parts"][name] = round(max(self.parts[name], self.saved["parts"].get(name, 0.0)), 1)
            self.save()
        print(f"--- {name}: {took:.1f} s", flush=True)

    def save(self) -> None:
        self.saved["invocations"][-1] = round(time.perf_counter() - self.start, 1)
        if self.path is not None:
            write_json(self.path, self.saved)

    @property
    def starts(self) -> int:
        """How many invocations the times add up (this one included)."""
        return len(self.saved["invocations"])

    def report(self) -> dict:
        """Seconds per part (finished time + time of earlier runs of it that were cut short)
        and the total over every invocation, this one up to now."""
        with self.lock:
            self.save()
            names = [*self.saved["parts"], *(n for n in self.saved["interrupted"] if n not in self.saved["parts"])]
            parts = {n: round(self.saved["parts"].get(n, 0.0) + self.saved["interrupted"].get(n, 0.0), 1)
                     for n in names}
            return {**parts, "total": round(sum(self.saved["invocations"]), 1)}


def run(cmd: list, log: Path, env: dict | None = None) -> None:
    """One public command, its output in `log`; a failure shows the end of the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log, "w") as handle:
        handle.write("$ " + " ".join(map(str, cmd)) + "\n")
        handle.flush()
        returncode = bench_report.run_command(cmd, stdout=handle, stderr=subprocess.STDOUT, env=full_env).returncode
    if returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise SystemExit(f"error: command failed ({returncode}), log {log}:\n{tail}")


def write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- data


def read_molecules(limit: int | None, data_dir: Path) -> tuple[list[dict], dict]:
    """ESOL then FreeSolv rows from `data_dir`, deduplicated by canonical SMILES (first occurrence kept)."""
    from rdkit import Chem

    sources = [("esol", data_dir / "delaney-processed.csv", "smiles", "measured log solubility in mols per litre"),
               ("freesolv", data_dir / "SAMPL.csv", "smiles", None)]
    rows, seen, counts = [], set(), {"read": 0, "unparseable": 0, "duplicates": 0}
    for name, path, smiles_col, label_col in sources:
        if not path.is_file():  # (was: "the experiment reads ../shared/data/moleculenet", no way to point elsewhere)
            raise SystemExit(f"error: {path} is missing: the experiment reads delaney-processed.csv (ESOL) and "
                             f"SAMPL.csv (FreeSolv) from --data-dir (default {SHARED_DATA}); give the folder "
                             "that holds them")
        with open(path, newline="") as handle:
            for i, row in enumerate(csv.DictReader(handle)):
                counts["read"] += 1
                smiles = row[smiles_col].strip()
                mol = Chem.MolFromSmiles(smiles)
                if mol is None:
                    counts["unparseable"] += 1
                    continue
                canonical = Chem.MolToSmiles(mol)
                if canonical in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(canonical)
                rows.append({"id": f"{name}{i}", "smiles": canonical,
                             "log_solubility": row[label_col].strip() if label_col else ""})
    if limit:
        rows = rows[::max(1, len(rows) // limit)][:limit]
    return rows, counts


def heavy_atom_geometry(record) -> float:
    """Radius of gyration (unweighted, Angstrom) of the heavy atoms of the record's conformer."""
    mol = record.mol
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    pos = mol.GetConformer().GetPositions()[heavy]
    return float(np.sqrt(((pos - pos.mean(axis=0)) ** 2).sum(axis=1).mean()))


def build_dataset(work: Path, limit: int | None, data_dir: Path) -> dict:
    """molecules.csv (id, smiles, split, targets) + the split; conformers from the project's
    own `molecule_from_smiles` (the same call data preparation makes)."""
    from rdkit import Chem
    from tqdm import tqdm

    from deepmolm_plugin.molecule import MoleculeError, molecule_from_smiles
    from deepmolm_plugin.property.splits import scaffold_split

    from deepmolm_plugin.molecule import fingerprint_record

    out = work / "molecules.csv"
    info_path = work / "dataset.json"
    if out.is_file() and info_path.is_file() and (work / TARGET_FP).is_file():
        return json.loads(info_path.read_text())
    rows, counts = read_molecules(limit, data_dir)
    kept, failures, tokens = [], [], {}
    for row in tqdm(rows, desc="conformers + targets", mininterval=5):
        try:
            record = molecule_from_smiles(row["smiles"], row["smiles"], policy="generate")
        except MoleculeError as e:
            failures.append({"id": row["id"], "smiles": row["smiles"], "reason": str(e)})
            continue
        row["radius_of_gyration"] = f"{heavy_atom_geometry(record):.2f}"
        row["heavy_atom_count"] = str(record.mol.GetNumHeavyAtoms())
        tokens[row["smiles"]] = fingerprint_record(record).numpy()
        kept.append(row)
    split = scaffold_split([Chem.MolFromSmiles(r["smiles"]) for r in kept], seed=SPLIT_SEED)
    for name, indices in split.items():
        for i in indices:
            kept[int(i)]["split"] = name
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "smiles", "split", *TARGETS.values()])
        writer.writeheader()
        for row in kept:
            writer.writerow({k: row.get(k, "") for k in writer.fieldnames})
    info = {"sources": ["delaney-processed.csv (ESOL)", "SAMPL.csv (FreeSolv)"], "counts": counts,
            "conformer_failures": failures, "molecules": len(kept),
            "split": {"kind": "scaffold (balanced Bemis-Murcko, deepmolm_plugin.property.splits)",
                      "seed": SPLIT_SEED, "sizes": {k: int(len(v)) for k, v in split.items()},
                      "ids": {k: [kept[int(i)]["id"] for i in v] for k, v in split.items()}}}
    np.savez(work / TARGET_FP, smiles=np.array(list(tokens)),
             **{f"fp{i}": t for i, t in enumerate(tokens.values())})
    write_json(info_path, info)
    return info


# SMILES from CSV have no coordinates: a conformer is generated. Training is told the same
# (the trainer refuses prepared data made with another policy than --conformer_policy), and
# the saved model records it for eval.
CONFORMER_POLICY = "generate"


def prepare(work: Path, image_size: int, workers: int, clock: Clock) -> Path:
    """`deepmolm-prepare --format csv` on molecules.csv (resumable by itself)."""
    out = work / "prepared"
    labels = [f"{column}={name}" for name, column in TARGETS.items()]
    run([Path(sys.executable).parent / "deepmolm-prepare", "--format", "csv",
         "--input", work / "molecules.csv", "--out", out, "--id-column", "id", "--split-column", "split",
         "--smiles-column", "smiles", "--label-columns", *labels, "--image-size", str(image_size),
         "--conformer-policy", CONFORMER_POLICY, "--workers", str(workers), "--no-progress"],
        work / "logs" / "prepare.log")
    return out


def check_conformers(work: Path, prepared: Path) -> int:
    """Every prepared molecule's molecule_fp equals the tokens of the conformer its radius of
    gyration was computed on (`build_dataset` saved them; both come from the same seeded
    generator): the 3D target describes exactly the geometry the model's fingerprint saw."""
    from deepmolm_plugin.molecule.inputs import InputResolver

    marker = work / "conformers-checked"
    if marker.is_file():
        return int(marker.read_text())
    with np.load(work / TARGET_FP) as saved:
        target_fp = {str(smiles): saved[f"fp{i}"] for i, smiles in enumerate(saved["smiles"])}
    inputs = InputResolver(record_folder=str(prepared))
    checked, seen = 0, set()
    for split in ("train", "valid", "test"):
        for record in json.loads((prepared / f"{split}.json").read_text()):
            if record["smiles"] in seen:
                continue
            seen.add(record["smiles"])
            if record["smiles"] not in target_fp:
                raise SystemExit(f"error: record {record['id']}: SMILES {record['smiles']!r} is not in molecules.csv")
            if not np.array_equal(np.asarray(inputs.molecule_fp(record, record["id"])), target_fp[record["smiles"]]):
                raise SystemExit(f"error: record {record['id']}: prepared molecule_fp differs from the conformer "
                                 "the radius of gyration was computed on")
            checked += 1
    marker.write_text(str(checked))
    return checked


# --------------------------------------------------------------------------- models


def corpus(prepared: Path) -> list:
    lines = ["You are a helpful assistant.", "system", "user", "assistant"]
    for record in json.loads((prepared / "train.json").read_text()):
        lines += [t["value"] for t in record["conversations"]]
    return lines


def run_folder(work: Path, arm: str, seed: int) -> Path:
    """One arm and seed's training run: its LLM, checkpoints and evaluations."""
    return work / "runs" / f"{arm}-seed{seed}"


def train_arm(arm: str, seed: int, work: Path, prepared: Path, size: dict, device: str) -> Path:
    """One training run through the host's train.py; a checkpoint every epoch."""
    from deepmolm_plugin.encoder import encoder_config
    from deepmolm_plugin.tiny_llm import build_qwen2, train_chatml_tokenizer

    out = run_folder(work, arm, seed)
    if (out / "done").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tokenizer = train_chatml_tokenizer(corpus(prepared), vocab_size=600)
    build_qwen2(out / "llm", tokenizer, seed=seed, **size["llm"])
    (out / "deepencoder.json").write_text(json.dumps(encoder_config(ENCODER_PRESET).to_dict()))
    cmd = [sys.executable, "-m", "deepmolm_plugin.train",
           "--model_name_or_path", out / "llm", "--version", "qwen2",
           "--vision_tower", "deepencoder", "--vision_tower_weights", "random",
           "--deepencoder_config", out / "deepencoder.json", "--unfreeze_mm_vision_tower", "True",
           "--mm_projector", TRAINED[arm], *(["--fusion_heads", "4"] if TRAINED[arm] == "fusion" else []),
           "--mm_use_im_patch_token", "False", "--image_aspect_ratio", "pad", "--conformer_policy", CONFORMER_POLICY,
           "--data_path", prepared / "train.json", "--image_folder", prepared,
           "--output_dir", out / "checkpoints", "--num_train_epochs", str(size["epochs"]),
           "--max_steps", str(size["max_steps"]),
           "--per_device_train_batch_size", str(size["batch"]), "--learning_rate", str(size["lr"]),
           "--lr_scheduler_type", "cosine", "--warmup_ratio", "0.03", "--weight_decay", "0",
           "--logging_steps", "20", "--save_strategy", "epoch" if size["max_steps"] < 0 else "steps",
           "--save_steps", str(max(1, size["max_steps"])), "--save_only_model", "True",
           "--report_to", "none", "--model_max_length", "128", "--dataloader_num_workers", "1",
           "--lazy_preprocess", "True", "--seed", str(seed), "--data_seed", str(seed), *size.get("extra", ())]
    if device == "cuda":  # bf16 where the GPU has it, else fp32 (the CPU runs train in fp32)
        cmd += bench_report.trainer_precision("cuda")
    label = f"train {arm} seed {seed}"
    # the training's output goes to its log: a line a minute here, or 10-20 min of silence
    with bench_report.progress(lambda: training_progress(out / "train.log", label), every=60):
        run(cmd, out / "train.log", env=device_env(device))
    (out / "done").write_text("ok")
    return out


# The Trainer's own progress bar has no label: a line (or \r-separated update) that starts
# with the percentage. Labelled bars ("Writing model shards: 100%|...| 1/1 [", "Loading
# weights") come after the last step too, and were read as the step count ("step 1/1" for a
# 3-step run).
TRAINER_BAR = r"(?:^|[\r\n])[ \t]*\d+%\|[^|\r\n]*\|[ \t]*(\d+)/(\d+) \["


def training_progress(log: Path, label: str) -> "str | None":
    """"    <label>: step N/M, loss L" from a training log (the Trainer's progress bar and its
    logged losses), or None before the first step."""
    import re

    text = log.read_text(errors="replace")
    steps = re.findall(TRAINER_BAR, text)
    if not steps:
        return None
    losses = re.findall(r"'loss': '?([0-9.eE+-]+)", text)
    return f"    {label}: step {steps[-1][0]}/{steps[-1][1]}" + (f", loss {losses[-1]}" if losses else "")


THREADS = {"n": None}  # CPU threads per command when --jobs commands share the cores (set by main)


def device_env(device: str) -> dict:
    if device != "cpu":
        return {}
    threads = {} if THREADS["n"] is None else {"OMP_NUM_THREADS": str(THREADS["n"]), "MKL_NUM_THREADS": str(THREADS["n"])}
    return {"CUDA_VISIBLE_DEVICES": "", **threads}


def checkpoints(run_dir: Path) -> list[Path]:
    found = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not found:
        raise SystemExit(f"error: {run_dir}: training saved no checkpoint")
    return found


# --------------------------------------------------------------------------- evaluation


def finished_report(out: Path) -> dict | None:
    """The report in `out` when it is a finished one, else None (to be made again): no
    metrics.json, or one whose `"complete": false` says model_vqa could not ask some questions
    (run_eval.sh writes it and exits 1; was: a rerun took it as done, skipped the evaluation
    and the questions were never asked again). `counts.not_asked` says the same in a report
    written before `complete` existed."""
    path = out / "metrics.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    unasked = report.get("complete") is False or report.get("counts", {}).get("not_asked", 0) > 0
    return None if unasked else report


def earlier_answers(out: Path) -> bool:
    """Whether an earlier run_eval.sh into `out` left answers: a chunk's answers file, the
    .partial a stopped chunk keeps, a killed one's hidden partial, or the copies a failed
    resumed run keeps under answers/earlier/. Resuming keeps only those model_vqa made with
    the same settings and model files (model_vqa --resume compares its digests), so it is
    safe whenever any is there. (Was: only an incomplete metrics.json set RESUME, and a run
    stopped during an evaluation leaves none: its .partial answers were deleted by the rerun,
    which asked every question again.)"""
    folder = out / "answers"
    return folder.is_dir() and any(path.is_file() for path in folder.rglob("*.jsonl*"))


def evaluate(model: Path, data: Path, out: Path, device: str, image_folder: Path | None = None) -> dict:
    """`scripts/eval/run_eval.sh MODEL DATA OUT 1`: questions -> host model_vqa -> report.
    Images are looked up in `image_folder` (default: DATA's folder, as deepmolm-prepare writes them)."""
    report = finished_report(out)
    if report is None:
        folder = str(image_folder or data.parent)
        env = {**device_env(device), "PYTHON": sys.executable, "REPORT_ARGS": "--no-plots",
               "IMAGE_FOLDER": folder, "STRUCTURE_FOLDER": folder}
        # an incomplete report, or answers of a run stopped before it wrote one: keep the
        # answers made, ask the others
        if (out / "metrics.json").is_file() or earlier_answers(out):
            env["RESUME"] = "1"
        try:
            run(["bash", REPO / "scripts" / "eval" / "run_eval.sh", model, data, out, "1",
                 "--", "--max-new-tokens", "24"], out.parent / f"{out.name}.log", env=env)
        except SystemExit:
            failures = sorted((out / "answers").glob("*.failures.jsonl")) if (out / "answers").is_dir() else []
            if failures and (out / "metrics.json").is_file():  # the same questions cannot be asked: say which
                raise SystemExit(f"error: {out}: model_vqa could not ask some questions, listed in "
                                 f"{', '.join(map(str, failures))}; mend them in {data} and rerun") from None
            raise
        report = json.loads((out / "metrics.json").read_text())  # exit 0: every question asked and scored
    return report


def question_file(data: Path, out: Path) -> Path:
    if not out.is_file():
        run([sys.executable, "-m", "deepmolm_plugin.eval.questions", data, out], out.with_suffix(".log"))
    return out


def target_of(task: str) -> str:
    return task[len(PROPERTY_PREFIX):] if task.startswith(PROPERTY_PREFIX) else task


def per_target(metrics: dict) -> dict:
    """{target: (mae, valid_ratio in [0, 1])} from a report's metrics.json."""
    result = {}
    for task, entry in metrics["tasks"].items():
        m = entry["metrics"]
        result[target_of(task)] = (m["mae"], None if m["valid_ratio"] is None else m["valid_ratio"] / 100.0)
    return result


def distinct_answers(out: Path) -> dict:
    """{target: distinct valid values / questions}: near 0 means one answer for every molecule
    (a model that learned the answer format and a constant, not the molecule)."""
    values: dict[str, list] = {}
    for row in rows_of(out):
        values.setdefault(target_of(row["task"]), []).append(row["value"] if row["valid"] else None)
    return {t: len({v for v in vs if v is not None}) / len(vs) for t, vs in values.items()}


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "per_question.jsonl").read_text().splitlines() if line.strip()]


def selection_score(out: Path, means: dict, baseline_mae: dict) -> float:
    """Mean over targets of MAE / mean-baseline MAE; an invalid answer counts as the mean's error."""
    errors: dict[str, list] = {}
    for row in rows_of(out):
        target = target_of(row["task"])
        ref = row["reference_value"]
        value = row["value"] if row["valid"] else means[target]
        errors.setdefault(target, []).append(abs(value - ref))
    return float(np.mean([np.mean(errors[t]) / baseline_mae[t] for t in errors]))


def shuffled_split(data: Path, out: Path, seed: int) -> Path:
    """The test split with molecule_fp permuted across molecules (a derangement: no molecule
    keeps its own tokens; every question about one molecule gets the same other tokens)."""
    if out.is_file():
        return out
    from deepmolm_plugin.molecule.inputs import InputResolver

    records = json.loads(data.read_text())
    inputs = InputResolver(record_folder=str(data.parent))
    molecules = sorted({r["smiles"] for r in records})
    rng = np.random.default_rng(1000 + seed)
    while True:
        order = rng.permutation(len(molecules))
        if len(molecules) < 2 or not np.any(order == np.arange(len(molecules))):
            break
    donor = {m: molecules[order[i]] for i, m in enumerate(molecules)}
    tokens = {}
    for r in records:
        tokens.setdefault(r["smiles"], np.asarray(inputs.molecule_fp(r, r["id"])).tolist())
    # Without `smiles`: the depiction stays the record's own `image`, and a SMILES next to
    # another molecule's tokens is (rightly) refused by the input resolver as a mismatch.
    shuffled = [{**{k: v for k, v in r.items() if k != "smiles"}, "molecule_fp": tokens[donor[r["smiles"]]]}
                for r in records]
    write_json(out, shuffled)
    return out


def classical_predictions(prepared: Path, seed: int) -> dict:
    """A random forest (500 trees) on Morgan count fingerprints (radius 2, 2048), one per target."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator
    from sklearn.ensemble import RandomForestRegressor

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)

    def table(split):
        data: dict[str, tuple[list, list, list]] = {}
        for r in json.loads((prepared / f"{split}.json").read_text()):
            target = target_of(r["task"])
            x = gen.GetCountFingerprintAsNumPy(Chem.MolFromSmiles(r["smiles"]))
            xs, ys, ids = data.setdefault(target, ([], [], []))
            xs.append(x)
            ys.append(r["properties"][target])
            ids.append(r["id"])
        return data

    train, test = table("train"), table("test")
    answers = {}
    for target, (xs, ys, _) in train.items():
        model = RandomForestRegressor(n_estimators=500, n_jobs=-1, random_state=seed).fit(np.array(xs), np.array(ys))
        txs, _, tids = test[target]
        for qid, value in zip(tids, model.predict(np.array(txs))):
            answers[qid] = f"{value:.4f}"
    return answers


# --------------------------------------------------------------------------- the experiment


def run_unit(arm: str, seed: int, args, size: dict, prepared: Path, means: dict, valid_baseline: dict,
             clock: Clock) -> dict:
    """One trained arm and seed: train, pick the checkpoint on valid, score test once (and,
    for fusion, test with shuffled molecule_fp). Independent of every other unit."""
    work = Path(args.work)
    with clock.part(f"train {arm} seed {seed}"):
        run_dir = train_arm(arm, seed, work, prepared, size, args.device)
    with clock.part(f"select {arm} seed {seed} on valid"):
        scored = []
        for ckpt in checkpoints(run_dir)[-args.select_last:]:
            out = run_dir / "eval" / f"valid-{ckpt.name}"
            evaluate(ckpt, prepared / "valid.json", out, args.device)
            scored.append((selection_score(out, means, valid_baseline), ckpt))
        best_score, best = min(scored, key=lambda s: s[0])
        print(f"    {arm} seed {seed}: selected {best.name} (valid score {best_score:.3f}; "
              + ", ".join(f"{c.name}={s:.3f}" for s, c in scored) + ")", flush=True)
    result = {"selected": {"seed": seed, "checkpoint": best.name, "valid_score": best_score,
                           "candidates": {c.name: s for s, c in scored}}}
    with clock.part(f"test {arm} seed {seed}"):
        # Test folders are named for the checkpoint they score, like the valid ones: a rerun
        # that selects another (--select-last changed) scores it (was: one `eval/test`, whose
        # earlier scores were reported under the newly selected checkpoint's name)
        test_out = test_folder(run_dir, best.name)
        result["test"] = per_target(evaluate(best, prepared / "test.json", test_out, args.device))
        result["distinct"] = distinct_answers(test_out)
        if arm == "fusion":
            shuffled = shuffled_split(prepared / "test.json", run_dir / "eval" / "test_shuffled_fp.json", seed)
            shuffled_out = test_folder(run_dir, best.name, shuffled=True)
            result["shuffled"] = per_target(evaluate(best, shuffled, shuffled_out, args.device, image_folder=prepared))
            result["shuffled_distinct"] = distinct_answers(shuffled_out)
    return result


def test_folder(run_dir: Path, checkpoint: str, shuffled: bool = False) -> Path:
    """Where a checkpoint's test answers are scored (with molecule_fp shuffled across the test
    molecules: `shuffled`): named for the checkpoint, so that a rerun selecting another one
    scores that one, and the report reads the selected one's answers."""
    return run_dir / "eval" / f"test-{'shuffled-fp-' if shuffled else ''}{checkpoint}"


def run_trained_arms(seeds: list, args, size: dict, prepared: Path, means: dict, valid_baseline: dict,
                     results: dict, clock: Clock) -> None:
    """Every (arm, seed) unit, `--jobs` at a time (each its own processes and threads), then
    recorded in a fixed order so the results do not depend on which finished first."""
    units = [(arm, seed) for seed in seeds for arm in TRAINED]
    done = bench_report.run_jobs(
        lambda arm, seed: run_unit(arm, seed, args, size, prepared, means, valid_baseline, clock), units, args.jobs)
    for arm, seed in units:
        unit = done[(arm, seed)]
        record(results, arm, unit["test"], unit["distinct"])
        results["arms"][arm].setdefault("selected", []).append(unit["selected"])
        if "shuffled" in unit:
            record(results, "fusion_shuffled_fp", unit["shuffled"], unit["shuffled_distinct"])


def run_classical(seeds: list, work: Path, prepared: Path, results: dict, clock: Clock) -> None:
    for seed in seeds:
        with clock.part(f"classical seed {seed}"):
            out = work / "classical" / f"seed{seed}"
            report = finished_report(out)
            if report is None:
                score_answers(classical_predictions(prepared, seed),
                              question_file(prepared / "test.json", work / "test-questions.jsonl"), out)
                report = json.loads((out / "metrics.json").read_text())  # as a rerun reads it
            record(results, "classical", per_target(report), distinct_answers(out))


def record(results: dict, arm: str, values: dict, distinct: dict) -> None:
    entry = results["arms"].setdefault(arm, {"mae": {}, "valid_ratio": {}})
    for target in results["targets"]:
        mae, ratio = values[target]
        entry["mae"].setdefault(target, []).append(mae)
        entry["valid_ratio"].setdefault(target, []).append(ratio)
        entry.setdefault("distinct_answers", {}).setdefault(target, []).append(distinct[target])


def values(xs) -> np.ndarray:
    """Per-seed numbers; None (no valid answer at all, so no MAE) becomes NaN."""
    return np.array([np.nan if x is None else x for x in xs], float)


def finite(x):
    """A float for the JSON, or None where it is undefined (NaN)."""
    return float(x) if x is not None and math.isfinite(x) else None


def paired(results: dict, a: str, b: str) -> dict:
    """Per target: mean and standard error of MAE(a) - MAE(b) over seeds (negative: a is better).
    Undefined (None) when a seed has no MAE or there is only one seed (SE)."""
    out = {}
    for target in results["targets"]:
        diffs = values(results["arms"][a]["mae"][target]) - values(results["arms"][b]["mae"][target])
        se = diffs.std(ddof=1) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
        out[target] = {"mean": finite(diffs.mean()), "se": finite(se), "per_seed": [finite(d) for d in diffs]}
    return out


P_VALUE = 0.05  # one-sided


def t_critical(seeds: int) -> float:
    """The one-sided paired t-test's threshold on mean / SE for `seeds` paired differences at
    P_VALUE (2.92 for 3 seeds; was: 2, which with 3 seeds is p ~ 0.09)."""
    from scipy import stats

    return float(stats.t.ppf(1 - P_VALUE, seeds - 1))


def stated_test(seeds: int) -> str:
    """The verdict's test, as the report states it."""
    if seeds < 2:
        return f"one-sided paired t-test over the seeds, p < {P_VALUE:g} (needs 2 seeds or more: {seeds} here)"
    return (f"one-sided paired t-test over the {seeds} seeds, p < {P_VALUE:g}: the mean difference below "
            f"-{t_critical(seeds):.2f} x its standard error")


UNDECIDABLE_SPREAD = "not decidable: no spread over seeds"  # every seed gives the same difference
UNDECIDABLE_SEEDS = "not decidable: < 2 seeds"
# the test is stated over every seed (`stated_test`): one without an MAE leaves it undefined.
# Was "< 2 seeds with an MAE", also where 2 of 3 seeds had one
UNDECIDABLE_MISSING = "not decidable: a seed without an MAE"


def beats(diff: dict) -> "bool | str":
    """Whether the first arm of a paired difference is better by the t-test (`stated_test`), or
    why that cannot be decided: a seed without an MAE, one seed, or the same difference in
    every seed (deterministic arms, constant answers: SE 0, where any gap passed `mean < -2 SE`)."""
    per_seed = diff["per_seed"]
    if any(d is None for d in per_seed):
        return UNDECIDABLE_MISSING
    if len(per_seed) < 2:
        return UNDECIDABLE_SEEDS
    # equal per-seed differences: the SE is 0, or a rounding residue of it (1e-17), not a spread
    if max(per_seed) - min(per_seed) <= 1e-12 * max(1.0, abs(diff["mean"])):
        return UNDECIDABLE_SPREAD
    return bool(diff["mean"] < -t_critical(len(per_seed)) * diff["se"])


def shuffled_loses_gain(p: dict, target: str) -> "bool | str":
    """Whether fusion with shuffled molecule_fp loses more than half of fusion's gain over
    image_only (mean differences), or why that is undefined (was: an undefined mean read as 0)."""
    difference, lost = p["fusion-image_only"][target]["mean"], p["fusion_shuffled_fp-fusion"][target]["mean"]
    if difference is None or lost is None:  # a mean over the seeds is undefined only where one lacks an MAE
        return UNDECIDABLE_MISSING
    gain = -difference
    return bool(gain > 0 and lost > 0.5 * gain)


BEATS = "fusion beats {} (t-test)"  # the verdict's column names: the test is stated above the table


def verdict(results: dict) -> dict:
    """The issue's targets per target: each true, false, or why it cannot be decided."""
    p = results["paired"]
    out = {}
    for t in results["targets"]:
        out[t] = {
            BEATS.format("mean_baseline"): beats(p["fusion-mean_baseline"][t]),
            BEATS.format("median_baseline"): beats(p["fusion-median_baseline"][t]),
            BEATS.format("image_only"): beats(p["fusion-image_only"][t]),
            "shuffled fp loses most of fusion's gain over image_only": shuffled_loses_gain(p, t),
            "fusion valid ratio >= 0.95 (every seed)": bool(values(results["arms"]["fusion"]["valid_ratio"][t]).min()
                                                             >= 0.95),
            "fusion MAE / classical MAE": finite(values(results["arms"]["fusion"]["mae"][t]).mean()
                                                 / values(results["arms"]["classical"]["mae"][t]).mean()),
        }
    return out


COMPARISONS = (("fusion", "mean_baseline"), ("fusion", "median_baseline"), ("fusion", "image_only"),
               ("fusion_shuffled_fp", "fusion"), ("image_only", "mean_baseline"), ("fusion", "classical"))


def statistics(results: dict) -> None:
    """The paired differences, the verdict and its test, from the per-seed MAEs in `results`
    (a run's, or a results file's: --from-json)."""
    results["paired"] = {f"{a}-{b}": paired(results, a, b) for a, b in COMPARISONS}
    results["verdict"] = verdict(results)
    results["verdict_test"] = stated_test(len(results["seeds"]))


# --------------------------------------------------------------------------- outputs


def seed_values(xs) -> np.ndarray:
    """The seeds' numbers that exist: a seed with no valid answer at all has no MAE (None)."""
    v = values(xs)
    return v[~np.isnan(v)]


def mean_or_none(xs) -> "float | None":
    """The mean over the seeds that have a value, None when none has one (was: the mean of
    all seeds, NaN as soon as one seed had no MAE, which hid the other seeds' values)."""
    v = seed_values(xs)
    return float(v.mean()) if len(v) else None


def mean_std(xs) -> str:
    """"mean ± std" over the seeds that have a value (the mean alone for one), "n/a" for none
    (was: `nan`, where the per-seed table said `n/a`)."""
    v = seed_values(xs)
    if not len(v):
        return "n/a"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def seeds_note(xs) -> str:
    """"k of n seeds" when only some seeds have a value (a mean over fewer seeds than the
    others' must say so), else ""."""
    k = len(seed_values(xs))
    return f"{k} of {len(xs)} seeds" if 0 < k < len(xs) else ""


def fmt(x, spec: str = "+.3f") -> str:
    """`x` formatted, "n/a" where it is undefined (None or NaN)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def per_seed(xs) -> str:
    """Every seed's value, in seed order ("n/a": no valid answer at all)."""
    return ", ".join("n/a" if x is None else f"{x:.3f}" for x in xs)


def markdown(results: dict) -> str:
    t = results["targets"]
    lines = [f"# Does it learn? ({'quick smoke run' if results['quick'] else 'experiment'})", "",
             f"Command: `{results['command']}`  ", f"Machine: {results['machine']}  ",
             f"Training precision: {results['settings'].get('precision', 'fp32')}  ",
             f"Seeds: {results['seeds']}; molecules: {results['data']['molecules']} "
             f"(split {results['data']['split']['sizes']}); {wall_time(results)}", "",
             "Test MAE, mean ± std over the seeds with a valid answer (valid-number ratio, mean; "
             "how many seeds had an MAE where some had none; n/a: no valid answer):", "",
             "| arm | " + " | ".join(f"{x} ({TARGET_KIND[x]})" for x in t) + " |",
             "|---|" + "---:|" * len(t)]
    for arm in ARMS:
        a = results["arms"][arm]
        lines.append(f"| {arm} | " + " | ".join(main_cell(a, x) for x in t) + " |")
    # every seed, not only their mean and spread (the experiments' rule: each seed reported)
    lines += ["", f"Test MAE of each seed (seeds {', '.join(map(str, results['seeds']))}):", "",
              "| arm | " + " | ".join(t) + " |", "|---|" + "---:|" * len(t)]
    for arm in ARMS:
        lines.append(f"| {arm} | " + " | ".join(per_seed(results["arms"][arm]["mae"][x]) for x in t) + " |")
    lines += ["", "Distinct answers per question (mean over seeds; 1 = a different number for every question, "
              "near 0 = one constant answer):", "", "| arm | " + " | ".join(t) + " |", "|---|" + "---:|" * len(t)]
    for arm in ARMS:
        a = results["arms"][arm]
        lines.append(f"| {arm} | " + " | ".join(fmt(mean_or_none(a['distinct_answers'][x]), ".3f") for x in t) + " |")
    lines += ["", "Paired differences of test MAE (mean ± SE over seeds; negative: the first arm is better):", "",
              "| comparison | " + " | ".join(t) + " |", "|---|" + "---:|" * len(t)]
    for name, diffs in results["paired"].items():
        lines.append(f"| {name} | " + " | ".join("n/a" if diffs[x]["mean"] is None else  # was "n/a ± n/a"
                                                  f"{fmt(diffs[x]['mean'])} ± {fmt(diffs[x]['se'], '.3f')}"
                                                  for x in t) + " |")
    # the test behind "beats" named where it is read (was: "by > 2 SE", a one-sided p ~ 0.09 with
    # 3 seeds, and "yes" for any gap between deterministic arms, whose SE over seeds is 0)
    lines += ["", f"Targets (\"beats\": {stated_test(len(results['seeds']))}):", "",
              "| target | " + " | ".join(next(iter(results["verdict"].values()))) + " |",
              "|---|" + "---:|" * len(next(iter(results["verdict"].values())))]
    for x, checks in results["verdict"].items():
        lines.append(f"| {x} | " + " | ".join(verdict_cell(v) for v in checks.values()) + " |")
    if any(v == UNDECIDABLE_SPREAD for checks in results["verdict"].values() for v in checks.values()):
        lines += ["", f"{UNDECIDABLE_SPREAD}: every seed gave the same difference (deterministic arms, one constant "
                      "answer per seed), so its standard error is 0 and a difference of any size would pass; "
                      "more seeds that differ, or a test over the questions, can decide it."]
    parts = {k: v for k, v in results["timings_s"].items() if k != "total"}
    lines += ["", "Time per part (s; the parts of trained units overlap with --jobs > 1): "
              + ", ".join(f"{k} {v:.0f}" for k, v in parts.items())
              + f"; total {results['timings_s']['total']:.0f}", ""]
    return "\n".join(lines)


def verdict_cell(value) -> str:
    """One verdict: yes, **no**, why it cannot be decided, or a ratio (n/a: undefined)."""
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return value if isinstance(value, str) else fmt(value, ".2f")


def wall_time(results: dict) -> str:
    """The total wall time, and what it covers. A results file that records its starts
    (`starts`) was timed by Clock across restarts; an older one counted a part done in an
    earlier start (the data preparation, the conformer check) as the moment a later start took
    to find it done, and the report says so rather than state a total it does not have."""
    total = results["timings_s"]["total"]
    if "starts" not in results:
        return (f"wall time {total:.0f} s as recorded (a results file from before each part's time was kept "
                "across restarts: a part done in an earlier start of the command, such as the data preparation, "
                "counts only the moment a later start took to find it done)")
    starts = results["starts"]
    return (f"wall time {total:.0f} s over {starts} start{'s' if starts != 1 else ''} of the command, "
            "every part included (also those done in an earlier start)")


def main_cell(arm: dict, target: str) -> str:
    """"mean ± std (valid ratio[, k of n seeds])" of one arm and target in the main table."""
    note = seeds_note(arm["mae"][target])
    return (f"{mean_std(arm['mae'][target])} ({fmt(mean_or_none(arm['valid_ratio'][target]), '.2f')}"
            + (f", {note}" if note else "") + ")")


NO_MAE = "no valid answer"  # where an arm's bar would be, when no seed has an MAE


ARM_COLORS = ["#1f77b4", "#ff7f0e", "#aec7e8", "#7f7f7f", "#c7c7c7", "#2ca02c"]  # in ARMS' order


def plots(results: dict, out: Path, parity_rows: "dict | None") -> list:
    """STEM.png (MAE bars) and, with `parity_rows` ({target: [per_question rows, each with its
    "seed"]}), STEM_parity.png; the paths written."""
    from deepmolm_plugin import plots as draw

    t = results["targets"]
    fig, axes = draw.panels(len(t), figsize=(4.2 * len(t), 3.6))
    for ax, target in zip(axes, t):
        mae_bars(ax, [results["arms"][a]["mae"][target] for a in ARMS])
        ax.set_title(f"{target}\n({TARGET_KIND[target]})", fontsize=9)
    written = [draw.save(fig, beside(out, ".png"), 120)]
    if parity_rows is not None:
        written.append(parity_plot(results, out, parity_rows))
    return written


def mae_bars(ax, maes: list) -> None:
    """One target's bars, in ARMS' order: the mean over the seeds with an MAE, each seed's value
    a dot on its bar, and an error bar (± std) only where the seeds differ: with one seed, or a
    deterministic arm (the baselines), there is no spread to draw (was: a zero-height error bar
    under "mean ± std", and no seed's own value). An arm without any MAE gets no bar and NO_MAE
    written where it would be (a NaN bar on an axis from 0 read as MAE 0, the best)."""
    from deepmolm_plugin import plots as draw

    means = [mean_or_none(xs) for xs in maes]
    names = [a.replace("_", "\n") + ("\n(" + seeds_note(xs).replace(" seeds", "\nseeds)") if seeds_note(xs) else "")
             for a, xs in zip(ARMS, maes)]
    draw.bars(ax, names, [means], missing=NO_MAE, colors=[ARM_COLORS], tick_fontsize=8)
    for x, xs in enumerate(maes):
        seen = seed_values(xs)  # (seeds with an MAE,)
        if len(seen):
            ax.scatter(np.full(len(seen), float(x)), seen, s=14, color="black", edgecolors="white",
                       linewidths=0.5, zorder=3)
        if len(seen) > 1 and np.ptp(seen) > 0:
            ax.errorbar([x], [seen.mean()], yerr=[seen.std(ddof=1)], fmt="none", ecolor="black",
                        capsize=draw.ERROR_CAPSIZE, zorder=2)
    # the key is the axis label (a legend covered the tallest bars)
    ax.set_ylabel("test MAE (bar: mean over seeds;\ndots: each seed; ± std where they differ)", fontsize=8)


def parity_plot(results: dict, out: Path, parity_rows: dict) -> Path:
    """The selected fusion models' test answers against the references, a colour per seed."""
    from deepmolm_plugin import plots as draw

    t = results["targets"]
    fig, axes = draw.panels(len(t), figsize=(4 * len(t), 4))
    for ax, target in zip(axes, t):
        rows = [r for r in parity_rows.get(target, []) if r["valid"]]
        # 1e308 breaks the axis: such answers are left out and counted in the title
        shown = [r for r in rows if draw.drawable((r["reference_value"], r["value"])).all()]
        seeds = sorted({r.get("seed") for r in shown}, key=lambda s: (s is None, s))
        series = [(np.array([r["reference_value"] for r in shown if r.get("seed") == s]),
                   np.array([r["value"] for r in shown if r.get("seed") == s]),
                   None if s is None else f"seed {s}") for s in seeds]
        draw.parity(ax, series, size=6, alpha=0.5)
        if any(label for _, _, label in series):  # (was: every seed pooled in one colour, no legend)
            ax.legend(fontsize=7, loc="upper left", markerscale=2)
        ax.set_xlabel("reference")
        ax.set_ylabel("fusion answer")
        left_out = len(rows) - len(shown)
        note = f"\n{left_out} beyond ±{draw.MAX_DRAWABLE:g} not drawn" if left_out else ""
        ax.set_title(f"{target} (test, all seeds){note}", fontsize=9)
        if not shown:  # was: an empty 0..1 frame, which said neither "nothing" nor why
            ax.text(0.5, 0.5, "no valid answers" if not rows else f"no value within ±{draw.MAX_DRAWABLE:g}",
                    ha="center", va="center", transform=ax.transAxes)
    return draw.save(fig, beside(out, "_parity.png"), 120)


def fusion_test_rows(results: dict, work: Path) -> dict:
    """{target: [per_question rows of each seed's selected fusion checkpoint on test, each
    with its "seed"]}, read from the run's work folder."""
    rows: dict[str, list] = {}
    for selected in results["arms"]["fusion"]["selected"]:
        folder = test_folder(run_folder(work, "fusion", selected["seed"]), selected["checkpoint"])
        if not (folder / "per_question.jsonl").is_file():
            raise SystemExit(f"error: {folder} holds no per_question.jsonl: the answers of fusion seed "
                             f"{selected['seed']} ({selected['checkpoint']}) on test are not in {work}; "
                             "give the work folder of the run that made the results")
        for row in rows_of(folder):
            rows.setdefault(target_of(row["task"]), []).append({**row, "seed": selected["seed"]})
    return rows


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{bench_report.cpu_model()}, {bench_report.usable_cores()} cores, {gpu}, torch {torch.__version__} "
            f"(CPU capability {torch.backends.cpu.get_cpu_capability()})")


def threads_per_job(jobs: int, device: str):
    """CPU threads for each of `jobs` commands run side by side (None: leave the GPU runs'
    defaults). Counted from the cores this process may use, not the machine's: a 2-core
    allocation on a 64-core node gave every job 32 threads."""
    return max(1, bench_report.usable_cores() // jobs) if device == "cpu" else None


def settings_digest(args, size: dict) -> str:
    key = {"size": size, "image_size": args.image_size, "device": args.device, "schema": SCHEMA}
    # only then: the work folders made before --data-dir existed keep their stamp
    if Path(args.data_dir).resolve() != SHARED_DATA.resolve():
        key["data_dir"] = str(args.data_dir)
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="every arm for a few steps on 48 molecules, one seed")
    p.add_argument("--size", choices=("small", "large"), default=None,
                   help="model and training size (default small; not with --quick, which has its own)")
    # the trainer's own bound (numpy's seed range), checked here: --seeds 4294967296 failed in
    # the trainer after the dataset, deepmolm-prepare and the baselines were built (was: type=int)
    p.add_argument("--seeds", type=bench_report.at_least(0, SEED_MAX), nargs="+", default=None,
                   help=f"training seeds, 0..{SEED_MAX} (default 0 1 2; quick: 0)")
    p.add_argument("--select-last", type=bench_report.at_least(1), default=2,
                   help="validation picks among the last K epoch checkpoints (default 2)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    # deepmolm-prepare's own bounds, checked here: it ran only after the dataset was built
    # (9 minutes at full size), and refused the value then
    p.add_argument("--image-size", type=bench_report.at_least(MIN_RENDER_SIZE, MAX_RENDER_SIZE), default=256,
                   help="depiction size (the tiny encoder's input size)")
    two = min(2, bench_report.usable_cores())  # the defaults, on a one-core machine too
    p.add_argument("--workers", type=bench_report.at_least(1), default=two, help="deepmolm-prepare worker processes")
    p.add_argument("--jobs", type=bench_report.at_least(1), default=two,
                   help="trained units (arm x seed) run at once, the CPU cores split between them (default 2: "
                        "on a 2-core CPU two one-thread trainings do ~1.5x the work of one two-thread training)")
    p.add_argument("--work", default=None,
                   help="work folder (default: experiments/fusion-<size>-<device>, or fusion-quick, in the repo)")
    p.add_argument("--out", default=None, help="where the JSON, markdown and plots go (default scripts/results; "
                                               "--quick: bench_report.SMOKE_RESULTS)")
    p.add_argument("--data-dir", default=str(SHARED_DATA),
                   help="the folder holding delaney-processed.csv (ESOL) and SAMPL.csv (FreeSolv) "
                        "(default %(default)s)")
    p.add_argument("--from-json", default=None, metavar="FILE",
                   help="run nothing: write FILE's markdown and plots again, beside it, from the results in it (its "
                        "paired statistics and verdict recomputed from the per-seed MAEs and written back into it); "
                        "the parity plot needs --work, the run's work folder holding the answers")
    return p


def command_line(argv=None) -> str:
    """The command that made the results, as a shell line that can be pasted back: each
    argument quoted where needed (was: joined with spaces, so `--out "/tmp/fq out"` read back
    as `--out /tmp/fq` and a stray argument `out`)."""
    import shlex

    return shlex.join(["python", "scripts/experiment_fusion.py", *(argv if argv is not None else sys.argv[1:])])


def main(argv=None) -> None:
    bench_report.interruptible(experiment, argv)


def experiment(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.from_json is not None:
        return report_only(parser, args)
    if args.quick and args.size:  # --quick --size large ran the quick sizes without a word
        parser.error(f"--size {args.size}: --quick runs its own sizes; give one of the two")
    args.size = args.size or "small"
    size = dict(SIZES["quick" if args.quick else args.size])
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    bench_report.refuse_repeats(parser, "--seeds", seeds)  # the bounds: argparse's type
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda but torch sees no CUDA device")
    # more one-thread trainings than cores only share them (the timings said "--jobs 8" on 2
    # cores); on CUDA the jobs share the GPU instead
    if args.device == "cpu":
        bench_report.refuse_more_than_cores(parser, "--jobs", args.jobs)
    bench_report.refuse_more_than_cores(parser, "--workers", args.workers)
    name = "fusion-quick" if args.quick else f"fusion-{args.size}-{args.device}"
    for option, given in (("--out", args.out), ("--work", args.work), ("--data-dir", args.data_dir)):
        if given is not None and not str(given).strip():  # resolve() made '' the current folder
            parser.error(f"{option} is empty: give a folder")
    work = Path(args.work or REPO / "experiments" / name).resolve()
    args.data_dir = str(Path(args.data_dir).expanduser().resolve())
    args.work = str(work)
    out = bench_report.results_folder(parser, "--out", None if args.out is None else Path(args.out),
                                      "--quick" if args.quick else None).resolve()
    # Both folders are checked before any work: a file there was a FileExistsError traceback,
    # and a read-only --out failed after the whole experiment, when the report was written.
    from deepmolm_plugin import usage

    for option, folder in (("--out", out), ("--work", work)):
        try:
            usage.output_folder(folder, option)
        except usage.UsageError as e:
            parser.error(str(e))
    out.mkdir(parents=True, exist_ok=True)
    lock = hold_work(parser, work)
    try:
        run_experiment(args, argv, size, seeds, out, work)
    finally:
        lock.release()


def report_only(parser, args) -> None:
    """--from-json FILE: the markdown and plots written again from a results file, nothing run.
    The per-seed MAEs are the measurements; the paired differences and the verdict are
    computed from them again (a file written by an earlier version of this script gets the
    current test), and written back into FILE with the measurements unchanged."""
    given = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
             if k not in ("from_json", "work") and v != parser.get_default(k)]
    if given:  # they would be ignored: nothing is run
        parser.error(f"--from-json runs nothing: {', '.join(given)} would not be used (give --work only)")
    path = Path(args.from_json).expanduser()
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        parser.error(f"--from-json {path}: cannot read a results file: {e}")
    if results.get("schema") != SCHEMA:
        parser.error(f"--from-json {path}: not a results file of this script (schema {results.get('schema')!r}, "
                     f"expected {SCHEMA!r})")
    statistics(results)
    stem = path.with_name(path.name.removesuffix(".json"))  # (with_suffix: `run.v2.json` wrote `run.md`)
    rows = None  # read before anything is written: a wrong --work changes nothing
    if args.work is not None:
        work = Path(args.work).expanduser()
        # held while read, as a run holds it: a run still writing there is refused, not read half-way
        lock = hold_work(parser, work) if work.is_dir() else None
        try:
            rows = fusion_test_rows(results, work)
        finally:
            if lock is not None:
                lock.release()
    else:
        print(f"note: {stem.name}_parity.png is not drawn again: it shows the fusion models' answers, which are in "
              "the run's work folder, not in the results file: give it as --work", file=sys.stderr)
    write_json(path, results)
    beside(stem, ".md").write_text(markdown(results))
    print("wrote", path, beside(stem, ".md"), *plots(results, stem, rows))


def beside(stem: Path, ending: str) -> Path:
    """STEM + ending (".md", ".png", "_parity.png"): the results' files beside each other.
    Not `with_suffix`, which replaced the part after a dot in the stem's own name."""
    return stem.with_name(stem.name + ending)


def hold_work(parser, work: Path):
    """The work folder's lock (deepmolm_plugin.output_lock), taken before anything in it is
    read or deleted: another run there is refused in one line, exit 2. train_arm deletes an
    unfinished run folder to start it again, which was the training another run was doing."""
    from deepmolm_plugin import output_lock

    try:
        return output_lock.hold(output_lock.folder_lock(work, "experiment_fusion"))
    except output_lock.Refused as e:
        parser.error(f"--work: {e}")


def run_experiment(args, argv, size: dict, seeds: list, out: Path, work: Path) -> None:
    """The experiment itself, once its arguments are checked and its work folder held."""
    digest = settings_digest(args, size)
    stamp = work / "settings"
    if stamp.is_file() and stamp.read_text() != digest:
        raise SystemExit(f"error: {work} was made with other settings: use another --work or delete it")
    # Every setting in the digest was checked by the parser above, so a stamp never locks a
    # work folder to values that cannot run (a bad --image-size failed in deepmolm-prepare
    # after the dataset was built, and its stamp then refused the corrected rerun).
    stamp.write_text(digest)

    clock = Clock(work / "timings.json")
    with clock.part("data: molecules, conformers, targets, scaffold split"):
        info = build_dataset(work, size["molecules"], Path(args.data_dir))
    with clock.part("deepmolm-prepare"):
        prepared = prepare(work, args.image_size, args.workers, clock)
        checked = check_conformers(work, prepared)
        print(f"    {checked} molecules: molecule_fp equals the tokens of the target's conformer", flush=True)
    train_records = json.loads((prepared / "train.json").read_text())
    means = {target_of(task): v for task, v in task_means(train_records, prepared).items()}
    targets = [t for t in TARGETS if t in means]
    results = {"schema": SCHEMA, "quick": args.quick, "command": command_line(argv),
               "machine": machine(), "device": args.device, "targets": targets, "seeds": seeds,
               "arms": {arm: {"mae": {}, "valid_ratio": {}} for arm in ARMS},
               "settings": {"size": size, "image_size": args.image_size, "data_dir": args.data_dir,
                            "precision": "bf16" if args.device == "cuda" and bench_report.native_bf16("cuda") else "fp32", "encoder": f"encoder preset {ENCODER_PRESET!r} "
                            "(256 px, trainable, random init)", "selection": "best epoch checkpoint on valid",
                            "training_means": means},
               "data": info | {"conformers_checked": checked}}
    with clock.part("mean baseline"):
        valid_q = question_file(prepared / "valid.json", work / "valid-questions.jsonl")
        test_q = question_file(prepared / "test.json", work / "test-questions.jsonl")
        task_mean = {PROPERTY_PREFIX + t: v for t, v in means.items()}
        valid_report = score_answers(mean_baseline(read_jsonl(valid_q), task_mean), valid_q,
                                     work / "mean_baseline" / "valid")
        valid_baseline = {t: v[0] for t, v in per_target(valid_report).items()}
        test_report = score_answers(mean_baseline(read_jsonl(test_q), task_mean), test_q,
                                    work / "mean_baseline" / "test")
        medians = {PROPERTY_PREFIX + target_of(t): v for t, v in task_medians(train_records, prepared).items()}
        median_report = score_answers(mean_baseline(read_jsonl(test_q), medians), test_q,
                                      work / "median_baseline" / "test")
        for _ in seeds:  # deterministic: the same value for every seed, kept per seed for the paired statistics
            record(results, "mean_baseline", per_target(test_report), distinct_answers(work / "mean_baseline" / "test"))
            record(results, "median_baseline", per_target(median_report),
                   distinct_answers(work / "median_baseline" / "test"))
    THREADS["n"] = threads_per_job(args.jobs, args.device)
    run_trained_arms(seeds, args, size, prepared, means, valid_baseline, results, clock)
    run_classical(seeds, work, prepared, results, clock)

    statistics(results)
    results["timings_s"] = clock.report()
    results["starts"] = clock.starts  # the markdown: the total covers every start's parts
    parity_rows = fusion_test_rows(results, work)
    stem = out / ("experiment_fusion_quick" if args.quick else "experiment_fusion")
    write_json(beside(stem, ".json"), results)
    text = markdown(results)
    beside(stem, ".md").write_text(text)
    figures = plots(results, stem, parity_rows)
    print(text)
    print("wrote", beside(stem, ".json"), beside(stem, ".md"), *figures)


if __name__ == "__main__":
    main()
