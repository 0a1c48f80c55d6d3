"""A Ctrl-C while a console script or `python -m` tool imports numpy's C extension (every
tool loads numpy as it is imported): one line and exit 130, from the signal handler, as
the training launcher's start does (deepmolm_plugin.start_interrupts). Was: numpy
swallowed the KeyboardInterrupt (the tool went on and printed its help, exit 0) or was
left half-loaded ("ImportError: cannot load module more than once per process", a
traceback)."""

from __future__ import annotations

import pytest

from interrupt_at import interrupted

# numpy's C extension imports its Python helpers while it initialises: the two moments a
# KeyboardInterrupt was swallowed (_exceptions) or left numpy half-loaded (_multiarray_umath)
_NUMPY_C_IMPORT = ["numpy._core._exceptions", "numpy._core._multiarray_umath"]


@pytest.mark.parametrize("target", _NUMPY_C_IMPORT)
def test_a_ctrl_c_while_deepmolm_gui_imports_numpy_is_one_line(target, tmp_path):
    # the console script; torch imports numpy here (was: exit 0 and the tool went on, or the ImportError)
    process = interrupted("entry", "gui", target, "deepmolm-gui", tmp_path)
    assert (process.returncode, process.stderr, process.stdout) == \
        (130, "deepmolm-gui: interrupted while starting\n", ""), process.stderr[-3000:]


@pytest.mark.parametrize("target", _NUMPY_C_IMPORT)
def test_a_ctrl_c_while_the_chat_cli_imports_numpy_is_one_line(target, tmp_path):
    # `python -m deepmolm_plugin.cli`, the README's chat command, through entry_points.run_module
    prog = "python -m deepmolm_plugin.cli"
    process = interrupted("module", "deepmolm_plugin.cli", target, prog, tmp_path)
    assert (process.returncode, process.stderr, process.stdout) == \
        (130, f"{prog}: interrupted while starting\n", ""), process.stderr[-3000:]
