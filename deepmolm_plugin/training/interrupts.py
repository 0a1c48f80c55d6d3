"""A run stopped from outside (Ctrl-C, SIGTERM): SIGTERM taken as Ctrl-C, and the one line
that says what the stop left in --output_dir and what the same command does with it.

Separate because it is main's way out, read from the checkpoints the stop left, and no
check before the start uses it."""

from __future__ import annotations

import os
import signal

from deepmolm_plugin import usage
from deepmolm_plugin.training.checkpoints import adapter_only, aside_name, resumed_checkpoint, unfinished_save


def stop_on_sigterm():
    """From now on SIGTERM stops training as Ctrl-C does (the KeyboardInterrupt path of
    main: one line, exit 130); returns the handler it replaces. SIGTERM (a SLURM requeue or
    time limit, `kill`, torchrun / the deepspeed launcher passing theirs on to each rank,
    which each take this path) took the default action: exit 143 without a word, and a
    checkpoint cut short mid-save with nothing saying so. Not before the checks: a SIGTERM
    during them has changed nothing on disk.

    The host's DataLoader workers are other processes, with torch's own handlers. A SIGTERM
    to the whole process group (SLURM signals every process of the job step, torchrun its
    workers' groups) ends them too, and torch's SIGCHLD handler here then raised "DataLoader
    worker (pid N) is killed by signal: Terminated", a traceback after the one line. This
    process is stopping: their deaths are no news, so SIGCHLD gets a handler that does
    nothing first (Python runs the SIGTERM handler before a SIGCHLD that arrived with it:
    lower number first). A Python handler, not SIG_DFL: a SIGCHLD already pending when its
    handler became SIG_DFL was "OSError: Signal 17 ignored due to race condition", with a
    traceback."""
    return usage.sigterm_as_interrupt(before=lambda: signal.signal(signal.SIGCHLD, lambda signum, frame: None))


def interrupted_message(output_dir: "str | None") -> str:
    """What a stopped run (Ctrl-C, SIGTERM) left and what the same command does with it. When
    the stop cut a checkpoint's save short, "resumes from the last" was untrue: the rerun
    was refused for that half-written checkpoint; it now sets it aside
    (set_aside_unfinished_save), which this says."""
    kept = "interrupted; the checkpoint-<step> folders saved so far are kept: the same command resumes from the last"
    output = os.path.expanduser(output_dir or "")
    try:
        unfinished = unfinished_save(output)
        resumed = resumed_checkpoint(output)
    except OSError:  # the folder cannot be listed now: say what holds in general
        return kept
    if unfinished is None:
        if resumed is None:  # nothing saved yet (or --save_strategy no, as the demo trains): "kept ...
            # resumes from the last" was untrue, and the demo then said it starts over
            return "interrupted before any checkpoint-<step> was saved: the same command starts afresh"
        if adapter_only(resumed):  # stage 1: "resumes from the last" was untrue, the rerun was refused
            return ("interrupted; the checkpoint-<step> folders saved so far are kept, but they hold only the "
                    "projector (--tune_mm_mlp_adapter: the host saves no optimizer, schedule or trainer state in "
                    "stage 1), so "
                    "the same command cannot resume them: start afresh in another --output_dir, or go on from the "
                    f"last one's projector with --pretrain_mm_mlp_adapter {os.path.join(resumed, 'mm_projector.bin')}")
        return kept
    name = os.path.basename(unfinished)
    then = (f"resumes from {os.path.basename(resumed)}, the last checkpoint saved in full" if resumed else
            "starts afresh (no checkpoint was saved in full)")
    return (f"interrupted while {name} was being saved: it was cut short (no trainer_state.json); the checkpoints "
            f"saved before it are kept, and the same command sets {name} aside (as "
            f"{os.path.basename(aside_name(unfinished))}) and "
            f"{then}")
