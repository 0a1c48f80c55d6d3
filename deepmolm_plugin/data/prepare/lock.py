"""One writer per output folder: an advisory lock (``fcntl.flock``) on ``<out>/.lock``.

Two runs writing one --out (a job started twice, a resume while the first run still
goes) would delete each other's temporary files and interleave assemblies. A run holds
``.lock`` exclusively; a ``--shard I/N`` job holds it shared (array jobs of one run are
meant to write together) plus ``.lock-shard-I-of-N`` exclusively (the same shard twice
would clean the other's temporary files). The holder writes its pid into the file it
holds exclusively, for the refusal message, and removes it on release, so a finished
output holds no lock file. The kernel drops a lock when its process dies however it
dies, so a killed run never leaves a stale lock. A filesystem without flock (some
network mounts) runs unlocked, with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from .common import PrepareError

LOCK = ".lock"
SHARD_LOCK = ".lock-shard-{}-of-{}"
_HELD: set = set()  # lock file descriptors of this process


def _close_held_in_child() -> None:
    """A forked worker must not keep the run's lock alive after the run itself died."""
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def is_lock_file(name: str) -> bool:
    return name == LOCK or name.startswith(LOCK + "-shard-")


class Busy(Exception):
    """Internal: the lock is held by another process."""


class OutputLock:
    """The locks of one run on one output folder; `acquire` refuses a busy folder."""

    def __init__(self, root: Path, shard: Tuple[int, int]):
        self.root, self.sharded = root, shard[1] > 1
        self.files: List[Tuple[Path, int, bool]] = []  # (path, fd, exclusive)
        self.shard_name = SHARD_LOCK.format(*shard)

    def acquire(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise PrepareError(f"--out {self.root} is a file")
        self.root.mkdir(parents=True, exist_ok=True)
        wanted = [(self.root / LOCK, not self.sharded)]
        if self.sharded:
            wanted.append((self.root / self.shard_name, True))
        for path, exclusive in wanted:
            try:
                fd = _lock(path, exclusive)
            except Busy:
                self.release()
                raise PrepareError(f"another deepmolm-prepare is writing {self.root} "
                                   f"(pid {', '.join(self._holders(path)) or 'unknown'})") from None
            if fd is None:
                continue
            self.files.append((path, fd, exclusive))
            os.ftruncate(fd, 0)  # a pid left by a killed holder would mislead the message
            if exclusive:
                os.write(fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Remove the files held exclusively (while still holding them), then unlock."""
        for path, fd, exclusive in reversed(self.files):
            if exclusive:
                path.unlink(missing_ok=True)
            _HELD.discard(fd)
            os.close(fd)
        self.files = []

    def _holders(self, path: Path) -> List[str]:
        """Pids written by the holders: of the file itself, or of the shard jobs that hold
        ``.lock`` shared (they write their pid into their own shard lock only)."""
        pids = [_pid(path)]
        if path.name == LOCK and not pids[0]:
            pids = [_pid(p) for p in sorted(self.root.glob(LOCK + "-shard-*"))]
        return [p for p in pids if p]


def _lock(path: Path, exclusive: bool) -> Optional[int]:
    """An open, locked descriptor of `path`; None where the filesystem cannot lock.

    The holder removes the file on release, so a file opened just before that removal
    may be locked after it: such a lock guards nothing, and the path is opened again.
    """
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            raise Busy() from None
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            print(f"deepmolm-prepare: warning: cannot lock {path} ({e.strerror}): nothing stops "
                  "another run from writing this folder at the same time", file=sys.stderr)
            return None
        held = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            _HELD.add(fd)
            return fd
        os.close(fd)


def _pid(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
