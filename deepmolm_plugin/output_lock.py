"""One writer per output: an advisory lock (``fcntl.flock``) on a lock file.

Two runs writing one output (a job submitted twice, a rerun while the first still goes)
deleted and interleaved each other's files, and both exited 0: deepmolm-kflm2's
``--overwrite`` deleted the seeds of the run beside it and its config.json stood beside
the other run's results.json; two deepmolm-fingerprint runs left one JSONL file of both
runs' lines and NUL bytes; a deepmolm-render run deleted the pictures another was writing.
A run now holds a lock for its output, taken before anything is deleted or written, and
a second run is refused in one line naming the holder's pid (`Refused`).

- An output folder is locked by ``<folder>/.lock``; an output file by ``<file>.lock``
  beside it (of the file a link names: two names of one file are one lock).
- The holder of an exclusive lock writes its pid into the file, for the refusal message,
  and removes the file on release, so a finished output holds no lock file.
- The kernel drops a flock when its process dies however it dies, so a killed run never
  leaves a stale lock (only, perhaps, a stale file, which the next run simply locks).
- A forked child (a worker pool) closes its copies of the descriptors: an inherited
  descriptor would keep the lock alive after the run itself died.
- A filesystem without flock (some network mounts) runs unlocked, with a warning.
- A run may hand its lock to a tool it starts: the tool inherits the locked descriptor and
  finds its number in ``$DEEPMOLM_OUTPUT_LOCK_FD`` (`inherited`). scripts/eval/run_eval.sh
  holds ``OUT/.lock`` and runs eval.report on OUT, which takes that lock too (was: the
  report was refused by the run that started it).

deepmolm-prepare's shared and per-shard locks (data/prepare/lock.py) are made of these.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from pathlib import Path
from typing import Iterable, Optional

from . import usage

LOCK = ".lock"  # the lock file in an output folder
_HELD: set = set()  # lock file descriptors of this process
# errors of flock meaning "this filesystem cannot lock", not "someone holds it"
_NO_FLOCK = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)
# errors of creating a lock file beside an output file in a folder this user cannot write
# (the output file itself may be writable there)
_NO_CREATE = (errno.EACCES, errno.EPERM, errno.EROFS)


def _close_held_in_child() -> None:
    """A forked worker must not keep the run's lock alive after the run itself died."""
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


class Busy(Exception):
    """The lock is held by another process (or another open of this process)."""


class Refused(usage.UsageError):
    """Another run holds the output: a usage error, so each tool's existing one-line path
    (`PROG: error: ...`, exit status 2) says it, before anything is written."""


def refusal(tool: str, target: "str | os.PathLike", pids: Iterable[str]) -> str:
    """The one line that refuses a second run, naming the holders' pids."""
    return f"another {tool} is writing {target} (pid {', '.join(p for p in pids if p) or 'unknown'})"


def holder_pid(path: Path) -> str:
    """The pid an exclusive holder wrote into `path`; "" if none (a shared holder, or gone)."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


class FileLock:
    """A lock on one lock file, exclusive (the pid written into it, the file removed on
    release) or shared. `acquire` raises Busy where another holds it; where the
    filesystem cannot lock, it warns and `fd` stays None (the run goes on unlocked)."""

    def __init__(self, path: Path, tool: str, target: "str | os.PathLike", exclusive: bool = True,
                 uncreatable_ok: bool = False):
        self.path, self.tool, self.target, self.exclusive = Path(path), tool, target, exclusive
        self.uncreatable_ok = uncreatable_ok  # a lock file that cannot be created: warn, go on unlocked
        self.fd: Optional[int] = None
        self.owner: Optional[int] = None  # the pid that took it: a forked child unwinding a `finally` must
        # not remove its parent's lock file, nor close a descriptor number it reused
        self.unlocked = False  # warned once that it cannot lock: the run goes on without

    def acquire(self) -> None:
        if self.fd is not None or self.unlocked:
            return
        self.fd = self._lock()
        if self.fd is None:
            return
        self.owner = os.getpid()
        os.ftruncate(self.fd, 0)  # a pid left by a killed holder would mislead the message
        if self.exclusive:
            os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Remove the file if held exclusively (while still holding it), then unlock."""
        if self.fd is None or self.owner != os.getpid():
            return
        if self.exclusive:
            self.path.unlink(missing_ok=True)
        _HELD.discard(self.fd)
        os.close(self.fd)
        self.fd = None

    def _warn(self, error: OSError) -> None:
        self.unlocked = True
        print(f"{self.tool}: warning: cannot lock {self.path} ({error.strerror or error}): nothing stops another "
              f"run from writing {self.target} at the same time", file=sys.stderr)

    def _lock(self) -> Optional[int]:
        """An open, locked descriptor of the file; None where the filesystem cannot lock.

        The holder removes the file on release, so a file opened just before that removal
        may be locked after it: such a lock guards nothing, and the path is opened again.
        """
        mode = (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                if not (self.uncreatable_ok and e.errno in _NO_CREATE):
                    raise
                self._warn(e)
                return None
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                os.close(fd)
                raise Busy() from None
            except OSError as e:
                os.close(fd)
                if e.errno not in _NO_FLOCK:
                    raise
                self._warn(e)
                return None
            held = os.fstat(fd)
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                _HELD.add(fd)
                return fd
            os.close(fd)


def folder_lock(folder: "str | os.PathLike", tool: str) -> FileLock:
    """The (not yet taken) exclusive lock of output folder `folder`: ``<folder>/.lock``."""
    return FileLock(Path(folder) / LOCK, tool, folder)


def file_lock(file: "str | os.PathLike", tool: str) -> FileLock:
    """The (not yet taken) exclusive lock of output file `file`: ``<file>.lock`` beside the
    file a link names (two names of one file are one lock). Where no file can be created
    there (a folder this user cannot write, the output file itself writable), the run
    warns and goes on unlocked, as it did before."""
    real = Path(os.path.realpath(file))
    return FileLock(real.with_name(real.name + LOCK), tool, file, uncreatable_ok=True)


HANDED_FD = "DEEPMOLM_OUTPUT_LOCK_FD"  # the descriptor number of a lock a parent run holds for its child


def inherited(lock: FileLock) -> bool:
    """Whether the process that started this one holds `lock` and handed it over: the
    descriptor ``$DEEPMOLM_OUTPUT_LOCK_FD`` names is open on the lock file itself, and
    locking it succeeds while another open of the file is refused, which is so only where
    that descriptor's open file is the one holding the lock (flock locks belong to an open
    file, which a child shares with its parent)."""
    number = os.environ.get(HANDED_FD, "")
    if not number.isdigit():
        return False
    fd = int(number)
    try:
        held, now = os.fstat(fd), os.stat(lock.path)
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # closed, another file, or held by another open of it
        return False
    return True


def hold(lock: FileLock) -> FileLock:
    """Take `lock` (its folder created) for this process until `release` (a lock already
    held is kept, and so is one the parent run handed over: `inherited`, left to the parent
    to release); Refused naming the holder if another run has it."""
    lock.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire()
    except Busy:
        if inherited(lock):
            return lock
        raise Refused(refusal(lock.tool, lock.target, [holder_pid(lock.path)])) from None
    return lock
