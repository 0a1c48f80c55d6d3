"""SMILES <-> coordinates: map a SMILES graph onto the atoms that carry the coordinates.

Coordinates stay attached to their own atoms: a molecule is always built from the
structure itself, never by re-parsing a SMILES and assigning coordinates by index. When a
record carries both (``molecule_from_atoms(..., smiles=...)``, or ``smiles_field`` for
SDF), the SMILES graph is matched onto the coordinate graph (elements + connectivity) and
every mapped atom's element is checked; any disagreement fails the record. For atom lists
the SMILES then supplies bond orders and charges, mapped onto the coordinate atoms
(``apply_smiles``). Coordinates with hydrogens are matched with them (then all of them
must be there); coordinates without any are matched on the heavy-atom graph, the hydrogens
a SMILES writes as atoms (`[H][C@@](C)(N)C(=O)O`) folded into their heavy atoms' counts
(``fold_hydrogens``). Every SMILES atom gets a coordinate atom, or the record fails. Where
the geometry cannot tell symmetric matches apart (a nitro group's two N-O bonds), the
coordinates' atom order decides (``_chosen``). Stereo and isotopes the SMILES states must
be the structure's (``label_differences``, which the input resolver uses for a structure
file next to a SMILES too).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from rdkit import Chem

from .bonds import bonds
from .checks import NONMETALS, check_no_family
from .errors import MoleculeError, atom_names, rdkit_messages, rdkit_step
from .sanitize import parse_smiles, sanitize

__all__ = ["NotTheMolecule", "apply_smiles", "fold_hydrogens", "label_differences", "map_smiles"]


class NotTheMolecule(MoleculeError):
    """A SMILES whose graph is not the structure's (atom or bond counts, connectivity, an
    element, hydrogens without a place), named with the SMILES, where the structure is and
    the molecule the structure gives: "SMILES graph does not match the coordinates' graph:
    its SMILES 'COC' is not the molecule in eth.xyz#0 (bonds perceived from coordinates:
    CCO)". Was: the detail alone, naming neither the SMILES nor the file. ``where``:
    "of its coordinates", or where a file reader found them (``at``)."""

    def __init__(self, id: str, said: str, found: str, detail: str, where: str = "of its coordinates",
                 source: str | None = None):
        self.said, self.found, self.detail, self.where = said, found, detail, where
        # the detail first, as before (scripts and tests look for "SMILES has 9 atoms")
        super().__init__(id, f"{detail}: {said} is not the molecule {where} ({found})", source)

    def at(self, where: str) -> "NotTheMolecule":
        """The same error, the structure's place named (``where``: "in structs/eth.xyz#0")."""
        return NotTheMolecule(self.id, self.said, self.found, self.detail, where, self.source)

    def __reduce__(self):  # picklable with its own fields (errors cross process boundaries)
        return (type(self), (self.id, self.said, self.found, self.detail, self.where, self.source),
                {"line": self.line})


def _found(target: Chem.Mol, perceived: bool) -> str:
    """The molecule the structure gives, for ``NotTheMolecule``: the file's own bonds, or, for
    connectivity perceived from coordinates (no bond orders), each heavy atom with the
    hydrogens the coordinates give it (an atom short of bonds in brackets, ``[CH]1[CH]...``:
    its bond order was not perceived); without any hydrogen, the heavy-atom skeleton with
    single bonds."""
    if not perceived:
        return f"the file's bonds: {Chem.MolToSmiles(Chem.RemoveHs(target, sanitize=False))}"
    heavy, kept = _heavy_skeleton(target)
    has_h = any(a.GetAtomicNum() == 1 for a in target.GetAtoms())
    for atom, original in zip(heavy.GetAtoms(), kept):
        atom.SetNoImplicit(has_h)
        atom.SetNumExplicitHs(_h_count(target, original) if has_h else 0)
    heavy.UpdatePropertyCache(strict=False)
    if not has_h:
        return f"heavy atoms bonded as the coordinates place them, all bonds drawn single: {Chem.MolToSmiles(heavy)}"
    Chem.AssignRadicals(heavy)  # an atom short of bonds is written in brackets ([CH]): its order is unknown
    short = any(a.GetNumRadicalElectrons() for a in heavy.GetAtoms())
    return f"bonds perceived from coordinates{', orders not' if short else ''}: {Chem.MolToSmiles(heavy)}"


def _skeleton(mol: Chem.Mol) -> Chem.Mol:
    """Elements and connectivity only: what coordinates determine unambiguously."""
    rw = Chem.RWMol(mol)
    for bond in bonds(rw):
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    for atom in rw.GetAtoms():
        atom.SetIsAromatic(False)
        atom.SetFormalCharge(0)
        atom.SetIsotope(0)
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0)
        atom.SetNumRadicalElectrons(0)
        atom.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
    out = rw.GetMol()
    out.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(out)
    return out


def _heavy_skeleton(mol: Chem.Mol) -> tuple[Chem.Mol, list[int]]:
    """Skeleton without hydrogen atoms, and the original index of each kept atom."""
    keep = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() != 1]
    rw = Chem.RWMol(_skeleton(mol))
    for idx in sorted(set(range(mol.GetNumAtoms())) - set(keep), reverse=True):
        rw.RemoveAtom(idx)
    out = rw.GetMol()
    out.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(out)
    return out, keep


# Symmetric graphs match in several ways (automorphisms); at most this many are compared.
MAX_MATCHES = 10000
_TETRAHEDRAL = (Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW)
# Angstrom, per bond of higher order that two matches place on different bonds: geometry
# this close says nothing about where a double bond (with it, a charge) goes. One bond
# type's length scatters by about 0.01-0.02 A between force fields, DFT functionals and
# crystal environments (packing and hydrogen bonds; an X-ray length's own error is about
# 0.005 A), while a single and a double bond between the same elements differ by 0.1 A
# and more (C-O 1.34 / C=O 1.21, C-C 1.50 / C=C 1.34, N-O 1.36 / N=O 1.21). The two N-O
# bonds of a nitro group, a sulfonate's S-O bonds and a carboxylate's C-O bonds are one
# length (resonance): which oxygen took the SMILES' charge was decided by 5e-7 A of float
# noise, and one conformer's tokens differed between its atom list and its XYZ file.
TIE_LENGTH = 0.02


def fold_hydrogens(template: Chem.Mol) -> Chem.Mol:
    """The SMILES' hydrogen atoms (`[H]`, as PubChem's and ChEBI's isomeric SMILES write
    them: `[H][C@@](C)(N)C(=O)O`) folded into their heavy atoms' hydrogen counts, for
    coordinates without hydrogens. RDKit's RemoveHs keeps each chiral tag's sense (the
    written `@@` seen from the H becomes its heavy atom's `@`) and each double bond's E/Z.
    It keeps as atoms the hydrogens a count cannot carry: an isotope (`[2H]`), the one
    that alone fixes a double bond's E/Z (`[H]/N=C/C`), one bonded to no heavy atom or to
    two; ``map_smiles`` names them. Every atom keeps its SMILES index as ``_orig``.

    Kept as atoms, they were mapped onto coordinate atom 0 (``map_smiles`` matched only the
    heavy atoms), which took their charge, radicals, isotope and hydrogen count:
    `CC([H])=O` became the diradical `[C][C]=O` with the note "verified", L-alanine
    written `[H][C@@](C)(N)C(=O)O` was refused as "S in the SMILES, ? in the structure",
    `C([H])([H])([H])O` was an AttributeError traceback."""
    work = Chem.Mol(template)
    for atom in work.GetAtoms():
        atom.SetIntProp("_orig", atom.GetIdx())
    # E/Z as written: parse_smiles leaves it in single-bond directions, and both RemoveHs (which
    # H fixes a double bond) and `_unmapped` (why it stays) read it from the double bond
    Chem.AssignStereochemistry(work, cleanIt=True, force=True)
    params = Chem.RemoveHsParameters()
    params.showWarnings = False  # the hydrogens it keeps are named by map_smiles' error
    return Chem.RemoveHs(work, params)


def _as_matched(template: Chem.Mol, with_h: bool) -> Chem.Mol:
    """The template with hydrogens as the coordinates have them: all as atoms (``with_h``:
    its implicit ones added, appended after its own atoms) or folded into counts."""
    if not with_h:
        return fold_hydrogens(template)
    work = Chem.Mol(template)
    for atom in work.GetAtoms():
        atom.SetIntProp("_orig", atom.GetIdx())
    return Chem.AddHs(work)


def map_smiles(target: Chem.Mol, template: Chem.Mol, id: str, with_h: bool, said: str | None = None,
               perceived: bool = True) -> tuple[Chem.Mol, list[int]]:
    """Map every template atom onto a target atom with the same element and bonds.

    Returns ``(matched, mapping)``: ``matched`` is the template with its hydrogens as the
    target has them (``with_h``: every hydrogen an atom, ``Chem.AddHs``; else the SMILES'
    own `[H]` atoms folded into their heavy atoms' counts, ``fold_hydrogens``), and
    ``mapping[matched_idx] = target_idx`` for every one of its atoms. Compares the whole
    graph including hydrogens when ``with_h`` (both sides carry them), else the heavy-atom
    graph (then indices refer to the full molecules); a hydrogen ``fold_hydrogens`` keeps
    goes onto a target hydrogen of its heavy atom. Any difference, and any atom left
    without a target atom, is a ``MoleculeError``: unmapped atoms defaulted to target atom
    0, which then took their charge, isotope and hydrogen count.

    A symmetric graph maps in several ways, and which one carries the SMILES' bond orders
    (and with them its H counts and charges) onto the atoms matters: the first match put
    1,3-cyclohexadiene's double bonds on its 1.50 A bonds, and acetic acid's C=O on the C-OH
    oxygen, with the note "verified". With a conformer, the heavy-atom match whose higher
    orders fall on the shorter bonds is taken (``_chosen``); matches the geometry cannot
    tell apart go by the coordinates' atom order. Hydrogens, when given, go with the heavy
    atom they are bonded to, isotope with isotope.

    A mismatch is a ``NotTheMolecule`` naming the SMILES (``said``: "its SMILES 'COC'", the
    default writes the template's) and the structure's molecule (``perceived``: ``target``
    holds connectivity perceived from coordinates, no bond orders; else the file's bonds).
    """
    said = said or f"its SMILES {Chem.MolToSmiles(template)!r}"

    def mismatch(detail: str) -> NotTheMolecule:
        return NotTheMolecule(id, said, _found(target, perceived), detail)

    original = template
    template = _as_matched(template, with_h)
    what = "atoms (with hydrogens)" if with_h else "heavy atoms"
    t_all, s_all = (_skeleton(target), _skeleton(template)) if with_h else (None, None)
    t_skel, t_idx = _heavy_skeleton(target)
    s_skel, s_idx = _heavy_skeleton(template)
    counts = [(m.GetNumAtoms(), m.GetNumBonds()) for m in ((s_all, t_all) if with_h else (s_skel, t_skel))]
    if counts[0][0] != counts[1][0]:
        raise mismatch(f"SMILES has {counts[0][0]} {what}, the coordinates {counts[1][0]}")
    if counts[0][1] != counts[1][1]:
        raise mismatch(f"SMILES has {counts[0][1]} bonds between {what}, the coordinates "
                                f"imply {counts[1][1]}")
    matches = _search(t_skel.GetSubstructMatches, s_skel, uniquify=False, maxMatches=MAX_MATCHES)
    if with_h:  # each heavy atom must carry as many hydrogens in both
        matches = [m for m in matches if all(_h_count(target, t_idx[t]) == _h_count(template, s_idx[s])
                                             for s, t in enumerate(m))]
    if not matches:
        raise mismatch("SMILES graph does not match the coordinates' graph")
    pos = target.GetConformer().GetPositions() if target.GetNumConformers() else None
    match = _chosen(matches, pos, template, s_idx, t_idx)
    full: list = [None] * template.GetNumAtoms()
    for s_pos, t_pos in enumerate(match):
        full[s_idx[s_pos]] = t_idx[t_pos]
    _map_hydrogens(target, template, full)
    unmapped = [i for i, t in enumerate(full) if t is None]
    if unmapped:
        raise MoleculeError(id, _unmapped(template, original, unmapped, with_h))
    for s_atom in s_idx:  # element by element
        a, b = template.GetAtomWithIdx(s_atom), target.GetAtomWithIdx(full[s_atom])
        if a.GetAtomicNum() != b.GetAtomicNum():
            raise mismatch(f"SMILES atom {_name(a, original)} is not coordinate atom "
                           f"{atom_names([b.GetIdx()], target)}")
    return template, full


def _map_hydrogens(target: Chem.Mol, template: Chem.Mol, full: list) -> None:
    """Each template hydrogen onto a target hydrogen of the heavy atom its heavy neighbour
    went to, in place (``full``); isotopes first, so a SMILES' `[2H]` goes onto the atom
    list's D (in neighbour order, it went onto an H, which then became a second D and the
    record was refused: "the SMILES labels 1 x 2H, the structure 2 x 2H"). A hydrogen
    without such a target hydrogen stays unmapped (None)."""
    used = set(t for t in full if t is not None)
    for s_atom in template.GetAtoms():
        t = full[s_atom.GetIdx()]
        if s_atom.GetAtomicNum() == 1 or t is None:
            continue
        mine = sorted((n for n in s_atom.GetNeighbors() if n.GetAtomicNum() == 1 and full[n.GetIdx()] is None),
                      key=lambda n: -n.GetIsotope())
        theirs = sorted((n for n in target.GetAtomWithIdx(t).GetNeighbors()
                         if n.GetAtomicNum() == 1 and n.GetIdx() not in used), key=lambda n: -n.GetIsotope())
        for s_h, t_h in zip(mine, theirs):
            full[s_h.GetIdx()] = t_h.GetIdx()
            used.add(t_h.GetIdx())


def _unmapped(template: Chem.Mol, original: Chem.Mol, unmapped: list[int], with_h: bool) -> str:
    """Why SMILES hydrogens (of ``original``; ``template`` is it as matched) found no
    coordinate atom (the heavy atoms all have one, the match's): hydrogens bonded to no heavy
    atom, or those ``fold_hydrogens`` keeps, each with what it carries, where the coordinates
    have no hydrogen for them."""
    said = []
    for index in unmapped[:10]:
        atom = template.GetAtomWithIdx(index)
        heavy = [n for n in atom.GetNeighbors() if n.GetAtomicNum() != 1]
        on = ", ".join(_name(n, original) for n in heavy)
        if not heavy:
            what = "a hydrogen bonded to no heavy atom (H+, H-, H2): nothing to hang it on"
        elif atom.GetIsotope():
            what = f"[{atom.GetIsotope()}H] on {on}: an isotope, which a hydrogen count cannot carry"
        elif len(heavy) > 1:
            what = f"a hydrogen bridging {on}"
        elif any(b.GetBondType() == Chem.BondType.DOUBLE and b.GetStereo() > Chem.BondStereo.STEREOANY
                 for b in template.GetAtomWithIdx(heavy[0].GetIdx()).GetBonds()):  # (an atom's own bonds)
            what = f"on {on}, alone fixing the E/Z of its double bond, which a hydrogen count cannot"
        else:
            what = f"a hydrogen on {on}"
        said.append(f"{_name(atom, original)} ({what})")
    more = f" and {len(unmapped) - 10} more" if len(unmapped) > 10 else ""
    fix = "" if with_h else ("; the coordinates have no hydrogen atom there: give every hydrogen's coordinates (D / T "
                             "in the atom list), or a SMILES without these")
    return f"SMILES atom(s) {'; '.join(said)}{more} have no coordinate atom{fix}"


def _h_count(mol: Chem.Mol, idx: int) -> int:
    return sum(n.GetAtomicNum() == 1 for n in mol.GetAtomWithIdx(idx).GetNeighbors())


def _chosen(matches, pos, template: Chem.Mol, s_idx: list, t_idx: list):
    """The heavy-atom match that carries the SMILES' bond orders onto the coordinates.

    Scored by the sum over the template's heavy-atom bonds of (bond order above single x
    the length of the target bond it lands on): least when higher orders sit on shorter
    bonds. (Every match lands the template's bonds on all of the target's, so the single
    part of the orders adds the same to each score; summed anyway, it made matches that
    differ only in where single bonds go differ by float rounding, 4e-15, and the least
    of them was chance.) A match is as good as the least-scored one when its score exceeds
    it by no more than ``TIE_LENGTH`` per bond of higher order the two place on different
    bonds, weighted as in the score; every match is, without a conformer (``pos`` None).
    Of those, the one closest to the coordinates' own order: the template's atoms in
    order onto the lowest target atoms (the identity, where it is one of them), so the
    SMILES' charges and bond orders stay on the atoms the coordinate list numbers as the
    SMILES does, and one conformer gives one molecule whether it comes from its SMILES, an
    atom list or an XYZ file (float noise or rounding decided before: nitrobenzene's
    charge went to the other oxygen for its atom list, not for its XYZ file). A rule
    without the atom order cannot do better: the geometry is what cannot tell the
    matches apart. ``pos``: the target's (N, 3) coordinates."""
    if pos is None:
        return min(matches)
    placed = [_placement(pos, template, s_idx, t_idx, m) for m in matches]  # per match: {bond: (target, order, length)}
    scores = [sum((order - 1) * length for _, order, length in p.values()) for p in placed]
    best = min(range(len(matches)), key=scores.__getitem__)

    def ties(k: int) -> bool:
        moved = sum(order - 1 for bond, (where, order, _) in placed[k].items() if where != placed[best][bond][0])
        return scores[k] - scores[best] <= TIE_LENGTH * moved

    return min(m for k, m in enumerate(matches) if ties(k))


def _placement(pos, template: Chem.Mol, s_idx: list, t_idx: list, match) -> dict:
    """Where a match puts each of the template's heavy-atom bonds: {bond index: (target atom
    pair, bond order, length of the target bond)}. `pos`: the target's (N, 3) coordinates."""
    where = {s_idx[s]: t_idx[t] for s, t in enumerate(match)}
    placed = {}
    for bond in bonds(template):
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if a in where and b in where:
            ta, tb = where[a], where[b]
            placed[bond.GetIdx()] = (frozenset((ta, tb)), bond.GetBondTypeAsDouble(),
                                     float(((pos[ta] - pos[tb]) ** 2).sum() ** 0.5))
    return placed


def _labels_of(mol: Chem.Mol, from_3d: bool) -> Chem.Mol:
    """A copy without hydrogens (isotopic ones stay) or atom-map numbers, each atom keeping
    its original index (``_orig``); stereo read from a 3D conformer with ``from_3d``, else
    as written."""
    work = Chem.Mol(mol)
    for atom in work.GetAtoms():
        atom.SetIntProp("_orig", atom.GetIdx())
        atom.SetAtomMapNum(0)
    if from_3d and work.GetNumConformers() and work.GetConformer().Is3D():
        Chem.AssignStereochemistryFrom3D(work)
    else:  # as written (parse_smiles leaves E/Z in single-bond directions until this)
        Chem.AssignStereochemistry(work, cleanIt=True, force=True)
    return Chem.RemoveHs(work, sanitize=False)


def _stated(mol: Chem.Mol) -> tuple[list, list, list]:
    """The SMILES' own labels: (isotope atoms, chiral atoms, stereo double bonds)."""
    isotopes = [a for a in mol.GetAtoms() if a.GetIsotope()]
    chiral = [a for a in mol.GetAtoms()
              if a.GetChiralTag() in _TETRAHEDRAL]
    double = [b for b in bonds(mol) if b.GetStereo() > Chem.BondStereo.STEREOANY]
    return isotopes, chiral, double


def _search(method: Callable, query: Chem.Mol, **options):
    """``method(query, **options)``, a molecule's ``GetSubstructMatch(es)`` or ``HasSubstructMatch``,
    with a Ctrl-C passed on: RDKit's search takes SIGINT itself, stops and returns what it had
    found so far (was: a graph that "does not match", or fewer matches)."""
    with rdkit_messages() as messages:
        return rdkit_step(lambda: method(query, **options), messages)


def _cip(mol: Chem.Mol) -> None:
    from rdkit.Chem import rdCIPLabeler

    with rdkit_messages() as messages:
        try:  # a Ctrl-C the labeller took (it raises) is passed on, not swallowed below
            rdkit_step(lambda: rdCIPLabeler.AssignCIPLabels(mol), messages)
        except (RuntimeError, ValueError):  # labels only word the message; the decision is the match's
            pass


def _label(obj) -> str:
    return obj.GetProp("_CIPCode") if obj.HasProp("_CIPCode") else "?"


def label_differences(structure: Chem.Mol, smiles_mol: Chem.Mol) -> list[str]:
    """The stereo and isotope labels a SMILES states that its structure contradicts; [] when
    they agree. Only what the SMILES states is compared: a SMILES without stereo or isotopes
    (3D-MoIT's PubChemQC SMILES, most datasets') goes with any configuration or labelling
    of the structure; a chiral centre, a double bond's E/Z or an isotope the SMILES gives
    must be the structure's. The structure's stereo is read from its 3D conformer when it
    has one (the conformer its tokens come from: a file's, or one generated from a flat
    file), else what its file states. Both graphs must already agree without labels.

    The decision is RDKit's substructure match with chirality (the SMILES as the query,
    unlabelled atoms match anything), which tries every symmetric mapping: a SMILES that
    labels one of two equivalent centres agrees with a structure where either has it. The
    words (CIP labels, atoms numbered in the SMILES as ``atom_names`` does) come from the
    mapping with the fewest differences."""
    query = _labels_of(smiles_mol, from_3d=False)
    isotopes, chiral, double = _stated(query)
    if not (isotopes or chiral or double):
        return []
    target = _labels_of(structure, from_3d=True)
    if target.GetNumConformers() == 0 or not target.GetConformer().Is3D():
        # no 3D: only what the file states can contradict (a centre it leaves open does not)
        _, t_chiral, t_double = _stated(target)
        if not t_chiral:
            for atom in chiral:
                atom.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
            chiral = []
        if not t_double:
            for bond in double:
                bond.SetStereo(Chem.BondStereo.STEREONONE)
            double = []
    counts = _isotope_counts_differ(query, target) if isotopes else None
    if _search(target.HasSubstructMatch, query, useChirality=True):
        return [counts] if counts else []
    _cip(query)
    _cip(target)
    plain = Chem.Mol(query)
    for atom in plain.GetAtoms():
        atom.SetIsotope(0)
    best = None
    for match in _search(target.GetSubstructMatches, plain, uniquify=False, useChirality=False,
                         maxMatches=MAX_MATCHES):
        found = []
        for atom in isotopes:
            other = target.GetAtomWithIdx(match[atom.GetIdx()])
            if other.GetIsotope() != atom.GetIsotope():
                found.append(f"atom {_name(atom, smiles_mol)} is isotope {atom.GetIsotope()} in the SMILES, "
                             f"{other.GetIsotope() or 'unlabelled'} in the structure")
        for atom in chiral:
            other = target.GetAtomWithIdx(match[atom.GetIdx()])
            if _label(other) != _label(atom):
                found.append(f"atom {_name(atom, smiles_mol)} is {_label(atom)} in the SMILES, "
                             f"{_label(other)} in the structure")
        for bond in double:
            other = target.GetBondBetweenAtoms(match[bond.GetBeginAtomIdx()], match[bond.GetEndAtomIdx()])
            if _label(other) != _label(bond):
                found.append(f"double bond {_name(bond.GetBeginAtom(), smiles_mol)}={_name(bond.GetEndAtom(), smiles_mol)}"
                             f" is {_label(bond)} in the SMILES, {_label(other)} in the structure")
        if best is None or len(found) < len(best):
            best = found
    # CIP labels can agree while the configuration does not (a centre ranked by another the
    # SMILES leaves open): then the canonical SMILES say it
    return best or ([counts] if counts else [f"the SMILES' stereo or isotopes ({Chem.MolToSmiles(query)}) are "
                                              f"not the structure's ({Chem.MolToSmiles(target)})"])


def left_open(flat_structure: Callable[[], Chem.Mol], smiles_mol: Chem.Mol) -> list[str]:
    """The chiral centres and double bonds whose configuration a SMILES states and a flat
    structure (read without 3D work, by ``flat_structure()``, called only when the SMILES
    states any) leaves open: no wedge, no E/Z. A conformer generated
    from that structure picks those configurations at random (seeded, so the same every run,
    but not the SMILES'); the SMILES check then passed for one enantiomer's SMILES and failed
    for the other's. Named in the SMILES' atom numbers; [] when there are none (or when the
    graphs do not match: the skeleton check says so)."""
    query = _labels_of(smiles_mol, from_3d=False)
    _, chiral, double = _stated(query)
    if not (chiral or double):
        return []
    target = _labels_of(flat_structure(), from_3d=False)
    plain = Chem.Mol(query)
    for atom in plain.GetAtoms():
        atom.SetIsotope(0)
    match = _search(target.GetSubstructMatch, plain, useChirality=False)
    if not match:
        return []
    found = [f"atom {_name(atom, smiles_mol)}" for atom in chiral
             if target.GetAtomWithIdx(match[atom.GetIdx()]).GetChiralTag() not in _TETRAHEDRAL]
    for bond in double:
        other = target.GetBondBetweenAtoms(match[bond.GetBeginAtomIdx()], match[bond.GetEndAtomIdx()])
        if other is None or other.GetStereo() <= Chem.BondStereo.STEREOANY:
            found.append(f"double bond {_name(bond.GetBeginAtom(), smiles_mol)}={_name(bond.GetEndAtom(), smiles_mol)}")
    return found


def _isotope_counts_differ(query: Chem.Mol, target: Chem.Mol) -> str | None:
    """Labelled atoms by isotope, where a SMILES states isotopes: every atom it leaves
    unlabelled is the common isotope, so '[2H]CC(=O)O' (one deuterium) is not a CD3
    structure, though its one D maps onto one of the three. Both molecules keep their
    isotopic hydrogens (`_labels_of`). None when the counts agree."""
    def counted(mol):
        return Counter(f"{a.GetIsotope()}{a.GetSymbol()}" for a in mol.GetAtoms() if a.GetIsotope())

    said, has = counted(query), counted(target)
    if said == has:
        return None

    def listed(counts):  # "3 x 2H, 1 x 13C"
        return ", ".join(f"{n} x {isotope}" for isotope, n in sorted(counts.items())) or "none"

    return (f"the SMILES labels {listed(said)}, the structure {listed(has)} (an atom a SMILES with isotopes "
            "leaves unlabelled is the common isotope)")


def _name(atom, mol: Chem.Mol) -> str:
    """A copy's atom named as in ``mol``, the molecule it was copied from (``_orig``); a
    hydrogen ``Chem.AddHs`` gave the copy is in no SMILES: "an added H"."""
    return atom_names([atom.GetIntProp("_orig")], mol) if atom.HasProp("_orig") else "an added H"


def _without_ion_contacts(mol: Chem.Mol, template: Chem.Mol) -> Chem.Mol:
    """``mol`` without its perceived bonds to the metal elements the SMILES gives only as
    unbonded ions (`CC(=O)[O-].[Na+]`). Connectivity perceived from distances took a crystal's
    or a DFT geometry's Na+...O- contact (2.3 A) for a bond, and the bond count then refused
    the salt ("SMILES has 6 bonds ..., the coordinates imply 7"); a metal contact is not a
    bond (``checks``). Metals the SMILES bonds (`C[Mg]Br`) keep their perceived bonds."""
    metals = [a for a in template.GetAtoms() if a.GetAtomicNum() not in NONMETALS]
    ions = {a.GetAtomicNum() for a in metals} - {a.GetAtomicNum() for a in metals if a.GetDegree()}
    contacts = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in bonds(mol)
                if b.GetBeginAtom().GetAtomicNum() in ions or b.GetEndAtom().GetAtomicNum() in ions]
    if not contacts:
        return mol
    rw = Chem.RWMol(mol)
    for begin, end in contacts:
        rw.RemoveBond(begin, end)
    return rw.GetMol()


def apply_smiles(mol: Chem.Mol, smiles: str, id: str, has_h: bool) -> tuple[Chem.Mol, list[str]]:
    """(sanitised ``mol`` with the SMILES' bond orders, charges and isotopes, notes).

    ``mol`` holds the coordinate atoms with perceived connectivity only. The SMILES is
    mapped onto it (``map_smiles``, a mismatch fails the record); atom order and
    coordinates stay ``mol``'s, and chiral tags come from the 3D geometry. Stereo or isotopes
    the SMILES states that the coordinates contradict fail the record (``label_differences``):
    the geometry won with a note, and the depiction, drawn from the SMILES, showed the other
    enantiomer or isomer next to the coordinates' tokens.
    """
    parsed, notes = parse_smiles(smiles, id)
    # a SMILES stating a family (`|Sg:n:...|`, `|LN:...|`): the coordinates are one member, the
    # record's text says otherwise (was: the coordinates' molecule, without a word)
    check_no_family(parsed, id)
    mol = _without_ion_contacts(mol, Chem.AddHs(parsed) if has_h else parsed)  # a metal's H is a bond ([NaH])
    # the template as matched: hydrogens added (coordinates with them), or the SMILES' own [H]
    # atoms folded into counts (coordinates without: `fold_hydrogens`)
    template, mapping = map_smiles(mol, parsed, id, with_h=has_h, said=f"its SMILES {smiles!r}")
    Chem.Kekulize(template, clearAromaticFlags=True)
    rw = Chem.RWMol(mol)
    for t_atom in template.GetAtoms():
        atom = rw.GetAtomWithIdx(mapping[t_atom.GetIdx()])
        atom.SetFormalCharge(t_atom.GetFormalCharge())
        atom.SetNumRadicalElectrons(t_atom.GetNumRadicalElectrons())
        if t_atom.GetIsotope() and not atom.GetIsotope():  # D / T of the atom list: checked below
            atom.SetIsotope(t_atom.GetIsotope())
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0 if has_h else t_atom.GetTotalNumHs())
    for t_bond in bonds(template):
        bond = rw.GetBondBetweenAtoms(
            mapping[t_bond.GetBeginAtomIdx()], mapping[t_bond.GetEndAtomIdx()]
        )
        if bond is None:  # a hydrogen bonding two atoms in the SMILES and one in the coordinates
            a, b = t_bond.GetBeginAtom(), t_bond.GetEndAtom()
            raise MoleculeError(id, f"SMILES bond {_name(a, parsed)}-{_name(b, parsed)} joins coordinate atoms "
                                    f"{atom_names([mapping[a.GetIdx()], mapping[b.GetIdx()]], mol)}, which are "
                                    "not bonded")
        bond.SetBondType(t_bond.GetBondType())
    mol = rw.GetMol()
    notes.extend(sanitize(mol, id))
    Chem.AssignStereochemistryFrom3D(mol)
    differ = label_differences(mol, parsed)
    if differ:
        raise MoleculeError(id, f"SMILES {smiles!r} contradicts the coordinates: {'; '.join(differ)} (stereo from "
                                "the 3D coordinates); give the coordinates' SMILES, or one without stereo or isotopes")
    notes.append("SMILES verified against the coordinates atom by atom")
    return mol, notes
