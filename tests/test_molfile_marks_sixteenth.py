"""Sixteenth round: molfile and XYZ marks that were read as something else, or not read, without
a word. A molfile's query-atom features (the hydrogen-count field, `M  SUB`/`UNS`/`RBC`/`RGP`,
V3000 HCOUNT=/SUBST=/UNSAT=/RBCNT=/RGROUPS=) made RDKit query atoms: other tokens and pictures
(hhh=3 on an N made the methyl a radical). An atom-block charge field 4 (a doublet radical) was
dropped; a leftover atom-block mass difference beside `M  ISO` lines became a 14C; an XYZ
comment's multiplicity and periodic cell were ignored; an SDF data field setting an RDKit-internal
atom property crashed reading with a bare "bad any_cast"."""

from __future__ import annotations


import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.molecule.errors import MoleculeError
from read_one import accepted as _ok, read_one as _read

VALINE = "CC(C)[C@H](N)C(=O)O"  # atom 5 is the N
# a V2000 atom line's fields (0-based columns): mass difference, charge, hydrogen count (a
# query), and the stereo-care-box and valence fields that stay plain
FIELDS = {"dd": (34, 36), "ccc": (36, 39), "hhh": (42, 45), "bbb": (45, 48), "vvv": (48, 51)}


def _molblock(smiles: str = VALINE, v3000: bool = False) -> str:
    mol = Chem.MolFromSmiles(smiles)
    AllChem.Compute2DCoords(mol)
    mol.SetProp("_Name", "valine")
    return Chem.MolToV3KMolBlock(mol) if v3000 else Chem.MolToMolBlock(mol)


def _set_field(block: str, atom: int, field: str, value: int) -> str:
    """``block`` with V2000 atom ``atom`` (0-based) given ``value`` in ``field``."""
    lines = block.split("\n")
    start, end = FIELDS[field]
    line = lines[4 + atom].ljust(69)
    lines[4 + atom] = line[:start] + str(value).rjust(end - start) + line[end:]
    return "\n".join(lines)


def _add_lines(block: str, extra: str) -> str:
    return block.replace("M  END", extra + "\nM  END")


def _v3000_atom(block: str, atom: int, extra: str) -> str:
    lines = block.split("\n")
    at = next(n for n, line in enumerate(lines) if line.startswith("M  V30 BEGIN ATOM")) + 1 + atom
    lines[at] += " " + extra
    return "\n".join(lines)


QUERY_FEATURES = [
    ("hhh=3", lambda: _set_field(_molblock(), 4, "hhh", 3), "N5"),
    ("hhh=4 on C1", lambda: _set_field(_molblock(), 0, "hhh", 4), "C1"),
    ("M  SUB", lambda: _add_lines(_molblock(), "M  SUB  1   5   2"), "N5"),
    ("M  UNS", lambda: _add_lines(_molblock(), "M  UNS  1   5   1"), "N5"),
    ("M  RBC", lambda: _add_lines(_molblock(), "M  RBC  1   5   2"), "N5"),
    ("M  RGP", lambda: _add_lines(_molblock(), "M  RGP  1   5   1"), "N5"),
    *[(extra, lambda extra=extra: _v3000_atom(_molblock(v3000=True), 4, extra), "N5")
      for extra in ("HCOUNT=2", "SUBST=2", "UNSAT=1", "RBCNT=2", "RGROUPS=(1 1)")],
]


@pytest.mark.parametrize("label, block, atom", QUERY_FEATURES, ids=[q[0] for q in QUERY_FEATURES])
def test_query_atom_features_are_refused(tmp_path, label, block, atom):
    error = _read(tmp_path, block())
    assert isinstance(error, MoleculeError), f"{label} was read: {error}"
    assert f"query atoms {atom} " in error.reason and "not a concrete structure" in error.reason


def test_plain_atom_fields_are_not_query_atoms(tmp_path):
    """Isotopes, charges, atom maps, aromatic bond type 4 and the stereo-care-box and valence
    fields stay concrete; with a query feature beside them the record fails (the old code read it)."""
    plain = _molblock("[13CH3]C(C)[C@H]([NH3+:7])C(=O)[O-]")
    plain = _set_field(_set_field(plain, 1, "bbb", 1), 1, "vvv", 4)  # stereo care box; valence 4
    assert _ok(_read(tmp_path, plain, "plain.sdf")).mol.GetAtomWithIdx(0).GetIsotope() == 13
    benzene = _molblock("c1ccccc1")
    benzene = "\n".join(line[:6] + "  4" + line[9:] if n > 9 and line[6:9] in ("  1", "  2") else line
                        for n, line in enumerate(benzene.split("\n")))
    assert "  4  0" in benzene and _ok(_read(tmp_path, benzene, "aromatic.sdf")).mol.GetNumHeavyAtoms() == 6
    assert isinstance(_read(tmp_path, _set_field(plain, 4, "hhh", 3), "query.sdf"), MoleculeError)


def test_doublet_radical_charge_field_is_refused(tmp_path):
    error = _read(tmp_path, _set_field(_molblock(), 0, "ccc", 4))
    assert isinstance(error, MoleculeError), "the doublet radical was read as the closed-shell molecule"
    assert "charge field 4 (a doublet radical) on atom(s) C1" in error.reason and "'M  RAD'" in error.reason
    radical = _ok(_read(tmp_path, _add_lines(_molblock(), "M  RAD  1   1   2"), "rad.sdf"))
    assert radical.mol.GetAtomWithIdx(0).GetNumRadicalElectrons() == 1


def test_m_iso_supersedes_atom_block_mass_differences(tmp_path):
    labelled = _molblock("[13CH3]C(C)[C@H](N)C(=O)O")
    record = _ok(_read(tmp_path, _set_field(labelled, 3, "dd", 2)))
    assert [a.GetIsotope() for a in record.mol.GetAtoms()][:5] == [13, 0, 0, 0, 0]
    assert any("mass difference of atom(s) C4 not read" in note and "'M  ISO'" in note for note in record.notes)
    alone = _ok(_read(tmp_path, _set_field(_molblock(), 3, "dd", 2), "alone.sdf"))  # no M  ISO: still read
    assert alone.mol.GetAtomWithIdx(3).GetIsotope() == 14


def _xyz(comment: str) -> str:
    mol = Chem.AddHs(Chem.MolFromSmiles("CO"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    atoms = "".join(f"{a.GetSymbol()} {x:.5f} {y:.5f} {z:.5f}\n"
                    for a, (x, y, z) in zip(mol.GetAtoms(), mol.GetConformer().GetPositions()))
    return f"{mol.GetNumAtoms()}\n{comment}\n{atoms}"


@pytest.mark.parametrize("comment, said", [("charge=0 multiplicity=3", "multiplicity=3"), ("mult=3", "mult=3"),
                                           ("SPIN=1", "SPIN=1"), ("spin_multiplicity=3", "spin_multiplicity=3")])
def test_xyz_spin_state_is_noted(tmp_path, comment, said):
    record = _ok(_read(tmp_path, _xyz(comment), "m.xyz"))
    assert any(note.startswith(f"line 2: {said} in the comment line is not read") for note in record.notes)


@pytest.mark.parametrize("comment", ["charge=0 multiplicity=1", "mult=1", "spin=0", 'spin_multiplicity="1"'])
def test_xyz_closed_shell_needs_no_note(tmp_path, comment):
    """What the perception assumes anyway: a dataset writing it on every frame got the note on
    every record."""
    record = _ok(_read(tmp_path, _xyz(comment), "m.xyz"))
    assert not [note for note in record.notes if "is not read" in note]


def test_xyz_periodic_cell_is_noted(tmp_path):
    lattice = 'Lattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3'
    record = _ok(_read(tmp_path, _xyz(f'{lattice} pbc="T T T"'), "m.xyz"))
    assert any('periodic cell (pbc="T T T")' in note and "isolated molecule" in note for note in record.notes)
    isolated = _ok(_read(tmp_path, _xyz(f'{lattice} pbc="F F F"'), "f.xyz"))
    assert not any("periodic" in note for note in isolated.notes)


def test_rdkit_internal_atom_property_field_is_refused(tmp_path):
    block = _molblock()
    error = _read(tmp_path, block + "> <atom.iprop._ringStereoAtoms>\n1 2 3 4 5 6 7 8\n\n$$$$\n")
    assert isinstance(error, MoleculeError)
    assert "'atom.iprop._ringStereoAtoms'" in error.reason and "internal atom property" in error.reason
    record = _ok(_read(tmp_path, block + "> <atom.prop.label>\na b c d e f g h\n\n$$$$\n", "plain.sdf"))
    assert record.mol.GetAtomWithIdx(1).GetProp("label") == "b"
