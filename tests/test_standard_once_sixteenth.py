"""Sixteenth round: deepmolm-kflm2 made each row's standard molecule three or four times
(copy key, graph, features, scaffold): about a quarter of its featurising. It is made once
per input molecule now, and the cache cannot hand out a changed molecule."""

from __future__ import annotations

import numpy as np
from rdkit import Chem

from deepmolm_plugin.molecule import standard
from deepmolm_plugin.molecule.standard import molecule_keys, standard_molecule
from deepmolm_plugin.property.featurizers import make_featurizer
from deepmolm_plugin.property.features import mol_to_graph, parse_smiles

SMILES = ["C[C@H](N)C(=O)O", "[H]OC([H])([H])C([H])([H])[H]", "C[S+](C)[O-]", "F/C=C/Cl", "[CH3:1][OH:2]"]


def test_keys_graphs_and_features_make_each_standard_molecule_once(monkeypatch):
    made = []
    real = standard.canonical_copy
    monkeypatch.setattr(standard, "canonical_copy", lambda mol, *a, **k: made.append(1) or real(mol, *a, **k))
    mols = [parse_smiles(s)[0] for s in SMILES]
    molecule_keys(mols)
    [mol_to_graph(m) for m in mols]
    make_featurizer("morgan")(mols, SMILES)
    assert len(made) == len(mols)  # was 3 a molecule


def test_a_molecule_made_again_is_the_same_as_made_first():
    for text in SMILES:
        mol = parse_smiles(text)[0]
        first, again = standard_molecule(mol), standard_molecule(mol)
        assert first is not again  # each caller its own copy
        assert Chem.MolToSmiles(first) == Chem.MolToSmiles(again)
        codes = [[a.GetPropsAsDict().get("_CIPCode") for a in m.GetAtoms()] for m in (first, again)]
        assert codes[0] == codes[1]
        graphs = [mol_to_graph(mol), mol_to_graph(Chem.Mol(mol))]  # the cache, and a fresh molecule
        assert np.array_equal(graphs[0].atoms, graphs[1].atoms) and np.array_equal(graphs[0].edges, graphs[1].edges)


def test_an_input_changed_in_place_is_made_again():
    mol = parse_smiles("CC(=O)O")[0]
    before = Chem.MolToSmiles(standard_molecule(mol))
    mol.GetAtomWithIdx(3).SetFormalCharge(-1)
    mol.GetAtomWithIdx(3).SetNoImplicit(True)
    mol.UpdatePropertyCache()
    after = Chem.MolToSmiles(standard_molecule(mol))
    assert (before, after) == ("CC(=O)O", "CC(=O)[O-]")


def test_a_caller_that_changes_its_copy_changes_nobody_elses():
    mol = parse_smiles("CCO")[0]
    mine = standard_molecule(mol)
    mine.GetAtomWithIdx(0).SetFormalCharge(1)
    assert Chem.MolToSmiles(standard_molecule(mol)) == "CCO"
