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


def map_smiles(target: Chem.Mol, template: Chem.Mol, id: str, with_h: bool) -> list[int]:
    """Map every template atom onto a target atom with the same element and bonds.

    Returns ``mapping[template_idx] = target_idx``. Compares the whole graph including
    hydrogens when ``with_h`` (both sides carry them), else the heavy-atom graph (then
    indices refer to the full molecules). Any difference is a ``MoleculeError``.
    """
    if with_h:
        t_skel, t_idx = _skeleton(target), list(range(target.GetNumAtoms()))
        s_skel, s_idx = _skeleton(template), list(range(template.GetNumAtoms()))
    else:
        t_skel, t_idx = _heavy_skeleton(target)
        s_skel, s_idx = _heavy_skeleton(template)
    what = "atoms (with hydrogens)" if with_h else "heavy atoms"
    if t_skel.GetNumAtoms() != s_skel.GetNumAtoms():
        raise MoleculeError(
            id,
            f"SMILES has {s_skel.GetNumAtoms()} {what}, the coordinates "
            f"{t_skel.GetNumAtoms()}",
        )
    if t_skel.GetNumBonds() != s_skel.GetNumBonds():
        raise MoleculeError(
            id,
            f"SMILES has {s_skel.GetNumBonds()} bonds between {what}, the coordinates "
            f"imply {t_skel.GetNumBonds()}",
        )
    match = t_skel.GetSubstructMatch(s_skel)
    if not match:
        raise MoleculeError(id, "SMILES graph does not match the coordinates' graph")
    mapping = [t_idx[m] for m in match]  # template skeleton order -> target index
    full = [0] * template.GetNumAtoms()
    for s_pos, t_target in enumerate(mapping):
        full[s_idx[s_pos]] = t_target
    for s_pos, s_atom in enumerate(s_idx):  # element by element
        a, b = template.GetAtomWithIdx(s_atom), target.GetAtomWithIdx(full[s_atom])
        if a.GetAtomicNum() != b.GetAtomicNum():
            raise MoleculeError(
                id, f"SMILES atom {atom_names([s_atom], template)} is not coordinate atom "
                f"{atom_names([b.GetIdx()], target)}"
            )
    return full


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
