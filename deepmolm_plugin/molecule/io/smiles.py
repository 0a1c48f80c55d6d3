"""SMILES list reader (``.smi``, ``.txt``): one ``SMILES [id]`` per line, streamed.

Blank lines and ``#`` comments are skipped; the first other line is a header if its first
word is ``smiles`` (comment lines may come before it). A CXSMILES extension
(``C[C@H](O)CC |&1:1| name``) stays with its SMILES: it was taken for the start of the id,
and its enhanced stereo or labels were lost. Id: the words after the SMILES, else
``file#line`` (0-based). No coordinates: the 3D policy generates them (``from-file``
fails every record).

A file of another structure format saved as ``.txt`` (or ``.smi``) is one error for the
file, naming the format and its suffix (`sniff.other_format`, asked by the read layer for
every reader: an XYZ or MOL2 file, a molfile, a table with a ``smiles`` column; read as
SMILES lines, some of their lines parsed: ``O 0.0 0.0 0.0`` gave an oxygen atom named
``0.0 0.0 0.0``). For the same reason a line that is an element symbol and three numbers
(an XYZ atom line) fails as that, not as the element's SMILES.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import MoleculeError
from .base import ParsedStructure, register_reader
from .sniff import is_xyz_atom_line

__all__ = ["read_smiles"]


@register_reader(".smi", ".txt")
def read_smiles(handle, name: str) -> Iterator[ParsedStructure]:
    first = True
    for i, line in enumerate(handle):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if first and words[0].lower() == "smiles":
            first = False
            continue
        first = False
        if is_xyz_atom_line(words):
            yield ParsedStructure(i, f"{name}#{i}", error=MoleculeError(
                f"{name}#{i}", f"line {line.strip()!r} is an XYZ atom line (element x y z), not 'SMILES [id]'"))
            continue
        smiles, rest = words[0], words[1:]
        if rest and rest[0].startswith("|"):  # the extension ends at the next '|' (it may hold spaces)
            end = next((n for n, word in enumerate(rest) if word.endswith("|") and (n or len(word) > 1)), len(rest) - 1)
            smiles, rest = " ".join([smiles] + rest[: end + 1]), rest[end + 1 :]
        yield ParsedStructure(i, " ".join(rest) or f"{name}#{i}", smiles=smiles)
