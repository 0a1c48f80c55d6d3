"""Worker processes: they end with their parent (deepmolm-prepare's pool, the GUI's
molecule workers, bench_molecules' pool), and a process pool that starts without losing a
Ctrl-C (`start_pool`, `interrupts_held`)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, List


def die_with_parent() -> None:
    """This worker ends when its parent does: after a kill -9 (or SIGTERM) of the parent its
    workers waited forever on a pipe they hold themselves (~600 MB each), and a
    `deepmolm-prepare ... | cat` pipeline never ended. Linux's PR_SET_PDEATHSIG sends them
    SIGKILL when the parent dies (a parent that died in the instant between this process's
    start and this call is not noticed). Elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)


class HeldInterrupts:
    """The SIGINT / SIGTERM handler while a pool starts (`interrupts_held`): in the process
    that installed it, the signal is noted for later; in a worker forked meanwhile (which
    inherits it until its initializer runs), SIGTERM ends the worker as the default action
    would and SIGINT is ignored, as pool workers ignore it (Ctrl-C is the parent's)."""

    def __init__(self):
        self.pid, self.signals = os.getpid(), []

    def __call__(self, signum, frame) -> None:
        if os.getpid() == self.pid:
            self.signals.append(signum)
        elif signum != signal.SIGINT:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


@contextmanager
def interrupts_held() -> Iterator[List[int]]:
    """SIGINT and SIGTERM that arrive while the body runs are held: the list it yields names
    them, for the caller to deliver (`signal.raise_signal`) once what it started can be
    stopped. Why: a Ctrl-C raised in ProcessPoolExecutor.submit after it forked the workers
    and before it started the thread that stops them left those workers waiting for work
    forever, and the interpreter's exit waiting for them (a run that never ended after
    Ctrl-C). Outside the main thread (no handler can be set there) nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    held = HeldInterrupts()
    previous = {number: signal.signal(number, held) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held.signals
    finally:
        for number, handler in previous.items():  # None: set outside Python; the default is what it did
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def start_pool(workers: int, context, initializer: Callable, initargs: tuple = ()):
    """A ProcessPoolExecutor of `workers` processes (`context`: a multiprocessing context)
    whose workers are running when it returns. Ctrl-C and SIGTERM are held while the first
    submit forks them (`interrupts_held`) and raised once the pool can be shut down; on any
    error (BrokenProcessPool: a worker killed while starting) or interrupt the pool is shut
    down, its workers told to stop rather than left waiting for work, and the error raised.
    Unlike multiprocessing.Pool, the executor ends its workers by a message, never a signal
    (Pool.terminate's SIGTERM could be lost in a worker blocked on the task queue's lock, and
    the parent waited forever), and fails loudly when one dies (Pool waited forever)."""
    from concurrent.futures import ProcessPoolExecutor

    with interrupts_held() as held:  # the first submit forks the workers, then starts the thread that stops them
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
        started = pool.submit(int)
    try:
        for number in dict.fromkeys(held):  # the pool can be stopped now: Ctrl-C / SIGTERM as they came
            signal.raise_signal(number)
        started.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    return pool


def stop_pool(pool) -> None:
    """Shut a ProcessPoolExecutor down without waiting for the tasks its workers are running:
    for a run that is stopping (Ctrl-C, SIGTERM, an error), where nobody wants those results.
    `shutdown(cancel_futures=True)` cancels the queued tasks but waits for the running ones,
    and a task deaf to signals ran on: deepmolm-prepare's ETKDG embedding of a large molecule
    (RDKit's C++, which only checks its time limit between stages) kept a SIGTERM waiting 56 s
    before the run ended. The workers are killed (SIGKILL) first, then the pool is shut down;
    what they were writing is temporary (prepare's chunks commit only in the parent)."""
    kill = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill is not None:
        kill()
    else:  # the executor's own table of its worker processes, {pid: Process}, until 3.14's method
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.is_alive():
                process.kill()
    pool.shutdown(wait=True, cancel_futures=True)
