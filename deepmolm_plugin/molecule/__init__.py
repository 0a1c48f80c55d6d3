"""Molecules in, DeepMoLM inputs out: 3D structures, E3FP tokens, 1024 px depictions.

- ``structures``: read SDF/MOL (V2000, V3000), MOL2, XYZ, PDB, SMILES files and
  element + coordinate arrays (3D-MoIT) into ``MoleculeRecord`` objects, keeping each
  coordinate on its own atom, with an explicit 3D policy (``from-file``, ``generate``,
  ``auto``) and defined behaviour for salts, charges, isotopes, hydrogens, metals and size
  (``MAX_ATOMS`` = 256 heavy atoms per molecule by default).
- ``conformer``: deterministic ETKDGv3 + MMFF94 conformers, with bounded work
  (``EMBED_TIMEOUT`` seconds of embedding, ``MMFF_MAX_ITERS`` MMFF94 steps).
- ``fingerprint``: ``molecule_fp`` -> int64 ``[heavy_atoms, 4]`` E3FP tokens (-1 = no
  shell) and ``collate_molecule_fp`` -> ``(B, max_atoms, 4)`` padded with -1.
- ``render``: ``render_molecule`` -> the 1024x1024 RGB depiction used everywhere.
- ``tools``: the ``deepmolm-fingerprint`` and ``deepmolm-render`` command-line tools.

Every per-molecule failure is a ``MoleculeError`` (a ``ValueError``) carrying ``.id`` and
``.reason``; nothing falls back to zeros, padding or blank images. The module docstrings
list each defined behaviour.
"""

from .conformer import EMBED_TIMEOUT, ETKDG_SEED, MMFF_MAX_ITERS, generate_conformer
from .errors import MoleculeError
from .fingerprint import (
    E3FP_SETTINGS,
    PAD,
    collate_molecule_fp,
    conformer_is_3d,
    fingerprint_record,
    molecule_fp,
)
from .render import render_molecule
from .structures import (
    MAX_ATOMS,
    POLICIES,
    MoleculeRecord,
    molecule_from_atoms,
    molecule_from_smiles,
    read_structures,
)

__all__ = [
    "EMBED_TIMEOUT",
    "ETKDG_SEED",
    "E3FP_SETTINGS",
    "MAX_ATOMS",
    "MMFF_MAX_ITERS",
    "PAD",
    "POLICIES",
    "MoleculeError",
    "MoleculeRecord",
    "collate_molecule_fp",
    "conformer_is_3d",
    "fingerprint_record",
    "generate_conformer",
    "molecule_fp",
    "molecule_from_atoms",
    "molecule_from_smiles",
    "read_structures",
    "render_molecule",
]
