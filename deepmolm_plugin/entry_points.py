"""The console scripts (setup.cfg `console_scripts`): each imports its tool only inside
its own entry function, so a Ctrl-C while the chemistry and torch stack loads (the first
second or two of every tool) is one line and exit status 130, as it is once the tool
runs; it was a 25-line KeyboardInterrupt traceback from inside an import. A Ctrl-C the
tool does not catch itself (or a second one, while it cleans up) is one line and 130 too;
`python -m <tool>` ends through the same guard (`as_script`)."""

from __future__ import annotations

import importlib
import sys


def _run(module: str, function: str, prog: str):
    try:
        main = getattr(importlib.import_module(module), function)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted while starting\n")
        return 130
    return _guarded(main, prog)


def _guarded(main, prog: str):
    """main()'s exit status; a Ctrl-C it lets through is one line and 130."""
    try:
        return main()
    except KeyboardInterrupt:
        # Tools say what a Ctrl-C kept where they can; one that reaches here came where a
        # tool does not catch it (its heavy imports, inside main, in the first seconds), or
        # while it cleaned up after a first one (a traceback from its `finally`)
        sys.stderr.write(f"\n{prog}: interrupted\n")
        return 130


def as_script(main, prog: str) -> None:
    """`python -m <tool>`'s end: main() under the console scripts' guard, then exit with its
    status. Each tool imports torch and the host inside main: a Ctrl-C in the first seconds
    of `python -m deepmolm_plugin.cli` or `.train` was a KeyboardInterrupt traceback of
    25-77 lines and exit status -2 (the console scripts had the guard, `python -m` not).

    After a Ctrl-C the process ends with os._exit(130), once the exit handlers have run and
    the streams are flushed: a KeyboardInterrupt raised inside code a C extension runs while
    it is imported (torch, in the first second) leaves CPython's "unhandled Ctrl-C" mark set
    even though it is caught here, and a plain exit then killed the process with SIGINT
    (status -2 after the one-line message)."""
    try:
        status = main()
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted\n")
        import atexit
        import os

        atexit._run_exitfuncs()  # what a normal exit runs: temporary folders, loggers, ...
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(status)


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
