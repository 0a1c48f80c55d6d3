"""A tiny DeepMoLM set-up for host-integration tests: real launcher, tiny sizes.

`write_tiny_setup` writes a plain Qwen2 checkpoint folder (tiny, with a ChatML BPE
tokenizer), a tiny DeepEncoderConfig JSON and host training records carrying each kind
of molecule field; `train_args` builds the launcher's command line; `run_module` runs a
`python -m` module as a subprocess, as a user would, and fails with its output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rdkit import Chem
from rdkit.Chem import AllChem

from conftest import tiny_encoder_config
from tiny_models import make_tiny_qwen2

ROOT = Path(__file__).resolve().parents[1]

MOLECULES = [("CCO", "ethanol"), ("c1ccccc1", "benzene"), ("CC(=O)O", "acetic acid"), ("CCN", "ethylamine")]
QUESTION = "<image>\nWhat is this molecule?"


def write_tiny_setup(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    llm = make_tiny_qwen2(root / "qwen2")
    encoder_config = root / "deepencoder.json"
    encoder_config.write_text(json.dumps(tiny_encoder_config().to_dict()))
    structures = root / "structures"
    structures.mkdir(exist_ok=True)
    records = []
    for i, (smiles, name) in enumerate(MOLECULES):
        record = {"id": f"mol{i}", "conversations": [
            {"from": "human", "value": QUESTION}, {"from": "gpt", "value": f"This molecule is {name}."}]}
        if i == 1:  # a 3D structure file under --structure_folder
            mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
            AllChem.EmbedMolecule(mol, randomSeed=7)
            Chem.MolToMolFile(mol, str(structures / f"mol{i}.sdf"))
            record["structure"] = f"mol{i}.sdf"
            record["smiles"] = smiles  # for its depiction
        else:
            record["smiles"] = smiles
        records.append(record)
    data = root / "train.json"
    data.write_text(json.dumps(records))
    return {"root": root, "llm": Path(llm), "encoder_config": encoder_config, "data": data,
            "structures": structures, "records": records}


def train_args(setup: dict, output_dir: Path, *extra: str, steps: int = 6) -> list:
    # --fusion_heads only for the fusion projector: the launcher refuses options the projector ignores
    heads = ["--fusion_heads", "2"] if "fusion" in extra else []
    return [
        "--model_name_or_path", str(setup["llm"]), "--version", "qwen2",
        "--vision_tower", "deepencoder", "--vision_tower_weights", "random",
        "--deepencoder_config", str(setup["encoder_config"]),
        *heads, "--mm_use_im_patch_token", "False",
        "--data_path", str(setup["data"]), "--structure_folder", str(setup["structures"]),
        "--image_aspect_ratio", "pad", "--lazy_preprocess", "True",
        "--output_dir", str(output_dir), "--max_steps", str(steps),
        "--per_device_train_batch_size", "2", "--learning_rate", "2e-3",
        "--logging_steps", "1", "--report_to", "none", "--save_strategy", "no",
        "--model_max_length", "256", "--dataloader_num_workers", "0", "--seed", "0",
        *extra,
    ]


def run_module(module: str, args: list, cwd: Path, stdin: str | None = None, check: bool = True,
               env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"python -m {module} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                             f"\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


def losses(output_dir: Path) -> list:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]
