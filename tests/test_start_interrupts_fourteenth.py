"""A Ctrl-C while a console script or `python -m` tool imports numpy's C extension (the tools
that load numpy as they start; the chat CLI and the GUI load it only after their arguments
are checked): one line and exit 130, from the signal handler, as
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


# Tools that load numpy as they start (RDKit does). The chat CLI and deepmolm-gui were the two
# tested here; they load nothing heavy before their arguments are checked now (sixteenth round:
# `python -m deepmolm_plugin.cli --help` imports no numpy), so a Ctrl-C at their start is
# tested at their first import from outside the package.
@pytest.mark.parametrize("target", _NUMPY_C_IMPORT)
@pytest.mark.parametrize("how, tool, prog", [
    ("entry", "render", "deepmolm-render"),  # a console script
    ("module", "deepmolm_plugin.eval.model_vqa", "python -m deepmolm_plugin.eval.model_vqa"),  # through run_module
])
def test_a_ctrl_c_while_a_tool_imports_numpy_is_one_line(how, tool, prog, target, tmp_path):
    process = interrupted(how, tool, target, prog, tmp_path)
    assert (process.returncode, process.stderr, process.stdout) == \
        (130, f"{prog}: interrupted while starting\n", ""), process.stderr[-3000:]


@pytest.mark.parametrize("how, tool, prog", [("entry", "gui", "deepmolm-gui"),
                                             ("module", "deepmolm_plugin.cli", "python -m deepmolm_plugin.cli")])
def test_a_ctrl_c_at_the_chat_tools_start_is_one_line(how, tool, prog, tmp_path):
    process = interrupted(how, tool, "*", prog, tmp_path)
    assert (process.returncode, process.stderr, process.stdout) == \
        (130, f"{prog}: interrupted while starting\n", ""), process.stderr[-3000:]
