"""Result files (reports, metrics, seed results): written whole or not at all, as strict JSON.

Long jobs resume from their own files and people read them with jq or a browser, so:

- `write_atomic` / `replace_atomic` (text / any bytes, figures too): a reader (or a resumed
  run) sees the old file or the whole new one, never a truncated one, and the file gets the
  permissions any other file of the user gets.
- `file_sha256`: what resumed jobs compare their input files by (an input edited under the
  same path must not be resumed as if it were the old one).
- `strict_json`: every NaN or infinite float becomes null. Python's json writes a bare
  `NaN`, which jq, JavaScript's JSON.parse and every strict parser refuse; undefined
  metrics are ordinary (ROC-AUC of a subset with one class, R² of constant labels, the loss
  of a diverged run).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np


def strict_json(value, **kwargs) -> str:
    """json.dumps of `value` with NaN and +-inf as null; numpy scalars and arrays as numbers
    and lists, paths as strings. Anything else json cannot write is a TypeError."""
    return json.dumps(_finite(value), allow_nan=False, **kwargs)


def _finite(value):
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (hex), read in chunks: data files can be large."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask. Reading it means setting it (then putting it straight back), a
    moment in which another thread's new file would get no mask: done once per process."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def shared_mode(folder: bool = False) -> int:
    """0666 less the umask: the mode open() gives a new file (0777 less it for a folder, as
    mkdir gives). Writers that make theirs private (mkstemp and safetensors' save_file: 0600,
    mkdtemp: 0700) set it, so that folders shared with a group stay readable to it."""
    return (0o777 if folder else 0o666) & ~_umask()


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (`replace_atomic`)."""
    replace_atomic(path, lambda f: f.write(text.encode("utf-8")))


def replace_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a binary file that becomes ``path`` only once it returns, so that a
    reader (or a resumed run) sees the old file or the whole new one, never a truncated one:
    a killed job must not leave half a seed result, nor a cut PNG that passes for a plot.

    The bytes go to a hidden temporary file in the same folder (so ``seed_*.json`` globs never
    match it), are flushed and fsynced, then renamed over ``path`` (``os.replace`` is atomic on
    one file system); the folder is fsynced too where the platform allows, so the rename
    survives a crash. A failed write removes the temporary file and leaves ``path`` untouched.
    mkstemp makes its file private (0600), which left run folders shared with a group
    unreadable to it: the file gets 0666 less the umask, as open() would give it.

    A symbolic link is written through (the file it names is replaced: the link was replaced
    by a file, the shared file left as it was); a path that is no regular file (a pipe,
    process substitution, a device such as /dev/null or /dev/full) is an OSError naming it:
    the rename replaced the device with a file (as root) or failed on "/dev/fd/63.tmp".
    """
    if Path(path).exists() and not Path(path).is_file():  # (both follow links)
        raise OSError(f"{path} is not a regular file (a pipe, a device or a folder): give the path of a file")
    path = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), shared_mode())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # re-raised: only the temporary file is cleaned up here
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Persist a rename in ``folder`` (POSIX; folders cannot be opened for fsync on Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
