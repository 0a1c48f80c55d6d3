"""The CPU cores this process may run on.

A container or a batch scheduler (taskset, cgroup cpusets, SLURM's --cpus-per-task)
restricts a process to some of the machine's cores through its affinity mask, while
os.cpu_count() still counts the whole machine: on a 64-core node with 2 cores granted,
sizing worker pools or thread counts by it starts 32 threads per core.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores in this process's affinity mask (os.cpu_count() where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
