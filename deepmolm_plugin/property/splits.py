"""Seeded train / valid / test splits (8:1:1 by default); indices are saved with every run.

- ``random``: a ``numpy.random.default_rng(seed)`` permutation; the first 80 % train, the
  next 10 % valid, the rest test.
- ``scaffold`` (Chemprop's balanced scaffold split, the one used for "10 scaffold
  splits" results): molecules are grouped by Bemis-Murcko scaffold (RDKit
  ``MurckoScaffold.MurckoScaffoldSmiles``, no chirality; acyclic molecules share the
  empty scaffold). Scaffold sets larger than half the valid or half the test size are
  "big" and come first; big and small sets are each shuffled with ``random.Random(seed)``;
  sets are then assigned whole, greedily: to train while it fits in 80 %, else to valid
  while it fits in 10 %, else to test. Every scaffold lands in exactly one subset; the
  seed changes which scaffolds go where.
- ``scaffold-sorted`` (MoleculeNet / DeepChem's deterministic scaffold split): the same
  greedy assignment with sets sorted by size, largest first (ties: earliest molecule
  first), so train gets the common chemotypes and valid/test the rare ones; the seed does
  not change it (seeds then only vary the model initialisation).
- Fixed test sets (Llinas 2020): ``train_valid_split`` splits the training file only
  (train : valid = 8 : 1) and every test file is evaluated as given.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold

SPLITS = ("random", "scaffold", "scaffold-sorted")
DEFAULT_SIZES = (0.8, 0.1, 0.1)


def _check_sizes(sizes: Sequence[float]) -> tuple[float, float, float]:
    if len(sizes) != 3 or any(s < 0 for s in sizes) or abs(sum(sizes) - 1.0) > 1e-6:
        raise ValueError(f"split sizes must be three non-negative fractions summing to 1, got {sizes}")
    return tuple(float(s) for s in sizes)  # type: ignore[return-value]


def random_split(n: int, seed: int, sizes: Sequence[float] = DEFAULT_SIZES) -> dict[str, np.ndarray]:
    train_f, valid_f, _ = _check_sizes(sizes)
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(train_f * n)
    n_valid = int(valid_f * n)
    return {"train": np.sort(order[:n_train]), "valid": np.sort(order[n_train:n_train + n_valid]),
            "test": np.sort(order[n_train + n_valid:])}


def murcko_scaffold(mol_or_smiles) -> str:
    mol = Chem.MolFromSmiles(mol_or_smiles) if isinstance(mol_or_smiles, str) else mol_or_smiles
    if mol is None:
        raise ValueError(f"cannot compute a scaffold for {mol_or_smiles!r}")
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_sets(mols: Sequence) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, mol in enumerate(mols):
        groups[murcko_scaffold(mol)].append(i)
    return dict(groups)


def scaffold_split(mols: Sequence, seed: int, sizes: Sequence[float] = DEFAULT_SIZES,
                   balanced: bool = True, scaffolds: dict[str, list[int]] | None = None) -> dict[str, np.ndarray]:
    train_f, valid_f, test_f = _check_sizes(sizes)
    n = len(mols)
    groups = scaffolds if scaffolds is not None else scaffold_sets(mols)
    train_size, valid_size, test_size = train_f * n, valid_f * n, test_f * n
    sets = list(groups.values())
    if balanced:
        big = [s for s in sets if len(s) > valid_size / 2 or len(s) > test_size / 2]
        small = [s for s in sets if not (len(s) > valid_size / 2 or len(s) > test_size / 2)]
        rng = random.Random(seed)
        rng.shuffle(big)
        rng.shuffle(small)
        ordered = big + small
    else:
        ordered = sorted(sets, key=lambda s: (-len(s), s[0]))
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for s in ordered:
        if len(train) + len(s) <= train_size:
            train += s
        elif len(valid) + len(s) <= valid_size:
            valid += s
        else:
            test += s
    return {"train": np.sort(np.asarray(train, dtype=np.int64)), "valid": np.sort(np.asarray(valid, dtype=np.int64)),
            "test": np.sort(np.asarray(test, dtype=np.int64))}


def train_valid_split(n: int, seed: int, valid_fraction: float = 1 / 9) -> dict[str, np.ndarray]:
    """For fixed external test sets: split the training file into train and valid only."""
    order = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(valid_fraction * n))
    return {"train": np.sort(order[n_valid:]), "valid": np.sort(order[:n_valid])}


def make_split(kind: str, mols: Sequence, seed: int, sizes: Sequence[float] = DEFAULT_SIZES,
               scaffolds: dict[str, list[int]] | None = None) -> dict[str, np.ndarray]:
    if kind == "random":
        return random_split(len(mols), seed, sizes)
    if kind == "scaffold":
        return scaffold_split(mols, seed, sizes, balanced=True, scaffolds=scaffolds)
    if kind == "scaffold-sorted":
        return scaffold_split(mols, seed, sizes, balanced=False, scaffolds=scaffolds)
    raise ValueError(f"split must be one of {SPLITS}, not {kind!r}")
