"""Tripos MOL2 reader (``.mol2``): records start at ``@<TRIPOS>MOLECULE``; read whole.

Id: the molecule name (the line after ``@<TRIPOS>MOLECULE``), else ``file#index``. Text
before the first record other than ``#`` comments is an error for the file.

Two things RDKit's MOL2 reader does silently fail the record here:

- it reads as many atom and bond lines as the counts line says and ignores the rest (an
  atom count one short turned ethanol into ethoxide), so the counts must match the
  ``@<TRIPOS>ATOM`` and ``@<TRIPOS>BOND`` lines;
- it adds no hydrogens: an atom short of its hydrogens (heavy-atom or polar-hydrogen-only
  files, as docking tools write) becomes a radical, and without any hydrogen it guesses
  charges (ethanol read as ``[C][C][O-]``). MOL2 cannot mark radicals, so a radical, or a
  charge guessed without hydrogens, is an error; one beside the file's hydrogen atoms names
  the bond orders the file lost (``base.check_hydrogens_kept``, the SDF and PDB readers' rule).
"""

from __future__ import annotations

import re
from typing import Iterator, Optional

from rdkit import Chem

from ..errors import MoleculeError, as_notes, atom_names, rdkit_messages, with_messages
from ..sanitize import sanitize
from .base import ParsedStructure, check_control, check_hydrogens_kept, register_reader

__all__ = ["read_mol2"]


def _check_counts(block: str, id: str) -> None:
    """The counts line (line 3) against the ATOM and BOND section lines."""
    lines = block.splitlines()
    found = {"ATOM": 0, "BOND": 0}
    section = None
    for line in lines:
        if line.startswith("@<TRIPOS>"):
            section = line.strip()[len("@<TRIPOS>"):].upper()
        elif section in found and line.strip() and not line.lstrip().startswith("#"):
            found[section] += 1
    counts = lines[2].split()[:2] if len(lines) > 2 else []
    for what, said in zip(("ATOM", "BOND"), counts):
        if said.isdigit() and int(said) != found[what]:
            raise MoleculeError(id, f"counts line says {said} {what.lower()}s, the @<TRIPOS>{what} section holds "
                                    f"{found[what]} lines")


def _check_hydrogens(mol: Chem.Mol, id: str, messages: list[str]) -> None:
    """Radicals, or charges RDKit guessed without hydrogens: see the module docstring. A
    radical beside the file's hydrogen atoms (``base.check_hydrogens_kept``, MOL2's short
    atoms being its radicals) is a bond order lost, not a hydrogen (was: "give all hydrogens"
    to a file that gave them all and wrote every bond as 1)."""
    radicals = [a.GetIdx() for a in mol.GetAtoms() if a.GetNumRadicalElectrons()]
    check_hydrogens_kept(mol, id, "bond orders (bond types written 1)", short=radicals)
    if radicals:
        raise MoleculeError(id, f"atoms {atom_names(radicals, mol)} lack bonds or hydrogens (RDKit's MOL2 reader adds no "
                                "hydrogens, and MOL2 cannot mark radicals): give all hydrogens, or use SDF")
    guessed = any("no explicit hydrogens" in m for m in messages)
    charged = [a.GetIdx() for a in mol.GetAtoms() if a.GetFormalCharge()]
    if guessed and charged:
        raise MoleculeError(id, f"no hydrogens, and RDKit guessed charges on atoms {atom_names(charged, mol)}: give all "
                                "hydrogens, or use SDF")


def _sections(lines: list) -> list:
    """What each line of a record is, for messages: its name line, or the section it is in."""
    parts, section = [], "the @<TRIPOS>MOLECULE section"
    for n, line in enumerate(lines):
        found = re.match(r"@<TRIPOS>\w*", line)
        section = f"the {found.group()} section" if found else section
        parts.append("the molecule name" if n == 1 else section)
    return parts


def _check_control(block: str, id: str, first: int) -> None:
    """A ``MoleculeError`` for a control character in the record (`base.check_control`;
    ``first``: the file line the record starts at). Was: a NUL in the name became the id,
    or, in the file's first 64 KiB, refused the whole file."""
    lines = block.split("\n")  # at LF only
    check_control(lines, id, lambda n: _sections(lines)[n - first], first)


@register_reader(".mol2", capped=True)
def read_mol2(handle, name: str, max_heavy: Optional[int] = None) -> Iterator[ParsedStructure]:
    blocks = re.split(r"(?m)^(?=@<TRIPOS>MOLECULE)", handle.read())
    head, blocks = blocks[0], blocks[1:]
    if head.strip() and not head.lstrip().startswith("#"):
        id = f"{name}#header"
        yield ParsedStructure(None, id, error=MoleculeError(id, "text before the first @<TRIPOS>MOLECULE"))
    first = head.count("\n") + 1  # the file line of the record's first line
    for i, block in enumerate(blocks):
        lines = block.splitlines()
        id = lines[1].strip() if len(lines) > 1 and lines[1].strip() else f"{name}#{i}"
        start, first = first, first + block.count("\n")
        try:
            _check_control(block, f"{name}#{i}", start)  # the name may be the damage: file#index
            _check_counts(block, id)
            with rdkit_messages() as messages:
                mol = Chem.MolFromMol2Block(block, sanitize=False, removeHs=False)
            if mol is None:
                raise MoleculeError(id, with_messages("unparseable MOL2 record", messages))
            notes = as_notes(messages) + sanitize(mol, id, max_heavy)
            _check_hydrogens(mol, id, messages)
            if mol.GetNumConformers() == 0:
                raise MoleculeError(id, "record has no coordinates")
        except MoleculeError as error:
            yield ParsedStructure(i, id, error=error)
        else:
            yield ParsedStructure(i, id, mol=mol, notes=notes)
