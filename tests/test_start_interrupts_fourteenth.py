"""A Ctrl-C while a console script or `python -m` tool imports numpy's C extension (every
tool loads numpy as it is imported): one line and exit 130, from the signal handler, as
the training launcher's start does (deepmolm_plugin.start_interrupts). Was: numpy
swallowed the KeyboardInterrupt (the tool went on and printed its help, exit 0) or was
left half-loaded ("ImportError: cannot load module more than once per process", a
traceback)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Starts a tool as its console script (`entry:<function of entry_points>`) or as `python -m`
# does (`module:<dotted name>`), and sends SIGINT when the named module is looked for once
# the entry points' guard is defined: a Ctrl-C landing at that moment of the start, made
# deterministic
_INTERRUPT_AT = """
import os, runpy, signal, sys
how, tool, target, prog = sys.argv[1:5]
class Interrupt:
    def find_spec(self, name, path=None, target_=None):
        guard = sys.modules.get("deepmolm_plugin.entry_points")
        if hasattr(guard, "run_module") and name == target:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = [prog, "--help"]
if how == "entry":
    from deepmolm_plugin import entry_points
    sys.exit(getattr(entry_points, tool)())
runpy.run_module(tool, run_name="__main__", alter_sys=True)
"""

# numpy's C extension imports its Python helpers while it initialises: the two moments a
# KeyboardInterrupt was swallowed (_exceptions) or left numpy half-loaded (_multiarray_umath)
_NUMPY_C_IMPORT = ["numpy._core._exceptions", "numpy._core._multiarray_umath"]


def _interrupted(how: str, tool: str, target: str, prog: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _INTERRUPT_AT, how, tool, target, prog], capture_output=True,
                          text=True, timeout=300, cwd=cwd)  # not the repository: PYTHONPATH picks the tree


@pytest.mark.parametrize("target", _NUMPY_C_IMPORT)
def test_a_ctrl_c_while_deepmolm_gui_imports_numpy_is_one_line(target, tmp_path):
    # the console script; torch imports numpy here (was: exit 0 and the tool went on, or the ImportError)
    process = _interrupted("entry", "gui", target, "deepmolm-gui", tmp_path)
    assert (process.returncode, process.stderr, process.stdout) == \
        (130, "deepmolm-gui: interrupted while starting\n", ""), process.stderr[-3000:]


@pytest.mark.parametrize("target", _NUMPY_C_IMPORT)
def test_a_ctrl_c_while_the_chat_cli_imports_numpy_is_one_line(target, tmp_path):
    # `python -m deepmolm_plugin.cli`, the README's chat command, through entry_points.run_module
    prog = "python -m deepmolm_plugin.cli"
    process = _interrupted("module", "deepmolm_plugin.cli", target, prog, tmp_path)
    assert (process.returncode, process.stderr, process.stdout) == \
        (130, f"{prog}: interrupted while starting\n", ""), process.stderr[-3000:]
