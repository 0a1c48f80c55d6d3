"""One writer per output folder: deepmolm-prepare's locks, made of `output_lock`'s.

Two runs writing one --out (a job started twice, a resume while the first run still
goes) would delete each other's temporary files and interleave assemblies. A run holds
``.lock`` exclusively; a ``--shard I/N`` job holds it shared (array jobs of one run are
meant to write together) plus ``.lock-shard-I-of-N`` exclusively (the same shard twice
would clean the other's temporary files). What a lock file holds, when it is removed,
what a killed run or a forked worker leaves, and a filesystem without flock: see
`deepmolm_plugin.output_lock`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from ...output_lock import LOCK, Busy, FileLock, holder_pid, refusal
from .common import PrepareError

TOOL = "deepmolm-prepare"
SHARD_LOCK = LOCK + "-shard-{}-of-{}"


def is_lock_file(name: str) -> bool:
    return name == LOCK or name.startswith(LOCK + "-shard-")


class OutputLock:
    """The locks of one run on one output folder; `acquire` refuses a busy folder."""

    def __init__(self, root: Path, shard: Tuple[int, int]):
        self.root, self.sharded = root, shard[1] > 1
        self.files: List[FileLock] = []
        self.shard_name = SHARD_LOCK.format(*shard)

    def acquire(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise PrepareError(f"--out {self.root} is a file")
        self.root.mkdir(parents=True, exist_ok=True)
        wanted = [FileLock(self.root / LOCK, TOOL, self.root, exclusive=not self.sharded)]
        if self.sharded:
            wanted.append(FileLock(self.root / self.shard_name, TOOL, self.root))
        for lock in wanted:
            try:
                lock.acquire()
            except Busy:
                self.release()
                raise PrepareError(refusal(TOOL, self.root, self._holders(lock.path))) from None
            self.files.append(lock)

    def release(self) -> None:
        for lock in reversed(self.files):
            lock.release()
        self.files = []

    def _holders(self, path: Path) -> List[str]:
        """Pids written by the holders: of the file itself, or of the shard jobs that hold
        ``.lock`` shared (they write their pid into their own shard lock only)."""
        pids = [holder_pid(path)]
        if path.name == LOCK and not pids[0]:
            pids = [holder_pid(p) for p in sorted(self.root.glob(LOCK + "-shard-*"))]
        return [p for p in pids if p]
