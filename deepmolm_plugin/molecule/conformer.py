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
  stereocentres and E/Z double bonds get whatever configuration the seeded embedding
  produces; a note says so (``_unassigned_note``).
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
- Ctrl-C: RDKit's embedding takes SIGINT itself, stops and returns -1 as if it had failed;
  its log line says so and ``KeyboardInterrupt`` is raised, with no second try (was: a false
  "3D embedding failed", or the random-coordinates try's other conformer). Where the time
  limit had also run out by the check that found the Ctrl-C, RDKit reports the time limit
  only: its Ctrl-C flag, seen while it ran, still makes it ``KeyboardInterrupt`` (was: the
  record written as a time-limit failure and the batch going on; ``errors.rdkit_step``). RDKit
  checks both between its stages, so the stop can come a whole stage (seconds to minutes for
  a molecule near the heavy-atom cap) after the Ctrl-C. In a process that
  ignores SIGINT (deepmolm-prepare's workers) the cut-short try is made again
  (``errors.rdkit_step``). MMFF94 leaves SIGINT to Python, which raises ``KeyboardInterrupt``
  when it returns. Both put Python's handler back with restart semantics, so on leaving
  the ``errors.rdkit_messages`` capture both run in Python's own is installed again
  (``errors.python_sigint_again``): a Ctrl-C at the chat CLI's prompt did nothing until Enter.
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
import os
import re
import sys
import tempfile
import time
from typing import Callable

from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers
from rdkit.Geometry import Point3D

from .bonds import bonds
from .canonical import canonical_copy
from .errors import (MoleculeError, as_notes, atom_names, bond_name, first_line, rdkit_messages,
                     rdkit_step, untyped_atoms, with_messages)

__all__ = [
    "CONFORMER_RULES", "ETKDG_SEED", "EMBED_ATTEMPTS", "EMBED_TIMEOUT", "MMFF_MAX_ITERS", "check_limits",
    "generate_conformer",
]

ETKDG_SEED = 0xDEE9
# Raised whenever the same input gets other coordinates (so other tokens) than before; the
# prepared-data manifest records it, so an output made under older rules is not reused
# (6: the canonical copy is numbered without isotopes, canonical._ranks, so a 13C or D label
# that creates no stereocentre or stereo bond no longer gives another embedding: other tokens
# for isotope-labelled molecules with a generated conformer. A label that creates stereo, written
# with its configuration (C[C@H]([2H])CCCCO, [2H]/C=C/CCCCO, [13CH3][C@H](C)CCO), is embedded
# under that configuration's ETKDG constraints, so its heavy-atom geometry may differ from the
# unlabelled molecule's; 5: a file conformer that is a 2D layout in any orientation, checks.conformer_is_3d, is
# generated, no longer used flat; copies of one molecule are kept by shape, not file order;
# 4: a SMILES beside coordinates, matching.py: its written [H] atoms folded into hydrogen
# counts, and a symmetric group's charges and bond orders placed in the SMILES' atom order,
# not by float noise: other tokens for such atom lists; 3: the canonical numbering no longer
# reads enhanced stereo groups, so `|&1:1,3|` is embedded
# as the plain spelling; 2: embedded on the canonically numbered copy; 1 embedded in the
# input's atom order; 7: a charge-separated hypervalent bond, `C[S+](C)[O-]`, embedded and
# fingerprinted in its neutral form, hypervalent.py: other tokens for such spellings; 8: "either"
# stereo marks (a molfile's crossed double bond or wavy bond, CXSMILES `|w:|`) dropped when read,
# finish.py: RDKit's canonical ranking read them, so ETKDG embedded another atom order; and a
# charge resonance shares between equal terminal atoms, a carboxylate's, placed by the
# conformer, shared_charges.py: the same coordinates gave other tokens per spelling).
CONFORMER_RULES = 8
EMBED_ATTEMPTS = 30  # per try; a count, so success never depends on speed for normal molecules
EMBED_TIMEOUT = 60  # seconds for the whole embedding: a safety net, not a budget normal molecules meet
MMFF_MAX_ITERS = 2000
# a row of the atom-type table MMFFGetMoleculeProperties prints (verbosity 2): `P  #2   0  ...`,
# type 0 being an atom MMFF94 could not type
_MMFF_TABLE_ROW = re.compile(r"^\s*[A-Z][a-z]?\s+#(\d+)\s+(\d+)\s", re.M)


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


# Above this many open centres and double bonds the stereoisomers are not counted (2**n
# SMILES to write) and the note is given as RDKit's perception says.
COUNTED_CENTRES = 10
# Rings of up to this many atoms make a bridged system rigid: its bridgeheads' configurations
# are fixed relative to each other (an "in" bridgehead, pointing into the cage, needs bridges
# of rings of 10 atoms and more: in,out-bicyclo[4.4.4]tetradecane).
RIGID_RING = 8
_TETRAHEDRAL = (Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW)


def _open_stereo(work: Chem.Mol) -> tuple[list[int], list[Chem.Bond], int]:
    """(stereocentres, E/Z double bonds, all open stereo elements) that the input leaves
    unassigned (no @/@@, no / \\, or a wavy bond: RDKit's "unknown"), as RDKit's perception
    (``FindPotentialStereo``) finds them; the same elements ``EnumerateStereoisomers`` flips.
    Double bonds whose ends have one substituent twice (CH2=, (CH3)2C=) or lie in a ring of
    fewer than 8 atoms are none. Cumulated double bonds are counted but not named: an allene's
    stereo is axial, not E/Z of one bond."""
    found = [si for si in Chem.FindPotentialStereo(Chem.Mol(work))
             if si.specified != Chem.StereoSpecified.Specified]
    atoms = [si.centeredOn for si in found if si.type == Chem.StereoType.Atom_Tetrahedral]
    every = bonds(work)
    double = [every[si.centeredOn] for si in found if si.type == Chem.StereoType.Bond_Double]

    def cumulated(atom) -> bool:
        return sum(b.GetBondType() == Chem.BondType.DOUBLE for b in atom.GetBonds()) > 1

    return atoms, [b for b in double if not (cumulated(b.GetBeginAtom()) or cumulated(b.GetEndAtom()))], len(found)


def _cumulenes(work: Chem.Mol) -> list[list[int]]:
    """The atoms of each stereogenic cumulene: a chain of two or more cumulated double bonds
    whose two ends each carry two different substituents. With an even number of double
    bonds it is an axis (`CC=C=CC`, penta-2,3-diene: chiral), with an odd number a planar
    E/Z unit (`CC=C=C=CC`). RDKit encodes neither (a written `@` or `/ \\` is dropped;
    ``sanitize.note_axial_stereo`` notes the `@`), so such a unit is always open and the
    generated conformer fixes one of its two configurations (it got no note)."""
    ranks = list(Chem.CanonicalRankAtoms(work, breakTies=False))

    def doubles(atom) -> list[Chem.Bond]:
        return [b for b in atom.GetBonds() if b.GetBondType() == Chem.BondType.DOUBLE]

    def differ(end, inner) -> bool:  # two substituents besides the chain, told apart by symmetry class
        others = [ranks[n.GetIdx()] for n in end.GetNeighbors() if n.GetIdx() != inner]
        others += ["H"] * end.GetTotalNumHs()  # hydrogens not in the graph
        return len(others) == 2 and others[0] != others[1] and others.count("H") < 2

    found = []
    for start in work.GetAtoms():
        if len(doubles(start)) != 1:
            continue
        chain = [start.GetIdx(), doubles(start)[0].GetOtherAtomIdx(start.GetIdx())]
        while len(doubles(here := work.GetAtomWithIdx(chain[-1]))) == 2 and here.GetDegree() == 2:
            chain.append(next(b.GetOtherAtomIdx(here.GetIdx()) for b in doubles(here)
                              if b.GetOtherAtomIdx(here.GetIdx()) != chain[-2]))
        end = work.GetAtomWithIdx(chain[-1])
        if (len(chain) >= 3 and chain[0] < chain[-1] and len(doubles(end)) == 1
                and differ(start, chain[1]) and differ(end, chain[-2])):
            found.append(chain)
    return found


def _isomer_count(mol: Chem.Mol, stop: int = 2) -> int:
    """Distinct SMILES of the stereoisomers the open elements of ``mol`` make, up to ``stop``
    (the callers ask "only one?": counting on wrote a SMILES for each of up to 2**10 isomers,
    15 s for ten open double bonds in a 181-atom molecule), counted without the explicit
    hydrogens and the conformer the embedding works on: with the hydrogens, RDKit's
    canonical SMILES told cubane's 128 equivalent assignments apart."""
    from rdkit.Chem.EnumerateStereoisomers import EnumerateStereoisomers, StereoEnumerationOptions

    params = Chem.RemoveHsParameters()
    # RDKit's "not removing hydrogen atom without neighbors" (a salt's H+) reached stderr naming
    # no record; the lone H is the fingerprint's failure to name (`fingerprint.check_lone_hydrogens`)
    params.showWarnings = False
    mol = Chem.RemoveHs(mol, params)
    mol.RemoveAllConformers()
    options = StereoEnumerationOptions(onlyUnassigned=True, unique=True)
    seen: set[str] = set()
    for isomer in EnumerateStereoisomers(mol, options=options):
        seen.add(Chem.MolToSmiles(isomer))
        if len(seen) >= stop:
            break
    return len(seen)


def _rigid_frames(mol: Chem.Mol) -> list[list[int]]:
    """The bridgeheads of each bridged ring system of rings of up to ``RIGID_RING`` atoms: two
    rings sharing two bonds or more (a bridge), the ends of the shared path. One list per
    system (rings joined by bridges), so that two norbornyl groups of one molecule stay apart."""
    rings = [set(ring) for ring in mol.GetRingInfo().BondRings() if len(ring) <= RIGID_RING]
    every = bonds(mol)
    system = list(range(len(rings)))  # union-find over the rings

    def root(i: int) -> int:
        while system[i] != i:
            i = system[i]
        return i

    heads: dict[int, set[int]] = {}
    for i in range(len(rings)):
        for j in range(i + 1, len(rings)):
            shared = rings[i] & rings[j]
            if len(shared) < 2:
                continue
            ends = [a for b in shared for a in (every[b].GetBeginAtomIdx(), every[b].GetEndAtomIdx())]
            system[root(j)] = root(i)
            heads.setdefault(i, set()).update(a for a in ends if ends.count(a) == 1)
    frames: dict[int, set[int]] = {}
    for i, atoms in heads.items():
        frames.setdefault(root(i), set()).update(atoms)
    return [sorted(atoms) for atoms in frames.values()]


def _one_stereoisomer(work: Chem.Mol, flips: int) -> bool:
    """Whether the ``flips`` open stereo elements of ``work`` (with its generated conformer)
    make only one stereoisomer: cubane's eight carbons are "possible" centres to RDKit's
    perception, and the note said a generated conformer fixes one configuration of a
    molecule that has only one.

    Counted as distinct SMILES, once with each element flipped alone and, where that gives
    more than one and the molecule has rigid bridged ring systems (``_rigid_frames``), again
    with each system's bridgeheads as the conformer has them, flipped together only: one
    bridgehead of norbornane flipped alone is a SMILES no geometry can have, and its two
    bridgeheads got the note. Enhanced stereo groups are left out: they are no open element."""
    if flips > COUNTED_CENTRES:
        return False
    mol = Chem.RWMol(work)
    mol.SetStereoGroups([])
    for item in (*mol.GetAtoms(), *bonds(mol)):
        # a wavy bond's mark: the SMILES writer leaves the stereo it touches out, so both
        # configurations of `CC=CC |w:0.0|` were written `CC=CC` and counted as one
        item.ClearProp("_UnknownStereo")
    if _isomer_count(mol) == 1:
        return True
    frames = _rigid_frames(mol)
    if not frames:
        return False
    from_3d = Chem.Mol(work)
    Chem.AssignStereochemistryFrom3D(from_3d)
    for atom in (a for frame in frames for a in frame):
        mol.GetAtomWithIdx(atom).SetChiralTag(from_3d.GetAtomWithIdx(atom).GetChiralTag())
    tagged = [[a for a in frame if mol.GetAtomWithIdx(a).GetChiralTag() in _TETRAHEDRAL] for frame in frames]
    mol.SetStereoGroups([Chem.CreateStereoGroup(Chem.StereoGroupType.STEREO_AND, mol, frame)
                         for frame in tagged if frame])
    return _isomer_count(mol) == 1


def _unassigned_note(work: Chem.Mol) -> list[str]:
    """The note on open stereo that the generated conformer (on ``work``) fixes, naming the
    stereocentres, E/Z double bonds and cumulenes; no centres or double bonds where they
    make one stereoisomer only."""
    work = Chem.Mol(work)
    # a parsed SMILES holds its E/Z in the single bonds' / \\ only, which RDKit's perception
    # does not read: `C/C=C/C` was open to it
    Chem.SetBondStereoFromDirections(work)
    atoms, double, flips = _open_stereo(work)
    cumulenes = _cumulenes(work)
    if (atoms or double) and _one_stereoisomer(work, flips):
        atoms, double = [], []
    if not (atoms or double or cumulenes):
        return []
    # named as every message names atoms (element, 1-based): RDKit's 0-based indices pointed
    # at the atom before the one meant
    parts = [f"stereocentre{'s' * (len(atoms) > 1)} {atom_names(atoms, work)}"] if atoms else []
    if double:
        more = f" and {len(double) - 10} more" if len(double) > 10 else ""
        parts.append(f"double bond{'s' * (len(double) > 1)} {', '.join(bond_name(b, '=') for b in double[:10])}{more}"
                     " (E/Z)")
    for chain in cumulenes:  # 3 atoms: an allene's axis; 4: a butatriene's E/Z; ...
        kind = "axial" if len(chain) % 2 else "E/Z"
        parts.append(f"cumulene {'='.join(atom_names([i], work) for i in chain)} ({kind}; RDKit encodes none)")
    several = len(atoms) + len(double) + len(cumulenes) > 1
    return [f"{' and '.join(parts)} {'are' if several else 'is'} unassigned: the generated conformer fixes one "
            f"configuration for {'them' if several else 'it'}"]


def _embed(work: Chem.Mol, id: str, seed: int, together: bool, embed_timeout: float | None,
           name: Callable[[int], str]) -> tuple[list[str], list[int]]:
    """Embed ``work`` in place (one conformer); returns (notes, the atoms of ``work`` UFF has
    no type for: ``_untyped_note`` says what that means). Raises ``MoleculeError`` when no try
    succeeds or the time limit runs out first. ``name``: RDKit's atom indices in its messages
    as the user finds them (``_canonical_names``)."""
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
                # a Ctrl-C that EmbedMolecule took (it returns -1): KeyboardInterrupt, no retry
                conf_id = rdkit_step(lambda: rdDistGeom.EmbedMolecule(work, params), messages)
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
                                              messages, name))
    notes = ["ETKDGv3 needed random starting coordinates (second try)"] if attempt == 1 else []
    _, rest = untyped_atoms(messages)  # the typer's lines: said by _untyped_note, from RDKit's typing
    return notes + as_notes(rest, name), uff_untyped(work)


def uff_untyped(work: Chem.Mol) -> list[int]:
    """The atoms of ``work`` RDKit's UFF typer gives no atom type (no UFF van der Waals
    parameters). Was: every atom its log named, "Unrecognized charge state" too, which only
    warns: the P of PF6- is typed (UFFHasAllMoleculeParams is True; P-F bounds 1.664-1.684 A)."""
    with rdkit_messages():  # the typer logs again; _embed already kept its lines
        if rdForceFieldHelpers.UFFHasAllMoleculeParams(work):
            return []
        return [a.GetIdx() for a in work.GetAtoms()
                if rdForceFieldHelpers.GetUFFVdWParams(work, a.GetIdx(), a.GetIdx()) is None]


def _radii_bonded(work: Chem.Mol, atom: Chem.Atom) -> bool:
    """Whether ETKDGv3 bounded a bond of ``atom`` from covalent radii: UFF has no stretch
    parameters for it (RDKit's GetUFFBondStretchParams)."""
    with rdkit_messages():
        return any(rdForceFieldHelpers.GetUFFBondStretchParams(work, atom.GetIdx(), n.GetIdx()) is None
                   for n in atom.GetNeighbors())


def mmff_untyped(work: Chem.Mol) -> list[int]:
    """The atoms of ``work`` MMFF94 gives no atom type: RDKit says which only in the table
    MMFFGetMoleculeProperties prints to the C stdout (verbosity 2), so that table is read from
    a temporary file that fd 1 points at during the call (restored in ``finally``). Empty
    when the table has no untyped row."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+b") as table:
        try:
            os.dup2(table.fileno(), 1)
            with rdkit_messages():
                rdForceFieldHelpers.MMFFGetMoleculeProperties(work, mmffVerbosity=2)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        table.seek(0)
        text = table.read().decode(errors="replace")
    return [int(number) - 1 for number, kind in _MMFF_TABLE_ROW.findall(text) if kind == "0"]


def _free_words(names: list[str], atoms: list, one: bool) -> str:
    """`it is a free ion`, `He1 is a free atom`, `Fe1 (Fe3+), U2 are free ions or atoms`:
    ion or atom from the formal charge (was: "a free ion" for neutral [He] and [U])."""
    charged = {bool(a.GetFormalCharge()) for a in atoms}
    kind = "ion" if charged == {True} else "atom" if charged == {False} else "ion or atom"
    if one:
        return f"it is a free {kind}"
    if len(names) == 1:
        return f"{names[0]} is a free {kind}"
    return f"{', '.join(names)} are free {kind}s"


def _untyped_note(work: Chem.Mol, untyped: list[int], name: Callable[[int], str], optimised: bool,
                  mmff_missing: list[int]) -> list[str]:
    """What it means for the conformer that RDKit's UFF typer gave no type to atoms of ``work``
    (``uff_untyped``; a metal ion: Fe3+, Gd3+, Pt2+): ETKDGv3 takes the bond-length bounds of
    its embedding from UFF, and where UFF has no bond parameters from covalent radii (within
    about 10%: Pt-Cl was bounded 2.14-2.62 A, 1.36 + 1.02 A +- 10%); a free ion has no bonds to
    bound. ``mmff_missing``: the atoms MMFF94 could not type (``mmff_untyped``).
    Was: RDKit's own line, "UFFTYPER: Unrecognized atom type: Fe2+2 (atom Fe1)", naming Fe3+
    by UFF's internal type name; and "MMFF94 has none either (next note)" whatever MMFF typed."""
    if not untyped:
        return []
    from .sanitize import ion_name

    atoms = [work.GetAtomWithIdx(i) for i in untyped]

    def named(atom) -> str:  # `Fe1 (Fe3+)`: the ion the typer had no type for, not its "Fe2+2"
        return name(atom.GetIdx()) + (f" ({ion_name(atom)})" if atom.GetFormalCharge() else "")

    radii = [named(a) for a in atoms if a.GetDegree() and _radii_bonded(work, a)]
    bonded = [named(a) for a in atoms if a.GetDegree() and not _radii_bonded(work, a)]
    free = [named(a) for a in atoms if not a.GetDegree()]
    one = len(atoms) == 1  # "it"; several are named in each part
    parts = []
    if radii:
        parts.append(f"the bonds to {'it' if one else ', '.join(radii)} got lengths from covalent radii (within "
                     "about 10%) instead")
    if bonded:
        parts.append(f"{'it' if one else ', '.join(bonded)} has UFF parameters for its bonds all the same")
    if free:
        parts.append(f"{_free_words(free, [a for a in atoms if not a.GetDegree()], one)} (no bonds), so the "
                     "embedding did not need one")
    with_bonds = [a.GetIdx() for a in atoms if a.GetDegree()]
    then = ""
    if optimised:
        then = "; MMFF94, which has parameters for it, then optimised the geometry"
    elif with_bonds and set(with_bonds) <= set(mmff_missing):
        # the next note is _optimise's, naming the atoms MMFF94 could not type
        then = f"; MMFF94 has no atom type for {'it' if one else 'them'} either (next note)"
    return [f"UFF, the force field ETKDGv3 takes bond lengths from while embedding, has no atom type for "
            f"{' / '.join(radii + bonded + free)} as written: {'; '.join(parts)}{then}"]


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


def _optimise(work: Chem.Mol, id: str, require_mmff: bool, mmff_max_iters: int,
              name: Callable[[int], str]) -> tuple[list[str], bool, list[int]]:
    """MMFF94 in place, at most ``mmff_max_iters`` steps; returns (notes, whether it ran, the
    atoms MMFF94 could not type). Without MMFF94 parameters the ETKDGv3 geometry is kept
    (noted) unless ``require_mmff``. ``name``: as ``_embed``'s."""
    with rdkit_messages() as messages:
        try:
            has_params = rdForceFieldHelpers.MMFFHasAllMoleculeParams(work)
        except (RuntimeError, ValueError) as error:
            reason = f"MMFF94 typing failed: RDKit error: {first_line(error)}"
            raise MoleculeError(id, reason) from error
    if not has_params:
        # was: " (elements Li)", any element outside H C N O F Si P S Cl Br I, though MMFF94
        # types Li+ and not the P of PF6-: now the atoms RDKit's MMFF typer left untyped
        missing = mmff_untyped(work)
        what = (f" (no atom type for {', '.join(name(i) for i in missing[:10])}"
                f"{f' and {len(missing) - 10} more' if len(missing) > 10 else ''})" if missing else "")
        if require_mmff:
            raise MoleculeError(
                id, with_messages(f"MMFF94 has no parameters for this molecule{what}", messages, name)
            )
        note = (f"MMFF94 has no parameters for this molecule{what}: kept the unoptimised "
                "ETKDGv3 geometry")
        return [note] + as_notes(messages, name), False, missing
    with rdkit_messages() as messages:
        try:
            status = rdForceFieldHelpers.MMFFOptimizeMolecule(work, maxIters=mmff_max_iters)
        except (RuntimeError, ValueError) as error:
            reason = f"MMFF94 optimisation failed: RDKit error: {first_line(error)}"
            raise MoleculeError(id, reason) from error
    if status == -1:
        raise MoleculeError(id, with_messages("MMFF94 set-up failed", messages, name))
    notes = []
    if status == 1:
        notes.append(
            f"MMFF94 did not converge in mmff_max_iters={mmff_max_iters} iterations: "
            "kept the last geometry"
        )
    return notes + as_notes(messages, name), True, []


def _canonical_names(work: Chem.Mol, order: list[int], given: int) -> Callable[[int], str]:
    """How an atom of the canonical copy (``canonical_copy(work)``'s ``order``) is named to the
    user: as ``atom_names`` names the input's atoms (its first ``given`` atoms), and a hydrogen
    that ``Chem.AddHs`` appended, which no SMILES or file shows, by the atom it sits on. RDKit's
    UFF typer named "atom 8" of the renumbered copy with hydrogens for the Pt2 of `Cl[Pt](Cl)(N)N`."""
    def name(index: int) -> str:
        atom = work.GetAtomWithIdx(order[index])
        if atom.GetIdx() < given or not atom.GetDegree():
            return atom_names([atom.GetIdx()], work)
        return f"H added to {atom_names([atom.GetNeighbors()[0].GetIdx()], work)}"

    return name


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
    notes: list[str] = []
    # Embedded and optimised in canonical atom and bond order, the coordinates copied back
    # to the input's atoms: the same conformer for any spelling of one SMILES. (RDKit's own
    # messages number atoms in the canonical copy: ``name`` names them as the input's.)
    # Numbered as the unlabelled molecule (isotopes=False): a 13C or D that creates no stereo
    # changes no geometry; one that creates stereo keeps its written configuration, which ETKDG
    # embeds under (not removed: the conformer would contradict the input's stereo)
    canon, order = canonical_copy(work, isotopes=False)
    name = _canonical_names(work, order, mol.GetNumAtoms())
    embed_notes, untyped = _embed(canon, id, seed, together, embed_timeout, name)
    notes.extend(embed_notes)
    if together:
        notes.append(
            f"{n_fragments} fragments embedded together; their relative placement is "
            "arbitrary (deterministic for a given seed)"
        )
    mmff_notes, optimised, mmff_missing = _optimise(canon, id, require_mmff, mmff_max_iters, name)
    notes.extend(_untyped_note(canon, untyped, name, optimised, mmff_missing) + mmff_notes)
    positions = canon.GetConformer().GetPositions()
    conformer = Chem.Conformer(work.GetNumAtoms())
    for new, old in enumerate(order):
        conformer.SetAtomPosition(old, Point3D(*map(float, positions[new])))
    conformer.Set3D(True)
    work.AddConformer(conformer, assignId=True)
    # first among the notes, as before; after the embedding, which counting the stereoisomers
    # of a bridged molecule reads
    return work, _unassigned_note(work) + notes
