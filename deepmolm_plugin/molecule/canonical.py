"""One molecule, one atom and bond order: a canonically numbered copy.

RDKit's conformer embedding (ETKDG, MMFF94) and its 2D depiction follow the order of the
atoms *and* of the bonds they are given, so two spellings of one SMILES (``CCO``, ``OCC``)
gave two conformers (aspirin's E3FP tokens shared 39 of 52 entries) and a few different
pixels. ``canonical_copy`` numbers atoms by RDKit's canonical ranking (ties broken, atom-map
numbers left out; for the conformer, isotopes too) and adds the bonds in the order of their
canonically numbered atoms, from the lower-numbered one (a dative bond keeps its donor ->
acceptor direction);
``Chem.RenumberAtoms`` alone keeps the input's bond order. Everything that depends on the
order is carried over: a chiral tag is relative to the order of its atom's bonds, so it is
inverted where that order became an odd permutation; double-bond stereo keeps its reference
atoms; conformers, enhanced stereo groups and atom properties go with their atoms. Bond
directions (wedges, ``/`` ``\\``) are dropped: they mean something only relative to a
bond's begin atom and to 2D coordinates, and the stereo they described is already in the
chiral tags and bond stereo. An atom with non-tetrahedral stereo (square-planar,
octahedral, ...) keeps the input's bond order around it, since its permutation tag is not
re-derived here; the atoms are still in canonical order.

``smiles_identity`` is the text-level question: whether two SMILES spellings are one molecule.
"""

from __future__ import annotations

from rdkit import Chem

from .bonds import bonds
from .errors import rdkit_messages

__all__ = ["canonical_copy", "smiles_identity"]

_PERCEIVED = ("_CIPRank", "_CIPCode", "_ChiralityPossible", "_ringStereoAtoms", "_ringStereochemCand",
              "_ringStereoWarning")
_DIRECTED = (Chem.BondType.DATIVE, Chem.BondType.DATIVEONE, Chem.BondType.DATIVEL, Chem.BondType.DATIVER)
_TETRAHEDRAL = (Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW)


def _odd(permutation: list[int]) -> bool:
    """Whether ``permutation`` (distinct ints) is an odd permutation of its sorted self."""
    odd, seen = False, list(permutation)
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            if seen[i] > seen[j]:
                odd = not odd
    return odd


def _ranks(mol: Chem.Mol, isotopes: bool) -> list[int]:
    """Canonical rank of each atom of ``mol`` (ties broken, atom maps left out). With
    ``isotopes=False`` the atoms are ranked as the unlabelled molecule's (a 13C, a D is
    ranked as its C, its H), and only the ties that leaves (which of two symmetric methyls
    carries the label) are broken by the labelled molecule's own ranking, so every spelling
    of one labelled molecule still gets one order. (RDKit breaks a tie by atom index: the
    labelled ranking is applied first as a renumbering.)"""
    ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=True, includeAtomMaps=False))
    if isotopes:
        return ranks
    labelled = sorted(range(len(ranks)), key=ranks.__getitem__)
    free = Chem.CanonicalRankAtoms(Chem.RenumberAtoms(mol, labelled), breakTies=True, includeIsotopes=False,
                                   includeAtomMaps=False)
    for new, old in enumerate(labelled):
        ranks[old] = free[new]
    return ranks


def canonical_copy(mol: Chem.Mol, isotopes: bool = True) -> tuple[Chem.Mol, list[int]]:
    """(copy of ``mol`` in canonical atom and bond order, ``order``): ``order[new] = old``
    atom index. ``mol`` is not modified. ``isotopes=False`` orders the atoms as the
    unlabelled molecule's (``_ranks``), for the conformer: a label that creates no stereocentre
    or stereo bond changes no geometry (one that does keeps its chiral tag or bond stereo in the
    copy, and ETKDG embeds under it: the heavy-atom geometry may differ), and
    ranked with its isotopes ``[13CH3]CCCCCCCO`` was embedded in another order than
    ``CCCCCCCCO`` and shared only 19 of 36 token entries (was: isotopes always ranked). The
    copy keeps its isotopes either way."""
    # ranked without the enhanced stereo groups: RDKit's ranking reads them, so `|&1:1,3|`
    # (which leaves the written configuration as it is) broke the ties between hydrogens
    # otherwise, and ETKDG, given another order, changed a level-2 token of the conformer
    plain = Chem.RWMol(mol)
    plain.SetStereoGroups([])
    ranks = _ranks(plain, isotopes)
    order = sorted(range(len(ranks)), key=ranks.__getitem__)
    work = Chem.RenumberAtoms(mol, order)  # atoms canonical; chiral tags, stereo atoms, conformers follow
    # E/Z may still be only in the single bonds' directions (a parsed SMILES, before its
    # stereo is assigned): put it on the double bonds before the directions are dropped
    Chem.AssignStereochemistry(work, cleanIt=True, force=False)
    if any(a.GetChiralTag() not in _TETRAHEDRAL + (Chem.ChiralType.CHI_UNSPECIFIED,) for a in work.GetAtoms()):
        return work, order
    out = Chem.RWMol()
    for atom in work.GetAtoms():
        out.AddAtom(atom)  # a copy: element, charge, isotope, H counts, chiral tag, properties
    for bond in sorted(bonds(work), key=lambda b: sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))):
        begin, end = sorted((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
        if bond.GetBondType() in _DIRECTED:  # donor -> acceptor: the chemistry, not the spelling
            begin, end = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        out.AddBond(begin, end, bond.GetBondType())
        out.GetBondBetweenAtoms(begin, end).SetIsAromatic(bond.GetIsAromatic())
    for bond in bonds(work):  # once every bond exists: stereo atoms are neighbours' indices
        if bond.GetStereo() == Chem.BondStereo.STEREONONE:
            continue
        new = out.GetBondBetweenAtoms(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
        stereo_atoms = list(bond.GetStereoAtoms())
        if len(stereo_atoms) == 2:
            if new.GetBeginAtomIdx() != bond.GetBeginAtomIdx():  # begin and end swapped: so are they
                stereo_atoms.reverse()
            new.SetStereoAtoms(*stereo_atoms)
        new.SetStereo(bond.GetStereo())
    for atom in work.GetAtoms():
        if atom.GetChiralTag() in _TETRAHEDRAL:
            before = [b.GetOtherAtomIdx(atom.GetIdx()) for b in atom.GetBonds()]
            after = [b.GetOtherAtomIdx(atom.GetIdx()) for b in out.GetAtomWithIdx(atom.GetIdx()).GetBonds()]
            if _odd([before.index(n) for n in after]):
                out.GetAtomWithIdx(atom.GetIdx()).InvertChirality()
    for conformer in work.GetConformers():
        out.AddConformer(Chem.Conformer(conformer), assignId=False)
    if work.GetStereoGroups():
        out.SetStereoGroups([Chem.CreateStereoGroup(group.GetGroupType(), out,
                                                    [a.GetIdx() for a in group.GetAtoms()])
                             for group in work.GetStereoGroups()])
    for name, value in work.GetPropsAsDict(includePrivate=True, includeComputed=False).items():
        if isinstance(value, str):
            out.SetProp(name, value)
    copy = out.GetMol()
    copy.UpdatePropertyCache(strict=False)
    Chem.GetSymmSSSR(copy)  # ring info, as sanitising leaves it
    # Perceived again on the new numbering, keeping the tags and E/Z set above: the copied
    # atoms carried the old numbering's ranks and ring-stereo partners (a 1,4-disubstituted
    # cyclohexane came out trans for cis)
    for atom in copy.GetAtoms():
        for name in _PERCEIVED:
            atom.ClearProp(name)
    # E/Z also as the single bonds' directions again, derived from the new numbering: RDKit's
    # legacy perception (RemoveHs, the SMILES writer) reads them and dropped E/Z without them
    Chem.SetDoubleBondNeighborDirections(copy)
    Chem.AssignStereochemistry(copy, cleanIt=True, force=True)
    return copy, order


def smiles_identity(text: str) -> str | None:
    """RDKit's canonical isomeric SMILES of ``text``: equal for two spellings of one molecule
    (``CCO``, ``OCC``), so datasets are compared by molecule, not by spelling. ``None``
    where RDKit cannot parse it (its messages are kept out of the log: the record's own
    SMILES check names the problem, with them)."""
    with rdkit_messages():
        mol = Chem.MolFromSmiles(text)
    return None if mol is None else Chem.MolToSmiles(mol)
