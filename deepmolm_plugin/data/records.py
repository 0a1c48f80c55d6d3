"""Molecule fields of a host training record -> model inputs.

A record is the host's JSON (`id`, `image`, `conversations`) plus one molecule field:

- `molecule_fp`: inline tokens, a list of [atoms][levels] integer hashes (-1 = none), or
  a reference into a sidecar file, `{"sidecar": "fp/train.npy", "offset": 123, "atoms": 17}`
  (`deepmolm_plugin.data.sidecar`; the path is relative to `record_folder`, the folder of
  the record file), as `deepmolm-prepare` writes them;
- `structure`: a structure file (SDF/MOL/MOL2/XYZ/PDB, one molecule) under
  `--structure_folder`, fingerprinted with the `--conformer_policy` 3D policy;
- `smiles`: a SMILES string; a conformer is generated (ETKDGv3 + MMFF, seeded).

A record with a molecule but no `image` gets its depiction rendered once, with the one
rendering function (`render_molecule`), into the render folder under a name made of a
digest of the molecule source (SMILES, or structure file bytes and 3D policy) and the
render settings, so records of one molecule share it; the record points at it. Every failure is a RecordError that names the record and the reason.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from pathlib import Path
from typing import Optional

import torch

from ..molecule import MoleculeError, fingerprint_record, molecule_from_smiles, read_structures, render_molecule
from .sidecar import SidecarError, SidecarFiles, is_reference

MOLECULE_FIELDS = ("molecule_fp", "structure", "smiles")
RENDER_SIZE = 1024  # DeepMoLM's depictions; the image processor resizes to the tower's input size


class RecordError(ValueError):
    def __init__(self, record_id: str, reason: str):
        super().__init__(f"record {record_id!r}: {reason}")
        self.record_id, self.reason = record_id, reason


def record_id(record: dict, index: int) -> str:
    return str(record.get("id", f"#{index}"))


class MoleculeInputs:
    """Turns records' molecule fields into `molecule_fp` tensors and depictions."""

    def __init__(self, structure_folder: Optional[str] = None, policy: str = "auto",
                 fp_bits: int = 4096, fp_levels: int = 4, render_folder: Optional[str] = None,
                 record_folder: Optional[str] = None):
        self.structure_folder = structure_folder
        self.record_folder = record_folder
        self._sidecars = SidecarFiles(record_folder)
        self.policy = policy
        self.fp_bits, self.fp_levels = fp_bits, fp_levels
        self.render_folder = render_folder
        self._cache: dict = {}  # record id -> tokens: conformers are deterministic, so once per record

    @staticmethod
    def has_molecule(record: dict) -> bool:
        return any(record.get(f) not in (None, "") for f in MOLECULE_FIELDS)

    def molecule_fp(self, record: dict, rid: str) -> torch.Tensor:
        """(atoms, levels) int64 tokens of the record's molecule (computed once per record;
        sidecar rows are read each time: a memory-mapped slice is cheaper than a cache
        holding every molecule of an epoch in each dataloader worker)."""
        if is_reference(record.get("molecule_fp")):
            return self._compute(record, rid)
        if rid not in self._cache:
            self._cache[rid] = self._compute(record, rid)
        return self._cache[rid]

    def _compute(self, record: dict, rid: str) -> torch.Tensor:
        try:
            if is_reference(record.get("molecule_fp")):
                return self._sidecar(record["molecule_fp"], rid)
            if record.get("molecule_fp") is not None:
                return self._inline(record["molecule_fp"], rid)
            return fingerprint_record(self._molecule(record, rid), bits=self.fp_bits, level=self.fp_levels - 1)
        except MoleculeError as e:
            raise RecordError(rid, e.reason if hasattr(e, "reason") else str(e)) from e

    def _sidecar(self, ref: dict, rid: str) -> torch.Tensor:
        try:
            rows = self._sidecars.rows(ref, self.fp_levels)
        except SidecarError as e:
            raise RecordError(rid, str(e)) from e
        return self._checked(torch.from_numpy(rows.astype("int64")), rid)

    def _inline(self, value, rid: str) -> torch.Tensor:
        try:
            tokens = torch.tensor(value, dtype=torch.long)
        except (TypeError, ValueError) as e:
            raise RecordError(rid, f"molecule_fp is not a list of integer rows: {e}") from e
        return self._checked(tokens, rid)

    def _checked(self, tokens: torch.Tensor, rid: str) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] != self.fp_levels or tokens.shape[0] == 0:
            raise RecordError(rid, f"molecule_fp must be [atoms][{self.fp_levels}], got shape {list(tokens.shape)}")
        bad = (tokens < -1) | (tokens >= self.fp_bits)
        if bad.any():
            raise RecordError(rid, f"molecule_fp holds hashes outside [-1, {self.fp_bits}): {tokens[bad][:5].tolist()}")
        if (tokens == -1).all():
            raise RecordError(rid, "molecule_fp has no valid token (all -1)")
        return tokens

    def _structure_path(self, record: dict, rid: str) -> Path:
        path = Path(record["structure"])
        if not path.is_absolute():
            if self.structure_folder is None:
                raise RecordError(rid, f"structure {path} is relative but --structure_folder is not set")
            path = Path(self.structure_folder) / path
        if not path.is_file():
            raise RecordError(rid, f"structure file {path} does not exist")
        return path

    def _molecule(self, record: dict, rid: str):
        if record.get("structure"):
            path = self._structure_path(record, rid)
            records = list(read_structures(path, policy=self.policy, errors="raise"))
            if len(records) != 1:
                raise RecordError(rid, f"structure file {path} holds {len(records)} molecules, expected 1")
            return records[0]
        if record.get("smiles"):
            policy = "generate" if self.policy == "from-file" else self.policy
            return molecule_from_smiles(record["smiles"], id=rid, policy=policy)
        raise RecordError(rid, f"no molecule field ({', '.join(MOLECULE_FIELDS)})")

    def ensure_image(self, record: dict, rid: str) -> None:
        """Render the depiction of a record that has a molecule but no image (once)."""
        if record.get("image") or not self.has_molecule(record):
            return
        if self.render_folder is None:
            raise RecordError(rid, "has no image and no render folder is set")
        # The file is named by what is drawn, not by the record: records about one molecule
        # share one depiction, and an edited SMILES or structure never reuses a stale one.
        if record.get("smiles"):
            content = b"smiles:" + record["smiles"].encode()
        elif record.get("structure"):
            content = b"structure:" + self.policy.encode() + b":" + self._structure_path(record, rid).read_bytes()
        else:
            raise RecordError(rid, "has no image, and inline molecule_fp cannot be drawn: add `image` or `smiles`")
        digest = hashlib.sha256(content + f":render_molecule:{RENDER_SIZE}".encode()).hexdigest()[:32]
        path = Path(self.render_folder) / f"{digest}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                source = record["smiles"] if record.get("smiles") else self._molecule(record, rid)
                image = render_molecule(source, size=RENDER_SIZE, id=rid)
            except MoleculeError as e:
                raise RecordError(rid, f"cannot render a depiction: {e}") from e
            tmp = path.with_suffix(f".tmp{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.png")
            image.save(tmp)
            os.replace(tmp, path)  # atomic: a killed run leaves no half-written image
        record["image"] = str(path.resolve())
