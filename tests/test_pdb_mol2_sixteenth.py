"""Sixteenth round: PDB and MOL2 files read as another molecule, or refused for a wrong reason.

- MOL2: RDKit's reader made up charges for bonded metals (C[Hg]Cl read as [Hg-3], cisplatin's
  Pt as +5) where SDF and PDB read the neutral metal; pyrrole-type nitrogens typed N.ar (as Open
  Babel types imidazole, indole, pyrazole N) were refused with "Can't kekulize".
- PDB: blank element columns (77-78) were guessed from the atom name (HG11 read as mercury, HE21
  as helium, CD1 as cadmium; HD21 gave RDKit's C++ text); charge columns written sign-first
  ('-1') were read as +1; CONECT records after ENDMDL (the wwPDB layout) were ignored and the
  file refused as one that "left out bonds".
- Messages: alternate locations B and C only said "no atoms read from PDB"; MOL2 query types
  (Any, Hal, Het, Hev) gave RDKit's C++ "Post-condition Violation" text.
"""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem
from test_hostile_structure_files import _items, _mol, _mol2, _write

from deepmolm_plugin.molecule import MoleculeError, fingerprint_record


def _one(path):
    (record,) = _items(path)
    return record


def _ok(path):
    record = _one(path)
    assert not isinstance(record, MoleculeError), record
    return record


def _refused(path) -> str:
    record = _one(path)
    assert isinstance(record, MoleculeError), record
    assert "Post-condition" not in record.reason and "PeriodicTable" not in record.reason, record.reason
    return record.reason


def _same_inputs(a, b):
    """The model inputs of two records (fingerprint rows) and their molecules, the same."""
    assert Chem.MolToSmiles(a.mol) == Chem.MolToSmiles(b.mol)
    assert torch.equal(fingerprint_record(a), fingerprint_record(b))


def _kekule_sdf(mol) -> str:
    kekule = Chem.Mol(mol)
    Chem.Kekulize(kekule, clearAromaticFlags=True)
    return Chem.MolToMolBlock(kekule)


def _pdb_atoms(mol) -> list[str]:
    return [line for line in Chem.MolToPDBBlock(mol).splitlines() if line.startswith("HETATM")]


def _pdb_conect(mol) -> list[str]:
    return [line for line in Chem.MolToPDBBlock(mol).splitlines() if line.startswith("CONECT")]


# --- MOL2: bonded metals ------------------------------------------------------------------
@pytest.mark.parametrize("smiles, metal, made_up", [("C[Hg]Cl", "Hg2", "-3"), ("N[Zn](N)(Cl)Cl", "Zn2", "-5"),
                                                    ("N[Pt](N)(Cl)Cl", "Pt2", "+5")])
def test_mol2_bonded_metal_is_read_neutral_as_sdf_and_pdb_read_it(tmp_path, smiles, metal, made_up):
    mol = _mol(smiles, "metal")
    sdf = _ok(_write(tmp_path / "m.sdf", Chem.MolToMolBlock(mol)))
    pdb = _ok(_write(tmp_path / "m.pdb", Chem.MolToPDBBlock(mol)))
    mol2 = _ok(_write(tmp_path / "m.mol2", _mol2(mol, "metal")))
    assert all(a.GetFormalCharge() == 0 for a in mol2.mol.GetAtoms())
    _same_inputs(sdf, mol2)
    _same_inputs(sdf, pdb)
    assert any(n.startswith(f"bonded metal charges made up by RDKit's MOL2 reader ({metal} {made_up}) set to 0: "
                            "MOL2 holds no formal charges") for n in mol2.notes), mol2.notes


# --- MOL2: pyrrole-type N typed N.ar ------------------------------------------------------
@pytest.mark.parametrize("smiles", ["Cc1ncc[nH]1", "c1ccc2[nH]ccc2c1", "CCn1nccc1C", "Cc1nc2ccccc2[nH]1"])
def test_mol2_pyrrole_type_n_typed_n_ar_is_read_as_the_sdf(tmp_path, smiles):
    mol = _mol(smiles, "ring")
    text = _mol2(mol, "ring")  # every aromatic N typed N.ar, as Open Babel writes them
    pyrrole = next(a for a in mol.GetAtoms() if a.GetSymbol() == "N" and a.GetIsAromatic() and a.GetDegree() == 3)
    assert "N.ar" in text.splitlines()[7 + pyrrole.GetIdx()]
    sdf = _ok(_write(tmp_path / "r.sdf", _kekule_sdf(mol)))
    mol2 = _ok(_write(tmp_path / "r.mol2", text))
    _same_inputs(sdf, mol2)
    number = pyrrole.GetIdx() + 1
    assert mol2.notes[-1] == ("N.ar atoms with three bonds read as N.pl3 (pyrrole-type N, which RDKit cannot kekulize "
                              f"as N.ar): N{number} (atom {number})")


def test_mol2_n_ar_retyped_only_where_rdkit_cannot_kekulize_it_and_the_file_gives_its_hydrogen(tmp_path):
    imidazole = _mol("Cc1ncc[nH]1", "ring")
    assert _ok(_write(tmp_path / "i.mol2", _mol2(imidazole, "ring"))).notes[-1].endswith("N6 (atom 6)")
    for smiles in ["c1ccncc1", "C[n+]1ccccc1"]:  # pyridine-type N, and a 3-connected N+ RDKit reads
        mol = _mol(smiles, "ring")
        record = _ok(_write(tmp_path / "p.mol2", _mol2(mol, "ring")))
        assert not any("N.pl3" in note for note in record.notes), record.notes
        assert Chem.MolToSmiles(Chem.RemoveHs(record.mol)) == Chem.CanonSmiles(smiles)
    # the file's hydrogens decide: imidazole without its N-H has no 3-connected N to retype
    nh = next(a.GetIdx() for a in imidazole.GetAtoms()
              if a.GetAtomicNum() == 1 and a.GetNeighbors()[0].GetSymbol() == "N")
    rw = Chem.RWMol(imidazole)
    rw.RemoveAtom(nh)
    assert "kekulize" in _refused(_write(tmp_path / "noh.mol2", _mol2(rw.GetMol(), "ring")))


# --- MOL2: query atom types ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["Any", "Hal", "Het", "Hev"])
def test_mol2_query_atom_type_names_its_line(tmp_path, kind):
    mol = _mol("CCO", "ethanol")
    lines = _mol2(mol, "ethanol").splitlines()
    lines[9] = lines[9].replace("O.3   ", f"{kind:<6s}")  # the O, atom 3, on file line 10
    reason = _refused(_write(tmp_path / "q.mol2", "\n".join(lines) + "\n"))
    assert reason == (f"line 10: atom O3 (atom 3) has the type '{kind}', which names no element (Any, Hal, Het and Hev "
                      "are query types): give the atom its element's SYBYL type")


# --- PDB: element columns -----------------------------------------------------------------
def _renamed(atoms: list[str], names: dict[int, str]) -> list[str]:
    """Atom lines with the atom names (columns 13-16) of ``names`` (line index -> name)."""
    return [line[:12] + names.get(n, line[12:16]) + line[16:] for n, line in enumerate(atoms)]


def test_pdb_blank_element_columns_are_refused_where_the_name_does_not_give_the_element(tmp_path):
    valine = _mol("CC(C)[C@H](N)C(=O)O", "valine")
    # the methyl hydrogens named as a CHARMM file names them, from column 13: HG11, HG12, ...
    hydrogens = [a.GetIdx() for a in valine.GetAtoms() if a.GetAtomicNum() == 1]
    names = {i: f"HG{k // 3 + 1}{k % 3 + 1}" for k, i in enumerate(hydrogens[:6])}
    atoms, conect = _renamed(_pdb_atoms(valine), names), _pdb_conect(valine)
    sdf = _ok(_write(tmp_path / "v.sdf", Chem.MolToMolBlock(valine)))
    # with the element columns the names do not matter
    _same_inputs(sdf, _ok(_write(tmp_path / "v.pdb", "\n".join(atoms + conect + ["END"]) + "\n")))
    # without them RDKit read HG11 as mercury
    blank = [line[:76] + "  " + line[78:] for line in atoms]
    first = next(n for n, line in enumerate(blank, 1) if line[12:16] == "HG11")
    reason = _refused(_write(tmp_path / "blank.pdb", "\n".join(blank + conect + ["END"]) + "\n"))
    assert reason == (f"line {first}: the HETATM record of atom 'HG11' leaves the element columns (77-78) blank, and "
                      "its name does not give the element (one letter in column 14 after a blank or a digit, or a "
                      "two-letter element alone in columns 13-14): RDKit would guess it from the name (CD1 read as "
                      "cadmium, and in a HETATM record HG11 as mercury); fill columns 77-78 with the element symbol")
    # in ATOM records (CHARMM and GROMACS write those, without element columns) RDKit reads
    # `H` then a capital as hydrogen: read as written (was refused as well, a false refusal)
    as_atoms = ["ATOM  " + line[6:] for line in blank]
    _same_inputs(sdf, _ok(_write(tmp_path / "charmm.pdb", "\n".join(as_atoms + conect + ["END"]) + "\n")))
    # names from column 14 (' C1 ', ' H12', as RDKit writes them) give the element: read as written
    plain = [line[:76] + "  " + line[78:] for line in _pdb_atoms(valine)]
    _same_inputs(sdf, _ok(_write(tmp_path / "plain.pdb", "\n".join(plain + conect + ["END"]) + "\n")))


@pytest.mark.parametrize("name", ["HE21", "HO1 ", "CD1 ", "HD21", "CL1 ", "C1  ", "*C1 ", " X1 "])
def test_pdb_blank_element_column_with_a_name_rdkit_would_guess_from_is_refused(tmp_path, name):
    lines = _pdb_atoms(_mol("CCO", "ethanol"))
    lines[1] = lines[1][:12] + name + lines[1][16:76] + "  " + lines[1][78:]
    reason = _refused(_write(tmp_path / "n.pdb", "\n".join(lines + ["END"]) + "\n"))
    assert reason.startswith(f"line 2: the HETATM record of atom {name.strip()!r} leaves the element columns (77-78) "
                             "blank, and its name does not give the element"), reason


@pytest.mark.parametrize("element", ["XX", " X", "cl", "1C", " *"])
def test_pdb_element_columns_that_name_no_element_are_refused(tmp_path, element):
    lines = _pdb_atoms(_mol("CCO", "ethanol"))
    lines[1] = lines[1][:76] + element + lines[1][78:]
    reason = _refused(_write(tmp_path / "e.pdb", "\n".join(lines + ["END"]) + "\n"))
    assert reason == (f"line 2: the HETATM record of atom 'C2' has {element!r} in the element columns (77-78), not an "
                      "element symbol: write the element symbol there, right-justified")


# --- PDB: charge columns ------------------------------------------------------------------
@pytest.mark.parametrize("charge", ["-1", "+1", "10", "x1", " 1", "+ "])
def test_pdb_charge_not_in_the_pdb_form_is_refused(tmp_path, charge):
    acetate = Chem.RemoveHs(_mol("CC(=O)[O-]", "acetate"))
    lines = _pdb_atoms(acetate) + _pdb_conect(acetate)
    charged = next(n for n, line in enumerate(lines) if line[78:80] == "1-")
    good = _ok(_write(tmp_path / "good.pdb", "\n".join(lines + ["END"]) + "\n"))
    _same_inputs(_ok(_write(tmp_path / "a.sdf", _kekule_sdf(acetate))), good)
    lines[charged] = lines[charged][:78] + charge
    reason = _refused(_write(tmp_path / "bad.pdb", "\n".join(lines + ["END"]) + "\n"))
    name = lines[charged][12:16].strip()
    assert reason == (f"line {charged + 1}: the HETATM record of atom {name!r} has {charge!r} in the charge columns "
                      "(79-80), not the PDB's form, a digit then the sign ('1-', '2+'), which RDKit would misread "
                      "('-1' as +1): write it so, or leave the columns blank")


# --- PDB: CONECT records after ENDMDL -----------------------------------------------------
def test_pdb_conect_records_after_endmdl_keep_their_bonds(tmp_path):
    apap = _mol("CC(=O)Nc1ccc(O)cc1", "apap")
    other = Chem.Mol(apap)
    conf = other.GetConformer()
    for i in range(other.GetNumAtoms()):  # a second model: the same atoms moved
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, (p.x + 1.0, p.y, p.z))
    atoms, atoms2, conect = _pdb_atoms(apap), _pdb_atoms(other), _pdb_conect(apap)
    sdf = _ok(_write(tmp_path / "a.sdf", _kekule_sdf(apap)))
    one = _ok(_write(tmp_path / "one.pdb", "\n".join(["MODEL        1", *atoms, "ENDMDL", *conect, "END"]) + "\n"))
    _same_inputs(sdf, one)
    assert one.notes == []
    two = ["MODEL        1", *atoms, "ENDMDL", "MODEL        2", *atoms2, "ENDMDL"]
    wwpdb = _ok(_write(tmp_path / "two.pdb", "\n".join(two + conect + ["END"]) + "\n"))
    _same_inputs(sdf, wwpdb)
    assert wwpdb.notes == ["file has 2 MODELs: used the first"]
    # CONECT records written inside each model: each bond once, not once per model (a double bond)
    each = ["MODEL        1", *atoms, *conect, "ENDMDL", "MODEL        2", *atoms2, *conect, "ENDMDL", "END"]
    _same_inputs(sdf, _ok(_write(tmp_path / "each.pdb", "\n".join(each) + "\n")))


# --- PDB: alternate locations B and C only ------------------------------------------------
def test_pdb_alternate_locations_b_and_c_only_name_the_atoms_not_no_atoms_read(tmp_path):
    atoms = _pdb_atoms(_mol("CCO", "ethanol"))
    lines = [line[:16] + "B" + line[17:] for line in atoms]
    lines += [line[:6] + f"{n + len(atoms) + 1:5d}" + line[11:16] + "C" + line[17:] for n, line in enumerate(atoms)]
    reason = _refused(_write(tmp_path / "bc.pdb", "\n".join(lines + ["END"]) + "\n"))
    assert reason.startswith("atoms with alternate locations but none marked A, which is the one read: "
                             "C1 (UNL 1: locations B, C)"), reason


# --- mends after a review of the above ----------------------------------------------------
def test_an_h_less_mol2_metal_complex_is_still_refused_not_read_neutral(tmp_path):
    """[AuCl4]- without hydrogens: RDKit guessed every charge, which the reader refuses; its metal
    was first set neutral and the record read as a neutral AuCl4 (the SDF says Au-)."""
    mol = _mol("Cl[Au-](Cl)(Cl)Cl", "aucl4")
    reason = _refused(_write(tmp_path / "a.mol2", _mol2(mol, "aucl4")))
    assert reason.startswith("no hydrogens, and RDKit guessed charges on atoms Au2")


@pytest.mark.parametrize("charge", ["0 ", " 0", "0+", "0-"])
def test_a_pdb_zero_charge_is_neutral(tmp_path, charge):
    ethanol = _mol("CCO", "ethanol")  # with its hydrogens: bonds perceived from the coordinates
    lines = _pdb_atoms(ethanol) + _pdb_conect(ethanol)
    blank = _ok(_write(tmp_path / "blank.pdb", "\n".join(lines + ["END"]) + "\n"))
    lines = [line[:78] + charge if line.startswith("HETATM") else line for line in lines]
    _same_inputs(blank, _ok(_write(tmp_path / "zero.pdb", "\n".join(lines + ["END"]) + "\n")))


def test_a_two_letter_element_alone_in_columns_13_14_gives_the_element(tmp_path):
    """GROMACS starts a name in column 13 when it is the element (`CL  `, no element columns):
    chlorine by the PDB's rule, as RDKit reads it (was refused, a false refusal)."""
    mol = _mol("CCl", "chloromethane")
    lines = _pdb_atoms(mol)
    lines = [line[:12] + "CL  " + line[16:] if line[76:78].strip().upper() == "CL" else line for line in lines]
    blank = [line[:76] + "  " + line[78:] for line in lines]
    record = _ok(_write(tmp_path / "gmx.pdb", "\n".join(blank + _pdb_conect(mol) + ["END"]) + "\n"))
    assert Chem.MolToSmiles(Chem.RemoveHs(record.mol)) == "CCl"


def test_a_mol2_metal_charge_stated_in_unity_atom_attr_is_kept(tmp_path):
    """`@<TRIPOS>UNITY_ATOM_ATTR` / `AtomExpr -1` states the charge (RDKit reads it): not one RDKit
    made up, so it is not set to 0 (it was, with a note blaming RDKit)."""
    atoms = ["C1 0.0 0.0 0.0 C.3", "Zn2 1.95 0.0 0.0 Zn", "Cl3 3.05 1.9053 0.0 Cl", "Cl4 3.05 -1.9053 0.0 Cl",
             "H5 -0.36 1.03 0.0 H", "H6 -0.36 -0.51 0.89 H", "H7 -0.36 -0.51 -0.89 H"]
    bonds = [(1, 2), (2, 3), (2, 4), (1, 5), (1, 6), (1, 7)]
    text = "\n".join(["@<TRIPOS>MOLECULE", "methyl dichlorozincate", " 7 6 0 0 0", "SMALL", "GASTEIGER", "",
                      "@<TRIPOS>ATOM"]
                     + [f"{n} {a} 1 UNL1 0.0" for n, a in enumerate(atoms, 1)] + ["@<TRIPOS>BOND"]
                     + [f"{n} {a} {b} 1" for n, (a, b) in enumerate(bonds, 1)]
                     + ["@<TRIPOS>UNITY_ATOM_ATTR", "2 1", "AtomExpr -1", ""])
    record = _ok(_write(tmp_path / "z.mol2", text))
    assert [a.GetFormalCharge() for a in record.mol.GetAtoms() if a.GetSymbol() == "Zn"] == [-1]
    assert not [n for n in record.notes if "made up" in n]
