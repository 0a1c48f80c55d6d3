"""ChEBI-20-MM reader (``--format chebi20-mm``): ChEBI-20 with properties, names, images.

Input folder (the ChEBI-20-MM release): ``train.csv``, ``validation.csv``, ``test.csv``
(26,406 / 3,300 / 3,300 rows), quoted CSV with header ``CID,SMILES,description,
polararea,xlogp,inchi,iupacname,SELFIES``; ``xlogp``, ``iupacname`` and ``SELFIES`` may be
blank. Doubled backslashes in SMILES are collapsed as for ChEBI-20; ``validation`` ->
``valid``.

Items per row (task names aligned with DeepMoLM's 3D-MoIT property tasks, because
``polararea`` and ``xlogp`` are PubChem's computed TPSA and XLogP3, the same quantities):

- ``description``: the description;
- ``iupac_naming``: the IUPAC name, when not blank;
- ``Topological Polar Surface Area``: ``polararea``; ``LogP``: ``xlogp``, when not blank;
  answer = the value as written, ``properties={task: value}``.

A blank IUPAC name or xlogp is the source's documented gap: that row simply has no such
item (not an error). A row the csv module cannot parse (a field over
``csv.field_size_limit()``), or holding bytes that are not UTF-8 or a control character
other than a tab, LF or CR (a NUL: `base.control_problem`) (stage "read"), a row with
the wrong number of fields, a non-numeric CID or a blank SMILES (stage "schema"), a blank
description or polararea (columns the release never leaves blank) and a description or
IUPAC name that is only a missing-value marker ("N/A", "nan", "-": `base.answer_problem`)
(stage "answer", as in every reader), and a property that is not a finite number (stage
"schema") are ``SourceError``s (a row of the wrong width is named by its CID when it has
one). A file that starts with a UTF-16 byte-order mark or compression magic bytes is one
error naming it (`chebi20.text_problem`).

Images: optional ``image.zip`` holding ``CID_<CID>.png`` (at any depth). With the option
``image_dir`` (a cache folder), each row's picture is extracted there once, as
``CID_<CID>.png``, and becomes ``image``; a CID without a picture gets ``image=None``
(the engine renders one) and ``extra["image_note"]``. Without ``image_dir`` the zip is
not used. Options: ``splits``, ``tasks`` (subset of ``TASKS``), ``image_dir``. IDs:
``chebi20-mm-<split>-<CID>-<task slug>``.
"""

from __future__ import annotations

import csv
import lzma
import os
import socket
import re
import zipfile
import zlib
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

from ...csv_table import csv_rows, plain_number
from .base import (MoleculeSpec, SourceError, SourceItem, answer_problem, csv_header, field_count_problem,
                   fields_control_problem, option_list, register_reader, undecodable)
from .chebi20 import choose_splits, collapse_backslashes, split_files, text_problem, unique

FILES = {"train": "train.csv", "valid": "validation.csv", "test": "test.csv"}
HEADER = ["CID", "SMILES", "description", "polararea", "xlogp", "inchi", "iupacname", "SELFIES"]
PROPERTIES = {"Topological Polar Surface Area": "polararea", "LogP": "xlogp"}
TASKS = ("description", "iupac_naming") + tuple(PROPERTIES)
NEVER_BLANK = {"description": "description", "Topological Polar Surface Area": "polararea"}
SLUGS = {"description": "description", "iupac_naming": "iupac-naming",
         "Topological Polar Surface Area": "topological-polar-surface-area", "LogP": "logp"}
_IMAGE = re.compile(r"CID_([0-9]+)\.png", re.I)
# A ChEBI-20-MM depiction is tens of KB; a member over this is refused before a byte is
# extracted (a decompression bomb would otherwise fill the image_dir's disk).
MAX_IMAGE_BYTES = 64 << 20
# What reading one damaged member can raise: a bad CRC or header, a bad deflate/lzma
# stream, a truncated one, an encrypted member ("password required" is a RuntimeError),
# an unsupported compression method.
MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, RuntimeError, NotImplementedError)


class TooLarge(Exception):
    """A member over MAX_IMAGE_BYTES (its header's size: zipfile never unpacks more)."""


class _Images:
    """CID -> picture extracted from image.zip into the cache folder (once per file)."""

    def __init__(self, zip_path: Path, cache: Path):
        try:
            self.zip = zipfile.ZipFile(zip_path)
        except zipfile.BadZipFile as error:
            raise ValueError(f"chebi20-mm: {zip_path} is not a zip file: {error}") from error
        self.members = defaultdict(list)
        for info in self.zip.infolist():  # a zip made on Windows may use "\\" in member names
            match = _IMAGE.fullmatch(PurePosixPath(info.filename.replace("\\", "/")).name)
            if match and not info.is_dir():
                self.members[match.group(1)].append(info)
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)

    def get(self, cid: str) -> tuple[Optional[str], Optional[str]]:
        """(image path, note): (None, why) when image.zip has no single picture for cid."""
        infos = self.members.get(cid, [])
        if len(infos) != 1:
            return None, f"image.zip holds {len(infos)} CID_{cid}.png files; the depiction is rendered"
        info = infos[0]
        if info.file_size > MAX_IMAGE_BYTES:
            raise TooLarge(f"{info.filename} unpacks to {info.file_size} bytes, over {MAX_IMAGE_BYTES}")
        target = self.cache / f"CID_{cid}.png"  # our own name: member paths never reach the disk
        if not _same(target, info):
            partial = target.with_name(f".{target.name}.{socket.gethostname()}-{os.getpid()}.part")
            try:
                with self.zip.open(info) as source, open(partial, "wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        return str(target), None


def _same(target: Path, info: zipfile.ZipInfo) -> bool:
    """Whether the cached file is this member's content: size and CRC-32, since a cache
    folder reused with another image.zip (or holding the user's own CID_<n>.png) has
    same-sized pictures of other molecules."""
    if not target.is_file() or target.stat().st_size != info.file_size:
        return False
    return zlib.crc32(target.read_bytes()) == info.CRC


def _rows(path: Path):
    # utf-8-sig: a BOM is not part of "CID"; a non-UTF-8 byte is its row's failure
    text_problem(path, "chebi20-mm")
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = csv_header(reader, path, "chebi20-mm")
        if header != HEADER:
            raise ValueError(f"chebi20-mm: {path} header is {header}, expected {HEADER}")
        for fields in csv_rows(reader):
            if fields:  # a csv.Error (e.g. an oversized field): that row's failure, read on
                yield reader.line_num, fields


def _number(text: str, column: str) -> float:
    try:
        return plain_number(text)
    except ValueError as e:
        raise ValueError(f"{column} {e}") from None


def _row_items(split: str, key: str, cid: str, row: dict, tasks, image: Optional[str],
               note: Optional[str]):
    smiles = collapse_backslashes(row["SMILES"])
    extra = {"cid": cid, **({"image_note": note} if note else {})}
    extra.update({k: row[c] for k, c in (("inchi", "inchi"), ("selfies", "SELFIES")) if row[c]})
    answers = {"description": row["description"], "iupac_naming": row["iupacname"]}
    answers.update({task: row[column] for task, column in PROPERTIES.items()})
    for task in tasks:
        id = f"chebi20-mm-{split}-{key}-{SLUGS[task]}"
        column = NEVER_BLANK.get(task) or PROPERTIES.get(task) or "iupacname"
        # a blank or marker answer: stage "answer", as in the csv, sdf, 3D-MoIT and Vis-CheBI20
        # readers (was: "schema")
        if not answers[task]:
            if task in NEVER_BLANK:
                yield SourceError(id, "answer", f"blank {NEVER_BLANK[task]}")
            continue
        problem = answer_problem(answers[task], column)
        if problem and task not in PROPERTIES:  # an IUPAC name "N/A" became an iupac_naming item
            yield SourceError(id, "answer", problem)
            continue
        properties = {}
        if task in PROPERTIES:
            try:
                properties = {task: _number(answers[task], PROPERTIES[task])}
            except ValueError as error:
                yield SourceError(id, "schema", str(error))
                continue
        yield SourceItem(id=id, split=split, task=task, molecule=MoleculeSpec(smiles=smiles),
                         answer=answers[task], image=image, properties=properties, extra=dict(extra))


def _images(root: Path, image_dir) -> Optional[_Images]:
    """The image.zip reader when ``image_dir`` is set. image_dir without image.zip is a
    configuration error: every picture would silently be rendered instead."""
    if image_dir is None or image_dir == "":
        return None
    if not isinstance(image_dir, str):
        raise ValueError(f"chebi20-mm: option image_dir must be a folder path, got {image_dir!r}")
    zip_path = root / "image.zip"
    if not zip_path.is_file():
        raise FileNotFoundError(f"chebi20-mm: image_dir is set but {zip_path} does not exist")
    # Absolute: the engine reads a relative image path against the input folder, so a
    # relative image_dir made every picture "not found" (or another file of that name).
    # It may lie inside the input folder: the pictures extracted there are no input files
    # (`input_files`: the split files and image.zip identify the input).
    return _Images(zip_path, Path(os.path.abspath(image_dir)))


def input_files(root: Path, options: dict) -> list:
    """The chosen splits' CSV files, and image.zip when image_dir has pictures taken from it
    (without it, the reader refuses image_dir)."""
    zipped = [(root / "image.zip", "image.zip")] if options.get("image_dir") and (root / "image.zip").is_file() else []
    return split_files("chebi20-mm", FILES)(root, options) + zipped


# image_dir is a cache: the pictures come from image.zip (an input file, by its SHA-256) and are
# checked against it (`_same`), so another image_dir gives the same records
@register_reader("chebi20-mm", options={"splits", "tasks", "image_dir"}, files=input_files, locations={"image_dir"})
def read_chebi20_mm(input_path: str, options: dict) -> Iterator[SourceItem | SourceError]:
    root = Path(input_path)
    splits = choose_splits("chebi20-mm", root, FILES, options.get("splits"))
    tasks = option_list("chebi20-mm", "tasks", options.get("tasks")) or TASKS
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"chebi20-mm: unknown tasks {unknown}; choose from {list(TASKS)}")
    tasks = [t for t in TASKS if t in tasks]
    images = _images(root, options.get("image_dir"))
    for split in splits:
        seen: Counter = Counter()
        for line, fields in _rows(root / FILES[split]):
            if isinstance(fields, csv.Error):
                yield SourceError(f"chebi20-mm-{split}-{unique(seen, f'line{line}')}", "read",
                                  f"line {line}: {fields}")
                continue
            if any(undecodable(value) for value in fields):
                yield SourceError(f"chebi20-mm-{split}-{unique(seen, f'line{line}')}", "read",
                                  f"line {line}: bytes that are not UTF-8")
                continue
            # A row of the wrong width is named by its CID when its first field is one (was: by
            # its line only). A trailing empty field is not dropped: the release leaves columns
            # blank (IUPAC name, xlogp), so a stray comma in a row would shift its fields.
            cid = fields[0].strip()
            ok_cid = cid.isascii() and cid.isdigit()
            key = unique(seen, cid if ok_cid else f"line{line}")  # a repeated CID: -2, -3 ...
            where = f"chebi20-mm-{split}-{key}"
            if len(fields) != len(HEADER):
                yield SourceError(where, "schema", f"line {line}: {len(fields)} fields, expected {len(HEADER)}: "
                                                   f"{field_count_problem(fields, HEADER)}")
                continue
            problem = fields_control_problem(zip(HEADER, fields))
            if problem:  # as a byte that is not UTF-8 (stage "read")
                yield SourceError(where, "read", f"line {line}: {problem}")
                continue
            if not ok_cid:
                yield SourceError(where, "schema", f"line {line}: CID {cid!r} is not a number")
                continue
            row = {name: value.strip() for name, value in zip(HEADER, fields)}
            if not row["SMILES"]:
                yield SourceError(where, "schema", f"line {line}: blank SMILES")
                continue
            try:
                image, note = images.get(cid) if images else (None, None)
            except TooLarge as error:
                yield SourceError(where, "image", f"CID_{cid}.png in image.zip refused: {error}")
                continue
            except MEMBER_ERRORS as error:
                yield SourceError(where, "image", f"CID_{cid}.png in image.zip is damaged: {error}")
                continue
            except OSError as error:  # the cache file: a name too long (a 300-digit CID), a full disk;
                # was: the error stopped the whole read, every later record lost
                yield SourceError(where, "image", f"CID_{cid}.png cannot be extracted into image_dir: "
                                                  f"{error.strerror or error}")
                continue
            yield from _row_items(split, key, cid, row, tasks, image, note)
