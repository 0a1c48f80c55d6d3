"""CSV reader (``.csv``): a table with a SMILES column, streamed.

Column ``smiles`` (any case) is required; a file without it is one error naming the
columns it has (a header that is one cell holding semicolons, tabs or bars says the file is
not comma-separated: ``csv_table.separator_problem``), and so is a ``smiles`` or id column named twice (any case: ``SMILES`` and
``smiles`` side by side gave the last one's molecule). Id from the first of the columns
``id, name, cid, compound_id`` (any case) that the file has; a blank id there, or no such
column, gives ``file#row`` (0-based data rows, blank lines not counted: the record
number, as ``structure_index`` counts records); its source names the file line as well,
``file#row, line N`` (was: the record number alone, which a blank line above made point at
the line before). A row whose field count differs from the
header's fails (an unquoted comma shifts every field after it; extra fields were dropped
without a word), and so does a row the csv module cannot parse (a field over its size
limit, which a quote never closed makes of the rest of the file; a NUL byte), alone:
reading goes on after it (it was a traceback that lost every later row). Blank lines are
skipped, before the header too. No coordinates: the 3D policy generates them.
"""

from __future__ import annotations

import csv
from typing import Iterator

from ...csv_table import columns_named, csv_rows, first_row, line_span, separator_problem
from ..errors import MoleculeError
from .base import ParsedStructure, register_reader

__all__ = ["read_csv"]

ID_COLUMNS = ("id", "name", "cid", "compound_id")  # first present wins, any case


def _column(header: list[str], name: str, file: str) -> int | None:
    """Position of column ``name`` (any case), or None; a ``MoleculeError`` if named twice."""
    at = columns_named(header, name)
    if len(at) > 1:
        raise MoleculeError(file, f"column {name!r} appears {len(at)} times (any case): {[header[i] for i in at]}")
    return at[0] if at else None


@register_reader(".csv", newline="")  # newline="": the csv module handles line ends
def read_csv(handle, name: str) -> Iterator[ParsedStructure]:
    reader = csv.reader(handle)
    try:
        header = first_row(reader) or []
        separated = separator_problem(header)  # a semicolon export: one cell, not "no 'smiles' column"
        if separated:
            raise MoleculeError(name, separated)
        smiles = _column(header, "smiles", name)
        if smiles is None:
            raise MoleculeError(name, f"CSV has no 'smiles' column (columns: {header})")
        id_at = next((i for i in (_column(header, c, name) for c in ID_COLUMNS) if i is not None), None)
    except csv.Error as error:  # e.g. a header field over csv.field_size_limit()
        yield ParsedStructure(None, name, error=MoleculeError(name, f"cannot read the header "
                                                                    f"(line {reader.line_num}): {error}"))
        return
    except MoleculeError as error:
        yield ParsedStructure(None, name, error=error)
        return
    ended = reader.line_num  # the line the previous row (blank ones too) ended on
    i = -1  # the record number: data rows, blank ones not counted
    for row in csv_rows(reader):
        # a blank row moves `ended` too: the row after it was "lines 3-4 joined by quotes"
        lines = line_span(ended + 1, reader.line_num)
        ended = reader.line_num
        if not row:
            continue
        i += 1
        where = f"row {i} ({lines})"
        if isinstance(row, csv.Error):  # a field over the size limit, a NUL byte: this row only
            id = f"{name}#{i}"
            yield ParsedStructure(i, id, error=MoleculeError(id, f"{where} cannot be parsed as CSV: {row}"), line=lines)
            continue
        id = (row[id_at].strip() if id_at is not None and id_at < len(row) else "") or f"{name}#{i}"
        if len(row) != len(header):
            reason = f"{where} has {len(row)} fields, the header {len(header)}"
            yield ParsedStructure(i, id, error=MoleculeError(id, reason), line=lines)
        elif "\n" in row[smiles] or "\r" in row[smiles]:  # no SMILES has a line break: a stray quote
            yield ParsedStructure(i, id, error=MoleculeError(id, f"{where}: its smiles field holds a line break"),
                                  line=lines)
        else:
            yield ParsedStructure(i, id, smiles=row[smiles], line=lines)
