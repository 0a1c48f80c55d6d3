"""SDF / MOL reader (``.sdf``, ``.sd``, ``.mol``): MDL V2000 and V3000, streamed.

Any number of ``$$$$``-separated records; a trailing unterminated record counts. Record
id: the title line, else ``file#index``. A record without an ``M  END`` line is truncated
and fails; one with two (a missing ``$$$$``: RDKit read the first molecule and dropped the
second as bad data; `molfile_starts`) fails too, and counts as two records. Option
``smiles_field`` names a data field holding the record's SMILES, which
is matched onto the file's graph (``matching.map_smiles``; a mismatch fails the record, and so do
stereo or isotopes it states that the file contradicts: ``matching.label_differences``).
A record that writes out its hydrogens as atoms but has atoms short of bonds (RDKit would give
them implicit H) lost bond orders, charges or radical marks and fails (``base.check_hydrogens_kept``;
was: read as another molecule, benzoic acid with single bonds as cyclohexane-methanediol); a
drawing's stereo H and polar-H files are not suspect.
A V2000 atom block is read as the CTfile spec says where RDKit does not (``atom_block_marks``):
charge field 4 (a doublet radical, which RDKit drops) fails the record, and `M  ISO` lines
supersede every atom-block mass difference. A data field named like a molecule property RDKit
or this package reads fails the record, naming the field (``check_private_fields``): RDKit reads
every field into the molecule property of its name, so `<_Name>` replaced the title line as the
record id, `<_molLinkNodes>` made it a Markush structure, and `<__computedProps>` or
`atom.iprop._ringStereoAtoms` crashed reading ("bad any_cast"). Other '_' fields are read as
data, as before: RDKit's SDWriter writes what its readers set (`_TriposChargeType` from MOL2,
`_FileComments` from XYZ, `_CXSMILES_Data`), and users' scripts write their own (`_ID`).
"""

from __future__ import annotations

import re
from typing import Iterator, Optional

from rdkit import Chem

from ..errors import MoleculeError, as_notes, atom_names, rdkit_messages, with_messages
from ..matching import label_differences, map_smiles
from ..sanitize import parse_smiles, sanitize
from .base import (ParsedStructure, check_ascii, check_control, check_hydrogens_kept, control_problem, register_reader,
                   title_of)

__all__ = ["check_molfile_control", "molfile_starts", "numbered_blocks", "parse_sdf_block", "read_sdf", "sdf_blocks"]


# A molfile's counts line: V2000's "  3  2  0  0  0  0  0  0  0  0999 V2000", V3000's
# "  0  0  0     0  0            999 V3000" (the molfile's 4th line).
COUNTS_LINE = re.compile(r"[ \d]{6}[ \d]*V[23]000\s*")


def molfile_starts(lines: list) -> list:
    """The line (0-based, in the block's `lines`) where each molfile of one ``$$$$`` block
    starts: ``[0]`` for a record, more when a lost ``$$$$`` ran records together. A
    molfile follows an ``M  END`` when a counts line comes after it (its header, 3 lines
    before, starts it) or another ``M  END`` does (then where it starts is not known: at
    the line after the first one). The one count of records in a block, for `read_sdf`,
    `sdf_blocks` and the deepmolm-prepare sdf reader alike."""
    ends = [n for n, line in enumerate(lines) if line.strip() == "M  END"]
    starts = [0]
    for k, end in enumerate(ends):
        following = ends[k + 1] if k + 1 < len(ends) else len(lines)
        counts = next((n for n in range(end + 1, following) if COUNTS_LINE.fullmatch(lines[n].rstrip("\r\n"))), None)
        if counts is not None:
            starts.append(max(counts - 3, end + 1))
        elif k + 1 < len(ends):
            starts.append(end + 1)
    return starts


def sdf_blocks(lines: Iterator[str]) -> Iterator[str]:
    """Record texts of an SDF, split on ``$$$$`` lines; a trailing unterminated record counts.
    A block of k records run together (a ``$$$$`` lost: `molfile_starts`) is given k times,
    whole (each fails to parse, saying so), so that records are counted as `read_sdf`
    counts them: was one text, and every later record's index named the record before it."""
    for _, block in numbered_blocks(lines):
        for _ in molfile_starts(block.splitlines()):
            yield block


def numbered_blocks(lines: Iterator[str]) -> Iterator[tuple[int, str]]:
    """``sdf_blocks`` with the file line (1-based) each record starts at: an error about a
    record names where to look (was: only its title, which a broken record may lack)."""
    block: list[str] = []
    start = 1
    for number, line in enumerate(lines, 1):
        if line.strip() == "$$$$":
            yield start, "".join(block)
            block, start = [], number + 1
        else:
            block.append(line)
    if "".join(block).strip():
        yield start, "".join(block)


def parse_sdf_block(block: str, fallback: str) -> tuple[str, Chem.Mol, list[str]]:
    """(id, unsanitised molecule, RDKit warnings as notes) of one MOL block."""
    if not block.strip():
        raise MoleculeError(fallback, "empty record")
    check_molfile_control(block, fallback)
    lines = block.splitlines()
    title = lines[0].strip() or fallback
    ends = [n for n, line in enumerate(lines) if line.strip() == "M  END"]
    starts = molfile_starts(lines)
    if len(starts) > 1:  # RDKit reads the first molecule and drops the rest as bad data fields
        lead = (f"lines {ends[0] + 1} and {ends[1] + 1} both end a molecule ('M  END')" if len(ends) > 1 else
                f"a second molfile starts at line {starts[1] + 1} of the record")
        following = lines[starts[1]].strip()
        named = f", {following!r}," if following else ""
        raise MoleculeError(title, f"{lead}: the '$$$$' line between two records is missing (it runs into the next "
                                   f"record{named} at line {starts[1] + 1})")
    if not ends and (len(lines) < 4 or not COUNTS_LINE.fullmatch(lines[3].rstrip("\r\n"))):
        # not a molfile at all: RDKit's words cited the '$$$$' line added below, which the file lacks
        raise MoleculeError(title, "unparseable MOL/SDF record: no counts line (a molfile's 4th line, '... V2000') "
                                   "and no 'M  END' line (a SMILES or CSV file named .sdf, or a record cut short?)")
    end = ends[0] if ends else len(lines)
    check_ascii(lines[3:end], title, "connection table", first=4)  # the title and data may be any text
    check_counts(lines[3:end], title)
    supplier = Chem.SDMolSupplier()
    with rdkit_messages() as messages:
        # A blank line before $$$$ ends the last data item: without it RDKit read every
        # field's value with "\n$$$$" appended (a SMILES field then parsed only by luck).
        text = block.rstrip("\r\n") + "\n\n$$$$\n"
        supplier.SetData(text, sanitize=False, removeHs=False, strictParsing=True)
        mol = next(supplier, None)
    if mol is None:
        raise MoleculeError(title, with_messages("unparseable MOL/SDF record", messages))
    if end == len(lines):
        raise MoleculeError(title, "truncated record: no 'M  END' line")
    check_private_fields(mol, lines[end + 1:], title)  # before `title_of`: a `<_Name>` field replaced the title
    id = title_of(mol, fallback)
    return id, mol, as_notes(messages) + atom_block_marks(lines[:end], mol, id)


def molfile_part(n: int) -> str:
    """What line ``n`` (1-based) of a molfile is, for messages."""
    return "the title line" if n == 1 else "the header" if n <= 3 else "the connection table"


def check_molfile_control(block: str, id: str) -> None:
    """A ``MoleculeError`` (``id``: ``file#index``, the title may be the damage) for a control
    character in the record's molfile, its title line to ``M  END``: the lines RDKit reads
    into the molecule and its name. The data items after it are read only where they are
    used (``smiles_field``; deepmolm-prepare's label and text fields). Was: a NUL there
    passed silently (a title 'm\\x001990' became the record's id), or refused the whole file
    when it was in the file's first 64 KiB."""
    lines = block.split("\n")  # at LF only (`check_control`)
    end = next((n for n, line in enumerate(lines) if line.strip() == "M  END"), len(lines))
    check_control(lines[:end + 1], id, molfile_part, counted_in=" of the record")


# An SDF data field RDKit applies to the atoms as a property list (`atom.iprop.NAME`, one value
# an atom); a NAME starting with "_" is one of RDKit's own internal properties
_PRIVATE_FIELD = re.compile(r"^atom\.[ibd]?prop\._")

# The data fields that would be read as something the molfile or RDKit gave (SDMolSupplier sets
# every field as the molecule property of its name, over what the molfile gave): the properties
# RDKit's reader sets from the molfile (its SDWriter never writes them) and those RDKit or this
# package read. `_StereochemDone` (RDKit's mark that it perceived the stereo, written back after
# a JSON round trip) is not among them: it states what reading sets anyway.
_OVERRIDDEN = {"_Name": "the record's title (its id), in place of the title line",
               "_MolFileChiralFlag": "the molfile's chiral flag", "_MolFileInfo": "the molfile's header line 2",
               "_MolFileComments": "the molfile's comment line 3",
               "_molLinkNodes": "the molfile's link nodes ('M  LIN': a Markush structure)",
               "__computedProps": "RDKit's list of computed properties (text there crashed reading)"}


def field_names(data: list) -> list[str]:
    """The names RDKit gives the data items of a record's lines after `M  END`, read as its SD
    parser reads them: a line starting with '>' heads an item named from its first '<' to its
    last '>' (unstripped: `> < X >` is ' X '); the value runs to an empty line (a line of
    spaces is part of it), and a value line starting with '>' heads nothing."""
    names, in_value = [], False
    for line in data:
        if in_value:
            in_value = bool(line.strip()) or line[:1] in (" ", "\t")
        elif line.startswith(">"):
            head = line[1:]
            first, last = head.find("<"), head.rfind(">")
            if first != -1 and last > first + 1:
                names.append(head[first + 1:last])
            in_value = True
    return names


def check_private_fields(mol: Chem.Mol, data: list, id: str) -> None:
    """MoleculeError for a data field that would be read as what the molfile or RDKit gave
    (``_OVERRIDDEN``; ``data``: the record's lines after `M  END`; ``id``: its title line, else
    `file#index`), or that sets one of RDKit's internal atom properties. RDKit sets every field
    as the molecule property of its name: `<_Name>` became the record's id in place of the title
    line (a blank one removed it), `<_molLinkNodes>` failed it as a Markush structure without
    naming the field, `<__computedProps>` crashed reading with a bare "RuntimeError: bad
    any_cast", and `atom.iprop._ringStereoAtoms` (an atom property list) did so later. Other
    '_' fields stay data, as ordinary fields do: RDKit's SDWriter writes the properties its
    readers set (`_TriposChargeType` for a molecule read from MOL2, `_FileComments` from XYZ,
    `_CXSMILES_Data` from a CXSMILES), and refusing them lost every record of such files."""
    private = [name for name in field_names(data) if name in _OVERRIDDEN or _PRIVATE_FIELD.match(name)]
    # the atom lists as RDKit applied them too, for a header read otherwise (asked only now:
    # GetPropNames itself crashed on a `__computedProps` field)
    private = private or [name for name in mol.GetPropNames() if _PRIVATE_FIELD.match(name)]
    if not private:
        return
    name = private[0]
    if name in _OVERRIDDEN:
        raise MoleculeError(id, f"SDF data field {name!r} would be read as {_OVERRIDDEN[name]}: RDKit reads each "
                                "field into the molecule property of its name, and this one is RDKit's own; rename "
                                "or remove the field")
    raise MoleculeError(id, f"SDF data field {name!r} sets RDKit's internal atom property "
                            f"{name.split('.', 2)[2]!r} (a name starting with '_' is RDKit's own "
                            "bookkeeping, not data): rename or remove the field")


def atom_block_marks(table: list, mol: Chem.Mol, id: str) -> list[str]:
    """A V2000 atom block's charge and mass-difference fields as the CTfile spec reads them where
    RDKit does not (``table``: the molfile's lines up to `M  END`); notes for what was not read."""
    if len(table) < 4 or "V3000" in table[3]:
        return []
    atoms = table[4:4 + mol.GetNumAtoms()]
    properties = [line for line in table[4 + mol.GetNumAtoms():] if line.startswith("M  ")]
    check_doublet_field(atoms, properties, mol, id)
    return iso_supersedes(atoms, properties, mol)


def check_doublet_field(atoms: list, properties: list, mol: Chem.Mol, id: str) -> None:
    """MoleculeError for charge field (ccc) 4, "doublet radical", where no `M  CHG` / `M  RAD`
    line supersedes the atom block: RDKit drops it without a word, and the radical was read
    as the closed-shell molecule."""
    if any(line.startswith(("M  CHG", "M  RAD")) for line in properties):
        return
    doublets = [i for i, line in enumerate(atoms) if line[36:39].strip() == "4"]
    if doublets:
        raise MoleculeError(id, f"atom-block charge field 4 (a doublet radical) on atom(s) "
                                f"{atom_names(doublets, mol)}: RDKit does not read it (the atom would be closed-shell); write the radical as an "
                                "'M  RAD' line instead")


# The isotope an atom-block symbol itself states (RDKit reads D and T as 2H and 3H)
_SYMBOL_ISOTOPE = {"D": 2, "T": 3}


def iso_supersedes(atoms: list, properties: list, mol: Chem.Mol) -> list[str]:
    """The CTfile spec: `M  ISO` lines supersede every atom-block mass difference (dd). RDKit
    applied both, so a leftover dd=+2 beside an `M  ISO` on another atom became a 14C: atoms
    the `M  ISO` lines do not list get the isotope of their symbol alone. A note names them."""
    iso = [line[6:].split() for line in properties if line.startswith("M  ISO")]
    if not iso:
        return []
    listed = {int(n) - 1 for fields in iso for n in fields[1::2] if n.isdigit()}
    leftover = [i for i, line in enumerate(atoms) if i not in listed and line[34:36].strip() not in ("", "0")]
    for i in leftover:
        atom = mol.GetAtomWithIdx(i)
        atom.SetIsotope(_SYMBOL_ISOTOPE.get(atoms[i][31:34].strip(), 0))
    if not leftover:
        return []
    return [f"atom-block mass difference of atom(s) {atom_names(leftover, mol)} not read: the record's 'M  ISO' lines "
            "supersede every atom-block mass difference (CTfile)"]


def check_counts(table: list, id: str) -> None:
    """MoleculeError when the counts line (V2000's 4th line, V3000's `M  V30 COUNTS`) declares
    more atoms and bonds than the connection table has lines (each takes at least one): RDKit
    allocated for the declared counts first, 3.2 GB for a 200-byte record declaring 10^8."""
    if not table:
        return
    v3000 = next((line.split() for line in table if line.startswith("M  V30 COUNTS")), None)
    fields = v3000[3:5] if v3000 else [table[0][0:3], table[0][3:6]]
    try:
        atoms, bonds = (int(f) for f in fields)
    except ValueError:  # a malformed counts line: RDKit's own error says so
        return
    if atoms + bonds > len(table):
        raise MoleculeError(id, f"the counts line declares {atoms} atoms and {bonds} bonds, but the connection "
                                f"table has {len(table)} lines")


# what a molfile whose atoms are short of bonds beside its hydrogen atoms lost (`check_hydrogens_kept`),
# and what to write it again with: a tool that drops radical marks left a methoxy radical's O short
# (was: blamed on bond orders or charges alone)
_LOST = "bond orders (bonds written single), charges (an 'M  CHG' line) or radicals (an 'M  RAD' line)"
_WRITE_WITH = "its bond orders, charges and radicals"


def _verify_field(mol: Chem.Mol, id: str, smiles_field: str) -> list[str]:
    if not mol.HasProp(smiles_field):
        raise MoleculeError(id, f"SDF field {smiles_field!r} missing")
    problem = control_problem(mol.GetProp(smiles_field), f"SDF field {smiles_field!r}")
    if problem:  # the field as named (the SMILES check said only "SMILES ... has a control character")
        raise MoleculeError(id, problem)
    template, _ = parse_smiles(mol.GetProp(smiles_field), id)
    map_smiles(mol, template, id, with_h=False, perceived=False,
               said=f"its SDF field {smiles_field!r} ({mol.GetProp(smiles_field)!r})")
    differ = label_differences(mol, template)
    if differ:  # "verified" must mean the stereo and isotopes it states too
        raise MoleculeError(id, f"SDF field {smiles_field!r} contradicts the file's atoms: {'; '.join(differ)}")
    return [f"SDF field {smiles_field!r} verified against the file's atoms"]


@register_reader(".sdf", ".sd", ".mol", options=("smiles_field",), capped=True)
def read_sdf(handle, name: str, smiles_field: Optional[str] = None,
             max_heavy: Optional[int] = None) -> Iterator[ParsedStructure]:
    i = 0  # the record number: a block of k molecules run together (a "$$$$" lost) counts k
    for start, block in numbered_blocks(handle):
        id = f"{name}#{i}"
        try:
            id, mol, notes = parse_sdf_block(block, id)
            notes += sanitize(mol, id, max_heavy)
            check_hydrogens_kept(mol, id, _LOST, write_with=_WRITE_WITH)
            if smiles_field:
                notes += _verify_field(mol, id, smiles_field)
            if mol.GetNumConformers() == 0:
                raise MoleculeError(id, "record has no coordinates")
        except MoleculeError as error:
            # each molecule of a merged block fails, so later records keep their numbers (was:
            # one failure for two, and structure_index 2 gave record 3's molecule, silently)
            yield ParsedStructure(i, error.id, error=error, start=start)
            merged = len(molfile_starts(block.splitlines()))
            for k in range(1, merged):
                yield ParsedStructure(i + k, f"{name}#{i + k}", error=MoleculeError(
                    f"{name}#{i + k}", f"run together with record {i} ({error.id}): {error.reason}"), start=start)
            i += max(merged, 1)
        else:
            yield ParsedStructure(i, id, mol=mol, notes=notes, start=start)
            i += 1
