"""Sixteenth round: a charge that resonance shares between equal terminal atoms (carboxylate,
nitro, sulfonate, amidinium) is placed by the file's coordinates, not by its spelling. The
same 3D glycine zwitterion with the charge written on the other oxygen had other tokens (10
of 20 entries), and MOL2's O.co2 (no form named) got whichever form RDKit picked by atom
order."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.molecule import fingerprint_record, read_structures
from deepmolm_plugin.molecule.shared_charges import place_shared_charges


def _embedded(smiles: str, optimised: bool = False) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = 11
    assert AllChem.EmbedMolecule(mol, params) == 0
    if optimised:  # MMFF: the charged oxygen's bond longer, and mirror-image pairs exactly so
        AllChem.MMFFOptimizeMolecule(mol)
    return mol


def _spellings(mol: Chem.Mol) -> list[Chem.Mol]:
    """``mol`` with its shared charge written on each of the terminal atoms that can carry it
    (same coordinates), each also in a shuffled atom order."""
    centre, members, single_charge, singles = next(g for g in (_group_of(mol, a) for a in mol.GetAtoms()) if g)
    found = []
    for first in range(len(members)):
        rotated = members[first:] + members[:first]
        out = Chem.RWMol(mol)
        for rank, member in enumerate(rotated):
            single = rank < singles
            out.GetBondBetweenAtoms(centre, member).SetBondType(Chem.BondType.SINGLE if single else Chem.BondType.DOUBLE)
            out.GetAtomWithIdx(member).SetFormalCharge(single_charge if single else single_charge + 1)
        Chem.SanitizeMol(out)
        order = list(range(out.GetNumAtoms()))
        random.Random(first).shuffle(order)
        found += [out.GetMol(), Chem.RenumberAtoms(out.GetMol(), order)]
    return found


def _group_of(mol, atom):
    from deepmolm_plugin.molecule.shared_charges import _group

    return _group(mol, atom)


def _tokens_of_file(tmp_path, mol: Chem.Mol, name: str) -> list:
    path = tmp_path / f"{name}.sdf"
    path.write_text(Chem.MolToMolBlock(mol) + "$$$$\n")
    record = next(iter(read_structures(str(path), policy="auto")))
    assert record.conformer == "file"
    return sorted(map(tuple, np.asarray(fingerprint_record(record)).tolist()))


@pytest.mark.parametrize("smiles", ["[NH3+]CC(=O)[O-]", "C[N+](=O)[O-]", "CS(=O)(=O)[O-]", "CC(=[NH2+])N",
                                    "OP(=O)([O-])OC"])
def test_every_spelling_of_one_3d_file_gives_one_set_of_tokens(tmp_path, smiles):
    spellings = _spellings(_embedded(smiles))
    assert len({Chem.MolToMolBlock(m) for m in spellings}) == len(spellings)  # the files differ
    tokens = [_tokens_of_file(tmp_path, m, f"s{i}") for i, m in enumerate(spellings)]
    assert all(t == tokens[0] for t in tokens[1:])


@pytest.mark.parametrize("smiles", ["CS(=O)[O-]", "CP(=O)([O-])O", "COP(=O)([O-])[O-]", "CC(=O)[O-]",
                                    "[NH3+]CC(=O)[O-]", "NC(=[NH2+])N"])
def test_every_spelling_of_an_optimised_conformer_gives_one_set_of_tokens(tmp_path, smiles):
    """MMFF geometry: a sulfinate's and a phosphonate's two oxygens are mirror images about
    the centre (their distance sums equal by construction), so the written form was kept and
    the two spellings were [S@] and [S@@] (3 and 6 token entries apart); an acetate's oxygens
    differ by 5e-3 A in those sums, inside the first tie band (1 entry apart)."""
    spellings = _spellings(_embedded(smiles, optimised=True))
    tokens = [_tokens_of_file(tmp_path, m, f"o{i}") for i, m in enumerate(spellings)]
    assert all(t == tokens[0] for t in tokens[1:])


def test_a_mol2_carboxylate_is_the_sdf_of_either_form(tmp_path):
    mol = _embedded("CC(=O)[O-]")
    block = Chem.MolToMolBlock(mol)  # written as a MOL2 whose O.co2 atoms and `ar` bonds name no form
    conf = mol.GetConformer()
    types = {1: "C.2", 2: "O.co2", 3: "O.co2", 0: "C.3"}
    atoms = "\n".join(f"{a.GetIdx() + 1} {a.GetSymbol()}{a.GetIdx() + 1} {p.x:.4f} {p.y:.4f} {p.z:.4f} "
                      f"{types.get(a.GetIdx(), 'H')} 1 MOL 0.0"
                      for a, p in ((a, conf.GetAtomPosition(a.GetIdx())) for a in mol.GetAtoms()))
    bonds = "\n".join(f"{i + 1} {b.GetBeginAtomIdx() + 1} {b.GetEndAtomIdx() + 1} "
                      f"{'ar' if b.GetBeginAtomIdx() == 1 and b.GetEndAtomIdx() in (2, 3) else '1'}"
                      for i, b in enumerate(mol.GetBonds()))
    mol2 = tmp_path / "acetate.mol2"
    mol2.write_text(f"@<TRIPOS>MOLECULE\nacetate\n{mol.GetNumAtoms()} {mol.GetNumBonds()} 0 0 0\nSMALL\nUSER_CHARGES\n\n"
                    f"@<TRIPOS>ATOM\n{atoms}\n@<TRIPOS>BOND\n{bonds}\n")
    from_mol2 = sorted(map(tuple, np.asarray(fingerprint_record(next(iter(read_structures(str(mol2)))))).tolist()))
    assert block and all(_tokens_of_file(tmp_path, m, f"f{i}") == from_mol2
                         for i, m in enumerate(_spellings(mol)))


def test_the_charge_goes_to_the_same_place_and_nothing_else_moves():
    spellings = _spellings(_embedded("[NH3+]CC(=O)[O-]"))
    placed = []
    for mol in spellings:
        out = place_shared_charges(mol)
        charged = [a.GetIdx() for a in out.GetAtoms() if a.GetSymbol() == "O" and a.GetFormalCharge()]
        placed.append(tuple(np.round(out.GetConformer().GetAtomPosition(charged[0]), 4)))
        assert Chem.MolToSmiles(out) == Chem.MolToSmiles(mol)  # one molecule, one graph
        assert sum(a.GetFormalCharge() for a in out.GetAtoms()) == 0
    assert len(set(placed)) == 1


@pytest.mark.parametrize("smiles", ["CC(=O)O", "CC(=O)[O-]"])
def test_a_molecule_without_coordinates_or_without_a_shared_charge_is_left_as_it_is(smiles):
    flat = Chem.MolFromSmiles(smiles)
    assert place_shared_charges(flat) is flat
    acid = _embedded("CC(=O)O")
    assert place_shared_charges(acid) is acid
