"""RDKit sanitisation and SMILES parsing, with RDKit's own words kept.

Failures (unparseable SMILES, valence errors) are a ``MoleculeError`` whose reason includes
RDKit's message; warnings on a molecule that succeeds become its notes ("RDKit: ...").
"""

from __future__ import annotations

from rdkit import Chem

from .errors import MoleculeError, as_notes, rdkit_messages, with_messages

__all__ = ["parse_smiles", "sanitize"]


def sanitize(mol: Chem.Mol, id: str) -> list[str]:
    """Sanitise in place; returns RDKit's warnings as notes (its errors raise)."""
    with rdkit_messages() as messages:
        try:
            Chem.SanitizeMol(mol)
        except Chem.MolSanitizeException as error:  # the exception carries the message
            raise MoleculeError(id, f"sanitization failed: {error}") from error
    return as_notes(messages)


def parse_smiles(smiles: str, id: str) -> tuple[Chem.Mol, list[str]]:
    """(sanitised molecule, RDKit warnings as notes)."""
    if not smiles or not smiles.strip():
        raise MoleculeError(id, "empty SMILES")
    with rdkit_messages() as messages:
        mol = Chem.MolFromSmiles(smiles.strip(), sanitize=False)
    if mol is None:
        raise MoleculeError(id, with_messages(f"unparseable SMILES {smiles!r}", messages))
    return mol, as_notes(messages) + sanitize(mol, id)
