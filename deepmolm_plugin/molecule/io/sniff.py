"""Which structure format a file's first lines are, whatever its name says.

A file is read by the reader of its suffix (`read.reader_for`); one of another format under
that name (an SDF saved as ``.csv``, a MOL2 as ``.sdf``, an XYZ as ``.txt``) was read as the
suffix says and failed with that reader's words about lines it could not make sense of
("CSV has no 'smiles' column (columns: ['     RDKit          2D'])", "text before the first
@<TRIPOS>MOLECULE", "no atoms read from PDB", or one "unparseable SMILES" per line). Now the
read layer asks `other_format` first and fails the file once, naming the format it looks
like and the suffix to give it. Each test is a format's own mark, checked in this order:

- a table: a header naming a ``smiles`` column (any case), separated by commas, semicolons
  or tabs (``smiles<TAB>id`` is a SMILES list's own header, not a table's);
- MDL molfile / SDF: a ``V2000`` or ``V3000`` counts line among the first four lines;
- Tripos MOL2: a ``@<TRIPOS>`` section line;
- PDB: a first line that starts with a PDB record name (``HEADER``, ``ATOM``...);
- XYZ: a first line that is only an atom count, and a third line (if any) that is an atom
  line (element and three numbers), so that an SDF titled with a number is not one.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

from ...csv_table import columns_named

HEAD_LINES = 6  # the lines `other_format` looks at
_CHUNK = 65536

_PDB_RECORDS = ("HEADER", "TITLE", "COMPND", "REMARK", "CRYST1", "MODEL", "ATOM", "HETATM")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_ELEMENT = re.compile(r"[A-Z][a-z]?|[a-z]{1,2}|\d{1,3}")  # as an XYZ atom line writes it

# what the reader of each suffix reads, for the message ("... .smi and .txt files are SMILES lists")
READS = {
    ".smi": ".smi and .txt files are SMILES lists ('SMILES [id]' per line)",
    ".sdf": ".sdf, .sd and .mol files are MDL molfiles (records separated by '$$$$' lines)",
    ".mol2": ".mol2 files are Tripos MOL2 files",
    ".pdb": ".pdb files are PDB files",
    ".xyz": ".xyz files are XYZ files (an atom count, a comment, 'element x y z' lines)",
    ".csv": ".csv files are comma-separated tables with a 'smiles' column",
}
_FAMILY = {".txt": ".smi", ".sd": ".sdf", ".mol": ".sdf"}  # suffixes one reader reads


def is_xyz_atom_line(words: Sequence[str]) -> bool:
    """An XYZ atom line's words: an element (symbol or atomic number) and three numbers."""
    return len(words) == 4 and bool(_ELEMENT.fullmatch(words[0])) and all(_NUMBER.fullmatch(w) for w in words[1:])


def other_format(head: Sequence[str], suffix: str) -> Optional[str]:
    """Why a file named with `suffix` whose first lines are `head` is of another format, as
    "looks like <format> (<its mark>): <the fix>; <what this suffix's files are>", or None
    (its own format, or none known)."""
    found = _sniffed(head)
    if found is None:
        return None
    own, said = found
    mine = _FAMILY.get(suffix.lower(), suffix.lower())
    if own == mine:
        return None
    reads = READS.get(mine)
    return f"looks like {said}" + (f"; {reads}" if reads else "")


def looks_like(head: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(the suffix of the format `head` looks like, what it is: 'an MDL molfile (a V2000/V3000
    count line)'), or None: for callers that choose a reader otherwise than by suffix
    (deepmolm-prepare's --format)."""
    found = _sniffed(head)
    return None if found is None else (found[0], found[1].rsplit(": ", 1)[0])


def head_of(path) -> List[str]:
    """The first HEAD_LINES lines of the text file `path` (what `other_format` and
    `looks_like` read), from its first 64 KiB at most (a file of one long line is not read
    whole)."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        return handle.read(_CHUNK).splitlines(keepends=True)[:HEAD_LINES]


def is_blank(path) -> bool:
    """Whether the text file `path` holds nothing but white space (read until it holds more)."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), ""):
            if chunk.strip():
                return False
    return True


def _sniffed(head: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(the suffix of the format `head` looks like, 'format (why): fix'), or None. A table
    header first: a CSV may hold molfiles in a quoted column, whose lines end in V2000."""
    table = _table(head)
    if table is not None:
        return table
    if any(line.split()[-1:] in (["V2000"], ["V3000"]) for line in head[:4]):
        return ".sdf", "an MDL molfile (a V2000/V3000 count line): name it .mol or .sdf"
    if any(line.startswith("@<TRIPOS>") for line in head):
        return ".mol2", "a Tripos MOL2 file (@<TRIPOS> sections): name it .mol2"
    first = head[0].split() if head else []
    # a record name fills columns 1-6, then a space ("HEADER,smiles_str" is a table's header)
    if first and head[0][:6].rstrip() in _PDB_RECORDS and head[0][6:7] in ("", " ", "\r", "\n"):
        return ".pdb", f"a PDB file (a {head[0][:6].rstrip()} record): name it .pdb"
    if len(first) == 1 and first[0].isdigit() and (len(head) < 3 or is_xyz_atom_line(head[2].split())):
        return ".xyz", f"an XYZ file (its first line is only an atom count, {first[0]}): name it .xyz"
    return None


# a table's separators, as `_table` names them ("a CSV" is what the .csv reader reads)
_SEPARATORS = {",": "a CSV", ";": "a semicolon-separated table", "\t": "a tab-separated table"}


def _table(head: Sequence[str]) -> Optional[Tuple[str, str]]:
    """('.csv', "a CSV (header 'id,smiles'): name it .csv") when the first line that is not
    blank or a comment is a table's header naming a ``smiles`` column (any case, as the
    .csv reader finds it: ``csv_table.columns_named``) that the SMILES-list reader would not
    take for its header (a first word ``smiles``): read as a SMILES list every row failed as
    an "unparseable SMILES" ('a1,CCO'), one failure line per row of an Excel export."""
    line = next((line for line in head if line.strip() and not line.lstrip().startswith("#")), "")
    if line.split()[:1] and line.split()[0].lower() == "smiles":
        return None
    for separator, what in _SEPARATORS.items():
        fields = [field.strip().strip('"\'') for field in line.split(separator)]
        if len(fields) > 1 and columns_named(fields, "smiles"):
            shown = line.strip()[:60]
            fix = "name it .csv" if separator == "," else "save it as a comma-separated .csv"
            return ".csv", f"{what} (header {shown!r}): {fix}"
    return None
