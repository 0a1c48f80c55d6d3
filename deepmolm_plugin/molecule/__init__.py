"""Molecules in, DeepMoLM inputs out: 3D structures, E3FP tokens, 1024 px depictions.

- ``io``: ``read_structures`` reads SDF/MOL (V2000, V3000), MOL2, XYZ, PDB, SMILES and
  CSV files, one reader module per format behind a suffix registry (``SUFFIXES``).
- ``builders``: ``molecule_from_smiles`` and ``molecule_from_atoms`` (element + coordinate
  arrays, 3D-MoIT), keeping each coordinate on its own atom (``matching``: SMILES graph
  mapped onto the coordinate atoms).
- ``record``: ``MoleculeRecord``, what every builder and reader returns.
- ``finish``, ``policy``, ``fragments``, ``checks``: the steps every record ends with:
  structure checks, salts, the heavy-atom cap (``MAX_ATOMS`` = 256 by default) and the
  explicit 3D policy (``POLICIES``: ``auto``, ``from-file``, ``generate``, ``keep``).
- ``conformer``: deterministic ETKDGv3 + MMFF94 conformers, with bounded work
  (``EMBED_TIMEOUT`` seconds of embedding, ``MMFF_MAX_ITERS`` MMFF94 steps).
- ``fingerprint``: ``molecule_fp`` -> int64 ``[heavy_atoms, levels]`` E3FP tokens (-1 = no
  shell), the contract of ``deepmolm_plugin.molecule_fp`` (settings, ``PAD``, checks,
  ``collate``).
- ``inputs``: ``InputResolver``, the one way from any input form (structure file, SMILES,
  atoms + coordinates, inline or sidecar tokens, image) to one molecule's model inputs
  (depiction, ``molecule_fp``, notes); ``sidecar``: the compact on-disk token store.
- ``render``: ``render_molecule`` -> the 1024x1024 RGB depiction used everywhere.
- ``tools``: the ``deepmolm-fingerprint`` and ``deepmolm-render`` command-line tools.

Every per-molecule failure is a ``MoleculeError`` (a ``ValueError``) carrying ``.id`` and
``.reason``; nothing falls back to zeros, padding or blank images. The module docstrings
list each defined behaviour.
"""

from .builders import molecule_from_atoms, molecule_from_smiles
from .checks import conformer_is_3d
from .conformer import EMBED_TIMEOUT, ETKDG_SEED, MMFF_MAX_ITERS, generate_conformer
from .errors import MoleculeError
from .fingerprint import E3FP_SETTINGS, fingerprint_record, molecule_fp
from .io import SUFFIXES, read_structures
from .policy import MAX_ATOMS, POLICIES
from .record import MoleculeRecord
from .render import render_molecule

__all__ = [
    "EMBED_TIMEOUT",
    "ETKDG_SEED",
    "E3FP_SETTINGS",
    "MAX_ATOMS",
    "MMFF_MAX_ITERS",
    "POLICIES",
    "SUFFIXES",
    "MoleculeError",
    "MoleculeRecord",
    "conformer_is_3d",
    "fingerprint_record",
    "generate_conformer",
    "molecule_fp",
    "molecule_from_atoms",
    "molecule_from_smiles",
    "read_structures",
    "render_molecule",
]
