"""XYZ reader (``.xyz``): one or more frames, read whole.

Each frame: a count line, a comment line, ``symbol x y z`` lines. Bonds, bond orders and
formal charges are perceived later by RDKit's ``rdDetermineBonds`` (needs the hydrogens),
with total charge 0 unless the comment holds ``charge=N`` (``total_charge=N`` too; an integer:
``charge=0.5`` fails the frame, so does any other mention of a charge; with a SMILES given
for the file, a stated charge must be the SMILES' total). Element symbols are
case-insensitive, or atomic numbers; ``D``/``T`` are hydrogen isotopes. Id: ``file#frame``.
A count line that disagrees with the atom lines fails that frame and stops reading: the next frame boundary
cannot be trusted after it.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from ..errors import MoleculeError
from .base import ParsedStructure, register_reader

__all__ = ["read_xyz"]

# The number as written, decimals included: 'charge=-1.5' read as -1 before.
# `charge` after anything but a letter or digit: `total_charge=2` is read too (with \b before
# it, `_` joined it to "total" and the paraquat dication was perceived as a neutral molecule).
_CHARGE = re.compile(r"(?<![a-z0-9])charge\s*=\s*([+-]?\d+(?:\.\d*)?)", re.IGNORECASE)
# Every other statement of a charge (`Charge: -1`, `totalcharge=2`) fails the frame: read as
# charge 0 before. Not a word that only contains it: `uncharged`, `Mulliken charges`, ASE's
# `Properties=...:initial_charges:R:1` state no total charge.
_MENTIONS_CHARGE = re.compile(r"(?<![a-z0-9])charge(?![a-z])|[a-z]charge\s*=", re.IGNORECASE)


def _is_atom_line(line: str) -> bool:
    words = line.split()
    try:
        [float(w) for w in words[1:4]]
    except ValueError:
        return False
    return len(words) >= 4


def _rest_unread(lines: list, start: int) -> str:
    """What a frame that cannot be delimited leaves unread: the file's lines from its own on,
    where the next frames begin is unknown (was: later frames dropped without a word)."""
    rest = sum(1 for line in lines[start:] if line.strip())
    return f"; reading stopped: lines {start + 1}-{len(lines)} ({rest} not blank) were not read"


@register_reader(".xyz")
def read_xyz(handle, name: str) -> Iterator[ParsedStructure]:
    lines = handle.read().splitlines()
    pos, index = 0, 0
    while pos < len(lines):
        if not lines[pos].strip():
            pos += 1
            continue
        id = f"{name}#{index}"
        try:
            count = int(lines[pos].split()[0])
            if count < 0:  # a negative count would slice the frame from the end of the file
                raise ValueError(count)
        except ValueError:
            reason = f"line {pos + 1}: expected an atom count, got {lines[pos].strip()[:40]!r}"
            yield ParsedStructure(index, id, error=MoleculeError(id, reason + _rest_unread(lines, pos)))
            return
        comment = lines[pos + 1] if pos + 1 < len(lines) else ""
        body = lines[pos + 2 : pos + 2 + count]
        pos += 2 + count
        found = sum(_is_atom_line(b) for b in body)
        extra = 0
        while pos + extra < len(lines) and _is_atom_line(lines[pos + extra]):
            extra += 1
        if found != count or extra:
            # both numbers: a blank line inside a frame read as "says 9, found 9" before
            reason = (f"count line says {count} atoms; the {len(body)} lines after the comment hold {found} "
                      f"atom lines" + (f", and {extra} more atom lines follow" if extra else ""))
            yield ParsedStructure(index, id, error=MoleculeError(id, reason + _rest_unread(lines, pos - 2 - count)))
            return
        elements = [b.split()[0] for b in body]
        coords = np.array([[float(v) for v in b.split()[1:4]] for b in body])  # [N, 3]
        stated = _CHARGE.findall(comment)
        charge = float(stated[0]) if stated else None
        if len(_MENTIONS_CHARGE.findall(comment)) > len(stated) or len({float(c) for c in stated}) > 1:
            reason = (f"line {pos - count}: the comment line {comment.strip()[:80]!r} states a charge, but only "
                      "`charge=N`, once, is read: write it so")
            yield ParsedStructure(index, id, error=MoleculeError(id, reason))
        elif charge is not None and not charge == int(charge):
            reason = f"line {pos - count}: total charge {stated[0]} in the comment line is not an integer"
            yield ParsedStructure(index, id, error=MoleculeError(id, reason))
        else:
            yield ParsedStructure(index, id, elements=elements, coords=coords,
                                  charge=None if charge is None else int(charge))
        index += 1
