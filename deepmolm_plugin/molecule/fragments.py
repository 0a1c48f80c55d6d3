"""Salts and fragments: ``fragments='all'`` or ``'largest'``.

``fragments='all'`` (default) keeps every fragment: the depiction shows them, and DeepMoLM
fingerprinted floating ions (``exclude_floating`` off); a note counts them.
``fragments='largest'`` keeps the fragment with the most heavy atoms and notes what was
dropped. Ties are broken by the fragment alone, never by where it is written (was: the first
on ties, so `[Na+].[Cl-]` kept sodium and `[Cl-].[Na+]` chloride): most atoms counting
hydrogens, then the higher molecular weight, then the canonical SMILES first in sort order;
the note says which of these decided. Copies of one fragment with coordinates (two poses, an
asymmetric unit of Z'=2) differ in their 3D tokens: the copy kept is the one first by its
atoms' sorted distances from its centre, then by its centre's coordinates; the note says so (was: the first
in the file, so swapping two atom blocks changed the tokens). Dropping a lone H+ says the
kept fragment's charge: a proton is part of a molecule, not a counter-ion (was: "dropped
[H+]" alone, and a flat XYZ, whose bond perception split off an H+, became the alkoxide
with that note; such protons now fail in ``builders``). Dropped fragments are named without
their hydrogen atoms (`C (x10)`, not `[H]C([H])([H])[H] (x10)`). deepmolm-kflm2's copy key (``standard.molecule_keys``, RDKit's
LargestFragmentChooser) counts atoms with hydrogens first. Heavy-atom order within the kept
fragment is preserved.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from rdkit import Chem

from .errors import atom_names, rdkit_messages

__all__ = ["keep_fragments"]

MAX_NAMED = 10  # dropped fragments named in the note (a file of 4,000 methanes: the first ten, and a count)


def keep_fragments(mol: Chem.Mol, fragments: str, notes: list[str]) -> Chem.Mol:
    """``mol`` itself (``'all'``) or its largest fragment (``'largest'``), noted either way."""
    if fragments == "largest":
        return _largest_fragment(mol, notes)
    count = len(Chem.GetMolFrags(mol))
    if count > 1:
        notes.append(f"{count} fragments, all kept")
    return mol


def _largest_fragment(mol: Chem.Mol, notes: list[str]) -> Chem.Mol:
    frags = Chem.GetMolFrags(mol, asMols=False)
    if len(frags) < 2:
        return mol
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])  # [N]
    heavy = [int((z[list(f)] > 1).sum()) for f in frags]
    keep, tie = _pick(mol, frags, heavy)
    others = [f for i, f in enumerate(frags) if i != keep]
    # named up to MAX_NAMED: each name costs a pass over the whole molecule
    named = Counter(_name(mol, f, z) for f in others[:MAX_NAMED])
    shown = ", ".join(s if n == 1 else f"{s} (x{n})" for s, n in named.items())
    more = len(others) - MAX_NAMED
    notes.append(f"kept the largest of {len(frags)} fragments ({heavy[keep]} heavy atoms{tie}); dropped {shown}"
                 f"{f' and {more} more fragments' if more > 0 else ''}{_proton_words(mol, frags[keep], others)}")
    # The other atoms removed in one batch: GetMolFrags(asMols=True) built every fragment as
    # a molecule, quadratic in their number (4,000 fragments of a 20,000-atom file: 29 s).
    out = Chem.RWMol(mol)
    kept = set(frags[keep])
    out.BeginBatchEdit()
    for index in range(mol.GetNumAtoms()):
        if index not in kept:
            out.RemoveAtom(index)
    out.CommitBatchEdit()
    out = out.GetMol()
    if mol.HasProp("_Name"):
        out.SetProp("_Name", mol.GetProp("_Name"))
    return out


def _pick(mol: Chem.Mol, frags: tuple, heavy: list[int]) -> tuple[int, str]:
    """(index of the fragment to keep, the note's words on a tie: "" when none). The most heavy
    atoms; among equals, each rule below in turn, whatever order they are written in."""
    tied = [i for i, n in enumerate(heavy) if n == max(heavy)]
    if len(tied) == 1:
        return tied[0], ""
    with_h = [sum(1 + mol.GetAtomWithIdx(a).GetTotalNumHs() for a in f) for f in frags]
    # rounded: summed in the written atom order, two spellings differed in the last bits
    weight = [round(sum(_mass(mol.GetAtomWithIdx(a)) for a in f), 6) for f in frags]
    for rule, value in (("most atoms with hydrogens", with_h), ("highest molecular weight", weight)):
        best = max(value[i] for i in tied)
        if len({value[i] for i in tied}) > 1:
            tied = [i for i in tied if value[i] == best]
            if len(tied) == 1:
                return tied[0], f"; a tie on heavy atoms, broken by {rule}"
    smiles = _fragment_smiles(mol, frags)
    if len({smiles[i] for i in tied}) == 1:  # copies of one fragment
        if mol.GetNumConformers() == 0:  # any is the same molecule
            return tied[0], ""
        return _pick_copy(mol, frags, tied)
    first = min(tied, key=lambda i: smiles[i])
    return first, "; a tie on heavy atoms, atoms with hydrogens and weight, broken by canonical SMILES order"


def _pick_copy(mol: Chem.Mol, frags: tuple, tied: list[int]) -> tuple[int, str]:
    """(index, the note's words) of one of ``tied``, copies of one fragment with coordinates:
    whatever order they are written in, the one whose atoms' sorted distances from its centre
    come first (a shape: the same whatever the atom order, and however the file is turned;
    linear in the atoms, where all interatomic distances of two 10,000-atom copies took
    gigabytes), then, for mirror images or identical poses, the one whose centre is first by
    x, y, z (copies cannot share a centre: ``check_coordinates`` refused overlapping atoms).
    Rounded to 1e-4 A, below any real difference, so the last bits of a sum cannot decide."""
    positions = mol.GetConformer().GetPositions()  # [N, 3]

    def key(i: int) -> tuple:
        atoms = positions[list(frags[i])]  # [k, 3]
        centre = atoms.mean(axis=0)  # [3]
        shape = np.sort(np.linalg.norm(atoms - centre, axis=-1))  # [k]
        return tuple(shape.round(4)), tuple(centre.round(4))

    keys = {i: key(i) for i in tied}
    first = min(tied, key=keys.get)
    if len({keys[i][0] for i in tied}) == 1:
        return first, (f"; {len(tied)} copies of one molecule in one shape: kept the one whose centre is first by "
                       "x, y, z, not by file order")
    return first, (f"; {len(tied)} copies of one molecule with different coordinates: kept the one first by shape "
                   "(its atoms' sorted distances from its centre), not by file order")


def _proton_words(mol: Chem.Mol, kept: tuple, others: list[tuple]) -> str:
    """The note's words when a dropped fragment is a lone H+ (D+, T+), "" otherwise: a proton
    is part of a molecule, not a counter-ion, so the kept fragment is another protonation
    state and says its charge (was: only "dropped [H+]"). Protons that bond perception split
    off coordinates fail earlier (``builders.check_perceived_protons``)."""
    protons = [f[0] for f in others if len(f) == 1 and mol.GetAtomWithIdx(f[0]).GetAtomicNum() == 1
               and mol.GetAtomWithIdx(f[0]).GetFormalCharge() > 0]
    if not protons:
        return ""
    charge = sum(mol.GetAtomWithIdx(a).GetFormalCharge() for a in kept)
    return (f"; dropping the lone H+ {atom_names(protons[:5], mol)} left the kept fragment with charge {charge:+d} "
            "(another protonation state)")


def _name(mol: Chem.Mol, fragment: tuple, z: np.ndarray) -> str:
    """A dropped fragment's SMILES without its hydrogen atoms (`[H]OC([H])([H])[H]` as `CO`,
    was written so), for the note; a fragment of hydrogens only (`[H+]`) as it is, and as
    written when RDKit cannot parse it back (unusual charges or valences)."""
    smiles = Chem.MolFragmentToSmiles(mol, atomsToUse=list(fragment))
    if not (z[list(fragment)] > 1).any():  # RemoveHs keeps a lone H, with a warning on stderr
        return smiles
    with rdkit_messages():  # a failed parse's words concern only this name, not the record
        light = Chem.MolFromSmiles(smiles)  # parsing removes the hydrogen atoms
    return Chem.MolToSmiles(light) if light is not None else smiles


_H_MASS = Chem.GetPeriodicTable().GetAtomicWeight(1)


def _mass(atom: Chem.Atom) -> float:
    """The atom's weight with its implicit and explicit hydrogens (not those that are atoms)."""
    return atom.GetMass() + atom.GetTotalNumHs() * _H_MASS


def _fragment_smiles(mol: Chem.Mol, frags: tuple) -> list[str]:
    """Each fragment's part of the whole molecule's canonical SMILES: one pass over the
    molecule (a SMILES per fragment was a pass each, thousands for a file of solvent
    molecules). The parts are in canonical order, each fragment's atoms written together, so
    fragment i is the part where its first written atom is."""
    parts = Chem.MolToSmiles(mol).split(".")
    written = list(mol.GetPropsAsDict(includePrivate=True, includeComputed=True)["_smilesAtomOutputOrder"])
    position = {atom: n for n, atom in enumerate(written)}
    starts = sorted(range(len(frags)), key=lambda i: min(position[a] for a in frags[i]))
    smiles = [""] * len(frags)
    for part, i in zip(parts, starts):
        smiles[i] = part
    return smiles
