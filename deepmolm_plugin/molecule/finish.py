"""The common finishing steps every builder and file reader ends with.

Order: the heavy-atom size cap when every atom is kept (``policy.early_cap``: the checks
after it are linear, but 120,000 atoms still took seconds), structure checks (no atoms,
dummy atoms, non-finite coordinates), one spelling of hypervalent bonds
(``hypervalent.neutral_hypervalent``: ``[S+]-[O-]`` as ``S=O``), "either" stereo marks
dropped, first conformer only, bonds missing between fragments of a 3D conformer
(whatever the policy: the graph is wrong), fragments, no heavy atoms, the heavy-atom size cap, bond types E3FP cannot encode
(``checks.check_bond_types``: before any 3D work), the 3D policy, a charge shared by equal
terminal atoms placed by the conformer (``shared_charges``). Ending every
path here is what makes the cap and the conformer limits hold for every caller.

What finishing leaves alone:

- Charges and isotopes: kept as given (``fingerprint.py`` says how they change tokens), except
  the charge-separated spelling of a hypervalent bond (``hypervalent.py``).
- Explicit hydrogens: kept as the source had them (readers use ``removeHs=False``);
  conformer generation adds the missing ones. Tokens are per heavy atom either way.
- Metals: read like any atom (RDKit's valence rules apply); generated conformers of
  molecules MMFF94 cannot parameterise keep the ETKDGv3 geometry, with a note.
"""

from __future__ import annotations

from rdkit import Chem

from .bonds import bonds
from .checks import check_atoms, check_bond_types, check_coordinates, check_missing_bonds, has_3d_conformer
from .errors import MoleculeError
from .fragments import keep_fragments
from .hypervalent import neutral_hypervalent
from .policy import apply_3d_policy, early_cap, size_cap
from .record import MoleculeRecord
from .sanitize import note_radicals
from .shared_charges import place_shared_charges

__all__ = ["finish"]

# A bond's "either" / "unknown" stereo marks as RDKit keeps them: a molfile's crossed double
# bond (bond stereo 3, V3000 CFG=2) and wavy single bond (bond stereo 4), a CXSMILES `|w:|`.
_UNKNOWN_DIRS = (Chem.BondDir.UNKNOWN, Chem.BondDir.EITHERDOUBLE)
_UNKNOWN_MOLFILE_STEREO = {"_MolFileBondStereo": (3, 4), "_MolFileBondCfg": (2,)}


def finish(
    mol: Chem.Mol,
    id: str,
    source: str,
    notes: list[str],
    *,
    policy: str,
    max_atoms: int | None,
    too_large: str,
    fragments: str,
    embed_timeout: float | None,
    mmff_max_iters: int,
) -> MoleculeRecord:
    """Checks, the size cap and the 3D policy for a parsed, sanitised molecule.

    The options were validated by ``policy.check_options`` before reading began.
    """
    cap = early_cap(max_atoms, too_large, fragments)
    if cap is not None:
        # first, when every atom is kept: the checks below took 39 s to pass a 120,000-atom
        # V3000 chain before the cap refused it
        size_cap(id, mol.GetNumHeavyAtoms(), cap, "error", notes)
    check_atoms(mol, id)
    mol = neutral_hypervalent(mol, id, notes)  # DMSO from XYZ was C[S+](C)[O-], from SDF CS(C)=O: other tokens
    mol = _unmark_unknown_stereo(mol)
    # a file's radicals were kept without the note a SMILES' get
    note_radicals(mol, notes, "as the structure states them: a radical mark (M  RAD), or hydrogens it leaves out")
    groups = [g for g in mol.GetStereoGroups() if g.GetGroupType() != Chem.StereoGroupType.STEREO_ABSOLUTE]
    if groups:  # `|&1:1|` (racemic), `|o1:1|` (one unknown enantiomer), V3000 STERAC / STEREL
        notes.append(f"{len(groups)} enhanced stereo group(s) (AND / OR: a mixture, or an unknown configuration) "
                     "are not encoded: the tokens and the depiction are of the configuration as written")
    if mol.GetNumConformers() > 1:
        notes.append(f"file has {mol.GetNumConformers()} conformers: used the first")
        keep = Chem.Conformer(mol.GetConformer())
        mol.RemoveAllConformers()
        mol.AddConformer(keep, assignId=True)
    if has_3d_conformer(mol):  # before fragments='largest' could drop the pieces
        # overlapping atoms first: two copies of a molecule at one place were "0 A apart, a
        # bond length, but not bonded"
        check_coordinates(mol.GetConformer().GetPositions(), id)
        check_missing_bonds(mol, id)
    mol = keep_fragments(mol, fragments, notes)
    n_heavy = mol.GetNumHeavyAtoms()
    if n_heavy == 0:
        # (said for drawing too: the reason named only the tokens, in deepmolm-render's output)
        raise MoleculeError(id, "no heavy atoms: DeepMoLM's tokens and depictions are of heavy atoms")
    keep_atoms = size_cap(id, n_heavy, max_atoms, too_large, notes)
    check_bond_types(mol, id)  # was refused by the fingerprint, after a minute of 3D work
    mol, conformer = apply_3d_policy(mol, id, notes, policy=policy, embed_timeout=embed_timeout,
                                     mmff_max_iters=mmff_max_iters)
    mol = place_shared_charges(mol)  # a carboxylate's charge on one oxygen for every spelling of its coordinates
    # each note once: RDKit says the same of the molecule at each sanitisation (`[U+6]`'s
    # "Unusual charge" was noted twice, at parsing and at embedding)
    return MoleculeRecord(id, mol, source, conformer, list(dict.fromkeys(notes)), keep_atoms)


def _unmark_unknown_stereo(mol: Chem.Mol) -> Chem.Mol:
    """``mol``, or a copy without its "either" stereo marks: a configuration marked unknown
    is one left unassigned, as a SMILES without @ or / \\ leaves it (it gets the same
    "unassigned" note, and the generated conformer fixes one configuration). Kept, the mark
    made the same molecule another input: RDKit's canonical ranking reads STEREOANY, so ETKDG
    embedded another atom order (geraniol written by RDKit's SDWriter with explicit H marks its
    (CH3)2C=CH bond "either": 16 of 44 token entries differed from its SMILES'), the mark on a
    bond that has no E/Z at all was noted as an unassigned one, and the depiction drew crossed
    or wavy bonds the SMILES' did not."""
    marked = [b for b in bonds(mol) if b.GetStereo() == Chem.BondStereo.STEREOANY
              or b.GetBondDir() in _UNKNOWN_DIRS or b.HasProp("_UnknownStereo")
              or any(b.HasProp(k) and b.GetIntProp(k) in v for k, v in _UNKNOWN_MOLFILE_STEREO.items())]
    atoms = [a for a in mol.GetAtoms() if a.HasProp("_UnknownStereo")]
    if not marked and not atoms:
        return mol
    mol = Chem.Mol(mol)
    for bond in (mol.GetBondWithIdx(b.GetIdx()) for b in marked):
        if bond.GetStereo() == Chem.BondStereo.STEREOANY:
            bond.SetStereo(Chem.BondStereo.STEREONONE)
        if bond.GetBondDir() in _UNKNOWN_DIRS:
            bond.SetBondDir(Chem.BondDir.NONE)
        for key, values in _UNKNOWN_MOLFILE_STEREO.items():
            if bond.HasProp(key) and bond.GetIntProp(key) in values:
                bond.ClearProp(key)
        bond.ClearProp("_UnknownStereo")
    for atom in (mol.GetAtomWithIdx(a.GetIdx()) for a in atoms):
        atom.ClearProp("_UnknownStereo")
    return mol
