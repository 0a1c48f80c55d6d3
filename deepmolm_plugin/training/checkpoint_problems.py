"""Why a checkpoint the host would resume cannot resume this run: saved by the other kind
of trainer (DeepSpeed or not), files missing or unreadable, a trainer_state.json the Trainer
refuses, no optimizer saved (--save_only_model), or a ZeRO state split across another
number of processes.

Separate from checkpoints.py (which folder is resumed): these read its files, each problem
a sentence for check_resumed_settings' one-line refusal."""

from __future__ import annotations

import re

from deepmolm_plugin.training.checkpoints import host_checkpoints
from deepmolm_plugin.training.distributed import world_size


# What transformers' Trainer reads back when it resumes (without DeepSpeed, whose engine
# keeps and checks its own files under global_step*/): the model, the optimizer and its
# learning-rate schedule.
RESUMED_WEIGHTS = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                   "pytorch_model.bin")
RESUMED_STATE = ("optimizer.pt", "scheduler.pt")


def checkpoint_kind_problem(checkpoint: str, deepspeed) -> "str | None":
    """Why `checkpoint` cannot resume under this run's --deepspeed (None or its config file),
    or None. DeepSpeed's engine keeps the optimizer and schedule under global_step*/ (with
    `latest` naming the step), the Trainer alone in optimizer.pt: a DeepSpeed checkpoint
    resumed without --deepspeed went on with a fresh optimizer and schedule, exit 0, and a
    plain one with --deepspeed was "Can't find a valid checkpoint", a traceback after the
    model had loaded."""
    from pathlib import Path

    saved_by_deepspeed = by_deepspeed(Path(checkpoint))
    if saved_by_deepspeed and not deepspeed:
        return ("a DeepSpeed checkpoint (its optimizer and schedule under global_step*/), but this run has no "
                "--deepspeed: it would go on with a fresh optimizer and learning-rate schedule; give the run's "
                "--deepspeed config")
    if deepspeed and not saved_by_deepspeed:
        return (f"saved without DeepSpeed (no global_step*/ or latest), but this run gives --deepspeed {deepspeed}, "
                "whose engine cannot load it; leave --deepspeed out, as the run started")
    return None


def by_deepspeed(folder) -> bool:
    """Whether the checkpoint folder (a Path) was saved by DeepSpeed's engine: its state under
    global_step*/, `latest` naming the step."""
    return (folder / "latest").is_file() or any(p.is_dir() for p in folder.glob("global_step*"))


def checkpoint_files_problem(checkpoint: str) -> "str | None":
    """What keeps a `checkpoint-N` from resuming the run it was saved by, or None: a
    trainer_state.json that is not JSON or not the Trainer's state, model weights missing or unreadable, the optimizer
    or schedule missing or unreadable. Each was a traceback after the model had loaded
    (JSONDecodeError, SafetensorError, a zip error), or, for a missing optimizer.pt or
    scheduler.pt, a run that went on with a fresh optimizer and schedule, exit 0."""
    import json
    import zipfile
    from pathlib import Path

    from deepmolm_plugin.tensor_files import CheckpointError, open_checkpoint

    folder = Path(checkpoint)
    if by_deepspeed(folder):  # its engine loads its own files
        return None
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"trainer_state.json is not readable JSON ({e})"
    if not isinstance(state, dict):
        return "trainer_state.json is not a JSON object"
    problem = trainer_state_problem(state)
    if problem:
        return f"trainer_state.json {problem}"
    weights = next((folder / name for name in RESUMED_WEIGHTS if (folder / name).is_file()), None)
    if weights is None:
        return f"model weights are missing (none of {', '.join(RESUMED_WEIGHTS)})"
    if weights.name == "pytorch_model.bin" and not zipfile.is_zipfile(weights):
        return f"{weights.name} is not a readable PyTorch file (truncated?)"
    if weights.name.startswith("model.safetensors"):
        try:  # headers only (a file cut short fails here); the tensors are read when the host resumes
            open_checkpoint(folder if weights.name.endswith(".index.json") else weights)
        except (CheckpointError, OSError) as e:
            return f"model weights cannot be read: {e}"
    for name in RESUMED_STATE:
        if not (folder / name).is_file():
            return f"{name} is missing: the run would go on with a fresh optimizer and learning-rate schedule"
        if not zipfile.is_zipfile(folder / name):
            return f"{name} is not a readable PyTorch file (truncated?)"
    for path in sorted(folder.glob("rng_state*.pth")) + [p for p in [folder / "scaler.pt"] if p.is_file()]:
        if not zipfile.is_zipfile(path):  # read when the host resumes: a zip error after the model had loaded
            return f"{path.name} is not a readable PyTorch file (truncated?)"
    return None


def trainer_state_problem(state: dict) -> "str | None":
    """Why transformers cannot resume from this trainer_state.json object, or None. It
    builds a TrainerState of the fields (another key: a TypeError), then divides by
    `train_batch_size` and `global_step` (`{}` or a step of "x": a TypeError), all after the
    model had loaded."""
    from transformers import TrainerState

    try:
        TrainerState(**state)
    except TypeError as e:
        return f"is not the Trainer's state ({e})"
    for name in ("global_step", "train_batch_size"):
        value = state.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "global_step" else 1):
            return f"holds {name} {value!r}, not a {'step count' if name == 'global_step' else 'batch size'}"
    if not isinstance(state.get("log_history", []), list):
        return f"holds log_history {type(state['log_history']).__name__}, not a list"
    return None


def model_only(output: str) -> bool:
    """Every checkpoint of `output` was saved without optimizer.pt and scheduler.pt
    (--save_only_model): "move the last one away" would not help."""
    checkpoints = [p for p in host_checkpoints(output) if p.is_dir() and not by_deepspeed(p)]
    return bool(checkpoints) and all(not (p / "optimizer.pt").exists() and not (p / "scheduler.pt").exists()
                                     and (p / "trainer_state.json").is_file() for p in checkpoints)


# The optimizer-state partitions of a DeepSpeed checkpoint, one per data-parallel process
# (zero_pp_rank_<r>_mp_rank_<m>_optim_states.pt, bf16_ in front under its bf16 optimizer).
ZERO_PARTITION = re.compile(r"zero_pp_rank_(\d+)_mp_rank_\d+_optim_states\.pt$")


def deepspeed_processes_problem(checkpoint: str) -> "str | None":
    """Why a DeepSpeed checkpoint cannot resume on this run's number of processes, or None.
    ZeRO (and DeepSpeed's bf16 optimizer) splits the optimizer state across the processes
    that saved it, one file each (ZERO_PARTITION), and DeepSpeed cannot split it anew: another
    WORLD_SIZE was its ZeRORuntimeException traceback on every rank after the model had loaded,
    although the global batch (the product check of check_resumed_run) was kept. Counted
    from the files, so a run started before RUN_RECORD recorded its processes is checked too."""
    from pathlib import Path

    folder = Path(checkpoint)
    latest = folder / "latest"  # names the global_step* folder DeepSpeed loads
    try:
        tag = latest.read_text(encoding="utf-8").strip() if latest.is_file() else ""
    except (OSError, UnicodeDecodeError):
        tag = ""
    # without `latest`, the newest save: the highest step number (was: the last name in string
    # order, global_step9 after global_step10, counting another save's files)
    numbered = [p for p in folder.glob("global_step*") if re.fullmatch(r"global_step\d+", p.name) and p.is_dir()]
    newest = sorted(numbered, key=lambda p: int(p.name[len("global_step"):]))[-1:]
    steps = [folder / tag] if tag and (folder / tag).is_dir() else newest
    ranks = {int(m.group(1)) for step in steps for f in step.glob("*optim_states.pt")
             if (m := ZERO_PARTITION.search(f.name))}
    if not ranks or len(ranks) == world_size():
        return None
    return (f"a DeepSpeed checkpoint whose optimizer state is split across the {len(ranks)} process(es) that saved it, "
            f"but this run has {world_size()} (WORLD_SIZE): DeepSpeed cannot split it anew; resume on {len(ranks)} "
            f"process(es), or start afresh in another --output_dir with --model_name_or_path {checkpoint} (its "
            "weights, a fresh optimizer and schedule)")
