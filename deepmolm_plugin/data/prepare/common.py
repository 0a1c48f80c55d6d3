"""What every part of deepmolm-prepare shares: the error for a run that cannot start or
finish, the one JSON spelling of its files, atomic writes and file checksums. Kept apart so
that the per-item, identity, output and scheduling modules need nothing from each other."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Iterator

from ...molecule.inputs import OutputWriteError


class PrepareError(RuntimeError):
    """A run that cannot start or finish as asked (settings changed, chunk damaged...)."""


class Shape(ValueError):
    """A state file that is JSON, but not laid out as this tool writes it (`read_object`
    names the file; the keys read from it were KeyError and TypeError tracebacks)."""


def need(obj, key: str, kind):
    """obj[key], when obj is an object holding `key` of type `kind` (else a `Shape` saying which)."""
    if not isinstance(obj, dict):
        raise Shape(f"a JSON {type(obj).__name__} where an object with {key!r} belongs")
    if key not in obj:
        raise Shape(f"no {key!r}")
    if not isinstance(obj[key], kind) or isinstance(obj[key], bool) and kind is not bool:
        raise Shape(f"{key!r} is a JSON {type(obj[key]).__name__}")
    return obj[key]


# ---------------------------------------------------------------------------------------
# Small atomic-write helpers: every output goes to a temporary file, then os.replace.


def writer_tag() -> str:
    """A name part no other writer uses, also across hosts sharing one filesystem (where two
    processes can have the same pid): host name, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def writing(path: Path, action: str = "write") -> Iterator[None]:
    """An OSError in the body, which writes (or removes) ``path`` in --out, is the run's
    `OutputWriteError` naming it: a full disk, a quota, a file-size limit or a read-only
    device stops the run with one line and the chunk being made is not committed, so a
    rerun redoes its records (was: a traceback in the parent, and in a worker each record's
    "unexpected OSError" failure, committed and kept by every resume). Only writes go in
    the body: an error reading an input stays that record's failure."""
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as e:
        raise OutputWriteError(path, e, action) from e


def resume_hint(error: OutputWriteError) -> str:
    """What to do about an output that could not be written, by its reason."""
    number = getattr(error.error, "errno", None)
    fix = {errno.ENOSPC: "free space", getattr(errno, "EDQUOT", -1): "free space within your quota",
           errno.EFBIG: "raise the file-size limit (ulimit -f)"}.get(number, "make --out writable")
    return f"{fix} and rerun the same command to resume (the chunks committed so far are kept)"


def atomic_bytes(path: Path, data: bytes, tmp_dir: Path) -> None:
    tmp = tmp_dir / f"{path.name}.{writer_tag()}.tmp"
    with writing(path):
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except BaseException:
            # the half file would hold the space that ran out; the write's own error is the
            # one reported, not one from this clean-up
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (the renames into it), to the disk: a
    rename alone can be lost in a crash even though the renamed file's data was synced."""
    with writing(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def dumps(value) -> str:
    """The one JSON spelling of every output: ASCII, keys in insertion order, no spaces."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


