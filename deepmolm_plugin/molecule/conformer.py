"""Deterministic 3D conformer generation: ETKDGv3 (fixed seed) then MMFF94.

Used by the ``generate`` and ``auto`` 3D policies (``structures.py``) whenever a molecule
has no usable 3D coordinates (SMILES, flat 2D files). Same input molecule (same atoms in
the same order) -> same coordinates, bit for bit: a fixed seed, one thread, no timeout.

Defined behaviours
- Hydrogens: all missing hydrogens are added (``Chem.AddHs``) before embedding, appended
  after the existing atoms, so heavy-atom indices do not move. The returned molecule keeps
  them (geometry needs them; the fingerprint ignores them).
- Stereo: ETKDG enforces the chiral tags and double-bond stereo of the input. Unassigned
  stereocentres get whatever configuration the seeded embedding produces; a note says so.
- Several fragments (salts, mixtures): embedded together in one distance-geometry problem
  from random starting coordinates, so the fragments sit a few angstroms apart. RDKit's
  default embeds each fragment separately and stacks them all at the origin, which would
  make E3FP shells of one fragment swallow the other. The relative placement is arbitrary
  (but deterministic); a note says so.
- Embedding budget and failure: each try gets ``EMBED_ATTEMPTS`` (30) ETKDG attempts, a
  count rather than a timeout so that success never depends on machine speed (RDKit's
  default, 10 x atoms, spent 30-80 s on some metalloporphyrins before giving up or not).
  Drug-like molecules succeed at the first attempt, so the budget does not change their
  coordinates. A failed try is retried once from random starting coordinates (the usual
  remedy for macrocycles and cages, noted); if that fails too, ``MoleculeError`` naming the
  ETKDG checks that failed. No fallback to cruder embeddings.
- MMFF94 without parameters (most metals, some unusual valences): the ETKDGv3 geometry is
  kept unoptimised and a note says so (``require_mmff=True`` makes it an error instead).
  ETKDG geometries already have sensible bond lengths and angles, which is what E3FP's
  distance shells need; dropping every organometallic would be the worse default.
- MMFF94 not converged after ``MMFF_MAX_ITERS`` steps: the last geometry is kept, with a note.
"""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

from .errors import MoleculeError, as_notes, first_line, rdkit_messages, with_messages

__all__ = ["ETKDG_SEED", "EMBED_ATTEMPTS", "MMFF_MAX_ITERS", "generate_conformer"]

ETKDG_SEED = 0xDEE9
EMBED_ATTEMPTS = 30  # per try; a count, not a timeout, so success never depends on speed
MMFF_MAX_ITERS = 2000
_MMFF_ORGANIC = {"H", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Br", "I"}


_FAILURE_CAUSES = [  # names in the order of EmbedParameters.GetFailureCounts()
    name for name, value in sorted(rdDistGeom.EmbedFailureCauses.names.items(), key=lambda kv: int(kv[1]))
]


def _etkdg(seed: int, random_coords: bool, together: bool) -> rdDistGeom.EmbedParameters:
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    params.numThreads = 1  # determinism and no oversubscription in worker pools
    params.maxIterations = EMBED_ATTEMPTS
    params.trackFailures = True
    params.useRandomCoords = random_coords
    params.embedFragmentsSeparately = not together
    return params


def generate_conformer(
    mol: Chem.Mol, id: str, seed: int = ETKDG_SEED, require_mmff: bool = False
) -> tuple[Chem.Mol, list[str]]:
    """Return ``(new molecule with explicit hydrogens and exactly one 3D conformer, notes)``.

    ``mol`` is not modified. Raises ``MoleculeError`` when embedding fails, or when
    ``require_mmff`` is set and MMFF94 has no parameters for the molecule.
    """
    notes: list[str] = []
    work = Chem.AddHs(Chem.Mol(mol), addCoords=False)
    work.RemoveAllConformers()
    n_fragments = len(Chem.GetMolFrags(work))
    together = n_fragments > 1

    unassigned = [
        idx
        for idx, label in Chem.FindMolChiralCenters(
            work, includeUnassigned=True, useLegacyImplementation=False
        )
        if label == "?"
    ]
    if unassigned:
        notes.append(
            f"stereocentres {unassigned} are unassigned: the generated conformer fixes "
            "one configuration for them"
        )

    tries = [_etkdg(seed, together, together)]
    if not together:
        tries.append(_etkdg(seed, True, False))
    failures: dict[str, int] = {}
    with rdkit_messages() as messages:
        for attempt, params in enumerate(tries):
            try:
                conf_id = rdDistGeom.EmbedMolecule(work, params)
            except (RuntimeError, ValueError) as error:  # RDKit invariant violations
                reason = f"3D embedding failed: RDKit error: {first_line(error)}"
                raise MoleculeError(id, reason) from error
            if conf_id >= 0:
                break
            for cause, count in zip(_FAILURE_CAUSES, params.GetFailureCounts()):
                failures[cause] = failures.get(cause, 0) + count
    if conf_id < 0:
        causes = ", ".join(f"{c} x{n}" for c, n in sorted(failures.items(), key=lambda x: -x[1]) if n)
        how = "from random starting coordinates" if together else "also from random starting coordinates"
        reason = (
            f"3D embedding failed: ETKDGv3 (seed {seed:#x}) found no conformer in "
            f"{EMBED_ATTEMPTS} attempts, {how}" + (f" (failed checks: {causes})" if causes else "")
        )
        raise MoleculeError(id, with_messages(reason, messages))
    if attempt == 1:
        notes.append("ETKDGv3 needed random starting coordinates (second try)")
    notes.extend(as_notes(messages))
    if together:
        notes.append(
            f"{n_fragments} fragments embedded together; their relative placement is "
            "arbitrary (deterministic for a given seed)"
        )

    with rdkit_messages() as messages:
        try:
            has_params = rdForceFieldHelpers.MMFFHasAllMoleculeParams(work)
        except (RuntimeError, ValueError) as error:
            reason = f"MMFF94 typing failed: RDKit error: {first_line(error)}"
            raise MoleculeError(id, reason) from error
    if not has_params:
        unusual = sorted({a.GetSymbol() for a in work.GetAtoms()} - _MMFF_ORGANIC)
        what = f" (elements {', '.join(unusual)})" if unusual else ""
        if require_mmff:
            raise MoleculeError(
                id, with_messages(f"MMFF94 has no parameters for this molecule{what}", messages)
            )
        notes.append(
            f"MMFF94 has no parameters for this molecule{what}: kept the unoptimised "
            "ETKDGv3 geometry"
        )
        notes.extend(as_notes(messages))
    else:
        with rdkit_messages() as messages:
            try:
                status = rdForceFieldHelpers.MMFFOptimizeMolecule(work, maxIters=MMFF_MAX_ITERS)
            except (RuntimeError, ValueError) as error:
                reason = f"MMFF94 optimisation failed: RDKit error: {first_line(error)}"
                raise MoleculeError(id, reason) from error
        if status == -1:
            raise MoleculeError(id, with_messages("MMFF94 set-up failed", messages))
        if status == 1:
            notes.append(
                f"MMFF94 did not converge in {MMFF_MAX_ITERS} iterations: kept the last geometry"
            )
        notes.extend(as_notes(messages))
    return work, notes
