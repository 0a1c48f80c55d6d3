"""Seventeenth round: Tripos pseudo-atoms in MOL2 files.

- Lone pairs (type LP, as SYBYL and some older Tripos/CCDC exports write them, bonded to their
  atom): RDKit dropped them and their bonds without a word (no note; a lone pair bonded to two
  atoms was dropped too), failed on ``Lp`` with its C++ text, let a pyridine-type N's lone pair
  count as its third bond (a false "read as N.pl3" note), and, with a lone pair listed before
  an atom, gave UNITY_ATOM_ATTR charges to other atoms (methoxide's -1 to an H).
- Dummy atoms (Du, Du.C, ``*``) and the upper-case query types RDKit reads as elements (HAL as
  F, HET as N, HEV as H, ANY as a dummy) were refused later without their line or type, in the
  words of molfile query features, or as an atom short of bonds.
"""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem
from test_hostile_structure_files import _items, _mol, _mol2, _write

from deepmolm_plugin.molecule import MoleculeError, fingerprint_record

LP_NOTE = "(MOL2 type LP: a lone pair is not an atom) dropped, bonds and all: "
QUERY = ("which names no element (Any, Hal, Het and Hev are query types): give the atom its element's SYBYL type")
DUMMY = ("a dummy atom (atomic number 0: Du and Du.C are placeholders, not elements), so the molecule has no one "
         "structure to draw or fingerprint: give the atom its element's SYBYL type, or remove it and its bonds")


def _parts(mol, name="m"):
    """The atom fields (name, x, y, z, type) and bond fields (a, b, order) of ``_mol2(mol)``."""
    lines, n = _mol2(mol, name).splitlines(), mol.GetNumAtoms()
    return [line.split()[1:6] for line in lines[7:7 + n]], [line.split()[1:4] for line in lines[8 + n:]]


def _text(atoms, bonds, name="m", tail="") -> str:
    """A MOL2 record: file line 7 + k holds atom k."""
    lines = ["@<TRIPOS>MOLECULE", name, f" {len(atoms)} {len(bonds)} 1 0 0", "SMALL", "NO_CHARGES", "",
             "@<TRIPOS>ATOM"]
    lines += [f"{k:7d} {a[0]:<5s} {a[1]:>9s} {a[2]:>9s} {a[3]:>9s} {a[4]:<6s} 1 UNL1 0.0000"
              for k, a in enumerate(atoms, 1)]
    lines += ["@<TRIPOS>BOND"] + [f"{k:6d} {b[0]:>5} {b[1]:>5} {b[2]}" for k, b in enumerate(bonds, 1)]
    return "\n".join(lines) + "\n" + tail


def _lone_pair(atoms, on: int, name: str, kind="LP"):
    """A lone pair 0.5 A from atom ``on`` (x + 0.5)."""
    x, y, z = atoms[on - 1][1:4]
    return [name, f"{float(x) + 0.5:.4f}", y, z, kind]


def _with_lone_pairs(atoms, bonds, on: list[int], at: int | None = None, kind="LP"):
    """``atoms``, ``bonds`` with a lone pair bonded to each atom of ``on`` (0: none), listed after
    the atoms, or inserted as atom ``at`` (one lone pair; the atoms after it renumbered)."""
    atoms, bonds = list(atoms), [list(b) for b in bonds]
    if at is None:
        for i, atom in enumerate(on, 1):
            atoms.append(_lone_pair(atoms, atom, f"LP{i}", kind))
            bonds += [[str(atom), str(len(atoms)), "1"]] if atom else []
        return atoms, bonds
    (atom,) = on
    renumber = {str(k): str(k + 1 if k >= at else k) for k in range(1, len(atoms) + 1)}
    bonds = [[renumber[b[0]], renumber[b[1]], b[2]] for b in bonds] + [[renumber[str(atom)], str(at), "1"]]
    return atoms[:at - 1] + [_lone_pair(atoms, atom, "LP1", kind)] + atoms[at - 1:], bonds


def _record(path):
    (record,) = _items(path)
    return record


def _refused(path) -> str:
    record = _record(path)
    assert isinstance(record, MoleculeError), (record.notes, Chem.MolToSmiles(record.mol))
    return record.reason


def _same_molecule(record, plain):
    """``record`` is ``plain``'s molecule: atoms, coordinates, charges and model inputs."""
    assert not isinstance(record, MoleculeError), record
    assert Chem.MolToSmiles(record.mol) == Chem.MolToSmiles(plain.mol)
    assert record.mol.GetNumAtoms() == plain.mol.GetNumAtoms()
    assert torch.equal(torch.tensor(record.mol.GetConformer().GetPositions()),
                       torch.tensor(plain.mol.GetConformer().GetPositions()))
    assert torch.equal(fingerprint_record(record), fingerprint_record(plain))


# --- lone pairs, dropped with a note ------------------------------------------------------
@pytest.mark.parametrize("smiles, on, sat_on", [
    ("O", [1, 1], "LP1 (atom 4) on O1 (atom 1), LP2 (atom 5) on O1 (atom 1)"),
    ("CC(N)=O", [3, 4, 4], "LP1 (atom 10) on N3 (atom 3), LP2 (atom 11) on O4 (atom 4), LP3 (atom 12) on O4 (atom 4)"),
    ("CCO", [3, 0], "LP1 (atom 10) on O3 (atom 3), LP2 (atom 11) on no atom"),
])
def test_lone_pairs_after_the_atoms_are_dropped_with_a_note_naming_their_atoms(tmp_path, smiles, on, sat_on):
    atoms, bonds = _parts(_mol(smiles, "m"))
    plain = _record(_write(tmp_path / "plain.mol2", _text(atoms, bonds)))
    record = _record(_write(tmp_path / "lp.mol2", _text(*_with_lone_pairs(atoms, bonds, on))))
    _same_molecule(record, plain)  # was: the same molecule, but no word of the lone pairs
    count = f"{len(on)} lone pairs "
    assert record.notes == [count + LP_NOTE + sat_on] + plain.notes


def test_a_lone_pair_listed_between_atoms_says_how_the_atoms_after_it_are_numbered(tmp_path):
    atoms, bonds = _parts(_mol("CCO", "m"))
    plain = _record(_write(tmp_path / "plain.mol2", _text(atoms, bonds)))
    record = _record(_write(tmp_path / "lp.mol2", _text(*_with_lone_pairs(atoms, bonds, [3], at=4))))
    _same_molecule(record, plain)
    assert record.notes == ["1 lone pair " + LP_NOTE + "LP1 (atom 4) on O3 (atom 3); the atoms listed after a lone "
                            "pair are numbered without it (the file's atom 5 is atom 4)"]


@pytest.mark.parametrize("kind", ["Lp", "lp"])
def test_a_lone_pair_typed_in_lower_case_is_dropped_as_lp_is(tmp_path, kind):
    atoms, bonds = _parts(_mol("CCO", "m"))
    plain = _record(_write(tmp_path / "plain.mol2", _text(atoms, bonds)))
    record = _record(_write(tmp_path / "lp.mol2", _text(*_with_lone_pairs(atoms, bonds, [3], kind=kind))))
    _same_molecule(record, plain)  # was: refused with RDKit's "Element 'Lp' not found"
    assert record.notes == ["1 lone pair " + LP_NOTE + "LP1 (atom 10) on O3 (atom 3)"]


def test_a_pyridine_type_n_with_its_lone_pair_is_not_read_as_n_pl3(tmp_path):
    atoms, bonds = _parts(_mol("Cc1ncc[nH]1", "ring"))  # N3 pyridine-type, N6 pyrrole-type, both N.ar
    assert atoms[2][4] == atoms[5][4] == "N.ar"
    record = _record(_write(tmp_path / "lp.mol2", _text(*_with_lone_pairs(atoms, bonds, [3]))))
    assert not isinstance(record, MoleculeError), record
    # was: "... read as N.pl3 ...: N3 (atom 3), N6 (atom 6)", the lone pair's bond counted as N3's third
    assert record.notes == ["1 lone pair " + LP_NOTE + "LP1 (atom 13) on N3 (atom 3)",
                            "N.ar atoms with three bonds read as N.pl3 (pyrrole-type N, which RDKit cannot kekulize "
                            "as N.ar): N6 (atom 6)"]


# --- lone pairs that cannot be dropped safely ---------------------------------------------
@pytest.mark.parametrize("extra, bonded", [
    ([["2", "10", "1"]], "C2 (atom 2), O3 (atom 3)"),   # a bridge between two atoms, not a lone pair
    ([["10", "11", "1"]], "O3 (atom 3), LP2 (atom 11)"),  # bonded to another lone pair
])
def test_a_lone_pair_bonded_to_two_atoms_or_to_a_lone_pair_is_refused_naming_its_line(tmp_path, extra, bonded):
    atoms, bonds = _parts(_mol("CCO", "m"))
    atoms, bonds = _with_lone_pairs(atoms, bonds, [3, 3])
    reason = _refused(_write(tmp_path / "lp.mol2", _text(atoms, bonds + extra)))  # was: read, silently
    assert reason == (f"line 17: lone pair LP1 (atom 10) is bonded to {bonded}: a lone pair (type LP) is one atom's, "
                      "bonded to it alone, so it cannot be dropped; fix its bonds")


def _methoxide():
    """Methoxide's atoms and bonds (C1 O2 H3-H5) and its charge as a UNITY_ATOM_ATTR section."""
    atoms = [["C1", "0.0000", "0.0000", "0.0000", "C.3"], ["O2", "0.0000", "1.4100", "0.0000", "O.3"],
             ["H3", "1.0300", "-0.3600", "0.0000", "H"], ["H4", "-0.5150", "-0.3600", "0.8920", "H"],
             ["H5", "-0.5150", "-0.3600", "-0.8920", "H"]]
    return atoms, [["1", str(k), "1"] for k in range(2, 6)], "@<TRIPOS>UNITY_ATOM_ATTR\n{} 1\nAtomExpr -1\n"


def test_a_lone_pair_listed_before_an_atom_of_a_record_with_stated_charges_is_refused(tmp_path):
    atoms, bonds, charge = _methoxide()
    plain = _record(_write(tmp_path / "plain.mol2", _text(atoms, bonds, tail=charge.format(2))))
    assert Chem.MolToSmiles(Chem.RemoveHs(plain.mol)) == "C[O-]"
    # after the atoms the lone pair is dropped, and the charge stays on the O
    last = _record(_write(tmp_path / "last.mol2", _text(*_with_lone_pairs(atoms, bonds, [2]), tail=charge.format(2))))
    _same_molecule(last, plain)
    assert last.notes == ["1 lone pair " + LP_NOTE + "LP1 (atom 6) on O2 (atom 2)"] + plain.notes
    # before the O (now atom 3): RDKit gave the O's -1 to H3 (was: "atom O2 is short of bonds")
    text = _text(*_with_lone_pairs(atoms, bonds, [2], at=2), tail=charge.format(3))
    assert _refused(_write(tmp_path / "first.mol2", text)) == (
        "line 9: lone pair LP1 (atom 2) comes before atom O2 (atom 3), and RDKit numbers the atoms without lone pairs, "
        "so it would give the charges of the @<TRIPOS>UNITY_ATOM_ATTR section to other atoms: list the lone pairs "
        "after the atoms, or remove them")


# --- dummy atoms and upper-case query types -----------------------------------------------
@pytest.mark.parametrize("kind", ["Du", "Du.C", "*"])
def test_a_dummy_atom_is_refused_naming_its_line_and_type(tmp_path, kind):
    atoms, bonds = _parts(_mol("CCO", "m"))
    atoms[3][4] = kind  # H4 on file line 11: a site marker where a substituent goes
    reason = _refused(_write(tmp_path / "du.mol2", _text(atoms, bonds)))  # was: "dummy/query atoms *4: ..."
    assert reason == f"line 11: atom H4 (atom 4) has the type {kind!r}, {DUMMY}"


@pytest.mark.parametrize("smiles, atom, kind, name", [
    ("CCCl", 3, "HAL", "Cl3"),  # was read as F, then refused as "a molfile query feature"
    ("CN", 2, "HET", "N2"),     # read as N
    ("CCO", 2, "HEV", "C2"),    # read as H: "Explicit valence for atom H2, 4"
    ("CCO", 9, "HET", "H9"),    # read as N: "atom N9 is short of bonds"
    ("CCO", 9, "ANY", "H9"),    # read as a dummy
])
def test_an_upper_case_query_type_is_refused_naming_its_line(tmp_path, smiles, atom, kind, name):
    atoms, bonds = _parts(_mol(smiles, "m"))
    atoms[atom - 1][4] = kind
    reason = _refused(_write(tmp_path / "q.mol2", _text(atoms, bonds)))
    assert reason == f"line {7 + atom}: atom {name} (atom {atom}) has the type {kind!r}, {QUERY}"


def test_a_dummy_atom_after_a_lone_pair_is_named_by_its_place_in_the_file(tmp_path):
    atoms, bonds = _parts(_mol("CCO", "m"))
    atoms[8][4] = "Du"  # H9
    text = _text(*_with_lone_pairs(atoms, bonds, [3], at=4))  # H9 is now atom 10, on line 17
    assert _refused(_write(tmp_path / "du.mol2", text)) == f"line 17: atom H9 (atom 10) has the type 'Du', {DUMMY}"
