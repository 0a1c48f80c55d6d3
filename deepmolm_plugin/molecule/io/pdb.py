"""PDB reader (``.pdb``): one molecule per file (the first MODEL), read whole.

Bonds and bond orders come from the CONECT records (RDKit writes a double bond as a
repeated CONECT pair). CONECT records that repeat no pair may hold no bond orders (the
wwPDB and most programs write each bond once): RDKit read every bond as single and filled
the valences with implicit hydrogens (paracetamol became a cyclohexane). So when such
single bonds leave any atom short (it gets implicit hydrogens), or when CONECT records
with a repeated pair leave an atom short beside the file's hydrogen atoms
(``base.short_beside_hydrogens``), the file, like one without CONECT records, gets its
bonds perceived from the coordinates later, as for XYZ
(all hydrogens needed), with the total of the file's formal charges. A file with several
MODELs gives the first, with a note; so do alternate locations (RDKit reads blank and
`A`; an atom none of whose locations is `A` is an error, RDKit dropped it). Id: the title
RDKit reads (COMPND or HEADER), else ``file#0``.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Optional

from rdkit import Chem

from ..errors import MoleculeError, as_notes, rdkit_messages, with_messages
from ..sanitize import sanitize
from .base import (ParsedStructure, atoms_named, check_ascii, check_control, register_reader,
                   short_beside_hydrogens, title_of)

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


def _lost_orders(mol: Chem.Mol, conect: list[str]) -> Optional[str]:
    """Why the CONECT records' bonds cannot be trusted, or None. Without a repeated pair,
    single bonds are right only if they and the file's hydrogens fill every valence: an atom
    RDKit gives implicit H lost a bond order. With one, an atom short of bonds beside the
    file's hydrogen atoms (``base.short_beside_hydrogens``) lost one all the same: a writer
    that repeats only some double bonds (was: one repeated C=O pair made the whole file
    trusted, and the aromatic ring of benzoic acid became a cyclohexane)."""
    if not _has_bond_orders(conect):
        if any(a.GetNumImplicitHs() for a in mol.GetAtoms()):
            return "CONECT records hold no bond orders (no repeated pair) and leave atoms short of bonds"
        return None
    suspect = short_beside_hydrogens(mol)
    if suspect:
        return (f"CONECT records leave {atoms_named(suspect, mol)} short of bonds although the file gives "
                "hydrogen atoms (bond orders lost)")
    return None


def _alternate_locations(lines: list[str], id: str) -> list[str]:
    """A note on the atom lines RDKit leaves out for their alternate-location indicator
    (column 17: it reads blank and `A` only), or a ``MoleculeError`` for an atom none of
    whose locations is `A`: RDKit dropped it without a word (alanine read without its N)."""
    first_model = itertools.takewhile(lambda line: not line.startswith("ENDMDL"), lines)
    located: dict[tuple, list[str]] = {}  # (atom name, residue, chain, residue number) -> locations
    for line in first_model:
        if line.startswith(("ATOM", "HETATM")) and len(line) > 16 and line[16] != " ":
            located.setdefault((line[12:16].strip(), line[17:20].strip(), line[21:22].strip(), line[22:27].strip()),
                               []).append(line[16])
    lost = [key for key, locations in located.items() if "A" not in locations]
    if lost:
        shown = ", ".join(f"{key[0]} ({key[1]} {key[3]}: locations {', '.join(located[key])})" for key in lost[:5])
        raise MoleculeError(id, f"atoms with alternate locations but none marked A, which is the one read: {shown}; "
                                "keep one location per atom (blank or A)")
    others = [loc for locations in located.values() for loc in locations if loc != "A"]
    if not others:
        return []
    shown = ", ".join(sorted(set(others)))
    return [f"alternate locations {shown}: used location A ({len(others)} atom lines left out)"]


def _record_name(line: str) -> str:
    """'the HETATM record', for messages; 'a PDB record' when the name is itself damaged."""
    word = line[:6].strip()
    return f"the {word} record" if word.isalnum() else "a PDB record"


@register_reader(".pdb", capped=True)
def read_pdb(handle, name: str, max_heavy: Optional[int] = None) -> Iterator[ParsedStructure]:
    text = handle.read()
    id = f"{name}#0"
    try:
        # a NUL in a title became the id; in the file's first 64 KiB it refused the file
        raw = text.split("\n")  # at LF only (`check_control`)
        check_control(raw, id, lambda n: _record_name(raw[n - 1]))
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
        notes += _alternate_locations(lines, id)
        conect = [line for line in lines if line.startswith("CONECT")]
        if conect:
            notes += sanitize(mol, id, max_heavy)
            lost = _lost_orders(mol, conect)
            if lost is None:
                yield ParsedStructure(0, id, mol=mol, notes=notes)
                return
            notes.append(f"{lost}: bonds perceived from coordinates")
    except MoleculeError as error:
        yield ParsedStructure(0, error.id, error=error)
        return
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    coords = mol.GetConformer().GetPositions()  # [N, 3], the first MODEL
    yield ParsedStructure(0, id, elements=elements, coords=coords, notes=notes,
                          charge=sum(a.GetFormalCharge() for a in mol.GetAtoms()))
