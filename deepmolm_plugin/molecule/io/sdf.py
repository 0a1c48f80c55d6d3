"""SDF / MOL reader (``.sdf``, ``.sd``, ``.mol``): MDL V2000 and V3000, streamed.

Any number of ``$$$$``-separated records; a trailing unterminated record counts. Record
id: the title line, else ``file#index``. A record without an ``M  END`` line is truncated
and fails; one with two (a missing ``$$$$``: RDKit read the first molecule and dropped the
second as bad data) fails too. Option ``smiles_field`` names a data field holding the record's SMILES, which
is matched onto the file's graph (``matching.map_smiles``; a mismatch fails the record, and so do
stereo or isotopes it states that the file contradicts: ``matching.label_differences``).
"""

from __future__ import annotations

from typing import Iterator, Optional

from rdkit import Chem

from ..errors import MoleculeError, as_notes, rdkit_messages, with_messages
from ..matching import label_differences, map_smiles
from ..sanitize import parse_smiles, sanitize
from .base import ParsedStructure, check_ascii, register_reader, title_of

__all__ = ["numbered_blocks", "parse_sdf_block", "read_sdf", "sdf_blocks"]


def sdf_blocks(lines: Iterator[str]) -> Iterator[str]:
    """Record texts of an SDF, split on ``$$$$`` lines; a trailing unterminated record counts."""
    for _, block in numbered_blocks(lines):
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
    lines = block.splitlines()
    title = lines[0].strip() or fallback
    ends = [n for n, line in enumerate(lines) if line.strip() == "M  END"]
    if len(ends) > 1:  # RDKit reads the first molecule and drops the rest as bad data fields
        raise MoleculeError(title, f"lines {ends[0] + 1} and {ends[1] + 1} both end a molecule ('M  END'): the "
                                   "'$$$$' line between two records is missing")
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
    return title_of(mol, fallback), mol, as_notes(messages)


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


def _verify_field(mol: Chem.Mol, id: str, smiles_field: str) -> list[str]:
    if not mol.HasProp(smiles_field):
        raise MoleculeError(id, f"SDF field {smiles_field!r} missing")
    template, _ = parse_smiles(mol.GetProp(smiles_field), id)
    map_smiles(mol, template, id, with_h=False)
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
            if smiles_field:
                notes += _verify_field(mol, id, smiles_field)
            if mol.GetNumConformers() == 0:
                raise MoleculeError(id, "record has no coordinates")
        except MoleculeError as error:
            # each molecule of a merged block fails, so later records keep their numbers (was:
            # one failure for two, and structure_index 2 gave record 3's molecule, silently)
            yield ParsedStructure(i, error.id, error=error, start=start)
            merged = sum(line.strip() == "M  END" for line in block.splitlines())
            for k in range(1, merged):
                yield ParsedStructure(i + k, f"{name}#{i + k}", error=MoleculeError(
                    f"{name}#{i + k}", f"run together with record {i} ({error.id}): {error.reason}"), start=start)
            i += max(merged, 1)
        else:
            yield ParsedStructure(i, id, mol=mol, notes=notes, start=start)
            i += 1
