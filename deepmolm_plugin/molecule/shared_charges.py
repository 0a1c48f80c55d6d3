"""One place for a charge that resonance shares between equal terminal atoms.

A carboxylate ``C(=O)[O-]``, a nitro group ``[N+](=O)[O-]``, a sulfonate ``S(=O)(=O)[O-]``
(in its neutral hypervalent form, ``hypervalent.py``), an amidinium ``C(=[NH2+])N``: the
charge sits on one of two or more equal terminal atoms of one centre, and which one is only
spelling: the file's atom order, the program that wrote it. E3FP reads each atom's formal
charge *and* where it is, so the same 3D coordinates with the charge written on the other
oxygen gave other tokens (a glycine zwitterion: 10 of 20 entries; MOL2's ``O.co2`` names no
form, so RDKit picked one by atom order).

Rule (``place_shared_charges``, the last step of ``finish``, on the conformer the record
keeps, read or generated): around a centre, the terminal atoms that can trade places (one
heavy neighbour, the same element, isotope and hydrogen count, bonded single with charge q
or double with charge q + 1, not aromatic, no radical, no bond stereo) take the single bonds
longest bond first, as ``matching.py`` places a SMILES' bonds: a real length difference
(more than ``matching.TIE_LENGTH``) puts the double bond on the shorter bond. Bonds within
that of each other are one length (resonance), and there the atom farther from the rest of
the molecule (the larger sum of distances to every heavy atom, the same for any atom order or
rotation) takes the single bond; two atoms whose sums tie (``SUM_TIE``) are mirror images
of each other about the centre (a sulfinate's or a phosphonate's oxygens: the sums are equal
by construction, and the charge makes the centre a stereocentre), ordered by their
handedness about it (``det(a - c, b - c, r - c) > 0`` takes ``a`` first, c the centre, r the
centroid of its other heavy neighbours); a tie that is flat (``FLAT``) or of three atoms (a
methanesulfonate's oxygens) keeps the bonds as written, which ``matching.py`` has put in the
SMILES' order. A record without coordinates is left as written (its conformer,
generated from the canonical copy, is one for every spelling).
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem

from .matching import TIE_LENGTH

__all__ = ["place_shared_charges"]

# Angstrom: two atoms' sums of distances to every heavy atom this close are a tie. SDF prints
# coordinates to 1e-4 A, so two writings of one conformer can move a sum by ~1e-3 (a near tie
# between them may still fall either way, but then E3FP already tells the two writings apart:
# its shells react to 1e-3 A); an MMFF acetate's two oxygens differ by 5e-3 (0.01 kept the
# written form there, and the two spellings differed).
SUM_TIE = 0.002
# Angstrom^3: |det(a - c, b - c, r - c)| below this is a flat pair (a carboxylate, in its plane
# with the atom it hangs on), where the handedness says nothing either
FLAT = 0.05


def place_shared_charges(mol: Chem.Mol) -> Chem.Mol:
    """``mol`` (with a conformer), or a copy with each shared charge where the rule above
    puts it. Bonds and charges change only within such a group; hydrogen counts not at all."""
    if not mol.GetNumConformers():
        return mol
    groups = [g for g in (_group(mol, atom) for atom in mol.GetAtoms()) if g]
    if not groups:
        return mol
    positions = mol.GetConformer().GetPositions()
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    out = Chem.RWMol(mol)
    changed = False
    for centre, members, single_charge, singles in groups:
        for rank, member in enumerate(_single_first(mol, members, centre, heavy, positions)):
            want = (Chem.BondType.SINGLE, single_charge) if rank < singles else (Chem.BondType.DOUBLE, single_charge + 1)
            bond, atom = out.GetBondBetweenAtoms(centre, member), out.GetAtomWithIdx(member)
            if (bond.GetBondType(), atom.GetFormalCharge()) != want:
                bond.SetBondType(want[0])
                atom.SetFormalCharge(want[1])
                changed = True
    if not changed:
        return mol
    Chem.SanitizeMol(out)  # conjugation of the moved bonds
    return out.GetMol()


def _single_first(mol: Chem.Mol, members: list[int], centre: int, heavy: list[int], positions) -> list[int]:
    """``members`` in the order they take the single bonds (the module docstring's rule):
    longest bond first; a run of bonds each within TIE_LENGTH of the next is one length,
    ordered by the sum of distances to every heavy atom (largest first); a tie of two there
    by handedness; any other tie as written. ``positions``: (atoms, 3)."""
    def distance(a: int, b: int) -> float:
        return float(np.linalg.norm(positions[a] - positions[b]))

    def runs(ordered: list[int], key, tie: float) -> list[list[int]]:
        found = [[ordered[0]]]
        for member in ordered[1:]:
            if key(found[-1][-1]) - key(member) <= tie:
                found[-1].append(member)
            else:
                found.append([member])
        return found

    def length(m: int) -> float:
        return distance(centre, m)

    def spread(m: int) -> float:
        return sum(distance(m, h) for h in heavy)

    def written_single_first(m: int) -> tuple:
        return (mol.GetBondBetweenAtoms(centre, m).GetBondType() != Chem.BondType.SINGLE, m)

    ordered = []
    for same_length in runs(sorted(members, key=lambda m: -length(m)), length, TIE_LENGTH):
        for tie in runs(sorted(same_length, key=lambda m: -spread(m)), spread, SUM_TIE):
            handed = _by_handedness(mol, tie, centre, members, positions) if len(tie) == 2 else None
            ordered += handed or sorted(tie, key=written_single_first)
    return ordered


def _by_handedness(mol: Chem.Mol, pair: list[int], centre: int, members: list[int], positions) -> list[int] | None:
    """``pair`` (a, b) ordered so that det(a - c, b - c, r - c) > 0, c the centre and r the
    centroid of its heavy neighbours outside the group; None where that is flat (``FLAT``) or
    the centre has no such neighbour."""
    others = [n.GetIdx() for n in mol.GetAtomWithIdx(centre).GetNeighbors()
              if n.GetAtomicNum() > 1 and n.GetIdx() not in members]
    if not others:
        return None
    c = positions[centre]
    a, b = pair
    det = float(np.linalg.det(np.stack([positions[a] - c, positions[b] - c, positions[others].mean(axis=0) - c])))
    if abs(det) <= FLAT:
        return None
    return [a, b] if det > 0 else [b, a]


def _group(mol: Chem.Mol, atom: Chem.Atom) -> tuple[int, list[int], int, int] | None:
    """(``atom``, a centre, its exchangeable terminal atoms, the single-bonded ones' charge, how many are
    single-bonded) where a bond order and a charge are shared: single-bonded atoms with charge
    q and double-bonded ones with q + 1 (a carboxylate's [O-] and =O, an amidinium's NH2 and
    =[NH2+]), at least one of each; else None."""
    kinds: dict[tuple, list[tuple[int, int, int]]] = {}
    for bond in atom.GetBonds():  # the centre's
        other = bond.GetOtherAtom(atom)
        if other.GetAtomicNum() <= 1 or sum(n.GetAtomicNum() > 1 for n in other.GetNeighbors()) != 1:
            continue  # hydrogens, and atoms with more than this one heavy neighbour
        if bond.GetIsAromatic() or bond.GetStereo() != Chem.BondStereo.STEREONONE or other.GetNumRadicalElectrons():
            continue
        order = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2}.get(bond.GetBondType())
        if order is None:
            continue
        kind = (other.GetAtomicNum(), other.GetIsotope(), other.GetTotalNumHs(includeNeighbors=True))
        kinds.setdefault(kind, []).append((other.GetIdx(), order, other.GetFormalCharge() - order))
    for members in kinds.values():
        # one resonance system: every member's charge is its bond order plus one constant
        if len({shift for _, _, shift in members}) == 1 and {order for _, order, _ in members} == {1, 2}:
            singles = [m for m, order, _ in members if order == 1]
            return (atom.GetIdx(), [m for m, _, _ in members],
                    mol.GetAtomWithIdx(singles[0]).GetFormalCharge(), len(singles))
    return None
