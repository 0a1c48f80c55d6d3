"""``molecule_fp``: per-atom E3FP tokens, exactly as DeepMoLM feeds its fusion projector.

Token tensor of one molecule: int64 ``[heavy_atoms, levels]`` (``[N, 4]`` by default), the
contract of ``deepmolm_plugin.molecule_fp`` (whose ``FingerprintSettings`` give bits and levels).
Entry ``(a, l)`` = ``unsigned(identifier) mod bits`` of the E3FP shell centred on heavy
atom ``a`` at iteration ``l`` (radius ``l * 1.718`` angstrom), or ``-1`` where E3FP made no
shell for that atom and level.

How the shells are read
- From the Fingerprinter's ``all_shells``: one shell per (heavy atom, iteration) that was
  run, including shells E3FP flags as duplicate substructures. Each shell carries its
  ``center_atom`` and its ``radius``; the level is ``radius / radius_multiplier``. Never
  from list positions, never from ``level_shells``/``get_shells_at_level`` (cumulative and
  de-duplicated).
- Settings are DeepMoLM's: bits 4096, level 3, radius multiplier 1.718, stereo on, RDKit
  (Morgan) invariants, ``include_disconnected`` on, ``exclude_floating`` off, and e3fp's
  default ``remove_duplicate_substructs=True`` (DeepMoLM called ``fprints_dict_from_mol``
  without overriding it). With it, E3FP stops iterating once no new substructure appears
  (e.g. ethanol: every level-2 shell already covers the whole molecule), so small
  molecules have ``-1`` at the higher levels (most drug-sized ones at level 3); a single
  heavy atom only has level 0. A level exists for every atom or for none.

Defined behaviours
- Hydrogens are not tokens. The fingerprint runs on ``Chem.RemoveAllHs(mol)``: rows are
  the heavy atoms in the molecule's own order, and each heavy atom's hydrogen count (an
  E3FP invariant) is the same whether the source file had explicit hydrogen atoms or not.
  Deuterium/tritium count as hydrogens there. A hydrogen bonded to no heavy atom (H+, H-,
  H2 as a fragment) would be in no token, so it is an error (``fragments='largest'`` drops it).
- Isotopes on heavy atoms are kept; e3fp's invariant is ``int(mass - standard weight)``,
  so 14C or 18O change the level-0 token while 13C and 15N (delta < 1) do not.
- Charges are kept (formal charge is an invariant). Metals and every other element are
  fingerprinted like any heavy atom; E3FP shells are spheres, not bonds, so a molecule
  whose every interatomic distance exceeds the level-1 radius (1.718 A; e.g. titanium
  tetrachloride ``Cl[Ti](Cl)(Cl)Cl``, Ti-Cl 2.3 A in its generated conformer) converges after
  level 0 and has -1 at levels 1-3.
  Disconnected fragments (salts) are all fingerprinted, and with ``include_disconnected``
  a counter-ion within a shell's radius changes that shell's token.
- Failures raise ``MoleculeError``: no conformer, a 2D conformer (``conformer_is_3d``), non-finite
  or overlapping coordinates, no heavy atoms, dummy atoms (atomic number 0, which E3FP
  would silently skip), hydrogens bonded to no heavy atom, or an error inside e3fp. Never
  zeros, never an all-padding row.
- The fold to ``bits`` is ours (``unsigned(identifier) % bits``); the Fingerprinter runs with
  E3FP's own 2**32 bits, which ``all_shells`` never fold, so any allowed ``bits`` works alike.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import numpy as np
from rdkit import Chem

from ..molecule_fp import DEEPMOLM, PAD, FingerprintSettings
from .checks import BOND_KINDS, check_bond_types, check_coordinates, conformer_is_3d
from .errors import MoleculeError, atom_names, rdkit_messages, sanitization_failed


@contextlib.contextmanager
def _root_logging_kept():
    """e3fp configures the root logger: its import calls logging.basicConfig(level=INFO),
    and Fingerprinter.run logs through the module-level logging.debug, which calls
    basicConfig on a root without handlers. Both are undone, so the user's logging stays as
    it was (was: after the first molecule the root had a stderr handler, and the user's own
    later logging.basicConfig(...) did nothing)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


with _root_logging_kept():
    from e3fp.fingerprint.fprinter import BITS as E3FP_BITS, BOND_TYPES as E3FP_BOND_TYPES
    from e3fp.fingerprint.fprinter import Fingerprinter, identifiers_from_invariants, signed_to_unsigned_int
    from e3fp.fingerprint.structs import FormatError
    from e3fp.util import E3FPError

if TYPE_CHECKING:  # torch is imported where tensors are made: the tools and CLIs start without it
    import torch

__all__ = [
    "E3FP_SETTINGS",
    "check_lone_hydrogens",
    "fingerprint_record",
    "level0_tokens",
    "molecule_fp",
]

RADIUS_MULTIPLIER = 1.718
E3FP_SETTINGS = dict(
    radius_multiplier=RADIUS_MULTIPLIER,
    stereo=True,
    counts=False,
    include_disconnected=True,
    rdkit_invariants=True,
    exclude_floating=False,
    remove_duplicate_substructs=True,
)
# checks.BOND_KINDS is what finish lets through: it must be what e3fp encodes
if BOND_KINDS != set(E3FP_BOND_TYPES) - {None}:
    raise ImportError(f"e3fp encodes the bond types {sorted(map(str, set(E3FP_BOND_TYPES) - {None}))}, "
                      "not checks.BOND_KINDS: update BOND_KINDS to them")
_E3FP_FAILURES = (E3FPError, FormatError, ValueError, IndexError, KeyError, TypeError, ArithmeticError)


def check_lone_hydrogens(mol: Chem.Mol, id: str) -> None:
    """A hydrogen bonded to no heavy atom (H+, H-, H2) is counted nowhere: tokens are per
    heavy atom and carry only the hydrogens bonded to it, so HCl as ions had Cl-'s tokens and
    ethanol + H2 ethanol's, while the depiction drew them. Named here; `fragments="largest"`
    drops such fragments with a note. deepmolm-render asks it too (was: it drew the H+ of a
    salt that fingerprinting refuses)."""
    lone = [atom for atom in mol.GetAtoms() if atom.GetAtomicNum() == 1
            and all(n.GetAtomicNum() == 1 for n in atom.GetNeighbors())]
    if lone:
        names = [atom_names([a.GetIdx()], mol) + (f" (charge {a.GetFormalCharge():+d})" if a.GetFormalCharge() else "")
                 for a in lone]
        raise MoleculeError(id, f"{len(lone)} hydrogen atom(s) bonded to no heavy atom ({', '.join(names[:5])}): "
                                "E3FP tokens are per heavy atom and would leave them out; give the molecule "
                                "without them (deepmolm-fingerprint and deepmolm-render drop such fragments with "
                                "--fragments largest)")


def _name(mol: Chem.Mol) -> str:
    return mol.GetProp("_Name") if mol.HasProp("_Name") and mol.GetProp("_Name") else "molecule"


def molecule_fp(
    mol: Chem.Mol, conf_id: int = -1, settings: FingerprintSettings = DEEPMOLM, id: str | None = None
) -> torch.Tensor:
    """E3FP tokens of ``mol``'s conformer ``conf_id``: int64 ``[heavy_atoms, settings.levels]``."""
    id = id if id is not None else _name(mol)
    bits, level = settings.bits, settings.last_level
    dummies = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if dummies:
        raise MoleculeError(id, f"dummy/query atoms {atom_names(dummies, mol)} cannot be fingerprinted")
    if mol.GetNumConformers() == 0:
        raise MoleculeError(id, "no conformer: E3FP needs 3D coordinates")
    try:
        conf = mol.GetConformer(conf_id)
    except ValueError as error:
        raise MoleculeError(id, f"no conformer with id {conf_id}") from error
    positions = conf.GetPositions()  # [atoms, 3]
    check_coordinates(positions, id)
    if not conformer_is_3d(mol, conf_id):
        raise MoleculeError(id, "conformer is 2D (a depiction): E3FP needs 3D coordinates")

    try:
        # sanitised copy, conformer ids kept; its warnings are those the record's building
        # noted already (`[U+6]`'s "Unusual charge" was printed raw on the tool's screen)
        with rdkit_messages():
            heavy = Chem.RemoveAllHs(mol)
    except Chem.MolSanitizeException as error:
        raise sanitization_failed(id, error) from error
    heavy_conf_id = conf.GetId()
    n_heavy = heavy.GetNumAtoms()
    if n_heavy == 0:
        raise MoleculeError(id, "no heavy atoms: E3FP tokens are per heavy atom")

    check_lone_hydrogens(mol, id)  # was: dropped without a word by RemoveAllHs
    check_bond_types(heavy, id)  # finish refused them already; a caller's own molecule is checked here
    # E3FP's own (unfolded) bits: the fold to `bits` is ours, below. was: Fingerprinter(bits=bits),
    # which for bits that are no power of two logged a warning per molecule through the root
    # logger (installing a root handler, undoing the import fix above); all_shells never fold.
    try:
        with _root_logging_kept():
            fprinter = Fingerprinter(bits=E3FP_BITS, level=level, **E3FP_SETTINGS)
            fprinter.run(conf=heavy_conf_id, mol=heavy)
    except _E3FP_FAILURES as error:
        raise MoleculeError(id, f"E3FP failed: {type(error).__name__}: {error}") from error

    rows = {int(atom): row for row, atom in enumerate(fprinter.atoms)}  # atom index -> row
    if len(rows) != n_heavy:
        raise MoleculeError(id, f"E3FP saw {len(rows)} heavy atoms, the molecule has {n_heavy}")
    tokens = np.full((n_heavy, level + 1), PAD, dtype=np.int64)  # [heavy_atoms, levels]
    for shell in fprinter.all_shells:
        lvl = int(round(shell.radius / RADIUS_MULTIPLIER))
        if abs(shell.radius - lvl * RADIUS_MULTIPLIER) > 1e-6 or not 0 <= lvl <= level:
            raise MoleculeError(id, f"E3FP returned a shell of unexpected radius {shell.radius}")
        row = rows[int(shell.center_atom)]
        if tokens[row, lvl] != PAD:
            raise MoleculeError(id, f"E3FP returned two shells for atom {row} at level {lvl}")
        tokens[row, lvl] = int(signed_to_unsigned_int(int(shell.identifier))) % bits
    if (tokens[:, 0] == PAD).any():
        raise MoleculeError(id, "E3FP returned no level-0 shell for some atoms")
    import torch

    return torch.from_numpy(tokens)


def level0_tokens(mol: Chem.Mol, settings: FingerprintSettings = DEEPMOLM, id: str | None = None) -> np.ndarray:
    """Column 0 of ``molecule_fp(mol)``, from the graph alone (no conformer): a level-0 shell
    holds one atom, and E3FP's identifier for it is the hash of the atom's invariants
    (RDKit's Morgan ones: element, degree, hydrogens, charge, isotope, ring membership),
    folded as in `molecule_fp`. int64 ``[heavy_atoms]``, rows in the molecule's heavy-atom
    order. What tokens given with a molecule are checked against (`InputResolver`)."""
    id = id if id is not None else _name(mol)
    try:
        heavy = Chem.RemoveAllHs(mol)  # as `molecule_fp` fingerprints it
    except Chem.MolSanitizeException as error:
        raise sanitization_failed(id, error) from error
    atoms = list(range(heavy.GetNumAtoms()))
    identifiers = identifiers_from_invariants(heavy, atoms, rdkit_invariants=E3FP_SETTINGS["rdkit_invariants"])
    return np.array([int(signed_to_unsigned_int(int(identifiers[a]))) % settings.bits for a in atoms], dtype=np.int64)


def fingerprint_record(record, settings: FingerprintSettings = DEEPMOLM) -> torch.Tensor:
    """Tokens of a ``MoleculeRecord``, truncated to ``record.keep_atoms`` rows when set.

    Truncation (``max_atoms`` with ``too_large='truncate'``) keeps the first rows: the
    fingerprint is computed on the whole molecule, so kept atoms still see their full 3D
    environment. The record's notes already say how many rows were dropped.
    """
    tokens = molecule_fp(record.mol, settings=settings, id=record.id)
    if record.keep_atoms is not None:
        tokens = tokens[: record.keep_atoms].clone()
    return tokens
