"""``MoleculeRecord``: what every builder and reader of the molecule package returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from rdkit import Chem

__all__ = ["MoleculeRecord"]


@dataclass
class MoleculeRecord:
    """One molecule with exactly one conformer (unless ``conformer == 'none'``).

    ``mol`` keeps hydrogens as the source had them (plus any that conformer generation
    added); ``source`` is ``path#index``, ``'smiles'`` or ``'atoms'``; ``conformer`` is
    ``'file'``, ``'generated'`` or ``'none'``; ``notes`` lists everything done to the input
    that a reader of the data should know; ``keep_atoms`` is the token-row cap set by
    ``too_large='truncate'``.
    """

    id: str
    mol: Chem.Mol
    source: str
    conformer: str
    notes: list[str] = field(default_factory=list)
    keep_atoms: int | None = None

    @property
    def num_heavy_atoms(self) -> int:
        return self.mol.GetNumHeavyAtoms()
