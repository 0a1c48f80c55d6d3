"""The compact `molecule_fp` store: one ``.npy`` file of token rows per split.

Millions of molecules as inline JSON lists would make the record file huge and slow to
parse in every dataloader worker; ``fp/<split>.npy`` holds every record's rows instead,
``[total_atoms, levels]``, int16 (hashes < 4096 and the -1 pad fit; int32 or int64 when
``bits`` is larger), rows of one molecule contiguous. A record points at its rows with

    "molecule_fp": {"sidecar": "fp/train.npy", "offset": 123, "atoms": 17, "digest": "9f2c..."}

(a dict, so it is told apart from an inline list; the path is relative to the folder of
the record file; `digest`, written by deepmolm-prepare, is checked when the rows are read:
a reference resolved against another run's sidecar gave another molecule's rows). Why
``.npy``: a plain header plus raw rows, so the same rows give the same bytes, and
``np.load(mmap_mode="r")`` gives dataloader workers random access without reading the
file. `SidecarBuilder` fills a temporary file and renames it into place: a
killed writer leaves no half-written sidecar; it refuses rows its dtype cannot hold.

`SidecarFiles` refuses a file that is not ``.npy``, whose size is not what its header
declares, or that changed (replaced, rewritten, cut) after it was opened: the record file's
offsets belong to the sidecar written with it, so a changed one is never read on.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .. import usage

__all__ = ["MANIFEST", "SidecarBuilder", "SidecarError", "SidecarFiles", "dtype_for", "is_reference",
           "manifest_settings", "read_manifest", "reference", "rows_digest"]

# deepmolm-prepare's record of a run, in its output folder beside the record files and the
# sidecars: {"tool": MANIFEST_TOOL, "settings": {"fp_bits": ..., "fp_levels": ..., ...}, ...}
MANIFEST, MANIFEST_TOOL = "manifest.json", "deepmolm-prepare"


# The cause, and the remedy, of records that read another output's sidecar: each prepared
# output names its sidecars relative to its own folder, so records of two outputs put in one
# file all resolve against the folder of that file
MIXED_OUTPUTS = ("the records come from several deepmolm-prepare outputs, whose sidecar paths are relative to their "
                 "own folder (here all read {sidecar}): train on each output's own records, or prepare the inputs "
                 "together into one --out")


def read_manifest(folder: "str | os.PathLike") -> Optional[dict]:
    """The JSON object in `folder`'s manifest.json; None when there is no such file or it
    holds no object (another tool's). An unreadable one is a ValueError naming it. The one
    reader of the file: what its "tool" key must say is the caller's rule."""
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        return None
    try:
        with open(manifest, encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError) as e:  # unreadable, not JSON
        raise ValueError(f"{manifest} is unreadable ({e})") from e
    return content if isinstance(content, dict) else None


def manifest_settings(folder: "str | os.PathLike | None") -> Tuple[dict, Optional[Path]]:
    """(settings, manifest path) of the deepmolm-prepare output in `folder`: what its tokens
    and images were made with (fp_bits, fp_levels, conformer_policy, image_size, ...);
    ({}, None) for a folder without one: no manifest.json, or another tool's (a JSON file of
    that name that is no object, or names another "tool"; one without a "tool" is taken as
    ours). An unreadable one is a ValueError naming it (training, eval and every reader of
    sidecars check data against these)."""
    content = read_manifest(folder) if folder else None
    if content is None or content.get("tool", MANIFEST_TOOL) != MANIFEST_TOOL:
        return {}, None
    manifest = Path(folder) / MANIFEST
    settings = content.get("settings") or {}
    if not isinstance(settings, dict):
        raise ValueError(f"{manifest} is unreadable (its settings are a {type(settings).__name__}, not an object)")
    return settings, manifest


class SidecarError(ValueError):
    """A sidecar reference that cannot be served; the caller names the record."""


def dtype_for(bits: int) -> np.dtype:
    """The narrowest signed integer type holding hashes ``[0, bits)`` and the -1 pad.
    (was: int32 above int16, so hashes from 2**31 on wrapped to negative numbers)"""
    for dtype in (np.int16, np.int32):
        if bits <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def rows_digest(rows: np.ndarray) -> str:
    """A short digest of token rows, whatever their integer dtype (16 hex digits of sha256)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def reference(path: str, offset: int, atoms: int, rows: Optional[np.ndarray] = None,
              molecule: Optional[str] = None) -> dict:
    """A record's pointer at its rows; with `rows`, also their digest, which the reader checks;
    with `molecule`, the canonical SMILES (`canonical.smiles_identity`) of the record's SMILES
    the rows were made from, which the reader compares with the record's SMILES: the digest
    covers the rows only, so a record whose SMILES was edited after preparing (p-xylene to
    m-xylene, whose level-0 tokens are the same multiset) kept the old molecule's tokens."""
    ref = {"sidecar": path, "offset": int(offset), "atoms": int(atoms)}
    if rows is not None:
        ref["digest"] = rows_digest(rows)
    if molecule is not None:
        ref["molecule"] = molecule
    return ref


def is_reference(value) -> bool:
    return isinstance(value, dict) and "sidecar" in value


class SidecarBuilder:
    """Writes one sidecar: rows appended in order into a temporary ``.npy`` of known size,
    renamed into place by `commit` only once every row is there.

    The row count is in the ``.npy`` header, so it must be known up front (assembly counts
    first); the file is filled through a memory map, so no split is held in memory.
    """

    def __init__(self, tmp: Path, rows: int, levels: int, dtype: np.dtype):
        self.tmp, self.rows, self.at = Path(tmp), rows, 0
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self._map = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=dtype, shape=(rows, levels))
        _reserve(self.tmp)

    def append(self, block: np.ndarray) -> int:
        """Store ``[n, levels]`` rows; returns their offset."""
        if block.ndim != 2 or block.shape[1] != self._map.shape[1] or self.at + len(block) > self.rows:
            raise SidecarError(f"{self.tmp}: rows of shape {block.shape} do not fit at {self.at} of "
                               f"{self._map.shape}")
        _check_fits(block, self._map.dtype, self.tmp)
        offset = self.at
        self._map[offset:offset + len(block)] = block
        self.at += len(block)
        return offset

    def commit(self, path: Path) -> None:
        if self.at != self.rows:
            raise SidecarError(f"{path}: {self.at} rows written, {self.rows} expected")
        self._map.flush()
        del self._map
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, path)


def _reserve(path: Path) -> None:
    """Give the map's sparse file its disk blocks now: a memory map written on a full disk
    kills the process with SIGBUS at some row (no error a caller can report), where
    reserving raises ENOSPC / EDQUOT here, an OSError the caller names the file with.
    File systems that cannot reserve (EOPNOTSUPP, EINVAL) and platforms without
    posix_fallocate (macOS) keep the sparse file."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
                raise


def _check_fits(block: np.ndarray, dtype: np.dtype, path: Path) -> None:
    """Rows go in only as they are: numpy's assignment casts unsafely, so 70000 became 4464
    in an int16 sidecar and a float was truncated (was: written without a word)."""
    if block.size == 0:
        return
    if not np.issubdtype(block.dtype, np.integer):
        raise SidecarError(f"{path}: molecule_fp rows must be integers, got {block.dtype}")
    low, high = int(block.min()), int(block.max())
    if low < -1 or high > np.iinfo(dtype).max:
        raise SidecarError(f"{path}: molecule_fp values {low}..{high} do not fit this {dtype} sidecar "
                           f"(-1..{np.iinfo(dtype).max}): was it sized for these fp_bits?")


def edited_records_cause(records_file: "str | os.PathLike") -> Optional[str]:
    """Why a reference in `records_file` reads rows it was not written with, when the output's
    manifest beside it tells: the file is listed there and no longer has its SHA-256, so a
    reference in it was edited after preparing (hashed only on this error path). None when
    the manifest does not list it (a file put together from several outputs) or it is as
    prepared (then the sidecar is not this output's)."""
    from ..result_files import file_sha256

    path = Path(records_file)
    try:
        content = read_manifest(usage.real_path(path).parent)
    except ValueError:  # an unreadable manifest tells nothing; its own error comes where it is read
        return None
    entry = ((content or {}).get("files") or {}).get(path.name) if isinstance(content, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not path.is_file():
        return None
    if file_sha256(path) == entry["sha256"]:
        return None
    return (f"{path.name} was changed after deepmolm-prepare wrote it (its SHA-256 is not the one in its manifest), "
            "so the record's molecule_fp offset or atom count was edited (by hand?): restore the reference as "
            "prepared, or leave molecule_fp out (the tokens are then made from the SMILES)")


class SidecarFiles:
    """Read-only, memory-mapped sidecars, opened once per file and process.

    Dataloader workers fork after the dataset is built; a map opened in the parent stays
    valid (read-only) in the children, and each process opens what it lacks lazily.
    """

    def __init__(self, folder: Optional[str] = None):
        self.folder = folder
        self._open: Dict[str, Tuple[np.ndarray, Path, tuple]] = {}  # name -> (map, path, file stamp)
        self._made: Dict[Path, tuple] = {}  # sidecar folder -> ((fp_bits, fp_levels) of its manifest, manifest)

    def rows(self, ref: dict, levels: int) -> np.ndarray:
        """The ``[atoms, levels]`` rows a reference points at, after checking it."""
        path, offset, atoms = ref.get("sidecar"), ref.get("offset"), ref.get("atoms")
        if not isinstance(path, str) or not path:
            raise SidecarError(f"molecule_fp sidecar reference has no file name: {ref}")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, atoms)):
            raise SidecarError(f"molecule_fp sidecar offset and atoms must be integers: {ref}")
        if offset < 0 or atoms <= 0:
            raise SidecarError(f"molecule_fp sidecar needs offset >= 0 and atoms > 0: {ref}")
        table = self._table(path)
        if table.shape[1] != levels:
            raise SidecarError(f"sidecar {path} has {table.shape[1]} levels per atom, expected {levels}")
        if offset + atoms > table.shape[0]:
            raise SidecarError(f"sidecar {path} has {table.shape[0]} rows; "
                               f"rows {offset}..{offset + atoms} are out of range")
        rows = np.asarray(table[offset:offset + atoms])
        if not self.digest_matches(ref):
            # Records of two prepared sets merged into one file: the other set's references
            # resolved into this folder's sidecar and read another molecule's rows (of the
            # same atom count, so nothing else noticed)
            raise SidecarError(f"rows {offset}..{offset + atoms} of sidecar {path} are not the rows this reference "
                               "was written with (their digest differs): the record file and the sidecar come from "
                               f"different runs (a sidecar copied over, or {MIXED_OUTPUTS.format(sidecar=path)})")
        return rows

    def digest_matches(self, ref: dict) -> bool:
        """Whether the rows `ref` points at have its `digest` (True without one: nothing to
        tell). `ref` is a checked reference whose rows exist (`rows` checks before asking)."""
        digest = ref.get("digest")
        if digest is None:
            return True
        table = self._table(ref["sidecar"])
        return digest == rows_digest(np.asarray(table[ref["offset"]:ref["offset"] + ref["atoms"]]))

    def overlap_cause(self, refs: Dict[str, dict], records_file: "str | os.PathLike | None" = None) -> str:
        """Why the references of two records (name -> reference) that read partly the same
        rows of one sidecar do (the caller found the overlap, `data.records.check_sidecar_overlaps`):
        the digest deepmolm-prepare wrote into each tells a record of another output (its
        rows here are not its own) from a wrong offset or atom count (its rows match). Was:
        always "an offset or atom count is wrong", also for two outputs' records put in one
        file, whose sidecar paths (each relative to its own folder, both ``fp/train.npy``) met.
        With `records_file`, a record whose rows differ from its digest in a records file
        that its manifest says was changed after preparing is an edited reference
        (`edited_records_cause`; was: "several outputs" for an offset lowered by hand)."""
        name = next(iter(refs.values()))["sidecar"]
        try:
            where, rows = self._path(name), self._table(name).shape[0]
        except SidecarError:  # missing or unreadable: its own error comes when the rows are read
            where, rows = name, -1
        inside = {rid: ref for rid, ref in refs.items() if ref["offset"] + ref["atoms"] <= rows}
        mixed = MIXED_OUTPUTS.format(sidecar=where)
        foreign = [rid for rid, ref in inside.items() if not self.digest_matches(ref)]
        if foreign:
            edited = edited_records_cause(records_file) if records_file is not None else None
            return (f"the rows there of record {foreign[-1]!r} are not the ones it was written with (digest "
                    f"differs): {edited or mixed}")
        if len(inside) < len(refs) or any(ref.get("digest") is None for ref in refs.values()):  # nothing tells
            return f"an offset or atom count is wrong, or {mixed}"
        return "an offset or atom count is wrong (each record's rows match its digest: edited by hand?)"

    def settings_problem(self, ref: dict, bits: int, levels: int) -> Optional[str]:
        """Why the rows `ref` points at are not tokens of these fingerprint settings, or None:
        the manifest beside its sidecar says what they were made with (read once per folder).
        Eval took a prepared folder's 4096-bit rows into an 8192-bit model without a word,
        where the same rows inline with their stamp were refused."""
        path = self._path(ref["sidecar"])
        folder = path.parent
        if folder not in self._made:
            # deepmolm-prepare writes <out>/fp/<split>.npy and <out>/manifest.json
            output = next((f for f in (folder, folder.parent) if (f / MANIFEST).is_file()), None)
            try:
                settings, manifest = manifest_settings(output)
            except ValueError as e:
                raise SidecarError(str(e)) from e
            self._made[folder] = ((settings.get("fp_bits"), settings.get("fp_levels")), manifest)
        made, manifest = self._made[folder]
        if None in made or made == (bits, levels):
            return None
        return (f"sidecar {path} holds tokens made with fp_bits={made[0]}, fp_levels={made[1]} ({manifest}), but the "
                f"model uses fp_bits={bits}, fp_levels={levels}: prepare the data again with the model's settings")

    def _table(self, name: str) -> np.ndarray:
        if name in self._open:
            table, path, stamp = self._open[name]
            # was: a map kept serving the file as first opened, so a sidecar replaced by a
            # new run gave the old file's rows for the new offsets, and one cut short in
            # place killed the process with SIGBUS
            if _stamp(path) != stamp:
                raise SidecarError(f"sidecar file {path} changed since it was opened (rewritten, replaced or "
                                   "cut): its record file's offsets may point at other rows; restart the reader "
                                   "with the record file written with it")
            return table
        path = self._path(name)
        stamp = _stamp(path)
        self._open[name] = (_load(path), path, stamp)
        return self._open[name][0]

    def _path(self, name: str) -> Path:
        path = Path(name)
        if not path.is_absolute():
            if self.folder is None:
                raise SidecarError(f"sidecar {name} is relative but the record file's folder is unknown")
            path = Path(self.folder) / path
        if not path.is_file():
            raise SidecarError(f"sidecar file {path} does not exist")
        return path


def _stamp(path: Path) -> tuple:
    """What tells a file changed: identity, size and modification time."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise SidecarError(f"sidecar file {path} cannot be read any more: {e.strerror or e}") from e
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _load(path: Path) -> np.ndarray:
    """The memory-mapped ``[rows, levels]`` integer table of a sidecar, checked."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":  # was: numpy's "contains pickled (object) data" for any other file
        raise SidecarError(f"sidecar file {path} is not a .npy file (it starts with {magic!r}, not "
                           "b'\\x93NUMPY')")
    try:
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:  # truncated, a damaged header, or an object array
        raise SidecarError(f"sidecar file {path} is not a readable .npy file: {e}") from e
    if table.ndim != 2 or not np.issubdtype(table.dtype, np.integer):
        raise SidecarError(f"sidecar file {path} must hold integer rows [atoms, levels], "
                           f"got {table.dtype} {table.shape}")
    if table.dtype == np.uint64:  # 2**64 - 1 would become -1 (PAD) as int64: a token silently lost
        raise SidecarError(f"sidecar file {path} holds uint64, which int64 tokens cannot represent: "
                           "save it as a signed integer type (deepmolm-prepare writes int16/int32)")
    size = os.path.getsize(path)
    if table.offset + table.nbytes != size:  # was: bytes after the rows the header declares were ignored
        raise SidecarError(f"sidecar file {path} is {size} bytes but its header declares "
                           f"{table.offset + table.nbytes} ({table.dtype} {table.shape}): header and rows "
                           "disagree (edited or appended to?)")
    return table
