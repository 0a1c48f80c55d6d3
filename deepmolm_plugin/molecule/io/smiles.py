"""SMILES list reader (``.smi``, ``.txt``): one ``SMILES [id]`` per line, streamed.

Blank lines and ``#`` comments are skipped; the first other line is a header if its first
word is ``smiles`` (comment lines may come before it). A CXSMILES extension
(``C[C@H](O)CC |&1:1| name``) stays with its SMILES: it was taken for the start of the id,
and its enhanced stereo or labels were lost. Id: the words after the SMILES, else
``file#line`` (0-based). No coordinates: the 3D policy generates them (``from-file``
fails every record).

A file of another structure format saved as ``.txt`` (or ``.smi``) is one error for the
file, naming the format and its suffix: an XYZ file (a first line that is only an atom
count), an MDL molfile (a ``V2000``/``V3000`` count line among the first four lines),
MOL2 (``@<TRIPOS>``), PDB (a first line starting with a PDB record name), or a table whose
header names a ``smiles`` column, separated by commas, semicolons or tabs (``id,smiles``:
was one "unparseable SMILES" per row; ``smiles<TAB>id`` is a SMILES list's header). Read as
SMILES lines, some of their lines parsed: ``O 0.0 0.0 0.0`` gave an oxygen atom named
``0.0 0.0 0.0``. For the same reason a line that is an element symbol and three numbers
(an XYZ atom line) fails as that, not as the element's SMILES.
"""

from __future__ import annotations

import itertools
import re
from typing import Iterator, Optional, Sequence

from ...csv_table import columns_named
from ..errors import MoleculeError
from .base import ParsedStructure, register_reader

__all__ = ["read_smiles"]

_PDB_RECORDS = ("HEADER", "TITLE", "COMPND", "REMARK", "CRYST1", "MODEL", "ATOM", "HETATM")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_ELEMENT = re.compile(r"[A-Z][a-z]?|[a-z]{1,2}|\d{1,3}")  # as an XYZ atom line writes it


def other_format(head: Sequence[str]) -> Optional[str]:
    """Which other structure format the first lines of a file are, as 'format (why):
    suffix', or None."""
    first = head[0].split() if head else []
    if len(first) == 1 and first[0].isdigit():
        return f"an XYZ file (its first line is only an atom count, {first[0]}): name it .xyz"
    if any(line.split()[-1:] in (["V2000"], ["V3000"]) for line in head[:4]):
        return "an MDL molfile (a V2000/V3000 count line): name it .mol or .sdf"
    if any(line.startswith("@<TRIPOS>") for line in head):
        return "a Tripos MOL2 file (@<TRIPOS> sections): name it .mol2"
    if first and head[0][:6].rstrip() in _PDB_RECORDS:
        return f"a PDB file (a {head[0][:6].rstrip()} record): name it .pdb"
    return _table(head)


# a table's separators, as `_table` names them ("a CSV" is what the .csv reader reads)
_SEPARATORS = {",": "a CSV", ";": "a semicolon-separated table", "\t": "a tab-separated table"}


def _table(head: Sequence[str]) -> Optional[str]:
    """'a CSV (header 'id,smiles'): name it .csv' when the first line that is not blank or a
    comment is a table's header naming a ``smiles`` column (any case, as the .csv reader
    finds it: ``csv_table.columns_named``) that the SMILES-list reader would not take for its
    header (a first word ``smiles``): then every row failed as an "unparseable SMILES" ('a1,CCO'),
    one failure line per row of an Excel export. A tab-separated ``smiles<TAB>id`` header is a
    SMILES list's own and is not matched."""
    line = next((line for line in head if line.strip() and not line.lstrip().startswith("#")), "")
    if line.split()[:1] and line.split()[0].lower() == "smiles":
        return None
    for separator, what in _SEPARATORS.items():
        fields = [field.strip().strip('"\'') for field in line.split(separator)]
        if len(fields) > 1 and columns_named(fields, "smiles"):
            shown = line.strip()[:60]
            fix = "name it .csv" if separator == "," else "save it as a comma-separated .csv"
            return f"{what} (header {shown!r}): {fix}"
    return None


def _xyz_atom_line(words: Sequence[str]) -> bool:
    return len(words) == 4 and bool(_ELEMENT.fullmatch(words[0])) and all(_NUMBER.fullmatch(w) for w in words[1:])


@register_reader(".smi", ".txt")
def read_smiles(handle, name: str) -> Iterator[ParsedStructure]:
    head = list(itertools.islice(handle, 4))
    problem = other_format(head)
    if problem:
        reason = f"looks like {problem}; .smi and .txt files are SMILES lists ('SMILES [id]' per line)"
        yield ParsedStructure(None, name, error=MoleculeError(name, reason))
        return
    first = True
    for i, line in enumerate(itertools.chain(head, handle)):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if first and words[0].lower() == "smiles":
            first = False
            continue
        first = False
        if _xyz_atom_line(words):
            yield ParsedStructure(i, f"{name}#{i}", error=MoleculeError(
                f"{name}#{i}", f"line {line.strip()!r} is an XYZ atom line (element x y z), not 'SMILES [id]'"))
            continue
        smiles, rest = words[0], words[1:]
        if rest and rest[0].startswith("|"):  # the extension ends at the next '|' (it may hold spaces)
            end = next((n for n, word in enumerate(rest) if word.endswith("|") and (n or len(word) > 1)), len(rest) - 1)
            smiles, rest = " ".join([smiles] + rest[: end + 1]), rest[end + 1 :]
        yield ParsedStructure(i, " ".join(rest) or f"{name}#{i}", smiles=smiles)
