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
- ``scaffold-sorted`` (MoleculeNet / DeepChem's deterministic ``ScaffoldSplitter``): sets
  sorted by size, largest first (ties: the set whose first molecule comes later first, as
  DeepChem's reversed sort on (size, first index) orders them), assigned to train while it
  fits in 80 %, else to valid while train and valid together fit in 90 %, else to test; so
  train gets the common chemotypes and valid/test the rare ones; the seed does not change
  it (seeds then only vary the model initialisation).
- Fixed test sets (Llinas 2020): ``train_valid_split`` splits the training file only
  (train : valid = 8 : 1) and every test file is evaluated as given.
- Copies of one molecule (``molecule.standard.molecule_keys``: the same canonical SMILES of the largest
  fragment, neutralised, of ``molecule.standard.standard_molecule``, so ``OCC`` / ``CCO``,
  ``[H]OC([H])([H])C``, ``[CH3:1][CH2:2][OH:3]``, a salt and its free base, charge states)
  always land in one subset: ``random_split`` / ``train_valid_split`` shuffle and assign
  whole ``groups`` (a copy in train and one in test would be a leak that inflates the test
  score), and ``join_groups`` merges scaffold sets that copies span. Without copies the
  splits are the same as without groups.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold

from ..molecule.standard import standard_molecule

SPLITS = ("random", "scaffold", "scaffold-sorted")
DEFAULT_SIZES = (0.8, 0.1, 0.1)


def _check_sizes(sizes: Sequence[float]) -> tuple[float, float, float]:
    if len(sizes) != 3 or any(s < 0 for s in sizes) or abs(sum(sizes) - 1.0) > 1e-6:
        raise ValueError(f"split sizes must be three non-negative fractions summing to 1, got {sizes}")
    return tuple(float(s) for s in sizes)  # type: ignore[return-value]


def _grouped(keys: Sequence[str]) -> dict[str, list[int]]:
    """Indices by key, keys in order of their first index."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    return dict(groups)


def key_groups(keys: Sequence[str]) -> list[list[int]]:
    """The indices of each molecule's copies (one group per key, singletons included)."""
    return list(_grouped(keys).values())


def _assign(groups: Sequence[list[int]], order: np.ndarray, targets: Sequence[int],
            names: Sequence[str]) -> dict[str, np.ndarray]:
    """Whole groups in ``order`` to the first subset still under its target size (the last
    subset takes the rest): with singleton groups, exactly the first targets[0] of the
    order, then the next targets[1], ..."""
    subsets: list[list[int]] = [[] for _ in names]
    for g in order:
        k = next((j for j, size in enumerate(targets) if len(subsets[j]) < size), len(targets))
        subsets[k] += groups[g]
    return {name: np.sort(np.asarray(s, dtype=np.int64)) for name, s in zip(names, subsets)}


def random_split(n: int, seed: int, sizes: Sequence[float] = DEFAULT_SIZES,
                 groups: Sequence[list[int]] | None = None) -> dict[str, np.ndarray]:
    train_f, valid_f, _ = _check_sizes(sizes)
    groups = groups if groups is not None else [[i] for i in range(n)]
    order = np.random.default_rng(seed).permutation(len(groups))
    return _assign(groups, order, (int(train_f * n), int(valid_f * n)), ("train", "valid", "test"))


def murcko_scaffold(mol_or_smiles) -> str:
    """The scaffold of the ``standard_molecule``: of the molecule as written, atom maps were
    part of the scaffold's SMILES, another scaffold set."""
    mol = Chem.MolFromSmiles(mol_or_smiles) if isinstance(mol_or_smiles, str) else mol_or_smiles
    if mol is None:
        raise ValueError(f"cannot compute a scaffold for {mol_or_smiles!r}")
    return MurckoScaffold.MurckoScaffoldSmiles(mol=standard_molecule(mol), includeChirality=False)


def scaffold_sets(mols: Sequence) -> dict[str, list[int]]:
    return _grouped([murcko_scaffold(mol) for mol in mols])


def join_groups(sets: dict[str, list[int]], groups: Sequence[list[int]]) -> dict[str, list[int]]:
    """Scaffold sets merged where one molecule's copies span several (a salt's counter-ion
    ring changes the scaffold), so that the copies land in one subset. Sets that no group
    spans are returned unchanged and in their order (the split is then the same)."""
    owner = {i: name for name, members in sets.items() for i in members}
    root = {name: name for name in sets}

    def find(name: str) -> str:
        while root[name] != name:
            name = root[name]
        return name

    for group in groups:
        first = find(owner[group[0]])
        for i in group[1:]:
            root[find(owner[i])] = first
    merged: dict[str, list[int]] = defaultdict(list)
    for name, members in sets.items():
        merged[find(name)] += members
    return {name: sorted(members) for name, members in merged.items()}


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
        # DeepChem's ScaffoldSplitter: largest first, and between sets of one size the one whose
        # first molecule comes later first (its sort key (size, first index), reversed); was
        # earliest first, and BBBP's test set shared no molecule with DeepChem's
        ordered = sorted(sets, key=lambda s: (len(s), s[0]), reverse=True)
    # Chemprop fills valid up to its own share; DeepChem up to train's and valid's together
    # (valid takes what train left)
    valid_limit = valid_size if balanced else train_size + valid_size
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for s in ordered:
        if len(train) + len(s) <= train_size:
            train += s
        elif (len(valid) if balanced else len(train) + len(valid)) + len(s) <= valid_limit:
            valid += s
        else:
            test += s
    return {"train": np.sort(np.asarray(train, dtype=np.int64)), "valid": np.sort(np.asarray(valid, dtype=np.int64)),
            "test": np.sort(np.asarray(test, dtype=np.int64))}


def train_valid_split(n: int, seed: int, valid_fraction: float = 1 / 9,
                      groups: Sequence[list[int]] | None = None) -> dict[str, np.ndarray]:
    """For fixed external test sets: split the training file into train and valid only."""
    groups = groups if groups is not None else [[i] for i in range(n)]
    order = np.random.default_rng(seed).permutation(len(groups))
    split = _assign(groups, order, (int(round(valid_fraction * n)),), ("valid", "train"))
    return {"train": split["train"], "valid": split["valid"]}


def make_split(kind: str, mols: Sequence, seed: int, sizes: Sequence[float] = DEFAULT_SIZES,
               scaffolds: dict[str, list[int]] | None = None,
               groups: Sequence[list[int]] | None = None) -> dict[str, np.ndarray]:
    """``groups`` (copies of one molecule) keep the random split from separating copies;
    scaffold splits get them through ``scaffolds`` joined by ``join_groups``."""
    if kind == "random":
        return random_split(len(mols), seed, sizes, groups)
    if kind == "scaffold":
        return scaffold_split(mols, seed, sizes, balanced=True, scaffolds=scaffolds)
    if kind == "scaffold-sorted":
        return scaffold_split(mols, seed, sizes, balanced=False, scaffolds=scaffolds)
    raise ValueError(f"split must be one of {SPLITS}, not {kind!r}")
