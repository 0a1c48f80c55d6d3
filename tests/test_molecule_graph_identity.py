"""One molecule, one KFLM2 graph, feature row, copy key and scaffold, however it is written.

Was: deepmolm-kflm2 read a SMILES with explicit hydrogens as another molecule (the H atoms
were graph nodes, the heavy atoms lost their H counts, Morgan and rdkit2d features and the
copy key `molecule.standard.molecule_keys` changed), atom maps gave another copy key and another
Murcko scaffold, so a --test-file molecule written either way in the training CSV stayed in
training; the training aux head (`data.graphs.record_graph`) removed the H atoms, so the two
graphs disagreed. A stereocentre was featurised by its chiral tag (CW/CCW), which follows
the order its bonds were written in: `C[C@@H](C(=O)O)N` and `OC(=O)[C@H](C)N` (both
L-alanine) had opposite chirality one-hots in both graphs; and the kflm2 graph of a SMILES
had no E/Z at all (`C/C=C/Cl` and `C/C=C\\Cl` were one graph). Now every graph, feature,
key and scaffold is computed from `molecule.standard.standard_molecule` (no explicit H, no atom
maps, canonical atom and bond order, stereo as CIP descriptors).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.data.graphs import graph_resolver, record_graph
from deepmolm_plugin.property import cli as kcli
from deepmolm_plugin.property.features import mol_to_graph, parse_smiles
from deepmolm_plugin.property.featurizers import Morgan, RDKit2D
from deepmolm_plugin.molecule.standard import molecule_keys
from deepmolm_plugin.property.splits import murcko_scaffold

from test_hostile_kflm2 import _run
from test_hostile_property_images import _csv

MOLECULES = ["C[C@@H](C(=O)O)N", "C/C=C/Cl", r"C/C=C\C(=O)O", "C[C@H]1CC[C@@H](C)CC1", "CC(=O)Oc1ccccc1C(=O)O",
             "C[C@H](O)[C@@H](O)c1ccncc1", "CC(=O)[O-].[Na+]", "[2H]C(Cl)Cl", "O"]
STEREOISOMERS = [("C[C@@H](C(=O)O)N", "C[C@H](C(=O)O)N"), ("C/C=C/Cl", r"C/C=C\Cl"),
                 ("C[C@H]1CC[C@@H](C)CC1", "C[C@H]1CC[C@H](C)CC1"),
                 ("C[C@H](O)[C@@H](O)c1ccncc1", "C[C@H](O)[C@H](O)c1ccncc1")]


def spellings(smiles: str) -> list[str]:
    """Other ways to write the molecule: atom order, explicit H, atom maps, Kekule form."""
    mol = Chem.MolFromSmiles(smiles)
    out = [Chem.MolToSmiles(mol, doRandom=True) for _ in range(4)]
    out.append(Chem.MolToSmiles(Chem.AddHs(mol), doRandom=True))  # [H] atoms written out
    mapped = Chem.Mol(mol)
    for atom in mapped.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    out.append(Chem.MolToSmiles(mapped, doRandom=True))
    kekule = Chem.Mol(mol)
    Chem.Kekulize(kekule, clearAromaticFlags=True)
    out.append(Chem.MolToSmiles(kekule, kekuleSmiles=True, doRandom=True))
    return out


def views(smiles: str) -> dict:
    """Everything KFLM2 computes from one SMILES: both graphs, Morgan, rdkit2d, copy key, scaffold."""
    mol, reason = parse_smiles(smiles)
    assert mol is not None, (smiles, reason)
    graph = mol_to_graph(mol)
    aux = record_graph({"smiles": smiles}, "r", graph_resolver(None))
    return {"kflm2 graph": (graph.atoms, graph.edge_index, graph.edges),
            "aux-head graph": (aux.atoms, aux.edge_index, aux.edges),
            "morgan": Morgan(cache_dir=None).compute([mol], [smiles])[0],
            "rdkit2d": RDKit2D(cache_dir=None).compute([mol], [smiles])[0],
            "key": molecule_keys([mol])[0], "scaffold": murcko_scaffold(mol)}


def same(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return a == b


@pytest.mark.parametrize("smiles", MOLECULES)
def test_every_spelling_of_a_molecule_gets_one_graph_feature_row_and_key(smiles):
    Chem.rdBase.SeedRandomNumberGenerator(7)  # doRandom's spellings, the same every run
    reference = views(smiles)
    for other in spellings(smiles):
        got = views(other)
        differ = [name for name in reference if not same(reference[name], got[name])]
        assert not differ, f"{other!r} (a spelling of {smiles!r}) differs in {differ}"
    assert reference["kflm2 graph"][0].shape[0] == Chem.MolFromSmiles(smiles).GetNumHeavyAtoms() + \
        smiles.count("[2H]")  # no H atoms as nodes, deuterium (an isotope) kept


@pytest.mark.parametrize("other", ["[H]OC(=O)c1c([H])c([H])c([H])c([H])c1OC(=O)C([H])([H])[H]",
                                   "[CH3:1][C:2](=[O:3])[O:4][c:5]1[cH:6][cH:7][cH:8][cH:9][c:10]1[C:11](=[O:12])[OH:13]"])
def test_explicit_h_and_atom_maps_change_no_feature_row_key_or_scaffold(other):
    # was: 13 Morgan bits for ethanol written with [H] atoms (6 for CCO), another copy key
    # for either, another scaffold for the atom-mapped one (atom order aside: see above)
    reference, got = views("CC(=O)Oc1ccccc1C(=O)O"), views(other)
    assert [name for name in ("morgan", "rdkit2d", "key", "scaffold") if not same(reference[name], got[name])] == []


def test_the_kflm2_graph_and_the_aux_head_graph_agree_on_explicit_hydrogens():
    # was: 9 atoms / 16 edges in deepmolm-kflm2, 3 atoms in the aux head
    kflm2 = mol_to_graph(parse_smiles("[H]OC([H])([H])C([H])([H])[H]")[0])
    aux = record_graph({"smiles": "[H]OC([H])([H])C([H])([H])[H]"}, "r", graph_resolver(None))
    assert (kflm2.num_atoms, kflm2.num_edges) == (aux.num_atoms, aux.num_edges) == (3, 4)
    assert np.array_equal(kflm2.atoms, aux.atoms) and np.array_equal(kflm2.edges, aux.edges)


@pytest.mark.parametrize("build", [lambda s: mol_to_graph(parse_smiles(s)[0]),
                                   lambda s: record_graph({"smiles": s}, "r", graph_resolver(None))],
                         ids=["kflm2", "aux-head"])
def test_a_stereocentre_is_featurised_by_its_descriptor_not_by_the_written_bond_order(build):
    # was: one-hot CW for one spelling of L-alanine, CCW for the other (compared as a multiset
    # of atom rows, so that atom order does not matter)
    rows = [sorted(map(tuple, build(s).atoms.tolist())) for s in ("C[C@@H](C(=O)O)N", "OC(=O)[C@H](C)N")]
    assert rows[0] == rows[1]


def test_a_molfile_double_bond_is_the_smiles_one():
    # a molfile's Z bond comes out of canonical ordering as STEREOCIS (relative to reference atoms)
    mol = Chem.AddHs(Chem.MolFromSmiles(r"C/C=C\Cl"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    from_file = Chem.MolFromMolBlock(Chem.MolToMolBlock(mol), removeHs=False)
    a, b = mol_to_graph(from_file), mol_to_graph(parse_smiles(r"Cl/C=C\C")[0])
    assert np.array_equal(a.atoms, b.atoms) and np.array_equal(a.edges, b.edges)


@pytest.mark.parametrize("pair", STEREOISOMERS, ids=lambda p: p[0])
def test_stereoisomers_keep_different_graphs_and_keys(pair):
    (a, b) = (views(s) for s in pair)
    for name in ("kflm2 graph", "aux-head graph", "key"):
        assert not same(a[name], b[name]), (pair, name)


def test_a_test_file_molecule_written_with_explicit_h_or_atom_maps_leaves_training(tmp_path):
    # was: removed_from_train 1 (the salt form only); heptanol with [H] atoms and octanol
    # with atom maps stayed in training
    train = ["CCO", "CCCO", "CCCCO", "CCCCCO", "CCCCCCO", "c1ccccc1O", "c1ccccc1N", "CC(=O)O", "CCC(=O)O", "CCN",
             "CCCN", "CCCCN", Chem.MolToSmiles(Chem.AddHs(Chem.MolFromSmiles("CCCCCCCO"))),
             "[CH3:1][CH2:2][CH2:3][CH2:4][CH2:5][CH2:6][CH2:7][CH2:8][OH:9]", "CCCCCCCCCO.[Na+].[Cl-]"]
    data = _csv(tmp_path / "train.csv", ["smiles", "y"], [(s, i / 10) for i, s in enumerate(train)])
    test = _csv(tmp_path / "test.csv", ["smiles", "y"], [("CCCCCCCO", 1), ("CCCCCCCCO", 2), ("CCCCCCCCCO", 3)])
    out = tmp_path / "run"
    assert kcli.main(_run(data, out, extra=["--test-file", str(test), "--depth", "1"])) == 0
    report = json.loads((out / "data_report.json").read_text())
    assert report["test_files"]["test"]["removed_from_train"] == 3 and report["molecules"] == 12


def test_a_kflm2_run_folder_of_the_older_graphs_is_not_resumed(tmp_path, monkeypatch):
    # was: resumed; its splits (copies apart) and results, computed with the spelling-dependent
    # graphs and keys, were reported as this run's
    data = _csv(tmp_path / "train.csv", ["smiles", "y"], [(s, i / 10) for i, s in enumerate(
        ["CCO", "CCCO", "CCCCO", "CCCCCO", "CCCCCCO", "c1ccccc1O", "c1ccccc1N", "CC(=O)O", "CCC(=O)O", "CCN"])])
    out = tmp_path / "run"
    monkeypatch.setattr(kcli, "GRAPH_FEATURES", 1)
    assert kcli.main(_run(data, out, extra=["--depth", "1"])) == 0
    monkeypatch.undo()
    with pytest.raises(SystemExit, match=r"holds results of a different configuration \(changed: graph_features\)"):
        kcli.main(_run(data, out, extra=["--depth", "1"]))


def test_a_models_graph_features_are_recorded_and_an_older_heads_are_named(tmp_path, capsys):
    # the widths did not change with the CIP descriptors: a head trained before them loads
    # and reads its stereo slots otherwise, which nothing said
    from types import SimpleNamespace

    from deepmolm_plugin.data.graphs import graph_features_note
    from deepmolm_plugin.eval.model_vqa import prepare_questions
    from deepmolm_plugin.property.features import GRAPH_FEATURES
    from patches.molecule_data import use_model_molecule_settings

    class Dataset:
        molecules = SimpleNamespace(policy="auto", render_size=64, limits={}, fp=None)
        prepared = ({}, None)

    config = SimpleNamespace(fp_bits=4096, fp_levels=4)
    use_model_molecule_settings(Dataset(), config)
    assert config.graph_features == GRAPH_FEATURES and graph_features_note(config) is None
    old = SimpleNamespace(aux_property_task="kflm2", mm_projector_type="linear", render_size=64)
    assert "trained on graph features 1" in graph_features_note(old)
    prepare_questions([{"question_id": "q", "smiles": "CCO", "text": "What?"}], str(tmp_path), tmp_path / "r", old)
    assert "note: the model's property head was trained on graph features 1" in capsys.readouterr().err


# A substituted C60 hydride: rdCIPLabeler fails on it ("Digraph generation failed: more than
# 100000 nodes"), which stopped every KFLM2 path (kflm2, the aux head's records, model_vqa)
CAGE = "C[C@]12[C@@H]3[C@H]4[C@H]5[C@@H]6[C@H]7[C@@H]8[C@@H]9[C@H]%10[C@H]%11[C@H]%12[C@@H]9[C@H]([C@H]73)[C@@H]1[C@@H]1[C@@H]%12[C@@H]3[C@H]7[C@H]%11[C@@H]9[C@@H]%11[C@@H]%10[C@@H]%10[C@H]8[C@@H]6[C@H]6[C@@H]8[C@H]5[C@@H]5[C@@H]%12[C@@H]%13[C@H]%14[C@H]%15[C@H]%12[C@@H]8[C@H]8[C@H]%12[C@@H]%15[C@@H]%15[C@@H]%16[C@@H]%14[C@@H]%14[C@@H]%17[C@H]%13[C@H]([C@H]54)[C@H]2[C@@H]%17[C@@H]1[C@@]3(Cl)[C@@H]%14[C@@H]%16[C@H]7[C@]9(F)[C@@H]%15[C@@H]%12[C@H]%11[C@H]%10[C@]86Cl"


def test_a_cage_the_cip_labeller_cannot_rank_still_gets_one_graph():
    mol = Chem.MolFromSmiles(CAGE)
    graph = mol_to_graph(mol)  # was: RuntimeError
    assert graph.atoms.shape[0] == 64
    again = mol_to_graph(Chem.MolFromSmiles(Chem.MolToSmiles(mol, doRandom=True), sanitize=True))
    assert np.array_equal(graph.atoms, again.atoms) and np.array_equal(graph.edges, again.edges)


def test_pseudo_asymmetric_double_bonds_keep_apart():
    # e / z (lower case) fell into the "other" slot together: two geometric isomers, one graph
    e, z = (mol_to_graph(Chem.MolFromSmiles(s)) for s in ("C/C=C(/[C@@H](C)Cl)[C@H](C)Cl",
                                                          "C/C=C(\\[C@@H](C)Cl)[C@H](C)Cl"))
    assert not np.array_equal(e.edges, z.edges)
