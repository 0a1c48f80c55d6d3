"""3D-MoIT reader (``--format 3d-moit``): PubChem and PubChemQC instruction data.

Input: the ``3d-mol-dataset/`` root (or a folder holding it). Layout (the released 3D-MoIT files):

- ``pubchem/<split>/3d-pubchem.lmdb`` (split = train, valid, test, pretrain; 12,000 /
  1,000 / 2,000 / 301,658 CIDs): key = CID, value = pickled dict ``cid``, ``smiles``,
  ``atoms`` (symbols incl. H), ``coordinates`` (one (n, 3) array per conformer; the
  first is used), ``description``, ``enriched_description``. A split without its own
  LMDB falls back to ``pubchem/3d-pubchem-all.lmdb``.
- ``pubchem/<split>/2d_computed_properties.json`` and ``2d_descriptive_properties.json``:
  arrays (or JSON lines) of ``{instruction, input, output, task}``, ``input`` = CID.
- captions: no JSON; one per record of the split LMDB (task ``Caption``, answer =
  ``description``, or ``enriched_description`` with ``caption_field``).
- ``pubchemqc/pubchemqc_database.lmdb``: key = running index string, value = ``cid``,
  ``smi``, ``atoms``, ``coordinates_list`` (one DFT geometry) and
  ``pubchemqc/<split>/3d_computed_properties_unit.json`` (``input`` = that key).

Molecules: atoms + first conformer are the truth; the record's SMILES rides along only to
be verified (the engine maps it onto the coordinate graph): PubChemQC ``smi`` is
canonical and does not follow the coordinate order, and 3D-MoLM wrote those records
through RDKit's SDF supplier, which drops hydrogens, so bond orders need that SMILES.
A count mismatch between atoms and coordinates is an error, never padded or truncated, and
so is an empty atom list (no conformer is generated for it).
LMDB values are unpickled with ``safe_loads``: unpickle only files you trust. A value it
refuses (a forbidden global, an object, structured or void dtype, a damaged pickle), or one
holding an int too long for ``str()`` (`_unwritable_int`), is that record's ``SourceError``
(stage ``read``, naming the LMDB key); the read goes on. So
is a damaged LMDB page (``lmdb.Error``) met looking a key up; one met walking the captions
ends that walk with one ``SourceError`` naming the last key read, and the read goes on with
the instruction files. An instruction entry whose text fields (``instruction``, ``input``,
``output``, ``task``), or a caption, hold a control character other than a tab or a line
break (a NUL, raw or written "\\u0000": `base.control_problem`) is that entry's
``SourceError`` (stage ``read``, naming its line or entry); a JSON file that starts with a
UTF-16 byte-order mark or compression magic bytes is one error naming it
(`chebi20.text_problem`).

Options: ``splits`` (default: all present), ``tasks`` (subset of ``TASKS``), ``include``
(``"pubchem"``, ``"pubchemqc"`` or both; default both that are present),
``caption_field`` (``"description"`` default, or ``"enriched_description"``).
Items: ``instruction=None`` (the shared prompt table words the question; the source's
text is kept in ``extra["source_instruction"]``); numeric tasks get ``properties={task:
value}`` when the answer gives one value as evaluation reads it (``single_number``:
``-2.8 × 10^4 eV`` is -28000, ``Å^2`` is a unit), in the property's unit where
evaluation converts one (``-0.25 Hartree`` for HOMO is -6.80 eV), else as stated. IDs:
``<source>-<split>-<cid or key>-<task slug>``, ``-2``, ``-3`` ... for repeats (the
descriptive QA has several questions per CID and task).
"""

from __future__ import annotations

import json
import pickle
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional

import lmdb
import numpy as np

from .base import (MoleculeSpec, SourceError, SourceItem, answer_problem, control_problem, fields_control_problem,
                   option_list, register_reader, undecodable, visible_files)
from .chebi20 import text_problem
from .safe_pickle import safe_loads

SPLITS = ("train", "valid", "test", "pretrain")
PUBCHEM_TASKS = ("Caption", "Description", "Molecular Weight", "LogP",
                 "Topological Polar Surface Area", "Complexity")
PUBCHEMQC_TASKS = ("HOMO", "LUMO", "HOMO-LUMO Gap", "SCF Energy")
TASKS = PUBCHEM_TASKS + PUBCHEMQC_TASKS
TEXT_TASKS = ("Caption", "Description")
# First name: the released files; second: the name 3D-MoLM's own loader used.
PUBCHEM_JSONS = (("2d_computed_properties.json", "2d_computed_properties_unit.json"),
                 ("2d_descriptive_properties.json", "descriptive_properties.json"))
PUBCHEMQC_JSON = "3d_computed_properties_unit.json"



class _Reject(Exception):
    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage, self.reason = stage, reason


class _Ids:
    """``base``, then ``base-2``, ``base-3``... in input order: unique and deterministic."""

    def __init__(self):
        self.seen: Counter = Counter()

    def __call__(self, base: str) -> str:
        self.seen[base] += 1
        n = self.seen[base]
        return base if n == 1 else f"{base}-{n}"


def slug(task: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-")


def single_number(text: str, task: str) -> Optional[float]:
    """The value of an answer to `task`, read as evaluation reads the reference
    (``eval.metrics.numbers.parse_value``; None when it gives no single value), so a
    record's ``properties`` label and the number it is scored against are one number:
    "-2.8 × 10^4 eV" is -28000 (a reader of its own stored the mantissa, -2.8), "20.2 Å^2"
    is 20.2, "-0.25 Hartree" for HOMO is -6.80 (eV), a range is None."""
    from ...eval.metrics.numbers import parse_value, property_spec  # stdlib only: prepare starts without torch

    return parse_value(text, property_spec(task))


class _Lmdb:
    """One 3D-MoIT LMDB: a single file (not a folder), opened read-only without a lock file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.env = lmdb.open(str(path), subdir=False, readonly=True, lock=False,
                                 readahead=False, meminit=False)
        except lmdb.Error as error:
            raise ValueError(f"{path}: cannot open as an LMDB file: {error}") from error
        self._check_length()

    def _check_length(self) -> None:
        """Refuse a file shorter than its own last page (a cut-off download or copy): LMDB
        maps the file, and reading a page past its end is a SIGBUS that kills the process
        with no message. LMDB never follows a page number past the last page."""
        needed = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
        size = self.path.stat().st_size
        if size < needed:
            self.env.close()
            raise ValueError(f"{self.path}: truncated LMDB file ({size} bytes; its pages need {needed})")

    def get(self, key: str) -> Optional[bytes]:
        """The value of `key`; a damaged page on its way is that record's error."""
        try:
            raw_key = key.encode()
        except UnicodeEncodeError as error:  # a lone surrogate (JSON "\ud800"): it ended the whole read
            raise _Reject("lookup", f"key {key!r} is not valid text ({error.reason})") from None
        try:
            with self.env.begin() as txn:
                return txn.get(raw_key)
        except lmdb.Error as error:
            raise _Reject("read", f"LMDB key {key!r} in {self.path}: {error}") from error

    def items(self) -> Iterator[tuple[str, bytes | lmdb.Error]]:
        """(key, value) in key order, streamed: a split's LMDB is never read whole. A
        damaged page ends the walk (the keys behind it cannot be found) with one last
        (last key read, the error) pair, and the caller reads on elsewhere."""
        last = ""
        with self.env.begin() as txn:
            try:
                for key, value in txn.cursor():
                    last = key.decode("utf-8", "replace")
                    yield last, value
            except lmdb.Error as error:
                yield last, error

    def close(self) -> None:
        self.env.close()


def _record(raw: Optional[bytes], key: str, where: _Lmdb) -> dict:
    if raw is None:
        raise _Reject("lookup", f"key {key!r} not in {where.path}")
    try:
        value = safe_loads(raw)
    except pickle.UnpicklingError as error:
        raise _Reject("read", f"LMDB value {key!r} in {where.path}: {error}") from error
    if not isinstance(value, dict):
        raise _Reject("schema", f"LMDB value {key!r} is a {type(value).__name__}, not a dict")
    field = _unwritable_int(value)
    if field is not None:
        raise _Reject("read", f"LMDB value {key!r} in {where.path}: {field!r} holds an integer of more than "
                              f"{sys.get_int_max_str_digits()} digits, which Python will not write as text")
    return value


def _unwritable_int(record: dict) -> Optional[str]:
    """The field of `record` holding an int that ``str()`` refuses (more than
    ``sys.get_int_max_str_digits()`` digits), itself or in a list (atoms), or None. Checked
    once, as the value is read: the reader writes ``cid``, a caption, a PubChemQC ``cid``
    as text, and the ValueError of one such int ended the whole read (exit 2, no
    failures.jsonl); in ``atoms`` it was an "unexpected ValueError" from the molecule."""
    for field, value in record.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(field, str) and any(_unwritable(v) for v in values):
            return field
    return None


def _unwritable(value) -> bool:
    if not isinstance(value, int):
        return False
    try:
        str(value)
    except ValueError:
        return True
    return False


def _first_conformer(value) -> np.ndarray:
    """The first conformer's (atoms, 3) coordinates from a list of conformers, one
    (conformers, atoms, 3) array, or one conformer written as a list of rows, told apart by
    depth: a list whose first element is one row of numbers is itself the conformer (its
    first row was taken for the whole molecule, then refused as "shape (3,)")."""
    if isinstance(value, (list, tuple)) and not value:
        raise _Reject("atoms", "no conformers")
    try:
        if isinstance(value, (list, tuple)) and np.ndim(value[0]) != 1:
            value = value[0]
        coords = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise _Reject("atoms", f"coordinates are not numeric: {error}") from error
    # float() of anything else kept what it could: complex lost its imaginary part (a warning
    # on stderr), strings ("1.5") and booleans became numbers
    if coords.dtype.kind not in "iuf":
        raise _Reject("atoms", f"coordinates are not real numbers (dtype {coords.dtype})")
    coords = coords.astype(float)
    if coords.ndim == 3:  # (conformers, atoms, 3) stored as one array
        coords = coords[0] if len(coords) else coords.reshape(0, 3)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise _Reject("atoms", f"coordinates must be (atoms, 3), got shape {coords.shape}")
    return coords


def _atom_list(value) -> list:
    """Element symbols (or atomic numbers) from a list, tuple or 1-D array; anything else
    is a per-record schema error, not an exception that would end the whole read. Symbols
    stored as bytes (a numpy ``S`` array, as numpy-1 / Python-2 era pickles store
    ``np.array(['C', 'H'])``) are ASCII text; was: each became the text "b'C'" and failed
    as an unknown element. An element that is neither text nor an integer (a nested list,
    a float) is refused; was: ``str()`` of it was taken as a symbol."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise _Reject("schema", f"atoms is a {type(value).__name__}, not a list of element symbols")
    return [_atom(a) for a in value]


def _atom(atom):
    if isinstance(atom, (bool, np.bool_)):  # True was atomic number 1, hydrogen
        raise _Reject("schema", "atoms holds True/False, not element symbols or atomic numbers")
    if isinstance(atom, (int, np.integer)):
        return int(atom)
    if isinstance(atom, str):
        return str(atom)
    if isinstance(atom, (bytes, bytearray)):
        try:
            return bytes(atom).decode("ascii")
        except UnicodeDecodeError:
            raise _Reject("schema", f"atoms holds bytes {bytes(atom)[:20]!r} that are not an ASCII element "
                                    "symbol") from None
    kind = "nested lists" if isinstance(atom, (list, tuple, np.ndarray)) else f"a {type(atom).__name__}"
    raise _Reject("schema", f"atoms is not a flat list of element symbols or atomic numbers ({kind})")


def _spec(record: dict, coord_field: str, smiles_field: str) -> MoleculeSpec:
    atoms, coords = record.get("atoms"), record.get(coord_field)
    if atoms is None or coords is None:
        missing = "atoms" if atoms is None else coord_field
        raise _Reject("schema", f"record has no {missing!r}")
    atoms = _atom_list(atoms)
    coords = _first_conformer(coords)
    if len(atoms) != len(coords):
        raise _Reject("atoms", f"{len(atoms)} atoms but {len(coords)} coordinate rows in "
                               f"{coord_field!r}[0] (never padded or truncated)")
    if not atoms:  # an empty spec reads as "no atoms given": a conformer was generated from the SMILES, silently
        raise _Reject("atoms", f"empty atom list / conformer ('atoms' and {coord_field!r}[0] hold no atoms)")
    smiles = record.get(smiles_field)
    smiles = smiles.strip() if isinstance(smiles, str) and smiles.strip() else None
    return MoleculeSpec(atoms=atoms, coordinates=coords.tolist(), smiles=smiles)


def _text(value, what: str, numeric: bool = False) -> str:
    """The answer text of `value`. A text answer that is only a missing-value marker ("N/A",
    "nan": `answer_problem`) is refused; a `numeric` task's answer is judged by the number it
    states (`_no_value`: "states a non-finite value"). A number is an answer only to a
    `numeric` task; any other value that is not text is refused by its type (was: a number
    was a caption, "3.5"; a list, dict, bool or bytes was reported "blank")."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        # pandas' NaN for a missing value became the text "nan" (an int is finite, however
        # large: np.isfinite raised TypeError for one beyond int64, ending the read)
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            raise _Reject("answer", f"{what} is the number {value}, not text")
        if numeric:
            value = str(value)
    if value is None:
        raise _Reject("answer", f"blank {what}")
    if not isinstance(value, str):
        raise _Reject("answer", f"{what} is a {type(value).__name__}, not text")
    problem = f"blank {what}" if not value.strip() else None if numeric else answer_problem(value, what)
    if problem:
        raise _Reject("answer", problem)
    problem = control_problem(value, what)  # a caption's NUL (was: kept in the answer)
    if problem:
        raise _Reject("read", problem)
    return value.strip()


def _no_value(answer: str) -> Optional[str]:
    """Why an answer to a numeric task from which `single_number` reads no value is not one
    (no number, a NaN or infinity, a number beyond a float64), or None: a range ("1.2-3.4")
    or two values are answers, kept without a label."""
    if re.search(r"\b(?:nan|inf|infinity)\b", answer, re.I):
        return "states a non-finite value"
    numbers = re.findall(r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?", answer)
    if not numbers:
        return "states no number"
    if any(not np.isfinite(float(n)) for n in numbers):
        return "states a number beyond the range of a 64-bit float"
    return None


def _json_entries(path: Path) -> Iterator[tuple[int, str, object]]:
    """(index, where: "line 3" or "entry 2", entry) of a JSON array, or of JSON lines
    (3D-MoLM loads both). strict=False: a raw control character inside a string (a NUL) is
    its entry's failure (`_instruction_items`); was: json refused the line, or the whole
    array."""
    # utf-8-sig: a BOM hid the "[" (every line became a failure); surrogateescape: a
    # non-UTF-8 byte is its JSON line's failure; RecursionError: thousands of nested "["
    text_problem(path, "3d-moit")  # was: a UTF-16 array was read as JSON lines, one failure "line 1" for all
    with open(path, encoding="utf-8-sig", errors="surrogateescape") as handle:
        head = ""
        while not head:  # the first character that is not white space (1100 blank lines hid a "[")
            chunk = handle.read(4096)
            if not chunk:
                break
            head = chunk.lstrip()
        handle.seek(0)
        if head.startswith("["):
            text = handle.read()
            try:
                if undecodable(text):
                    raise ValueError("bytes that are not UTF-8")
                entries = json.loads(text, strict=False)
            except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
                raise ValueError(f"{path}: not valid UTF-8 JSON: {error}") from error
            yield from ((index, f"entry {index}", entry) for index, entry in enumerate(entries))
            return
        for index, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                if undecodable(line):
                    raise ValueError("bytes that are not UTF-8")
                entry = json.loads(line, strict=False)
            except (ValueError, RecursionError) as error:
                entry = _Reject("read", f"line {index + 1}: not valid JSON: {error}")
            yield index, f"line {index + 1}", entry


def _instruction_items(path: Path, source: str, split: str, db: _Lmdb, tasks: set,
                       ids: _Ids, coord_field: str, smiles_field: str):
    for index, position, entry in _json_entries(path):
        where = f"{source}-{split}-{path.stem}#{index}"
        if isinstance(entry, _Reject):
            yield SourceError(where, entry.stage, entry.reason)
            continue
        if not isinstance(entry, dict) or not all(k in entry for k in ("input", "output", "task")):
            yield SourceError(where, "schema", "expected {instruction, input, output, task}")
            continue
        problem = fields_control_problem((k, entry.get(k)) for k in ("instruction", "input", "output", "task"))
        if problem:  # as a byte that is not UTF-8 (stage "read"); was: a NUL was kept in the answer
            yield SourceError(where, "read", f"{position}: {problem}")
            continue
        task, key = entry["task"], str(entry["input"]).strip()
        if task not in TASKS:
            yield SourceError(where, "schema", f"unknown task {task!r}")
            continue
        if task not in tasks:
            continue
        id = ids(f"{source}-{split}-{key}-{slug(task)}")
        try:
            record = _record(db.get(key), key, db)
            if source == "pubchem" and "cid" in record and str(record["cid"]) != key:
                raise _Reject("lookup", f"LMDB key {key!r} holds CID {record['cid']!r}")
            answer = _text(entry["output"], "output", numeric=task not in TEXT_TASKS)
            molecule = _spec(record, coord_field, smiles_field)
        except _Reject as reject:
            yield SourceError(id, reject.stage, reject.reason)
            continue
        value = None if task in TEXT_TASKS else single_number(answer, task)
        problem = None if task in TEXT_TASKS or value is not None else _no_value(answer)
        if problem:  # "nan" was kept as an answer to learn, without a label
            yield SourceError(id, "answer", f"the answer to {task!r} {problem}: {answer[:80]!r}")
            continue
        extra = {"source": source, "source_instruction": entry.get("instruction"), "cid": key}
        if source == "pubchemqc":  # the key is a running index; the record names the CID
            cid = record.get("cid")
            extra.update(lmdb_key=key, cid=None if cid is None else str(cid))
        yield SourceItem(id=id, split=split, task=task, molecule=molecule, answer=answer,
                         properties={} if value is None else {task: value}, extra=extra)


def _captions(split: str, db: _Lmdb, field: str, ids: _Ids):
    for cid, raw in db.items():
        if isinstance(raw, lmdb.Error):
            yield SourceError(ids(f"pubchem-{split}-lmdb-after-{cid or 'start'}"), "read",
                              f"{db.path} is damaged after key {cid!r}: {raw}; its other captions "
                              "are not read")
            return
        id = ids(f"pubchem-{split}-{cid}-caption")
        try:
            record = _record(raw, cid, db)
            answer = _text(record.get(field), field)
            molecule = _spec(record, "coordinates", "smiles")
            if "cid" in record and str(record["cid"]) != cid:  # as for the instruction items
                raise _Reject("lookup", f"LMDB key {cid!r} holds CID {record['cid']!r}")
        except _Reject as reject:
            yield SourceError(id, reject.stage, reject.reason)
            continue
        yield SourceItem(id=id, split=split, task="Caption", molecule=molecule, answer=answer,
                         extra={"source": "pubchem", "cid": cid,
                                "source_instruction": "Describe the input molecule."})


def _as_list(value, allowed: tuple, name: str) -> Optional[list]:
    values = option_list("3d-moit", name, value)
    if values is None:
        return None
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"3d-moit: unknown {name} {unknown}; choose from {list(allowed)}")
    return values


def _root(input_path: str) -> Path:
    root = Path(input_path)
    if not (root / "pubchem").is_dir() and not (root / "pubchemqc").is_dir():
        if (root / "3d-mol-dataset").is_dir():
            return root / "3d-mol-dataset"
        raise FileNotFoundError(f"3d-moit: {root} holds neither pubchem/ nor pubchemqc/ "
                                "(give the 3d-mol-dataset/ folder)")
    return root


def _present(root: Path) -> dict:
    """source -> the splits it has (a pubchem split is a folder; a PubChemQC one its JSON)."""
    return {"pubchem": [s for s in SPLITS if (root / "pubchem" / s).is_dir()],
            "pubchemqc": [s for s in SPLITS if (root / "pubchemqc" / s / PUBCHEMQC_JSON).is_file()]}


def _pubchem(root: Path, splits: list, tasks: set, field: str):
    base = root / "pubchem"
    for split in splits:
        folder = base / split
        db_path = folder / "3d-pubchem.lmdb"
        if not db_path.is_file():
            db_path = base / "3d-pubchem-all.lmdb"
        if not db_path.is_file():
            raise FileNotFoundError(f"3d-moit: no {folder / '3d-pubchem.lmdb'} nor {db_path}")
        db, ids = _Lmdb(db_path), _Ids()
        try:
            if "Caption" in tasks and (folder / "3d-pubchem.lmdb").is_file():
                yield from _captions(split, db, field, ids)
            for names in PUBCHEM_JSONS:
                path = next((folder / n for n in names if (folder / n).is_file()), None)
                if path is not None:
                    yield from _instruction_items(path, "pubchem", split, db, tasks, ids,
                                                  "coordinates", "smiles")
        finally:
            db.close()


def _pubchemqc(root: Path, splits: list, tasks: set):
    base = root / "pubchemqc"
    db_path = base / "pubchemqc_database.lmdb"
    if not db_path.is_file():
        raise FileNotFoundError(f"3d-moit: {db_path} not found")
    db = _Lmdb(db_path)
    try:
        for split in splits:
            path = base / split / PUBCHEMQC_JSON
            yield from _instruction_items(path, "pubchemqc", split, db, tasks, _Ids(),
                                          "coordinates_list", "smi")
    finally:
        db.close()


def input_files(folder: Path, options: dict) -> list:
    """The files of the included sources' folders (pubchem/, pubchemqc/: LMDBs and JSONs),
    named from `folder`; nothing else of the folder is read."""
    root = _root(str(folder))
    include = _as_list(options.get("include"), ("pubchem", "pubchemqc"), "include") or ("pubchem", "pubchemqc")
    return [(path, path.relative_to(folder).as_posix()) for source in include if (root / source).is_dir()
            for path, _ in visible_files(root / source) if not is_lmdb_lock(path)]


def is_lmdb_lock(path: Path) -> bool:
    """Whether `path` is an LMDB's lock file (``<name>.lmdb-lock``, LMDB's reader table):
    ``lmdb.open(path, subdir=False)`` with its defaults creates or rewrites it whenever
    anyone looks at the data; the reader opens with ``lock=False`` and never reads it.
    Was: counted among the input files, so peeking at a record made a finished output "a
    different run" (only --overwrite went on: hours of recomputation)."""
    return path.name.endswith(".lmdb-lock")


@register_reader("3d-moit", options={"splits", "tasks", "include", "caption_field"}, files=input_files)
def read_moit(input_path: str, options: dict) -> Iterator[SourceItem | SourceError]:
    """Yield 3D-MoIT items: per source, per split, captions then the instruction JSONs;
    then one failure per task named in ``tasks`` that no item was given for."""
    root = _root(input_path)
    splits = _as_list(options.get("splits"), SPLITS, "splits")
    tasks = set(_as_list(options.get("tasks"), TASKS, "tasks") or TASKS)
    include = _as_list(options.get("include"), ("pubchem", "pubchemqc"), "include")
    include = include or [s for s in ("pubchem", "pubchemqc") if (root / s).is_dir()]
    present = _present(root)
    found = {s for source in include for s in present[source]}
    missing = [s for s in splits or () if s not in found]
    if missing or not found:
        raise FileNotFoundError(f"3d-moit: splits {missing or 'any'} not found under {root} "
                                f"for {include} (present: {present})")
    field = options.get("caption_field", "description")
    if field not in ("description", "enriched_description"):
        raise ValueError(f"3d-moit: caption_field must be description or enriched_description, got {field!r}")
    given = set()  # tasks that gave at least one item
    chosen = {source: [s for s in present[source] if splits is None or s in splits] for source in include}
    parts = []
    if "pubchem" in include and tasks & set(PUBCHEM_TASKS):
        parts.append(_pubchem(root, chosen["pubchem"], tasks, field))
    if "pubchemqc" in include and tasks & set(PUBCHEMQC_TASKS):
        parts.append(_pubchemqc(root, chosen["pubchemqc"], tasks))
    for part in parts:
        for item in part:
            if isinstance(item, SourceItem):
                given.add(item.task)
            yield item
    if options.get("tasks") is not None:
        # A task asked for by name that nothing gave is a failure line, not an empty
        # table row: a split without its instruction JSON (an incomplete download, or
        # `pretrain`, which has captions only) gives no computed or descriptive items.
        for task in sorted(tasks - given):
            yield SourceError(f"3d-moit-{slug(task)}", "read",
                              f"task {task!r} was asked for, but no entry of the chosen splits {chosen} gives it "
                              "(for a PubChem task other than Caption, is the split's instruction JSON there?)")
