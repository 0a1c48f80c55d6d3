"""The structure-reader registry of deepmolm_plugin.molecule.io and its typed parse result.

Files are written here (RDKit's writers, MOL2/XYZ by hand), into tmp_path; readers are
called directly, without the 3D policy, so no conformer is generated.
"""

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.molecule import SUFFIXES, MoleculeError, read_structures
from deepmolm_plugin.molecule.io import READERS, ParsedStructure, reader_for

# Ethanol with hydrogens: (element, x, y, z), angstrom.
ETHANOL = [
    ("C", -0.930, 0.058, 0.049), ("C", 0.503, -0.388, -0.120), ("O", 1.304, 0.754, 0.089),
    ("H", -1.222, 0.765, -0.734), ("H", -1.582, -0.817, -0.029), ("H", -1.050, 0.536, 1.028),
    ("H", 0.657, -0.824, -1.116), ("H", 0.769, -1.139, 0.635), ("H", 1.172, 1.091, 0.997),
]
MOL2_TYPES = {"C": "C.3", "O": "O.3", "H": "H"}
MOL2_BONDS = [(1, 2), (2, 3), (1, 4), (1, 5), (1, 6), (2, 7), (2, 8), (3, 9)]


def _mol2() -> str:
    atoms = "".join(f"{i:>7} {e}{i:<4} {x:10.4f} {y:10.4f} {z:10.4f} {MOL2_TYPES[e]:<5} 1 UNL1 0.0\n"
                    for i, (e, x, y, z) in enumerate(ETHANOL, 1))
    bonds = "".join(f"{i:>6} {a:>5} {b:>5}    1\n" for i, (a, b) in enumerate(MOL2_BONDS, 1))
    return (f"@<TRIPOS>MOLECULE\nethanol\n {len(ETHANOL)} {len(MOL2_BONDS)} 0 0 0\nSMALL\n"
            f"NO_CHARGES\n\n@<TRIPOS>ATOM\n{atoms}@<TRIPOS>BOND\n{bonds}")


def _xyz() -> str:
    rows = "".join(f"{e} {x} {y} {z}\n" for e, x, y, z in ETHANOL)
    return f"{len(ETHANOL)}\nethanol charge=0\n{rows}"


def _embedded(smiles: str, name: str) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    mol.SetProp("_Name", name)
    return mol


def _pdb(conect: bool) -> str:
    text = Chem.MolToPDBBlock(_embedded("CCO", "ethanol"))
    return text if conect else "".join(l for l in text.splitlines(True) if not l.startswith("CONECT"))


# suffix -> (file text, the form every ParsedStructure of it has)
FILES = {
    ".sdf": (lambda: Chem.MolToMolBlock(_embedded("CCO", "ethanol")) + "$$$$\n", "mol"),
    ".sd": (lambda: Chem.MolToMolBlock(_embedded("CCO", "ethanol")) + "$$$$\n", "mol"),
    ".mol": (lambda: Chem.MolToMolBlock(_embedded("CCO", "ethanol")), "mol"),
    ".mol2": (_mol2, "mol"),
    ".xyz": (_xyz, "atoms"),
    ".pdb": (lambda: _pdb(conect=True), "mol"),
    ".smi": (lambda: "CCO ethanol\nc1ccccc1\n", "smiles"),
    ".txt": (lambda: "smiles id\nCCO ethanol\n", "smiles"),
    ".csv": (lambda: "Name,SMILES\nethanol,CCO\n", "smiles"),
}


def _parse(path: Path, **options) -> list:
    spec = reader_for(path, options)
    with open(path, encoding="utf-8", errors="replace", newline=spec.newline) as handle:
        return list(spec.read(handle, path.name, **options))


def _form(item: ParsedStructure) -> str:
    if item.error is not None:
        return f"error: {item.error}"
    if item.mol is not None:
        return "mol"
    return "atoms" if item.elements is not None else "smiles"


def test_every_suffix_has_a_reader_and_every_reader_a_test():
    assert set(SUFFIXES) == set(READERS) == set(FILES)
    assert SUFFIXES == (".sdf", ".sd", ".mol", ".mol2", ".xyz", ".pdb", ".smi", ".txt", ".csv")
    assert all(callable(READERS[s].read) for s in SUFFIXES)


@pytest.mark.parametrize("suffix", sorted(FILES))
def test_each_reader_returns_the_typed_parse_result(tmp_path, suffix):
    make, form = FILES[suffix]
    path = tmp_path / f"ethanol{suffix.upper()}"  # suffixes match in any case
    path.write_text(make())
    items = _parse(path)
    assert items and all(isinstance(i, ParsedStructure) for i in items)
    assert [_form(i) for i in items] == [form] * len(items)
    assert [i.index for i in items] == sorted(i.index for i in items)
    first = items[0]
    if form == "mol":
        assert first.mol.GetNumAtoms() == 9 and first.mol.GetNumConformers() == 1
    elif form == "atoms":
        assert list(first.elements) == [e for e, *_ in ETHANOL] and first.coords.shape == (9, 3)
        np.testing.assert_allclose(first.coords, [xyz for _, *xyz in ETHANOL])
    else:
        assert first.smiles == "CCO" and first.id == "ethanol"


def test_pdb_without_conect_gives_atoms_for_bond_perception(tmp_path):
    path = tmp_path / "ethanol.pdb"
    path.write_text(_pdb(conect=False))
    (item,) = _parse(path)
    assert _form(item) == "atoms" and item.charge == 0 and len(item.elements) == 9


def test_bad_records_are_typed_errors(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text("3\nwater\nO 0 0 0\nH 0.96 0 0\n")  # count says 3, two atom lines
    (item,) = _parse(path)
    assert isinstance(item.error, MoleculeError) and "count line says 3" in item.error.reason
    csv_path = tmp_path / "nosmiles.csv"
    csv_path.write_text("id,name\n1,x\n")
    (item,) = _parse(csv_path)
    assert item.index is None and "no 'smiles' column" in item.error.reason


@pytest.mark.parametrize("suffix,fmt", [(".xyz", "XYZ"), (".mol", "MDL molfile"), (".mol2", "MOL2"), (".pdb", "PDB")])
def test_another_format_saved_as_a_smiles_list_is_one_error_naming_it(tmp_path, suffix, fmt):
    """Read line by line as SMILES, an XYZ file in a .txt gave an oxygen atom named
    '0.0 0.0 0.0' from 'O 0.0 0.0 0.0' (and a molfile title that is a SMILES, a molecule)."""
    path = tmp_path / "ethanol.txt"
    path.write_text(FILES[suffix][0]())
    (item,) = list(read_structures(path))
    assert isinstance(item, MoleculeError) and item.source == str(path)
    assert fmt in item.reason and f"name it {suffix}" in item.reason and "SMILES lists" in item.reason
    smi = tmp_path / "mixed.smi"
    smi.write_text("O 0.0 0.0 0.0\nCCO ethanol\n")  # atom lines without their count line
    bad, good = list(read_structures(smi, policy="keep"))
    assert isinstance(bad, MoleculeError) and "XYZ atom line" in bad.reason and good.id == "ethanol"


def test_unknown_suffix_names_the_file(tmp_path):
    path = tmp_path / "molecule.cif"
    path.write_text("data_x\n")
    with pytest.raises(ValueError, match=r"molecule\.cif: unknown structure format '\.cif'"):
        list(read_structures(path))


def test_an_option_the_reader_does_not_take_is_refused(tmp_path):
    path = tmp_path / "ethanol.xyz"
    path.write_text(_xyz())
    with pytest.raises(ValueError, match=r"ethanol\.xyz: the \.xyz reader has no option"):
        list(read_structures(path, smiles_field="smiles"))


def test_parsed_structure_has_exactly_one_form():
    with pytest.raises(ValueError, match="exactly one"):
        ParsedStructure(0, "x")
    with pytest.raises(ValueError, match="exactly one"):
        ParsedStructure(0, "x", smiles="C", error=MoleculeError("x", "bad"))
    with pytest.raises(ValueError, match="together"):
        ParsedStructure(0, "x", elements=["C"])


def test_the_record_type_needs_no_reader():
    """The record type sits below every reader and builder (cycles: tests/test_import_graph.py)."""
    from test_import_graph import MODULES, imports_of

    name = "deepmolm_plugin.molecule.record"
    assert imports_of(name, MODULES[name]) <= {"deepmolm_plugin.molecule.errors"}
