"""Deterministic 3D conformer generation: ETKDGv3 (fixed seed) then MMFF94.

Used by the ``generate`` and ``auto`` 3D policies (``policy.py``) whenever a molecule
has no usable 3D coordinates (SMILES, flat 2D files). Same molecule -> same coordinates,
bit for bit, whatever its atom order: a fixed seed, one thread, and the embedding and
MMFF94 run on a canonically numbered copy (``canonical.canonical_copy``: atoms and bonds)
whose coordinates are copied back onto the input's own atoms, so the returned atom order
(and ``molecule_fp``'s rows) stay the input's. ETKDG follows the order it is given: two
spellings of aspirin had different conformers, sharing 39 of 52 token entries. The time
limit can only turn a result into an error, never change its coordinates. A structure
file's own conformer never comes here.

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
- Time limit: a count alone does not bound the time, since one attempt on a long chain
  costs minutes (ETKDG work grows with the cube of the atom count). ``embed_timeout``
  (``EMBED_TIMEOUT``, 60 s; ``None`` = none) is a wall-clock budget for the whole embedding
  (both tries), handed to RDKit's ``EmbedParameters.timeout``; running out is a
  ``MoleculeError`` naming the limit, and the random-coordinates try is not started once the
  budget is spent. RDKit checks the clock between its stages, so a try can overrun by one
  stage (its bounds-matrix set-up, cubic in the atom count, is never interrupted); the
  heavy-atom cap (``policy.MAX_ATOMS``) is what keeps that stage short. The limit is a
  safety net far above what drug-like molecules need (well under a second), so their
  coordinates stay those of the seeded embedding, bit for bit; only a molecule near the
  limit can succeed on one machine and fail on a slower one.
- MMFF94 without parameters (most metals, some unusual valences): the ETKDGv3 geometry is
  kept unoptimised and a note says so (``require_mmff=True`` makes it an error instead).
  ETKDG geometries already have sensible bond lengths and angles, which is what E3FP's
  distance shells need; dropping every organometallic would be the worse default.
- MMFF94 not converged after ``mmff_max_iters`` steps (``MMFF_MAX_ITERS``, 2000): the last
  geometry is kept, with a note. A count, not a time limit: stopping a minimisation at a
  time would make coordinates depend on machine speed. Each step costs O(atoms^2), so the
  heavy-atom cap bounds it too.
"""

from __future__ import annotations

import math
import time

from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers
from rdkit.Geometry import Point3D

from .canonical import canonical_copy
from .errors import MoleculeError, as_notes, atom_names, first_line, rdkit_messages, with_messages

__all__ = [
    "CONFORMER_RULES", "ETKDG_SEED", "EMBED_ATTEMPTS", "EMBED_TIMEOUT", "MMFF_MAX_ITERS", "check_limits",
    "generate_conformer",
]

ETKDG_SEED = 0xDEE9
# Raised whenever the same input gets other coordinates (so other tokens) than before; the
# prepared-data manifest records it, so an output made under older rules is not reused
# (2: embedded on the canonically numbered copy; 1 embedded in the input's atom order).
CONFORMER_RULES = 2
EMBED_ATTEMPTS = 30  # per try; a count, so success never depends on speed for normal molecules
EMBED_TIMEOUT = 60  # seconds for the whole embedding: a safety net, not a budget normal molecules meet
MMFF_MAX_ITERS = 2000
_MMFF_ORGANIC = {"H", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Br", "I"}


_FAILURE_CAUSES = [  # names in the order of EmbedParameters.GetFailureCounts()
    name for name, value in sorted(rdDistGeom.EmbedFailureCauses.names.items(), key=lambda kv: int(kv[1]))
]
# RDKit >= 2025.03 stops an embedding at EmbedParameters.timeout; older ones only let the
# time limit be checked between our two tries.
_RDKIT_TIMEOUT = "EXCEEDED_TIMEOUT" in _FAILURE_CAUSES


def check_limits(embed_timeout: float | None, mmff_max_iters: int) -> None:
    """Reject nonsensical limits up front (a usage error, not a molecule's failure)."""
    if embed_timeout is not None and not 0 < embed_timeout < 2**31:  # RDKit: unsigned seconds
        raise ValueError(f"embed_timeout must be > 0 seconds (finite) or None, got {embed_timeout!r}")
    if isinstance(mmff_max_iters, bool) or not isinstance(mmff_max_iters, int) or mmff_max_iters < 1:
        raise ValueError(f"mmff_max_iters must be an integer >= 1, got {mmff_max_iters!r}")


def _etkdg(seed: int, random_coords: bool, together: bool) -> rdDistGeom.EmbedParameters:
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    params.numThreads = 1  # determinism and no oversubscription in worker pools
    params.maxIterations = EMBED_ATTEMPTS
    params.trackFailures = True
    params.useRandomCoords = random_coords
    params.embedFragmentsSeparately = not together
    return params


# Above this many open centres the stereoisomers are not counted (2**n SMILES to write)
# and the note is given as RDKit's perception says.
COUNTED_CENTRES = 10


def _one_stereoisomer(mol: Chem.Mol, centres: int) -> bool:
    """Whether the centres RDKit's perception leaves open make only one stereoisomer: cubane's
    eight carbons are "possible" centres to it, and the note said a generated conformer fixes
    one configuration of a molecule that has only one."""
    from rdkit.Chem.EnumerateStereoisomers import EnumerateStereoisomers, StereoEnumerationOptions

    if centres > COUNTED_CENTRES:
        return False
    options = StereoEnumerationOptions(onlyUnassigned=True, unique=True)
    # without the explicit hydrogens the embedding works on: with them, RDKit's canonical
    # SMILES told cubane's 128 equivalent assignments apart
    isomers = EnumerateStereoisomers(mol, options=options)
    return len({Chem.MolToSmiles(Chem.RemoveHs(isomer)) for isomer in isomers}) == 1


def _unassigned_note(work: Chem.Mol) -> list[str]:
    unassigned = [
        idx
        for idx, label in Chem.FindMolChiralCenters(
            work, includeUnassigned=True, useLegacyImplementation=False
        )
        if label == "?"
    ]
    if not unassigned or _one_stereoisomer(work, len(unassigned)):
        return []
    # named as every message names atoms (element, 1-based): RDKit's 0-based indices pointed
    # at the atom before the one meant
    return [
        f"stereocentres {atom_names(unassigned, work)} are unassigned: the generated conformer fixes "
        "one configuration for them"
    ]


def _embed(work: Chem.Mol, id: str, seed: int, together: bool, embed_timeout: float | None) -> list[str]:
    """Embed ``work`` in place (one conformer); returns notes. Raises ``MoleculeError``
    when no try succeeds or the time limit runs out first."""
    tries = [_etkdg(seed, together, together)]
    if not together:
        tries.append(_etkdg(seed, True, False))
    began = time.monotonic()
    deadline = None if embed_timeout is None else began + embed_timeout
    failures: dict[str, int] = {}
    conf_id, timed_out = -1, False
    with rdkit_messages() as messages:
        for attempt, params in enumerate(tries):
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if _RDKIT_TIMEOUT:
                    params.timeout = max(1, math.ceil(left))  # whole seconds; 0 would mean none
            try:
                conf_id = rdDistGeom.EmbedMolecule(work, params)
            except (RuntimeError, ValueError) as error:  # RDKit invariant violations
                reason = f"3D embedding failed: RDKit error: {first_line(error)}"
                raise MoleculeError(id, reason) from error
            if conf_id >= 0:
                break
            for cause, count in zip(_FAILURE_CAUSES, params.GetFailureCounts()):
                failures[cause] = failures.get(cause, 0) + count
            if failures.get("EXCEEDED_TIMEOUT"):
                timed_out = True
                break
    if conf_id < 0:
        raise MoleculeError(id, with_messages(_embed_failure(work, seed, together, embed_timeout,
                                                             timed_out, failures, time.monotonic() - began),
                                              messages))
    notes = ["ETKDGv3 needed random starting coordinates (second try)"] if attempt == 1 else []
    return notes + as_notes(messages)


def _embed_failure(work: Chem.Mol, seed: int, together: bool, embed_timeout: float | None,
                   timed_out: bool, failures: dict[str, int], seconds: float = 0.0) -> str:
    """The reason for a failed embedding: the time limit when it ran out, else the checks.
    The time it took is said when it overran the limit: RDKit checks its limit between its
    steps, and one step of a large molecule ran 109 s under a limit of 60 s, which the
    message named as if it had stopped there."""
    if timed_out:
        overran = f", after {seconds:.0f} s (RDKit checks the limit between its steps)" \
            if seconds > 1.2 * embed_timeout + 1 else ""
        return (
            f"3D embedding stopped at the time limit embed_timeout={embed_timeout:g} s{overran}: "
            f"ETKDGv3 (seed {seed:#x}) found no conformer in time for "
            f"{work.GetNumHeavyAtoms()} heavy atoms ({work.GetNumAtoms()} with hydrogens)"
        )
    causes = ", ".join(f"{c} x{n}" for c, n in sorted(failures.items(), key=lambda x: -x[1]) if n)
    how = "from random starting coordinates" if together else "also from random starting coordinates"
    return (
        f"3D embedding failed: ETKDGv3 (seed {seed:#x}) found no conformer in "
        f"{EMBED_ATTEMPTS} attempts, {how}" + (f" (failed checks: {causes})" if causes else "")
    )


def _optimise(work: Chem.Mol, id: str, require_mmff: bool, mmff_max_iters: int) -> list[str]:
    """MMFF94 in place, at most ``mmff_max_iters`` steps; returns notes. Without MMFF94
    parameters the ETKDGv3 geometry is kept (noted) unless ``require_mmff``."""
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
        note = (f"MMFF94 has no parameters for this molecule{what}: kept the unoptimised "
                "ETKDGv3 geometry")
        return [note] + as_notes(messages)
    with rdkit_messages() as messages:
        try:
            status = rdForceFieldHelpers.MMFFOptimizeMolecule(work, maxIters=mmff_max_iters)
        except (RuntimeError, ValueError) as error:
            reason = f"MMFF94 optimisation failed: RDKit error: {first_line(error)}"
            raise MoleculeError(id, reason) from error
    if status == -1:
        raise MoleculeError(id, with_messages("MMFF94 set-up failed", messages))
    notes = []
    if status == 1:
        notes.append(
            f"MMFF94 did not converge in mmff_max_iters={mmff_max_iters} iterations: "
            "kept the last geometry"
        )
    return notes + as_notes(messages)


def generate_conformer(
    mol: Chem.Mol,
    id: str,
    seed: int = ETKDG_SEED,
    require_mmff: bool = False,
    embed_timeout: float | None = EMBED_TIMEOUT,
    mmff_max_iters: int = MMFF_MAX_ITERS,
) -> tuple[Chem.Mol, list[str]]:
    """Return ``(new molecule with explicit hydrogens and exactly one 3D conformer, notes)``.

    ``mol`` is not modified. Raises ``MoleculeError`` when embedding fails or runs out of
    ``embed_timeout`` seconds (``None``: no limit), or when ``require_mmff`` is set and
    MMFF94 has no parameters for the molecule. MMFF94 stops after ``mmff_max_iters`` steps.
    """
    check_limits(embed_timeout, mmff_max_iters)
    work = Chem.AddHs(Chem.Mol(mol), addCoords=False)
    work.RemoveAllConformers()
    n_fragments = len(Chem.GetMolFrags(work))
    together = n_fragments > 1
    notes = _unassigned_note(work)
    # Embedded and optimised in canonical atom and bond order, the coordinates copied back
    # to the input's atoms: the same conformer for any spelling of one SMILES. (RDKit's own
    # messages, passed on as notes, number atoms in the canonical copy.)
    canon, order = canonical_copy(work)
    notes.extend(_embed(canon, id, seed, together, embed_timeout))
    if together:
        notes.append(
            f"{n_fragments} fragments embedded together; their relative placement is "
            "arbitrary (deterministic for a given seed)"
        )
    notes.extend(_optimise(canon, id, require_mmff, mmff_max_iters))
    positions = canon.GetConformer().GetPositions()
    conformer = Chem.Conformer(work.GetNumAtoms())
    for new, old in enumerate(order):
        conformer.SetAtomPosition(old, Point3D(*map(float, positions[new])))
    conformer.Set3D(True)
    work.AddConformer(conformer, assignId=True)
    return work, notes
