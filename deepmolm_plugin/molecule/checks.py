"""Structure checks shared by every builder, the 3D policy and the fingerprint.

Each check raises ``MoleculeError`` naming the molecule and the reason; none repairs
anything. A record fails on: no atoms, dummy/query atoms (atomic number 0, which E3FP
would silently skip; or a real element with a molfile query feature: ``check_query_atoms``),
atoms no element can make (``check_possible_atoms``: a formal charge or mass number that cannot exist),
non-finite coordinates or coordinates beyond ``MAX_COORDINATE`` (1e4 angstrom), overlapping
atoms (closer than ``OVERLAP`` = 0.01 angstrom), and a file's 3D conformer whose bonds do not fit its coordinates
(``check_bond_lengths``: a bond far longer or shorter than its atoms' covalent radii allow,
or every bond scaled, as by coordinates in nanometres or bohr; E3FP's shells are spheres
in angstrom, so such a fingerprint would describe another geometry), and fragments of a 3D
conformer at bonding distance (``check_missing_bonds``: the file lost bonds), and bond
orders perceived from coordinates that the geometry contradicts (``check_perceived_orders``:
hydrogens missing from the file turned ethane into ethyne), and bonds of a type E3FP does not
encode (``check_bond_types``: dative and the like). Valence
errors come from ``sanitize.sanitize``. ``conformer_is_3d`` is the one place that decides
whether a conformer is 3D or a 2D depiction.
"""

from __future__ import annotations

import functools

import numpy as np
from rdkit import Chem

from .bonds import bonds
from .errors import MoleculeError, atom_names, bond_name

__all__ = [
    "MAX_COORDINATE",
    "OVERLAP",
    "POLYMER_GROUPS",
    "BOND_KINDS",
    "check_atoms",
    "check_possible_atoms",
    "check_query_atoms",
    "check_bond_types",
    "check_bond_lengths",
    "check_coordinates",
    "check_missing_bonds",
    "check_perceived_orders",
    "check_finite",
    "FLAT_CENTRE",
    "conformer_is_3d",
    "flat_centre",
    "tetrahedral_carbons",
    "has_3d_conformer",
]

OVERLAP = 0.01  # angstrom: two atoms closer than this are a broken structure
# A bond's length over the sum of its atoms' covalent radii (Cordero's, RDKit's table): real
# bonds lie within about 0.77 (triple bonds) to 1.2 (H-H, long metal bonds). Any bond outside
# BOND_RATIO is not a bond; a median outside MEDIAN_BOND_RATIO means the unit is not the
# angstrom (nanometres give ~0.1, bohr ~1.9).
BOND_RATIO = (0.5, 2.5)
MEDIAN_BOND_RATIO = (0.7, 1.4)
# Two atoms of different fragments closer than this (same ratio) are a bond the file left
# out: real single bonds measure 0.9-1.1, hydrogen bonds 1.25 and more. Metals are exempt
# (a Na+...O- contact or a Pt-Cl drawn without its bond measures about 1.0).
UNBONDED_RATIO = 1.15
NONMETALS = frozenset((1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 33, 34, 35, 52, 53))
# Geometry a perceived multiple bond needs (degrees): two neighbours of a triple-bonded or
# cumulated (=X=) carbon or nitrogen lie in a line (180; strained cyclooctyne 155), and three
# neighbours of a double- or aromatic-bonded carbon lie in its plane, their angles summing
# to 360 (pyramidalised C60 348). A tetrahedral atom, whose missing hydrogen the perception
# took as a bond, has 109.5 between two neighbours and 328.5 over three. Not nitrogen's
# plane: MMFF leaves aromatic N of pyrazolones pyramidal (337).
LINEAR_MIN_ANGLE = 140.0
PLANAR_MIN_ANGLE_SUM = 340.0


# Largest coordinate (angstrom) taken as a position: a molecule's atoms lie within nanometres
# of each other, a whole PDB entry (a virus capsid) within about 1,000 A, and PDB's own columns
# end at 9999.999. Beyond it a number is garbage: 1e30 (an H of water) was read, perceived as
# an unbonded [H+] and fingerprinted, and from about 1e154 the squared distances overflow and
# the k-d tree (close_pairs) raised scipy's "floating point overflow" ValueError.
MAX_COORDINATE = 1e4


def check_finite(positions: np.ndarray, id: str) -> None:
    """Raise for NaN/inf coordinates, or coordinates beyond ``MAX_COORDINATE`` angstrom,
    naming the first ten atoms. positions: [N, 3]."""
    bad = np.where(~np.isfinite(positions).all(axis=1))[0]
    if len(bad):
        raise MoleculeError(id, f"non-finite coordinates for atoms {atom_names(bad)}")
    far = np.where((np.abs(positions) > MAX_COORDINATE).any(axis=1))[0]
    if len(far):
        raise MoleculeError(id, f"coordinates beyond {MAX_COORDINATE:g} A for atoms {atom_names(far)} (largest "
                                f"{np.abs(positions).max():.3g}): not a position in one molecule, in angstrom")


def close_pairs(positions: np.ndarray, within: float) -> np.ndarray:
    """[P, 2] index pairs i < j of atoms closer than `within` (angstrom), sorted: a k-d tree,
    O(N log N). The all-pairs distance blocks it replaced took a minute for an XYZ file of
    20,000 atoms, before the heavy-atom cap could refuse it. positions: [N, 3]."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(positions).query_pairs(within, output_type="ndarray")  # [P, 2], i < j, distance <= within
    if len(pairs):
        pairs = pairs[np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=-1) < within]
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))] if len(pairs) else pairs.reshape(0, 2)


def check_coordinates(positions: np.ndarray, id: str) -> None:
    """Raise ``MoleculeError`` for non-finite or overlapping coordinates. positions: [N, 3]."""
    check_finite(positions, id)
    pairs = close_pairs(positions, OVERLAP)
    if len(pairs):
        i, j = pairs[0].tolist()
        raise MoleculeError(id, f"atoms {atom_names([i, j])} overlap (distance < {OVERLAP} A)")


# Substance-group types of polymers and repeat units (V3000 / CXSMILES `Sg`): not one molecule.
# Abbreviations (SUP), data (DAT), multiples (MUL) and mixtures keep every atom: allowed.
POLYMER_GROUPS = {"SRU", "COP", "ALT", "RAN", "BLO", "GRA", "CRO", "MON", "MER", "MOD", "ANY"}


# The bond types E3FP encodes (e3fp's fprinter.BOND_TYPES, asserted in ``fingerprint``): here, so
# that reading a molecule (``finish``) refuses another type without importing e3fp
BOND_KINDS = frozenset((Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC))


def check_bond_types(mol: Chem.Mol, id: str) -> None:
    """``MoleculeError`` for a bond between heavy atoms of a type E3FP does not encode
    (``BOND_KINDS``; dative, as RDKit reads `[NH3][Pt]` or `->` in SMILES). Mapping it to single
    would change what the fingerprint means, so it is an error, raised when the molecule is
    read (``finish``), before any 3D work, by every tool alike (deepmolm-render too: it drew
    what every other tool refused; the chat CLI embedded a 120-carbon chain for a minute
    first). Bonds to hydrogen are left to the fingerprint, which leaves hydrogens out."""
    for bond in bonds(mol):
        kind = bond.GetBondType()
        if kind in BOND_KINDS or bond.GetBeginAtom().GetAtomicNum() == 1 or bond.GetEndAtom().GetAtomicNum() == 1:
            continue
        # ferrocene's ten Fe-C single bonds were named "dative" with no word on where that came from
        why = (" (written so, or a bond to a metal that RDKit's sanitising made dative)"
               if kind == Chem.BondType.DATIVE else "")
        raise MoleculeError(id, f"{str(kind).lower()} bond {bond_name(bond)}{why}:"
                                " E3FP encodes single, double, triple and aromatic bonds only; write it as a single bond "
                                "with the formal charges it implies (`[NH3+][Pt-2]([NH3+])(Cl)Cl` for "
                                "`N->[Pt](<-N)(Cl)Cl`)")


def check_atoms(mol: Chem.Mol, id: str) -> None:
    """A concrete structure: some atoms, none of them dummies or query atoms, no query bonds,
    no polymer repeat unit, no link node, finite coordinates (if any).

    Overlaps are not checked here: a conformer that is about to be replaced by a generated
    one may be a depiction with stacked atoms; ``check_coordinates`` runs on the conformer
    that is kept.
    """
    if mol.GetNumAtoms() == 0:
        raise MoleculeError(id, "no atoms")
    dummies = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 0]
    if dummies:
        raise MoleculeError(id, f"dummy/query atoms {atom_names(dummies, mol)}: not a concrete structure")
    check_query_atoms(mol, id)  # first: RDKit keeps a query feature's R-group number as an isotope
    check_possible_atoms(mol, id)
    # Bonds of no one order (molfile query bonds, types 5-8: single or double, single or
    # aromatic, double or aromatic, any; MOL2 `du` / `un`, read alike): deepmolm-render drew
    # them as single bonds, so the picture of `C(5)C-O` was ethanol's, while
    # deepmolm-fingerprint refused the same file.
    queries = [b for b in bonds(mol) if b.GetBondType() == Chem.BondType.UNSPECIFIED]
    if queries:
        names = ", ".join(bond_name(b) for b in queries[:10]) + (f" and {len(queries) - 10} more" if len(queries) > 10 else "")
        raise MoleculeError(id, f"bond(s) of no one order ({names}; molfile query bond types 5-8 or MOL2 du/un): "
                                "not a concrete structure")
    check_no_family(mol, id)
    if mol.GetNumConformers() > 0:
        check_finite(mol.GetConformer().GetPositions(), id)  # [atoms, 3]


# Formal charges and mass numbers no atom can have (``check_possible_atoms``). `[C+99]`,
# `[999C]` and `[C-15]` were fingerprinted with only a radical or force-field note, so a typo
# (`[13C]` -> `[133C]`) went through. Only what cannot exist is refused:
# - a positive charge above the atomic number: the atom has no more electrons to lose;
# - for H to Ne, a negative charge beyond filling the valence shell (2 electrons for H and He,
#   8 for Li to Ne; no d orbitals, so no spelling holds more): below -1 for H and F, -2 for O,
#   -3 for N, -4 for C (methanide, [C-4] in Al4C3), -5 for B; i.e. charge < outer - shell;
# - for heavier atoms, a charge below MIN_HEAVY_CHARGE: the dative-as-single spelling (README's
#   `[NH3+][Pt-2]([NH3+])(Cl)Cl`) gives a metal minus its neighbours plus its oxidation state,
#   and no atom has more than 16 neighbours nor an oxidation state below -5 (Ga in Mg2Ga; Cr in
#   Na4[Cr(CO)4] is -4). MoleculeNet's lowest are -5 (Cu, U), -4 (Fe, Pd, Pt).
# - a mass number below the atomic number (fewer nucleons than protons), one RDKit's periodic
#   table does not list for the element (carbon: 8 to 22; GetMassForIsotope gives 0.0 for an
#   unknown one), or, for the elements it lists none for (Db to Mt), one above the heaviest
#   nuclide it lists (295, oganesson). The table's isotopes run without gaps from the lightest
#   to the heaviest known, 2H to 295Og, so every labelled tracer (13C, D, T, 18F, 99Tc, 131I) passes.
_VALENCE_SHELL = ((2, 2), (10, 8))  # (last atomic number of the period, electrons its valence shell holds)
_NOBLE_CORE = {1: 0, 2: 0, **{z: 2 for z in range(3, 11)}}  # core electrons of H to Ne
MIN_HEAVY_CHARGE = -21  # 16 neighbours written as cations on an atom of oxidation state -5


@functools.lru_cache(maxsize=None)
def _known_isotopes(z: int) -> tuple[int, int] | None:
    """(lightest, heaviest) mass number RDKit's table lists for element ``z``; None for Db to Mt.
    No known nuclide has more than 3Z + 30 nucleons (the table's richest: 7H, 22C, 295Og)."""
    table = Chem.GetPeriodicTable()
    known = [a for a in range(z, 3 * z + 30) if table.GetMassForIsotope(z, a) > 0]
    return (known[0], known[-1]) if known else None


@functools.lru_cache(maxsize=None)
def _heaviest_nuclide() -> int:
    return max(known[1] for known in map(_known_isotopes, range(1, 119)) if known)


def _impossible_charge(atom: Chem.Atom) -> str | None:
    """Why ``atom``'s formal charge cannot exist (see above), or None."""
    z, q = atom.GetAtomicNum(), atom.GetFormalCharge()
    if q > z:
        return f"charge {q:+d} removes more electrons than the atom's {z}"
    shell = next((size for last, size in _VALENCE_SHELL if z <= last), None)
    if shell is not None:
        least = (z - _NOBLE_CORE[z]) - shell  # valence electrons minus the shell's room
        if q < least:
            return (f"charge {q:+d} is more electrons than its valence shell holds ({shell}; the most negative "
                    f"{atom.GetSymbol()} is {least:+d})" if least else
                    f"charge {q:+d}: its valence shell ({shell}) is full, it takes no electron")
    elif q < MIN_HEAVY_CHARGE:
        return (f"charge {q:+d} is below {MIN_HEAVY_CHARGE} (no atom has more than 16 neighbours nor an oxidation "
                "state below -5)")
    return None


def _impossible_isotope(atom: Chem.Atom) -> str | None:
    """Why ``atom``'s mass number cannot exist (see above), or None; 0 is no label."""
    z, mass = atom.GetAtomicNum(), atom.GetIsotope()
    if not mass:
        return None
    if mass < z:
        return f"mass number {mass} is fewer nucleons than its {z} protons"
    table, known = Chem.GetPeriodicTable(), _known_isotopes(z)
    if known and table.GetMassForIsotope(z, mass) == 0:  # 0.0: not in the table
        name = table.GetElementName(z).lower()
        return f"no isotope {mass} of {name} is known (RDKit's table: {known[0]} to {known[1]})"
    if not known and mass > _heaviest_nuclide():
        return f"mass number {mass} is above the heaviest nuclide known ({_heaviest_nuclide()})"
    return None


def check_possible_atoms(mol: Chem.Mol, id: str) -> None:
    """``MoleculeError`` naming the first ten atoms whose formal charge or mass number no atom
    can have (see above): a typo, fingerprinted as written, would describe nothing real. A
    dummy atom (`*`, atomic number 0: no element) is another check's (deepmolm-kflm2 keeps it;
    this one raised KeyError on it there)."""
    bad = [(atom.GetIdx(), why) for atom in mol.GetAtoms() if atom.GetAtomicNum() > 0
           for why in (_impossible_charge(atom), _impossible_isotope(atom)) if why]
    if bad:
        listed = "; ".join(f"{atom_names([i], mol)} ({why})" for i, why in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise MoleculeError(id, f"impossible atom(s): {listed}{more}: no such atom exists; is it a typo?")


def check_query_atoms(mol: Chem.Mol, id: str) -> None:
    """No real element carrying a query (molfile hydrogen-count field hhh, `M  SUB` / `M  UNS` /
    `M  RBC`, `M  RGP` on a real atom; V3000 HCOUNT= / SUBST= / UNSAT= / RBCNT= / RGROUPS=).
    RDKit reads such an atom as a query atom: hhh=3 on an N made a methyl a radical (with a note
    blaming `M  RAD`), an R-group label on an N was drawn as isotope 1, and the picture lost
    the atom's hydrogens, all silently. Plain atoms (isotopes, charges, atom maps, aromatic
    bonds, the valence and stereo fields) are never query atoms."""
    queried = [a.GetIdx() for a in mol.GetAtoms() if a.HasQuery()]
    if queried:
        raise MoleculeError(id, f"query atoms {atom_names(queried, mol)} (a molfile query feature: the hydrogen-count "
                                "field, M  SUB/UNS/RBC/RGP, V3000 HCOUNT/SUBST/UNSAT/RBCNT/RGROUPS): not a concrete "
                                "structure")


def check_no_family(mol: Chem.Mol, id: str) -> None:
    """No polymer repeat unit and no link node: what a SMILES or a structure file may state
    beyond its atoms that makes it a family of molecules. Also checked on a SMILES given
    beside coordinates (`matching.apply_smiles`), whose groups the coordinate atoms lack."""
    polymer = sorted({g.GetProp("TYPE") for g in Chem.GetMolSubstanceGroups(mol) if g.HasProp("TYPE")} & POLYMER_GROUPS)
    if polymer:  # CXSMILES `Sg:n`, molfile SRU: was fingerprinted and drawn as the bare repeat unit
        raise MoleculeError(id, f"a polymer substance group ({', '.join(polymer)}): a repeat unit is not one "
                                "concrete molecule; give an oligomer with its end groups")
    link = _link_node(mol)
    if link:  # CXSMILES `LN`, molfile LINKNODE: was fingerprinted and drawn with the atom once
        raise MoleculeError(id, f"a link node ({link}): a Markush structure of several ring or chain sizes is not "
                                "one concrete molecule; give each size as its own record")


def _link_node(mol: Chem.Mol) -> str:
    """The link nodes, as `atom C2 repeated 1 to 3 times`; "" when there are none.

    RDKit keeps a CXSMILES `LN:1:1.3` and a V3000 `LINKNODE 1 3 2 2 1 2 3` alike, only as the
    molecule property ``_molLinkNodes``: `minimum maximum bonds atom neighbour ...` per link
    node (1-based atoms, the repeated atom first in each pair), nodes separated by `|`. The
    molecule itself holds the atom once, so it read as plain cyclohexane."""
    text = mol.GetProp("_molLinkNodes") if mol.HasProp("_molLinkNodes") else ""
    nodes = [node.split() for node in text.split("|") if node.strip()]
    if not nodes:
        return ""
    more = f", and {len(nodes) - 1} more" if len(nodes) > 1 else ""
    fields = nodes[0]
    if len(fields) < 4 or not all(f.isdigit() for f in fields) or not 0 < int(fields[3]) <= mol.GetNumAtoms():
        return f"RDKit's _molLinkNodes {text!r}"  # written otherwise than above: still a link node
    return f"atom {atom_names([int(fields[3]) - 1], mol)} repeated {fields[0]} to {fields[1]} times{more}"


# Smallest spread (a singular value of the unit bond vectors, see ``flat_centre``) of a
# tetrahedral carbon's bonds out of one plane below which the carbon is flat: a depiction.
# Real sp3 carbons measure about 0.58 over three bonds (ideal tetrahedron) and 1.15 over
# four; the least in MMFF geometries of strained rings: 0.45 (bicyclobutane's bridgeheads,
# heavy atoms only), 0.69 (spiropentane), 0.73 ([1.1.1]propellane). A 2D layout measures 0,
# or its rounding noise: z of +-0.002 A on 1.5 A bonds gave 0.003. 0.05 is a
# carbon pyramidalised by under 3 degrees, which no equilibrium or MD geometry has.
FLAT_CENTRE = 0.05


def flat_centre(mol: Chem.Mol, positions: np.ndarray, centres) -> int | None:
    """The first of ``centres`` (atom indices of tetrahedral carbons with three or more
    neighbours in ``mol``) whose bonds all lie in one plane (``FLAT_CENTRE``), in any
    orientation; None when every one is 3D. positions: [N, 3] angstrom.

    Such a carbon and three of its neighbours are never coplanar in 3D, so one is proof of a
    2D depiction (was: only all z = 0 could be, and a layout with z rounding noise of
    +-0.002 A, or tilted, was fingerprinted flat as a 3D conformer). Molecules without a
    tetrahedral centre prove nothing: benzene, ethylene, CO2 or water are planar in 3D too."""
    by_count: dict[int, list] = {}  # neighbour count -> [(centre, neighbours)]: one batched SVD each
    for i in centres:
        neighbours = [n.GetIdx() for n in mol.GetAtomWithIdx(int(i)).GetNeighbors()]
        by_count.setdefault(len(neighbours), []).append((int(i), neighbours))
    flat = []
    for items in by_count.values():
        index = np.array([i for i, _ in items])  # [M]
        vectors = positions[np.array([n for _, n in items])] - positions[index][:, None]  # [M, k, 3]
        lengths = np.linalg.norm(vectors, axis=-1, keepdims=True)  # [M, k, 1]
        # a neighbour stacked on its centre (a depiction may stack atoms) gives no direction to test
        usable = lengths.all(axis=(1, 2))  # [M]
        spread = np.linalg.svd(vectors[usable] / lengths[usable], compute_uv=False)[:, -1]  # [M'] smallest
        flat += index[usable][spread < FLAT_CENTRE].tolist()
    return min(flat) if flat else None  # a loop per atom took 0.2 s for 2,560 carbons


def tetrahedral_carbons(mol: Chem.Mol) -> list[int]:
    """Carbons with four neighbours (hydrogens counted whether they are atoms of the file or
    implicit) of which three or more are in the file: what ``flat_centre`` can test. Fewer
    than three in the file (ethanol without H) are always coplanar and prove nothing."""
    return [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 6 and a.GetTotalDegree() == 4
            and a.GetDegree() >= 3]


def conformer_is_3d(mol: Chem.Mol, conf_id: int = -1) -> bool:
    """Whether conformer ``conf_id`` holds real 3D coordinates rather than a 2D depiction.

    Trusts the source's declaration as RDKit reads it (molfile header ``2D``/blank with all
    z = 0 -> 2D; XYZ, PDB, MOL2, atom arrays and generated conformers -> 3D), so a planar
    molecule in any plane of a DFT geometry stays 3D. One correction, in any orientation: a
    conformer in which a tetrahedral carbon (``tetrahedral_carbons``) lies in one plane with
    its neighbours (``flat_centre``) is a depiction whatever its flag says. Was: tested only
    when every |z| <= 1e-4, so rounding noise in z or a tilted layout passed as 3D.
    """
    conf = mol.GetConformer(conf_id)
    if not conf.Is3D():
        return False
    return flat_centre(mol, conf.GetPositions(), tetrahedral_carbons(mol)) is None


def has_3d_conformer(mol: Chem.Mol) -> bool:
    """A conformer exists and ``conformer_is_3d`` accepts it."""
    return mol.GetNumConformers() > 0 and conformer_is_3d(mol)



def check_bond_lengths(mol: Chem.Mol, id: str) -> None:
    """Raise ``MoleculeError`` when the conformer's geometry does not fit the bonds (see
    ``BOND_RATIO``): naming the first bad bond, or the median scale of all of them."""
    if mol.GetNumBonds() == 0 or mol.GetNumConformers() == 0:
        return
    positions = mol.GetConformer().GetPositions()  # [N, 3] angstrom
    radius = Chem.GetPeriodicTable().GetRcovalent
    ratios = []
    for bond in bonds(mol):
        a, b = bond.GetBeginAtom(), bond.GetEndAtom()
        length = float(np.linalg.norm(positions[a.GetIdx()] - positions[b.GetIdx()]))
        ratio = length / (radius(a.GetAtomicNum()) + radius(b.GetAtomicNum()))
        if not BOND_RATIO[0] <= ratio <= BOND_RATIO[1]:
            raise MoleculeError(id, f"bond {bond_name(bond)} is {length:.3g} A "
                                    f"long, {ratio:.2f} x the sum of their covalent radii: the coordinates do not "
                                    "fit the bonds")
        ratios.append(ratio)
    median = float(np.median(ratios))
    if not MEDIAN_BOND_RATIO[0] <= median <= MEDIAN_BOND_RATIO[1]:
        raise MoleculeError(id, f"the bonds are {median:.2f} x their covalent length on median: are the "
                                "coordinates in angstrom? (nanometres give about 0.1, bohr about 1.9)")


def check_missing_bonds(mol: Chem.Mol, id: str) -> None:
    """Raise ``MoleculeError`` when two non-metal atoms of different fragments of a 3D
    conformer lie at bonding distance (``UNBONDED_RATIO``): the file lost a bond (a PDB
    whose CONECT records cover part of the molecule, or several MODELs, had no bonds at
    all and was fingerprinted atom by atom). Only molecules of several fragments are
    checked; a bond missing inside one fragment cannot be told from the geometry."""
    fragment = np.zeros(mol.GetNumAtoms(), dtype=int)  # [N] fragment number of each atom
    for n, atoms in enumerate(Chem.GetMolFrags(mol)):
        fragment[list(atoms)] = n
    if fragment.max() == 0:
        return
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])  # [N]
    keep = np.where(np.isin(z, list(NONMETALS)))[0]
    positions = mol.GetConformer().GetPositions()[keep]  # [K, 3]
    table = Chem.GetPeriodicTable()
    radii = np.array([table.GetRcovalent(int(z[i])) for i in keep])  # [K]
    if not len(keep):
        return
    pairs = close_pairs(positions, UNBONDED_RATIO * 2 * radii.max())  # [P, 2] candidates, i < j
    a, b = pairs[:, 0], pairs[:, 1]
    dist = np.linalg.norm(positions[a] - positions[b], axis=-1)  # [P]
    hit = (fragment[keep[a]] != fragment[keep[b]]) & (dist / (radii[a] + radii[b]) < UNBONDED_RATIO)
    if hit.any():
        first = np.flatnonzero(hit)[0]  # the pair of the lowest atom numbers
        i, j = keep[a[first]], keep[b[first]]
        raise MoleculeError(id, f"atoms {atom_names([i, j], mol)} are {dist[first]:.3g} "
                                "A apart, a bond length, but not bonded: the file left out bonds (a PDB's "
                                "incomplete CONECT records, a missing bond line of a molfile or MOL2?) or holds "
                                "molecules placed over each other")


def check_perceived_orders(mol: Chem.Mol, id: str) -> None:
    """Raise ``MoleculeError`` when bond orders perceived from coordinates (rdDetermineBonds,
    sanitised) ask for a geometry the atoms do not have (``LINEAR_MIN_ANGLE``,
    ``PLANAR_MIN_ANGLE_SUM``). Perception gives every atom's unused valence to a multiple
    bond, so a file lacking some hydrogens became another molecule without a word:
    cyclohexane with two H missing cyclohexene, ethane with four missing ethyne, benzene a
    cyclic alkyne. Only carbon and nitrogen are checked (SO2 is bent, sulfones tetrahedral).
    On 2026 SAMPL, ESOL and BBBP molecules with all hydrogens (ETKDG + MMFF) it refused
    one, whose perception (charge 0) had given an N a triple bond: not the molecule either."""
    positions = mol.GetConformer().GetPositions()  # [N, 3] angstrom
    bad = []
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() not in (6, 7):
            continue
        i, neighbours = atom.GetIdx(), [n.GetIdx() for n in atom.GetNeighbors()]
        orders = [b.GetBondTypeAsDouble() for b in atom.GetBonds()]
        vectors = positions[neighbours] - positions[i]  # [k, 3]
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        if len(neighbours) == 2 and (3.0 in orders or orders.count(2.0) == 2):
            angle = float(np.degrees(np.arccos(np.clip(vectors[0] @ vectors[1], -1.0, 1.0))))
            if angle < LINEAR_MIN_ANGLE:
                bad.append(f"{atom_names([i], mol)} (triple or cumulated bonds, neighbours at {angle:.0f} degrees, "
                           "not in a line)")
        elif len(neighbours) == 3 and atom.GetAtomicNum() == 6 and any(o in (1.5, 2.0) for o in orders):
            cosines = [vectors[a] @ vectors[b] for a, b in ((0, 1), (0, 2), (1, 2))]
            total = float(np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0))).sum())
            if total < PLANAR_MIN_ANGLE_SUM:
                bad.append(f"{atom_names([i], mol)} (a double or aromatic bond, neighbours not in one plane: "
                           f"angles sum to {total:.0f} degrees)")
    if bad:
        raise MoleculeError(id, f"bond orders perceived from the coordinates do not fit the geometry at atoms "
                                f"{'; '.join(bad[:5])}{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}: "
                                "the perceived molecule is not the file's: hydrogens are missing (some atoms have "
                                "them, others not), the total charge is wrong, or the perception failed; pass the "
                                "SMILES, add the hydrogens or use a format with bonds (SDF, MOL2)")
