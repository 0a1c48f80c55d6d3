"""Vis-CheBI20 reader (``--format vis-chebi20``): molecule images with five OCSU tasks.

Input folder (the Vis-CheBI20 release): ``train.json``, ``test.json``, ``imgs/``. Records
``{messages, images, task_name}``: ``messages[0]`` the user turn (``<image>`` + prompt),
``messages[1]`` the answer; ``images`` one path relative to the folder. Tasks map to
DeepMoLM names: struct_recog -> recognition, struct_cap -> caption, general_desp ->
description, trans_iupac -> iupac_naming, trans_smiles -> smiles.

The dataset has no SMILES or CID field: the only molecule identity is the SMILES inside
trans_smiles answers ("The SMILES is ..."). So every trans_smiles answer is parsed first
into an image file -> SMILES map (over all files, so a test image's molecule is known from
its own trans_smiles record wherever it is), and every other record takes its molecule from
the trans_smiles record of the same image. The map is keyed by the file a path resolves to
(``imgs/1.png`` and ``./1.png`` retried as ``imgs/1.png`` are one picture), and its SMILES
are compared as molecules (``CCO`` and ``OCC`` agree). No such record is a per-record
``SourceError`` (stage "molecule"); trans_smiles answers naming different molecules for one
picture make every record of that picture one, the trans_smiles records included (one of
them is wrong, and nothing says which). Doubled backslashes (the ChEBI-20 quirk) are
collapsed in the parsed SMILES and in trans_smiles answers.

``image`` is the dataset's own file (the engine copies it); a path that does not exist
under the folder is retried as ``imgs/<file name>``, then is a ``SourceError`` (stage
"image"), which says whether the file is missing, hidden, or a link out of the folder, or
why it cannot be looked up (a name too long, a folder this user cannot search). Items carry ``instruction=None`` unless ``source_instructions`` is true (the
prompt, without ``<image>``, is always kept in ``extra["source_instruction"]``); answers
are the source's text verbatim; a blank one, or one that is only a missing-value marker
("N/A", "-": `base.answer_problem`), is a ``SourceError`` (stage "answer"); so is a record
whose image path, prompt or answer holds a control character other than a tab or a line
break (a NUL, raw or written "\\u0000": `base.control_problem`; stage "read"). A JSON file
that starts with a UTF-16 byte-order mark or compression magic bytes (gzip...) is one error
naming it (`chebi20.text_problem`).

Options: ``splits`` (train, test; default both present), ``tasks`` (DeepMoLM names),
``source_instructions`` (bool, default False). IDs: ``vis-chebi20-<split>-<image
stem>-<task>``, ``-2``, ``-3`` ... for repeats, ``...-record<index>`` without an image.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

from ... import usage
from ...molecule.canonical import smiles_identity
from ...result_files import file_sha256
from .base import (MoleculeSpec, SourceError, SourceItem, answer_problem, fields_control_problem, is_hidden,
                   option_bool, option_list, register_reader)
from .chebi20 import choose_splits, collapse_backslashes, text_problem, unique

TASK_NAMES = {
    "struct_recog": "recognition",
    "struct_cap": "caption",
    "general_desp": "description",
    "trans_iupac": "iupac_naming",
    "trans_smiles": "smiles",
}
FILES = {"train": "train.json", "test": "test.json"}
# Matched against the stripped answer, one way to split each run of spaces: with "\s*:?\s*"
# and the answer's own \s* ends, an answer of 30000 spaces took 26 s to refuse.
_SMILES_ANSWER = re.compile(r"(?:the smiles(?: of [^:]*?)? is\s*(?::\s*)?)?(\S+?)\.?", re.I)


class _Reject(Exception):
    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage, self.reason = stage, reason


USER, ASSISTANT = ("user", "human"), ("assistant", "gpt")  # OpenAI and ShareGPT role names


def _turn(message, roles: tuple) -> str:
    text = message.get("content", message.get("value")) if isinstance(message, dict) else None
    if not isinstance(text, str):
        raise _Reject("schema", "a message without text content")
    # turns in the other order would make the question the answer
    role = message.get("role", message.get("from"))
    if role is not None and not (isinstance(role, str) and role.lower() in roles):
        raise _Reject("schema", f"a turn with role {role!r} where {roles[0]!r} was expected")
    return text


def _parse(record) -> tuple[str, str, str, str]:
    """(source task, image path, prompt, answer) of a record, or _Reject("schema")."""
    if not isinstance(record, dict):
        raise _Reject("schema", f"record is a {type(record).__name__}, not an object")
    task, messages, images = record.get("task_name"), record.get("messages"), record.get("images")
    if not isinstance(task, str) or task not in TASK_NAMES:  # a list or object is unhashable
        raise _Reject("schema", f"unknown task_name {task!r}")
    if not isinstance(messages, list) or len(messages) != 2:
        raise _Reject("schema", "expected messages = [user turn, answer]")
    if isinstance(images, list) and len(images) == 1:
        images = images[0]
    if not isinstance(images, str) or not images.strip():
        raise _Reject("schema", "expected images = one relative path")
    answer = _turn(messages[1], ASSISTANT).strip()
    prompt = _turn(messages[0], USER).replace("<image>", "").strip()
    # before the image path is looked up or the answer judged; stage "read", as a byte that
    # is not UTF-8 is elsewhere (was: a NUL was kept in the answer)
    problem = fields_control_problem((("the image path", images), ("the user turn", prompt),
                                      (f"the {task} answer", answer)))
    if problem:
        raise _Reject("read", problem)
    problem = answer_problem(answer, f"the {task} answer")  # blank, or "N/A", "-" (was kept)
    if problem:
        raise _Reject("answer", problem)
    return task, images.strip(), prompt, answer


def _image_key(path: str) -> str:
    return str(PurePosixPath(path.replace("\\", "/")))


def smiles_from_answer(answer: str) -> Optional[str]:
    """The SMILES of a trans_smiles answer ("The SMILES is X."), backslashes repaired."""
    match = _SMILES_ANSWER.fullmatch(answer.strip())
    return collapse_backslashes(match.group(1)) if match else None


def _load(path: Path) -> list:
    # utf-8-sig: json refuses a BOM; RecursionError: thousands of nested "[" in the file
    text_problem(path, "vis-chebi20")  # UTF-16, gzip: said in one line, not as a JSON decode error
    try:
        with open(path, encoding="utf-8-sig") as handle:
            # strict=False: a raw control character inside a string (a NUL) is its record's
            # failure (`_parse`); was: json refused the whole file for it
            records = json.load(handle, strict=False)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ValueError(f"vis-chebi20: {path} is not valid UTF-8 JSON: {error}") from error
    if not isinstance(records, list):
        raise ValueError(f"vis-chebi20: {path} must hold a JSON array of records")
    return records


@dataclass
class _Pictures:
    """What the trans_smiles answers say of each picture, keyed by its content (`_picture`):
    {molecule identity: first SMILES text naming it}, and the answers that name no SMILES."""

    smiles: dict
    unreadable: dict
    digests: dict = field(default_factory=dict)  # resolved path -> content digest, each file read once

    def key(self, path: Path) -> str:
        """A picture is its bytes: two files of one picture (a copy under another name) with
        answers naming two molecules gave records of one image file with both labels."""
        real = usage.real_path(path)
        if real not in self.digests:
            try:
                self.digests[real] = file_sha256(real)
            except OSError as error:
                raise _Reject("image", f"cannot read image file {path}: {error.strerror or error}") from error
        return self.digests[real]


def _smiles_map(root: Path, files: dict) -> _Pictures:
    """The pictures' SMILES from all trans_smiles answers; spellings are compared as
    molecules only where they differ."""
    pictures = _Pictures(smiles={}, unreadable={})
    texts = defaultdict(dict)  # picture -> {SMILES text: None}, in file order
    for records in files.values():
        for record in records:
            try:
                task, image, _, answer = _parse(record)
                smiles = smiles_from_answer(answer) if task == "trans_smiles" else None
                picture = pictures.key(_resolve_image(root, image)) if task == "trans_smiles" else None
            except _Reject:
                continue  # reported as an error when the record itself is read
            if picture is not None and smiles:
                texts[picture][smiles] = None
            elif picture is not None:  # the other tasks' records of this picture say why they have no molecule
                pictures.unreadable.setdefault(picture, answer)
    found = pictures.smiles
    for path, spellings in texts.items():
        if len(spellings) == 1:
            found[path] = {smiles: smiles for smiles in spellings}
        else:  # an unparseable one stands for itself: the engine names it
            found[path] = {}
            for smiles in spellings:
                found[path].setdefault(smiles_identity(smiles) or smiles, smiles)
    return pictures


def _resolve_image(root: Path, image: str) -> Path:
    """The image file, which must be one of the dataset folder's files (the engine copies
    it): inside it and not hidden, as the run's input checksums see them (a picture in a
    hidden folder was copied, but an edit to it went unnoticed on a rerun)."""
    folder, why = usage.real_path(root), None
    for candidate in (root / image, root / "imgs" / PurePosixPath(_image_key(image)).name):
        try:
            if not candidate.is_file():
                continue
            real = usage.real_path(candidate)
        except OSError as error:
            # is_file() is False only for "not found"; a name too long for the file system
            # (ENAMETOOLONG) or a folder this user cannot search (EACCES) raises. Was: raised
            # from _smiles_map before the first item, it stopped the whole read ("reader
            # stopped after 0 items: [Errno 36] File name too long"). Not retried as
            # imgs/<name>: that may be another picture than the one the record names.
            raise _Reject("image", f"image file {image!r} cannot be looked up ({candidate}): "
                                   f"{error.strerror or error}") from error
        if not real.is_relative_to(folder):
            why = why or f"image file {image!r} is {real}, outside the dataset folder {root} (a link out of it?)"
        elif is_hidden(real.relative_to(folder)):
            why = why or f"image file {image!r} is hidden under {root} (hidden files are not read)"
        else:
            return candidate
    raise _Reject("image", why or f"image file {image!r} not found under {root} (hidden files are not read)")


def _molecule(task: str, path: Path, image: str, answer: str, pictures: _Pictures) -> tuple[str, str]:
    candidates = pictures.smiles.get(pictures.key(path), {})
    if len(candidates) > 1:
        named = ", ".join(list(candidates.values())[:3])
        raise _Reject("molecule", f"the trans_smiles answers for image {image!r} (or a file of the same bytes) name "
                                  f"{len(candidates)} different molecules ({named}): one of them is wrong")
    if task == "trans_smiles":
        smiles = smiles_from_answer(answer)
        if not smiles:
            raise _Reject("molecule", f"no SMILES in the trans_smiles answer {answer[:80]!r}")
        return smiles, "answer"
    if not candidates and pictures.key(path) in pictures.unreadable:
        raise _Reject("molecule", f"molecule unknown: the trans_smiles answer for image {image!r} names no SMILES "
                                  f"({pictures.unreadable[pictures.key(path)][:80]!r})")
    if not candidates:
        raise _Reject("molecule", f"molecule unknown: no trans_smiles record for image {image!r}")
    return next(iter(candidates.values())), "trans_smiles record of the same image"


def _id_base(split: str, record, index: int) -> tuple[str, Optional[str]]:
    """(id before de-duplication, DeepMoLM task or None), read leniently: bad records need ids too."""
    record = record if isinstance(record, dict) else {}
    task_name, image = record.get("task_name"), record.get("images")
    task = TASK_NAMES.get(task_name) if isinstance(task_name, str) else None
    image = image[0] if isinstance(image, list) and len(image) == 1 else image
    if not isinstance(image, str) or not image.strip():
        return f"vis-chebi20-{split}-record{index}", task
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", PurePosixPath(_image_key(image.strip())).stem)
    return f"vis-chebi20-{split}-{stem}-{task or 'unknown'}", task


def input_files(root: Path, options: dict) -> list:
    """train.json and test.json (all present: the SMILES map reads both) and the pictures
    their records name (`_resolve_image`), each file once."""
    found = {}  # real path -> (path, name)
    for name in FILES.values():
        if (root / name).is_file():
            found[os.path.realpath(root / name)] = (root / name, name)
            for record in _load(root / name):
                try:
                    path = _resolve_image(root, _parse(record)[1])
                except _Reject:
                    continue  # that record's failure line says why; no picture of it is read
                found.setdefault(os.path.realpath(path), (path, Path(os.path.relpath(path, root)).as_posix()))
    return sorted(found.values())


@register_reader("vis-chebi20", options={"splits", "tasks", "source_instructions"}, files=input_files)
def read_vis_chebi20(input_path: str, options: dict) -> Iterator[SourceItem | SourceError]:
    root = Path(input_path)
    splits = choose_splits("vis-chebi20", root, FILES, options.get("splits"))
    tasks = option_list("vis-chebi20", "tasks", options.get("tasks")) or list(TASK_NAMES.values())
    unknown = [t for t in tasks if t not in TASK_NAMES.values()]
    if unknown:
        raise ValueError(f"vis-chebi20: unknown tasks {unknown}; choose from {list(TASK_NAMES.values())}")
    keep_instruction = option_bool("vis-chebi20", "source_instructions", options.get("source_instructions"), False)

    files = {s: _load(root / name) for s, name in FILES.items() if (root / name).is_file()}
    smiles_map = _smiles_map(root, files)
    for split in splits:
        seen: Counter = Counter()
        for index, record in enumerate(files[split]):
            base, task = _id_base(split, record, index)
            id = unique(seen, base)
            if task is not None and task not in tasks:
                continue
            try:
                source_task, image, prompt, answer = _parse(record)
                path = _resolve_image(root, image)
                smiles, origin = _molecule(source_task, path, image, answer, smiles_map)
            except _Reject as reject:
                yield SourceError(id, reject.stage, reject.reason)
                continue
            if source_task == "trans_smiles":
                answer = collapse_backslashes(answer)
            yield SourceItem(
                id=id, split=split, task=task, molecule=MoleculeSpec(smiles=smiles), answer=answer,
                instruction=prompt if keep_instruction and prompt else None, image=str(path),
                extra={"source_task": source_task, "source_instruction": prompt,
                       "image_path": image, "smiles_from": origin},
            )
