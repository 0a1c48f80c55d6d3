"""Test helper: one structure file's one record, as `read_structures` gives it."""

from __future__ import annotations

from pathlib import Path

from deepmolm_plugin.molecule import read_structures
from deepmolm_plugin.molecule.errors import MoleculeError


def read_one(tmp_path: Path, text: str, name: str = "m.sdf"):
    """The one record of ``text``, written to ``tmp_path / name``: a record or a MoleculeError."""
    path = tmp_path / name
    path.write_text(text)
    records = list(read_structures(str(path)))
    assert len(records) == 1
    return records[0]


def accepted(record):
    """``record``, asserted to be no MoleculeError."""
    assert not isinstance(record, MoleculeError), record
    return record
