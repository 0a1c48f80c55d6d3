"""SMILES <-> coordinates: map a SMILES graph onto the atoms that carry the coordinates.

Coordinates stay attached to their own atoms: a molecule is always built from the
structure itself, never by re-parsing a SMILES and assigning coordinates by index. When a
record carries both (``molecule_from_atoms(..., smiles=...)``, or ``smiles_field`` for
SDF), the SMILES graph is matched onto the coordinate graph (elements + connectivity) and
every mapped atom's element is checked; any disagreement fails the record. For atom lists
the SMILES then supplies bond orders and charges, mapped onto the coordinate atoms
(``apply_smiles``). Coordinates with hydrogens are matched with them (then all of them
must be there); coordinates without any are matched on the heavy-atom graph.
"""

from __future__ import annotations

from rdkit import Chem

from .errors import MoleculeError, atom_names
from .sanitize import parse_smiles, sanitize

__all__ = ["apply_smiles", "map_smiles", "stereo_note"]


def _skeleton(mol: Chem.Mol) -> Chem.Mol:
    """Elements and connectivity only: what coordinates determine unambiguously."""
    rw = Chem.RWMol(mol)
    for bond in rw.GetBonds():
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
    for bond in template.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if a in where and b in where:
            score += bond.GetBondTypeAsDouble() * float(((pos[where[a]] - pos[where[b]]) ** 2).sum() ** 0.5)
    return score


def stereo_note(mol: Chem.Mol, template: Chem.Mol, mapping: list[int]) -> list[str]:
    """Note stereocentres where the SMILES and the 3D geometry disagree (geometry wins)."""
    want = dict(Chem.FindMolChiralCenters(template, useLegacyImplementation=False))
    have = dict(Chem.FindMolChiralCenters(mol, useLegacyImplementation=False))
    differ = [mapping[i] for i, label in want.items() if have.get(mapping[i], label) != label]
    if differ:
        return [f"stereocentres {differ} differ from the SMILES; the coordinates are used"]
    return []


def apply_smiles(mol: Chem.Mol, smiles: str, id: str, has_h: bool) -> tuple[Chem.Mol, list[str]]:
    """(sanitised ``mol`` with the SMILES' bond orders, charges and isotopes, notes).

    ``mol`` holds the coordinate atoms with perceived connectivity only. The SMILES is
    mapped onto it (``map_smiles``, a mismatch fails the record); atom order and
    coordinates stay ``mol``'s, and chiral tags come from the 3D geometry (a note names
    stereocentres where the SMILES said otherwise).
    """
    template, notes = parse_smiles(smiles, id)
    if has_h:
        template = Chem.AddHs(template)
    mapping = map_smiles(mol, template, id, with_h=has_h)
    Chem.Kekulize(template, clearAromaticFlags=True)
    rw = Chem.RWMol(mol)
    for t_atom in template.GetAtoms():
        atom = rw.GetAtomWithIdx(mapping[t_atom.GetIdx()])
        atom.SetFormalCharge(t_atom.GetFormalCharge())
        atom.SetNumRadicalElectrons(t_atom.GetNumRadicalElectrons())
        if t_atom.GetIsotope():
            atom.SetIsotope(t_atom.GetIsotope())
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0 if has_h else t_atom.GetTotalNumHs())
    for t_bond in template.GetBonds():
        bond = rw.GetBondBetweenAtoms(
            mapping[t_bond.GetBeginAtomIdx()], mapping[t_bond.GetEndAtomIdx()]
        )
        bond.SetBondType(t_bond.GetBondType())
    mol = rw.GetMol()
    notes.extend(sanitize(mol, id))
    Chem.AssignStereochemistryFrom3D(mol)
    notes.append("SMILES verified against the coordinates atom by atom")
    notes.extend(stereo_note(mol, parse_smiles(smiles, id)[0], mapping))
    return mol, notes
