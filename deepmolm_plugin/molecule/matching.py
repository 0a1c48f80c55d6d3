"""SMILES <-> coordinates: map a SMILES graph onto the atoms that carry the coordinates.

Coordinates stay attached to their own atoms: a molecule is always built from the
structure itself, never by re-parsing a SMILES and assigning coordinates by index. When a
record carries both (``molecule_from_atoms(..., smiles=...)``, or ``smiles_field`` for
SDF), the SMILES graph is matched onto the coordinate graph (elements + connectivity) and
every mapped atom's element is checked; any disagreement fails the record. For atom lists
the SMILES then supplies bond orders and charges, mapped onto the coordinate atoms
(``apply_smiles``). Coordinates with hydrogens are matched with them (then all of them
must be there); coordinates without any are matched on the heavy-atom graph. Stereo and
isotopes the SMILES states must be the structure's (``label_differences``, which the input
resolver uses for a structure file next to a SMILES too).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from rdkit import Chem

from .bonds import bonds
from .checks import NONMETALS, check_no_family
from .errors import MoleculeError, atom_names
from .sanitize import parse_smiles, sanitize

__all__ = ["apply_smiles", "label_differences", "map_smiles"]


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


def map_smiles(target: Chem.Mol, template: Chem.Mol, id: str, with_h: bool) -> list[int]:
    """Map every template atom onto a target atom with the same element and bonds.

    Returns ``mapping[template_idx] = target_idx``. Compares the whole graph including
    hydrogens when ``with_h`` (both sides carry them), else the heavy-atom graph (then
    indices refer to the full molecules). Any difference is a ``MoleculeError``.

    A symmetric graph maps in several ways, and which one carries the SMILES' bond orders
    (and with them its H counts and charges) onto the atoms matters: the first match put
    1,3-cyclohexadiene's double bonds on its 1.50 A bonds, and acetic acid's C=O on the C-OH
    oxygen, with the note "verified". With a conformer, the heavy-atom match whose higher
    orders fall on the shorter bonds is taken (sum of order x length, least); hydrogens,
    when given, go with the heavy atom they are bonded to.
    """
    what = "atoms (with hydrogens)" if with_h else "heavy atoms"
    t_all, s_all = (_skeleton(target), _skeleton(template)) if with_h else (None, None)
    t_skel, t_idx = _heavy_skeleton(target)
    s_skel, s_idx = _heavy_skeleton(template)
    counts = [(m.GetNumAtoms(), m.GetNumBonds()) for m in ((s_all, t_all) if with_h else (s_skel, t_skel))]
    if counts[0][0] != counts[1][0]:
        raise MoleculeError(id, f"SMILES has {counts[0][0]} {what}, the coordinates {counts[1][0]}")
    if counts[0][1] != counts[1][1]:
        raise MoleculeError(id, f"SMILES has {counts[0][1]} bonds between {what}, the coordinates "
                                f"imply {counts[1][1]}")
    matches = t_skel.GetSubstructMatches(s_skel, uniquify=False, maxMatches=MAX_MATCHES)
    if with_h:  # each heavy atom must carry as many hydrogens in both
        matches = [m for m in matches if all(_h_count(target, t_idx[t]) == _h_count(template, s_idx[s])
                                             for s, t in enumerate(m))]
    if not matches:
        raise MoleculeError(id, "SMILES graph does not match the coordinates' graph")
    pos = target.GetConformer().GetPositions() if target.GetNumConformers() else None
    match = min(matches, key=lambda m: _bond_length_score(pos, template, s_idx, t_idx, m))
    full = [0] * template.GetNumAtoms()
    for s_pos, t_pos in enumerate(match):
        full[s_idx[s_pos]] = t_idx[t_pos]
    if with_h:
        for s_pos, t_pos in enumerate(match):
            hydrogens = [n.GetIdx() for n in target.GetAtomWithIdx(t_idx[t_pos]).GetNeighbors()
                         if n.GetAtomicNum() == 1]
            for s_h, t_h in zip([n.GetIdx() for n in template.GetAtomWithIdx(s_idx[s_pos]).GetNeighbors()
                                 if n.GetAtomicNum() == 1], hydrogens):
                full[s_h] = t_h
        lone = [a.GetIdx() for a in template.GetAtoms()
                if a.GetAtomicNum() == 1 and not any(n.GetAtomicNum() != 1 for n in a.GetNeighbors())]
        if lone:  # H2, or an H+ / H- ion: nothing to hang them on
            raise MoleculeError(id, "SMILES has hydrogen atoms bonded to no heavy atom")
    for s_atom in s_idx:  # element by element
        a, b = template.GetAtomWithIdx(s_atom), target.GetAtomWithIdx(full[s_atom])
        if a.GetAtomicNum() != b.GetAtomicNum():
            raise MoleculeError(
                id, f"SMILES atom {atom_names([s_atom], template)} is not coordinate atom "
                f"{atom_names([b.GetIdx()], target)}"
            )
    return full


def _h_count(mol: Chem.Mol, idx: int) -> int:
    return sum(n.GetAtomicNum() == 1 for n in mol.GetAtomWithIdx(idx).GetNeighbors())


def _bond_length_score(pos, template: Chem.Mol, s_idx: list, t_idx: list, match) -> float:
    """Sum over the template's heavy-atom bonds of (bond order x the length of the target bond
    it lands on): least when higher orders sit on shorter bonds. `pos`: the target's (N, 3)
    coordinates; None (no conformer) scores 0."""
    if pos is None:
        return 0.0
    where = {s_idx[s]: t_idx[t] for s, t in enumerate(match)}
    score = 0.0
    for bond in bonds(template):
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if a in where and b in where:
            score += bond.GetBondTypeAsDouble() * float(((pos[where[a]] - pos[where[b]]) ** 2).sum() ** 0.5)
    return score


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


def _cip(mol: Chem.Mol) -> None:
    from rdkit.Chem import rdCIPLabeler

    try:
        rdCIPLabeler.AssignCIPLabels(mol)
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
    if target.HasSubstructMatch(query, useChirality=True):
        return [counts] if counts else []
    _cip(query)
    _cip(target)
    plain = Chem.Mol(query)
    for atom in plain.GetAtoms():
        atom.SetIsotope(0)
    best = None
    for match in target.GetSubstructMatches(plain, uniquify=False, useChirality=False, maxMatches=MAX_MATCHES):
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
    match = target.GetSubstructMatch(plain, useChirality=False)
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
    return atom_names([atom.GetIntProp("_orig")], mol)


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
    template, notes = parse_smiles(smiles, id)
    # a SMILES stating a family (`|Sg:n:...|`, `|LN:...|`): the coordinates are one member, the
    # record's text says otherwise (was: the coordinates' molecule, without a word)
    check_no_family(template, id)
    if has_h:
        template = Chem.AddHs(template)
    mol = _without_ion_contacts(mol, template)
    mapping = map_smiles(mol, template, id, with_h=has_h)
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
        bond.SetBondType(t_bond.GetBondType())
    mol = rw.GetMol()
    notes.extend(sanitize(mol, id))
    Chem.AssignStereochemistryFrom3D(mol)
    differ = label_differences(mol, parse_smiles(smiles, id)[0])
    if differ:
        raise MoleculeError(id, f"SMILES {smiles!r} contradicts the coordinates: {'; '.join(differ)} (stereo from "
                                "the 3D coordinates); give the coordinates' SMILES, or one without stereo or isotopes")
    notes.append("SMILES verified against the coordinates atom by atom")
    return mol, notes
