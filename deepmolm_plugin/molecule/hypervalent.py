"""One spelling of hypervalent bonds: ``[S+]-[O-]`` is read as ``S=O``.

A sulfoxide, phosphine oxide, sulfone, selenoxide, iodosyl or ylide can be written two
ways: neutral with a double bond (``CS(C)=O``, what SDF files and SMILES usually write) or
charge-separated (``C[S+](C)[O-]``, what RDKit's bond perception from XYZ coordinates
gives). Formal charges are E3FP invariants, so the two spellings of one molecule had
different tokens (DMSO: 4 of 4 rows) and pictures. Every builder and reader ends in
``finish.finish``, which calls ``neutral_hypervalent``: the neutral form for every input.

What is rewritten: a single bond from a positively charged centre that can be hypervalent
(``CENTRES``: P, As, Sb, S, Se, Te, I, Xe) to an anion (``ANIONS``: (C, N, O, S,
Se, Te with charge -1) becomes a double bond, both charges moving one step to 0 (hydrogen
counts unchanged), each such bond once (``C[S+2](C)([O-])[O-]`` is a sulfone).

What is left alone: nitrogen (no valence of 5: an N-oxide, nitro group, nitrone or azide
stays charge-separated, as RDKit's sanitising writes it); chlorine and bromine (RDKit's
sanitising writes perchlorate-like groups charge-separated itself: the one form it keeps);
a result RDKit's sanitising undoes (periodate) is kept as sanitising leaves it, without a
note.
"""

from __future__ import annotations

from rdkit import Chem

from .bonds import bonds
from .errors import atom_names

__all__ = ["ANIONS", "CENTRES", "neutral_hypervalent"]

CENTRES = frozenset((15, 33, 51, 16, 34, 52, 53, 54))  # P As Sb S Se Te I Xe
ANIONS = frozenset((6, 7, 8, 16, 34, 52))  # C N O S Se Te


def _pairs(mol: Chem.Mol) -> list[tuple[int, int]]:
    """The (centre, anion) atom indices of the bonds to rewrite: bonds written single (not
    aromatic: a ring's own [s+]-[n-] is left as written) from X in CENTRES with a positive
    charge to Y in ANIONS with charge -1, in canonical atom rank order, so which of a
    centre's equal anions takes the double bond does not follow the atoms' input order."""
    found = []
    for bond in bonds(mol):
        if bond.GetBondType() != Chem.BondType.SINGLE:
            continue
        a, b = bond.GetBeginAtom(), bond.GetEndAtom()
        for centre, anion in ((a, b), (b, a)):
            if (centre.GetAtomicNum() in CENTRES and centre.GetFormalCharge() > 0
                    and anion.GetAtomicNum() in ANIONS and anion.GetFormalCharge() == -1):
                found.append((centre.GetIdx(), anion.GetIdx()))
                break
    if len(found) > 1:
        rank = list(Chem.CanonicalRankAtoms(mol, breakTies=True))
        found.sort(key=lambda pair: (rank[pair[0]], rank[pair[1]]))
    return found


def _rewrite(mol: Chem.RWMol, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Turns each [X+]-[Y-] of ``pairs`` into X=Y in place, in one pass (a rewrite moves both
    charges towards 0, so it never makes a new pair), skipping a pair whose centre's charge
    an earlier one used up; the pairs rewritten."""
    done = []
    for c, y in pairs:
        centre, anion = mol.GetAtomWithIdx(c), mol.GetAtomWithIdx(y)
        if centre.GetFormalCharge() <= 0 or anion.GetFormalCharge() != -1:
            continue
        mol.GetBondBetweenAtoms(c, y).SetBondType(Chem.BondType.DOUBLE)
        centre.SetFormalCharge(centre.GetFormalCharge() - 1)
        anion.SetFormalCharge(0)
        for atom in (centre, anion):
            atom.SetNoImplicit(True)  # the hydrogens stay as counted: the charge moved, not an H
            atom.SetNumExplicitHs(atom.GetTotalNumHs())
        done.append((c, y))
    return done


def neutral_hypervalent(mol: Chem.Mol, id: str, notes: list[str]) -> Chem.Mol:
    """``mol`` (sanitised) with its charge-separated hypervalent bonds written neutral (see the
    module docstring), sanitised again, and a note naming them; ``mol`` itself when it has
    none. Conformers, atom order and stereo are kept. Where the neutral form is a valence
    RDKit does not allow (``[P+3](C)(C)[O-]``), ``mol`` stays as written, with a note: one
    form is chosen only where one exists."""
    pairs = _pairs(mol)
    if not pairs:
        return mol
    try:
        out, done = _rewritten(mol, pairs)
    except Chem.MolSanitizeException:
        notes.append("charge-separated bond(s) kept as written: their neutral form is a valence RDKit does not allow")
        return mol
    kept = [(c, y) for c, y in done if out.GetBondBetweenAtoms(c, y).GetBondType() != Chem.BondType.SINGLE]
    if kept:
        names = ", ".join(f"{atom_names([c], out)}={atom_names([y], out)}" for c, y in kept[:10])
        more = f" and {len(kept) - 10} more" if len(kept) > 10 else ""
        notes.append(f"hypervalent bond(s) {names}{more} taken in their neutral form, not charge-separated "
                     "([S+]-[O-] and the like, as written or as perceived from coordinates): one form for every "
                     "spelling of the molecule, so all give the same tokens")
    return out


def _rewritten(mol: Chem.Mol, pairs: list[tuple[int, int]]) -> tuple[Chem.Mol, list[tuple[int, int]]]:
    """(a sanitised copy of ``mol`` with ``pairs`` rewritten, the pairs rewritten)."""
    rw = Chem.RWMol(mol)
    # aromatic flags first: a thiophene S-oxide perceived as [O-][s+]1cccc1 is not aromatic
    # as O=S1C=CC=C1 (the SDF's form); sanitising below perceives aromaticity again. The
    # pairs were taken on `mol`, so the kekulé single bonds of an aromatic ring are not among them
    Chem.Kekulize(rw, clearAromaticFlags=True)
    done = _rewrite(rw, pairs)
    out = rw.GetMol()
    Chem.SanitizeMol(out)  # RDKit's clean-up writes perchlorate and periodate charge-separated again
    return out, done
