"""Salts and fragments: ``fragments='all'`` or ``'largest'``.

``fragments='all'`` (default) keeps every fragment: the depiction shows them, and DeepMoLM
fingerprinted floating ions (``exclude_floating`` off); a note counts them.
``fragments='largest'`` keeps the fragment with the most heavy atoms and notes what was
dropped. Ties are broken by the fragment alone, never by where it is written (was: the first
on ties, so `[Na+].[Cl-]` kept sodium and `[Cl-].[Na+]` chloride): most atoms counting
hydrogens, then the higher molecular weight, then the canonical SMILES first in sort order;
the note says which of these decided. Copies of one fragment are no tie (any copy is the same
molecule). deepmolm-kflm2's copy key (``standard.molecule_keys``, RDKit's
LargestFragmentChooser) counts atoms with hydrogens first. Heavy-atom order within the kept
fragment is preserved.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from rdkit import Chem

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
    named = Counter(Chem.MolFragmentToSmiles(mol, atomsToUse=list(f)) for f in others[:MAX_NAMED])
    shown = ", ".join(s if n == 1 else f"{s} (x{n})" for s, n in named.items())
    more = len(others) - MAX_NAMED
    notes.append(f"kept the largest of {len(frags)} fragments ({heavy[keep]} heavy atoms{tie}); dropped {shown}"
                 f"{f' and {more} more fragments' if more > 0 else ''}")
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
    if len({smiles[i] for i in tied}) == 1:  # copies of one fragment: any is the same molecule
        return tied[0], ""
    first = min(tied, key=lambda i: smiles[i])
    return first, "; a tie on heavy atoms, atoms with hydrogens and weight, broken by canonical SMILES order"


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
