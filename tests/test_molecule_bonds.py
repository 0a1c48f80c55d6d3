"""Every loop over a molecule's bonds is linear (`molecule.bonds.bonds`).

RDKit's whole-molecule bond sequence reaches bond i in O(i), so `for b in mol.GetBonds()`
is quadratic: the bond checks, fingerprint, matching, canonical copy, depiction, KFLM2 graph
and 3D view of a molecule of tens of thousands of bonds (reached with --fragments largest,
--too-large truncate or a lifted cap) spent seconds to minutes there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from rdkit import Chem

from deepmolm_plugin.molecule.bonds import bonds

PACKAGE = Path(__file__).resolve().parents[1] / "deepmolm_plugin"


@pytest.mark.parametrize("smiles", ["C", "[Na+].[Cl-]", "CCO", "c1ccccc1C(=O)O.[Na+]", "C1CC2CCC1CC2",
                                    "F/C=C/Cl", "[NH3]->[Pt]"])
def test_bonds_are_the_molecules_bonds_in_index_order(smiles):
    mol = Chem.MolFromSmiles(smiles)
    mol = Chem.AddHs(mol)
    expected = [(b.GetIdx(), b.GetBeginAtomIdx(), b.GetEndAtomIdx(), b.GetBondType()) for b in mol.GetBonds()]
    got = [(b.GetIdx(), b.GetBeginAtomIdx(), b.GetEndAtomIdx(), b.GetBondType()) for b in bonds(mol)]
    assert got == expected


def test_bonds_of_an_editable_molecule_are_its_own():
    """Callers change bond types through them (matching's skeleton)."""
    rw = Chem.RWMol(Chem.MolFromSmiles("C=CC#N"))
    for bond in bonds(rw):
        bond.SetBondType(Chem.BondType.SINGLE)
    assert {b.GetBondType() for b in rw.GetBonds()} == {Chem.BondType.SINGLE}


def _whole_molecule_bond_loops(path: Path) -> list:
    """`X.GetBonds()` calls whose X is not an atom (an atom's own bond list is direct)."""
    atom_names = {"a", "atom", "t_atom"}
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "GetBonds":
            owner = node.func.value
            is_atom = (isinstance(owner, ast.Name) and owner.id in atom_names) or (
                isinstance(owner, ast.Call) and isinstance(owner.func, ast.Attribute)
                and owner.func.attr in ("GetAtomWithIdx", "GetBeginAtom", "GetEndAtom"))
            if not is_atom:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_no_loop_over_the_quadratic_bond_sequence():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.name != "bonds.py"
                 for hit in _whole_molecule_bond_loops(path)]
    assert offenders == [], "use molecule.bonds.bonds(mol): " + ", ".join(offenders)
