"""XYZ reader (``.xyz``): one or more frames, read whole.

Each frame: a count line, a comment line, ``symbol x y z`` lines. Bonds, bond orders and
formal charges are perceived later by RDKit's ``rdDetermineBonds`` (needs the hydrogens),
with total charge 0 unless the comment holds ``charge=N`` (``total_charge=N`` too; an integer:
``charge=0.5`` fails the frame, so does any other mention of a charge; with a SMILES given
for the file, a stated charge must be the SMILES' total). Element symbols are
case-insensitive, or atomic numbers; ``D``/``T`` are hydrogen isotopes. Id: ``file#frame``.
An extended-XYZ comment's ``Properties=`` (``name:type:columns`` triples, as ASE writes them)
says which columns hold the element (``species:S:1``) and the coordinates (``pos:R:3``)
(was: ignored, so ``species:S:1:Z:I:1:pos:R:3`` read (Z, x, y) as the coordinates and failed
on valences, and ``pos`` first was "0 atom lines"). Without it the columns are ``symbol x y
z``; so they are for a layout without those two columns, or one that is no such triples, and
a note (or the frame's error) names the layout that was not followed.
A count line that disagrees with the atom lines fails that frame and stops reading: the next frame boundary
cannot be trusted after it.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from ..errors import MoleculeError
from .base import ParsedStructure, check_control, control_problem, register_reader

__all__ = ["read_xyz"]

# The number as written, decimals included: 'charge=-1.5' read as -1 before.
# `charge` after anything but a letter or digit: `total_charge=2` is read too (with \b before
# it, `_` joined it to "total" and the paraquat dication was perceived as a neutral molecule).
_CHARGE = re.compile(r"(?<![a-z0-9])charge\s*=\s*([+-]?\d+(?:\.\d*)?)", re.IGNORECASE)
# Every other statement of a charge (`Charge: -1`, `totalcharge=2`) fails the frame: read as
# charge 0 before. Not a word that only contains it: `uncharged`, `Mulliken charges`, ASE's
# `Properties=...:initial_charges:R:1` state no total charge.
_MENTIONS_CHARGE = re.compile(r"(?<![a-z0-9])charge(?![a-z])|[a-z]charge\s*=", re.IGNORECASE)


# (column of the element, first column of x y z, columns at least): `symbol x y z`
PLAIN = (0, 1, 4)
# extended XYZ: Properties=species:S:1:pos:R:3 (quoted or not); the key in any case, as ASE reads it
_PROPERTIES = re.compile(r"(?<![A-Za-z0-9_])properties\s*=\s*(?:\"([^\"]*)\"|(\S+))", re.IGNORECASE)


def _layout(comment: str) -> tuple[tuple[int, int, int], str | None]:
    """Where a frame's atom lines hold the element and x y z (``PLAIN`` without a
    ``Properties=``), and why its ``Properties=`` could not be followed (None when it was)."""
    match = _PROPERTIES.search(comment)
    if match is None:
        return PLAIN, None
    layout = match.group(1) if match.group(1) is not None else match.group(2)
    fields = layout.split(":")
    columns, at = {}, 0
    for name, kind, width in zip(fields[::3], fields[1::3], fields[2::3]):
        if not width.isdigit() or int(width) < 1 or kind.upper() not in ("S", "R", "I", "L"):
            break
        columns[name.lower()] = (at, kind.upper(), int(width))
        at += int(width)
    else:
        if len(fields) % 3 == 0:
            species, pos = columns.get("species"), columns.get("pos")
            if species is not None and species[1:] == ("S", 1) and pos is not None and pos[1:] == ("R", 3):
                return (species[0], pos[0], at), None
            return PLAIN, f"Properties={layout} has no species:S:1 and pos:R:3 columns: read as symbol x y z"
    return PLAIN, f"Properties={layout} is not name:type:columns triples (extended XYZ): read as symbol x y z"


def _is_atom_line(line: str, layout: tuple[int, int, int] = PLAIN) -> bool:
    species, pos, least = layout
    words = line.split()
    try:
        [float(w) for w in words[pos:pos + 3]]
    except ValueError:
        return False
    return len(words) >= least


def _frame_part(n: int) -> str:
    """What line ``n`` (1-based) of a frame is, for messages."""
    return "the count line" if n == 1 else "the comment line" if n == 2 else "an atom line"


def _rest_unread(lines: list, start: int) -> str:
    """What a frame that cannot be delimited leaves unread: the file's lines from its own on,
    where the next frames begin is unknown (was: later frames dropped without a word)."""
    rest = sum(1 for line in lines[start:] if line.strip())
    return f"; reading stopped: lines {start + 1}-{len(lines)} ({rest} not blank) were not read"


@register_reader(".xyz")
def read_xyz(handle, name: str) -> Iterator[ParsedStructure]:
    # at LF only: str.splitlines also broke lines at a form feed or vertical tab, so a stray one
    # shifted every later frame (`base.check_control`)
    lines = handle.read().split("\n")
    if lines[-1] == "":  # the final line end ends a line, as splitlines counts them
        lines.pop()
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
            control = control_problem(lines[pos], "the count line")  # "3\x00": say why, not only what
            reason = f"line {pos + 1}: " + (control or f"expected an atom count, got {lines[pos].strip()[:40]!r}")
            yield ParsedStructure(index, id, error=MoleculeError(id, reason + _rest_unread(lines, pos)))
            return
        comment = lines[pos + 1] if pos + 1 < len(lines) else ""
        body = lines[pos + 2 : pos + 2 + count]
        start, pos = pos, pos + 2 + count
        try:  # the count delimits the frame: a control character in it fails this frame alone
            check_control(lines[start:pos], id, lambda n: _frame_part(n - start), first=start + 1)
        except MoleculeError as error:
            yield ParsedStructure(index, id, error=error)
            index += 1
            continue
        layout, not_followed = _layout(comment)
        said = [] if not_followed is None else [f"line {pos - count}: {not_followed}"]
        found = sum(_is_atom_line(b, layout) for b in body)
        extra = 0
        while pos + extra < len(lines) and _is_atom_line(lines[pos + extra], layout):
            extra += 1
        if found != count or extra:
            # both numbers: a blank line inside a frame read as "says 9, found 9" before
            reason = (f"count line says {count} atoms; the {len(body)} lines after the comment hold {found} "
                      f"atom lines" + (f", and {extra} more atom lines follow" if extra else "")
                      + "".join(f" ({note})" for note in said))
            yield ParsedStructure(index, id, error=MoleculeError(id, reason + _rest_unread(lines, pos - 2 - count)))
            return
        species, at, _ = layout
        elements = [b.split()[species] for b in body]
        coords = np.array([[float(v) for v in b.split()[at:at + 3]] for b in body])  # [N, 3]
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
                                  charge=None if charge is None else int(charge), notes=said)
        index += 1
