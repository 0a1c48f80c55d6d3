"""Single records: ``molecule_from_smiles`` and ``molecule_from_atoms`` (3D-MoIT's form).

``molecule_from_atoms`` takes element symbols (or atomic numbers) and coordinates, and
optionally the record's SMILES. Coordinates without any hydrogen need a SMILES (bond
orders cannot be perceived without them: it is an error, not another molecule); with
hydrogens, all of them must be there (they are matched too, ``matching.py``; perceived
bonds that leave a radical are an error). Element symbols are case-insensitive; ``D``/``T``
are hydrogen isotopes. Both builders end in ``finish.finish`` (checks, fragments, size
cap, 3D policy), as the file readers do.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds
from rdkit.Geometry import Point3D

from .bonds import bonds
from .checks import (NONMETALS, check_coordinates, check_perceived_orders, close_pairs, flat_centre,
                     tetrahedral_carbons)
from .conformer import EMBED_TIMEOUT, MMFF_MAX_ITERS
from .errors import MoleculeError, as_notes, atom_names, one_based, rdkit_messages, rdkit_step, with_messages
from .finish import finish
from .matching import apply_smiles
from .policy import MAX_ATOMS, check_options, early_cap, size_cap
from .record import MoleculeRecord
from .sanitize import parse_smiles, sanitize

__all__ = ["from_atoms", "from_smiles", "molecule_from_atoms", "molecule_from_smiles"]


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
    check_options(**options)
    return from_smiles(smiles, smiles if id is None else id, source, **options)


def from_smiles(smiles: str, id: str, source: str, **options) -> MoleculeRecord:
    """``molecule_from_smiles`` after the option check; ``options`` go to ``finish``."""
    mol, notes = parse_smiles(smiles, id, early_cap(**options))  # a 20,000-atom ring: 52 s of sanitising
    return finish(mol, id, source, notes, **options)


_ELEMENTS = {
    Chem.GetPeriodicTable().GetElementSymbol(z).lower(): (z, 0) for z in range(1, 119)
}
_ELEMENTS.update({"d": (1, 2), "t": (1, 3)})


def _element(symbol, id: str) -> tuple[int, int]:
    """(atomic number, isotope) from a symbol (any case, D/T allowed) or an atomic number
(an int, or digits as text)."""
    if isinstance(symbol, (int, np.integer)) and not isinstance(symbol, bool) and 1 <= int(symbol) <= 118:
        return int(symbol), 0
    if not isinstance(symbol, str):  # True would be hydrogen, 6.0 carbon: say what was meant
        raise MoleculeError(id, f"unknown element {symbol!r}: give a symbol or an atomic number 1..118")
    key = symbol.strip().lower()
    if key.isdigit() and 1 <= int(key) <= 118:  # XYZ writers that give atomic numbers ("6 0.0 0.0 0.0")
        return int(key), 0
    if key not in _ELEMENTS:
        raise MoleculeError(id, f"unknown element {symbol!r}")
    return _ELEMENTS[key]


def molecule_from_atoms(
    elements: Sequence,
    coords,
    id: str,
    smiles: str | None = None,
    charge: int | None = None,
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
    ``rdDetermineBonds.DetermineBonds`` (total charge ``charge``, 0 when None; needs the
    hydrogens). With ``smiles``: connectivity perceived from the coordinates, the SMILES
    graph mapped onto it and verified element by element (a mismatch fails the record),
    then bond orders, charges and isotopes copied from the SMILES through that mapping; a
    ``charge`` given as well must be the SMILES' total charge (it was ignored: acetate's
    coordinates with charge -1 and the acid's SMILES became the neutral acid). Atom order
    and coordinates are the input's, always.
    """
    options = dict(policy=policy, max_atoms=max_atoms, too_large=too_large, fragments=fragments,
                   embed_timeout=embed_timeout, mmff_max_iters=mmff_max_iters)
    check_options(**options)
    return from_atoms(elements, coords, id, smiles, charge, source, [], **options)


def _coordinates(coords, id: str) -> np.ndarray:
    """``coords`` as a float ``[N, 3]`` array; text or nested objects are an error, not a crash."""
    try:
        array = np.asarray(coords, dtype=float)  # [N, 3]
    except (TypeError, ValueError) as error:
        raise MoleculeError(id, f"coordinates must be numbers [atoms, 3]: {error}") from error
    if array.ndim != 2 or array.shape[1] != 3:
        raise MoleculeError(id, f"coordinates must be [atoms, 3], got shape {array.shape}")
    return array


def _charge(charge, id: str) -> int | None:
    """The total charge as an int (None: not stated): 0.7 must not silently become 0, nor
    True become 1."""
    if charge is None:
        return None
    if isinstance(charge, (int, np.integer)) and not isinstance(charge, bool):
        return int(charge)
    if isinstance(charge, float) and charge.is_integer():
        return int(charge)
    if isinstance(charge, str) and charge.strip().lstrip("+-").isdigit():
        return int(charge)
    raise MoleculeError(id, f"total charge must be an integer, got {charge!r}")


# Angstrom: no two atoms of a molecule are closer; the shortest bond, H2's, is 0.74 A. Most
# atoms this close to another is a molecule in nanometres (water's O-H: 0.096).
CLOSEST_BOND = 0.5
# RDKit's DetermineConnectivity bonds two atoms closer than this times the sum of their
# covalent radii (its covFactor); real bonds measure 0.77-1.2 times it, and in bohr 1.45-2.3.
BONDING_FACTOR = 1.3
# Elements that, in a record whose coordinates hold its hydrogens, are never without a bonded
# neighbour: every compound bonds them (a lone metal, halide or noble-gas atom is an ion or an
# atom of its own: `[Na+].[Cl-]` a solvent-separated pair; a hydride H- is an ion too). In
# heavy-atom coordinates a one-atom fragment has none (the O of a water dimer, `C.O`).
_ALWAYS_BONDED = NONMETALS - {1, 9, 17, 35, 53}


def check_units(mol: Chem.Mol, id: str, smiles: str | None = None) -> None:
    """``MoleculeError`` for an atom list whose coordinates are not in angstrom, before bond
    perception: in nanometres (most atoms closer than ``CLOSEST_BOND`` to another) or in bohr
    (no two atoms within bonding distance, ``BONDING_FACTOR``, while some atom is one that
    is always bonded, `_ALWAYS_BONDED`, and some bond is due: the coordinates hold
    hydrogens, or the `smiles` given with heavy-atom coordinates bonds two heavy atoms; a
    water dimer's two O, or `C.O`, given without hydrogens bond to nothing). Perception failed on both with RDKit's "Unable to
    determine valence of atom 0 with atomic number 8 and 0 bonds", or the SMILES check
    with "the coordinates imply 0" bonds, neither saying why. A single atom, separate ions
    (`[Na+].[Cl-]` at any distance), metal complexes and salts at contact distance pass:
    one bonded pair, or no always-bonded atom, is enough. Uses ``checks.close_pairs``."""
    n = mol.GetNumAtoms()
    if n < 2:
        return
    positions = mol.GetConformer().GetPositions()  # [N, 3]
    pairs = close_pairs(positions, CLOSEST_BOND)  # [P, 2]
    if len(np.unique(pairs)) > n / 2:
        lengths = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=-1)  # [P]
        i, j = pairs[int(np.argmin(lengths))].tolist()
        raise MoleculeError(id, f"atoms {atom_names([i], mol)} and {atom_names([j], mol)} are {lengths.min():.3g} A "
                                f"apart, and {len(np.unique(pairs))} of {n} atoms are closer than {CLOSEST_BOND} A to "
                                "another (no bond is shorter than 0.74 A): are the coordinates in nanometres? they "
                                "must be in angstrom")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])  # [N]
    always = [i for i in range(n) if z[i] in _ALWAYS_BONDED]
    if not always or not (1 in z or _bonds_heavy_atoms(smiles)):
        return
    if len(_bonding_pairs(positions, z)):
        return
    i = always[0]
    j, nearest = _nearest(positions, i)
    raise MoleculeError(id, f"{atom_names([i], mol)} has no atom within bonding distance (nearest {nearest:.3g} A, "
                            f"{atom_names([j], mol)}), nor has any other atom: are the coordinates in bohr? they must "
                            "be in angstrom")


def _nearest(positions: np.ndarray, i: int) -> tuple[int, float]:
    """(index, distance in angstrom) of the atom nearest to atom ``i``. positions: [N, 3]."""
    distance = np.linalg.norm(positions - positions[i], axis=-1)  # [N]
    distance[i] = np.inf
    j = int(np.argmin(distance))
    return j, float(distance[j])


def _bonding_pairs(positions: np.ndarray, z: np.ndarray) -> np.ndarray:
    """[P, 2] index pairs i < j of atoms within bonding distance (``BONDING_FACTOR`` times the
    sum of their covalent radii), as RDKit's DetermineConnectivity bonds them. positions:
    [N, 3]; z: [N] atomic numbers."""
    table = Chem.GetPeriodicTable()
    radii = np.array([table.GetRcovalent(int(e)) for e in z])  # [N]
    pairs = close_pairs(positions, BONDING_FACTOR * 2 * radii.max())  # [P, 2] candidates
    lengths = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=-1)  # [P]
    return pairs[lengths < BONDING_FACTOR * (radii[pairs[:, 0]] + radii[pairs[:, 1]])]


def _ring_diagonals(pairs: np.ndarray, n: int) -> np.ndarray:
    """[P] bool: which of the contacts ``pairs`` ([P, 2] atom indices, of ``n`` atoms) join
    two atoms that share two contact neighbours: the diagonal of a four-membered ring, a
    contact across the ring, not a bond (a bond's two atoms share at most one neighbour in
    anything but bicyclobutane-like cages, where leaving the bond out only spares a test)."""
    near = [set() for _ in range(n)]
    for i, j in pairs.tolist():
        near[i].add(j)
        near[j].add(i)
    return np.array([len(near[i] & near[j]) >= 2 for i, j in pairs.tolist()], dtype=bool)


def check_cross_ring_bonds(mol: Chem.Mol, id: str) -> None:
    """``MoleculeError`` for a molecule whose bonds, perceived from coordinates, put a carbon
    with four bonds in one plane with them (``checks.flat_centre``): perception bonded
    across a planar four-membered ring, whose diagonal lies within bonding distance. Was:
    [3]phenylene and tetramethylcyclobutadiene were read, silently, as tetrahedranes."""
    positions = mol.GetConformer().GetPositions()  # [N, 3]
    centre = flat_centre(mol, positions, tetrahedral_carbons(mol))
    if centre is None:
        return
    atom = mol.GetAtomWithIdx(centre)
    mine = {n.GetIdx() for n in atom.GetNeighbors()}
    across = [n.GetIdx() for n in atom.GetNeighbors()
              if len(mine & {m.GetIdx() for m in n.GetNeighbors()}) >= 2]  # shares two neighbours: a diagonal
    if not across:
        raise MoleculeError(id, f"bond perception gave carbon {atom_names([centre], mol)} four bonds in one plane, "
                                f"which no 3D structure has; {_BONDS_FROM}")
    # in the tetrahedrane every pair shares two neighbours: the diagonal is its longest bond
    distance, other = max((float(np.linalg.norm(positions[centre] - positions[j])), j) for j in across)
    raise MoleculeError(id, f"bond perception bonded {atom_names([centre], mol)} and {atom_names([other], mol)} "
                            f"across a four-membered ring ({distance:.3g} A apart, within bonding distance), which "
                            f"leaves carbon {atom_names([centre], mol)} four bonds in one plane: not the molecule "
                            f"(a cyclobutadiene read as a tetrahedrane); {_BONDS_FROM}")


# Angstrom: an atom list whose atoms all lie this close to their best-fit plane is flat. A
# 2D layout written as XYZ measures 0 (or its z rounding noise, 0.002); a molecule with any
# tetrahedral centre has an atom at least 0.3 A out of every plane (a C-H's 1.09 A x 1/3).
FLAT_EXTENT = 0.05


def check_flat_atoms(mol: Chem.Mol, id: str) -> None:
    """``MoleculeError`` for an atom list (hydrogens included) that is a 2D drawing, before
    bond perception, which took its stretched C-H bonds (1.5 A in RDKit's layouts) for none
    and failed blaming a lone H+ ("drop it with --fragments largest", which then
    fingerprinted neopentyl alcohol as its alkoxide). Two proofs, either enough:

    - a carbon with four non-metal atoms within bonding distance (``_bonding_pairs``: all
      its neighbours, as the file holds its hydrogens; a four-membered ring's diagonal,
      ``_ring_diagonals``, is not one) that lies in one plane with them
      (``checks.flat_centre``, the test that makes a molfile conformer 2D);
    - all atoms in one plane (``FLAT_EXTENT``) and a hydrogen with no atom within bonding
      distance: a planar molecule (benzene, water) is planar in 3D too, but its hydrogens
      are bonded."""
    positions = mol.GetConformer().GetPositions()  # [N, 3]
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])  # [N]
    pairs = _bonding_pairs(positions, z)  # [P, 2]
    # Contacts with metals are left out: Na+ sits within "bonding distance" in the plane of
    # the carboxylate it chelates, which made sodium acetate's sp2 carbon a flat C with four.
    covalent = pairs[np.isin(z[pairs], list(NONMETALS)).all(axis=1)]  # [Q, 2]
    # A planar four-membered ring's diagonal is within bonding distance (biphenylene's C...C:
    # 1.97 A against 1.98; thiete's C...S): counted, it made an sp2 ring carbon a flat carbon
    # with four, and real 3D biphenylene, thiete or silacyclobutene "a 2D drawing".
    covalent = covalent[~_ring_diagonals(covalent, len(z))]
    linked = Chem.RWMol(mol)
    for i, j in covalent.tolist():
        linked.AddBond(i, j, Chem.BondType.SINGLE)
    degree = np.bincount(covalent.ravel(), minlength=len(z))  # [N]
    centre = flat_centre(linked, positions, np.flatnonzero((z == 6) & (degree == 4)))
    if centre is not None:
        raise MoleculeError(id, f"the coordinates are a 2D drawing, not 3D: tetrahedral carbon "
                                f"{atom_names([centre], mol)} lies in one plane with its 4 neighbours, which no 3D "
                                "structure has; give 3D coordinates, or the molecule as a SMILES or SDF")
    centred = positions - positions.mean(axis=0)  # [N, 3]
    normal = np.linalg.svd(centred)[2][-1]  # [3] the direction the atoms spread least along
    extent = float(np.abs(centred @ normal).max())  # farthest atom from their best-fit plane
    lone = np.setdiff1d(np.flatnonzero(z == 1), pairs.ravel())  # hydrogens bonded to nothing
    if len(z) > 3 and extent < FLAT_EXTENT and len(lone):
        h = int(lone[0])
        near, distance = _nearest(positions, h)
        raise MoleculeError(id, f"the coordinates are flat (all atoms in one plane) and {atom_names([h], mol)} is "
                                f"bonded to no atom (nearest {atom_names([near], mol)}, {distance:.3g} A): a 2D "
                                "drawing, not 3D; give 3D coordinates, or the molecule as a SMILES or SDF")


# What record files and the command-line tools need told, each a sentence of its own that the
# GUI (gui.app.PAGE_WORDS) drops: its page has a SMILES box and no records. Was a parenthesis
# inside the advice, which reached the page ("a record's `smiles` ...; deepmolm-fingerprint and
# deepmolm-render take none") past the GUI's rewording of "pass smiles=".
SMILES_IN_RECORDS = ("In a record file the SMILES is the record's `smiles`, beside its structure; "
                     "deepmolm-fingerprint and deepmolm-render take none.")
CHARGE_IN_RECORDS = "In a record file the charge is the record's `charge`."
# What an atom list whose bonds cannot be perceived needs, in the words of every tool (the GUI
# rewrites "pass smiles=" and drops SMILES_IN_RECORDS).
_BONDS_FROM = f"give it as SDF or MOL2 (formats with bonds), or pass smiles=. {SMILES_IN_RECORDS}"
_NOBLE_GASES = frozenset((2, 10, 18, 36, 54, 86))


def _perception_failed(mol: Chem.Mol, error: Exception, smiles: str | None, stated: int | None) -> str:
    """The reason for a failed bond perception, with what to do. Was RDKit's words alone:
    "Atom 0 with atomic number 78 has no valences defined" for cisplatin, or "Final molecular
    charge (0) does not match input (-2)" for sodium benzoate, whose file said charge 0."""
    metals = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() not in NONMETALS | _NOBLE_GASES]
    if smiles is None and metals:  # RDKit's perception has no valence rules for metals: its words misled
        return (f"bond perception failed at metal atom(s) {atom_names(metals, mol)}: bonds and charges of metal "
                f"complexes and salts cannot be perceived from coordinates; {_BONDS_FROM}")
    odd = _odd_electrons(mol, stated) if smiles is None else None
    if odd is not None:
        return odd
    total = "" if smiles is not None else f" with total charge {stated or 0}"
    hint = ""
    if smiles is None and stated is None:
        hint = ("; if the molecule is charged, state its total charge: `charge=-1` on the XYZ comment line. "
                f"{CHARGE_IN_RECORDS}")
    return f"bond perception{total} failed: {one_based(str(error))}{_diagonal_hint(mol)}{hint}"


# What a radical, whose unpaired electron bond perception cannot place, is given as instead
_RADICAL_AS = ("give it as SDF or MOL with its bond orders (the radical marked, M  RAD), or as a SMILES "
               "(`CC1(C)CCCC(C)(C)N1[O]` for TEMPO)")


def _odd_electrons(mol: Chem.Mol, stated: int | None) -> str | None:
    """The reason for a failed perception when the atoms, at the total charge used, hold an
    odd number of electrons: no structure pairs them all, so the molecule is a radical (or an
    ion whose charge was not stated). None for an even count. Was RDKit's words alone, "Final
    molecular charge (0) does not match input (-1)" for TEMPO, never saying radical; following
    them (charge -1) silently gave its anion."""
    charge = stated or 0
    electrons = sum(a.GetAtomicNum() for a in mol.GetAtoms()) - charge
    if electrons % 2 == 0:
        return None
    head = (f"bond perception with total charge {charge} failed: the atoms then hold an odd number of electrons "
            f"({electrons}), so one is unpaired, and perception pairs them all")
    if stated is None:
        return (f"{head}. If the molecule is a radical, {_RADICAL_AS}. If it is an ion (only then: another "
                f"charge makes another molecule), state its total charge: `charge=-1` on the XYZ comment line. "
                f"{CHARGE_IN_RECORDS}")
    return (f"{head}. If the molecule is a radical, {_RADICAL_AS}; otherwise the total charge {charge} is wrong")


def _diagonal_hint(mol: Chem.Mol) -> str:
    """'; ... across a four-membered ring ...' naming the first contact that is a planar
    four-membered ring's diagonal (``_ring_diagonals``), which perception takes for a bond
    (diketene failed with "Final molecular charge (0) does not match input (-2)" alone);
    '' when there is none."""
    positions = mol.GetConformer().GetPositions()  # [N, 3]
    pairs = _bonding_pairs(positions, np.array([a.GetAtomicNum() for a in mol.GetAtoms()]))  # [P, 2]
    diagonals = pairs[_ring_diagonals(pairs, mol.GetNumAtoms())]
    if not len(diagonals):
        return ""
    i, j = diagonals[0].tolist()
    return (f"; {atom_names([i], mol)} and {atom_names([j], mol)}, across a four-membered ring, are "
            f"{np.linalg.norm(positions[i] - positions[j]):.3g} A apart, within bonding distance, and perception "
            "may have bonded them")


def check_perceived_protons(mol: Chem.Mol, id: str) -> None:
    """``MoleculeError`` for a hydrogen that bond perception left bonded to nothing, as an
    H+: its coordinates put it out of bonding distance of its atom, and the molecule the
    perception made is another protonation state. Was: "hydrogen atom(s) bonded to no heavy
    atom ... drop such fragments with --fragments largest", which then fingerprinted an
    alcohol as its alkoxide (charge -1) with the note "dropped [H+]" alone."""
    protons = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 1 and not a.GetDegree()
               and a.GetFormalCharge() > 0]
    if not protons:
        return
    near, distance = _nearest(mol.GetConformer().GetPositions(), protons[0])
    raise MoleculeError(id, f"bond perception left {atom_names(protons, mol)} bonded to no atom, as an H+ (nearest "
                            f"{atom_names([near], mol)}, {distance:.3g} A): the coordinates put it out of "
                            "bonding distance, so the rest would be another protonation state; correct its "
                            "coordinates, or give the molecule as SDF or MOL2")


def _bonds_heavy_atoms(smiles: str | None) -> bool:
    """Whether `smiles` (unchecked text; None) bonds two heavy atoms. Its errors are left to
    the SMILES check that follows."""
    mol = Chem.MolFromSmiles(smiles, sanitize=False) if isinstance(smiles, str) else None
    return mol is not None and any(b.GetBeginAtom().GetAtomicNum() > 1 and b.GetEndAtom().GetAtomicNum() > 1
                                   for b in bonds(mol))


def from_atoms(elements, coords, id, smiles, charge, source, notes: list[str],
               **options) -> MoleculeRecord:
    """``molecule_from_atoms`` after the option check; ``options`` go to ``finish``."""
    if isinstance(elements, str):  # "CCO" would be three atoms C, C, O
        raise MoleculeError(id, f"elements must be a list of symbols, got the string {elements!r}")
    if len(elements) == 0:
        raise MoleculeError(id, "no atoms")
    coords = _coordinates(coords, id)  # [N, 3]
    if len(elements) != len(coords):
        raise MoleculeError(
            id, f"{len(elements)} elements but {len(coords)} coordinate rows"
        )
    stated = _charge(charge, id)
    charge = 0 if stated is None else stated
    cap = early_cap(**options)
    if cap is not None:
        # every atom is kept, so the cap can refuse now, not after perceiving bonds of 20,000
        # atoms (a minute); fragments='largest' caps what is left after dropping the others
        size_cap(id, sum(_element(symbol, id)[0] > 1 for symbol in elements), cap, "error", [])
    check_coordinates(coords, id)  # before bond perception, which would choke on them

    rw = Chem.RWMol()
    conf = Chem.Conformer(len(elements))
    for i, (symbol, xyz) in enumerate(zip(elements, coords)):
        z, isotope = _element(symbol, id)
        atom = Chem.Atom(z)
        atom.SetIsotope(isotope)
        rw.AddAtom(atom)
        conf.SetAtomPosition(i, Point3D(*map(float, xyz)))
    conf.Set3D(True)  # atom lists are a 3D format, even when planar (DFT geometries)
    rw.AddConformer(conf, assignId=True)
    mol = rw.GetMol()
    check_units(mol, id, smiles)  # before bond perception, whose failure would not say why
    has_h = any(a.GetAtomicNum() == 1 for a in mol.GetAtoms())
    if smiles is None and not has_h:
        # rdDetermineBonds takes every atom's missing valence for bonds or charges: on 642
        # SAMPL molecules without H it gave another molecule (benzene: a cyclic triyne,
        # ethanol: a cumulene, ethane: radicals) or failed for all but 16 H-free ones.
        # Was: "(pass smiles=, ...)" to CO2 and CCl4, which have no H to give, and to users of
        # deepmolm-fingerprint and deepmolm-render, which take no SMILES beside a file.
        raise MoleculeError(id, "no hydrogens in the coordinates: bond orders and charges cannot be perceived "
                                f"without them, nor for a molecule that has none (CO2, CCl4); {_BONDS_FROM}")
    if smiles is None:
        check_flat_atoms(mol, id)  # a 2D drawing: before perception breaks it into ions

    def perceive(bare: Chem.Mol) -> Chem.Mol:
        mol = Chem.Mol(bare)  # a copy: a Ctrl-C in a worker that ignores it does this again
        if smiles is None:
            rdDetermineBonds.DetermineBonds(mol, charge=int(charge), embedChiral=False)
        else:
            rdDetermineBonds.DetermineConnectivity(mol)
        return mol

    with rdkit_messages() as messages:
        try:  # RDKit's bond-order search takes Ctrl-C itself: rdkit_step passes it on
            mol = rdkit_step(lambda bare=mol: perceive(bare), messages)
        except (ValueError, RuntimeError) as error:
            raise MoleculeError(id, with_messages(_perception_failed(mol, error, smiles, stated), messages)) from error
    notes.extend(as_notes(messages))

    if smiles is None:
        check_perceived_protons(mol, id)
        sanitize_notes = sanitize(mol, id)
        check_cross_ring_bonds(mol, id)  # before the radicals a wrong bond may leave behind
        # Sanitising assigns the radicals: checked before it, an atom missing two H passed.
        radicals = [a.GetIdx() for a in mol.GetAtoms() if a.GetNumRadicalElectrons()]
        if radicals:  # hydrogens missing on some atoms (polar-H files), or a wrong total charge
            raise MoleculeError(id, f"bond perception with total charge {charge} left unpaired electrons on atoms "
                                    f"{atom_names(radicals, mol)}: hydrogens are missing, or the total charge is wrong")
        check_perceived_orders(mol, id)  # missing H taken for double or triple bonds
        notes.append(f"bonds perceived from coordinates (total charge {int(charge)})")
        notes.extend(sanitize_notes)
    else:
        mol, smiles_notes = apply_smiles(mol, smiles, id, has_h)
        notes.extend(smiles_notes)
        if stated is not None and Chem.GetFormalCharge(mol) != stated:
            raise MoleculeError(id, f"its total charge is {stated:+d} but its SMILES' is "
                                    f"{Chem.GetFormalCharge(mol):+d}: give the SMILES of the charged species, or "
                                    "leave the charge out")
    mol.SetProp("_Name", str(id))
    return finish(mol, id, source, notes, **options)
