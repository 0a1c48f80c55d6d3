"""CSV reader (``.csv``): a table with a SMILES column, streamed.

Column ``smiles`` (any case) is required; a file without it is one error naming the
columns it has. Id from the first of the columns ``id, name, cid, compound_id`` (any
case) that the file has; a blank id there, or no such column, gives ``file#row``
(0-based data rows). A short row has an empty
SMILES, which fails that record. No coordinates: the 3D policy generates them.
"""

from __future__ import annotations

import csv
from typing import Iterator

from ..errors import MoleculeError
from .base import ParsedStructure, register_reader

__all__ = ["read_csv"]

ID_COLUMNS = ("id", "name", "cid", "compound_id")  # first present wins, any case


@register_reader(".csv", newline="")  # newline="": the csv module handles line ends
def read_csv(handle, name: str) -> Iterator[ParsedStructure]:
    reader = csv.DictReader(handle)
    columns = {c.lower(): c for c in reader.fieldnames or []}
    if "smiles" not in columns:
        error = MoleculeError(name, f"CSV has no 'smiles' column (columns: {reader.fieldnames})")
        yield ParsedStructure(None, name, error=error)
        return
    id_column = next((columns[c] for c in ID_COLUMNS if c in columns), None)
    for i, row in enumerate(reader):
        id = (row.get(id_column) or "").strip() if id_column else ""
        yield ParsedStructure(i, id or f"{name}#{i}", smiles=row[columns["smiles"]] or "")
