"""A Ctrl-C at a fixed moment of a tool's start, made deterministic: the tool runs in a child
Python as its console script (`entry`: a function of `deepmolm_plugin.entry_points`) or as
`python -m` runs it (`module`), with `--help`, and the child sends itself SIGINT the first time
`target` is imported once `armed_by` is loaded (`module` or `module:attribute`, the attribute
there: the module finished defining it). `target` "*": the first import from outside the
package. Was: a sleep of a second or so, which now and then landed before or after the start."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, runpy, signal, sys
how, tool, target, prog, armed_by = sys.argv[1:6]
module, _, attribute = armed_by.partition(":")
class Interrupt:
    def find_spec(self, name, path=None, target_=None):
        guard = sys.modules.get(module)
        armed = guard is not None and (not attribute or hasattr(guard, attribute))
        hit = not name.startswith("deepmolm_plugin") if target == "*" else name == target
        if armed and hit:
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

# the entry points' guard is defined: the start proper has begun
GUARD = "deepmolm_plugin.entry_points:run_module"


def interrupted(how: str, tool: str, target: str, prog: str, cwd, armed_by: str = GUARD,
                timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, how, tool, target, prog, armed_by], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)
