"""Atoms that cannot exist, seventeenth round: a formal charge or a mass number no atom can
have is an error naming the record and the atom (``checks.check_possible_atoms``). Was:
`[C+99]`, `[999C]` and `[C-15]` were fingerprinted with exit 0 and only a radical or
force-field note, so a typo (`[13C]` -> `[133C]`) went through silently."""

import json

import pytest

from deepmolm_plugin.molecule import MoleculeError, molecule_from_atoms, molecule_from_smiles, read_structures
from deepmolm_plugin.molecule.tools import fingerprint_main


@pytest.mark.parametrize("smiles, atom, reason", [
    ("[C+99]", "C1", r"charge \+99 removes more electrons than the atom's 6"),
    ("C[999C]", "C2", r"no isotope 999 of carbon is known \(RDKit's table: 8 to 22\)"),
    ("CC[133CH3]", "C3", r"no isotope 133 of carbon"),                 # a typo of [13CH3]
    ("[C-15]", "C1", r"charge -15 .* the most negative C is -4"),
    ("O[C-5]", "C2", r"charge -5 .* the most negative C is -4"),
    ("[N-4]", "N1", r"charge -4 .* the most negative N is -3"),
    ("[O-3]", "O1", r"charge -3 .* the most negative O is -2"),
    ("[H-2]", "H1", r"charge -2 .* the most negative H is -1"),
    ("[3C]", "C1", r"mass number 3 is fewer nucleons than its 6 protons"),
    ("[8H]C", "H1", r"no isotope 8 of hydrogen"),
    ("[Fe-22]", "Fe1", r"charge -22 is below -21"),
    ("[300Db]", "Db1", r"mass number 300 is above the heaviest nuclide known \(295\)"),   # RDKit lists no Db isotope
])
def test_an_impossible_atom_is_an_error_naming_the_record_and_atom(smiles, atom, reason):
    with pytest.raises(MoleculeError, match=rf"^molecule 'rec7': impossible atom\(s\): {atom} \({reason}"):
        molecule_from_smiles(smiles, "rec7", policy="keep")


@pytest.mark.parametrize("smiles", [
    "[13CH3]CO", "[2H]OC", "[3H]C", "C[18F]", "[14CH4]", "[11CH4]", "[15NH3]", "[17OH2]", "[32PH3]",
    "[35SH2]", "[123I-]", "[131I-]", "[99Tc]", "[201Tl+]", "[89Zr+4]", "[225Ac+3]",          # tracers
    "[C-4]", "[N-3]", "[O-2]", "[Na+].[H-]", "[H+].[Cl-]", "[B-](F)(F)(F)F", "[Si-4]", "[Cu-5]", "[U-5]",  # real ions
    "[O+]#C[Cr-6](C#[O+])(C#[O+])(C#[O+])(C#[O+])C#[O+]",  # Cr(CO)6, dative bonds written single
    "[He+2]", "[268Db]",
])
def test_atoms_that_exist_still_read(smiles):
    assert molecule_from_smiles(smiles, "ok", policy="keep").mol.GetNumAtoms() >= 1


def test_deepmolm_fingerprint_fails_the_record_and_goes_on(tmp_path, capsys):
    out, failures = tmp_path / "fp.jsonl", tmp_path / "failed.jsonl"
    code = fingerprint_main(["--smiles", "[C+99]", "CCO", "[999C]", "--out", str(out),
                             "--failures", str(failures), "--no-progress"])
    assert code == 1  # was 0: all three fingerprinted
    failed = {row["id"]: row["error"] for row in map(json.loads, failures.read_text().splitlines())}
    assert set(failed) == {"[C+99]", "[999C]"}
    assert "C1 (charge +99" in failed["[C+99]"] and "C1 (no isotope 999 of carbon" in failed["[999C]"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows if row["error"] is None] == ["CCO"]


def test_structure_files_and_atom_lists_are_checked_alike(tmp_path):
    # a molfile's charge (M  CHG) and isotope (M  ISO) lines, and an atom list's SMILES
    block = ("x\n  test\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n"
             "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
             "    1.5000    0.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n"
             "  1  2  1  0\nM  ISO  1   1  77\nM  END\n$$$$\n")
    (tmp_path / "bad.sdf").write_text(block)
    (record,) = read_structures(tmp_path / "bad.sdf", policy="keep")
    assert isinstance(record, MoleculeError) and "C1 (no isotope 77 of carbon" in str(record)
    with pytest.raises(MoleculeError, match=r"impossible atom\(s\): O2 \(charge -3"):
        molecule_from_atoms(["C", "O"], [[0, 0, 0], [1.43, 0, 0]], "pair", smiles="C[O-3]", policy="keep")
