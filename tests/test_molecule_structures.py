"""Readers, the 3D policy and every defined behaviour of deepmolm_plugin.molecule (io/, policy.py, builders.py).

All input files are written here with RDKit's own writers (MOL2 by hand), into tmp_path.
"""

import pickle

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem
from rdkit.Geometry import Point3D

from deepmolm_plugin.molecule import (
    MoleculeError,
    MoleculeRecord,
    fingerprint_record,
    generate_conformer,
    molecule_from_atoms,
    molecule_from_smiles,
    read_structures,
)
from deepmolm_plugin.molecule import conformer as conformer_module
from deepmolm_plugin.molecule.inputs import InputError, InputResolver
from timing_guard import within_cpu_seconds

ALA = "C[C@H](N)C(=O)O"


@pytest.fixture(scope="module")
def ala() -> MoleculeRecord:
    """L-alanine with hydrogens and a generated 3D conformer."""
    record = molecule_from_smiles(ALA, "ala")
    record.mol.SetProp("_Name", "ala")
    return record


def write(path, text):
    path.write_text(text)
    return path


def sdf(*blocks):
    """SDF text: each MOL block followed by a $$$$ line."""
    return "".join(block.rstrip("\n") + "\n$$$$\n" for block in blocks)


def read_all(path, **options):
    return list(read_structures(path, **options))


def canonical(mol):
    return Chem.MolToSmiles(Chem.RemoveHs(mol))


def positions(mol):
    return mol.GetConformer().GetPositions()


def flat_block(smiles, name):
    mol = Chem.MolFromSmiles(smiles)
    AllChem.Compute2DCoords(mol)
    mol.SetProp("_Name", name)
    return Chem.MolToMolBlock(mol)


def chain(n):
    """Linear alkane C_n with hand-made zig-zag 3D coordinates (no embedding needed)."""
    mol = Chem.MolFromSmiles("C" * n)
    conf = Chem.Conformer(n)
    for i in range(n):
        conf.SetAtomPosition(i, Point3D(1.26 * i, 0.89 * (i % 2), 0.1 * (i % 2)))
    conf.Set3D(True)
    mol.AddConformer(conf)
    mol.SetProp("_Name", f"C{n}")
    return mol


# --- formats -------------------------------------------------------------------------


def test_sdf_v2000_keeps_every_coordinate_on_its_atom(tmp_path, ala):
    path = write(tmp_path / "ala.sdf", sdf(Chem.MolToMolBlock(ala.mol)))
    (record,) = read_all(path, policy="from-file")
    assert (record.id, record.source, record.conformer) == ("ala", f"{path}#0", "file")
    assert record.mol.GetNumAtoms() == ala.mol.GetNumAtoms()  # explicit H kept
    np.testing.assert_allclose(positions(record.mol), positions(ala.mol), atol=1e-4)
    assert [a.GetSymbol() for a in record.mol.GetAtoms()] == [a.GetSymbol() for a in ala.mol.GetAtoms()]
    assert Chem.FindMolChiralCenters(record.mol) == [(1, "S")]


def test_v3000_record(tmp_path, ala):
    path = write(tmp_path / "ala3k.mol", Chem.MolToV3KMolBlock(ala.mol))
    (record,) = read_all(path, policy="from-file")
    assert record.conformer == "file" and canonical(record.mol) == canonical(ala.mol)
    np.testing.assert_allclose(positions(record.mol), positions(ala.mol), atol=1e-4)


def test_multi_record_sdf_with_a_bad_record_in_the_middle(tmp_path, ala):
    good2 = molecule_from_smiles("CCO", "ethanol").mol
    good2.SetProp("_Name", "ethanol")
    pentavalent = Chem.MolFromSmiles("FC(F)(F)(F)F", sanitize=False)
    pentavalent.SetProp("_Name", "pentafluoro")
    bad_block = Chem.MolToMolBlock(pentavalent, kekulize=False)
    path = write(tmp_path / "three.sdf", sdf(Chem.MolToMolBlock(ala.mol), bad_block, Chem.MolToMolBlock(good2)))
    items = read_all(path, policy="from-file")
    assert [type(i) for i in items] == [MoleculeRecord, MoleculeError, MoleculeRecord]
    assert items[1].id == "pentafluoro" and items[1].source == f"{path}#1"
    assert "valence" in items[1].reason.lower()
    assert items[2].id == "ethanol"
    with pytest.raises(MoleculeError, match="pentafluoro"):
        read_all(path, policy="from-file", errors="raise")


MOL2 = """@<TRIPOS>MOLECULE
{name}
 9 8 0 0 0
SMALL
NO_CHARGES

@<TRIPOS>ATOM
      1 C1         -0.9300    0.0580    0.0490 C.3     1  UNL1        0.0000
      2 C2          0.5030   -0.3880   -0.1200 C.3     1  UNL1        0.0000
      3 O1          1.3040    0.7540    0.0890 O.3     1  UNL1        0.0000
      4 H1         -1.2220    0.7650   -0.7340 H       1  UNL1        0.0000
      5 H2         -1.5820   -0.8170   -0.0290 H       1  UNL1        0.0000
      6 H3         -1.0500    0.5360    1.0280 H       1  UNL1        0.0000
      7 H4          0.6570   -0.8240   -1.1160 H       1  UNL1        0.0000
      8 H5          0.7690   -1.1390    0.6350 H       1  UNL1        0.0000
      9 H6          1.1720    1.0910    0.9970 H       1  UNL1        0.0000
@<TRIPOS>BOND
     1     1     2    1
     2     2     3    1
     3     1     4    1
     4     1     5    1
     5     1     6    1
     6     2     7    1
     7     2     8    1
     8     3     9    1
"""


def test_mol2_multi_record(tmp_path):
    path = write(tmp_path / "two.mol2", MOL2.format(name="ethanol") + MOL2.format(name="again"))
    first, second = read_all(path, policy="from-file")
    assert (first.id, second.id) == ("ethanol", "again")
    assert canonical(first.mol) == "CCO" and first.mol.GetNumAtoms() == 9
    assert positions(first.mol)[2].tolist() == pytest.approx([1.304, 0.754, 0.089])


def test_xyz_frames_perceive_bonds_charge_and_stereo(tmp_path, ala):
    acetate = molecule_from_smiles("CC(=O)[O-]", "acetate").mol
    frame2 = Chem.MolToXYZBlock(acetate).split("\n", 2)
    text = Chem.MolToXYZBlock(ala.mol) + f"{frame2[0]}\ncharge=-1\n{frame2[2]}"
    path = write(tmp_path / "two.xyz", text)
    first, second = read_all(path, policy="from-file")
    assert first.id == "two.xyz#0" and canonical(first.mol) == canonical(ala.mol)  # incl. stereo
    np.testing.assert_allclose(positions(first.mol), positions(ala.mol), atol=1e-5)
    assert canonical(second.mol) == "CC(=O)[O-]"
    assert any("bonds perceived" in n for n in first.notes)


def test_xyz_without_hydrogens_needs_a_smiles(tmp_path, ala):
    heavy = Chem.RemoveHs(ala.mol)
    path = write(tmp_path / "heavy.xyz", Chem.MolToXYZBlock(heavy))
    (error,) = read_all(path)
    assert isinstance(error, MoleculeError) and "no hydrogens" in error.reason


def test_pdb_with_and_without_conect(tmp_path):
    benzoate = molecule_from_smiles("O=C([O-])c1ccccc1", "benzoate").mol
    block = Chem.MolToPDBBlock(benzoate)
    (with_conect,) = read_all(write(tmp_path / "a.pdb", block), policy="from-file")
    assert canonical(with_conect.mol) == "O=C([O-])c1ccccc1"
    np.testing.assert_allclose(positions(with_conect.mol), positions(benzoate), atol=1e-3)
    no_conect = "\n".join(l for l in block.splitlines() if not l.startswith("CONECT"))
    (perceived,) = read_all(write(tmp_path / "b.pdb", no_conect), policy="from-file")
    assert canonical(perceived.mol) == "O=C([O-])c1ccccc1"


def test_smiles_and_csv_files(tmp_path):
    smi = write(tmp_path / "a.smi", "smiles name\n# comment\nCCO ethanol\n\nc1ccccc1\n")
    items = read_all(smi)
    assert [(i.id, i.source) for i in items] == [("ethanol", f"{smi}#2"), ("a.smi#4", f"{smi}#4")]
    csv = write(tmp_path / "b.csv", 'Name,SMILES,y\nwater,O,1\n"x, y",CC,2\n')
    assert [(i.id, canonical(i.mol)) for i in read_all(csv)] == [("water", "O"), ("x, y", "CC")]


# --- 3D policy -------------------------------------------------------------------------


def test_flat_2d_sdf_follows_the_policy(tmp_path):
    path = write(tmp_path / "flat.sdf", sdf(flat_block(ALA, "ala2d")))
    (error,) = read_all(path, policy="from-file")
    assert isinstance(error, MoleculeError) and "conformer is 2D" in error.reason
    (auto,) = read_all(path, policy="auto")
    assert auto.conformer == "generated"
    assert auto.notes == ["file conformer is 2D: generated a 3D conformer"]
    (generated,) = read_all(path, policy="generate")
    assert generated.conformer == "generated"
    assert Chem.FindMolChiralCenters(generated.mol) == [(1, "S")]  # wedge stereo kept
    (kept,) = read_all(path, policy="keep")
    assert kept.conformer == "file" and kept.mol.GetNumAtoms() == 6


def test_planar_3d_geometries_are_3d_and_mislabelled_depictions_are_not(tmp_path):
    benzene = molecule_from_smiles("c1ccccc1").mol
    centred = positions(benzene) - positions(benzene).mean(0)
    planar = centred @ np.linalg.svd(centred)[2].T  # principal axes: the ring in the xy plane
    assert np.abs(planar[:, 2]).max() < 0.05
    lines = ["12", "benzene in the xy plane"] + [
        f"{a.GetSymbol()} {x:.6f} {y:.6f} 0.0" for a, (x, y, _) in zip(benzene.GetAtoms(), planar)
    ]
    (record,) = read_all(write(tmp_path / "benzene.xyz", "\n".join(lines) + "\n"), policy="from-file")
    assert record.conformer == "file" and canonical(record.mol) == "c1ccccc1"
    # a depiction (explicit H, every z = 0) whose header wrongly says 3D
    depiction = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.Compute2DCoords(depiction)
    block = Chem.MolToMolBlock(depiction).replace("2D", "3D", 1)
    (error,) = read_all(write(tmp_path / "wrong.sdf", sdf(block)), policy="from-file")
    assert isinstance(error, MoleculeError) and "conformer is 2D" in error.reason
    # the same without hydrogens in the file: the tetrahedral carbons with three or four
    # carbons around them still give it away (isobutane, neopentane, tert-butanol)
    for smiles in ("CC(C)C", "CC(C)(C)C", "CC(C)(C)O"):
        heavy = Chem.MolFromSmiles(smiles)
        AllChem.Compute2DCoords(heavy)
        block = Chem.MolToMolBlock(heavy).replace("2D", "3D", 1)
        (error,) = read_all(write(tmp_path / "heavy.sdf", sdf(block)), policy="from-file")
        assert isinstance(error, MoleculeError) and "conformer is 2D" in error.reason, smiles
    # three heavy atoms are always coplanar: a flat 3D-flagged ethanol skeleton stays 3D
    skeleton = Chem.MolFromSmiles("CCO")
    AllChem.Compute2DCoords(skeleton)
    block = Chem.MolToMolBlock(skeleton).replace("2D", "3D", 1)
    (record,) = read_all(write(tmp_path / "skeleton.sdf", sdf(block)), policy="from-file")
    assert record.conformer == "file"


def test_auto_uses_the_file_when_3d_and_generate_keeps_stereo(tmp_path, ala):
    mirror = Chem.Mol(ala.mol)
    for i, p in enumerate(positions(mirror)):
        mirror.GetConformer().SetAtomPosition(i, Point3D(p[0], p[1], -p[2]))
    mirror.SetProp("_Name", "d-ala")
    path = write(tmp_path / "d.sdf", sdf(Chem.MolToMolBlock(mirror)))
    (auto,) = read_all(path)
    assert auto.conformer == "file" and auto.notes == []
    (generated,) = read_all(path, policy="generate")
    assert generated.conformer == "generated"
    assert Chem.FindMolChiralCenters(generated.mol) == [(1, "R")]  # from the 3D geometry


def test_smiles_policies():
    with pytest.raises(MoleculeError, match="no coordinates"):
        molecule_from_smiles("CCO", policy="from-file")
    record = molecule_from_smiles("CCO")
    assert record.id == "CCO" and record.conformer == "generated"
    assert record.notes == ["no coordinates: generated a 3D conformer"]
    assert molecule_from_smiles("CCO", policy="keep").conformer == "none"
    with pytest.raises(ValueError, match="policy"):
        molecule_from_smiles("CCO", policy="sometimes")


def test_conformer_generation_is_deterministic():
    a = molecule_from_smiles("CC(=O)Oc1ccccc1C(=O)O").mol
    b = molecule_from_smiles("CC(=O)Oc1ccccc1C(=O)O").mol
    assert np.array_equal(positions(a), positions(b))
    assert a.GetConformer().Is3D() and np.abs(positions(a)[:, 2]).max() > 0.1


@pytest.mark.parametrize("one, other", [("CC(=O)Oc1ccccc1C(=O)O", "OC(=O)c1ccccc1OC(C)=O"),
                                        ("C[C@@H](C(=O)O)N", "N[C@@H](C)C(=O)O"),
                                        ("CN1CCCC1c1cccnc1", "c1ncccc1C1CCCN1C"),
                                        ("CC(=O)[O-].[Na+]", "[Na+].CC(=O)[O-]")])
def test_the_conformer_and_tokens_do_not_depend_on_the_smiles_spelling(one, other):
    # was: embedded in the input's atom order: aspirin's two spellings shared 39 of 52 tokens
    a, b = molecule_from_smiles(one), molecule_from_smiles(other)
    match = b.mol.GetSubstructMatch(a.mol, useChirality=True)  # a's atom -> b's atom
    assert len(match) == a.mol.GetNumAtoms()
    ta, tb = fingerprint_record(a), fingerprint_record(b)
    heavy_a = [i for i, atom in enumerate(a.mol.GetAtoms()) if atom.GetAtomicNum() > 1]
    heavy_b = [i for i, atom in enumerate(b.mol.GetAtoms()) if atom.GetAtomicNum() > 1]
    # rows stay in each input's own heavy-atom order, and each atom has the same tokens
    assert ta.tolist() == [tb[heavy_b.index(match[i])].tolist() for i in heavy_a]
    da = np.linalg.norm(positions(a.mol)[heavy_a][:, None] - positions(a.mol)[heavy_a][None], axis=-1)
    mb = [match[i] for i in heavy_a]
    db = np.linalg.norm(positions(b.mol)[mb][:, None] - positions(b.mol)[mb][None], axis=-1)
    assert np.allclose(da, db, atol=1e-4)  # the same geometry, up to symmetric atoms swapped


def test_a_structure_files_own_conformer_is_kept_as_is(tmp_path, ala):
    # canonical embedding is for generated conformers only: a 3D file's coordinates are its own
    path = tmp_path / "a.sdf"
    path.write_text(Chem.MolToMolBlock(ala.mol) + "$$$$\n")
    (record,) = read_all(path, policy="auto")
    assert record.conformer == "file"
    np.testing.assert_allclose(positions(record.mol), positions(ala.mol), atol=1e-4)


def test_embedding_failure_is_an_error(monkeypatch):
    monkeypatch.setattr(conformer_module.rdDistGeom, "EmbedMolecule", lambda mol, params: -1)
    with pytest.raises(MoleculeError, match="embedding failed") as info:
        molecule_from_smiles("CCO", "ethanol")
    assert info.value.id == "ethanol"


# --- SMILES + coordinates (3D-MoIT form) --------------------------------------------------


def test_atoms_with_smiles_are_mapped_not_assigned_by_index(ala):
    elements = [a.GetSymbol() for a in ala.mol.GetAtoms()]
    coords = positions(ala.mol)
    order = np.random.default_rng(0).permutation(len(elements))  # coordinates' own order
    shuffled = [elements[i] for i in order]
    record = molecule_from_atoms(shuffled, coords[order], "ala", smiles=ALA)
    assert [a.GetSymbol() for a in record.mol.GetAtoms()] == shuffled
    np.testing.assert_array_equal(positions(record.mol), coords[order])
    assert canonical(record.mol) == canonical(ala.mol)
    assert "SMILES verified against the coordinates atom by atom" in record.notes
    # heavy atoms only: the SMILES supplies hydrogens, bond orders and charges
    heavy = [i for i in order if elements[i] != "H"]
    record = molecule_from_atoms([elements[i] for i in heavy], coords[heavy], "ala", smiles=ALA)
    assert canonical(record.mol) == canonical(ala.mol)


@pytest.mark.parametrize("smiles, heavy", [("C1=CCCC=C1", True), ("CC(=O)O", True), ("OC(=O)c1ccccc1", True),
                                           ("C1=CC=CC=CC=C1", False)])
def test_symmetric_graphs_take_the_smiles_bond_orders_where_the_geometry_has_them(smiles, heavy):
    # was: the first of the graph's symmetric matches: 1,3-cyclohexadiene's double bonds on
    # its 1.50 A bonds, acetic acid's C=O on the hydroxyl oxygen, with the note "verified"
    truth = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(truth, randomSeed=7)
    AllChem.MMFFOptimizeMolecule(truth)
    if heavy:
        truth = Chem.RemoveHs(truth)
    for seed in range(4):
        order = [int(i) for i in np.random.default_rng(seed).permutation(truth.GetNumAtoms())]
        mol = Chem.RenumberAtoms(truth, order)
        record = molecule_from_atoms([a.GetSymbol() for a in mol.GetAtoms()], positions(mol), "x", smiles=smiles)
        for bond in mol.GetBonds():
            mine = record.mol.GetBondBetweenAtoms(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
            assert mine.GetBondTypeAsDouble() == bond.GetBondTypeAsDouble(), (smiles, seed)
        assert [a.GetTotalNumHs() for a in record.mol.GetAtoms()][:mol.GetNumAtoms()] == \
            [a.GetTotalNumHs() for a in mol.GetAtoms()]


def test_atoms_with_mismatching_smiles_are_rejected(ala):
    elements = [a.GetSymbol() for a in ala.mol.GetAtoms()]
    coords = positions(ala.mol)
    with pytest.raises(MoleculeError, match="SMILES"):  # same formula, other graph
        molecule_from_atoms(elements, coords, "ala", smiles="NCC(=O)OC")
    wrong = ["S" if e == "O" else e for e in elements]
    with pytest.raises(MoleculeError, match="SMILES") as info:
        molecule_from_atoms(wrong, coords, "ala-s", smiles=ALA)
    assert info.value.id == "ala-s"


def test_a_stated_total_charge_must_be_the_smiles_one(tmp_path):
    """Was ignored beside a SMILES: acetate's heavy atoms with charge -1 and the acid's SMILES
    became the neutral acid, an XYZ with `charge=+2` and ethanol's SMILES neutral ethanol."""
    heavy = Chem.AddHs(Chem.MolFromSmiles("CC(=O)[O-]"))
    AllChem.EmbedMolecule(heavy, randomSeed=7)
    heavy = Chem.RemoveHs(heavy)
    elements, coords = [a.GetSymbol() for a in heavy.GetAtoms()], positions(heavy)
    with pytest.raises(MoleculeError, match=r"its total charge is -1 but its SMILES' is \+0") as info:
        molecule_from_atoms(elements, coords, "ac", smiles="CC(=O)O", charge=-1)
    assert info.value.id == "ac"
    assert Chem.GetFormalCharge(molecule_from_atoms(elements, coords, "ac", smiles="CC(=O)[O-]", charge=-1).mol) == -1
    assert Chem.GetFormalCharge(molecule_from_atoms(elements, coords, "ac", smiles="CC(=O)[O-]").mol) == -1  # not stated
    ethanol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(ethanol, randomSeed=7)
    block = Chem.MolToXYZBlock(ethanol).splitlines()
    xyz = tmp_path / "e.xyz"
    xyz.write_text("\n".join([block[0], "ethanol charge=+2", *block[2:]]) + "\n")
    resolver = InputResolver()
    with pytest.raises(InputError, match=r"its total charge is \+2 but its SMILES' is \+0"):
        resolver.resolve({"structure": str(xyz), "smiles": "CCO"}, "e", depiction=False)
    xyz.write_text("\n".join([block[0], "ethanol", *block[2:]]) + "\n")  # no charge stated: 0 for perception
    assert resolver.resolve({"structure": str(xyz), "smiles": "CCO"}, "e2", depiction=False).molecule_fp is not None
    with pytest.raises(InputError, match=r"its total charge is \+3 but its SMILES' is -1"):
        resolver.resolve({"atoms": elements, "coordinates": coords.tolist(), "charge": 3, "smiles": "CC(=O)[O-]"}, "a",
                         depiction=False)


def test_sdf_smiles_field_is_verified(tmp_path, ala):
    good, bad = Chem.Mol(ala.mol), Chem.Mol(ala.mol)
    good.SetProp("smiles", ALA)
    bad.SetProp("smiles", "CCC(=O)O")
    path = tmp_path / "f.sdf"
    with Chem.SDWriter(str(path)) as writer:
        writer.write(good)
        writer.write(bad)
    ok, error = read_all(path, smiles_field="smiles")
    assert isinstance(ok, MoleculeRecord) and isinstance(error, MoleculeError)
    assert "SMILES" in error.reason


def test_atoms_with_smiles_stating_other_stereo_or_isotopes_are_rejected(ala):
    # was: the coordinates won with a note, and the depiction (drawn from the SMILES) showed
    # the other enantiomer next to the coordinates' tokens
    elements = [a.GetSymbol() for a in ala.mol.GetAtoms()]
    coords = positions(ala.mol)
    with pytest.raises(MoleculeError, match=r"contradicts the coordinates: atom C2 is R in the SMILES, S in the"):
        molecule_from_atoms(elements, coords, "ala", smiles="C[C@@H](N)C(=O)O")
    # an atom list states no isotopes (but D and T): the SMILES' labels are the molecule's
    labelled = molecule_from_atoms(elements, coords, "ala", smiles="[14CH3][C@H](N)C(=O)O")
    assert canonical(labelled.mol) == "[14CH3][C@H](N)C(=O)O"
    # what the SMILES leaves out, the coordinates say; what it gives, agrees
    for smiles in (ALA, "CC(N)C(=O)O", "OC(=O)[C@@H](N)C"):
        assert canonical(molecule_from_atoms(elements, coords, "ala", smiles=smiles).mol) == canonical(ala.mol)
    trans = molecule_from_smiles("C/C=C/C", "trans")
    butene = ([a.GetSymbol() for a in trans.mol.GetAtoms()], positions(trans.mol))
    with pytest.raises(MoleculeError, match=r"double bond C2=C3 is Z in the SMILES, E in the"):
        molecule_from_atoms(*butene, "butene", smiles="C/C=C\\C")
    molecule_from_atoms(*butene, "butene", smiles="CC=CC")


def test_sdf_smiles_field_must_state_the_files_stereo(tmp_path, ala):
    mirror = Chem.Mol(ala.mol)
    mirror.SetProp("smiles", "C[C@@H](N)C(=O)O")
    path = tmp_path / "m.sdf"
    with Chem.SDWriter(str(path)) as writer:
        writer.write(mirror)
    (error,) = read_all(path, smiles_field="smiles")
    assert isinstance(error, MoleculeError) and "atom C2 is R in the SMILES, S in the structure" in error.reason


# --- bad-input battery ---------------------------------------------------------------


def test_empty_file(tmp_path):
    (error,) = read_all(write(tmp_path / "empty.sdf", ""))
    assert isinstance(error, MoleculeError) and error.reason == "file contains no molecules"


def test_garbage_text(tmp_path):
    (error,) = read_all(write(tmp_path / "g.sdf", "this is not\na molecule file\n"))
    assert isinstance(error, MoleculeError) and "unparseable" in error.reason
    (error,) = read_all(write(tmp_path / "g.smi", "this is not a molecule\n"))
    assert isinstance(error, MoleculeError) and "unparseable SMILES" in error.reason


def test_smiles_with_valence_error():
    with pytest.raises(MoleculeError, match="valence") as info:
        molecule_from_smiles("C(C)(C)(C)(C)C", "pentavalent")
    assert info.value.id == "pentavalent" and "pentavalent" in str(info.value)


def test_sdf_with_zero_atoms(tmp_path):
    empty = Chem.Mol()
    (error,) = read_all(write(tmp_path / "zero.sdf", sdf(Chem.MolToMolBlock(empty))))
    assert isinstance(error, MoleculeError) and error.reason == "no atoms"


def test_truncated_sdf(tmp_path, ala):
    block = Chem.MolToMolBlock(ala.mol)
    path = write(tmp_path / "t.sdf", sdf(block) + block[: len(block) // 2])
    good, error = read_all(path)
    assert isinstance(good, MoleculeRecord) and isinstance(error, MoleculeError)
    assert error.source == f"{path}#1"


def test_wrong_atom_count_for_coordinates(tmp_path, ala):
    with pytest.raises(MoleculeError, match="3 elements but 2 coordinate rows"):
        molecule_from_atoms(["C", "C", "O"], np.zeros((2, 3)), "x")
    lines = Chem.MolToXYZBlock(ala.mol).splitlines()
    for bad_count in (len(lines) - 3, len(lines) - 1):  # one atom too few / too many
        (error,) = read_all(write(tmp_path / "n.xyz", "\n".join([str(bad_count)] + lines[1:])))
        assert isinstance(error, MoleculeError) and "count line says" in error.reason


def test_nan_coordinates(tmp_path, ala):
    coords = positions(ala.mol)
    coords[3, 1] = np.nan
    with pytest.raises(MoleculeError, match=r"non-finite coordinates for atoms 4$"):  # 1-based: the 4th atom line
        molecule_from_atoms([a.GetSymbol() for a in ala.mol.GetAtoms()], coords, "nan")
    block = Chem.MolToMolBlock(ala.mol).splitlines()
    block[4] = "       nan" + block[4][10:]
    (error,) = read_all(write(tmp_path / "nan.sdf", sdf("\n".join(block))))
    assert isinstance(error, MoleculeError) and "coordinates" in error.reason


def test_overlapping_atoms_are_an_error(ala):
    coords = positions(ala.mol)
    coords[1] = coords[0]
    with pytest.raises(MoleculeError, match="overlap"):
        molecule_from_atoms([a.GetSymbol() for a in ala.mol.GetAtoms()], coords, "x")


CAP_REASON = ("too large: 400 heavy atoms > max_atoms=256 (the heavy-atom cap; raise it with "
              "max_atoms / --max-atoms, 'none' lifts it)")


def test_400_atom_molecule_and_max_atoms(tmp_path):
    path = write(tmp_path / "c400.sdf", sdf(Chem.MolToMolBlock(chain(400))))
    (error,) = read_all(path, policy="from-file")  # the default cap, DeepMoLM's 256
    assert isinstance(error, MoleculeError) and error.reason == CAP_REASON
    (record,) = read_all(path, policy="from-file", max_atoms=None)
    assert record.num_heavy_atoms == 400 and record.keep_atoms is None
    (error,) = read_all(path, max_atoms=256)
    assert isinstance(error, MoleculeError) and error.reason == CAP_REASON
    (cut,) = read_all(path, max_atoms=256, too_large="truncate")
    assert cut.keep_atoms == 256 and cut.mol.GetNumHeavyAtoms() == 400
    assert cut.notes == ["truncated: tokens for the first 256 of 400 heavy atoms (144 dropped, max_atoms=256)"]


def test_default_cap_fails_before_any_conformer_work(monkeypatch):
    def no_embedding(*args, **kwargs):
        raise AssertionError("a molecule over the cap must not be embedded")

    monkeypatch.setattr(conformer_module.rdDistGeom, "EmbedMolecule", no_embedding)
    with pytest.raises(MoleculeError) as info:
        molecule_from_smiles("C" * 400, "c400")
    assert info.value.id == "c400" and info.value.reason == CAP_REASON
    atoms = chain(257)
    with pytest.raises(MoleculeError, match=r"257 heavy atoms > max_atoms=256"):
        molecule_from_atoms(["C"] * 257, positions(atoms), "c257", smiles="C" * 257)


def test_embedding_time_limit_fails_fast_and_names_the_limit():
    # Uncapped, this chain takes minutes (one random-coordinate ETKDG attempt, then MMFF94
    # on 602 atoms); with a 1 s limit it stops within RDKit's next stage check.
    def embed():
        with pytest.raises(MoleculeError) as info:
            molecule_from_smiles("C" * 200, "c200", max_atoms=None, embed_timeout=1)
        return info

    # CPU time, not wall-clock: a busy machine stretches RDKit's stages, not the work done in them
    info = within_cpu_seconds(60, embed, "C200 with embed_timeout=1")
    assert info.value.reason.startswith("3D embedding stopped at the time limit embed_timeout=1 s")
    assert "200 heavy atoms (602 with hydrogens)" in info.value.reason


def test_an_embedding_that_overran_its_time_limit_says_how_long_it_took(monkeypatch):
    # was: "stopped at the time limit embed_timeout=60 s" after 109 s (the GUI waited 2.5 minutes)
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    said = conformer_module._embed_failure(mol, 1, False, 60, True, {}, seconds=109.4)
    assert said.startswith("3D embedding stopped at the time limit embed_timeout=60 s, after 109 s (RDKit checks")
    assert ", after" not in conformer_module._embed_failure(mol, 1, False, 60, True, {}, seconds=61)
    # through the embedding itself: an RDKit step that ran 109 s of a 60 s limit
    clock = [1000.0]

    def slow_step(work, params):
        clock[0] += 109.0
        return -1

    monkeypatch.setattr(conformer_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(conformer_module.rdDistGeom, "EmbedMolecule", slow_step)
    with pytest.raises(MoleculeError, match=r"embed_timeout=60 s, after 109 s \(RDKit checks"):
        molecule_from_smiles("CC(C)OCC(N)=O", "slow", embed_timeout=60)  # a molecule of its own: no cache


def test_limits_do_not_change_normal_molecules_and_mmff_steps_are_bounded():
    smiles = "CC(=O)Oc1ccccc1C(=O)O"
    limited = molecule_from_smiles(smiles)
    free = molecule_from_smiles(smiles, max_atoms=None, embed_timeout=None)
    assert positions(limited.mol).tobytes() == positions(free.mol).tobytes()
    assert limited.notes == free.notes
    one_step = molecule_from_smiles(smiles, mmff_max_iters=1)
    assert "MMFF94 did not converge in mmff_max_iters=1 iterations: kept the last geometry" in one_step.notes


@pytest.mark.parametrize("options, message", [
    ({"max_atoms": 0}, "max_atoms must be an integer >= 1 or None"),
    ({"max_atoms": 2.5}, "max_atoms must be an integer >= 1 or None"),
    ({"embed_timeout": 0}, "embed_timeout must be > 0 seconds"),
    ({"embed_timeout": float("inf")}, "embed_timeout must be > 0 seconds"),
    ({"mmff_max_iters": 0}, "mmff_max_iters must be an integer >= 1"),
])
def test_bad_limits_are_usage_errors(options, message):
    with pytest.raises(ValueError, match=message) as info:
        molecule_from_smiles("CCO", **options)
    assert not isinstance(info.value, MoleculeError)


def test_salt_keeps_all_fragments_or_the_largest():
    record = molecule_from_smiles("O=C([O-])c1ccccc1.[Na+]")
    assert record.num_heavy_atoms == 10 and "2 fragments, all kept" in record.notes
    assert any("embedded together" in n for n in record.notes)
    conf = positions(Chem.RemoveHs(record.mol))
    assert np.linalg.norm(conf[:9] - conf[9], axis=1).min() > 1.5  # not stacked on the anion
    largest = molecule_from_smiles("O=C([O-])c1ccccc1.[Na+]", fragments="largest")
    assert canonical(largest.mol) == "O=C([O-])c1ccccc1"
    assert largest.notes[0] == "kept the largest of 2 fragments (9 heavy atoms); dropped [Na+]"


def test_metal_complex_keeps_etkdg_geometry_with_a_note():
    record = molecule_from_smiles("N[Pt](N)(Cl)Cl", "cisplatin")
    assert record.conformer == "generated" and record.num_heavy_atoms == 5
    assert any("MMFF94 has no parameters" in n and "Pt" in n for n in record.notes)
    with pytest.raises(MoleculeError, match="MMFF94 has no parameters"):
        generate_conformer(Chem.MolFromSmiles("N[Pt](N)(Cl)Cl"), "cisplatin", require_mmff=True)


def test_charges_isotopes_and_hydrogens_are_kept(tmp_path, ala):
    record = molecule_from_smiles("[14CH3]C(=O)[O-]")
    assert record.mol.GetAtomWithIdx(0).GetIsotope() == 14
    # the charge stays, on one of the two oxygens: which one the conformer decides
    # (shared_charges.py: the same coordinates give one molecule whichever oxygen was written)
    assert sorted(a.GetFormalCharge() for a in record.mol.GetAtoms() if a.GetSymbol() == "O") == [-1, 0]
    assert Chem.MolToSmiles(Chem.RemoveHs(record.mol)) == "[14CH3]C(=O)[O-]"
    heavy = Chem.RemoveHs(ala.mol)
    (no_h,) = read_all(write(tmp_path / "noh.sdf", sdf(Chem.MolToMolBlock(heavy))), policy="from-file")
    assert no_h.mol.GetNumAtoms() == 6  # no hydrogens invented for a file conformer


def test_dummy_atoms_and_hydrogen_only_molecules_are_errors():
    with pytest.raises(MoleculeError, match="dummy"):
        molecule_from_smiles("*CC")
    with pytest.raises(MoleculeError, match="no heavy atoms"):
        molecule_from_smiles("[H][H]")


def test_molecule_error_pickles_with_its_fields():
    error = pickle.loads(pickle.dumps(MoleculeError("m1", "why", source="f.sdf#3")))
    assert (error.id, error.reason, error.source) == ("m1", "why", "f.sdf#3")
    assert str(error) == "molecule 'm1': why" and isinstance(error, ValueError)


def test_rdkit_warnings_on_a_good_record_become_notes(tmp_path, ala):
    block = Chem.MolToMolBlock(ala.mol).replace("3D", "2D", 1)  # z != 0 under a 2D flag
    (record,) = read_all(write(tmp_path / "tagged.sdf", sdf(block)), policy="from-file")
    assert record.conformer == "file"
    assert any(n.startswith("RDKit: ") and "tagged as 2D" in n for n in record.notes)


def test_unassigned_stereocentres_are_named_as_atoms_are():
    # was "stereocentres [1, 4] are unassigned": RDKit's 0-based indices, no element
    from deepmolm_plugin.molecule import molecule_from_smiles

    notes = molecule_from_smiles("CC(O)CC(N)C", id="x").notes
    assert any(n.startswith("stereocentres C2, C5 are unassigned") for n in notes), notes


def test_rdkit_valence_messages_name_atoms_one_based():
    # was "Explicit valence for atom # 1 N": RDKit's 0-based index, the atom before the one meant
    from deepmolm_plugin.molecule import MoleculeError, molecule_from_smiles

    with pytest.raises(MoleculeError, match="Explicit valence for atom N2, 5, is greater than permitted"):
        molecule_from_smiles("C[N](C)(C)(C)C", id="x")
    with pytest.raises(MoleculeError, match="Unkekulized atoms: 1 2 3 4 5"):
        molecule_from_smiles("c1cccc1", id="x")


def test_centres_that_make_one_stereoisomer_get_no_note():
    # was: cubane's eight carbons, "possible" centres to RDKit's perception, got the note that
    # the generated conformer fixes one configuration of a molecule that has only one
    from deepmolm_plugin.molecule import molecule_from_smiles

    assert not any("unassigned" in n for n in molecule_from_smiles("C12C3C4C1C5C2C3C45", id="cubane").notes)
    notes = molecule_from_smiles("CC1CCC(C)CC1", id="dimethylcyclohexane").notes  # cis and trans
    assert any(n.startswith("stereocentres C2, C5 are unassigned") for n in notes), notes
