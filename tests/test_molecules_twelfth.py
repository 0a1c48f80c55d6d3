"""Twelfth sweep of molecule inputs: 2D layouts taken for 3D conformers (z rounding noise, a
tilted plane) and flat XYZ files that bond perception broke into an alkoxide and an H+,
`--fragments largest` keeping the first of two copies in the file, XYZ messages that named
atoms 0-based or advised an option the tools lack, "a free ion" for a neutral atom, and
"--out x hold those only"."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.molecule import (MoleculeError, conformer_is_3d, fingerprint_record, molecule_from_atoms,
                                      molecule_from_smiles, read_structures)
from deepmolm_plugin.molecule.tools import _Reporter

CHIRAL = "CC(C)(C)C[C@H](N)C(=O)O"  # tetrahedral carbons and a wedged stereocentre


def _layout(smiles: str, hydrogens: bool = False) -> Chem.Mol:
    mol = Chem.MolFromSmiles(smiles)
    mol = Chem.AddHs(mol) if hydrogens else mol
    AllChem.Compute2DCoords(mol)
    return mol


def _embedded(smiles: str, seed: int = 7) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


def _move(mol: Chem.Mol, how) -> Chem.Mol:
    """A copy of ``mol`` with each position p replaced by how(index, p) and flagged 3D."""
    mol = Chem.Mol(mol)
    conf = mol.GetConformer()
    for i in range(mol.GetNumAtoms()):
        conf.SetAtomPosition(i, how(i, np.array(conf.GetAtomPosition(i))))
    conf.Set3D(True)
    return mol


def _tilt(i, p, angle=0.52):  # about x
    return (p[0], p[1] * math.cos(angle) - p[2] * math.sin(angle), p[1] * math.sin(angle) + p[2] * math.cos(angle))


def _noise(i, p):  # z rounding noise of +-0.002 A, as some converters write a 2D layout
    return (p[0], p[1], (0.0, 0.002, -0.002)[i % 3])


# --- 2. 2D layouts in any orientation --------------------------------------------------------
@pytest.mark.parametrize("how", [_noise, _tilt], ids=["z-noise", "tilted"])
def test_a_2d_layout_flagged_3d_is_2d_whatever_its_orientation(tmp_path, how):
    # was: used as the file's 3D conformer with no note, E3FP tokens of a flat molecule
    path = tmp_path / "layout.sdf"
    Chem.MolToMolFile(_move(_layout(CHIRAL), how), str(path))
    [record] = read_structures(path)
    assert record.conformer == "generated"
    assert "file conformer is 2D: generated a 3D conformer" in record.notes
    # stereo from the wedges, as for a 2D molfile: the SMILES' tokens exactly
    reference = fingerprint_record(molecule_from_smiles(CHIRAL, id="s")).numpy()
    assert np.array_equal(fingerprint_record(record).numpy(), reference)
    [refused] = read_structures(path, policy="from-file")
    assert isinstance(refused, MoleculeError) and "conformer is 2D" in refused.reason


@pytest.mark.parametrize("smiles", ["c1ccccc1", "C=C", "O=C=O", "C#C", "O", "[Ne]", "C1C2C1C2", "CC(C)(C)C"])
def test_real_conformers_stay_3d_tilted_and_a_tilted_layout_does_not(smiles):
    # planar molecules are planar in 3D too; only a flat tetrahedral carbon proves a depiction
    real = _move(_embedded(smiles), _tilt)
    assert conformer_is_3d(real) and conformer_is_3d(Chem.RemoveHs(real))
    assert not conformer_is_3d(_move(_layout(CHIRAL, hydrogens=True), _tilt))


# --- 3. flat XYZ, and lone protons ----------------------------------------------------------
@pytest.mark.parametrize("smiles", ["CC(C)(C)CO", "CCO"])
@pytest.mark.parametrize("fragments", ["all", "largest"])
def test_a_flat_xyz_fails_before_bond_perception(smiles, fragments):
    # was: "1 hydrogen atom(s) bonded to no heavy atom (H18 (charge +1)) ... --fragments largest",
    # and with --fragments largest the alkoxide CC(C)(C)C[O-] was fingerprinted
    mol = _layout(smiles, hydrogens=True)
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    with pytest.raises(MoleculeError, match=r"2D drawing, not 3D") as info:
        molecule_from_atoms(elements, mol.GetConformer().GetPositions(), id="flat", fragments=fragments)
    assert "H+" not in info.value.reason and "--fragments" not in info.value.reason


def test_a_proton_split_off_by_bond_perception_fails_and_a_dropped_one_is_noted():
    # was: ethanol whose hydroxyl H lies 1.8 A from O became ethoxide + H+, and
    # --fragments largest fingerprinted the ethoxide with the note "dropped [H+]" alone
    mol = _embedded("CCO", 1)
    positions = mol.GetConformer().GetPositions()
    h = next(a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "H" and a.GetNeighbors()[0].GetSymbol() == "O")
    positions[h] = positions[2] + 1.8 * (positions[h] - positions[2]) / np.linalg.norm(positions[h] - positions[2])
    for fragments in ("all", "largest"):
        with pytest.raises(MoleculeError, match=r"left H9 bonded to no atom, as an H\+ \(nearest O3, 1.8 A\)"):
            molecule_from_atoms([a.GetSymbol() for a in mol.GetAtoms()], positions, id="e", fragments=fragments)
    # written as ions: dropped, and the note says what is left
    kept = molecule_from_smiles("CC[O-].[H+]", id="x", fragments="largest")
    assert kept.notes[0] == ("kept the largest of 2 fragments (3 heavy atoms); dropped [H+]; dropping the lone H+ H4 "
                             "left the kept fragment with charge -1 (another protonation state)")
    kept = molecule_from_smiles("CC(=O)[O-].[Na+]", id="x", fragments="largest")  # a counter-ion: as before
    assert kept.notes[0] == "kept the largest of 2 fragments (4 heavy atoms); dropped [Na+]"


# --- 4. copies of one molecule --------------------------------------------------------------
def test_the_kept_copy_does_not_depend_on_the_file_order(tmp_path):
    # was: the first copy in the file; swapping the atom blocks changed 16 of 36 token entries
    one, other = _embedded("OCCCCCC(=O)O", 1), _embedded("OCCCCCC(=O)O", 5)
    other = _move(other, lambda i, p: p + (15.0, 0.0, 0.0))
    tokens = []
    for name, pair in (("ab", (one, other)), ("ba", (other, one))):
        path = tmp_path / f"{name}.sdf"
        Chem.MolToMolFile(Chem.CombineMols(*pair), str(path))
        [record] = read_structures(path, fragments="largest")
        assert "2 copies of one molecule with different coordinates" in record.notes[0]
        assert record.notes[0].endswith("; dropped O=C(O)CCCCCO"), record.notes[0]  # was [H]OC(=O)C([H])([H])...
        tokens.append(fingerprint_record(record).numpy())
    assert np.array_equal(*tokens)


# --- 5. XYZ messages ------------------------------------------------------------------------
def _xyz(tmp_path, name: str, mol: Chem.Mol, comment: str = "") -> str:
    lines = [str(mol.GetNumAtoms()), comment]
    lines += [f"{a.GetSymbol()} {x:.4f} {y:.4f} {z:.4f}"
              for a, (x, y, z) in zip(mol.GetAtoms(), mol.GetConformer().GetPositions())]
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    return str(tmp_path / name)


def _reason(path: str) -> str:
    [error] = read_structures(path)
    assert isinstance(error, MoleculeError)
    return error.reason


CISPLATIN = """11
cis-diamminedichloroplatinum(II)
Pt 0.00 0.00 0.00
N 2.05 0.00 0.00
N 0.00 2.05 0.00
Cl -2.30 0.00 0.00
Cl 0.00 -2.30 0.00
H 2.39 0.95 0.00
H 2.39 -0.47 0.82
H 2.39 -0.47 -0.82
H 0.95 2.39 0.00
H -0.47 2.39 0.82
H -0.47 2.39 -0.82
"""


def test_xyz_perception_failures_say_what_to_do_in_the_tool(tmp_path):
    (tmp_path / "cisplatin.xyz").write_text(CISPLATIN)
    reason = _reason(str(tmp_path / "cisplatin.xyz"))
    # was: "Atom 0 with atomic number 78 has no valences defined." (0-based, RDKit's words)
    assert "metal atom(s) Pt1" in reason and "Atom 0" not in reason and "SDF or MOL2" in reason, reason

    sodium = Chem.AddHs(Chem.MolFromSmiles("CC(=O)[O-].[Na+]"))
    AllChem.EmbedMolecule(sodium, randomSeed=3)
    reason = _reason(_xyz(tmp_path, "naoac.xyz", sodium))
    # was: "Final molecular charge (0) does not match input (-2)", a charge in no input
    assert "metal atom(s) Na5" in reason and "deepmolm-fingerprint and deepmolm-render take none" in reason, reason

    co2 = _embedded("O=C=O")
    reason = _reason(_xyz(tmp_path, "co2.xyz", co2))
    # was: "(pass smiles=, ...)" alone: the CLI tools take no SMILES, and CO2 has no H to add
    assert "(CO2, CCl4)" in reason and "SDF or MOL2" in reason and "take none" in reason, reason

    acetate = _embedded("CC(=O)[O-]")
    reason = _reason(_xyz(tmp_path, "acetate.xyz", acetate))
    assert "`charge=-1` on the XYZ comment line" in reason, reason  # was: "input (-3)" and no pointer
    [record] = read_structures(_xyz(tmp_path, "acetate_charged.xyz", acetate, "charge=-1"))
    assert Chem.GetFormalCharge(record.mol) == -1


# --- 7, 8. wording --------------------------------------------------------------------------
def test_a_neutral_atom_is_a_free_atom_and_a_charged_one_a_free_ion():
    # was: "it is a free ion (no bonds)" for [He] and [U]
    [helium] = [n for n in molecule_from_smiles("[He]", id="he").notes if "no bonds" in n]
    assert "it is a free atom (no bonds)" in helium
    [iron] = [n for n in molecule_from_smiles("[Fe+3]", id="fe").notes if "no bonds" in n]
    assert "it is a free ion (no bonds)" in iron


def test_the_interrupt_line_agrees_with_the_number_of_outputs(capsys):
    # was: "--out batch/big.jsonl hold those only"
    assert _Reporter(None, "x", quiet=True).interrupted("deepmolm-fingerprint", ["--out big.jsonl"]) == 130
    assert "; --out big.jsonl holds those only (a rerun starts over)" in capsys.readouterr().err
    _Reporter(None, "x", quiet=True).interrupted("deepmolm-render", ["pictures", "its index.jsonl"])
    assert "; pictures and its index.jsonl hold those only" in capsys.readouterr().err


def test_rdkits_sentence_opening_atom_index_is_named_one_based():
    # was: "Atom 0 with atomic number 78 has no valences defined" kept RDKit's 0-based index (capital A)
    from deepmolm_plugin.molecule.errors import one_based

    assert one_based("Atom 0 with atomic number 78 has no valences defined.") == "atom Pt1 has no valences defined."
