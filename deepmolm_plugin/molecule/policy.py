"""The explicit 3D policy and the heavy-atom size cap, applied to every record.

3D policy (``policy=``):

- ``from-file``: use the file's conformer. A 2D one or none (SMILES) is an error for
  that record. 2D means what the source declares as RDKit reads it: a molfile whose
  header says ``2D`` (or nothing) and whose z are all 0. XYZ, PDB, MOL2 and atom arrays
  are 3D formats, so a planar molecule in the xy plane (common for DFT geometries) stays
  3D. Any of them is a depiction, whatever its flag or orientation, when a tetrahedral
  carbon with three or more of its neighbours in the file lies in one plane with them
  (such a carbon never is in 3D; was: tested only when all z = 0, so z rounding noise or a
  tilted layout passed as 3D); its stereo then comes from its wedges, as a 2D molfile's
  does. The decision is ``checks.conformer_is_3d``.
- ``generate``: always a fresh conformer (``conformer.generate_conformer``: ETKDGv3 with a
  fixed seed, then MMFF94; deterministic). File stereo is kept (read from the 3D
  coordinates or 2D wedges first). Its work is bounded: ``embed_timeout`` seconds of
  embedding (``EMBED_TIMEOUT``, 60; ``None`` = no limit; running out fails the record,
  naming the limit) and ``mmff_max_iters`` MMFF94 steps (``MMFF_MAX_ITERS``, 2000).
- ``auto`` (default): the file's conformer when it is 3D, else generate; the record says
  which (``record.conformer`` is ``'file'`` or ``'generated'``, and a note says why).
- ``keep``: no 3D handling at all (conformer as read, possibly flat or absent;
  ``record.conformer`` is ``'file'`` or ``'none'``). For drawing, not for fingerprints.

Size: ``max_atoms`` caps *heavy* atoms (the token rows), ``MAX_ATOMS`` = 256 by default
(DeepMoLM's registry cap); ``None`` lifts it. Every builder applies it (``finish.finish``),
so data preparation, the command-line tools, training records, chat and evaluation all get
it. Why a default: conformer work grows with the cube of the atom count (a 400-carbon
chain ran for more than five minutes without an end in sight), so one huge record could
stall a whole run. ``too_large='error'`` (default) fails the record before any conformer
work, naming the count and the cap; ``'truncate'`` keeps the record, sets
``record.keep_atoms`` so ``fingerprint_record`` emits only the first ``max_atoms`` rows,
and notes how many were dropped (the whole molecule is still embedded: truncation does
not bound the work).
"""

from __future__ import annotations

from rdkit import Chem

from .bonds import bonds
from .checks import check_bond_lengths, check_coordinates, has_3d_conformer
from .conformer import check_limits, generate_conformer
from .errors import MoleculeError, MoleculeTooLarge

__all__ = ["FRAGMENTS", "MAX_ATOMS", "POLICIES", "apply_3d_policy", "check_options", "early_cap", "size_cap"]

POLICIES = ("auto", "from-file", "generate", "keep")
MAX_ATOMS = 256  # heavy atoms per molecule, as DeepMoLM's registry; None lifts the cap
FRAGMENTS = ("all", "largest")  # what fragments.keep_fragments does with salts


def check_options(policy: str, max_atoms: int | None, too_large: str, fragments: str,
                  embed_timeout: float | None, mmff_max_iters: int) -> None:
    """Usage errors (``ValueError``) up front, before any record is read."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if max_atoms is not None and (isinstance(max_atoms, bool) or not isinstance(max_atoms, int)
                                  or max_atoms < 1):
        raise ValueError(f"max_atoms must be an integer >= 1 or None, got {max_atoms!r}")
    if too_large not in ("error", "truncate"):
        raise ValueError(f"too_large must be 'error' or 'truncate', got {too_large!r}")
    if fragments not in FRAGMENTS:
        raise ValueError(f"fragments must be 'all' or 'largest', got {fragments!r}")
    check_limits(embed_timeout, mmff_max_iters)


def size_cap(id: str, n_heavy: int, max_atoms: int | None, too_large: str,
             notes: list[str]) -> int | None:
    """``record.keep_atoms`` for a molecule of ``n_heavy`` heavy atoms: None under the cap,
    the cap when truncating (noted); over the cap with ``too_large='error'`` it fails the
    record before any conformer work, naming the count and the cap."""
    if max_atoms is None or n_heavy <= max_atoms:
        return None
    if too_large == "error":
        raise MoleculeTooLarge(id, n_heavy, max_atoms)
    notes.append(
        f"truncated: tokens for the first {max_atoms} of {n_heavy} heavy atoms "
        f"({n_heavy - max_atoms} dropped, max_atoms={max_atoms})"
    )
    return max_atoms


def early_cap(max_atoms: int | None, too_large: str, fragments: str, **_) -> int | None:
    """The heavy-atom cap that may refuse a molecule as parsed, before RDKit sanitises it or
    perceives its bonds (``sanitize.sanitize``'s ``max_heavy``): ``max_atoms`` when every atom
    is kept and a molecule over it fails; None otherwise (``fragments='largest'`` caps what is
    left after dropping the others, ``too_large='truncate'`` keeps the molecule)."""
    return max_atoms if too_large == "error" and fragments == "all" else None


def apply_3d_policy(mol: Chem.Mol, id: str, notes: list[str], *, policy: str,
                    embed_timeout: float | None, mmff_max_iters: int) -> tuple[Chem.Mol, str]:
    """(molecule with the conformer the policy chose, ``record.conformer`` value).

    A file conformer that is 3D sets the chiral tags from the geometry first, so both a
    kept and a generated conformer carry the file's stereo.
    """
    has_coords = mol.GetNumConformers() > 0
    is_3d = has_3d_conformer(mol)
    if is_3d:
        Chem.AssignStereochemistryFrom3D(mol)  # chiral tags follow the geometry
    elif has_coords and mol.GetConformer().Is3D():
        _stereo_from_wedges(mol)  # a depiction flagged 3D (checks.conformer_is_3d): as RDKit reads a 2D one
    if policy == "keep":
        return mol, "file" if has_coords else "none"
    if policy == "from-file" or (policy == "auto" and is_3d):
        if not has_coords:
            raise MoleculeError(id, f"no coordinates: policy {policy!r} needs a 3D structure")
        if not is_3d:
            raise MoleculeError(
                id,
                "conformer is 2D (a depiction): policy 'from-file' does not fingerprint it "
                "as 3D; use policy 'auto' or 'generate'",
            )
        check_coordinates(mol.GetConformer().GetPositions(), id)
        check_bond_lengths(mol, id)
        return mol, "file"
    if policy == "auto":
        notes.append(
            "file conformer is 2D: generated a 3D conformer"
            if has_coords
            else "no coordinates: generated a 3D conformer"
        )
    name = mol.GetProp("_Name") if mol.HasProp("_Name") else None
    mol, conf_notes = generate_conformer(mol, id, embed_timeout=embed_timeout,
                                         mmff_max_iters=mmff_max_iters)
    if name:
        mol.SetProp("_Name", name)
    notes.extend(conf_notes)
    return mol, "generated"


def _stereo_from_wedges(mol: Chem.Mol) -> None:
    """Chiral tags of a molfile depiction that was flagged 3D, as RDKit sets them for a 2D one:
    from its wedges, none elsewhere. RDKit had read them from the flat coordinates, where a
    tetrahedral centre has no handedness (z rounding noise of +-0.002 A gave one at random)
    and the wedges were ignored. Other sources' tags (a SMILES given beside coordinates) are
    left alone: only a molfile's bonds carry ``_MolFileBondStereo``."""
    if not any(bond.HasProp("_MolFileBondType") for bond in bonds(mol)):
        return
    for atom in mol.GetAtoms():
        atom.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
    Chem.ReapplyMolBlockWedging(mol)
    Chem.AssignChiralTypesFromBondDirs(mol)
    Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
