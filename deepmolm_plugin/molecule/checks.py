"""Structure checks shared by every builder, the 3D policy and the fingerprint.

Each check raises ``MoleculeError`` naming the molecule and the reason; none repairs
anything. A record fails on: no atoms, dummy/query atoms (atomic number 0, which E3FP
would silently skip), non-finite coordinates, overlapping atoms (closer than ``OVERLAP``
= 0.01 angstrom). Valence errors come from ``sanitize.sanitize``. ``conformer_is_3d`` is
the one place that decides whether a conformer is 3D or a 2D depiction.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem

from .errors import MoleculeError

__all__ = [
    "OVERLAP",
    "check_atoms",
    "check_coordinates",
    "check_finite",
    "conformer_is_3d",
    "has_3d_conformer",
]

OVERLAP = 0.01  # angstrom: two atoms closer than this are a broken structure


def check_finite(positions: np.ndarray, id: str) -> None:
    """Raise for NaN/inf coordinates, naming the first ten atoms. positions: [N, 3]."""
    bad = np.where(~np.isfinite(positions).all(axis=1))[0]
    if len(bad):
        raise MoleculeError(id, f"non-finite coordinates for atoms {bad.tolist()[:10]}")


def check_coordinates(positions: np.ndarray, id: str) -> None:
    """Raise ``MoleculeError`` for non-finite or overlapping coordinates. positions: [N, 3]."""
    check_finite(positions, id)
    for start in range(0, len(positions), 512):  # blocks keep memory O(512 N)
        block = positions[start : start + 512]  # [b, 3]
        dist = np.linalg.norm(block[:, None, :] - positions[None, :, :], axis=-1)  # [b, N]
        rows, cols = np.where(dist < OVERLAP)
        pairs = [(start + r, c) for r, c in zip(rows.tolist(), cols.tolist()) if start + r < c]
        if pairs:
            i, j = pairs[0]
            raise MoleculeError(id, f"atoms {i} and {j} overlap (distance < {OVERLAP} A)")


def check_atoms(mol: Chem.Mol, id: str) -> None:
    """A concrete structure: some atoms, none of them dummies, finite coordinates (if any).

    Overlaps are not checked here: a conformer that is about to be replaced by a generated
    one may be a depiction with stacked atoms; ``check_coordinates`` runs on the conformer
    that is kept.
    """
    if mol.GetNumAtoms() == 0:
        raise MoleculeError(id, "no atoms")
    dummies = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if dummies:
        raise MoleculeError(id, f"dummy/query atoms {dummies}: not a concrete structure")
    if mol.GetNumConformers() > 0:
        check_finite(mol.GetConformer().GetPositions(), id)  # [atoms, 3]


def conformer_is_3d(mol: Chem.Mol, conf_id: int = -1) -> bool:
    """Whether conformer ``conf_id`` holds real 3D coordinates rather than a 2D depiction.

    Trusts the source's declaration as RDKit reads it (molfile header ``2D``/blank with all
    z = 0 -> 2D; XYZ, PDB, MOL2, atom arrays and generated conformers -> 3D), so a planar
    molecule lying in the xy plane of a DFT geometry stays 3D. One correction: a conformer
    with all z = 0 that contains a carbon with four neighbours is a depiction whatever its
    flag says (no sp3 carbon is planar).
    """
    conf = mol.GetConformer(conf_id)
    if not conf.Is3D():
        return False
    if np.any(np.abs(conf.GetPositions()[:, 2]) > 1e-4):
        return True
    return not any(a.GetAtomicNum() == 6 and a.GetDegree() == 4 for a in mol.GetAtoms())


def has_3d_conformer(mol: Chem.Mol) -> bool:
    """A conformer exists and ``conformer_is_3d`` accepts it."""
    return mol.GetNumConformers() > 0 and conformer_is_3d(mol)

