"""SMILES list reader (``.smi``, ``.txt``): one ``SMILES [id]`` per line, streamed.

Blank lines and ``#`` comments are skipped; a first line whose first word is ``smiles``
is a header. Id: the words after the SMILES, else ``file#line`` (0-based).
No coordinates: the 3D policy generates them (``from-file`` fails every record).
"""

from __future__ import annotations

from typing import Iterator

from .base import ParsedStructure, register_reader

__all__ = ["read_smiles"]


@register_reader(".smi", ".txt")
def read_smiles(handle, name: str) -> Iterator[ParsedStructure]:
    for i, line in enumerate(handle):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if i == 0 and words[0].lower() == "smiles":
            continue
        yield ParsedStructure(i, " ".join(words[1:]) or f"{name}#{i}", smiles=words[0])
