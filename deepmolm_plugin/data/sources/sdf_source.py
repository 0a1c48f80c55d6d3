"""SDF reader (``--format sdf``): SDF files, or folders of them, with property data fields.

The molecule of every item is ``structure=(file, record index)``: the engine builds it from
the file's own atoms and coordinates (3D kept, per ``--conformer-policy``), never from a
SMILES. Records are counted exactly as ``deepmolm_plugin.molecule.read_structures`` counts
them (`sdf_blocks`, `molfile_starts`), so an index names the same record for both. Records
run together by a lost ``$$$$`` line fail, each named by its index, title and id field
("record lig.sdf#0 (ID 'm8') has no '$$$$' line: it runs into the next record, ...").

Input: one ``.sdf`` / ``.sd`` / ``.mol`` file, or a folder searched recursively for them
(sorted by relative path). A file that is no UTF-8 text (UTF-16, gzip, zip, binary:
``molecule.io.read.not_text``) is one error when it is the input, and in a folder that
file's failure (stage ``read``, named by its path), as is a compressed one (``x.sdf.gz``:
it was skipped, though listed among the run's inputs). Options:

- ``label_columns``: numeric data fields (``> <FIELD>``), each ``FIELD`` or
  ``FIELD=NAME``; one ``property:NAME`` item per record and field, blank or absent
  fields skipped (a missing label, never a zero); ``binary_labels``: those of their NAMEs
  that are 0/1 labels, as for CSV (``csv_source.label_item``);
- ``text_columns``: text fields, ``FIELD=TASK`` (or a field named like a task); a numeric
  task is refused, as for CSV (``csv_source.check_text_columns``); a value that is only a
  missing-value marker ("N/A", "nan", "-") is its item's failure (``csv_source.text_item``);
- ``id_field``: the data field holding the record id, or ``_Name`` for the title line
  (default: ``<file>#<index>``, always unique; a file name, or path in a folder input, that
  no id can start with, " x.sdf" or one holding a tab, is refused before any record is read,
  `base.id_file_name`); a record lacking it is a ``SourceError``
  naming the fields it has (and one that differs only in case); a data field itself named
  ``_Name`` is a record error where it is used (the title would replace it);
- ``split_column``: a data field holding the split (default: ``train``); a record
  without it, or with it blank, is a ``SourceError`` (stage ``split``) saying so.

A blank ``id_field`` or ``split_column`` is a configuration error (it was ignored), and so
are the label names the CSV reader refuses (``csv_source.require_columns``: a number in the
name, two spellings of one name, a name no record can carry), before the input is read.

Item ids are ``<record id>:<task>``. A record whose id, split, label or text field holds
bytes that are not UTF-8 or a control character other than a tab, LF or CR (a NUL:
``base.control_problem``; wherever it is in the file: a file is refused whole only for NULs
or other control bytes throughout, ``not_text``), or appears twice in the record, is a ``SourceError`` (stage
``read``), and so is one whose data items are not laid out as the SDF format says (a value
ends at a blank line; a line after it that starts no ``> <NAME>`` item, or a header inside
a value, cut the text or swallowed the next field). White space around an id is trimmed,
as around every value. Only the
data fields are read here (text); a record whose structure is broken still yields its
items, and the engine reports the structure failure for each of them with RDKit's reason. A record without an ``M  END`` line (no molfile: a truncated record,
a CSV given as ``--format sdf``) has no data fields to read, and a record that yields no
item for want of a field: those fail with the structure's reason (stage ``molecule``)
when it has one, not "no value in any of the fields".
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from ... import usage
from ...molecule import MoleculeError
from ...molecule.io.read import not_text
from ...molecule.io.sdf import molfile_starts, numbered_blocks, parse_sdf_block
from .base import (MoleculeSpec, SourceError, SourceItem, fields_control_problem, id_file_name, option_name,
                   other_format_problem, register_reader, repeated_id, split_problem, visible_files)
from .csv_source import (as_list, binary_names, check_column_lists, check_text_columns, label_item, named,
                         require_columns, text_item, text_task)

OPTIONS = {"label_columns", "binary_labels", "text_columns", "id_field", "split_column"}
SUFFIXES = (".sdf", ".sd", ".mol")
COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst")  # x.sdf.gz in a folder: its failure, never skipped
FIELD = re.compile(r"^>[^<]*<([^>]+)>")  # [^<]*, not .*?: a header of 60000 "<" took 23 s (quadratic)
TITLE = "_Name"  # the id_field value that means the record's title line (RDKit's name for it)



def data_fields(block: str) -> Tuple[dict, dict, dict]:
    """``> <NAME>`` data items after ``M  END``: (name -> value as written, lines joined by
    newlines; name -> how often it appears, for names that appear more than once; name -> why
    that field's value is not laid out as the SDF format says). A value ends at an empty line
    (a line of spaces is part of it, as RDKit reads it, unless a header follows it). Two
    layouts lost text without a word: a text line after the empty line that ends a value
    (a paragraph break in a value, an empty line between a header and its value) was
    dropped, and a header inside a value (no empty line before it) was read as part of that
    value, its own field lost. Both are named for the fields they concern; the caller fails
    a record only for the fields it reads. A header without a ``<NAME>`` (``> 25 DT13``, a
    field number, which the format allows) starts a field no option can name."""
    lines = block.splitlines()
    end = next((i for i, line in enumerate(lines) if line.strip() == "M  END"), len(lines))
    fields, seen, broken, name, value, ended = {}, Counter(), {}, None, [], None
    for number, line in enumerate(lines[end + 1:], start=end + 2):
        header = line.startswith(">")
        if header and name is not None and value and not value[-1].strip():
            fields[name], name = "\n".join(value[:-1]), None  # a line of spaces ended it
        if header and name is None:
            match = FIELD.match(line)
            name, value, ended = (match.group(1).strip() if match else f"(unnamed field, line {number})"), [], None
            seen[name] += 1
        elif header:
            why = (f"the data field {name!r} runs into the header on line {number} of the record, {line!r}: an "
                   "empty line must end each field's value")
            broken[name] = why
            match = FIELD.match(line)
            if match:
                broken[match.group(1).strip()] = why
            value.append(line)
        elif name is not None and line == "":
            fields[name], name, ended = "\n".join(value), None, name
        elif name is not None:
            value.append(line)
        elif ended is not None and line.strip():
            broken.setdefault(ended, f"line {number} of the record, {line!r}, follows the empty line that ends the "
                                     f"data field {ended!r} but starts no '> <NAME>' field (an empty line inside "
                                     "a value, or between a header and its value?)")
    if name is not None:
        fields[name] = "\n".join(value)
    return fields, {n: count for n, count in seen.items() if count > 1}, broken


def structure_problem(block: str, record_id: str) -> Optional[str]:
    """Why the record is no molecule (the structure reader's words: RDKit's reason, "no
    'M  END' line"...), or None. Asked before a record is failed for a missing field: a
    record that is no molfile at all (a CSV given as --format sdf, a truncated record) has
    no fields either, and "no value in any of the fields" hid the real reason."""
    try:
        parse_sdf_block(block, record_id)
    except MoleculeError as error:
        return error.reason
    return None


def sdf_files(path: Path) -> List[Tuple[Path, str]]:
    """(file, name used in ids) for a file or every SDF under a folder, in a fixed order."""
    if path.is_file():
        return [(path, path.name)]
    if not path.is_dir():
        raise FileNotFoundError(f"sdf: {path} does not exist")
    # The folder's files as the run's input checksums see them: a hidden file (``.old/x.sdf``,
    # an output's ``.progress``) was read here but, unchecked, reused stale after an edit.
    files = [(p, name) for p, name in visible_files(path) if is_sdf_name(p)]
    if not files:
        raise FileNotFoundError(f"sdf: no {'/'.join(SUFFIXES)} files under {path} (hidden ones are not read)")
    return files


def is_sdf_name(path: Path) -> bool:
    """Whether a folder's file is an SDF by its name, compressed (``x.sdf.gz``) or not."""
    suffixes = [s.lower() for s in path.suffixes]
    return bool(suffixes) and (suffixes[-1] in SUFFIXES or (suffixes[-1] in COMPRESSED and len(suffixes) > 1
                                                            and suffixes[-2] in SUFFIXES))


def missing_field(fields: dict, wanted: str) -> str:
    """Why a record lacks the field `wanted`, naming the fields it has: a field asked for in
    the wrong case (``cid`` for ``CID``) failed every record alike, without a hint."""
    if wanted == TITLE:
        return "record has a blank title line (its first line: the `_Name` id field)"
    names = [n for n in fields if n != TITLE]
    near = [n for n in names if n.casefold() == wanted.casefold()]
    hint = f"; {near[0]!r} differs only in case" if near else ""
    if wanted in fields:
        return f"the record's {wanted!r} field is blank"
    return f"record has no {wanted!r} field (its data fields: {names}){hint}"


def check_fields(fmt: str, options: dict) -> None:
    """The checks of the field options that need no file (the reader's `check`, before
    --out is touched): fields are named as given (no header to read them against), so the
    label names (`require_columns`: a number, two spellings of one name, a name no record
    can carry) and two fields for one task are found here, before the numeric text tasks
    (`check_text_columns`). Was: when the first record was read, or in every record."""
    check_column_lists(fmt, options)
    require_columns(fmt, options)
    check_text_columns(fmt, options)


@register_reader("sdf", options=OPTIONS, files=lambda folder, options: sdf_files(folder), check=check_fields)
def read_sdf(input_path: str, options: dict) -> Iterator[SourceItem | SourceError]:
    # (the field options were checked when the reader was called: `check_fields`)
    for name in ("id_field", "split_column"):
        option_name("sdf", options, name)
    binary = binary_names("sdf", options)
    labels = [(field, name, name in binary) for field, name in map(named, as_list(options.get("label_columns")))]
    texts = [text_task(c, "sdf") for c in as_list(options.get("text_columns"))]
    ids: dict = {}  # --id-field value -> the record that has it
    files = sdf_files(Path(input_path))
    if not options.get("id_field"):  # the default ids are "<file>#<index>": every file's name, before any is read
        for path, name in files:
            id_file_name("sdf", path, name, "--id-field")
    for path, name in files:
        # A UTF-16 file failed each record as "CTAB version string invalid", a .sdf.gz one as
        # "non-ASCII text in the connection table": the file's own reason, once.
        problem = not_text(path) or other_format_problem(path, "sdf")
        if problem and Path(input_path).is_file():
            raise ValueError(f"sdf: {path}: {problem}")
        if problem:
            yield SourceError(name, "read", f"{name}: {problem}")
            continue
        # utf-8-sig: a byte-order mark (Excel, Windows tools) was kept in the first title
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            index = 0  # records as `read_structures` and the engine count them (`sdf_blocks`)
            for start, block in numbered_blocks(handle):
                starts = molfile_starts(block.splitlines())
                if len(starts) > 1:
                    yield from _run_together(name, index, start, block, starts, options.get("id_field"))
                else:
                    yield from _record(usage.real_path(path), name, index, block, labels, texts, options, ids, start)
                index += len(starts)


def _run_together(name: str, index: int, start: int, block: str, starts: list, id_field: Optional[str]):
    """One failure for each record of a block whose ``$$$$`` lines were lost, named by its
    index, title and id field. Was: one failure, named by the first record's index, blaming
    a repeated field or an empty line; the second record was named nowhere and every later
    record's index was one too low."""
    lines = block.splitlines()
    parts = [lines[a:b] for a, b in zip(starts, starts[1:] + [len(lines)])]
    named = [_described(f"{name}#{index + k}", part, id_field) for k, part in enumerate(parts)]
    where = [f"line {start + a}" for a in starts]
    left_out = "both are left out" if len(parts) == 2 else f"all {len(parts)} are left out"
    for k, part in enumerate(parts):
        if k + 1 < len(parts):
            reason = f"{named[k]} has no '$$$$' line: it runs into the next record, {named[k + 1]} ({where[k + 1]})"
        else:
            reason = f"{named[k]} ({where[k]}) follows {named[k - 1]} with no '$$$$' line between them"
        yield SourceError(f"{name}#{index + k}", "read", f"{reason}; {left_out}")


def _described(record: str, lines: list, id_field: Optional[str]) -> str:
    """``file#index`` with the record's title and its id field's value, when it has them."""
    title = lines[0].strip() if lines else ""
    value = data_fields("\n".join(lines))[0].get(id_field, "").strip() if id_field and id_field != TITLE else ""
    said = ([f"{id_field} {value!r}"] if value else []) + ([f"title {title!r}"] if title and title != value else [])
    return f"record {record}" + (f" ({', '.join(said)})" if said else "")


def _record(path: Path, name: str, index: int, block: str, labels, texts, options, ids: dict, start: int = 1):
    """The items of one record (``start``: the file line its title is on)."""
    record_id = f"{name}#{index}"
    lines = block.splitlines()
    if not any(line.strip() == "M  END" for line in lines):  # no molfile: no fields to read
        yield SourceError(record_id, "molecule", structure_problem(block, record_id) or "no 'M  END' line")
        return
    fields, repeated, broken = data_fields(block)
    title = lines[0].strip() if block.strip() else ""
    id_field, split_field = options.get("id_field"), options.get("split_column")
    used = [id_field, split_field] + [f for f, *_ in texts + labels]
    layout = next((broken[f] for f in used if f in broken), None)
    if layout:  # the text after the break was dropped, or the next field swallowed, without a word
        yield SourceError(record_id, "read", layout)
        return
    if TITLE in fields and TITLE in used:  # the title replaced it without a word
        yield SourceError(record_id, "read", f"the record has a data field named {TITLE!r}, which is also the name "
                                             "of its title line: rename the field")
        return
    fields = {n: v.strip() for n, v in {**fields, TITLE: lines[0] if title else ""}.items()}
    twice = {f: repeated[f] for f in used if f in repeated}
    if twice:  # the last value was taken, without a word (a CSV column named twice is an error)
        listed = ", ".join(f"{f!r} {n} times" for f, n in twice.items())
        yield SourceError(record_id, "read", f"data field(s) appear more than once in the record: {listed}")
        return
    damaged = [f for f in used if f and "\ufffd" in fields.get(f, "")]
    if damaged:  # the file is read with errors="replace": an answer or id would carry U+FFFD
        yield SourceError(record_id, "read", f"field(s) {damaged} hold bytes that are not UTF-8")
        return
    # a NUL (or another control character) in a field that is read: this record's failure
    # wherever it is (was: the whole file refused when it was in the first 64 KiB, `not_text`;
    # after that, a label failed as "not a number", an id or split further on)
    control = fields_control_problem(("the title line" if f == TITLE else f"field {f!r}", fields.get(f, ""))
                                     for f in used if f)
    if control:
        yield SourceError(record_id, "read", f"the record at line {start}: {control}")
        return
    if id_field:
        if not fields.get(id_field):
            yield SourceError(record_id, "id", structure_problem(block, record_id) or missing_field(fields, id_field))
            return
        # White space around the value is trimmed (a padded title line or field failed whole
        # files); other id problems (a line break, an invisible character) stay inside the
        # items' ids, which the run checks, and two values that trim alike are one id twice.
        record_id = fields[id_field]
        problem = repeated_id(ids, record_id, f"{name}#{index}")
        if problem:
            yield SourceError(record_id, "id", problem)
            return
    if split_field and not fields.get(split_field):  # "split '' is not a plain name" said nothing of the field
        yield SourceError(record_id, "split", structure_problem(block, record_id) or missing_field(fields, split_field))
        return
    split = fields[split_field] if split_field else "train"
    if split_problem(split):
        yield SourceError(record_id, "split", split_problem(split))
        return
    molecule = MoleculeSpec(structure=(str(path), index))
    extra = {"file": name, "index": index}
    if title:
        extra["title"] = title
    produced = False
    for field, task in texts:
        item = text_item(record_id, split, f"field {field!r}", task, fields.get(field, ""), molecule, extra)
        if item is not None:  # a blank field is skipped; "N/A" is its item's failure (`text_item`)
            produced = True
            yield item
    for field, label, binary in labels:
        item = label_item(record_id, split, field, label, fields.get(field, ""), molecule, extra, binary=binary)
        if item is not None:
            produced = True
            yield item
    if not produced:
        problem = structure_problem(block, record_id)
        yield (SourceError(record_id, "molecule", problem) if problem else
               SourceError(record_id, "labels", f"no value in any of the fields {[f for f, *_ in texts + labels]}"))
