"""The 2D molecular graph of a training record, for the KFLM2 auxiliary head.

Only the graph is needed, so no conformer is generated: SMILES are parsed directly, and a
`structure` file is read with the `keep` policy. Hydrogens are removed (the graph
featuriser keeps each atom's H count as a feature).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rdkit import Chem

from ..molecule import MoleculeError, read_structures
from ..property.features import MolGraph, mol_to_graph, parse_smiles
from .records import RecordError


def record_graph(record: dict, rid: str, structure_folder: Optional[str]) -> Optional[MolGraph]:
    """The record's molecular graph; None when it only carries inline tokens."""
    if record.get("smiles"):
        mol, reason = parse_smiles(record["smiles"])
        if mol is None:
            raise RecordError(rid, f"SMILES {record['smiles']!r}: {reason}")
        return mol_to_graph(mol)
    if record.get("structure"):
        path = Path(record["structure"])
        if not path.is_absolute() and structure_folder:
            path = Path(structure_folder) / path
        try:
            (molecule,) = list(read_structures(path, policy="keep", errors="raise"))
        except (MoleculeError, ValueError) as e:
            raise RecordError(rid, f"structure {path}: {e}") from e
        return mol_to_graph(Chem.RemoveHs(molecule.mol))
    return None
