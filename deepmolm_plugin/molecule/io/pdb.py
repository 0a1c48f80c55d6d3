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

RDKit is given the first MODEL only, with the CONECT records outside the models moved into it:
it reads none after ENDMDL, where the wwPDB writes them (``_first_model``). Atom lines must
hold an element symbol in columns 77-78, unless the atom name gives it without doubt, and a
charge, if any, in the PDB's form (``1-``) in columns 79-80 (``_check_atom_lines``): RDKit
guessed blank elements from the atom name (HG11 read as mercury) and read ``-1`` as +1,
without a word.
"""

from __future__ import annotations

import itertools
import re
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


# every element symbol RDKit knows, as a PDB element column may write it, and D and T (RDKit
# reads them as hydrogen isotopes)
_ELEMENTS = {Chem.GetPeriodicTable().GetElementSymbol(z).upper() for z in range(1, 119)} | {"D", "T"}
_CHARGE = re.compile(r"[1-9][+-]")  # the PDB's form, digit then sign; blank is neutral
_NEUTRAL = re.compile(r"0[+-]?")  # a zero, as some writers put it: neutral, as RDKit reads it


def _named_element(line: str) -> bool:
    """Whether the atom name gives the element by the PDB's rule without doubt, as RDKit reads
    it: one letter in column 14 after a blank or a digit in column 13 (` CA `, `1HG1`); a
    two-letter element alone in columns 13-14 (`CL  `, `ZN  `: GROMACS starts a name in column
    13 when it is the element); and, in an ATOM record, `H` then a capital in columns 13-14
    (`HG11`, `HN  `: CHARMM's and GROMACS' hydrogens, which RDKit reads as hydrogen there).
    Anything else with letters in columns 13 and 14 may be a two-letter element or a long name
    (in a HETATM record RDKit read HG11 as mercury, HE21 as helium; CD1 as cadmium anywhere)."""
    name = line[12:16]
    if name[0] in " 0123456789" and name[1] in _ELEMENTS:
        return True
    if name[2:] == "  " and name[:2].strip().upper() in _ELEMENTS and name[0] != " ":
        return True
    return line.startswith("ATOM") and name[0] == "H" and name[1].isupper()


def _atom_line_problem(line: str) -> Optional[str]:
    """Why an ATOM/HETATM line's element (columns 77-78) or charge (79-80) cannot be read as
    written, or None. RDKit took a blank element from the atom name (``_named_element``), a
    lower-case one by its first letter (`cl` as carbon), and a charge by its own rule (`-1`
    read as +1, `10` as 0), without a word."""
    atom = f"{_record_name(line)} of atom {line[12:16].strip()!r}"
    element = line[76:78].strip()
    if not element and not _named_element(line):
        return (f"{atom} leaves the element columns (77-78) blank, and its name does not give the element (one "
                "letter in column 14 after a blank or a digit, or a two-letter element alone in columns 13-14): "
                "RDKit would guess it from the name (CD1 read as cadmium, and in a HETATM record HG11 as mercury); "
                "fill columns 77-78 with the element symbol")
    if element and (not re.fullmatch(r"[A-Z][A-Za-z]?", element) or element.upper() not in _ELEMENTS):
        return (f"{atom} has {line[76:78]!r} in the element columns (77-78), not an element symbol: write the "
                "element symbol there, right-justified")
    charge = line[78:80].strip()
    if charge and not _CHARGE.fullmatch(charge) and not _NEUTRAL.fullmatch(charge):
        return (f"{atom} has {line[78:80]!r} in the charge columns (79-80), not the PDB's form, a digit then the "
                "sign ('1-', '2+'), which RDKit would misread ('-1' as +1): write it so, or leave the columns blank")
    return None


def _check_atom_lines(lines: list[str], id: str) -> None:
    """A ``MoleculeError`` for the first atom line of the first MODEL (what RDKit reads) whose
    element or charge columns cannot be read as written (``_atom_line_problem``), naming its line."""
    for n, line in enumerate(lines, 1):
        if line.startswith("ENDMDL"):
            return
        problem = line.startswith(("ATOM", "HETATM")) and _atom_line_problem(line)
        if problem:
            raise MoleculeError(id, f"line {n}: {problem}")


def _first_model(lines: list[str]) -> str:
    """The text RDKit is given: the first MODEL, with the CONECT records outside the other
    models moved inside it, before its ENDMDL. RDKit reads no CONECT record after ENDMDL,
    where the wwPDB writes them once for all models: the file lost every bond and was refused
    as one that "left out bonds". The other models are left out (RDKit would read their
    CONECT records too, each bond again, as a double bond)."""
    kept, conect, models, inside = [], [], 0, False
    for line in lines:
        if line.startswith("MODEL"):
            models, inside = models + 1, True
        other = inside and models > 1
        if line.startswith("ENDMDL"):
            inside = False
        if not other:
            (conect if line.startswith("CONECT") else kept).append(line)
    end = next((n for n, line in enumerate(kept) if line.startswith("ENDMDL")), len(kept))
    return "\n".join(kept[:end] + conect + kept[end:]) + "\n"


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
        _check_atom_lines(lines, id)
        if any(line.startswith("MODEL") for line in lines):
            text = _first_model(lines)
        with rdkit_messages() as messages:
            mol = Chem.MolFromPDBBlock(text, sanitize=False, removeHs=False, proximityBonding=False)
        if mol is None or mol.GetNumAtoms() == 0:
            _alternate_locations(lines, id)  # atoms in locations B and C only: RDKit read none of them
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
