"""`python -m deepmolm_plugin.data.prepare`: the deepmolm-prepare command. The package is
imported under its real name first, so the workers unpickle `items._work` by that name."""

# Only when run, and before any import, as every `python -m` tool starts: imported under
# another name (a spawned worker's `__mp_main__`, pydoc) this file started a run with that
# process's arguments; a Ctrl-C while the tool imports is one line.
if __name__ == "__main__":
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.data.prepare.__main__", "python -m deepmolm_plugin.data.prepare")

from deepmolm_plugin.data.prepare.cli import main  # noqa: E402,F401 (the command run_module calls)
