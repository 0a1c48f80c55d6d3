"""ChEBI-20 reader (``--format chebi20``): MolT5's SMILES -> description TSV files.

Input folder (MolT5's release): ``train.txt``, ``validation.txt``, ``test.txt``
(26,407 / 3,301 / 3,300 rows), header ``CID<TAB>SMILES<TAB>description``. The files are
not quoted CSV: descriptions contain ``"``, so a line is split on tabs and must give
exactly three fields (a ``csv`` reader would eat the quotes); trailing tabs (an export
artefact) end the row, they are no fourth field. Every backslash in the
SMILES is doubled in the files; ``\\\\`` is collapsed to ``\\`` (a doubled backslash is
never valid SMILES, so this cannot damage a correct one). Split ``validation`` is
called ``valid``.

One item per row: task ``description``, answer = the description, molecule = the SMILES.
A row with the wrong number of fields, a non-numeric CID or a blank SMILES (stage
"schema"), a blank description or one that is only a missing-value marker ("N/A", "nan",
"-": `base.answer_problem`; stage "answer", as in every reader), or bytes that are not
UTF-8 or a control character other than a tab, LF or CR (a NUL: `base.control_problem`; stage
"read") is a ``SourceError`` naming its line (and what is wrong: "a 4th field 'x' after
the description", "description holds the control character '\\x00'"); fully empty lines are
not rows. Options: ``splits``
(default: all present). IDs: ``chebi20-<split>-<CID>`` (``-2``, ``-3``... for a repeated
CID), ``chebi20-<split>-line<n>`` when the CID is unusable (a row of the wrong width is named
by its CID when its first field is one). A file that starts with a UTF-16 byte-order mark or
compression magic bytes (gzip, zip, bzip2, xz, zstd: `text_problem`) is one error naming it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator

from ...molecule.io.read import not_text
from ...usage import broken_link
from .base import (MoleculeSpec, SourceError, SourceItem, answer_problem, field_count_problem,
                   fields_control_problem, option_list, register_reader, separator_problem, undecodable,
                   without_trailing_blanks)

FILES = {"train": "train.txt", "valid": "validation.txt", "test": "test.txt"}
HEADER = ["CID", "SMILES", "description"]


def collapse_backslashes(smiles: str) -> str:
    """Undo ChEBI-20's doubled backslashes: ``F/C=C\\\\F`` -> ``F/C=C\\F``."""
    return smiles.replace("\\\\", "\\")


def choose_splits(fmt: str, root: Path, files: dict, requested) -> list:
    """The requested splits (default: those whose file exists); a missing one is an error, and
    so is a split file that is a link to nothing (was: left out, the whole split, exit 0)."""
    for name in files.values():
        problem = broken_link(root / name)
        if problem:
            raise FileNotFoundError(f"{fmt}: {root / name} {problem}")
    present = [s for s, name in files.items() if (root / name).is_file()]
    splits = option_list(fmt, "splits", requested) or present
    unknown = [s for s in splits if s not in files]
    if unknown:  # was "no ['validation'] in DIR", as if a file were missing
        raise ValueError(f"{fmt}: option splits: no split {', '.join(map(repr, unknown))}; "
                         f"{fmt}'s splits are " + ", ".join(f"{s} ({name})" for s, name in files.items()))
    missing = [s for s in splits if s not in present]
    if missing or not splits:
        names = [files.get(s, s) for s in missing] or list(files.values())
        raise FileNotFoundError(f"{fmt}: no {names} in {root}")
    return splits


def unique(seen: Counter, base: str) -> str:
    seen[base] += 1
    return base if seen[base] == 1 else f"{base}-{seen[base]}"


def _rows(path: Path):
    # Lines end at "\n" only (CRLF too): with universal newlines a lone "\r" inside a
    # description cut it short and made its tail a bogus row. "utf-8-sig": a BOM is not
    # part of the header. A non-UTF-8 byte is that line's failure (None), not the run's end.
    text_problem(path, "chebi20")
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="\n") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
        problem = separator_problem(header, "\t")  # a comma-separated copy: one cell, "CID,SMILES,..."
        if problem:
            raise ValueError(f"chebi20: {path}: {problem}")
        if header != HEADER:
            raise ValueError(f"chebi20: {path} header is {header}, expected {HEADER}")
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if line:
                yield number, None if undecodable(line) else line.split("\t")


def text_problem(path: Path, fmt: str) -> None:
    """Refuse a dataset's text file (a split table, a JSON task file) that cannot be read as
    UTF-8 text at all, in one line naming it: a UTF-16 byte-order mark or compression magic
    bytes, NULs throughout (`not_text`: UTF-16 without a byte-order mark, or a pickle under a
    .json name, was one "not valid JSON" failure per line). Was: its decoded bytes were shown
    as the header ('\udcff\udcfeC\x00I...'). A stray NUL is its row's failure wherever it is
    (`base.control_problem`)."""
    problem = not_text(path)
    if problem:
        raise ValueError(f"{fmt}: {path}: {problem}")


def split_files(fmt: str, files: dict):
    """The input files of a reader of split files: those of the chosen splits."""
    return lambda root, options: [(root / files[s], files[s])
                                  for s in choose_splits(fmt, root, files, options.get("splits"))]


@register_reader("chebi20", options={"splits"}, files=split_files("chebi20", FILES))
def read_chebi20(input_path: str, options: dict) -> Iterator[SourceItem | SourceError]:
    root = Path(input_path)
    for split in choose_splits("chebi20", root, FILES, options.get("splits")):
        seen: Counter = Counter()
        for number, fields in _rows(root / FILES[split]):
            if fields is None:
                yield SourceError(unique(seen, f"chebi20-{split}-line{number}"), "read",
                                  f"line {number}: bytes that are not UTF-8")
                continue
            # A trailing tab (an export artefact) ends the row, as the CR does: it dropped the
            # row as "4 tab-separated fields", named by its line though its CID was valid.
            fields = without_trailing_blanks(fields, len(HEADER))
            cid = fields[0].strip()
            ok_cid = cid.isascii() and cid.isdigit()  # not "³" or "٩"
            id = unique(seen, f"chebi20-{split}-{cid}" if ok_cid else f"chebi20-{split}-line{number}")
            if len(fields) != len(HEADER):
                yield SourceError(id, "schema", f"line {number}: {len(fields)} tab-separated fields, expected "
                                                f"{len(HEADER)}: {field_count_problem(fields, HEADER)}")
                continue
            problem = fields_control_problem(zip(HEADER, fields))
            if problem:  # as a byte that is not UTF-8 (stage "read")
                yield SourceError(id, "read", f"line {number}: {problem}")
                continue
            if not ok_cid:
                yield SourceError(id, "schema", f"line {number}: CID {cid!r} is not a number")
                continue
            smiles, text = collapse_backslashes(fields[1].strip()), fields[2].strip()
            if not smiles:
                yield SourceError(id, "schema", f"line {number}: blank SMILES")
                continue
            problem = answer_problem(text, "description")
            if problem:  # a description "N/A" or "nan" was kept as the answer
                # stage "answer", as in the csv, sdf, 3D-MoIT and Vis-CheBI20 readers (was: "schema")
                yield SourceError(id, "answer", f"line {number}: {problem}")
                continue
            yield SourceItem(id=id, split=split, task="description", molecule=MoleculeSpec(smiles=smiles),
                             answer=text, extra={"cid": cid})
