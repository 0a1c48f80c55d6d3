"""deepmolm-prepare: a public dataset -> host training records, ready for the launcher.

    deepmolm-prepare --format csv --input ESOL.csv --out data/esol \\
        --label-columns "measured log solubility in mols per litre=log solubility" --workers 8

A reader (`deepmolm_plugin.data.sources`, one module per ``--format``) turns the input into
`SourceItem`s; this engine turns each into a record, in input order:

1. molecule: `MoleculeSpec` -> `MoleculeRecord` (SMILES: conformer per
   ``--conformer-policy``; structure file + index; atoms + coordinates);
2. ``molecule_fp`` E3FP tokens, stored in the split's sidecar (`sidecar.py`);
3. depiction: rendered with `render_molecule` (from the SMILES when the item has one, else
   from the structure), or the item's own image copied; stored content-addressed;
4. conversation: the shared prompt table's instruction (`prompts.py`) and the answer.

A record that cannot be made correct (`SourceError` from the reader, `MoleculeError` while
building, fingerprinting or drawing, an empty answer) becomes a line of the failures file
naming it and the stage; the run goes on. A reader that breaks the contract (unknown task,
bad split name, not a `SourceItem`) is a bug and stops the run.

Output (``--out DIR``):

- ``<split>.json``: the host's JSON list of records ``{id, image, conversations, task,
  smiles, properties?, molecule_fp, conformer, notes?, source?}``; ``image`` and the
  sidecar path are relative to DIR: train with ``--data_path DIR/train.json --image_folder
  DIR`` (the host joins ``--image_folder`` with ``image``; sidecars resolve against the
  data file's folder);
- ``fp/<split>.npy``: int16 ``[total_atoms, 4]`` token rows; a record's ``molecule_fp`` is
  ``{"sidecar": "fp/<split>.npy", "offset": o, "atoms": n}``;
- ``images/<h[:2]>/<h[2:32]>.png``: depictions named by the SHA-256 ``h`` of their bytes,
  so the several tasks of one molecule share one file and a rerun can never produce a
  different file under the same name;
- ``failures.jsonl``: ``{id, stage, reason}`` per failure, in input order;
- ``manifest.json``: counts per split and task, failures per stage, settings, package
  versions, input checksums. No timestamps: the same inputs and settings give the same
  bytes in every file, whatever ``--workers``/``--shard``, and whatever kills happened.

Resume. Items are numbered in input order and cut into chunks of ``--chunk-size``; chunk
``c`` is items ``[c*S, (c+1)*S)``. A finished chunk is committed to
``DIR/.progress/chunk-<c>.<run>.npy`` (its token rows), then ``chunk-<c>.<run>.json`` (its
records and failures: the commit point), each written to a temporary file and renamed;
``<run>`` is a digest of the run's identity, so chunks made with other settings are never
mixed in. A rerun of the same command checks that inputs (SHA-256, cached by size and
mtime), settings and package versions match the interrupted run's (``.progress/run.json``;
else it refuses, unless ``--overwrite``), skips committed chunks and computes the rest.
Once every chunk is committed the outputs are assembled from the chunk files alone (a pure
function of them, so identical however the chunks were produced), each written to a
temporary file and renamed; the manifest goes last and marks the output complete, then
``.progress`` is removed. A rerun on complete output checks the identity and does nothing.
Images are written by the workers (temporary file, then rename) before their chunk
commits; a killed chunk's images are remade byte-identical under the same names.

Exit status: 0 done (failures may exist: see the failures file), 1 no record at all,
2 a run that cannot start or finish (changed settings, foreign folder, reader
configuration); a reader that breaks the contract raises.

Shards. ``--shard I/N`` processes the chunks ``c`` with ``c % N == I`` (round robin over
chunks, so every shard gets a fair share wherever the slow molecules are) and commits
them into the same ``DIR/.progress`` (chunk names are global, images content-addressed:
array jobs never collide; each writes ``.progress/shard-I-of-N.json`` when done). Every
shard reads the whole input (readers stream; only its own chunks are computed). Then
``--merge`` (same command, no ``--shard``) assembles the final output without reading the
input; the same command without ``--shard`` or ``--merge`` also works, computing any chunk
a failed shard left. The result is byte-identical to a single unsharded run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import itertools
import json
import math
import multiprocessing
import operator
import os
import re
import shutil
import sys
import time
from collections import Counter, OrderedDict, deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from .prompts import conversation, instruction_for, is_known_task
from .sidecar import SidecarBuilder, SidecarError, dtype_for, reference
from .sources.base import READERS, MoleculeSpec, SourceError, SourceItem

FORMAT_MODULES = {
    "3d-moit": "deepmolm_plugin.data.sources.moit",
    "vis-chebi20": "deepmolm_plugin.data.sources.vis_chebi20",
    "chebi20-mm": "deepmolm_plugin.data.sources.chebi20_mm",
    "chebi20": "deepmolm_plugin.data.sources.chebi20",
    "csv": "deepmolm_plugin.data.sources.csv_source",
    "sdf": "deepmolm_plugin.data.sources.sdf_source",
}
SCHEMA = 1
FP_BITS, FP_LEVELS = 4096, 4
PROGRESS, MANIFEST, FAILURES = ".progress", "manifest.json", "failures.jsonl"
SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class PrepareError(RuntimeError):
    """A run that cannot start or finish as asked (settings changed, chunk damaged...)."""


# ---------------------------------------------------------------------------------------
# Small atomic-write helpers: every output goes to a temporary file, then os.replace.


def atomic_bytes(path: Path, data: bytes, tmp_dir: Path) -> None:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{path.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, path)


def dumps(value) -> str:
    """The one JSON spelling of every output: ASCII, keys in insertion order, no spaces."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# Per item (runs in the worker processes): molecule, tokens, depiction, record.


@dataclass(frozen=True)
class WorkSettings:
    out: str
    tmp: str
    input_root: str
    policy: str
    image_size: int
    bits: int = FP_BITS
    levels: int = FP_LEVELS


@dataclass
class Made:
    """One item's outcome: a record (+ its token rows) or a failure."""

    split: Optional[str] = None
    record: Optional[dict] = None
    tokens: Optional[np.ndarray] = None
    failure: Optional[dict] = None


class Failed(Exception):
    """Internal: an item failed at `stage` (turned into a failures-file line)."""

    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def molecule_key(spec: MoleculeSpec) -> tuple:
    """Identity of a molecule input, so consecutive items about one molecule reuse its work."""
    if spec.structure is not None:
        return ("structure", str(spec.structure[0]), int(spec.structure[1]))
    if spec.atoms is not None:
        digest = hashlib.sha256(repr([str(a) for a in spec.atoms]).encode())
        digest.update(np.ascontiguousarray(np.asarray(spec.coordinates, dtype=np.float64)).tobytes())
        return ("atoms", digest.hexdigest(), spec.smiles, spec.charge)
    return ("smiles", spec.smiles)


class SdfCursor:
    """Random access to the records of SDF files without parsing the records in between.

    Workers get items in input order but skip the ones other workers took; re-reading
    the file from the top for every record would be quadratic, and parsing the skipped
    records would repeat other workers' conformer work. Records are counted exactly as
    `read_structures` counts them (`sdf_source.sdf_blocks`).
    """

    def __init__(self):
        self.path: Optional[str] = None
        self.blocks: Optional[Iterator[str]] = None
        self.handle = None
        self.next_index = 0

    def block(self, path: str, index: int) -> Optional[str]:
        from .sources.sdf_source import sdf_blocks

        if path != self.path or index < self.next_index:
            self.close()
            self.handle = open(path, encoding="utf-8", errors="replace")
            self.path, self.blocks, self.next_index = path, sdf_blocks(self.handle), 0
        for block in self.blocks:
            self.next_index += 1
            if self.next_index - 1 == index:
                return block
        return None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.path, self.blocks, self.handle = None, None, None


class ItemMaker:
    """Makes records from items; one per process (holds a small cache and file cursors)."""

    def __init__(self, settings: WorkSettings):
        self.s = settings
        self.dtype = dtype_for(settings.bits)
        self.cache: "OrderedDict[tuple, object]" = OrderedDict()
        self.sdf = SdfCursor()
        self.tmp = Path(settings.tmp) / f"w{os.getpid()}"
        self.written = 0

    # -- the item -----------------------------------------------------------------------
    def make(self, item) -> Made:
        if isinstance(item, SourceError):
            return Made(failure={"id": str(item.id), "stage": str(item.stage), "reason": str(item.reason)})
        check_contract(item)
        try:
            turns = self._conversation(item)
            properties = self._properties(item)
            mol_record, tokens, smiles = self._molecule(item)
            image = self._image(item, mol_record)
        except Failed as e:
            return Made(failure={"id": item.id, "stage": e.stage, "reason": e.reason})
        record = {"id": item.id, "image": image, "conversations": turns, "task": item.task, "smiles": smiles}
        if properties:
            record["properties"] = properties
        record["molecule_fp"] = None  # the sidecar reference, filled in at assembly
        record["conformer"] = mol_record.conformer
        if mol_record.notes:
            record["notes"] = [str(n) for n in mol_record.notes]
        if item.extra:
            record["source"] = dict(item.extra)
        return Made(split=item.split, record=record, tokens=tokens)

    def _conversation(self, item: SourceItem) -> list:
        if not isinstance(item.answer, str) or not item.answer.strip():
            raise Failed("answer", f"empty answer {item.answer!r}")
        instruction = item.instruction if item.instruction else instruction_for(item.task)
        try:
            return conversation(instruction, item.answer.strip())
        except ValueError as e:  # an instruction that is only "<image>"
            raise Failed("answer", str(e)) from e

    @staticmethod
    def _properties(item: SourceItem) -> dict:
        out = {}
        for name, value in item.properties.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                raise Failed("properties", f"property {name!r} value {value!r} is not a finite number")
            out[str(name)] = number
        return out

    # -- molecule and tokens (cached per molecule: one CSV row with 12 labels is 12 items) --
    def _molecule(self, item: SourceItem):
        from ..molecule import MoleculeError, fingerprint_record

        key = molecule_key(item.molecule) + (self.s.policy,)
        if key not in self.cache:
            try:
                try:
                    built = self._build(item.molecule)
                except MoleculeError as e:
                    raise Failed("molecule", e.reason) from e
                try:
                    tokens = fingerprint_record(built, bits=self.s.bits, level=self.s.levels - 1).numpy()
                except MoleculeError as e:
                    raise Failed("fingerprint", e.reason) from e
                smiles = item.molecule.smiles or canonical_smiles(built.mol)
                self._remember(key, (built, tokens.astype(self.dtype), smiles))
            except Failed as e:
                self._remember(key, e)
        value = self.cache[key]
        self.cache.move_to_end(key)
        if isinstance(value, Failed):
            raise Failed(value.stage, value.reason)
        return value

    def _remember(self, key: tuple, value) -> None:
        self.cache[key] = value
        while len(self.cache) > 16:
            self.cache.popitem(last=False)

    def _build(self, spec: MoleculeSpec):
        """The molecule, named after its input (never an item id): an item whose result came
        from the cache must get exactly what a fresh computation would give it."""
        from ..molecule import molecule_from_atoms, molecule_from_smiles

        id = molecule_name(spec)
        if spec.atoms is not None:
            return molecule_from_atoms(spec.atoms, spec.coordinates, id, smiles=spec.smiles,
                                       charge=spec.charge, policy=self.s.policy)
        if spec.structure is not None:
            return self._structure(spec.structure, id)
        # A SMILES has no coordinates: 'from-file' generates, as records.py does at training.
        policy = "generate" if self.s.policy == "from-file" else self.s.policy
        return molecule_from_smiles(spec.smiles, id, policy=policy)

    def _structure(self, structure: tuple, id: str):
        from ..molecule import MoleculeError, read_structures

        path, index = self.resolve(structure[0]), int(structure[1])
        if not path.is_file():
            raise MoleculeError(id, f"structure file {path} does not exist")
        if path.suffix.lower() in (".sdf", ".sd", ".mol"):
            block = self.sdf.block(str(path), index)
            if block is None:
                raise MoleculeError(id, f"{path} has no record {index}")
            self.tmp.mkdir(parents=True, exist_ok=True)
            one = self.tmp / f"record{path.suffix.lower()}"
            one.write_text(block.rstrip("\n") + "\n$$$$\n", encoding="utf-8")
            found = list(read_structures(one, policy=self.s.policy, errors="raise"))
        else:  # MOL2 / XYZ / PDB: usually one molecule per file; re-read per record
            found = list(itertools.islice(read_structures(path, policy=self.s.policy), index, index + 1))
        if not found:
            raise MoleculeError(id, f"{path} has no record {index}")
        if isinstance(found[0], MoleculeError):
            raise MoleculeError(id, found[0].reason)
        return replace(found[0], id=id, source=f"{path}#{index}")

    def resolve(self, name) -> Path:
        path = Path(name)
        return path if path.is_absolute() else Path(self.s.input_root) / path

    # -- depiction ----------------------------------------------------------------------
    def _image(self, item: SourceItem, mol_record) -> str:
        from PIL import Image, UnidentifiedImageError

        from ..molecule import MoleculeError, render_molecule

        if item.image:
            path = self.resolve(item.image)
            try:
                data = path.read_bytes()
                with Image.open(io.BytesIO(data)) as image:
                    image.verify()
            except OSError as e:  # missing file, or UnidentifiedImageError (an OSError)
                reason = "not an image" if isinstance(e, UnidentifiedImageError) else (e.strerror or str(e))
                raise Failed("image", f"cannot copy image {path}: {reason}") from e
            return self._store(data, path.suffix.lower() or ".png")
        key = molecule_key(item.molecule) + ("image", self.s.image_size)
        if key not in self.cache:
            spec = item.molecule
            source = spec.smiles if spec.structure is None and spec.atoms is None else mol_record
            try:
                image = render_molecule(source, size=self.s.image_size, id=molecule_name(item.molecule))
            except MoleculeError as e:
                self._remember(key, Failed("image", e.reason))
            else:
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                self._remember(key, self._store(buffer.getvalue(), ".png"))
        value = self.cache[key]
        if isinstance(value, Failed):
            raise Failed(value.stage, value.reason)
        return value

    def _store(self, data: bytes, suffix: str) -> str:
        """Content-addressed, atomic: a file under its name is always complete and right."""
        digest = hashlib.sha256(data).hexdigest()
        relative = f"images/{digest[:2]}/{digest[2:32]}{suffix}"
        target = Path(self.s.out) / relative
        if not target.is_file():
            self.tmp.mkdir(parents=True, exist_ok=True)
            tmp = self.tmp / f"image{self.written}{suffix}"
            self.written += 1
            tmp.write_bytes(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        return relative


def molecule_name(spec: MoleculeSpec) -> str:
    if spec.structure is not None:
        return f"{Path(spec.structure[0]).name}#{spec.structure[1]}"
    return spec.smiles if spec.atoms is None or spec.smiles else "atoms"


def canonical_smiles(mol) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False))


def check_contract(item) -> None:
    """What a reader must guarantee; a violation is a bug in the reader, not bad data."""
    if not isinstance(item, SourceItem):
        raise TypeError(f"a reader yielded {type(item).__name__}, expected SourceItem or SourceError")
    if not isinstance(item.id, str) or not item.id:
        raise ValueError(f"reader bug: item with id {item.id!r}: ids must be non-empty strings")
    if not isinstance(item.split, str) or not SPLIT_NAME.match(item.split) or item.split == "manifest":
        raise ValueError(f"reader bug: item {item.id!r} has split {item.split!r}; use letters, digits, _ and - "
                         "(not 'manifest': <split>.json is the record file)")
    if not is_known_task(item.task):
        raise ValueError(f"reader bug: item {item.id!r} has task {item.task!r}, which the prompt table "
                         "(deepmolm_plugin.data.prompts) does not know")
    try:
        dumps(item.extra)
    except (TypeError, ValueError) as e:
        raise ValueError(f"reader bug: item {item.id!r}: extra is not plain JSON: {e}") from e


_MAKER: Optional[ItemMaker] = None


def _init_worker(settings: WorkSettings, pool_worker: bool = True) -> None:
    global _MAKER
    if pool_worker:
        import torch

        torch.set_num_threads(1)  # one process per core: no oversubscription
    _MAKER = ItemMaker(settings)


def _work(batch: list) -> List[Made]:
    return [_MAKER.make(item) for item in batch]


# ---------------------------------------------------------------------------------------
# Identity of a run: inputs, settings, versions. Resume only with the same identity.


def input_files(path: Path, out: Path) -> List[Tuple[Path, str]]:
    """(file, name) of the input: the file, or every file under the folder, sorted
    (hidden files and the output folder, if inside, are not inputs)."""
    path = path.resolve()
    if path.is_file():
        return [(path, path.name)]
    if not path.is_dir():
        raise PrepareError(f"--input {path} does not exist")
    files = []
    for p in sorted(path.rglob("*")):
        relative = p.relative_to(path)
        if p.is_file() and not any(part.startswith(".") for part in relative.parts) and out not in p.parents:
            files.append((p, relative.as_posix()))
    return files


def checksum_inputs(path: Path, out: Path, known: List[dict]) -> List[dict]:
    """SHA-256 of every input file; reused from an earlier run when size and mtime match."""
    cache = {(e["path"], e["bytes"], e.get("mtime_ns")): e["sha256"] for e in known}
    entries = []
    for file, name in input_files(path, out):
        stat = file.stat()
        sha = cache.get((name, stat.st_size, stat.st_mtime_ns)) or sha256_file(file)
        entries.append({"path": name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha})
    return entries


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import deepmolm_plugin

    out = {"deepmolm_plugin": deepmolm_plugin.__version__}
    for name in ("rdkit", "e3fp", "numpy", "torch", "pillow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def run_id(state: dict) -> str:
    return hashlib.sha256(dumps(identity_of(state)).encode()).hexdigest()[:12]


def identity_of(state: dict) -> dict:
    """What must match for outputs to be reused: settings, versions, input contents."""
    return {"schema": state.get("schema"), "settings": state.get("settings"), "versions": state.get("versions"),
            "inputs": [(e["path"], e["sha256"]) for e in state.get("inputs", [])]}


def differences(old: dict, new: dict) -> List[str]:
    a, b = identity_of(old), identity_of(new)
    out = [f"{k}: {a[k]} -> {b[k]}" for k in ("schema", "versions") if a[k] != b[k]]
    for k in sorted(set(a["settings"] or {}) | set(b["settings"] or {})):
        if (a["settings"] or {}).get(k) != (b["settings"] or {}).get(k):
            out.append(f"setting {k}: {(a['settings'] or {}).get(k)!r} -> {(b['settings'] or {}).get(k)!r}")
    if a["inputs"] != b["inputs"]:
        out.append("input files changed (SHA-256)")
    return out


# ---------------------------------------------------------------------------------------
# The output folder: state files, chunk commits, assembly.


class Output:
    """The files of one output folder and the rules for touching them."""

    def __init__(self, root: Path, tag: str):
        self.root = root
        self.progress = root / PROGRESS
        self.tmp = self.progress / "tmp" / f"{tag}-{os.getpid()}"
        self.tag = tag
        self.run_id = ""  # digest of the run's identity, set once it is known (`start`)

    def chunk_json(self, c: int) -> Path:
        return self.progress / f"chunk-{c:07d}.{self.run_id}.json"

    def chunk_npy(self, c: int) -> Path:
        return self.progress / f"chunk-{c:07d}.{self.run_id}.npy"

    def committed(self, any_run: bool = False) -> set:
        """Chunks committed by this run's identity (chunk names carry it, so chunks made
        with other settings, e.g. by a misconfigured array job, are never mixed in)."""
        if not self.progress.is_dir():
            return set()
        pattern = "chunk-*.json" if any_run else f"chunk-*.{self.run_id}.json"
        return {int(p.name.split(".")[0][len("chunk-"):]) for p in self.progress.glob(pattern)}

    def read_json(self, name: str) -> Optional[dict]:
        path = self.root / name
        return json.loads(path.read_text()) if path.is_file() else None

    def is_ours(self) -> bool:
        return (self.root / MANIFEST).is_file() or self.progress.is_dir()

    def clean_tmp(self) -> None:
        """Temporary files of earlier, killed runs of this shard: never part of an output."""
        base = self.progress / "tmp"
        if base.is_dir():
            for stale in base.glob(f"{self.tag}-*"):
                shutil.rmtree(stale, ignore_errors=False)

    def remove_outputs(self) -> None:
        """--overwrite: delete what earlier runs wrote (only names this tool writes)."""
        names = {MANIFEST, FAILURES}
        for state in (self.read_json(MANIFEST), self.read_json(f"{PROGRESS}/assembly.json")):
            for split in (state or {}).get("splits", {}):
                names.add(f"{split}.json")
        for name in names:
            (self.root / name).unlink(missing_ok=True)
        for folder in ("fp", "images", PROGRESS):
            if (self.root / folder).is_dir():
                shutil.rmtree(self.root / folder)

    def commit_chunk(self, c: int, first: int, made: List[Made], levels: int, dtype) -> None:
        """Token rows first, then the JSON that names them: the JSON is the commit point."""
        rows = [m.tokens for m in made if m.record is not None]
        tokens = np.concatenate(rows).astype(dtype) if rows else np.zeros((0, levels), dtype=dtype)
        buffer = io.BytesIO()
        np.save(buffer, tokens, allow_pickle=False)
        data = buffer.getvalue()
        atomic_bytes(self.chunk_npy(c), data, self.tmp)
        items = []
        for m in made:
            if m.record is None:
                items.append({"failure": m.failure})
            else:
                digest = hashlib.blake2b(m.tokens.astype(dtype).tobytes(), digest_size=16).hexdigest()
                items.append({"split": m.split, "atoms": int(len(m.tokens)), "fp": digest, "record": m.record})
        meta = {"chunk": c, "first": first, "items": items, "rows": int(len(tokens)),
                "tokens_sha256": hashlib.sha256(data).hexdigest()}
        atomic_bytes(self.chunk_json(c), dumps(meta).encode(), self.tmp)

    def load_chunk(self, c: int, with_tokens: bool) -> Tuple[dict, Optional[np.ndarray]]:
        try:
            meta = json.loads(self.chunk_json(c).read_text())
        except FileNotFoundError as e:
            raise PrepareError(f"chunk {c} is not committed: rerun without --merge to compute it") from e
        if not with_tokens:
            return meta, None
        path = self.chunk_npy(c)
        data = path.read_bytes() if path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != meta["tokens_sha256"]:
            raise PrepareError(f"{path} is missing or damaged (checksum): delete {self.chunk_json(c)} "
                               "and rerun to recompute that chunk")
        return meta, np.load(io.BytesIO(data), allow_pickle=False)


@dataclass
class Tally:
    """Pass 1 of assembly: what the chunks hold, before anything is written."""

    items: int = 0
    splits: Dict[str, dict] = field(default_factory=dict)  # split -> records, rows, tasks
    stages: Counter = field(default_factory=Counter)
    duplicates: set = field(default_factory=set)  # (chunk, item) of repeated ids
    images: int = 0


def tally(out: Output, n_chunks: int) -> Tally:
    """Counts, sidecar sizes (rows shared by records with equal tokens counted once),
    repeated ids (the later ones fail), and a check that every image is there."""
    t, seen, images, fps = Tally(), set(), set(), {}
    for c in range(n_chunks):
        meta, _ = out.load_chunk(c, with_tokens=False)
        for k, entry in enumerate(meta["items"]):
            t.items += 1
            if "failure" in entry:
                t.stages[entry["failure"]["stage"]] += 1
                continue
            record = entry["record"]
            if record["id"] in seen:
                t.duplicates.add((c, k))
                t.stages["duplicate-id"] += 1
                continue
            seen.add(record["id"])
            if record["image"] not in images:
                if not (out.root / record["image"]).is_file():
                    raise PrepareError(f"record {record['id']!r}: image {record['image']} is missing: delete "
                                       f"{out.chunk_json(c)} and rerun to recompute its chunk")
                images.add(record["image"])
            split = t.splits.setdefault(entry["split"], {"records": 0, "rows": 0, "tasks": Counter()})
            split["records"] += 1
            split["tasks"][record["task"]] += 1
            if entry["fp"] not in fps.setdefault(entry["split"], set()):
                fps[entry["split"]].add(entry["fp"])
                split["rows"] += entry["atoms"]
    t.images = len(images)
    return t


def write_outputs(out: Output, n_chunks: int, t: Tally, levels: int, dtype) -> None:
    """Pass 2: records, sidecars and failures into temporary files, then renamed into place
    (sidecars first, so a record file never points at a sidecar that is not there yet)."""
    names = sorted(t.splits)
    atomic_bytes(out.progress / "assembly.json", dumps({"splits": names}).encode(), out.tmp)
    sidecars = {s: SidecarBuilder(out.tmp / f"fp-{s}.npy", t.splits[s]["rows"], levels, dtype) for s in names}
    placed: Dict[str, Dict[str, int]] = {s: {} for s in names}  # tokens digest -> offset
    with contextlib.ExitStack() as files:
        writers = {s: files.enter_context(open(out.tmp / f"{s}.json", "w", encoding="ascii")) for s in names}
        failures = files.enter_context(open(out.tmp / FAILURES, "w", encoding="ascii"))
        separator = {s: "[\n" for s in names}
        for c in range(n_chunks):
            meta, tokens = out.load_chunk(c, with_tokens=True)
            at = 0
            for k, entry in enumerate(meta["items"]):
                if "failure" in entry:
                    failures.write(dumps(entry["failure"]) + "\n")
                    continue
                n, split, record = entry["atoms"], entry["split"], entry["record"]
                rows, at = tokens[at:at + n], at + n
                if (c, k) in t.duplicates:
                    failures.write(dumps({"id": record["id"], "stage": "duplicate-id",
                                          "reason": "an earlier record has the same id"}) + "\n")
                    continue
                if entry["fp"] not in placed[split]:
                    placed[split][entry["fp"]] = sidecars[split].append(rows)
                record["molecule_fp"] = reference(f"fp/{split}.npy", placed[split][entry["fp"]], n)
                writers[split].write(separator[split] + dumps(record))
                separator[split] = ",\n"
            if at != len(tokens):
                raise PrepareError(f"chunk {c}: {len(tokens)} token rows, its records account for {at}")
        for s in names:
            writers[s].write("\n]\n")
    for s in names:
        sidecars[s].commit(out.root / "fp" / f"{s}.npy")
    for s in names:
        os.replace(out.tmp / f"{s}.json", out.root / f"{s}.json")
    os.replace(out.tmp / FAILURES, out.root / FAILURES)


def assemble(out: Output, n_chunks: int, state: dict) -> dict:
    """All committed chunks -> split files, sidecars, failures, then the manifest.

    A pure function of the chunk files, so the output is the same however the chunks were
    made. Two passes (tally, then write): one chunk in memory at a time, and the sidecar
    sizes known before writing them. The manifest is written last: it marks the output
    complete; `.progress` is removed after it.
    """
    settings = state["settings"]
    t = tally(out, n_chunks)
    write_outputs(out, n_chunks, t, settings["fp_levels"], dtype_for(settings["fp_bits"]))
    manifest = {
        "schema": SCHEMA,
        "tool": "deepmolm-prepare",
        "settings": settings,
        "versions": state["versions"],
        "inputs": state["inputs"],
        "counts": {"items": t.items, "records": sum(v["records"] for v in t.splits.values()),
                   "failures": sum(t.stages.values()), "images": t.images},
        "splits": {s: {"file": f"{s}.json", "sidecar": f"fp/{s}.npy", "records": v["records"],
                       "sidecar_rows": v["rows"], "tasks": dict(sorted(v["tasks"].items()))}
                   for s, v in sorted(t.splits.items())},
        "failures": {"file": FAILURES, "by_stage": dict(sorted(t.stages.items()))},
    }
    atomic_bytes(out.root / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), out.tmp)
    shutil.rmtree(out.progress)
    return manifest


def summary(manifest: dict) -> str:
    """The end-of-run table, made from the manifest itself (so the two always agree)."""
    counts, settings = manifest["counts"], manifest["settings"]
    lines = [f"deepmolm-prepare {settings['format']}: {counts['items']} items -> "
             f"{counts['records']} records, {counts['failures']} failures, {counts['images']} images"]
    rows = [(split, task, n) for split, info in manifest["splits"].items() for task, n in info["tasks"].items()]
    width = max([len("task")] + [len(t) for _, t, _ in rows])
    split_width = max([len("split")] + [len(s) for s, _, _ in rows])
    lines.append(f"  {'split':<{split_width}}  {'task':<{width}}  {'records':>8}")
    for split, task, n in rows:
        lines.append(f"  {split:<{split_width}}  {task:<{width}}  {n:>8}")
    for split, info in manifest["splits"].items():
        lines.append(f"  {split:<{split_width}}  {'(all)':<{width}}  {info['records']:>8}")
    stages = manifest["failures"]["by_stage"]
    if stages:
        lines.append("  failures by stage: " + ", ".join(f"{k} {v}" for k, v in stages.items())
                     + f"  (see {manifest['failures']['file']})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# The run: read items, skip committed chunks, compute the rest in parallel, commit in order.


def load_reader(fmt: str):
    if fmt not in READERS and fmt in FORMAT_MODULES:
        module = FORMAT_MODULES[fmt]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise  # a missing dependency of the reader: its own message says which
            raise PrepareError(f"--format {fmt}: its reader module {module} is not installed") from e
    if fmt not in READERS:
        raise PrepareError(f"--format {fmt}: no reader registered under that name")
    return READERS[fmt]


def checked_reader(fmt: str, items: Iterable) -> Iterator:
    """The reader's items; its configuration and I/O errors (a missing column, a missing
    file) become one clear PrepareError naming the format and the position reached."""
    position = 0
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except (ValueError, OSError) as e:
            raise PrepareError(f"--format {fmt} reader stopped after {position} items: {e}") from e
        position += 1
        yield item


def chunks_of(items: Iterable, size: int) -> Iterator[Tuple[int, int, list]]:
    """(chunk number, position of its first item, its items) in input order."""
    iterator = iter(items)
    for c in itertools.count():
        batch = list(itertools.islice(iterator, size))
        if not batch:
            return
        yield c, c * size, batch


@dataclass
class _Open:
    """A chunk being computed: one result slot per task, filled in any order."""

    c: int
    first: int
    size: int
    parts: list
    waiting: int


class Scheduler:
    """Tasks run on the pool in any order; chunks are committed strictly in input order.

    Workers never wait for the oldest task: a slow molecule holds back only the commit of
    its own chunk, while the others go on computing up to `ahead` items beyond it (a
    bound on memory). With no pool, tasks run here, at once.
    """

    def __init__(self, pool, workers: int, ahead: int, commit, progress):
        self.pool, self.workers, self.ahead = pool, workers, ahead
        self.commit, self.progress = commit, progress
        self.pending: Dict[object, Tuple[_Open, int]] = {}  # future -> (chunk, slot)
        self.open: deque = deque()

    def add(self, chunk: _Open, tasks: List[list]) -> None:
        self.open.append(chunk)
        for k, task in enumerate(tasks):
            if self.pool is None:
                self._fill(chunk, k, _work(task))
                continue
            while len(self.pending) >= 2 * self.workers or (
                    len(self.open) > 1 and sum(ch.size for ch in self.open) > self.ahead):
                self._harvest(block=True)
            self.pending[self.pool.submit(_work, task)] = (chunk, k)
        self._harvest(block=False)

    def finish(self) -> None:
        while self.open:
            self._harvest(block=True)

    def _fill(self, chunk: _Open, k: int, part: list) -> None:
        chunk.parts[k] = part
        chunk.waiting -= 1
        self.progress.update(len(part))

    def _harvest(self, block: bool) -> None:
        if block and self.pending:
            wait(self.pending, return_when=FIRST_COMPLETED)
        for future in [f for f in self.pending if f.done()]:
            chunk, k = self.pending.pop(future)
            self._fill(chunk, k, future.result())
        while self.open and self.open[0].waiting == 0:
            chunk = self.open.popleft()
            self.commit(chunk.c, chunk.first, [made for part in chunk.parts for made in part])


def compute(args, out: Output, state: dict, shard: Tuple[int, int]) -> Tuple[int, int, int]:
    """Compute and commit this shard's uncommitted chunks. Returns (chunks seen in the
    input, chunks computed now, items computed now)."""
    reader = load_reader(args.format)
    settings = state["settings"]
    raw = reader(settings["input"], dict(settings["reader_options"]))
    items = checked_reader(args.format, raw)
    if settings["limit"] is not None:
        items = itertools.islice(items, settings["limit"])
    work = WorkSettings(out=str(out.root), tmp=str(out.tmp), input_root=str(input_root(Path(settings["input"]))),
                        policy=settings["conformer_policy"], image_size=settings["image_size"],
                        bits=settings["fp_bits"], levels=settings["fp_levels"])
    done = out.committed()
    dtype = dtype_for(work.bits)
    task_size = max(1, min(16, args.chunk_size // (2 * args.workers)))
    pool = None
    if args.workers > 1:
        # A process pool that fails loudly (BrokenProcessPool) if a worker dies, e.g. out of
        # memory, where multiprocessing.Pool would wait forever; the run is then resumable.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        pool = ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context(method),
                                   initializer=_init_worker, initargs=(work,))
        pool.submit(int).result()  # start the workers now, before the progress bar's thread
    else:
        _init_worker(work, pool_worker=False)
    total = operator.length_hint(raw, 0) or None
    if total is not None and settings["limit"] is not None:
        total = min(total, settings["limit"])
    tty = sys.stderr.isatty()  # in a batch job's log, a line every 30 s rather than a stream of \r
    progress = tqdm(total=total, unit="item", desc="prepare", mininterval=1.0 if tty else 30.0,
                    disable=args.no_progress, file=sys.stderr, dynamic_ncols=tty)
    counts = {"chunks": 0, "items": 0}

    def commit(c: int, first: int, made: List[Made]) -> None:
        out.commit_chunk(c, first, made, work.levels, dtype)
        counts["chunks"] += 1
        counts["items"] += len(made)

    scheduler = Scheduler(pool, args.workers, 8 * args.chunk_size, commit, progress)
    n_chunks = 0
    try:
        for c, first, batch in chunks_of(items, args.chunk_size):
            n_chunks = c + 1
            if c in done:
                progress.update(len(batch))
            if c % shard[1] != shard[0] or c in done:
                continue
            tasks = [batch[i:i + task_size] for i in range(0, len(batch), task_size)]
            scheduler.add(_Open(c, first, len(batch), [None] * len(tasks), len(tasks)), tasks)
        scheduler.finish()
    finally:
        progress.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        else:
            _MAKER.sdf.close()
    return n_chunks, counts["chunks"], counts["items"]


def input_root(path: Path) -> Path:
    """Relative paths in items (images, structure files) are relative to this folder."""
    return path if path.is_dir() else path.parent


# ---------------------------------------------------------------------------------------
# Command line.


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    formats = sorted(set(FORMAT_MODULES) | set(READERS))
    p = argparse.ArgumentParser(prog="deepmolm-prepare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", required=True, choices=formats)
    p.add_argument("--input", required=True, help="input file or folder (as the format's reader expects)")
    p.add_argument("--out", required=True, help="output folder (created; resumable)")
    p.add_argument("--workers", type=int, default=1, help="processes computing molecules (default 1)")
    p.add_argument("--shard", default="0/1", help="I/N: compute only chunks c with c %% N == I (array jobs)")
    p.add_argument("--merge", action="store_true",
                   help="only assemble the chunks committed by --shard runs (does not read the input)")
    p.add_argument("--chunk-size", type=int, default=256, help="items per resumable commit (default 256)")
    p.add_argument("--limit", type=int, default=None, help="only the first N items of the input")
    p.add_argument("--conformer-policy", default="auto", choices=("auto", "generate", "from-file"))
    p.add_argument("--image-size", type=int, default=1024, help="depiction size in pixels (DeepMoLM: 1024)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier outputs made with other settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("reader options (passed to the format's reader)")
    g.add_argument("--smiles-column")
    g.add_argument("--label-columns", nargs="+", help="numeric columns/fields: COL or COL=NAME (comma lists too)")
    g.add_argument("--text-columns", nargs="+", help="text columns/fields: COL=TASK")
    g.add_argument("--id-column")
    g.add_argument("--split-column")
    g.add_argument("--id-field")
    g.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a format-specific reader option (repeatable); VALUE is parsed as JSON when it can be")
    args = p.parse_args(argv)
    match = re.fullmatch(r"(\d+)/(\d+)", args.shard)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        p.error(f"--shard must be I/N with 0 <= I < N, got {args.shard!r}")
    args.shard = (int(match.group(1)), int(match.group(2)))
    if args.workers < 1 or args.chunk_size < 1 or args.image_size < 16:
        p.error("--workers and --chunk-size must be >= 1 and --image-size >= 16")
    if args.merge and args.shard != (0, 1):
        p.error("--merge assembles all shards: give it no --shard")
    return args


def reader_options(args) -> dict:
    options = {}
    for name in ("smiles_column", "id_column", "split_column", "id_field"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    for name in ("label_columns", "text_columns"):
        if getattr(args, name):
            options[name] = [c.strip() for v in getattr(args, name) for c in v.split(",") if c.strip()]
    for pair in args.option:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PrepareError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return dict(sorted(options.items()))


def settings_of(args) -> dict:
    """Everything that changes the output (so not --out, --workers, --shard)."""
    return {"format": args.format, "input": str(Path(args.input).resolve()), "reader_options": reader_options(args),
            "conformer_policy": args.conformer_policy, "image_size": args.image_size, "chunk_size": args.chunk_size,
            "limit": args.limit, "fp_bits": FP_BITS, "fp_levels": FP_LEVELS}


def start(args, out: Output) -> Tuple[dict, Optional[dict]]:
    """This run's state (settings, versions, inputs) and the finished manifest if the
    output is already complete with the same identity. Refuses foreign or stale folders."""
    root = out.root
    if root.exists() and not root.is_dir():
        raise PrepareError(f"--out {root} is a file")
    if root.is_dir() and any(root.iterdir()) and not out.is_ours():
        raise PrepareError(f"--out {root} is not empty and holds no deepmolm-prepare output: use an empty folder")
    manifest, run = out.read_json(MANIFEST), out.read_json(f"{PROGRESS}/run.json")
    known = (manifest or run or {}).get("inputs", [])
    settings = settings_of(args)
    state = {"schema": SCHEMA, "settings": settings, "versions": versions(),
             "inputs": checksum_inputs(Path(args.input), root.resolve(), known)}
    previous = manifest or run
    if manifest is None and run is not None and not out.committed(any_run=True):
        previous = run = None  # an earlier start that committed nothing: nothing to protect
    if previous is not None and identity_of(previous) != identity_of(state):
        if not args.overwrite:
            changes = "; ".join(differences(previous, state))
            raise PrepareError(f"--out {root} holds output of a different run ({changes}); "
                               "use --overwrite to discard it, or another --out")
        out.remove_outputs()
        manifest = run = None
    if manifest is not None and run is None:
        return state, manifest
    if manifest is not None:  # killed after the manifest, before .progress was removed
        shutil.rmtree(out.progress)
        return state, manifest
    out.progress.mkdir(parents=True, exist_ok=True)
    out.clean_tmp()
    if run is None or identity_of(run) != identity_of(state):
        atomic_bytes(out.progress / "run.json", dumps(state).encode(), out.tmp)
    return state, None


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    tag = f"s{args.shard[0]}of{args.shard[1]}"
    out = Output(Path(args.out), tag)
    began = time.perf_counter()
    try:
        state, finished = start(args, out)
        out.run_id = run_id(state)
        if finished is not None:
            print(summary(finished))
            print(f"already complete: processed 0 items ({out.root / MANIFEST})")
            return 0 if finished["counts"]["records"] else 1
        if args.merge:
            n_chunks, computed = merge_chunks(out), (0, 0)
        else:
            n_chunks, *computed = compute(args, out, state, args.shard)
            if args.shard != (0, 1):
                marker = {"run": out.run_id, "shard": list(args.shard), "chunks": n_chunks,
                          "computed_chunks": computed[0]}
                atomic_bytes(out.progress / f"shard-{args.shard[0]}-of-{args.shard[1]}.json",
                             dumps(marker).encode(), out.tmp)
                print(f"shard {args.shard[0]}/{args.shard[1]}: computed {computed[1]} items in {computed[0]} "
                      f"chunks of {n_chunks} ({time.perf_counter() - began:.1f} s); when every shard is done, "
                      "run the same command with --merge instead of --shard")
                return 0
        manifest = assemble(out, n_chunks, state)
    except (PrepareError, SidecarError) as e:
        print(f"deepmolm-prepare: error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - began
    print(summary(manifest))
    rate = computed[1] / seconds if seconds > 0 else 0.0
    print(f"processed {computed[1]} items in {computed[0]} chunks now ({n_chunks - computed[0]} chunks were already "
          f"done) in {seconds:.1f} s, {rate:.1f} items/s -> {out.root}")
    return 0 if manifest["counts"]["records"] else 1


def merge_chunks(out: Output) -> int:
    """The chunk count for --merge, from the shards' markers; every chunk must be there."""
    markers = [json.loads(p.read_text()) for p in sorted(out.progress.glob("shard-*-of-*.json"))]
    markers = [m for m in markers if m["run"] == out.run_id]
    if not markers:
        raise PrepareError(f"--merge: no finished shard in {out.progress}; run the --shard I/N jobs first")
    counts = {m["chunks"] for m in markers}
    if len(counts) != 1:
        raise PrepareError(f"--merge: shards saw different inputs ({sorted(counts)} chunks)")
    n_chunks = counts.pop()
    missing = sorted(set(range(n_chunks)) - out.committed())
    if missing:
        n = markers[0]["shard"][1]
        shards = sorted({c % n for c in missing})
        raise PrepareError(f"--merge: {len(missing)} chunks are not committed (shards {shards} of {n} are "
                           "unfinished); rerun those shards, or run without --shard/--merge to compute them here")
    return n_chunks


if __name__ == "__main__":
    from deepmolm_plugin.data.prepare import main as _main  # workers unpickle functions by the module's real name

    sys.exit(_main())
