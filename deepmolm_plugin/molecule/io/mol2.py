"""Tripos MOL2 reader (``.mol2``): records start at ``@<TRIPOS>MOLECULE``; read whole.

Id: the molecule name (the line after ``@<TRIPOS>MOLECULE``), else ``file#index``. Text
before the first record other than ``#`` comments is an error for the file.

Two things RDKit's MOL2 reader does silently fail the record here:

- it reads as many atom and bond lines as the counts line says and ignores the rest (an
  atom count one short turned ethanol into ethoxide), so the counts must match the
  ``@<TRIPOS>ATOM`` and ``@<TRIPOS>BOND`` lines;
- it adds no hydrogens: an atom short of its hydrogens (heavy-atom or polar-hydrogen-only
  files, as docking tools write) becomes a radical, and without any hydrogen it guesses
  charges (ethanol read as ``[C][C][O-]``). MOL2 cannot mark radicals, so a radical, or a
  charge guessed without hydrogens, is an error; one beside the file's hydrogen atoms names
  the bond orders the file lost (``base.check_hydrogens_kept``, the SDF and PDB readers' rule).

Two things it does wrong are mended, with a note: it gives a bonded metal a charge of its own
making (``C[Hg]Cl`` read as ``[Hg-3]``), set to 0 as SDF and PDB read it (``_neutral_metals``);
and it cannot kekulize a pyrrole-type N typed ``N.ar`` (as Open Babel types them), read as
``N.pl3`` when the file gives it three bonds (``_retype_pyrrole_n``). An atom type naming no
element (``Any``, ``Hal``: query types) is an error naming its line (``_unknown_type``).

Tripos pseudo-atoms. A lone pair (type ``LP``, or ``Lp``; SYBYL and some older Tripos and CCDC
exports write them, bonded to their atom) is not an atom: it is dropped with its bonds, and a
note names each and the atom it sat on (RDKit dropped ``LP`` without a word, and failed on
``Lp``); the counts line is checked against the file as written. One bonded to two atoms or to
another lone pair, or listed before an atom of a record whose UNITY_ATOM_ATTR section states
charges (RDKit would give them to other atoms), is an error naming its line (``_lone_pairs``).
A dummy atom (``Du``, ``Du.C``, anything RDKit reads as atomic number 0), or an upper-case
query type RDKit reads as an element (``HAL`` as F, ``HET`` as N, ``HEV`` as H), is an error
naming its line and type (``_pseudo_atoms``): a molecule with a dummy atom has no one structure.

Charges a UNITY_ATOM_ATTR section states. Where a record has that section RDKit reads formal
charges from it alone, and only in the spelling ``AtomExpr -1``; it then skips its own charge
guess and its fixes by type (N.4 as N+, carboxylate O.co2). Open Babel, the commonest MOL2
writer, states every formal charge there as ``charge 1`` (the Tripos attribute), which RDKit
ignored: every charged molecule it wrote was refused (ammonium N "Explicit valence ... 4",
nitro, N-oxides, pyridinium, amidinium, carboxylates: its charges dropped).
These charges are the file's own, read as stated, no note (``_stated_charges``); a ``charge``
on no atom, or one an ``AtomExpr`` of the same atom contradicts, is an error naming its line.
Open Babel writes a carboxylate's two C-O bonds ``ar``, the stated -1 on one O.co2; RDKit's
O.co2 fix skipped, that one is read single and the other double, the carboxylate as written
(``_carboxylates``); one whose charges do not say which O is the anion is an error naming it.
"""

from __future__ import annotations

import re
from typing import Iterator, Optional

from rdkit import Chem

from ..bonds import bonds
from ..errors import MoleculeError, as_notes, atom_names, rdkit_messages, with_messages
from ..sanitize import is_metal, is_p_block_metal, sanitize
from .base import ParsedStructure, check_control, check_hydrogens_kept, register_reader

__all__ = ["read_mol2"]


def _check_counts(block: str, id: str) -> None:
    """The counts line (line 3) against the ATOM and BOND section lines."""
    lines = block.splitlines()
    found = {what: sum(1 for _ in _section_lines(block, what)) for what in ("ATOM", "BOND")}
    counts = lines[2].split()[:2] if len(lines) > 2 else []
    for what, said in zip(("ATOM", "BOND"), counts):
        if said.isdigit() and int(said) != found[what]:
            raise MoleculeError(id, f"counts line says {said} {what.lower()}s, the @<TRIPOS>{what} section holds "
                                    f"{found[what]} lines")


def _states_charges(block: str) -> bool:
    """Whether the record has a @<TRIPOS>UNITY_ATOM_ATTR section: then RDKit reads charges from
    it alone and guesses none (``_stated_charges``)."""
    return "@<TRIPOS>UNITY_ATOM_ATTR" in block.upper()


def _check_hydrogens(mol: Chem.Mol, id: str, messages: list[str], stated: bool) -> None:
    """Radicals, or charges RDKit guessed without hydrogens: see the module docstring. A
    radical beside the file's hydrogen atoms (``base.check_hydrogens_kept``, MOL2's short
    atoms being its radicals) is a bond order lost, not a hydrogen (was: "give all hydrogens"
    to a file that gave them all and wrote every bond as 1). ``stated``: the record has a
    UNITY_ATOM_ATTR section, whose charges RDKit reads and guesses none (was: the stated
    charges of a molecule without hydrogens, CF3NO2 or BF4-, refused as guessed)."""
    radicals = [a.GetIdx() for a in mol.GetAtoms() if a.GetNumRadicalElectrons()]
    check_hydrogens_kept(mol, id, "bond orders (bond types written 1)", short=radicals)
    if radicals:
        raise MoleculeError(id, f"atoms {atom_names(radicals, mol)} lack bonds or hydrogens (RDKit's MOL2 reader adds no "
                                "hydrogens, and MOL2 cannot mark radicals): give all hydrogens, or use SDF")
    guessed = any("no explicit hydrogens" in m for m in messages) and not stated
    charged = [a.GetIdx() for a in mol.GetAtoms() if a.GetFormalCharge()]
    if guessed and charged:
        raise MoleculeError(id, f"no hydrogens, and RDKit guessed charges on atoms {atom_names(charged, mol)}: give all "
                                "hydrogens, or use SDF")


def _sections(lines: list) -> list:
    """What each line of a record is, for messages: its name line, or the section it is in."""
    parts, section = [], "the @<TRIPOS>MOLECULE section"
    for n, line in enumerate(lines):
        found = re.match(r"@<TRIPOS>\w*", line)
        section = f"the {found.group()} section" if found else section
        parts.append("the molecule name" if n == 1 else section)
    return parts


def _check_control(block: str, id: str, first: int) -> None:
    """A ``MoleculeError`` for a control character in the record (`base.check_control`;
    ``first``: the file line the record starts at). Was: a NUL in the name became the id,
    or, in the file's first 64 KiB, refused the whole file."""
    lines = block.split("\n")  # at LF only
    check_control(lines, id, lambda n: _sections(lines)[n - first], first)


def _neutral_metals(mol: Chem.Mol) -> list[str]:
    """Set the charge of each bonded metal to 0 (in place); a note naming those changed.
    MOL2 holds no formal charges: RDKit's reader made one up for a metal from its bonds,
    whatever the file's charge type (C[Hg]Cl read as [Hg-3], cisplatin's Pt as +5, Cl3Fe's
    Fe as +4), where the SDF and PDB of the same coordinates give the neutral metal."""
    changed = [a for a in mol.GetAtoms() if a.GetFormalCharge() and a.GetDegree()
               and (is_metal(a.GetAtomicNum()) or is_p_block_metal(a.GetAtomicNum()))]
    if not changed:
        return []
    shown = ", ".join(f"{atom_names([a.GetIdx()], mol)} {a.GetFormalCharge():+d}" for a in changed)
    for atom in changed:
        atom.SetFormalCharge(0)
    return [f"bonded metal charges made up by RDKit's MOL2 reader ({shown}) set to 0: MOL2 holds no formal "
            "charges, so a bonded metal is read neutral, as SDF and PDB read one written without a charge; "
            "use an SDF that states it where the metal is charged"]


def _section_lines(block: str, name: str):
    """(index in the record's "\n"-split lines, fields) of each line of its @<TRIPOS>``name``
    section that is neither blank nor a comment: the one walk over a record's sections."""
    section = None
    for n, line in enumerate(block.split("\n")):
        if line.startswith("@<TRIPOS>"):
            section = line.strip()[len("@<TRIPOS>"):].upper()
        elif section == name and line.strip() and not line.lstrip().startswith("#"):
            yield n, line.split()


def _atom_lines(block: str):
    """(index in the record, fields) of each @<TRIPOS>ATOM line."""
    return ((n, fields) for n, fields in _section_lines(block, "ATOM") if len(fields) >= 6)


def _retype_pyrrole_n(block: str) -> tuple[str, list[str]]:
    """``block`` with each ``N.ar`` atom that has three bonds in the BOND section (the file's
    hydrogens counted) typed ``N.pl3``, and those atoms' names. Such an N is pyrrole-type: its
    third bond (an H or a substituent) leaves it no double bond to give the ring, and RDKit,
    reading N.ar as pyridine-type, could not kekulize the ring (Open Babel types imidazole,
    indole and pyrazole N-H so). A bond to a lone pair (``_lone_pairs``) is not counted: a
    pyridine-type N with its lone pair written has three bond lines too."""
    degree: dict[str, int] = {}
    lone = {fields[0] for _, fields in _atom_lines(block) if _is_lone_pair(fields)}  # dropped, bonds and all
    for _, fields in _section_lines(block, "BOND"):
        if len(fields) >= 4 and fields[3] != "nc" and not lone & set(fields[1:3]):  # "nc": not connected
            for atom in fields[1:3]:
                degree[atom] = degree.get(atom, 0) + 1
    lines = block.split("\n")
    named = []
    for n, fields in _atom_lines(block):
        if fields[5] == "N.ar" and degree.get(fields[0]) == 3:
            lines[n] = re.sub(r"(?<=\s)N\.ar(?=\s|$)", "N.pl3", lines[n], count=1)
            named.append(f"{fields[1]} (atom {fields[0]})")
    return "\n".join(lines), named


# The element part of the SYBYL types that match any of several elements (Tripos spells them Any,
# Hal, Het, Hev: RDKit fails on those, ``_unknown_type``; it reads these upper-case spellings as
# query atoms: HAL as F, HET as N, HEV as H, ANY as atomic number 0)
_QUERY_TYPES = ("ANY", "HAL", "HET", "HEV")


def _query_type(id: str, line: int, fields: list[str], number: object) -> MoleculeError:
    """The error for the atom line ``fields`` (file line ``line``, atom ``number``) of a query type."""
    return MoleculeError(id, f"line {line}: atom {fields[1]} (atom {number}) has the type {fields[5]!r}, which "
                             "names no element (Any, Hal, Het and Hev are query types): give the atom its element's "
                             "SYBYL type")


def _is_lone_pair(fields: list[str]) -> bool:
    """An atom line of a lone-pair pseudo-atom: Tripos type ``LP`` (``Lp`` too, which names no
    element either)."""
    return fields[5].split(".")[0].upper() == "LP"


def _with_type(line: str, kind: str) -> str:
    """``line`` (an atom line) with its sixth field, the SYBYL type, set to ``kind``; the rest of
    the line as it was (the atom's name may spell the type too)."""
    found = list(re.finditer(r"\S+", line))[5]
    return line[:found.start()] + kind + line[found.end():]


def _lone_pair_partners(block: str, pairs: dict) -> dict:
    """The atom numbers each lone pair of ``pairs`` (atom number -> its line) is bonded to, in
    the BOND section (``nc``, not connected, is no bond)."""
    partners: dict[int, set] = {k: set() for k in pairs}
    for _, fields in _section_lines(block, "BOND"):
        if len(fields) >= 4 and fields[3] != "nc" and fields[1].isdigit() and fields[2].isdigit():
            a, b = int(fields[1]), int(fields[2])
            for pair, other in ((a, b), (b, a)):
                partners.get(pair, set()).add(other)
    return partners


def _lone_pairs(block: str, id: str, first: int) -> tuple[str, list[str]]:
    """``block`` with each lone pair typed ``LP``, which RDKit's reader drops with its bonds, and
    a note naming them and the atoms they sat on; ``block`` and no note where there are none.

    A lone pair (SYBYL, and some older Tripos and CCDC exports, write one bonded to the atom
    whose pair it is) is not an atom: RDKit dropped those typed ``LP`` without a word, and
    failed on ``Lp`` (refused here as a query type). Atoms are numbered by their place in the
    ATOM section, as RDKit numbers them and its bond lines refer to them."""
    atom_lines = list(_atom_lines(block))
    atoms = [fields for _, fields in atom_lines]
    pairs = {k: n for k, (n, fields) in enumerate(atom_lines, 1) if _is_lone_pair(fields)}
    if not pairs:
        return block, []
    partners = _lone_pair_partners(block, pairs)
    after = next((k for k in range(min(pairs) + 1, len(atoms) + 1) if k not in pairs), None)  # renumbered
    _check_lone_pairs(block, id, first, atoms, pairs, partners, after)
    lines = block.split("\n")
    for n in pairs.values():
        lines[n] = _with_type(lines[n], "LP")  # the spelling RDKit drops
    return "\n".join(lines), [_lone_pair_note(atoms, pairs, partners, after)]


def _label(atoms: list, k: int) -> str:
    """Atom number ``k`` as the file names it: ``O3 (atom 3)``."""
    return f"{atoms[k - 1][1]} (atom {k})" if 0 < k <= len(atoms) else f"atom {k}"


def _check_lone_pairs(block: str, id: str, first: int, atoms: list, pairs: dict, partners: dict,
                      after: Optional[int]) -> None:
    """A ``MoleculeError`` naming the line of a lone pair that cannot be dropped safely: one
    bonded to two atoms or to another lone pair (no lone pair of one atom), or one listed before
    atom ``after`` of a record with a UNITY_ATOM_ATTR section, whose charges RDKit, numbering the
    atoms without the lone pairs, gives to other atoms (methoxide's -1 to an H, O left short)."""
    for k, n in pairs.items():
        if len(partners[k]) > 1 or partners[k] & pairs.keys():
            bonded = ", ".join(_label(atoms, p) for p in sorted(partners[k]))
            raise MoleculeError(id, f"line {first + n}: lone pair {_label(atoms, k)} is bonded to {bonded}: a lone "
                                    "pair (type LP) is one atom's, bonded to it alone, so it cannot be dropped; fix "
                                    "its bonds")
    if after is not None and _states_charges(block):
        k = min(pairs)
        raise MoleculeError(id, f"line {first + pairs[k]}: lone pair {_label(atoms, k)} comes before atom "
                                f"{_label(atoms, after)}, and RDKit numbers the atoms without lone pairs, so it would "
                                "give the charges of the @<TRIPOS>UNITY_ATOM_ATTR section to other atoms: list the "
                                "lone pairs after the atoms, or remove them")


def _lone_pair_note(atoms: list, pairs: dict, partners: dict, after: Optional[int]) -> str:
    """The note naming the lone pairs dropped and the atoms they sat on; where one was listed
    before atom ``after``, how the atoms after it are numbered now (RDKit's numbers, which
    messages use)."""
    shown = [f"{_label(atoms, k)} on {', '.join(_label(atoms, p) for p in partners[k]) or 'no atom'}"
             for k in list(pairs)[:10]]
    more = f" and {len(pairs) - 10} more" if len(pairs) > 10 else ""
    renumbered = "" if after is None else (
        f"; the atoms listed after a lone pair are numbered without it (the file's atom {after} is atom "
        f"{after - sum(1 for k in pairs if k < after)})")
    counted = f"{len(pairs)} lone pair{'s' if len(pairs) > 1 else ''}"
    return (f"{counted} (MOL2 type LP: a lone pair is not an atom) dropped, bonds and all: {', '.join(shown)}"
            f"{more}{renumbered}")


def _file_atoms(block: str, mol: Chem.Mol, id: str) -> list[tuple[int, int, list[str]]]:
    """(atom number, index in the record, fields) of the file's atom line of each of RDKit's
    atoms, in RDKit's order: the ATOM section's lines but its lone pairs, which RDKit drops."""
    atoms = [(k, n, fields) for k, (n, fields) in enumerate(_atom_lines(block), 1) if not _is_lone_pair(fields)]
    if len(atoms) != mol.GetNumAtoms():  # another RDKit, reading lone pairs as atoms
        raise MoleculeError(id, f"RDKit read {mol.GetNumAtoms()} atoms from the {len(atoms)} atom lines that are not "
                                "lone pairs, so its atoms cannot be matched to the file's lines")
    return atoms


def _pseudo_atoms(mol: Chem.Mol, block: str, id: str, first: int) -> None:
    """A ``MoleculeError`` naming the line of the first atom RDKit read as a dummy (atomic number
    0: ``Du``, ``Du.C``, ``*``) or as a query atom (the upper-case query types ``ANY``, ``HAL``,
    ``HET``, ``HEV``). A dummy is a placeholder, not an element: a molecule with one has no one
    structure to draw or fingerprint. Was: refused later without its line or type, in the words
    of molfile query features, or (``HET`` read as N) as an atom short of bonds."""
    odd = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 0 or a.HasQuery()]
    if not odd:
        return
    k, n, fields = _file_atoms(block, mol, id)[odd[0]]
    if fields[5].split(".")[0].upper() in _QUERY_TYPES:
        raise _query_type(id, first + n, fields, k)
    raise MoleculeError(id, f"line {first + n}: atom {fields[1]} (atom {k}) has the type {fields[5]!r}, a dummy atom "
                            "(atomic number 0: Du and Du.C are placeholders, not elements), so the molecule has no "
                            "one structure to draw or fingerprint: give the atom its element's SYBYL type, or remove "
                            "it and its bonds")


def _unity_lines(block: str, id: str, first: int):
    """(index in the record, atom number, attribute fields) of each attribute line of the
    record's @<TRIPOS>UNITY_ATOM_ATTR section: each atom's entry is a line ``atom count``
    and ``count`` lines ``name value``. One that does not read so is an error naming its line."""
    lines = list(_section_lines(block, "UNITY_ATOM_ATTR"))
    at = 0
    while at < len(lines):
        n, head = lines[at]
        if len(head) < 2 or not head[0].isdigit() or not head[1].isdigit():
            raise MoleculeError(id, f"line {first + n}: the @<TRIPOS>UNITY_ATOM_ATTR section has {' '.join(head)!r} "
                                    "where an atom number and its count of attribute lines should be")
        attributes = lines[at + 1:at + 1 + int(head[1])]
        if len(attributes) < int(head[1]):
            raise MoleculeError(id, f"line {first + n}: the @<TRIPOS>UNITY_ATOM_ATTR section says {head[1]} attribute "
                                    f"lines follow, and {len(attributes)} do")
        for m, fields in attributes:
            yield m, int(head[0]), fields
        at += 1 + len(attributes)


def _stated_charges(mol: Chem.Mol, block: str, id: str, first: int) -> None:
    """Set, in place, each formal charge the UNITY_ATOM_ATTR section states as ``charge N`` (Open
    Babel's spelling, which RDKit ignores: see the module docstring). Atoms are numbered by their
    place in the ATOM section, as RDKit numbers them for its ``AtomExpr`` charges. A charge on
    no atom of the record, or one that an ``AtomExpr`` charge of the same atom contradicts, is an
    error naming its line."""
    stated = [(m, k, fields) for m, k, fields in _unity_lines(block, id, first) if fields[0].lower() == "charge"]
    if not stated:
        return
    index = {k: i for i, (k, _, _) in enumerate(_file_atoms(block, mol, id))}  # lone pairs dropped
    for m, k, fields in stated:
        value = fields[1] if len(fields) > 1 else ""
        if not re.fullmatch(r"[+-]?\d+", value) or k not in index:
            what = f"atom {k}, which is no atom of the record" if re.fullmatch(r"[+-]?\d+", value) else f"{value!r}"
            raise MoleculeError(id, f"line {first + m}: the @<TRIPOS>UNITY_ATOM_ATTR section gives the charge "
                                    f"{what}: give an integer charge to an atom of the @<TRIPOS>ATOM section")
        atom = mol.GetAtomWithIdx(index[k])
        if atom.GetFormalCharge() not in (0, int(value)):
            raise MoleculeError(id, f"line {first + m}: the @<TRIPOS>UNITY_ATOM_ATTR section gives atom "
                                    f"{atom_names([atom.GetIdx()], mol)} the charge {int(value)} and, as AtomExpr, "
                                    f"{atom.GetFormalCharge()}: give it one charge")
        atom.SetFormalCharge(int(value))


def _carboxylates(mol: Chem.Mol, id: str) -> None:
    """Each carboxylate (or other centre) whose bonds to its O.co2 atoms RDKit read aromatic,
    ``ar`` as Open Babel writes them, kekulized in place: each O.co2 of charge -1 (stated,
    ``_stated_charges``; one in a carboxylate, two in a carbonate) single-bonded, the others double. RDKit does so by type itself only
    in a record without a UNITY_ATOM_ATTR section (there the first O is the anion); here the
    file's charges say which O are anions, and where they do not (none, or all, at -1) it is
    an error naming the atoms. An O.co2 has one bond, so the bond is in no ring."""
    groups: dict[int, list] = {}  # centre -> its aromatic bonds to an O.co2
    for bond in bonds(mol):
        for oxygen, centre in ((bond.GetBeginAtom(), bond.GetEndAtom()), (bond.GetEndAtom(), bond.GetBeginAtom())):
            if bond.GetIsAromatic() and oxygen.GetDegree() == 1 and oxygen.HasProp("_TriposAtomType") \
                    and oxygen.GetProp("_TriposAtomType") == "O.co2":
                groups.setdefault(centre.GetIdx(), []).append(bond)
    for at, group in groups.items():
        centre = mol.GetAtomWithIdx(at)
        oxygens = [bond.GetOtherAtom(centre) for bond in group]
        charges = [oxygen.GetFormalCharge() for oxygen in oxygens]
        if len(group) < 2 or not 0 < charges.count(-1) < len(group) or any(c not in (0, -1) for c in charges):
            raise MoleculeError(id, f"O.co2 atoms {atom_names([o.GetIdx() for o in oxygens], mol)} are bonded 'ar' to "
                                    f"{atom_names([at], mol)} with charges {charges}, so the file does not say which "
                                    "O is the anion (one O.co2 of charge -1, stated in the @<TRIPOS>UNITY_ATOM_ATTR "
                                    "section; none: an acid whose H the file left out?): state it, or write the bonds "
                                    "1 and 2")
        for bond, oxygen in zip(group, oxygens):
            bond.SetBondType(Chem.BondType.SINGLE if oxygen.GetFormalCharge() else Chem.BondType.DOUBLE)
            bond.SetIsAromatic(False)
            oxygen.SetIsAromatic(False)
        centre.SetIsAromatic(any(mol.GetBondBetweenAtoms(at, n.GetIdx()).GetIsAromatic() for n in centre.GetNeighbors()))


def _unknown_type(block: str, id: str, first: int, messages: list[str]) -> Optional[MoleculeError]:
    """A ``MoleculeError`` naming the atom line whose SYBYL type names no element RDKit knows,
    when RDKit failed for it (``Any``, ``Hal``, ``Het``, ``Hev``: query types, not atoms); was
    RDKit's C++ "Post-condition Violation" text with its build path. None otherwise."""
    said = next((m for m in (re.search(r"Element '([^']*)' not found", m) for m in messages) if m), None)
    if said is None:
        return None
    for n, fields in _atom_lines(block):
        if fields[5].split(".")[0] == said.group(1):
            return _query_type(id, first + n, fields, fields[0])
    return MoleculeError(id, f"an atom type names no element ({said.group(1)!r}): give each atom its element's "
                             "SYBYL type")


def _parse(block: str, id: str, first: int) -> tuple[Chem.Mol, list[str], list[str]]:
    """(molecule, notes, RDKit's messages) of one record, unsanitised, its lone pairs dropped
    (``_lone_pairs``), its metals neutral; no dummy or query atoms (``_pseudo_atoms``)."""
    block, dropped = _lone_pairs(block, id, first)
    with rdkit_messages() as messages:
        mol = Chem.MolFromMol2Block(block, sanitize=False, removeHs=False)
    if mol is None:
        raise _unknown_type(block, id, first, messages) or MoleculeError(
            id, with_messages("unparseable MOL2 record", messages))
    if dropped:
        _file_atoms(block, mol, id)  # that RDKit dropped them (its reader does; another version might not)
    _pseudo_atoms(mol, block, id, first)
    # without hydrogens RDKit guessed every charge (``_check_hydrogens`` refuses such a record
    # by its charges: neutralised first, [AuCl4]- read as a neutral AuCl4, was refused)
    guessed = any("no explicit hydrogens" in m for m in messages)
    # a UNITY_ATOM_ATTR section states charges RDKit reads (`AtomExpr -1`) and Open Babel's
    # (`charge -1`), which it ignores: not made up
    stated = _states_charges(block)
    if stated:
        _stated_charges(mol, block, id, first)
        _carboxylates(mol, id)
    # RDKit's "no explicit hydrogens ... needed for formal charge estimation" where the file
    # stated its charges (it estimated none) would say they were guessed
    said = [m for m in messages if not (stated and "needed for formal charge estimation" in m)]
    return mol, dropped + as_notes(said) + ([] if guessed or stated else _neutral_metals(mol)), messages


def _read_record(block: str, id: str, first: int, max_heavy: Optional[int]):
    """(sanitised molecule, notes, RDKit's messages) of one record. Pyrrole-type N typed N.ar
    (``_retype_pyrrole_n``) are retyped only when RDKit cannot kekulize the record as written,
    and kept so only when it then can."""
    mol, notes, messages = _parse(block, id, first)
    try:
        return mol, notes + sanitize(mol, id, max_heavy), messages
    except MoleculeError as error:
        retyped, named = _retype_pyrrole_n(block)
        if "kekulize" not in error.reason or not named:
            raise
        try:
            mol, notes, messages = _parse(retyped, id, first)
            notes += sanitize(mol, id, max_heavy)
        except MoleculeError:
            raise error from None
    note = (f"N.ar atoms with three bonds read as N.pl3 (pyrrole-type N, which RDKit cannot kekulize as N.ar): "
            f"{', '.join(named)}")
    return mol, notes + [note], messages


@register_reader(".mol2", capped=True)
def read_mol2(handle, name: str, max_heavy: Optional[int] = None) -> Iterator[ParsedStructure]:
    blocks = re.split(r"(?m)^(?=@<TRIPOS>MOLECULE)", handle.read())
    head, blocks = blocks[0], blocks[1:]
    if head.strip() and not head.lstrip().startswith("#"):
        id = f"{name}#header"
        yield ParsedStructure(None, id, error=MoleculeError(id, "text before the first @<TRIPOS>MOLECULE"))
    first = head.count("\n") + 1  # the file line of the record's first line
    for i, block in enumerate(blocks):
        lines = block.splitlines()
        id = lines[1].strip() if len(lines) > 1 and lines[1].strip() else f"{name}#{i}"
        start, first = first, first + block.count("\n")
        try:
            _check_control(block, f"{name}#{i}", start)  # the name may be the damage: file#index
            _check_counts(block, id)
            mol, notes, messages = _read_record(block, id, start, max_heavy)
            _check_hydrogens(mol, id, messages, _states_charges(block))
            if mol.GetNumConformers() == 0:
                raise MoleculeError(id, "record has no coordinates")
        except MoleculeError as error:
            yield ParsedStructure(i, id, error=error)
        else:
            yield ParsedStructure(i, id, mol=mol, notes=notes)
