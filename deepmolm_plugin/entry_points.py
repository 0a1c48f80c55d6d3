"""The console scripts (setup.cfg `console_scripts`): each imports its tool only inside
its own entry function, so a Ctrl-C while the chemistry and torch stack loads (the first
second or two of every tool) is one line and exit status 130, as it is once the tool
runs; it was a 25-line KeyboardInterrupt traceback from inside an import. A Ctrl-C the
tool does not catch itself (or a second one, while it cleans up) is one line and 130 too;
`python -m <tool>` starts through the same guard (`run_module`)."""

from __future__ import annotations

import atexit
import importlib
import os
import sys

from deepmolm_plugin.start_interrupts import ctrl_c_ends_the_start


def _exit(status: int):
    """How an interrupted tool's process ends (tests replace it): what a normal exit runs
    (temporary folders, loggers), the streams flushed, then os._exit."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _interrupted(prog: str, when: str = ""):
    """One line, then exit status 130 through os._exit (`_exit`): a KeyboardInterrupt
    raised inside code a C extension runs while it is imported (torch, in the first
    second) leaves CPython's "unhandled Ctrl-C" mark set even though it is caught here,
    and a plain exit then killed the process with SIGINT (status -2 after the one line)."""
    sys.stderr.write(f"{prog}: interrupted while starting\n" if when == "starting" else f"\n{prog}: interrupted\n")
    return _exit(130)


def _run(module: str, function: str, prog: str):
    """Import the tool, run its entry function and return its exit status. A Ctrl-C while
    it imports, or one the tool does not catch itself (its heavy imports inside main, or a
    second one while it cleans up after a first: a traceback from its `finally`), ends the
    process with one line and status 130. Tools say what a Ctrl-C kept where they can.
    The import is under ctrl_c_ends_the_start: a KeyboardInterrupt raised inside numpy's C
    import (every tool loads numpy as it is imported) was swallowed (the tool went on) or
    left numpy half-loaded (an ImportError traceback); the `except` is for one raised
    where no handler could be set (off the main thread) or by the import itself."""
    try:
        with ctrl_c_ends_the_start(f"{prog}: interrupted while starting\n"):
            main = getattr(importlib.import_module(module), function)
    except KeyboardInterrupt:
        return _interrupted(prog, "starting")
    try:
        return main()
    except KeyboardInterrupt:
        return _interrupted(prog)


def run_module(module: str, prog: str, function: str = "main") -> None:
    """`python -m <tool>`: called at the top of the tool's module, before its imports, when
    it runs as __main__. The tool is imported again under its own name, under the console
    scripts' guard, and its entry function runs; the process exits with its status and
    never returns to the half-run __main__ copy. A Ctrl-C while `python -m
    deepmolm_plugin.demo` (`make demo`), `.eval.model_vqa` or `.eval.report` imported torch,
    RDKit or open_clip at module level was a 14-line KeyboardInterrupt traceback and exit
    status -2 (the guard used to start at main)."""
    sys.exit(_run(module, function, prog))


def prepare():
    return _run("deepmolm_plugin.data.prepare.cli", "main", "deepmolm-prepare")


def fingerprint():
    return _run("deepmolm_plugin.molecule.tools", "fingerprint_main", "deepmolm-fingerprint")


def render():
    return _run("deepmolm_plugin.molecule.tools", "render_main", "deepmolm-render")


def kflm2():
    return _run("deepmolm_plugin.property.cli", "main", "deepmolm-kflm2")


def gui():
    return _run("deepmolm_plugin.gui.__main__", "main", "deepmolm-gui")
