"""PDB reader (``.pdb``): one molecule per file (the first MODEL), read whole.

Bonds and bond orders come from the CONECT records (RDKit writes a double bond as a
repeated CONECT pair). CONECT records that repeat no pair may hold no bond orders (the
wwPDB and most programs write each bond once): RDKit read every bond as single and filled
the valences with implicit hydrogens (paracetamol became a cyclohexane). So when such
single bonds leave any atom short (it gets implicit hydrogens), the file, like one
without CONECT records, gets its bonds perceived from the coordinates later, as for XYZ
(all hydrogens needed), with the total of the file's formal charges. A file with several
MODELs gives the first, with a note. Id: the title RDKit reads (COMPND or HEADER), else
``file#0``.
"""

from __future__ import annotations

from typing import Iterator

from rdkit import Chem

from ..errors import MoleculeError, as_notes, rdkit_messages, with_messages
from ..sanitize import sanitize
from .base import ParsedStructure, check_ascii, register_reader, title_of

__all__ = ["read_pdb"]

_FIXED = ("ATOM", "HETATM", "CONECT", "MODEL")  # fixed-column records RDKit reads (titles may be any text)


def _has_bond_orders(conect: list[str]) -> bool:
    """Whether a CONECT record names a partner twice (a double bond); serials are 5 columns wide."""
    for line in conect:
        partners = [line[i : i + 5].strip() for i in range(11, len(line.rstrip()), 5)]
        partners = [p for p in partners if p]
        if len(set(partners)) < len(partners):
            return True
    return False


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
        models = sum(line.startswith("MODEL") for line in lines)
        if models > 1:
            notes.append(f"file has {models} MODELs: used the first")
        conect = [line for line in lines if line.startswith("CONECT")]
        if conect:
            notes += sanitize(mol, id)
            # Without a repeated pair, single bonds are right only if they and the file's
            # hydrogens fill every valence: an atom RDKit gives implicit H lost a bond order.
            if _has_bond_orders(conect) or not any(a.GetNumImplicitHs() for a in mol.GetAtoms()):
                yield ParsedStructure(0, id, mol=mol, notes=notes)
                return
            notes.append("CONECT records hold no bond orders (no repeated pair) and leave atoms short of "
                         "bonds: bonds perceived from coordinates")
    except MoleculeError as error:
        yield ParsedStructure(0, error.id, error=error)
        return
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    coords = mol.GetConformer().GetPositions()  # [N, 3], the first MODEL
    yield ParsedStructure(0, id, elements=elements, coords=coords, notes=notes,
                          charge=sum(a.GetFormalCharge() for a in mol.GetAtoms()))
