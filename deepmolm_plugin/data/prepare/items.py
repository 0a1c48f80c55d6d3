"""One item -> one record (molecule, E3FP tokens, depiction, conversation) or a failure.
This runs in the worker processes, so `_init_worker` and `_work` stay at module top level
(picklable by their real names); nothing here knows about chunks, resume or the output
folder beyond writing content-addressed images."""

from __future__ import annotations

import hashlib
import io
import math
import os
import signal
import traceback
import warnings
import zlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from ...molecule import EMBED_TIMEOUT, MAX_ATOMS
from ...molecule.inputs import InputError, InputResolver, Limits, OutputWriteError, write_depiction
from ...processes import HeldInterrupts, die_with_parent
from ...molecule.sidecar import dtype_for
from ...molecule_fp import DEEPMOLM, FingerprintSettings
from ..prompts import conversation, instruction_for, is_known_task
from ..sources.base import MoleculeSpec, SourceError, SourceItem, split_problem
from .common import dumps, writing

FP_BITS, FP_LEVELS = DEEPMOLM.bits, DEEPMOLM.levels


@dataclass(frozen=True)
class WorkSettings:
    out: str
    tmp: str
    input_root: str
    policy: str
    image_size: int
    bits: int = FP_BITS
    levels: int = FP_LEVELS
    max_atoms: Optional[int] = MAX_ATOMS  # heavy atoms per molecule; None: no cap
    embed_timeout: Optional[float] = EMBED_TIMEOUT  # seconds per conformer embedding

    def __post_init__(self):
        # Absolute, since the resolver reads a relative structure path against input_root:
        # with a relative --out, every SDF record's one-record file under `tmp` was looked
        # for inside the input folder, and every record failed ("does not exist").
        for name in ("out", "tmp", "input_root"):
            object.__setattr__(self, name, os.path.abspath(getattr(self, name)))


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
    `read_structures` counts them (`molecule.io.sdf_blocks`).
    """

    def __init__(self):
        self.path: Optional[str] = None
        self.blocks: Optional[Iterator[str]] = None
        self.handle = None
        self.next_index = 0

    def block(self, path: str, index: int) -> Optional[str]:
        from ...molecule.io import sdf_blocks

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
        # The one input resolver, without its caches (this maker keeps a small one of its own).
        self.resolver = InputResolver(FingerprintSettings(settings.bits, settings.levels), policy=settings.policy,
                                      structure_folder=settings.input_root, kind="molecule", cache=False,
                                      render_size=settings.image_size,
                                      limits=Limits(dict(max_atoms=settings.max_atoms, embed_timeout=settings.embed_timeout),
                                                    cap_from="--max-atoms"))  # its refusal names this tool's option
        self.cache: "OrderedDict[tuple, object]" = OrderedDict()
        self.sdf = SdfCursor()
        self.tmp = Path(settings.tmp) / f"w{os.getpid()}"

    # -- the item -----------------------------------------------------------------------
    def make(self, item) -> Made:
        if isinstance(item, SourceError):
            return Made(failure={"id": str(item.id), "stage": str(item.stage), "reason": str(item.reason)})
        check_contract(item)
        stage = "answer"
        try:
            turns = self._conversation(item)
            stage = "properties"
            properties = self._properties(item)
            stage = "molecule"
            mol_record, tokens, smiles = self._molecule(item)
            stage = "image"
            image = self._image(item, mol_record)
        except Failed as e:
            return Made(failure={"id": item.id, "stage": e.stage, "reason": e.reason})
        except OutputWriteError:  # --out cannot be written (a full disk): the run stops, the record is redone
            raise
        except Exception as e:  # noqa: BLE001 - the one place: whatever one record raises is its failure line
            return Made(failure={"id": item.id, "stage": stage, "reason": unexpected(e)})
        record = {"id": item.id, "image": image, "conversations": turns, "task": item.task, "smiles": smiles}
        if not item.image:  # drawn here: the molecule it draws is filled in at assembly (`output.write_outputs`)
            record["depiction"] = {"image": image}
        if properties:
            record["properties"] = properties
        if item.metric is not None:  # eval.questions copies it: how the report scores the question
            record["metric"] = item.metric
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
            return conversation(instruction, item.answer)  # it trims both (`prompts.trimmed`)
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
        key = molecule_key(item.molecule) + (self.s.policy,)
        if key not in self.cache:
            try:
                try:
                    built = self._build(item.molecule)
                except InputError as e:
                    raise Failed("molecule", e.reason) from e
                try:
                    tokens = self.resolver.fingerprint(built, built.id).numpy()
                except InputError as e:
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
        id = molecule_name(spec)
        if spec.structure is None:
            return self.resolver.molecule(spec_fields(spec), id)
        path, index = self.resolve(spec.structure[0]), int(spec.structure[1])
        if path.suffix.lower() in (".sdf", ".sd", ".mol") and path.is_file():
            # One record's text, taken by the cursor and read from a one-record file.
            block = self.sdf.block(str(path), index)
            if block is None:
                raise InputError(id, f"{path} has no record {index}", "molecule")
            one = self.tmp / f"record{path.suffix.lower()}"
            with writing(one):  # under --out: a full disk is the run's error, not this record's
                self.tmp.mkdir(parents=True, exist_ok=True)
                one.write_text(block.rstrip("\n") + "\n$$$$\n", encoding="utf-8")
            found = self.resolver.molecule({"structure": str(one)}, id)
        else:  # MOL2 / XYZ / PDB: usually one molecule per file; re-read per record
            found = self.resolver.molecule({"structure": str(path), "structure_index": index}, id)
        return replace(found, id=id, source=f"{path}#{index}")

    def resolve(self, name) -> Path:
        path = Path(name)
        return path if path.is_absolute() else Path(self.s.input_root) / path

    # -- depiction ----------------------------------------------------------------------
    def _image(self, item: SourceItem, mol_record) -> str:
        from PIL import UnidentifiedImageError

        if item.image:
            path = self.resolve(item.image)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise Failed("image", f"cannot copy image {path}: {e.strerror or e}") from e
            try:
                decode_image(data, str(path))
            except UnidentifiedImageError as e:
                raise Failed("image", f"cannot copy image {path}: not an image") from e
            except _image_errors() as e:
                raise Failed("image", f"cannot copy image {path}: {type(e).__name__}: {e}") from e
            return self._store(data, path.suffix.lower() or ".png")
        key = molecule_key(item.molecule) + ("image", self.s.image_size)
        if key not in self.cache:
            spec = item.molecule
            # What is drawn is the resolver's rule (InputResolver.drawn_molecule: the SMILES when
            # there is one, else the built molecule), so a prepared record's picture is the one
            # training and eval draw from the same fields (an atom list with a SMILES was drawn
            # from the atoms here and from the SMILES there).
            try:
                image = self.resolver.depiction(spec_fields(spec), molecule_name(spec), molecule=mol_record)
            except InputError as e:
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
        if not target.is_file():  # durable: on disk before the chunk that names it commits
            # a write error is an OutputWriteError (`make` lets it stop the run)
            write_depiction(data, target, durable=True, tmp_folder=self.tmp)
        return relative


def _image_errors() -> tuple:
    """What a damaged picture raises while Pillow decodes it (evaluated only when one does)."""
    from PIL import Image

    # SyntaxError: a PNG chunk with a bad checksum; the bomb warning is made an error below.
    return (OSError, SyntaxError, EOFError, ValueError, zlib.error, Image.DecompressionBombError,
            Image.DecompressionBombWarning)


def decode_image(data: bytes, label: str) -> None:
    """Decode the whole picture now, at preparation, not in a training data loader hours later.

    ``verify()`` checks only the file's structure and chunk checksums: a truncated stream
    or damaged compressed data passes it and fails only in ``load()``. Pillow's
    decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is an error here, not a warning:
    such a picture would cost the loader gigabytes for one record. A picture the training
    loader would refuse as read by the host as another picture (an EXIF orientation,
    transparency over a dark colour, 16-bit grey, CIELAB: ``check_host_reads_alike``) is
    refused here too, not when training reads it.
    """
    from PIL import Image

    from ...encoder.image_processor import check_host_reads_alike

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            check_host_reads_alike(image, label)
            image.load()


def unexpected(error: Exception) -> str:
    """The reason for an exception no stage anticipated (a library bug or limit, a corrupt
    input it chokes on): its type, message and the innermost frames that raised it, so the
    failures file alone is enough to report it (file names without folders: the same text
    on every machine, whichever process made the record)."""
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"unexpected {type(error).__name__}: {error} (at {where})"


def spec_fields(spec: MoleculeSpec) -> dict:
    """A source's molecule as the input resolver's fields."""
    if spec.structure is not None:
        return {"structure": str(spec.structure[0]), "structure_index": int(spec.structure[1])}
    if spec.atoms is not None:
        return {"atoms": spec.atoms, "coordinates": spec.coordinates, "smiles": spec.smiles, "charge": spec.charge}
    return {"smiles": spec.smiles}


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
    if split_problem(item.split):
        raise ValueError(f"reader bug: item {item.id!r}: {split_problem(item.split)} (a reader checks the "
                         "splits that come from the data with sources.base.split_problem)")
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
    die_with_parent()
    # Ctrl-C reaches the whole process group: the parent stops the run (and says so once);
    # each worker printed a KeyboardInterrupt traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if isinstance(signal.getsignal(signal.SIGTERM), HeldInterrupts):  # forked while a pool started: the default again
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if pool_worker:
        import torch

        torch.set_num_threads(1)  # one process per core: no oversubscription
    _MAKER = ItemMaker(settings)


def _work(batch: list) -> List[Made]:
    return [_MAKER.make(item) for item in batch]


def _work_alone(send, settings: WorkSettings, item) -> None:
    """One item in a fresh process of its own (after a pool worker died): the outcome goes
    back through the pipe ``send``. If this process dies too, the parent sees the pipe
    close without a message and knows the item itself kills its process. An exception
    (a reader breaking the contract) is sent back to be raised in the parent, as a pool
    would."""
    _init_worker(settings)
    try:
        outcome = ("made", _MAKER.make(item))
    except Exception as e:  # noqa: BLE001 - not swallowed: re-raised by the parent
        outcome = ("error", e)
    send.send(outcome)
    send.close()
