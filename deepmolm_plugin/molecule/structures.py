"""Read molecules with their own coordinates, and apply the explicit 3D policy.

Inputs (file format from the suffix; ``read_structures`` yields one item per record):

==========  ===============================================================================
``.sdf``    MDL V2000 and V3000, any number of ``$$$$``-separated records (``.mol``, ``.sd``
``.mol``    the same reader). Record id: the title line, else ``file#index``.
``.mol2``   Tripos MOL2, records start at ``@<TRIPOS>MOLECULE``. Id: the molecule name.
``.xyz``    One or more frames (count line, comment line, ``symbol x y z`` lines); bonds,
            bond orders and formal charges perceived by RDKit's ``rdDetermineBonds``
            (needs the hydrogens). Total charge 0 unless the comment holds ``charge=N``.
            Element symbols are case-insensitive; ``D``/``T`` are hydrogen isotopes.
``.pdb``    One molecule per file (first MODEL). Bonds and bond orders from the CONECT
            records (RDKit writes a double bond as a repeated CONECT pair); a PDB without
            CONECT records gets bonds perceived from coordinates, as for XYZ.
``.smi``    One ``SMILES [id]`` per line; blank lines and ``#`` comments skipped; a first
``.txt``    line whose first word is ``smiles`` is a header. Id: the second word, else
            ``file#line``.
``.csv``    Column ``smiles`` (any case); id from the first of ``id, name, cid,
            compound_id`` (any case), else ``file#row``.
==========  ===============================================================================

``molecule_from_smiles`` and ``molecule_from_atoms`` (the 3D-MoIT form: element list +
coordinates, optionally with the record's SMILES) build single records. Coordinates
without any hydrogen need a SMILES (bond orders cannot be perceived without them); with
hydrogens, all of them must be there (they are matched too). Files are read as UTF-8;
bytes that are not (in titles or data fields) become U+FFFD. SDF, SMILES and CSV files
are streamed.

Coordinates stay attached to their own atoms: the molecule is always built from the
structure itself, never by re-parsing a SMILES and assigning coordinates by index. When a
record carries both (``molecule_from_atoms(..., smiles=...)``, or ``smiles_field`` for
SDF), the SMILES graph is matched onto the coordinate graph (elements + connectivity) and
every mapped atom's element is checked; any disagreement fails the record. For atom lists
the SMILES then supplies bond orders and charges, mapped onto the coordinate atoms.

3D policy (``policy=``):

- ``from-file``: use the file's conformer. A 2D one or none (SMILES) is an error for
  that record. 2D means what the source declares as RDKit reads it: a molfile whose
  header says ``2D`` (or nothing) and whose z are all 0. XYZ, PDB, MOL2 and atom arrays
  are 3D formats, so a planar molecule in the xy plane (common for DFT geometries) stays
  3D. A molfile flagged ``3D`` with all z = 0 is taken as 3D unless a carbon has four
  neighbours (a depiction with a wrong flag: no sp3 carbon is planar).
- ``generate``: always a fresh conformer (``conformer.generate_conformer``: ETKDGv3 with a
  fixed seed, then MMFF94; deterministic). File stereo is kept (read from the 3D
  coordinates or 2D wedges first). Its work is bounded: ``embed_timeout`` seconds of
  embedding (``EMBED_TIMEOUT``, 60; ``None`` = no limit; running out fails the record,
  naming the limit) and ``mmff_max_iters`` MMFF94 steps (``MMFF_MAX_ITERS``, 2000).
- ``auto`` (default): the file's conformer when it is 3D, else generate; the record says
  which (``record.conformer`` is ``'file'`` or ``'generated'``, and a note says why).
- ``keep``: no 3D handling at all (conformer as read, possibly flat or absent;
  ``record.conformer`` is ``'file'`` or ``'none'``). For drawing, not for fingerprints.

Defined behaviours:

- Salts and fragments: ``fragments='all'`` (default) keeps every fragment: the depiction
  shows them, and DeepMoLM fingerprinted floating ions (``exclude_floating`` off).
  ``fragments='largest'`` keeps the fragment with the most heavy atoms (first on ties) and
  notes what was dropped. Heavy-atom order within the kept fragment is preserved.
- Charges and isotopes: kept as given (see ``fingerprint.py`` for their effect on tokens).
- Explicit hydrogens: kept as the source had them (``removeHs=False``); conformer
  generation adds the missing ones. Tokens are per heavy atom either way.
- Metals: read like any atom (RDKit's valence rules apply); generated conformers of
  molecules MMFF94 cannot parameterise keep the ETKDGv3 geometry, with a note.
- Size: ``max_atoms`` caps *heavy* atoms (the token rows), ``MAX_ATOMS`` = 256 by default
  (DeepMoLM's registry cap); ``None`` lifts it. Every builder applies it here, so data
  preparation, the command-line tools, training records, chat and evaluation all get it.
  Why a default: conformer work grows with the cube of the atom count (a 400-carbon chain
  ran for more than five minutes without an end in sight), so one huge record could stall
  a whole run. ``too_large='error'`` (default) fails the record before any conformer work,
  naming the count and the cap; ``'truncate'`` keeps the record, sets ``record.keep_atoms``
  so ``fingerprint_record`` emits only the first ``max_atoms`` rows, and notes how many
  were dropped (the whole molecule is still embedded: truncation does not bound the work).
- Bad records: a ``MoleculeError`` naming the record and the reason (RDKit's own message
  included): unparseable text, sanitisation/valence errors, no atoms, no heavy atoms,
  dummy atoms, non-finite coordinates, overlapping atoms, a truncated record, a count line
  that disagrees with the atom lines, a SMILES that does not match the coordinates. A file
  with no records at all is one error. ``read_structures`` yields the error and goes on
  with the next record (``errors='raise'`` raises it instead).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds
from rdkit.Geometry import Point3D

from .conformer import EMBED_TIMEOUT, MMFF_MAX_ITERS, check_limits, generate_conformer
from .errors import MoleculeError, as_notes, rdkit_messages, with_messages
from .fingerprint import check_coordinates, conformer_is_3d

__all__ = [
    "MAX_ATOMS",
    "POLICIES",
    "SUFFIXES",
    "MoleculeRecord",
    "read_structures",
    "molecule_from_smiles",
    "molecule_from_atoms",
]

POLICIES = ("auto", "from-file", "generate", "keep")
MAX_ATOMS = 256  # heavy atoms per molecule, as DeepMoLM's registry; None lifts the cap
SUFFIXES = (".sdf", ".sd", ".mol", ".mol2", ".xyz", ".pdb", ".smi", ".txt", ".csv")


@dataclass
class MoleculeRecord:
    """One molecule with exactly one conformer (unless ``conformer == 'none'``).

    ``mol`` keeps hydrogens as the source had them (plus any that conformer generation
    added); ``source`` is ``path#index``, ``'smiles'`` or ``'atoms'``; ``conformer`` is
    ``'file'``, ``'generated'`` or ``'none'``; ``notes`` lists everything done to the input
    that a reader of the data should know; ``keep_atoms`` is the token-row cap set by
    ``too_large='truncate'``.
    """

    id: str
    mol: Chem.Mol
    source: str
    conformer: str
    notes: list[str] = field(default_factory=list)
    keep_atoms: int | None = None

    @property
    def num_heavy_atoms(self) -> int:
        return self.mol.GetNumHeavyAtoms()


# ---------------------------------------------------------------------------------------
# Shared finishing steps: checks, fragments, size cap, 3D policy.


def _check_options(policy: str, max_atoms: int | None, too_large: str, fragments: str,
                   embed_timeout: float | None, mmff_max_iters: int) -> None:
    """Usage errors (``ValueError``) up front, before any record is read."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if max_atoms is not None and (isinstance(max_atoms, bool) or not isinstance(max_atoms, int)
                                  or max_atoms < 1):
        raise ValueError(f"max_atoms must be an integer >= 1 or None, got {max_atoms!r}")
    if too_large not in ("error", "truncate"):
        raise ValueError(f"too_large must be 'error' or 'truncate', got {too_large!r}")
    if fragments not in ("all", "largest"):
        raise ValueError(f"fragments must be 'all' or 'largest', got {fragments!r}")
    check_limits(embed_timeout, mmff_max_iters)


def _sanitize(mol: Chem.Mol, id: str) -> list[str]:
    """Sanitise in place; returns RDKit's warnings as notes (its errors raise)."""
    with rdkit_messages() as messages:
        try:
            Chem.SanitizeMol(mol)
        except Chem.MolSanitizeException as error:  # the exception carries the message
            raise MoleculeError(id, f"sanitization failed: {error}") from error
    return as_notes(messages)


def _is_3d(mol: Chem.Mol) -> bool:
    return mol.GetNumConformers() > 0 and conformer_is_3d(mol)


def _largest_fragment(mol: Chem.Mol, notes: list[str]) -> Chem.Mol:
    frags = Chem.GetMolFrags(mol, asMols=False)
    if len(frags) < 2:
        return mol
    heavy = [sum(mol.GetAtomWithIdx(i).GetAtomicNum() > 1 for i in f) for f in frags]
    keep = int(np.argmax(heavy))  # first on ties
    pieces = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    dropped = [Chem.MolToSmiles(p) for i, p in enumerate(pieces) if i != keep]
    notes.append(
        f"kept the largest of {len(frags)} fragments ({heavy[keep]} heavy atoms); "
        f"dropped {', '.join(dropped)}"
    )
    out = Chem.Mol(pieces[keep])
    if mol.HasProp("_Name"):
        out.SetProp("_Name", mol.GetProp("_Name"))
    return out


def _finish(
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
    """Common checks, the size cap and the 3D policy for a parsed, sanitised molecule.

    Every builder ends here, so the cap and the conformer limits hold for every caller."""
    if mol.GetNumAtoms() == 0:
        raise MoleculeError(id, "no atoms")
    dummies = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if dummies:
        raise MoleculeError(id, f"dummy/query atoms {dummies}: not a concrete structure")
    if mol.GetNumConformers() > 0:
        positions = mol.GetConformer().GetPositions()  # [atoms, 3]
        bad = np.where(~np.isfinite(positions).all(axis=1))[0]
        if len(bad):
            raise MoleculeError(id, f"non-finite coordinates for atoms {bad.tolist()[:10]}")
        if mol.GetNumConformers() > 1:
            notes.append(f"file has {mol.GetNumConformers()} conformers: used the first")
            keep = Chem.Conformer(mol.GetConformer())
            mol.RemoveAllConformers()
            mol.AddConformer(keep, assignId=True)
    if fragments == "largest":
        mol = _largest_fragment(mol, notes)
    elif len(Chem.GetMolFrags(mol)) > 1:
        notes.append(f"{len(Chem.GetMolFrags(mol))} fragments, all kept")
    n_heavy = mol.GetNumHeavyAtoms()
    if n_heavy == 0:
        raise MoleculeError(id, "no heavy atoms: E3FP tokens are per heavy atom")

    keep_atoms = _size_cap(id, n_heavy, max_atoms, too_large, notes)
    has_coords = mol.GetNumConformers() > 0
    is_3d = _is_3d(mol)
    if is_3d:
        Chem.AssignStereochemistryFrom3D(mol)  # chiral tags follow the geometry
    if policy == "keep":
        conformer = "file" if has_coords else "none"
    elif policy == "from-file" or (policy == "auto" and is_3d):
        if not has_coords:
            raise MoleculeError(id, f"no coordinates: policy {policy!r} needs a 3D structure")
        if not is_3d:
            raise MoleculeError(
                id,
                "conformer is 2D (a depiction): policy 'from-file' does not fingerprint it "
                "as 3D; use policy 'auto' or 'generate'",
            )
        check_coordinates(mol.GetConformer().GetPositions(), id)
        conformer = "file"
    else:
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
        conformer = "generated"
    return MoleculeRecord(id, mol, source, conformer, notes, keep_atoms)


def _size_cap(id: str, n_heavy: int, max_atoms: int | None, too_large: str,
              notes: list[str]) -> int | None:
    """``record.keep_atoms`` for a molecule of ``n_heavy`` heavy atoms: None under the cap,
    the cap when truncating (noted); over the cap with ``too_large='error'`` it fails the
    record before any conformer work, naming the count and the cap."""
    if max_atoms is None or n_heavy <= max_atoms:
        return None
    if too_large == "error":
        raise MoleculeError(
            id,
            f"too large: {n_heavy} heavy atoms > max_atoms={max_atoms} (the heavy-atom cap; "
            "raise it with max_atoms / --max-atoms, 'none' lifts it)",
        )
    notes.append(
        f"truncated: tokens for the first {max_atoms} of {n_heavy} heavy atoms "
        f"({n_heavy - max_atoms} dropped, max_atoms={max_atoms})"
    )
    return max_atoms


# ---------------------------------------------------------------------------------------
# SMILES and the SMILES <-> coordinates mapping.


def _parse_smiles(smiles: str, id: str) -> tuple[Chem.Mol, list[str]]:
    """(sanitised molecule, RDKit warnings as notes)."""
    if not smiles or not smiles.strip():
        raise MoleculeError(id, "empty SMILES")
    with rdkit_messages() as messages:
        mol = Chem.MolFromSmiles(smiles.strip(), sanitize=False)
    if mol is None:
        raise MoleculeError(id, with_messages(f"unparseable SMILES {smiles!r}", messages))
    return mol, as_notes(messages) + _sanitize(mol, id)


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


def _map_smiles(target: Chem.Mol, template: Chem.Mol, id: str, with_h: bool) -> list[int]:
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
                id, f"SMILES atom {s_atom} is {a.GetSymbol()}, coordinate atom {b.GetIdx()} "
                f"is {b.GetSymbol()}"
            )
    return full


def _stereo_note(mol: Chem.Mol, template: Chem.Mol, mapping: list[int]) -> list[str]:
    """Note stereocentres where the SMILES and the 3D geometry disagree (geometry wins)."""
    want = dict(Chem.FindMolChiralCenters(template, useLegacyImplementation=False))
    have = dict(Chem.FindMolChiralCenters(mol, useLegacyImplementation=False))
    differ = [mapping[i] for i, label in want.items() if have.get(mapping[i], label) != label]
    if differ:
        return [f"stereocentres {differ} differ from the SMILES; the coordinates are used"]
    return []


# ---------------------------------------------------------------------------------------
# Public builders.


def molecule_from_smiles(
    smiles: str,
    id: str | None = None,
    policy: str = "auto",
    max_atoms: int | None = MAX_ATOMS,
    too_large: str = "error",
    fragments: str = "all",
    source: str = "smiles",
    embed_timeout: float | None = EMBED_TIMEOUT,
    mmff_max_iters: int = MMFF_MAX_ITERS,
) -> MoleculeRecord:
    """A record from a SMILES string: ``auto``/``generate`` embed a conformer, ``keep``
    leaves it without one, ``from-file`` is an error (a SMILES has no coordinates)."""
    options = dict(policy=policy, max_atoms=max_atoms, too_large=too_large, fragments=fragments,
                   embed_timeout=embed_timeout, mmff_max_iters=mmff_max_iters)
    _check_options(**options)
    id = smiles if id is None else id
    mol, notes = _parse_smiles(smiles, id)
    return _finish(mol, id, source, notes, **options)


_ELEMENTS = {
    Chem.GetPeriodicTable().GetElementSymbol(z).lower(): (z, 0) for z in range(1, 119)
}
_ELEMENTS.update({"d": (1, 2), "t": (1, 3)})


def _element(symbol, id: str) -> tuple[int, int]:
    """(atomic number, isotope) from a symbol (any case, D/T allowed) or an atomic number."""
    if isinstance(symbol, (int, np.integer)) and 1 <= int(symbol) <= 118:
        return int(symbol), 0
    key = str(symbol).strip().lower()
    if key not in _ELEMENTS:
        raise MoleculeError(id, f"unknown element {symbol!r}")
    return _ELEMENTS[key]


def molecule_from_atoms(
    elements: Sequence,
    coords,
    id: str,
    smiles: str | None = None,
    charge: int = 0,
    policy: str = "auto",
    max_atoms: int | None = MAX_ATOMS,
    too_large: str = "error",
    fragments: str = "all",
    source: str = "atoms",
    embed_timeout: float | None = EMBED_TIMEOUT,
    mmff_max_iters: int = MMFF_MAX_ITERS,
) -> MoleculeRecord:
    """A record from element symbols (or atomic numbers) and coordinates ``[N, 3]``.

    Without ``smiles``: bonds, bond orders and charges perceived with
    ``rdDetermineBonds.DetermineBonds`` (total charge ``charge``; needs the hydrogens).
    With ``smiles``: connectivity perceived from the coordinates, the SMILES graph mapped
    onto it and verified element by element (a mismatch fails the record), then bond
    orders, charges and isotopes copied from the SMILES through that mapping. Atom order
    and coordinates are the input's, always.
    """
    options = dict(policy=policy, max_atoms=max_atoms, too_large=too_large, fragments=fragments,
                   embed_timeout=embed_timeout, mmff_max_iters=mmff_max_iters)
    _check_options(**options)
    return _from_atoms(elements, coords, id, smiles, charge, source, [], **options)


def _from_atoms(elements, coords, id, smiles, charge, source, notes: list[str],
                **options) -> MoleculeRecord:
    """``molecule_from_atoms`` after the option check; ``options`` go to ``_finish``."""
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise MoleculeError(id, f"coordinates must be [atoms, 3], got shape {coords.shape}")
    if len(elements) != len(coords):
        raise MoleculeError(
            id, f"{len(elements)} elements but {len(coords)} coordinate rows"
        )
    if len(elements) == 0:
        raise MoleculeError(id, "no atoms")
    bad = np.where(~np.isfinite(coords).all(axis=1))[0]
    if len(bad):
        raise MoleculeError(id, f"non-finite coordinates for atoms {bad.tolist()[:10]}")
    check_coordinates(coords, id)

    rw = Chem.RWMol()
    conf = Chem.Conformer(len(elements))
    for i, (symbol, xyz) in enumerate(zip(elements, coords)):
        z, isotope = _element(symbol, id)
        atom = Chem.Atom(z)
        atom.SetIsotope(isotope)
        rw.AddAtom(atom)
        conf.SetAtomPosition(i, Point3D(*map(float, xyz)))
    conf.Set3D(True)
    rw.AddConformer(conf, assignId=True)
    mol = rw.GetMol()
    has_h = any(a.GetAtomicNum() == 1 for a in mol.GetAtoms())

    with rdkit_messages() as messages:
        try:
            if smiles is None:
                rdDetermineBonds.DetermineBonds(mol, charge=int(charge), embedChiral=False)
            else:
                rdDetermineBonds.DetermineConnectivity(mol)
        except (ValueError, RuntimeError) as error:
            hint = "" if has_h else " (no hydrogens in the coordinates: pass smiles=)"
            raise MoleculeError(
                id, with_messages(f"bond perception failed: {error}{hint}", messages)
            ) from error
    notes.extend(as_notes(messages))

    if smiles is None:
        notes.append(f"bonds perceived from coordinates (total charge {int(charge)})")
        notes.extend(_sanitize(mol, id))
    else:
        template, template_notes = _parse_smiles(smiles, id)
        notes.extend(template_notes)
        if has_h:
            template = Chem.AddHs(template)
        mapping = _map_smiles(mol, template, id, with_h=has_h)
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
        notes.extend(_sanitize(mol, id))
        Chem.AssignStereochemistryFrom3D(mol)
        notes.append("SMILES verified against the coordinates atom by atom")
        notes.extend(_stereo_note(mol, _parse_smiles(smiles, id)[0], mapping))
    mol.SetProp("_Name", str(id))
    return _finish(mol, id, source, notes, **options)


# ---------------------------------------------------------------------------------------
# File readers. SDF, SMILES and CSV files are streamed (data sets can be large); the
# others are read whole. Bytes that are not UTF-8 (titles, data fields) become U+FFFD.


def sdf_blocks(lines: Iterator[str]) -> Iterator[str]:
    """Record texts of an SDF, split on ``$$$$`` lines; a trailing unterminated record counts."""
    block: list[str] = []
    for line in lines:
        if line.strip() == "$$$$":
            yield "".join(block)
            block = []
        else:
            block.append(line)
    if "".join(block).strip():
        yield "".join(block)


def _title(mol: Chem.Mol | None, fallback: str) -> str:
    if mol is not None and mol.HasProp("_Name") and mol.GetProp("_Name").strip():
        return mol.GetProp("_Name").strip()
    return fallback


def _parse_sdf_block(block: str, fallback: str) -> tuple[str, Chem.Mol, list[str]]:
    """(id, unsanitised molecule, RDKit warnings as notes) of one MOL block."""
    if not block.strip():
        raise MoleculeError(fallback, "empty record")
    title = block.splitlines()[0].strip() or fallback
    supplier = Chem.SDMolSupplier()
    with rdkit_messages() as messages:
        text = block.rstrip("\n") + "\n$$$$\n"
        supplier.SetData(text, sanitize=False, removeHs=False, strictParsing=True)
        mol = next(supplier, None)
    if mol is None:
        raise MoleculeError(title, with_messages("unparseable MOL/SDF record", messages))
    if not any(line.strip() == "M  END" for line in block.splitlines()):
        raise MoleculeError(title, "truncated record: no 'M  END' line")
    return _title(mol, fallback), mol, as_notes(messages)


def _sdf_records(lines: Iterator[str], name: str):
    """Yields (index, id, sanitised molecule or MoleculeError, notes)."""
    for i, block in enumerate(sdf_blocks(lines)):
        fallback = f"{name}#{i}"
        try:
            id, mol, notes = _parse_sdf_block(block, fallback)
            yield i, id, mol, notes + _sanitize(mol, id)
        except MoleculeError as error:
            yield i, error.id, error, []


def _mol2_records(text: str, name: str):
    """Yields (index, id, sanitised molecule or MoleculeError, notes)."""
    blocks = re.split(r"(?m)^(?=@<TRIPOS>MOLECULE)", text)
    head, blocks = blocks[0], blocks[1:]
    if head.strip() and not head.lstrip().startswith("#"):
        id = f"{name}#header"
        yield None, id, MoleculeError(id, "text before the first @<TRIPOS>MOLECULE"), []
    for i, block in enumerate(blocks):
        lines = block.splitlines()
        id = lines[1].strip() if len(lines) > 1 and lines[1].strip() else f"{name}#{i}"
        with rdkit_messages() as messages:
            mol = Chem.MolFromMol2Block(block, sanitize=False, removeHs=False)
        if mol is None:
            yield i, id, MoleculeError(id, with_messages("unparseable MOL2 record", messages)), []
            continue
        try:
            yield i, id, mol, as_notes(messages) + _sanitize(mol, id)
        except MoleculeError as error:
            yield i, id, error, []


_CHARGE = re.compile(r"\bcharge\s*=\s*([+-]?\d+)", re.IGNORECASE)


def _is_atom_line(line: str) -> bool:
    words = line.split()
    try:
        [float(w) for w in words[1:4]]
    except ValueError:
        return False
    return len(words) >= 4


def _xyz_frames(text: str, name: str):
    """Yields (index, id, (elements, coords [N, 3], charge)) or (index, id, MoleculeError).

    A count line that disagrees with the atom lines fails that frame and stops reading:
    the next frame boundary cannot be trusted after it.
    """
    lines = text.splitlines()
    pos, index = 0, 0
    while pos < len(lines):
        if not lines[pos].strip():
            pos += 1
            continue
        id = f"{name}#{index}"
        try:
            count = int(lines[pos].split()[0])
        except ValueError:
            yield index, id, MoleculeError(
                id, f"line {pos + 1}: expected an atom count, got {lines[pos].strip()[:40]!r}"
            )
            return
        comment = lines[pos + 1] if pos + 1 < len(lines) else ""
        body = lines[pos + 2 : pos + 2 + count]
        pos += 2 + count
        found = sum(_is_atom_line(b) for b in body)
        extra = 0
        while pos + extra < len(lines) and _is_atom_line(lines[pos + extra]):
            extra += 1
        if found != count or extra:
            yield index, id, MoleculeError(
                id, f"count line says {count} atoms, found {found + extra} atom lines"
            )
            return
        elements = [b.split()[0] for b in body]
        coords = np.array([[float(v) for v in b.split()[1:4]] for b in body])  # [N, 3]
        match = _CHARGE.search(comment)
        yield index, id, (elements, coords, int(match.group(1)) if match else 0)
        index += 1


def _pdb_record(text: str, name: str) -> tuple[str, Chem.Mol | tuple, list[str]]:
    """(id, sanitised mol, notes) when CONECT records exist, else
    (id, (elements, coords, charge), notes)."""
    id = f"{name}#0"
    with rdkit_messages() as messages:
        mol = Chem.MolFromPDBBlock(text, sanitize=False, removeHs=False, proximityBonding=False)
    if mol is None or mol.GetNumAtoms() == 0:
        raise MoleculeError(id, with_messages("no atoms read from PDB", messages))
    id = _title(mol, id)
    notes = as_notes(messages)
    if any(line.startswith("CONECT") for line in text.splitlines()):
        return id, mol, notes + _sanitize(mol, id)
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    coords = mol.GetConformer().GetPositions()
    return id, (elements, coords, sum(a.GetFormalCharge() for a in mol.GetAtoms())), notes


def _smiles_rows(handle, suffix: str, name: str):
    """Yields (index, id, smiles) from .smi/.txt lines or .csv rows."""
    if suffix == ".csv":
        reader = csv.DictReader(handle)
        columns = {c.lower(): c for c in reader.fieldnames or []}
        if "smiles" not in columns:
            raise MoleculeError(name, f"CSV has no 'smiles' column (columns: {reader.fieldnames})")
        id_column = next((columns[c] for c in ("id", "name", "cid", "compound_id") if c in columns), None)
        for i, row in enumerate(reader):
            id = (row.get(id_column) or "").strip() if id_column else ""
            yield i, id or f"{name}#{i}", row[columns["smiles"]] or ""
        return
    for i, line in enumerate(handle):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if i == 0 and words[0].lower() == "smiles":
            continue
        yield i, (" ".join(words[1:]) or f"{name}#{i}"), words[0]


def read_structures(
    path,
    policy: str = "auto",
    max_atoms: int | None = MAX_ATOMS,
    too_large: str = "error",
    fragments: str = "all",
    smiles_field: str | None = None,
    errors: str = "yield",
    embed_timeout: float | None = EMBED_TIMEOUT,
    mmff_max_iters: int = MMFF_MAX_ITERS,
) -> Iterator[MoleculeRecord | MoleculeError]:
    """Yield one ``MoleculeRecord`` (or ``MoleculeError``) per record of ``path``.

    ``errors='yield'`` (default) yields a bad record's error and continues with the next
    record, as batch tools need; ``errors='raise'`` raises it. ``smiles_field`` names an
    SDF data field holding the record's SMILES, verified against the file's graph.
    """
    options = dict(policy=policy, max_atoms=max_atoms, too_large=too_large, fragments=fragments,
                   embed_timeout=embed_timeout, mmff_max_iters=mmff_max_iters)
    _check_options(**options)
    if errors not in ("yield", "raise"):
        raise ValueError(f"errors must be 'yield' or 'raise', got {errors!r}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown structure format {suffix!r}; known: {SUFFIXES}")
    seen = 0
    for index, item in _records(path, suffix, smiles_field, options):
        seen += 1
        if isinstance(item, MoleculeError):
            if item.source is None:
                item.source = str(path) if index is None else f"{path}#{index}"
            if errors == "raise":
                raise item
        yield item
    if seen == 0:
        error = MoleculeError(path.name, "file contains no molecules", source=str(path))
        if errors == "raise":
            raise error
        yield error


def _records(path: Path, suffix: str, smiles_field: str | None, options: dict):
    """Yields (record index or None, MoleculeRecord | MoleculeError)."""
    name = path.name
    try:
        handle = open(path, encoding="utf-8", errors="replace", newline="" if suffix == ".csv" else None)
    except OSError as error:
        yield None, MoleculeError(name, f"cannot read {path}: {error.strerror or error}")
        return

    def finish(index, id, mol, notes=()):
        if isinstance(mol, MoleculeError):
            return mol
        try:
            if mol.GetNumConformers() == 0 and suffix in (".sdf", ".sd", ".mol", ".mol2"):
                raise MoleculeError(id, "record has no coordinates")
            return _finish(mol, id, f"{path}#{index}", list(notes), **options)
        except MoleculeError as error:
            return error

    def build(index, id, elements, coords, charge, notes=()):
        try:
            return _from_atoms(elements, coords, id, None, charge, f"{path}#{index}", list(notes),
                               **options)
        except MoleculeError as error:
            return error

    with handle:
        if suffix in (".sdf", ".sd", ".mol"):
            for index, id, mol, notes in _sdf_records(handle, name):
                if smiles_field and not isinstance(mol, MoleculeError):
                    try:
                        notes += _verify_field(mol, id, smiles_field)
                    except MoleculeError as error:
                        mol = error
                yield index, finish(index, id, mol, notes)
        elif suffix == ".mol2":
            for index, id, mol, notes in _mol2_records(handle.read(), name):
                yield index, finish(index, id, mol, notes)
        elif suffix == ".xyz":
            for index, id, frame in _xyz_frames(handle.read(), name):
                yield index, frame if isinstance(frame, MoleculeError) else build(index, id, *frame)
        elif suffix == ".pdb":
            try:
                id, parsed, notes = _pdb_record(handle.read(), name)
            except MoleculeError as error:
                yield 0, error
                return
            if isinstance(parsed, tuple):
                yield 0, build(0, id, *parsed, notes=notes)
            else:
                yield 0, finish(0, id, parsed, notes)
        else:  # .smi .txt .csv
            try:
                for index, id, smiles in _smiles_rows(handle, suffix, name):
                    try:
                        record = molecule_from_smiles(smiles, id, source=f"{path}#{index}", **options)
                    except MoleculeError as error:
                        yield index, error
                    else:
                        yield index, record
            except MoleculeError as error:  # CSV without a smiles column
                yield None, error


def _verify_field(mol: Chem.Mol, id: str, smiles_field: str) -> list[str]:
    if not mol.HasProp(smiles_field):
        raise MoleculeError(id, f"SDF field {smiles_field!r} missing")
    template, _ = _parse_smiles(mol.GetProp(smiles_field), id)
    _map_smiles(mol, template, id, with_h=False)
    return [f"SDF field {smiles_field!r} verified against the file's atoms"]
