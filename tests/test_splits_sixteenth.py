"""Sixteenth round: `--split scaffold-sorted` is DeepChem's ScaffoldSplitter, as the README
says. It sorted scaffold sets of one size earliest molecule first, where DeepChem's reversed
sort on (size, first index) puts the later one first, and it filled valid up to 10 % on its
own, where DeepChem fills it up to 90 % with train: BBBP's test set shared no molecule with
DeepChem's."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from deepmolm_plugin.property.features import parse_smiles
from deepmolm_plugin.property.splits import make_split, scaffold_sets, scaffold_split

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "moleculenet"


def _deepchem(sets: list[list[int]], n: int, train=0.8, valid=0.1) -> dict[str, list[int]]:
    """DeepChem's ScaffoldSplitter.split, from its source, on given scaffold sets."""
    ordered = [s for s in sorted(sets, key=lambda x: (len(x), x[0]), reverse=True)]
    train_cutoff, valid_cutoff = train * n, (train + valid) * n
    train_inds, valid_inds, test_inds = [], [], []
    for scaffold_set in ordered:
        if len(train_inds) + len(scaffold_set) > train_cutoff:
            if len(train_inds) + len(valid_inds) + len(scaffold_set) > valid_cutoff:
                test_inds += scaffold_set
            else:
                valid_inds += scaffold_set
        else:
            train_inds += scaffold_set
    return {"train": sorted(train_inds), "valid": sorted(valid_inds), "test": sorted(test_inds)}


def test_ties_and_the_valid_share_follow_deepchem():
    # 10 molecules: sets of 4, then three of 2 (first molecules 4, 6, 8); train's 8 take the 4
    # and the two later pairs (DeepChem's tie order), valid what is left below 9
    sets = {"a": [0, 1, 2, 3], "b": [4, 5], "c": [6, 7], "d": [8, 9]}
    split = scaffold_split([None] * 10, 0, balanced=False, scaffolds=sets)
    assert {k: v.tolist() for k, v in split.items()} == _deepchem(list(sets.values()), 10) == {
        "train": [0, 1, 2, 3, 6, 7, 8, 9], "valid": [], "test": [4, 5]}
    # valid takes what train leaves: 7 + 2 fits 90 % of 10, though 2 is more than valid's 10 % alone
    sets = {"a": [0, 1, 2, 3, 4, 5, 6], "b": [7, 8], "c": [9]}
    split = scaffold_split([None] * 10, 0, balanced=False, scaffolds=sets)
    assert {k: v.tolist() for k, v in split.items()} == _deepchem(list(sets.values()), 10)
    assert split["valid"].tolist() == [7, 8]


def test_a_real_dataset_splits_as_deepchem_splits_it():
    with open(DATA / "delaney-processed.csv", newline="") as f:  # ESOL: 33 of 114 test molecules were DeepChem's
        smiles = [row["smiles"] for row in csv.DictReader(f)]
    mols = [m for m in (parse_smiles(s)[0] for s in smiles) if m is not None]
    sets = scaffold_sets(mols)
    ours = make_split("scaffold-sorted", mols, 0, scaffolds=sets)
    theirs = _deepchem(list(sets.values()), len(mols))
    for subset in ("train", "valid", "test"):
        assert ours[subset].tolist() == theirs[subset], subset
    assert len(ours["test"]) and not np.intersect1d(ours["train"], ours["test"]).size
