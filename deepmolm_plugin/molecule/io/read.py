"""``read_structures``: a structure file in, one record (or error) per record out.

The reader comes from the registry by suffix; every ``ParsedStructure`` it yields becomes
a ``MoleculeRecord`` through the same builders single molecules use: ``finish.finish`` for
a parsed molecule, ``builders.from_atoms`` for atoms whose bonds are perceived,
``builders.from_smiles`` for a SMILES. A bad record's ``MoleculeError`` gets
``.source = path#index`` (the path alone for a problem of the whole file).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ..builders import from_atoms, from_smiles
from ..conformer import EMBED_TIMEOUT, MMFF_MAX_ITERS
from ..errors import MoleculeError, MoleculeTooLarge
from ..finish import finish
from ..matching import NotTheMolecule
from ..policy import MAX_ATOMS, check_options, early_cap
from ..record import MoleculeRecord
from .base import ParsedStructure, control_problem, reader_for
from .sniff import head_of, is_blank, other_format

__all__ = ["count_records", "not_text", "read_structures"]

# C0 control bytes other than tab, LF and CR, and DEL (`base.control_problem`'s characters
# that are one byte in UTF-8; 0x80-0x9f are UTF-8 continuation bytes there)
_CONTROL_BYTES = re.compile(b"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def read_structures(
    path,
    policy: str = "auto",
    max_atoms: int | None = MAX_ATOMS,
    too_large: str = "error",
    fragments: str = "all",
    smiles_field: str | None = None,
    smiles: str | None = None,
    names_are_keys: bool = False,
    errors: str = "yield",
    embed_timeout: float | None = EMBED_TIMEOUT,
    mmff_max_iters: int = MMFF_MAX_ITERS,
    pick: int | None = None,
    name: str | None = None,
) -> Iterator[MoleculeRecord | MoleculeError]:
    """Yield one ``MoleculeRecord`` (or ``MoleculeError``) per record of ``path``.

    ``errors='yield'`` (default) yields a bad record's error and continues with the next
    record, as batch tools need; ``errors='raise'`` raises it. ``smiles_field`` names an
    SDF data field holding the record's SMILES, verified against the file's graph (an
    error for other formats, which have no data fields). ``smiles`` (an input's own SMILES)
    gives the bonds, orders and charges of a format that has only atoms and coordinates
    (XYZ), mapped onto them and verified, as for an atom list; files with bonds keep their
    own. ``names_are_keys``: a record whose name holds bytes that are not UTF-8 (U+FFFD
    after decoding) fails, for tools whose outputs are keyed by the name (Latin-1 "Caf\xe9"
    and "Caf\xe8" both became "Caf\ufffd"); elsewhere the name is only shown. A file with no records at all is
    one error. ``pick``: yield only the record at that position of the file's stream (and
    a problem of the whole file); the records before it are parsed, not built (their 3D
    work for a late record of a large library held chat, eval and the GUI for minutes).
    ``name``: what the ids of untitled records are made of (``name#index``), the file's
    name by default; deepmolm-fingerprint and deepmolm-render pass the path as given when
    two inputs share a file name (was: ``siteA/pose.sdf`` and ``siteB/pose.sdf`` both gave
    ``pose.sdf#0``). Usage errors (options, unknown suffix) are ``ValueError``s, raised
    before anything is read.
    """
    options = dict(policy=policy, max_atoms=max_atoms, too_large=too_large, fragments=fragments,
                   embed_timeout=embed_timeout, mmff_max_iters=mmff_max_iters)
    check_options(**options)
    if errors not in ("yield", "raise"):
        raise ValueError(f"errors must be 'yield' or 'raise', got {errors!r}")
    if pick is not None and (isinstance(pick, bool) or not isinstance(pick, int) or pick < 0):
        raise ValueError(f"pick must be a record position >= 0, got {pick!r}")
    path = Path(path)
    reader_options = {} if smiles_field is None else {"smiles_field": smiles_field}
    spec = reader_for(path, reader_options)
    seen = 0
    for index, item in _records(path, spec, reader_options, options, smiles, names_are_keys, pick,
                                name or path.name):
        seen += 1
        if item is None:  # a record before `pick`, parsed only
            continue
        if isinstance(item, MoleculeError):
            if item.source is None:
                item.source = str(path) if index is None else f"{path}#{index}"
            if errors == "raise":
                raise item
        yield item
    if seen == 0:
        # the id untitled records would get their number on (was: the file name even where
        # ``name`` is the path, so two empty ``pose.sdf`` files read as one id twice)
        error = MoleculeError(name or path.name, "file contains no molecules", source=str(path))
        if errors == "raise":
            raise error
        yield error


def count_records(path, limit: int, max_atoms: int | None = MAX_ATOMS, **_) -> int:
    """How many records ``path`` holds, counted up to ``limit`` + 1 (more than ``limit``:
    ``limit`` + 1). Each is parsed by its reader, not built (no checks, no 3D work), a
    broken one counted too; a problem of the whole file counts none. ``max_atoms``: the cap
    that refuses a huge molecule before it is sanitised, as reading it would."""
    path = Path(path)
    spec = reader_for(path, {})
    options = dict(policy="keep", max_atoms=max_atoms, too_large="error", fragments="all",
                   embed_timeout=None, mmff_max_iters=MMFF_MAX_ITERS)
    # `pick` past the limit: the records before it are only parsed (the one at it is built)
    return sum(index is not None for index, _ in _records(path, spec, {}, options, pick=limit))


def not_text(path: Path) -> str | None:
    """Why ``path`` is no UTF-8 text file (UTF-16, compressed, or NUL bytes throughout: UTF-16
    without a byte-order mark, a binary file), else None. Read as UTF-8, such a file gives
    records with garbage ids and misleading reasons. Public: the deepmolm-prepare readers ask
    it of their files too, in these words. A few NULs are no verdict: only NULs (or other
    control bytes: a JPEG) in more than 1 % of the first 64 KiB (and more than 8) are; a
    stray one, anywhere in the file, fails only the record it is in (`base.control_problem`:
    the structure readers, the dataset readers). Was: for structure files one NUL in the
    first 64 KiB refused the whole file, while one after it passed or failed its record alone.
    NULs that run to the end of a file are no verdict either (a crash's zero-filled tail).
    """
    with open(path, "rb") as raw:
        head = raw.read(65536)
        whole = not raw.read(1)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "file is UTF-16 text; save it as UTF-8"
    # whatever its name says; gzip and zip hold NUL bytes early, but a small bzip2, xz or
    # zstd file need not, and was read as text (structure errors on its bytes)
    bzip2 = head[:3] == b"BZh" and head[3:4] in b"123456789" and len(head) > 4  # "BZh" + block size
    if bzip2 or head.startswith((b"\x1f\x8b", b"PK\x03\x04", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
        return "file is compressed (gzip, zip, bzip2, xz or zstd): decompress it first"
    if whole and head.endswith(b"\0"):
        # NULs up to the end of the file: a file a crash left zero-filled after its last write
        # (ext4's delayed allocation). Its text before them is read; the NUL run fails as the
        # record it is in (`base.control_problem`). Was: a small file refused whole.
        head = head.rstrip(b"\0")
        if not head:
            return "file holds nothing but NUL bytes (zero-filled by a crash?)"
    dense = max(len(head) // 100, 8)  # more than a stray byte or two: the file's nature, not a record's damage
    if head.count(b"\0") > dense:  # every other byte of UTF-16 text, a binary file's runs
        return "file holds NUL bytes throughout: UTF-16 text without a byte-order mark, or a binary file"
    if len(_CONTROL_BYTES.findall(head)) > dense:  # a JPEG holds few NULs, but 1 byte in 9 is a control
        return "file holds control bytes throughout: a binary file, not text"
    return None


def _records(path: Path, spec, reader_options: dict, options: dict, smiles: str | None = None,
             names_are_keys: bool = False, pick: int | None = None, name: str | None = None):
    """Yields (record index or None, MoleculeRecord | MoleculeError | None: a record before
    ``pick``, not built). ``name``: what untitled records' ids are made of (the file's name),
    and the id of a problem of the whole file (a folder, unreadable, not text)."""
    name = name or path.name
    if path.exists() and not path.is_file():  # opening a FIFO blocked until a writer came: forever
        kind = "a folder" if path.is_dir() else "not a regular file (a pipe or a device): save it to a file first"
        yield None, MoleculeError(name, f"{path} is {kind}")
        return
    try:
        problem = not_text(path)
        # utf-8-sig: a byte-order mark (Excel's CSVs) must not become part of a header or title
        handle = open(path, encoding="utf-8-sig", errors="replace", newline=spec.newline)
    except OSError as error:
        yield None, MoleculeError(name, f"cannot read {path}: {error.strerror or error}")
        return
    if problem is None:
        head = head_of(path)
        if not any(line.strip() for line in head) and is_blank(path):  # the rest read only after a blank head
            # "file contains no molecules" whatever the reader (an empty .csv said "CSV has no
            # 'smiles' column (columns: [])", a .pdb "no atoms read from PDB")
            handle.close()
            return
        problem = other_format(head, path.suffix)  # another format under this suffix
    if problem:
        handle.close()
        yield None, MoleculeError(name, problem)
        return
    # the cap before RDKit sanitises a file's molecule (a 20,000-atom ring took 52 s), as for a SMILES
    cap = {"max_heavy": early_cap(**options)} if spec.capped else {}
    with handle:
        for position, parsed in enumerate(spec.read(handle, name, **reader_options, **cap)):
            if pick is not None and position < pick and parsed.index is not None:
                yield parsed.index, None
                continue
            # the path alone for a problem of the whole file (no record number)
            source = str(path) if parsed.index is None else f"{path}#{parsed.index}"
            source += f", {parsed.line}" if parsed.line else ""
            try:
                built = _build(parsed, source, options, smiles, names_are_keys, f"{name}#{parsed.index}")
            except MoleculeError as error:
                built = error
            if isinstance(built, MoleculeError) and built.source is None:
                built.source = source  # the reader's own errors too: their line, not only their number
            if isinstance(built, MoleculeError) and built.line is None:
                built.line = parsed.line or (f"line {parsed.start}" if parsed.start else None)
            yield parsed.index, built
            if pick is not None and position >= pick:
                return


def _build(parsed: ParsedStructure, source: str, options: dict, smiles: str | None = None,
           names_are_keys: bool = False, fallback: str = "") -> MoleculeRecord | MoleculeError:
    """The record of one parsed item; its own error as it is, except that an error of atoms
    read with the input's SMILES beside them (``smiles``) names the file and record
    (`_placed`). ``fallback``: the id (``file#index``) of a record whose name cannot be one."""
    if parsed.error is not None:
        return _placed(parsed.error, source)  # an SDF field that is not the record's molecule
    # A name (SDF title, MOL2 name, PDB title, SMILES-list or CSV id) holding a NUL or another
    # control character: was the record's id wherever the file had it ('m\x001990' reached
    # output names and JSON), or the whole file refused when it was in the first 64 KiB.
    problem = control_problem(str(parsed.id), f"its name {str(parsed.id)[:60]!r}")
    if problem:
        return MoleculeError(fallback or str(parsed.id), problem)
    if names_are_keys and "\ufffd" in str(parsed.id):  # the file is read with errors="replace"
        # Latin-1 titles "Caf\xe9" and "Caf\xe8" both became "Caf\ufffd": two records under one
        # id, which joins attach to the wrong molecule
        return MoleculeError(parsed.id, "its name holds bytes that are not UTF-8 (shown as \ufffd), so names "
                                        "would collide; save the file as UTF-8")
    notes = list(parsed.notes)
    if parsed.mol is not None:
        return finish(parsed.mol, parsed.id, source, notes, **options)
    if parsed.elements is not None:
        try:
            return from_atoms(parsed.elements, parsed.coords, parsed.id, smiles, parsed.charge, source,
                              notes, **options)
        except MoleculeError as error:
            return _placed(error, source, None if smiles is None else f"its SMILES {smiles!r}")
    return from_smiles(parsed.smiles, parsed.id, source, **options)


def _placed(error: MoleculeError, source: str, beside: str | None = None) -> MoleculeError:
    """``error``, naming the file and record it is in (``source``: ``path#index``, and the
    line where the reader knows it) when the input's SMILES was given beside the structure
    (``beside``: "its SMILES 'CCO'"; None: none was): `matching` and the builders know the
    record's id only. A SMILES that is not the record's molecule (`NotTheMolecule`) names it
    in its own words (was: "SMILES graph does not match the coordinates' graph", naming
    neither); every other error gets the place after its reason (was: a SMILES whose stereo
    the coordinates contradict, one naming an unbonded or disconnected form that cannot be
    sanitised, an unparseable one: the reason alone, and a structure file holding one record
    was not named at all). A size refusal is left as it is: the resolver rewords it by its
    class (`MoleculeTooLarge.reworded`)."""
    if isinstance(error, NotTheMolecule):
        return error.at(f"in {source}")
    if beside is None or isinstance(error, MoleculeTooLarge):
        return error
    placed = MoleculeError(error.id, f"{error.reason} (in {source}, read with {beside})", error.source)
    placed.line = error.line
    return placed
