"""Worker processes that end with their parent (deepmolm-prepare's pool, the GUI's
molecule workers)."""

from __future__ import annotations

import signal
import sys


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
