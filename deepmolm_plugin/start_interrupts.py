"""A Ctrl-C while a tool starts (its checks and heavy imports, before anything is written)
ends the process at once from the signal handler: the tool's one line and status 130.

Separate, and importing nothing of ours, because every entry point uses it before it
imports anything heavy: the console scripts and `python -m` tools (entry_points, around
the import of the tool) and the training launcher (its checks and the host's imports)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

INTERRUPTED = 130  # the shell's status for a process ended by SIGINT (128 + 2)


@contextlib.contextmanager
def ctrl_c_ends_the_start(line: str):
    """Within it, a Ctrl-C writes `line` (the tool's own words, newline included) to stderr
    and ends the process with status 130, from the signal handler, instead of a
    KeyboardInterrupt raised wherever Python code runs next. That was often inside a C
    extension's initialisation calling back into Python (numpy's _multiarray_umath imports
    its Python helpers while torch, RDKit or pandas import numpy): numpy's C code swallowed
    the interrupt (the tool went on, exit 0), or marked itself loaded, so the next `import
    numpy` ended in "ImportError: cannot load module more than once per process", a
    traceback; pybind11 code interrupted this way aborted (exit -6). os._exit skips the exit
    handlers: nothing has been written yet, and those of half-imported libraries are what
    such an exit would run. Kept as it is where Ctrl-C is not Python's default (ignored in a
    background job, or an outer start already guarded) or off the main thread (no signal
    handler can be set there)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: _end_the_start(line))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _end_the_start(line: str):
    """SIGINT during the start: what was printed so far, then `line`, then exit 130 without unwinding."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None under pythonw and with a closed descriptor at start-up
            # a closed pipe or file, or the signal landing inside that stream's own write ("reentrant call"):
            # the line still goes out
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                stream.flush()
    with contextlib.suppress(OSError):  # stderr closed: the status alone says it
        os.write(2, line.encode())
    os._exit(INTERRUPTED)
