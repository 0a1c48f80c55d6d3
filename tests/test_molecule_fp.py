"""molecule_fp: E3FP per-atom tokens read from every shell E3FP made, the contract and its collate."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem
from rdkit.Geometry import Point3D

from e3fp.fingerprint.fprinter import Fingerprinter

from deepmolm_plugin.molecule import (
    MoleculeError,
    fingerprint_record,
    molecule_from_smiles,
    molecule_fp,
    read_structures,
)
from deepmolm_plugin.molecule import fingerprint as fingerprint_module
from deepmolm_plugin.molecule_fp import DEEPMOLM, PAD, FingerprintSettings, MoleculeFpError, validate, validate_batch
from deepmolm_plugin.molecule_fp import collate as collate_molecule_fp

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
ALA = "C[C@H](N)C(=O)O"


@pytest.fixture(scope="module")
def aspirin():
    return molecule_from_smiles(ASPIRIN, "aspirin")


@pytest.fixture(scope="module")
def ala():
    record = molecule_from_smiles(ALA, "ala")
    record.mol.SetProp("_Name", "ala")
    return record


def read_one(path, **options):
    (item,) = read_structures(path, **options)
    assert not isinstance(item, MoleculeError), item
    return item


def write_sdf(path, mol):
    path.write_text(Chem.MolToMolBlock(mol) + "$$$$\n")
    return path


def direct_tokens(mol, bits=4096, level=3):
    """Reference: a direct e3fp Fingerprinter run with DeepMoLM's settings, read back
    through the generator's per-level {atom: shell} dicts (not through all_shells)."""
    heavy = Chem.RemoveAllHs(mol)
    fprinter = Fingerprinter(
        bits=bits, level=level, radius_multiplier=1.718, stereo=True, counts=False,
        include_disconnected=True, rdkit_invariants=True, exclude_floating=False,
        remove_duplicate_substructs=True,
    )
    fprinter.run(conf=heavy.GetConformer().GetId(), mol=heavy)
    out = np.full((heavy.GetNumAtoms(), level + 1), -1, dtype=np.int64)
    for lvl, shells in fprinter.shells_gen.shells_dict.items():
        for atom, shell in shells.items():
            out[atom, lvl] = (int(shell.identifier) + 2**32) % 2**32 % bits
    return out


def mirrored(mol):
    out = Chem.Mol(mol)
    conf = out.GetConformer()
    for i in range(out.GetNumAtoms()):
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, Point3D(p.x, p.y, -p.z))
    return out


def test_tokens_equal_a_direct_fingerprinter_run(aspirin, ala):
    for record in (aspirin, ala):
        tokens = molecule_fp(record.mol)
        assert tokens.dtype == torch.int64
        assert tokens.shape == (record.mol.GetNumHeavyAtoms(), 4)
        np.testing.assert_array_equal(tokens.numpy(), direct_tokens(record.mol))
        assert ((tokens >= -1) & (tokens < 4096)).all() and (tokens[:, 0] >= 0).all()
    assert torch.equal(molecule_fp(aspirin.mol), molecule_fp(aspirin.mol))  # deterministic


def test_minus_one_only_where_e3fp_stopped():
    assert molecule_fp(molecule_from_smiles("C").mol)[:, 1:].eq(-1).all()  # one heavy atom
    ethanol = molecule_fp(molecule_from_smiles("CCO").mol)
    assert (ethanol[:, :2] >= 0).all() and ethanol[:, 2:].eq(-1).all()  # level 2 adds nothing new


def test_permuting_the_sdf_atom_order_permutes_the_rows(tmp_path, aspirin):
    mol = aspirin.mol
    perm = [int(i) for i in np.random.default_rng(1).permutation(mol.GetNumAtoms())]
    permuted = Chem.RenumberAtoms(mol, perm)  # new atom j = old atom perm[j]
    a = fingerprint_record(read_one(write_sdf(tmp_path / "a.sdf", mol), policy="from-file"))
    b = fingerprint_record(read_one(write_sdf(tmp_path / "b.sdf", permuted), policy="from-file"))
    heavy_old = [a_.GetIdx() for a_ in mol.GetAtoms() if a_.GetAtomicNum() > 1]
    heavy_new = [perm[a_.GetIdx()] for a_ in permuted.GetAtoms() if a_.GetAtomicNum() > 1]
    rows = [heavy_old.index(old) for old in heavy_new]
    assert rows != list(range(len(rows)))  # the order really changed
    assert torch.equal(b, a[rows])


def test_enantiomers_differ_at_levels_1_and_up(tmp_path, ala):
    l_ala = fingerprint_record(read_one(write_sdf(tmp_path / "l.sdf", ala.mol), policy="from-file"))
    d_record = read_one(write_sdf(tmp_path / "d.sdf", mirrored(ala.mol)), policy="from-file")
    assert Chem.FindMolChiralCenters(d_record.mol) == [(1, "R")]
    d_ala = fingerprint_record(d_record)
    assert torch.equal(l_ala[:, 0], d_ala[:, 0])  # level 0: atom invariants only
    assert torch.equal(l_ala == -1, d_ala == -1)  # same shells exist (level 3: none, small)
    present = l_ala[1, 1:] >= 0
    assert present.sum() >= 2
    assert (l_ala[1, 1:][present] != d_ala[1, 1:][present]).all()  # stereocentre, levels >= 1
    assert (l_ala[:, 2] != d_ala[:, 2]).all()  # level 2 sees the handedness from every atom


def test_explicit_hydrogens_do_not_change_tokens(ala):
    assert torch.equal(molecule_fp(ala.mol), molecule_fp(Chem.RemoveHs(ala.mol)))


def test_flat_2d_sdf_follows_the_policy(tmp_path):
    flat = Chem.MolFromSmiles(ALA)
    AllChem.Compute2DCoords(flat)
    path = write_sdf(tmp_path / "flat.sdf", flat)
    with pytest.raises(MoleculeError, match="2D"):
        molecule_fp(flat)  # never fingerprinted as if it were 3D
    (error,) = read_structures(path, policy="from-file")
    assert isinstance(error, MoleculeError)
    record = read_one(path, policy="auto")
    assert record.conformer == "generated"
    assert fingerprint_record(record).shape == (6, 4)


def test_isotopes_charges_metals_and_salts():
    def level0(smiles):
        return molecule_fp(molecule_from_smiles(smiles).mol)[:, 0].tolist()

    assert level0("[14CH4]") != level0("C")
    assert level0("[13CH4]") == level0("C")  # e3fp's int(mass delta) is 0 for 13C
    assert level0("CC(=O)[O-]")[3] != level0("CC(=O)O")[3]
    cisplatin = molecule_fp(molecule_from_smiles("N[Pt](N)(Cl)Cl").mol)
    # Pt-N (2.0 A) and Pt-Cl (2.3 A) are longer than the level-1 radius 1.718 A: no atom
    # has a neighbour in its level-1 shell, E3FP converges after level 0 (documented).
    assert cisplatin.shape == (5, 4) and (cisplatin[:, 0] >= 0).all()
    assert cisplatin[:, 1:].eq(-1).all()
    salt = molecule_fp(molecule_from_smiles("O=C([O-])c1ccccc1.[Na+]").mol)
    assert salt.shape == (10, 4) and (salt[:, 0] >= 0).all()


def test_400_atoms_and_truncation(tmp_path):
    n = 400
    mol = Chem.MolFromSmiles("C" * n)
    conf = Chem.Conformer(n)
    for i in range(n):
        conf.SetAtomPosition(i, Point3D(1.26 * i, 0.89 * (i % 2), 0.1 * (i % 2)))
    mol.AddConformer(conf)
    path = write_sdf(tmp_path / "c400.sdf", mol)
    full = fingerprint_record(read_one(path, policy="from-file", max_atoms=None))  # over the default cap
    assert full.shape == (400, 4) and (full >= 0).all()
    cut = read_one(path, policy="from-file", max_atoms=256, too_large="truncate")
    # the truncated record is fingerprinted on the whole molecule, then cut
    cut_tokens = molecule_fp(cut.mol)[: cut.keep_atoms]
    assert torch.equal(cut_tokens, full[:256])
    assert "144 dropped" in cut.notes[0]


def test_failures_are_errors_not_zeros(monkeypatch, ala):
    with pytest.raises(MoleculeError, match="no conformer"):
        molecule_fp(Chem.MolFromSmiles("CCO"))
    h2 = Chem.MolFromSmiles("[H][H]", sanitize=False)
    conf = Chem.Conformer(2)
    conf.SetAtomPosition(1, Point3D(0.74, 0.1, 0.1))
    h2.AddConformer(conf)
    Chem.SanitizeMol(h2)
    with pytest.raises(MoleculeError, match="no heavy atoms"):
        molecule_fp(h2)

    def broken(self, conf=None, mol=None):
        raise ValueError("simulated e3fp failure")

    monkeypatch.setattr(fingerprint_module.Fingerprinter, "run", broken)
    with pytest.raises(MoleculeError, match="E3FP failed: ValueError: simulated") as info:
        molecule_fp(ala.mol)
    assert info.value.id == "ala"


def test_collate_pads_with_minus_one():
    a = torch.tensor([[1, 2, 3, -1], [4, 5, 6, 7]])
    b = torch.tensor([[9, -1, -1, -1]])
    batch = collate_molecule_fp([a, b])  # (B, max_atoms, levels)
    assert batch.shape == (2, 2, 4) and batch.dtype == torch.int64
    assert torch.equal(batch[0], a) and torch.equal(batch[1, 0], b[0])
    assert batch[1, 1].eq(-1).all()
    assert collate_molecule_fp([a, b], pad_to=5).shape == (2, 5, 4)


@pytest.mark.parametrize(
    "batch, message",
    [
        ([], "empty batch"),
        ([torch.zeros((0, 4), dtype=torch.int64)], "empty"),
        ([torch.zeros((2, 4), dtype=torch.int64), torch.zeros((2, 3), dtype=torch.int64)], "different widths"),
        ([torch.zeros((2, 4), dtype=torch.int32)], "int64"),
        ([torch.tensor([[-1, -1, -1, -1]])], "level-0"),
        ([torch.tensor([[-2, 0, 0, 0]])], "below -1"),
    ],
)
def test_collate_rejects_bad_items(batch, message):
    with pytest.raises(ValueError, match=message):
        collate_molecule_fp(batch)
    with pytest.raises(ValueError, match="pad_to"):
        collate_molecule_fp([torch.zeros((3, 4), dtype=torch.int64)], pad_to=2)


def test_settings_come_from_the_model_config_and_size_the_tokens(aspirin):
    assert (DEEPMOLM.bits, DEEPMOLM.levels, DEEPMOLM.last_level, PAD) == (4096, 4, 3, -1)
    small = FingerprintSettings.from_config(SimpleNamespace(fp_bits=1024, fp_levels=2))
    assert small == FingerprintSettings(1024, 2) == FingerprintSettings.from_config({"fp_bits": 1024, "fp_levels": 2})
    assert FingerprintSettings.from_config(SimpleNamespace()) == DEEPMOLM  # a config without them: DeepMoLM's
    assert small.config_fields() == {"fp_bits": 1024, "fp_levels": 2}
    tokens = fingerprint_record(aspirin, small)
    assert tokens.shape[1] == 2 and int(tokens.max()) < 1024
    np.testing.assert_array_equal(tokens.numpy(), direct_tokens(aspirin.mol, bits=1024, level=1))
    with pytest.raises(ValueError, match="levels >= 1"):
        FingerprintSettings(4096, 0)


@pytest.mark.parametrize("tokens, message", [
    ([[1, 2]], r"must be \[atoms\]\[4\], got shape \[1, 2\]"),
    ([], r"must be \[atoms\]\[4\]"),
    ([[4096, 1, 2, 3]], r"outside \[-1, 4096\): \[4096\]"),
    ([[-1, -1, -1, -1]], r"no valid token \(all -1\)"),
    ([[1, 2, 3, 4], [-1, 5, -1, -1]], r"atoms without a level-0 token \(rows \[1\]\)"),
    ([[1.5, 2, 3, 4]], "must hold integers"),
    ("CCO", "not a list of integer rows"),
])
def test_validate_names_what_breaks_the_contract(tokens, message):
    with pytest.raises(MoleculeFpError, match=message):
        validate(tokens)


def test_validate_accepts_lists_and_tensors_and_validate_batch_allows_padding_rows():
    assert validate([[1, 2, -1, -1]]).dtype == torch.int64
    batch = collate_molecule_fp([validate([[1, 2, -1, -1]]), validate([[3, -1, -1, -1], [4, -1, -1, -1]])])
    assert batch[0, 1].tolist() == [PAD] * 4  # a padding row: fine in a batch
    validate_batch(batch, 2)
    with pytest.raises(MoleculeFpError, match="fp_levels=2"):
        validate_batch(batch, 2, FingerprintSettings(4096, 2))
