"""The checkpoints of an --output_dir as the host sees them: which `checkpoint-<step>` it
resumes, a last save cut short (no trainer_state.json) and setting it aside, a stage-1
(--tune_mm_mlp_adapter) checkpoint that holds only the projector.

Separate because every resume rule, the finished-run rule and the interrupted line start
from the same answer to "which folder does the host resume?"."""

from __future__ import annotations

import os
import re
import sys

from deepmolm_plugin import usage
from deepmolm_plugin.training.options import PROG


def resumes(output: str) -> bool:
    """Whether the host resumes a run from `output` (it does when anything there matches
    `checkpoint-*`, llava/train/train.py) once the launcher has set aside a last checkpoint
    whose save was cut short (`unfinished_save`): that one is no checkpoint to resume. Every
    rank answers alike whether or not rank 0 has renamed it yet (set_aside_unfinished_save)."""
    return bool(host_checkpoints(output))


def host_checkpoints(output: str) -> list:
    """The `checkpoint-*` entries of `output` (the host's glob) less a last save that was cut
    short (`unfinished_save`, set aside before the host starts): what the host sees."""
    from pathlib import Path

    if not os.path.isdir(output):
        return []
    unfinished = unfinished_save(output)
    skipped = os.path.basename(unfinished) if unfinished else None
    return sorted(p for p in Path(output).glob("checkpoint-*") if p.name != skipped)


# transformers' rule for the folders Trainer.train(resume_from_checkpoint=True) chooses from
# (trainer_utils.get_last_checkpoint: the highest step wins).
STEP_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# What a save that was cut short is renamed to: a name neither the host's `checkpoint-*` glob
# nor STEP_CHECKPOINT matches, so the rerun resumes the checkpoint before it, and
# transformers' rotation (--save_total_limit, which globs `checkpoint-*`) never deletes it.
UNFINISHED_PREFIX = "unfinished-"


def last_step_checkpoint(output: str, skip: "str | None" = None) -> "str | None":
    """The `checkpoint-<step>` folder of `output` that transformers resumes (the highest
    step), leaving out the folder named `skip`; None when there is none."""
    try:
        names = os.listdir(output)
    except (FileNotFoundError, NotADirectoryError):
        return None
    found = [n for n in names if STEP_CHECKPOINT.match(n) and n != skip and os.path.isdir(os.path.join(output, n))]
    if not found:
        return None
    return os.path.join(output, max(found, key=lambda n: int(STEP_CHECKPOINT.match(n).group(1))))


def unfinished_save(output: str) -> "str | None":
    """The last `checkpoint-<step>` of `output` when the Trainer's save of it was cut short
    (Ctrl-C, SIGTERM from a scheduler, SIGKILL, a lost node), else None. The Trainer writes
    trainer_state.json last, after the weights, tokenizer, optimizer, schedule and RNG state
    (DeepSpeed's global_step*/ too), so a folder without it never finished saving and holds
    nothing the run can go on from. A folder with mm_projector.bin and no trainer_state.json
    is no cut save but a --tune_mm_mlp_adapter checkpoint (the host saves no Trainer state
    for those): setting it aside would only expose the next one alike, so it stays refused
    (check_resumed_settings). A trainer_state.json that is there but damaged is refused too:
    it cannot be told from a damaged copy of a finished save."""
    last = last_step_checkpoint(output)
    if last is None:
        return None
    # lexists: rank 0 may rename the folder while another rank looks (resumes); a folder
    # gone from under us reads as set aside, which is what it is then
    if any(os.path.lexists(os.path.join(last, name)) for name in ("trainer_state.json", "mm_projector.bin")):
        return None
    return last


def resumed_checkpoint(output: str) -> "str | None":
    """The `checkpoint-<step>` the host resumes once an unfinished last save is set aside
    (unfinished_save), None when no such folder is left (the run then starts afresh)."""
    unfinished = unfinished_save(output)
    return last_step_checkpoint(output, skip=os.path.basename(unfinished) if unfinished else None)


    # "resuming ..." is said by say_start_lines once every check has passed and the output is
    # locked (was: here, before check_resumed_run and the other checks, so a refusal followed it)


# What a --tune_mm_mlp_adapter checkpoint lacks: the host's LLaVATrainer._save_checkpoint writes
# only config.json and mm_projector.bin for stage 1, no trainer_state.json, optimizer.pt,
# scheduler.pt or rng_state.pth, so transformers cannot resume from it.
ADAPTER_ONLY_WHY = "which holds only the projector: the host saves no optimizer, schedule or trainer state in stage 1"


def adapter_only(checkpoint) -> bool:
    """Whether a checkpoint folder is a --tune_mm_mlp_adapter one (ADAPTER_ONLY_WHY):
    mm_projector.bin and no trainer_state.json."""
    return (not os.path.isfile(os.path.join(checkpoint, "trainer_state.json"))
            and os.path.isfile(os.path.join(checkpoint, "mm_projector.bin")))


def aside_name(checkpoint: str) -> str:
    """A free name beside `checkpoint` to set it aside under: unfinished-checkpoint-N, or
    unfinished-checkpoint-N.2, .3, ... when an earlier cut save of the same step was set
    aside already (it is the user's to inspect, never overwritten)."""
    base = os.path.join(os.path.dirname(checkpoint), UNFINISHED_PREFIX + os.path.basename(checkpoint))
    target, n = base, 1
    while os.path.lexists(target):
        n += 1
        target = f"{base}.{n}"
    return target


# How long a rank other than 0 waits for rank 0 to set a cut save aside. Rank 0 runs the same
# checks on the same files and renames right after them, so the wait is short; the bound only
# turns a rank 0 that never gets there (and a launcher that did not stop the others) into a
# message instead of a hang.
SET_ASIDE_WAIT_S = 600


def set_aside_unfinished_save(output_dir: str) -> "str | None":
    """Rename a last checkpoint whose save was cut short (unfinished_save) out of the host's
    way, saying so in one line (and what is resumed instead), after every up-front check has
    passed (a refused command leaves --output_dir as it was). It could not resume (the rerun of an interrupted or
    requeued job was refused, "move it away"), and the checkpoint before it is what the run
    had finished; the folder is kept, under a name the host does not resume (aside_name).

    Under torchrun / deepspeed every rank runs the launcher's checks at once, before any
    process group exists, so only rank 0 renames: two ranks renaming one folder would race
    for the new name. The other ranks' checks already treat the folder as set aside
    (resumes, resumed_checkpoint), so they agree with rank 0 whether or not the rename has
    happened yet; and here they wait until it has, so that the host on every rank (its
    `checkpoint-*` glob, transformers' choice of the last checkpoint) sees the same folders:
    nothing else orders them before a rank resumes, which it may do before its first
    collective call.

    Returns the folder set aside (by this rank or rank 0), None when there was none (was:
    nothing; say_start_lines then leaves "resuming" to this function's own line)."""
    import time

    output = os.path.expanduser(output_dir or "")
    unfinished = unfinished_save(output)
    if unfinished is None:
        return None
    if os.environ.get("RANK", "0") != "0":
        deadline = time.monotonic() + SET_ASIDE_WAIT_S
        # until rank 0 has renamed it, or it is no cut save after all (a live run's save, which
        # finished: that run holds the lock, and this launch's rank 0 was refused)
        while os.path.lexists(unfinished) and unfinished_save(output) == unfinished:
            if time.monotonic() > deadline:
                raise usage.UsageError(f"--output_dir {output_dir}: rank 0 did not set aside {unfinished} (a save that "
                                       f"was cut short) within {SET_ASIDE_WAIT_S} s; did rank 0 stop?")
            time.sleep(0.2)
        return unfinished
    target = aside_name(unfinished)
    try:
        os.rename(unfinished, target)
    except OSError as e:
        raise usage.UsageError(f"--output_dir {output_dir}: {unfinished} was cut short while being saved (no "
                               f"trainer_state.json) and cannot be resumed, and setting it aside as {target} "
                               f"failed ({e}); move it away yourself") from e
    resumed = resumed_checkpoint(output)
    then = (f"resuming {resumed} (the host resumes the last checkpoint of --output_dir)" if resumed else
            "no finished checkpoint is left, so the run starts afresh")
    print(f"{PROG}: {unfinished} was cut short while being saved (no trainer_state.json, which the Trainer writes "
          f"last): set aside as {target}; {then}", file=sys.stderr)
    return unfinished
