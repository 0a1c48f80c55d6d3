"""The console scripts (setup.cfg `console_scripts`): each imports its tool only inside
its own entry function, so a Ctrl-C while the chemistry and torch stack loads (the first
second or two of every tool) is one line and exit status 130, as it is once the tool
runs; it was a 25-line KeyboardInterrupt traceback from inside an import. A second Ctrl-C,
while the tool cleans up after the first, is one line and 130 too."""

from __future__ import annotations

import importlib
import sys


def _run(module: str, function: str, prog: str):
    try:
        main = getattr(importlib.import_module(module), function)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted while starting\n")
        return 130
    try:
        return main()
    except KeyboardInterrupt:
        # Each tool says what a Ctrl-C kept; one that reaches here came while the tool was
        # cleaning up after the first (a second Ctrl-C: it was a traceback from `finally`)
        sys.stderr.write(f"\n{prog}: interrupted again; rerun the same command\n")
        return 130


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
