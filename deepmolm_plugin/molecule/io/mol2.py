"""Tripos MOL2 reader (``.mol2``): records start at ``@<TRIPOS>MOLECULE``; read whole.

Id: the molecule name (the line after ``@<TRIPOS>MOLECULE``), else ``file#index``. Text
before the first record other than ``#`` comments is an error for the file.
"""

from __future__ import annotations

import re
from typing import Iterator

from rdkit import Chem

from ..errors import MoleculeError, as_notes, rdkit_messages, with_messages
from ..sanitize import sanitize
from .base import ParsedStructure, register_reader

__all__ = ["read_mol2"]


@register_reader(".mol2")
def read_mol2(handle, name: str) -> Iterator[ParsedStructure]:
    blocks = re.split(r"(?m)^(?=@<TRIPOS>MOLECULE)", handle.read())
    head, blocks = blocks[0], blocks[1:]
    if head.strip() and not head.lstrip().startswith("#"):
        id = f"{name}#header"
        yield ParsedStructure(None, id, error=MoleculeError(id, "text before the first @<TRIPOS>MOLECULE"))
    for i, block in enumerate(blocks):
        lines = block.splitlines()
        id = lines[1].strip() if len(lines) > 1 and lines[1].strip() else f"{name}#{i}"
        with rdkit_messages() as messages:
            mol = Chem.MolFromMol2Block(block, sanitize=False, removeHs=False)
        try:
            if mol is None:
                raise MoleculeError(id, with_messages("unparseable MOL2 record", messages))
            notes = as_notes(messages) + sanitize(mol, id)
            if mol.GetNumConformers() == 0:
                raise MoleculeError(id, "record has no coordinates")
        except MoleculeError as error:
            yield ParsedStructure(i, id, error=error)
        else:
            yield ParsedStructure(i, id, mol=mol, notes=notes)
