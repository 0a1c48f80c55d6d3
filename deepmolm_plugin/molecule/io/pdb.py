"""PDB reader (``.pdb``): one molecule per file (the first MODEL), read whole.

Bonds and bond orders come from the CONECT records (RDKit writes a double bond as a
repeated CONECT pair); a PDB without CONECT records gets its bonds perceived from the
coordinates later, as for XYZ, with the total of the file's formal charges. Id: the
title RDKit reads (COMPND or HEADER), else ``file#0``.
"""

from __future__ import annotations

from typing import Iterator

from rdkit import Chem

from ..errors import MoleculeError, as_notes, rdkit_messages, with_messages
from ..sanitize import sanitize
from .base import ParsedStructure, check_ascii, register_reader, title_of

__all__ = ["read_pdb"]

_FIXED = ("ATOM", "HETATM", "CONECT", "MODEL")  # fixed-column records RDKit reads (titles may be any text)


@register_reader(".pdb")
def read_pdb(handle, name: str) -> Iterator[ParsedStructure]:
    text = handle.read()
    id = f"{name}#0"
    try:
        lines = text.splitlines()
        check_ascii([line if line.startswith(_FIXED) else "" for line in lines], id, "atom or CONECT records")
        with rdkit_messages() as messages:
            mol = Chem.MolFromPDBBlock(text, sanitize=False, removeHs=False, proximityBonding=False)
        if mol is None or mol.GetNumAtoms() == 0:
            raise MoleculeError(id, with_messages("no atoms read from PDB", messages))
        id = title_of(mol, id)
        notes = as_notes(messages)
        if any(line.startswith("CONECT") for line in lines):
            notes += sanitize(mol, id)
            yield ParsedStructure(0, id, mol=mol, notes=notes)
            return
    except MoleculeError as error:
        yield ParsedStructure(0, error.id, error=error)
        return
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    coords = mol.GetConformer().GetPositions()  # [N, 3]
    yield ParsedStructure(0, id, elements=elements, coords=coords, notes=notes,
                          charge=sum(a.GetFormalCharge() for a in mol.GetAtoms()))
