"""A run stopped from outside (Ctrl-C, SIGTERM, another training process ending): SIGTERM
taken as Ctrl-C, a failed process group taken as a stop, and the one line that says what
the stop left in --output_dir and what the same command does with it (a Ctrl-C during the
start, before anything is written, is deepmolm_plugin.start_interrupts).

Separate because it is main's way out, read from the checkpoints the stop left, and no
check before the start uses it."""

from __future__ import annotations

import contextlib
import os
import re
import signal

from deepmolm_plugin import usage
from deepmolm_plugin.training.checkpoints import adapter_only, aside_name, resumed_checkpoint, unfinished_save
from deepmolm_plugin.training.options import PROG

# gloo's words when the other end of a connection is gone (its tcp pair: read of 0 bytes,
# ECONNRESET, EPIPE): the only RuntimeErrors taken for a failed process group
GLOO_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
# NCCL's words when a peer is gone (its remote error, a process that exited, an aborted
# communicator): NCCL raises DistBackendError for its own failures too (a small /dev/shm,
# out of memory), and those keep their traceback, which says what to fix
NCCL_PEER_GONE = ("ncclRemoteError", "remote process exited", "Connection closed", "Connection reset",
                  "communicator was aborted", "Broken pipe")


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


def process_group_failure(error: BaseException) -> "str | None":
    """What torch said, in a few words, when `error` is the process group failing (another
    training process ended): torch.distributed's own errors (DistBackendError under NCCL,
    DistNetworkError / DistStoreError when the rendezvous store's host is gone) and gloo's
    RuntimeError for a peer connection that closed. None for any other error: those keep
    their traceback."""
    import torch.distributed as dist

    text = str(error)
    if isinstance(error, (dist.DistNetworkError, dist.DistStoreError)):  # the rendezvous store's host is gone
        pass
    elif isinstance(error, dist.DistBackendError):
        if not any(words in text for words in NCCL_PEER_GONE + GLOO_PEER_GONE):
            return None
    elif not (isinstance(error, RuntimeError) and "gloo" in text and any(words in text for words in GLOO_PEER_GONE)):
        return None
    text = re.sub(r"^\[[^\]]*\]\s*", "", text.strip())  # gloo's "[.../pair.cc:561] " source position
    return text.split(". ")[0].splitlines()[0][:200] if text else type(error).__name__


def lost_peer_line(why: str, output_dir: "str | None", trained: bool = False) -> str:
    """The one line of a rank whose process group failed (`why`: process_group_failure).
    `trained`: the training had returned, its model saved (the failure came at the feature
    cache's report or the closing barrier), so nothing was interrupted."""
    if trained:
        return (f"{PROG}: error: another training process ended or lost contact ({why}) after the training "
                f"finished; its model was saved in {output_dir} (the same command says the run is finished)")
    return (f"{PROG}: error: another training process ended or lost contact ({why}), so this one stopped too; "
            f"{interrupted_message(output_dir)}")


class LostPeer(Exception):
    """A rank's process group failed (lost_peer_turns_into): its one line. The caller says it and
    leaves through leave_process: the broken group's gloo / NCCL threads are never torn down
    by interpreter shutdown, where they can abort or hang."""


@contextlib.contextmanager
def lost_peer_turns_into(output_dir: "str | None", trained: bool = False):
    """A process-group failure within it (process_group_failure: another rank killed, its
    machine gone) becomes LostPeer, holding lost_peer_line; every other error passes through
    unchanged. Was: a 60-line `[rank0]` traceback ending in gloo's "Connection closed by peer",
    and no word of what the same command resumes. SIGTERM and SIGINT are ignored from then
    on: torchrun signals the survivors when a worker dies, and the KeyboardInterrupt of
    stop_on_sigterm then added a second line (or, once main had put SIG_DFL back, ended the
    process before any)."""
    try:
        yield
    except RuntimeError as error:  # narrowed at once: anything but a failed process group is raised on
        why = process_group_failure(error)
        if why is None:
            raise
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, signal.SIG_IGN)
        raise LostPeer(lost_peer_line(why, output_dir, trained)) from None
