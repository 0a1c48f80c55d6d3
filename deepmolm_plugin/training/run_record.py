"""The run record (RUN_RECORD, deepmolm_resume.json in --output_dir): what a resumed run
cannot change and still be the run it resumes (optimizer settings, seeds, the global batch,
--data_path's content), written when a run starts afresh and compared when it resumes.

Separate because it is the launcher's own file (the host writes none of it), read by
the resume check and by the stage-1 adapter check (its --seed)."""

from __future__ import annotations

import json
import math
import os
import sys

from deepmolm_plugin import usage
from deepmolm_plugin.training.checkpoints import resumes
from deepmolm_plugin.training.distributed import world_size
from deepmolm_plugin.training.options import PROG


# What a resumed run cannot change and still be the run it resumes, written to --output_dir
# (RUN_RECORD) when a run starts afresh and compared when it resumes. The Trainer loads the
# checkpoint's optimizer.pt and scheduler.pt, whose learning rates, betas, epsilon and weight
# decay replace the command line's without a word (another --learning_rate was ignored, exit 0),
# and the resumed epoch skips as many batches as were trained, counted in the order that
# --data_path's records and the seeds give now, in batches of the size it has now: other
# records, another seed, or another global batch (per-device batch x accumulation x
# processes) trained some records twice and others never (a run resumed at step 2 of 4 with
# twice the batch took the first epoch as done and skipped its other half, exit 0). The
# factors may change if their product stays: 8 GPUs resumed on 4 with twice the
# accumulation skip the same samples, except under --deepspeed (deepspeed_processes_problem:
# its optimizer state is split by process) and under the samplers of ORDER_BY_FACTORS.
# (Epochs, steps and schedule may change: the Trainer applies them, which is how a finished
# run is trained for longer; patches.resume_schedule gives the first resumed step the new
# schedule's learning rate, not the old one's last.)
RUN_RECORD = "deepmolm_resume.json"
RESUME_KEPT = ("learning_rate", "mm_projector_lr", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "optim",
               "seed", "data_seed", "group_by_modality_length", "per_device_train_batch_size",
               "gradient_accumulation_steps",
               # the batches of an epoch: another value skipped the wrong ones when the epoch resumed
               "dataloader_drop_last",
               # where every record is cut (the host's tokenizer truncates at it): the resumed part
               # trained on other text than the first without a word
               "model_max_length",
               # the sampler transformers builds (Trainer._get_train_sampler: random, sequential,
               # group_by_length, batch_rebalance): was not recorded, and a resume with another
               # sampler read the resumed epoch in another order, training some records twice and
               # others never. (Not --length_column_name: transformers reads it only from a
               # datasets.Dataset, and the host's LazySupervisedDataset is a torch Dataset; was
               # compared, refusing a resume whose data order it does not change.)
               "train_sampling_strategy")
PROCESSES = "processes"  # RUN_RECORD's number of training processes (WORLD_SIZE), next to RESUME_KEPT
# compared as their product, the global batch
BATCH_FACTORS = ("per_device_train_batch_size", "gradient_accumulation_steps", PROCESSES)
# Samplers whose order depends on the factors themselves, not only their product (transformers
# 5.x): group_by_length sorts megabatches of per-device batch x accumulation, batch_rebalance
# deals batches by process and accumulation step. Under them each factor must be kept.
ORDER_BY_FACTORS = ("group_by_length", "batch_rebalance")
FACTOR_OPTIONS = {"per_device_train_batch_size": "--per_device_train_batch_size",
                  "gradient_accumulation_steps": "--gradient_accumulation_steps", PROCESSES: "WORLD_SIZE"}
# The folders the records' files are read from (images, structures) and depictions drawn into,
# recorded in RUN_RECORD and named in a note when a resume gives others: moving the data to
# another disk is legitimate, but other pictures under the same names trained the rest of the
# run on other inputs without a word (was: not recorded). Only the folders: a digest of every
# referenced file (even of its size) costs a file-system call per record at every start
# (minutes for a million records on a network file system).
DATA_FOLDERS = ("image_folder", "structure_folder", "render_folder")


def run_record(options, data_args) -> dict:
    """What RUN_RECORD holds for this command line: RESUME_KEPT, the number of processes,
    --data_path's content and the DATA_FOLDERS."""
    from deepmolm_plugin.result_files import file_sha256

    kept = {name: getattr(getattr(options, name, None), "value", getattr(options, name, None)) for name in RESUME_KEPT}
    # transformers' default --optim is adamw_torch before torch 2.8 and adamw_torch_fused from
    # it: one AdamW, whose state either loads; a resume after a torch upgrade is no other run
    kept["optim"] = {"adamw_torch_fused": "adamw_torch"}.get(kept["optim"], kept["optim"])
    kept[PROCESSES] = world_size()
    data = os.path.abspath(os.path.expanduser(data_args.data_path))
    return {"settings": kept, "data_path": data, "data_sha256": file_sha256(data), "folders": data_folders(data_args)}


def data_folders(data_args) -> dict:
    """DATA_FOLDERS as absolute paths (None: not given); the render folder as the dataset
    uses it (<data_path>.renders when not given)."""
    from deepmolm_plugin.patches.arguments import render_folder_for

    given = {name: getattr(data_args, name, None) for name in DATA_FOLDERS}
    given["render_folder"] = render_folder_for(data_args.data_path, given["render_folder"])
    return {name: os.path.abspath(os.path.expanduser(value)) if value else None for name, value in given.items()}


def moved_folders_note(saved: dict, ours: dict) -> "str | None":
    """One line naming the DATA_FOLDERS a resumed run reads from other folders than it
    started with (its RUN_RECORD's `folders`; a record without them: None)."""
    then, now = saved.get("folders"), ours["folders"]
    if not isinstance(then, dict):
        return None
    moved = [f"--{name} {now[name] or 'not given'} (the run started with {then[name] or 'none'})"
             for name in DATA_FOLDERS if name in then and then[name] != now[name]]
    if not moved:
        return None
    return (f"{PROG}: note: this resumed run reads its data from other folders than it started with: "
            f"{'; '.join(moved)}. Fine if the data only moved; if those folders hold other files under the same "
            "names, the rest of the run trains on other inputs than its first part")


def check_resumed_run(options, data_args) -> None:
    """A run that resumes (a checkpoint-<step> in --output_dir) with RESUME_KEPT settings or a
    --data_path other than those it started with (its RUN_RECORD): refused, naming them. A
    run started before RUN_RECORD existed, or by the host's own train.py, has none and is not
    checked. Other DATA_FOLDERS than it started with are a note (moved_folders_note), not a
    refusal."""
    from pathlib import Path

    output = os.path.expanduser(options.output_dir or "")
    record_path = os.path.join(output, RUN_RECORD)
    if not (os.path.isfile(record_path) and resumes(output)):
        return
    unreadable = (f"--output_dir {options.output_dir}: its {RUN_RECORD} (the settings the run started with) cannot "
                  "be read ({}); move it away to resume without this check")
    try:
        saved = json.loads(Path(record_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise usage.UsageError(unreadable.format(e)) from e
    if not (isinstance(saved, dict) and isinstance(saved.get("settings"), dict)
            and all(isinstance(saved.get(k), str) for k in ("data_path", "data_sha256"))):
        raise usage.UsageError(unreadable.format("not the record this launcher writes"))
    ours = run_record(options, data_args)
    differ = [f"--{name} {value!r} (the run: {saved['settings'][name]!r})" for name, value in ours["settings"].items()
              if name not in BATCH_FACTORS and name in saved["settings"] and saved["settings"][name] != value]
    differ += batch_differences(ours["settings"], saved["settings"])
    if ours["data_sha256"] != saved["data_sha256"]:
        edited = ", since edited" if saved["data_path"] == ours["data_path"] else ""
        differ.append(f"--data_path {data_args.data_path} is not the file it started with ({saved['data_path']}{edited})")
    if differ:
        raise usage.UsageError(f"--output_dir {options.output_dir} holds a run that this command resumes, but with "
                               f"other settings than it started with: {'; '.join(differ)}. A resumed run keeps its "
                               "optimizer, schedule and data order: give the run's own, or start afresh in another "
                               "--output_dir (--model_name_or_path <a checkpoint> to go on from its weights)")
    for note in (unrecorded_settings_note(options.output_dir, saved, ours), moved_folders_note(saved, ours)):
        if note and os.environ.get("RANK", "0") == "0":  # said once, not by every rank
            print(note, file=sys.stderr)


def batch_differences(now: dict, then: dict) -> list:
    """How the batches of this command differ from those the run started with (RUN_RECORD
    settings): the global batch (BATCH_FACTORS' product), or, under a sampler of
    ORDER_BY_FACTORS, each factor (was: the product only, and group_by_length resumed with the
    factors swapped read other records than the run would have). A record without a factor
    (an older launcher's) is not compared."""
    if not all(name in then for name in BATCH_FACTORS):
        return []
    strategy = now.get("train_sampling_strategy")
    if strategy in ORDER_BY_FACTORS:
        return [f"{FACTOR_OPTIONS[name]} {now[name]} (the run: {then[name]}; --train_sampling_strategy {strategy} "
                "orders the records by each factor of the global batch, not only by their product)"
                for name in BATCH_FACTORS if now[name] != then[name]]
    ours, theirs = ([settings[name] for name in BATCH_FACTORS] for settings in (now, then))
    if math.prod(ours) == math.prod(theirs):
        return []
    shown = " x ".join(f"{FACTOR_OPTIONS[name]} {v}" for name, v in zip(BATCH_FACTORS, ours))
    return [f"a global batch of {math.prod(ours)} ({shown}; the run: {math.prod(theirs)}, "
            f"{' x '.join(map(str, theirs))})"]


def unrecorded_settings_note(output_dir: str, saved: dict, ours: dict) -> "str | None":
    """One line naming the RESUME_KEPT settings a RUN_RECORD written by an older launcher does
    not hold (--train_sampling_strategy before it was recorded):
    they cannot be compared, and the resume takes it that the run started with the values
    given now (refusing would stop every run started before them from resuming)."""
    missing = [name for name in RESUME_KEPT if name not in saved["settings"]]
    if not missing:
        return None
    shown = ", ".join(f"--{name} {ours['settings'][name]!r}" for name in missing)
    return (f"{PROG}: note: --output_dir {output_dir}: its {RUN_RECORD} was written before the launcher recorded "
            f"{', '.join('--' + name for name in missing)}, so {'they are' if len(missing) > 1 else 'it is'} not "
            "compared: this resume takes it that the "
            f"run started with the values given now ({shown}); if it did not, its records are read in another "
            "order from here on")


def write_run_record(options, data_args) -> None:
    """RUN_RECORD for a run that starts afresh (rank 0; a resumed run keeps the one it started
    with)."""
    from deepmolm_plugin.result_files import write_atomic

    output = os.path.expanduser(options.output_dir or "")
    if os.environ.get("RANK", "0") != "0" or resumes(output):
        return
    os.makedirs(output, exist_ok=True)
    write_atomic(os.path.join(output, RUN_RECORD), json.dumps(run_record(options, data_args), indent=1) + "\n")
