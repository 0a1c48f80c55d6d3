"""Salts and fragments: ``fragments='all'`` or ``'largest'``.

``fragments='all'`` (default) keeps every fragment: the depiction shows them, and DeepMoLM
fingerprinted floating ions (``exclude_floating`` off); a note counts them.
``fragments='largest'`` keeps the fragment with the most heavy atoms (first on ties) and
notes what was dropped. Heavy-atom order within the kept fragment is preserved.
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
    keep = int(np.argmax(heavy))  # first on ties
    others = [f for i, f in enumerate(frags) if i != keep]
    # named up to MAX_NAMED: each name costs a pass over the whole molecule
    named = Counter(Chem.MolFragmentToSmiles(mol, atomsToUse=list(f)) for f in others[:MAX_NAMED])
    shown = ", ".join(s if n == 1 else f"{s} (x{n})" for s, n in named.items())
    more = len(others) - MAX_NAMED
    notes.append(f"kept the largest of {len(frags)} fragments ({heavy[keep]} heavy atoms); dropped {shown}"
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
