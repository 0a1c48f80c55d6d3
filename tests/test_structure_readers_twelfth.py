"""Structure readers, twelfth sweep: a file that lost its bond orders or charges, a CSV saved as
.txt, and a SMILES that is not the coordinates' molecule.

- A file that gives every hydrogen as an atom but lost its bond orders (all single) or its
  'M  CHG' line was read as another molecule (benzoic acid as cyclohexane-methanediol,
  acetate as acetic acid): RDKit gave implicit H to the atoms short of bonds. Polar-H files
  must still be read.
- A CSV saved as .txt gave one "unparseable SMILES" per row.
- "SMILES graph does not match the coordinates' graph" named neither the SMILES nor the file.
"""

import pickle
import re

import pytest
from rdkit import Chem
from test_hostile_structure_files import _items, _mol, _mol2, _smiles, _write

from deepmolm_plugin.molecule import MoleculeError, read_structures
from deepmolm_plugin.molecule.inputs import InputError, InputResolver


@pytest.fixture(scope="module")
def benzoic():
    return _mol("OC(=O)c1ccccc1", "benzoic")  # 3D, every H an atom


def _all_single(block: str, mol: Chem.Mol) -> str:
    """The molfile with every bond order written 1 (a converter that drops orders)."""
    lines = block.splitlines()
    start = 4 + mol.GetNumAtoms()
    for n in range(start, start + mol.GetNumBonds()):
        lines[n] = lines[n][:6] + "  1" + lines[n][9:]
    return "\n".join(lines) + "\n"


def _polar_h_only(mol: Chem.Mol) -> Chem.Mol:
    rw = Chem.RWMol(mol)
    for idx in sorted((a.GetIdx() for a in mol.GetAtoms()
                       if a.GetAtomicNum() == 1 and a.GetNeighbors()[0].GetAtomicNum() == 6), reverse=True):
        rw.RemoveAtom(idx)
    for atom in rw.GetAtoms():
        atom.SetNoImplicit(False)  # a molfile without their H atoms: implicit H on the carbons
    mol = rw.GetMol()
    Chem.SanitizeMol(mol)
    return mol


# --- A. hydrogens given, bond orders or charges lost ---------------------------------------
def test_sdf_that_lost_bond_orders_or_its_charge_line_fails_and_polar_h_files_do_not(tmp_path, benzoic):
    single = _write(tmp_path / "single.sdf", _all_single(Chem.MolToMolBlock(benzoic), benzoic))
    (error,) = _items(single)
    assert isinstance(error, MoleculeError) and error.source == f"{single}#0"
    # the ring CH carbons (C5-C9): each has its H atom and would get one more
    assert error.reason.startswith("atoms C5, C6, C7, C8, C9 are short of bonds though the file gives hydrogens as "
                                   "atoms: it lost bond orders"), error.reason
    acetate = _mol("CC(=O)[O-]", "acetate")
    block = "\n".join(line for line in Chem.MolToMolBlock(acetate).splitlines() if not line.startswith("M  CHG"))
    (error,) = _items(_write(tmp_path / "acetate.sdf", block + "\n"))
    assert isinstance(error, MoleculeError)
    assert re.match(r"atom O\d is short of bonds .* charges \(an 'M  CHG' line\)", error.reason), error.reason
    # unaffected: the whole file, polar hydrogens only (carbons short, without H atoms), no
    # hydrogens at all, a deuterium beside implicit H (CHD), the charge line kept
    apap = _mol("CC(=O)Nc1ccc(O)cc1", "apap")
    for name, mol, smiles in [("polar", _polar_h_only(apap), "CC(=O)Nc1ccc(O)cc1"),
                              ("heavy", Chem.RemoveHs(apap), "CC(=O)Nc1ccc(O)cc1"),
                              ("chd", Chem.RemoveHs(_mol("[2H]C(C)O", "d")), "[2H]C(C)O"),
                              ("acetate", acetate, "CC(=O)[O-]"), ("whole", benzoic, "O=C(O)c1ccccc1")]:
        (record,) = _items(_write(tmp_path / f"{name}.sdf", Chem.MolToMolBlock(mol)), policy="keep")
        assert not isinstance(record, MoleculeError), (name, record)
        read = Chem.RemoveHs(record.mol)
        Chem.RemoveStereochemistry(read)  # the CHD centre gets its configuration from 3D
        assert Chem.MolToSmiles(read) == Chem.CanonSmiles(smiles), name


def test_pdb_whose_conect_repeats_one_pair_gets_bonds_from_coordinates_when_atoms_are_short(tmp_path, benzoic):
    # was: the repeated C=O pair made the whole file trusted, and the ring single-bonded
    # (benzoic acid read as cyclohexanecarboxylic acid, no note)
    atoms = [line for line in Chem.MolToPDBBlock(benzoic).splitlines() if line.startswith("HETATM")]
    conect = []
    for bond in benzoic.GetBonds():
        i, j = bond.GetBeginAtomIdx() + 1, bond.GetEndAtomIdx() + 1
        twice = bond.GetBondType() == Chem.BondType.DOUBLE and not bond.GetIsAromatic()
        conect.append(f"CONECT{i:5d}" + f"{j:5d}" * (2 if twice else 1))
    path = _write(tmp_path / "partial.pdb", "\n".join(atoms + conect + ["END"]) + "\n")
    (record,) = _items(path, policy="keep")
    assert _smiles(record) == "O=C(O)c1ccccc1"
    assert ("CONECT records leave atoms C5, C6, C7, C8, C9 short of bonds although the file gives hydrogen atoms "
            "(bond orders lost): bonds perceived from coordinates") in record.notes


def test_mol2_that_lost_bond_orders_says_so_not_give_all_hydrogens(tmp_path, benzoic):
    text = re.sub(r"(?m)^(\s*\d+\s+\d+\s+\d+) (ar|2)$", r"\1 1", _mol2(benzoic, "benzoic"))
    (error,) = _items(_write(tmp_path / "single.mol2", text))
    assert isinstance(error, MoleculeError) and error.id == "benzoic"
    assert "atoms C5, C6, C7, C8, C9 are short of bonds though the file gives hydrogens as atoms: it lost bond " \
           "orders (bond types written 1)" in error.reason, error.reason
    assert "give all hydrogens" not in error.reason


# --- B. a table saved as .txt / .smi -------------------------------------------------------
@pytest.mark.parametrize("name, text, said", [
    ("table.txt", "id,smiles\na1,CCO\na2,c1ccccc1\n", "a CSV (header 'id,smiles'): name it .csv"),
    ("table.smi", "# export\nSMILES,id\nCCO,a1\n", "a CSV (header 'SMILES,id'): name it .csv"),
    ("table.txt", '"Name";"Smiles"\na1;CCO\n',
     "a semicolon-separated table (header '\"Name\";\"Smiles\"'): save it as a comma-separated .csv"),
    ("table.txt", "id\tsmiles\na1\tCCO\n", "a tab-separated table (header 'id\\tsmiles'): save it as a "
                                            "comma-separated .csv"),
])
def test_a_table_saved_as_txt_is_one_error_for_the_file(tmp_path, name, text, said):
    path = _write(tmp_path / name, text)
    (error,) = _items(path, policy="keep")  # was: one "unparseable SMILES" per row
    assert isinstance(error, MoleculeError) and error.source == str(path)
    assert error.reason.startswith(f"looks like {said}; .smi and .txt files are SMILES lists"), error.reason
    # a SMILES list's own tab-separated header is still one
    path = _write(tmp_path / "list.smi", "smiles\tid\nCCO\tethanol\nc1ccccc1 benzene\n")
    assert [r.id for r in _items(path, policy="keep")] == ["ethanol", "benzene"]


# --- C. a SMILES that is not the structure's molecule --------------------------------------
def _xyz(mol: Chem.Mol) -> str:
    conf = mol.GetConformer()
    return f"{mol.GetNumAtoms()}\n\n" + "".join(
        f"{a.GetSymbol()} {p.x:.4f} {p.y:.4f} {p.z:.4f}\n"
        for a, p in ((a, conf.GetAtomPosition(a.GetIdx())) for a in mol.GetAtoms()))


def test_a_smiles_that_is_not_the_coordinates_molecule_names_it_the_file_and_what_they_gave(tmp_path):
    folder = tmp_path / "structs"
    folder.mkdir()
    path = _write(folder / "eth.xyz", _xyz(_mol("CCO", "ethanol")))
    (error,) = read_structures(path, policy="keep", smiles="COC")
    assert error.reason == (f"SMILES graph does not match the coordinates' graph: its SMILES 'COC' is not the "
                            f"molecule in {path}#0 (bonds perceived from coordinates: CCO)")
    assert pickle.loads(pickle.dumps(error)).reason == error.reason  # errors cross process boundaries
    # the question's words (model_vqa, chat): was "SMILES graph does not match the coordinates' graph"
    resolver = InputResolver(structure_folder=str(folder), render_folder=str(tmp_path / "r"))
    with pytest.raises(InputError, match=re.escape(f"SMILES has 8 atoms (with hydrogens), the coordinates 9: its "
                                                   f"SMILES 'CC' is not the molecule in {path}#0 (bonds perceived "
                                                   "from coordinates: CCO)")):
        resolver.resolve({"structure": "eth.xyz", "smiles": "CC"}, "xyz", depiction=False)
    # bonds whose orders coordinates cannot give without perception: the atoms short of them bracketed
    acid = _write(folder / "acid.xyz", _xyz(_mol("CC(=O)O", "acid")))
    (error,) = read_structures(acid, policy="keep", smiles="CC(=O)N")
    assert error.reason.endswith(f"in {acid}#0 (bonds perceived from coordinates, orders not: C[C]([O])O)")
    # a verified SDF field names itself and the file's bonds
    ethanol = _mol("CCO", "ethanol")
    ethanol.SetProp("smi", "COC")
    sdf = tmp_path / "e.sdf"
    with Chem.SDWriter(str(sdf)) as writer:
        writer.write(ethanol)
    (error,) = read_structures(sdf, policy="keep", smiles_field="smi")
    assert error.reason.endswith(f": its SDF field 'smi' ('COC') is not the molecule in {sdf}#0 (the file's "
                                 "bonds: CCO)"), error.reason
