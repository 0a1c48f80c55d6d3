"""Salts and fragments: ``fragments='all'`` or ``'largest'``.

``fragments='all'`` (default) keeps every fragment: the depiction shows them, and DeepMoLM
fingerprinted floating ions (``exclude_floating`` off); a note counts them.
``fragments='largest'`` keeps the fragment with the most heavy atoms (first on ties) and
notes what was dropped. Heavy-atom order within the kept fragment is preserved.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem

__all__ = ["keep_fragments"]


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
    heavy = [sum(mol.GetAtomWithIdx(i).GetAtomicNum() > 1 for i in f) for f in frags]
    keep = int(np.argmax(heavy))  # first on ties
    pieces = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    dropped = [Chem.MolToSmiles(p) for i, p in enumerate(pieces) if i != keep]
    notes.append(
        f"kept the largest of {len(frags)} fragments ({heavy[keep]} heavy atoms); "
        f"dropped {', '.join(dropped)}"
    )
    out = Chem.Mol(pieces[keep])
    if mol.HasProp("_Name"):
        out.SetProp("_Name", mol.GetProp("_Name"))
    return out
