"""Reading a CSV table row by row without losing rows, and its numbers: every reader of tables uses this
(deepmolm-prepare's sources, the molecule CSV reader behind deepmolm-fingerprint and
deepmolm-render, and the property tables of deepmolm-kflm2).

A plain ``for row in csv.reader(f)`` ends the whole read at the first row the csv module
cannot parse (a field over ``csv.field_size_limit()``, which a quote never closed makes
of every later line, or a NUL byte) with a ``csv.Error`` traceback, and the rows after it
are lost. Here that row comes as its error, and reading goes on from the next line.
"""

from __future__ import annotations

import csv
import math
import re
from typing import Iterator, Optional, Sequence, Union

__all__ = ["PLAIN_NUMBER", "columns_named", "csv_rows", "first_row", "line_span", "plain_number", "SEPARATORS",
           "separator_problem", "spelled_otherwise"]

# A number as a table cell should write it: digits, one '.', e-notation. Python's float()
# also takes "1_000" (1000.0) and other scripts' digits ("١٢", 12.0), which no
# spreadsheet writes as a number and evaluation would not read back alike.
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def plain_number(text: str) -> float:
    """`text` (stripped) as a float if it is a finite number in plain decimals, else a
    ValueError saying why. float() alone takes "1_000" and "١٢" (PLAIN_NUMBER), and turns
    "1e400" into inf and "1e-400" into 0.0: a label stored as 0 whose answer says 1e-400."""
    text = text.strip()
    if not PLAIN_NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} is not a number in plain decimals (digits, '.', e-notation)")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is beyond the range of a 64-bit float")
    if value == 0 and re.search(r"[1-9]", re.split(r"[eE]", text)[0]):
        raise ValueError(f"{text!r} is too small for a 64-bit float (it would be stored as 0)")
    return value


def csv_rows(reader) -> Iterator[Union[list, csv.Error]]:
    """The rows of a ``csv.reader``, with a row it cannot parse in its place as the
    ``csv.Error``: the caller makes that row a failure naming it and reads on."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield error


def first_row(reader) -> Optional[list]:
    """The first non-blank row of a ``csv.reader`` (a header), or None for a file without
    one. Blank lines before it are skipped, as between rows (the header was read as an
    empty row, so "no 'smiles' column (columns: [])"). A ``csv.Error`` is the caller's to
    report: a header that cannot be read leaves no columns to read the rows by."""
    return next((row for row in reader if row), None)


def columns_named(header, name: str) -> list:
    """Positions of the header's columns called `name` in any case, spaces around it aside:
    the one rule every reader finds its `smiles` column by. Two of them (`SMILES` and
    `smiles`, of other molecules) are each reader's error: prepare read the first, kflm2 the
    second, and one label went with two molecules."""
    return [i for i, column in enumerate(header) if column.strip().lower() == name]


def spelled_otherwise(header, name: str) -> str:
    """For a column `name` that is not in the header: "; the header has 'y' (spelled otherwise)"
    where a column differs from it only in case, spaces or punctuation (`Y` for `y`, `p np` for
    `p_np`), else "". The refusal listed the header only, and `y` beside `Y` was easy to miss."""
    def key(text: str) -> str:
        return "".join(ch for ch in text.casefold() if ch.isalnum())

    near = [column for column in header if key(column) == key(name) and column.strip() != name.strip()]
    return f"; the header has {', '.join(repr(c) for c in near)} (spelled otherwise)" if near else ""


def line_span(first: int, last: int) -> str:
    """Where a csv row lies in its file: "line 7", or "lines 7-46" for a row with quoted
    line breaks - one quote never closed joins every later line into that one row."""
    if last <= first:
        return f"line {last}"
    return f"lines {first}-{last} joined by quotes; a quote never closed joins all later lines into one row"


# What a table is split with, by name: Excel saves "CSV" with semicolons where the decimal
# mark is a comma (most of Europe); tab- and bar-separated exports are common too. Read with
# another separator, such a header is one cell holding them all.
SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}
_SEPARATED = {",": "comma-separated", "\t": "tab-separated"}  # what the readers read


def separator_problem(header: Sequence[str], separator: str = ",") -> Optional[str]:
    """Why the header of a table split at `separator` (',' or a tab) was read as one cell
    holding another separator (`SEPARATORS`), or None. Every reader of a header needs
    several columns (a SMILES and a label at least), so such a file can never be read: was
    "no 'smiles' column in the header ['smiles;logS']; name it with --smiles-column", and
    with that option "SMILES column 'smiles' is not in the header ['smiles;logS']"."""
    if len(header) != 1:
        return None
    found = [other for other in SEPARATORS if other != separator and other in header[0]]
    if not found:
        return None
    other = max(found, key=header[0].count)
    # a semicolon file's numbers are usually written with a decimal comma, which a CSV splits
    decimal = ", with '.' as the decimal mark" if other == ";" and separator == "," else ""
    return (f"the header is one cell, {header[0]!r}, holding {SEPARATORS[other]} ({other!r}): the file is not "
            f"{_SEPARATED[separator]}; save it {_SEPARATED[separator]}{decimal}")
