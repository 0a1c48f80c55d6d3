"""The output folder: committed chunks under `.progress`, then the final assembly (split
files, sidecars, failures, manifest) as a pure function of those chunks. Kept apart from
the computation so that --merge can assemble without reading the input."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...molecule.canonical import smiles_identity
from ...molecule.sidecar import SidecarBuilder, dtype_for, reference
from ..sources.base import OUTPUT_MANIFEST, OUTPUT_PROGRESS, OUTPUT_TOOL, id_key, split_problem
from ...result_files import file_sha256
from .common import PrepareError, Shape, atomic_bytes, dumps, fsync_path, need, writer_tag, writing
from .items import Made
from .lock import is_lock_file
from .overlaps import OVERLAPS, Overlaps, summary_lines

SCHEMA = 1
PROGRESS, MANIFEST, FAILURES = OUTPUT_PROGRESS, OUTPUT_MANIFEST, "failures.jsonl"
# images/<h[:2]>/<h[2:32]><suffix>, h the SHA-256 of the file's bytes (`ItemMaker._store`)
IMAGE_NAME = re.compile(r"images/([0-9a-f]{2})/([0-9a-f]{30})(\.[^/]*)?")
# The other files a run writes (split names as `sources.base.SPLIT_NAME` allows them).
OUTPUT_NAME = re.compile(r"[A-Za-z0-9_-]+\.json|fp/[A-Za-z0-9_-]+\.npy|" + re.escape(FAILURES) + "|"
                         + re.escape(OVERLAPS))


def image_intact(root: Path, name: str) -> bool:
    """Whether a content-addressed image's bytes still hash to its name (other names: True)."""
    match = IMAGE_NAME.fullmatch(name)
    return not match or file_sha256(root / name)[:32] == match.group(1) + match.group(2)


def is_stored_image(path: "str | os.PathLike") -> bool:
    """Whether a picture's path ends in a content-addressed name (`images/xx/<hash>.png`),
    wherever its output folder is (a records file in a parent folder names it `out/images/...`)."""
    return bool(IMAGE_NAME.fullmatch("/".join(Path(path).parts[-3:])))


def stored_image_intact(path: "str | os.PathLike") -> bool:
    """`image_intact` for a picture named by its path (training and eval.questions: the
    records' own images); True for a path not ending in a content-addressed name."""
    path = Path(path)
    return not is_stored_image(path) or image_intact(path.parents[2], "/".join(path.parts[-3:]))


def is_output_name(name: str) -> bool:
    """A relative path this tool writes: never anything else is deleted or trusted."""
    return bool(OUTPUT_NAME.fullmatch(name) or IMAGE_NAME.fullmatch(name))


def read_object(path: Path, remedy: str = "delete it, or use --overwrite", check=None) -> dict:
    """A JSON object this tool wrote (manifest, run state, chunk, shard marker). Written
    atomically, so damage comes from outside (an edit, a disk fault): a PrepareError
    naming the file and what to do, never a JSONDecodeError traceback. `check` raises
    `Shape` for JSON of another layout (a key removed, a list for an object), which was a
    KeyError or TypeError traceback wherever the key was read."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PrepareError(f"{path} is damaged ({e}): {remedy}") from e
    if not isinstance(value, dict):
        raise PrepareError(f"{path} is damaged (a JSON {type(value).__name__}, not an object): {remedy}")
    try:
        if check is not None:
            check(value)
    except Shape as e:
        raise PrepareError(f"{path} is damaged (not laid out as this tool writes it: {e}): {remedy}") from e
    return value


def check_chunk(meta: dict) -> None:
    """What assembly reads from a chunk, and its items' token rows adding up to the chunk's
    (an item repeated by an edit was caught only while writing, naming no file)."""
    rows = 0
    for entry in need(meta, "items", list):
        if isinstance(entry, dict) and "failure" in entry:
            failure = need(entry, "failure", dict)
            need(failure, "stage", str), need(failure, "reason", str)
            continue
        record = need(entry, "record", dict)
        need(record, "id", object), need(record, "task", str), need(record, "smiles", str)  # Tally.row_key
        if "properties" in record:  # Overlaps.note compares the labels
            need(record, "properties", dict)
        if not IMAGE_NAME.fullmatch(need(record, "image", str)):
            raise Shape(f"image {record['image']!r} is not a name this tool gives")
        if split_problem(need(entry, "split", str)):
            raise Shape(split_problem(entry["split"]))
        need(entry, "fp", str)
        rows += need(entry, "atoms", int)
    if rows != need(meta, "rows", int):
        raise Shape(f"its items account for {rows} token rows, not {meta['rows']}")
    need(meta, "tokens_sha256", str)


class Output:
    """The files of one output folder and the rules for touching them."""

    def __init__(self, root: Path, tag: str):
        self.root = root
        self.progress = root / PROGRESS
        self.tmp = self.progress / "tmp" / f"{tag}-{writer_tag()}"
        self.tag = tag
        self.run_id = ""  # digest of the run's identity, set once it is known (`start`)

    def chunk_json(self, c: int) -> Path:
        return self.progress / f"chunk-{c:07d}.{self.run_id}.json"

    def chunk_npy(self, c: int) -> Path:
        return self.progress / f"chunk-{c:07d}.{self.run_id}.npy"

    def committed(self, any_run: bool = False) -> set:
        """Chunks committed by this run's identity (chunk names carry it, so chunks made
        with other settings, e.g. by a misconfigured array job, are never mixed in)."""
        if not self.progress.is_dir():
            return set()
        pattern = "chunk-*.json" if any_run else f"chunk-*.{self.run_id}.json"
        return {int(p.name.split(".")[0][len("chunk-"):]) for p in self.progress.glob(pattern)}

    def read_json(self, name: str, remedy: str = "delete it, or use --overwrite", check=None) -> Optional[dict]:
        path = self.root / name
        return read_object(path, remedy, check) if path.is_file() else None

    def is_ours(self) -> bool:
        return (self.root / MANIFEST).is_file() or self.progress.is_dir()

    def lost_its_manifest(self) -> bool:
        """Finished output of this tool whose manifest.json was deleted: a split's records
        beside its sidecar (`<split>.json`, `fp/<split>.npy`). It was refused as holding "no
        deepmolm-prepare output", --overwrite included, so it could not be redone."""
        return any((self.root / f"{p.stem}.json").is_file() and is_output_name(f"fp/{p.name}")
                   for p in (self.root / "fp").glob("*.npy"))

    def is_empty(self) -> bool:
        """Nothing in the folder but this tool's lock files (held by this very run)."""
        return not any(not is_lock_file(p.name) for p in self.root.iterdir())

    def clean_tmp(self) -> None:
        """Temporary files of earlier, killed runs of this shard: never part of an output."""
        base = self.progress / "tmp"
        if base.is_dir():
            for stale in base.glob(f"{self.tag}-*"):
                with writing(stale, "remove"):
                    shutil.rmtree(stale, ignore_errors=False)

    def remove_outputs(self) -> None:
        """--overwrite: delete what earlier runs wrote, and only that: the files the manifest
        and the progress files name, images under their content-addressed names and the
        `.progress` folder. A user's own files in --out stay, even inside images/ or fp/."""
        for name in sorted(self._written()):
            with writing(self.root / name, "remove"):
                (self.root / name).unlink(missing_ok=True)
        images = self.root / "images"
        for folder in [*sorted(images.glob("*/")), images, self.root / "fp"]:
            if folder.is_dir() and not any(folder.iterdir()):
                with writing(folder, "remove"):
                    folder.rmdir()
        if self.progress.is_dir():
            with writing(self.progress, "remove"):
                shutil.rmtree(self.progress)

    def _written(self) -> set:
        """Relative paths of the files earlier runs wrote here (names this tool writes only)."""
        names = {MANIFEST, FAILURES, OVERLAPS}
        for state in (self.read_json(MANIFEST), self.read_json(f"{PROGRESS}/assembly.json")):
            # Edited into another shape, they may hold anything: only the names below are taken.
            splits, files = ((state or {}).get(key) for key in ("splits", "files"))
            for split in splits if isinstance(splits, (list, dict)) else []:
                names.update({f"{split}.json", f"fp/{split}.npy"})
            names.update(files if isinstance(files, (list, dict)) else [])
        names.update(p.relative_to(self.root).as_posix() for p in self.root.glob("images/*/*"))
        return {name for name in names if isinstance(name, str) and is_output_name(name)}

    def verify(self, manifest: dict) -> Dict[str, str]:
        """What of a finished output no longer matches its manifest: relative path -> the
        problem (a file edited, truncated or deleted after the run; an image whose bytes do
        not hash to its name; a manifest edited into another shape, which was a KeyError
        traceback). Empty when everything the manifest vouches for is intact."""
        try:
            return self._verify(manifest)
        except (KeyError, TypeError, AttributeError, ValueError) as e:  # JSON, but not the shape written
            return {MANIFEST: f"it is not laid out as this tool writes it ({type(e).__name__}: {e})"}

    def _verify(self, manifest: dict) -> Dict[str, str]:
        if "files" not in manifest:
            return {MANIFEST: "it has no checksums (written by an older deepmolm-prepare)"}
        problems = {}
        for name, expected in manifest["files"].items():
            path = self.root / name
            if not is_output_name(name):
                problems[MANIFEST] = f"it names {name!r}, not a file this tool writes"
            elif not path.is_file():
                problems[name] = "missing"
            elif path.stat().st_size != expected["bytes"] or file_sha256(path) != expected["sha256"]:
                problems[name] = "does not match its SHA-256 in the manifest"
        for path in sorted(self.root.glob("images/*/*")):  # content-addressed: the name is the checksum
            name = path.relative_to(self.root).as_posix()
            if not image_intact(self.root, name):
                problems[name] = "its bytes do not hash to its name"
        if problems:
            return problems  # redone anyway (and the record files may not list the images right)
        images = {record["image"] for split in manifest["splits"].values()
                  for record in json.loads((self.root / split["file"]).read_text())}
        problems.update({name: "missing" for name in sorted(images) if not (self.root / name).is_file()})
        if len(images) != manifest["counts"]["images"]:
            problems[MANIFEST] = f"the records name {len(images)} images, the manifest counts " \
                                 f"{manifest['counts']['images']}"
        summary(manifest)  # the rerun prints it from these keys: a missing one was a KeyError after this check
        return problems

    def discard(self, problems: Dict[str, str]) -> None:
        """Before redoing a damaged output: the manifest no longer vouches for it, and the
        damaged files go (an image is rewritten only where no file has its name)."""
        with writing(self.root / MANIFEST, "remove"):
            (self.root / MANIFEST).unlink()
        for name in filter(is_output_name, problems):
            with writing(self.root / name, "remove"):
                (self.root / name).unlink(missing_ok=True)

    def commit_chunk(self, c: int, first: int, made: List[Made], levels: int, dtype) -> None:
        """Token rows first, then the JSON that names them: the JSON is the commit point."""
        rows = [m.tokens for m in made if m.record is not None]
        tokens = np.concatenate(rows).astype(dtype) if rows else np.zeros((0, levels), dtype=dtype)
        buffer = io.BytesIO()
        np.save(buffer, tokens, allow_pickle=False)
        data = buffer.getvalue()
        atomic_bytes(self.chunk_npy(c), data, self.tmp)
        items = []
        for m in made:
            if m.record is None:
                items.append({"failure": m.failure})
            else:
                digest = hashlib.blake2b(m.tokens.astype(dtype).tobytes(), digest_size=16).hexdigest()
                items.append({"split": m.split, "atoms": int(len(m.tokens)), "fp": digest, "record": m.record})
        meta = {"chunk": c, "first": first, "items": items, "rows": int(len(tokens)),
                "tokens_sha256": hashlib.sha256(data).hexdigest()}
        atomic_bytes(self.chunk_json(c), dumps(meta).encode(), self.tmp)

    def load_chunk(self, c: int, with_tokens: bool) -> Tuple[dict, Optional[np.ndarray]]:
        if not self.chunk_json(c).is_file():
            raise PrepareError(f"chunk {c} is not committed: rerun without --merge to compute it")
        meta = read_object(self.chunk_json(c), f"delete it and rerun to recompute chunk {c}", check_chunk)
        if not with_tokens:
            return meta, None
        path = self.chunk_npy(c)
        data = path.read_bytes() if path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != meta["tokens_sha256"]:
            raise PrepareError(f"{path} is missing or damaged (checksum): delete {self.chunk_json(c)} "
                               "and rerun to recompute that chunk")
        tokens = np.load(io.BytesIO(data), allow_pickle=False)
        if len(tokens) != meta["rows"]:  # items and "rows" edited alike: the .npy still matches its checksum
            raise PrepareError(f"{self.chunk_json(c)} is damaged (its items account for {meta['rows']} token rows, "
                               f"{path.name} holds {len(tokens)}): delete it and rerun to recompute chunk {c}")
        return meta, tokens


@dataclass
class Tally:
    """Pass 1 of assembly: what the chunks hold, before anything is written."""

    items: int = 0
    splits: Dict[str, dict] = field(default_factory=dict)  # split -> records, rows, tasks
    stages: Counter = field(default_factory=Counter)
    duplicates: set = field(default_factory=set)  # (chunk, item) of repeated ids
    images: int = 0
    molecules: Dict[str, str] = field(default_factory=dict)  # SMILES text -> its identity (`row_key`)
    overlaps: Overlaps = field(default_factory=Overlaps)  # one molecule in several splits, differing labels

    def row_key(self, entry: dict) -> Tuple[str, str]:
        """Which records share sidecar rows: equal token rows (`fp`, their digest) of one
        molecule. E3FP tokens ignore a carbon's isotope, so methanol and 13C-methanol had one
        digest and were stored on one set of rows, which training refuses as "an offset is
        wrong": the molecules are compared as that check compares them
        (`data.records._check_shared_rows`: `smiles_identity`), once per text."""
        text = entry["record"]["smiles"].strip()
        if text not in self.molecules:  # one RDKit run per text; an unparseable one stands for itself
            self.molecules[text] = smiles_identity(text) or text
        return entry["fp"], self.molecules[text]

    def copy_key(self, entry: dict) -> str:
        """The record's molecule as deepmolm-kflm2 finds copies (`overlaps.copy_key`), from
        the identity `row_key` already computed: no RDKit run per record."""
        return self.overlaps.key(self.row_key(entry)[1])


def tally(out: Output, n_chunks: int, shards: Optional[int] = None) -> Tally:
    """Counts, sidecar sizes (rows shared by records of one molecule with equal tokens
    counted once, `Tally.row_key`),
    repeated ids (`id_key`: the later ones fail as duplicates, whether the earlier one
    failed or not, and whether the later one would have failed anyway), and a check that
    every image is there."""
    t, seen, images, fps = Tally(), set(), set(), {}
    damaged: Dict[int, str] = {}  # chunk -> the first of its images found missing or damaged
    for c in range(n_chunks):
        meta, _ = out.load_chunk(c, with_tokens=False)
        for k, entry in enumerate(meta["items"]):
            t.items += 1
            item_id = entry["failure"].get("id") if "failure" in entry else entry["record"]["id"]
            # A failed item's id is taken too, and a failed item may repeat a record's id:
            # either way one id would be in the records and in failures.jsonl as if it failed.
            # (A reader's own "id" failure already says the id is repeated.)
            key = None if item_id is None else id_key(item_id)
            repeated = key is not None and key in seen
            if repeated and not ("failure" in entry and entry["failure"]["stage"] == "id"):
                t.duplicates.add((c, k))
                t.stages["duplicate-id"] += 1
                continue
            if key is not None:
                seen.add(key)
            if "failure" in entry:
                t.stages[entry["failure"]["stage"]] += 1
                continue
            record = entry["record"]
            if record["image"] not in images:
                image = out.root / record["image"]
                problem = ("is missing (deleted since it was written)" if not image.is_file() else
                           None if image_intact(out.root, record["image"]) else
                           "does not hash to its name (edited or damaged since it was written)")
                if problem:
                    # A resumed run vouched for an image deleted or damaged since it was written
                    # (only the next rerun's check found it): it and its chunk go, and are redone.
                    # Every such chunk is found in this one pass (a rerun per chunk, before).
                    with writing(image, "remove"):
                        image.unlink(missing_ok=True)
                    damaged.setdefault(c, f"record {record['id']!r}: image {record['image']} {problem}")
                    continue
                images.add(record["image"])
            split = t.splits.setdefault(entry["split"], {"records": 0, "rows": 0, "tasks": Counter()})
            split["records"] += 1
            split["tasks"][record["task"]] += 1
            key = t.row_key(entry)
            if key not in fps.setdefault(entry["split"], set()):
                fps[entry["split"]].add(key)
                split["rows"] += entry["atoms"]
            t.overlaps.note(t.copy_key(entry), entry["split"], record.get("properties") or {})
    if damaged:
        for c in damaged:
            with writing(out.chunk_json(c), "remove"):
                out.chunk_json(c).unlink()
        first = next(iter(damaged.values()))
        # --merge computes nothing: "rerun the same command" sent a merge to merge again
        owners = ", ".join(f"{i}/{shards}" for i in sorted({c % shards for c in damaged})) if shards else ""
        again = (f"rerun the shard job(s) that own them (--shard {owners}), then --merge" if shards else
                 "rerun the same command to recompute them")
        raise PrepareError(f"{first}; {len(damaged)} chunk(s) with missing or damaged images were removed (with those "
                           f"images: chunk {', '.join(map(str, list(damaged)[:10]))}{' ...' if len(damaged) > 10 else ''}"
                           f"): {again}")
    t.images = len(images)
    return t


def duplicate_failure(item_id, more: str = "") -> dict:
    return {"id": item_id, "stage": "duplicate-id",
            "reason": f"an earlier record has the same id (as Unicode NFC text){more}"}


class OutputText:
    """A text file of assembly (records, failures), written under a temporary name in
    ``tmp`` and renamed to ``final`` by `place`. Every OSError on it (a full disk, a quota)
    is an `OutputWriteError` naming ``final``; after a first error, closing it raises no
    second one (was: three chained OSError tracebacks, the files' closes failing again)."""

    def __init__(self, tmp: Path, final: Path):
        self.tmp, self.final = tmp, final
        with writing(final):
            self.handle = open(tmp, "w", encoding="ascii")

    def __enter__(self) -> "OutputText":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            with writing(self.final):
                self.handle.close()
            return
        # already stopping on an error: the buffered rest cannot be written either, and the
        # half file in .progress/tmp would keep the space that ran out
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink(missing_ok=True)

    def write(self, text: str) -> None:
        with writing(self.final):
            self.handle.write(text)

    def sync(self) -> None:
        with writing(self.final):
            self.handle.flush()
            os.fsync(self.handle.fileno())

    def place(self) -> None:
        with writing(self.final):
            os.replace(self.tmp, self.final)


def write_outputs(out: Output, n_chunks: int, t: Tally, levels: int, dtype) -> None:
    """Pass 2: records, sidecars and failures into temporary files, then renamed into place
    (sidecars first, so a record file never points at a sidecar that is not there yet)."""
    names = sorted(t.splits)
    atomic_bytes(out.progress / "assembly.json", dumps({"splits": names}).encode(), out.tmp)
    sidecars = {}
    for s in names:
        with writing(out.root / "fp" / f"{s}.npy"):  # its full size is set here (a file-size limit, a quota)
            sidecars[s] = SidecarBuilder(out.tmp / f"fp-{s}.npy", t.splits[s]["rows"], levels, dtype)
    placed: Dict[str, Dict[Tuple[str, str], dict]] = {s: {} for s in names}  # Tally.row_key -> sidecar reference
    with contextlib.ExitStack() as files:
        writers = {s: files.enter_context(OutputText(out.tmp / f"{s}.json", out.root / f"{s}.json")) for s in names}
        failures = files.enter_context(OutputText(out.tmp / FAILURES, out.root / FAILURES))
        separator = {s: "[\n" for s in names}
        for c in range(n_chunks):
            meta, tokens = out.load_chunk(c, with_tokens=True)
            at = 0
            for k, entry in enumerate(meta["items"]):
                if "failure" in entry:
                    failure = entry["failure"]
                    if (c, k) in t.duplicates:
                        failure = duplicate_failure(failure["id"], f"; this one also failed ({failure['stage']}: "
                                                                   f"{failure['reason']})")
                    failures.write(dumps(failure) + "\n")
                    continue
                n, split, record = entry["atoms"], entry["split"], entry["record"]
                rows, at = tokens[at:at + n], at + n
                if (c, k) in t.duplicates:
                    failures.write(dumps(duplicate_failure(record["id"])) + "\n")
                    continue
                key = t.row_key(entry)
                if key not in placed[split]:  # rows shared by a molecule's records: stored and digested once
                    placed[split][key] = reference(f"fp/{split}.npy", sidecars[split].append(rows), n, rows,
                                                   molecule=key[1])
                record["molecule_fp"] = dict(placed[split][key])
                if isinstance(record.get("depiction"), dict):
                    # which molecule the picture draws, as the sidecar reference says of its rows:
                    # training and eval.questions refuse a record whose `image` or SMILES is not
                    # that depiction's (`data.records.PreparedPictures`; was: nothing tied them)
                    record["depiction"]["molecule"] = key[1]
                writers[split].write(separator[split] + dumps(record))
                separator[split] = ",\n"
                molecule = t.copy_key(entry)
                if t.overlaps.flagged(molecule):
                    t.overlaps.collect(molecule, split, record)
        for s in names:
            writers[s].write("\n]\n")
        for handle in [*writers.values(), failures]:
            handle.sync()
    for s in names:
        with writing(out.root / "fp" / f"{s}.npy"):
            sidecars[s].commit(out.root / "fp" / f"{s}.npy")
        fsync_path(out.root / "fp" / f"{s}.npy")
    for handle in [*writers.values(), failures]:
        handle.place()
    write_overlaps(out, t.overlaps)
    remove_stale_splits(out, names)


def write_overlaps(out: Output, overlaps: Overlaps) -> None:
    """overlaps.jsonl when there is something to list (an output without overlaps has none,
    so an earlier run's file, which no manifest would vouch for, is removed)."""
    entries = overlaps.entries()
    if not entries:
        with writing(out.root / OVERLAPS, "remove"):
            (out.root / OVERLAPS).unlink(missing_ok=True)
        return
    atomic_bytes(out.root / OVERLAPS, "".join(dumps(e) + "\n" for e in entries).encode(), out.tmp)


def remove_stale_splits(out: Output, names: List[str]) -> None:
    """Split files of an earlier run that this one does not make: a record file `X.json`
    with its sidecar `fp/X.npy` beside it, X not among `names`. Only a run whose manifest
    was lost leaves them (a damaged manifest is redone, and a run killed before its first
    chunk protects nothing): its `valid.json` stayed next to another input's `train.json`,
    listed by no manifest, so even --overwrite kept it. The pair is this tool's layout; a
    user's own JSON file without its sidecar is left alone."""
    for sidecar in sorted((out.root / "fp").glob("*.npy")):
        split = sidecar.stem
        records = out.root / f"{split}.json"
        if split in names or split_problem(split) or not records.is_file():  # a name no run gives a split
            continue
        for stale in (records, sidecar):
            with writing(stale, "remove"):
                stale.unlink()
        print(f"deepmolm-prepare: removed {records.name} and fp/{sidecar.name}: split files of an earlier run in "
              f"{out.root} that this run does not make", file=sys.stderr)


def sync_folders(out: Output) -> None:
    """The renames into the output's folders (records, sidecars, every image folder) on
    disk before the manifest vouches for them; file contents were synced when written."""
    folders = [out.root / "fp", out.root / "images"]
    if (out.root / "images").is_dir():
        folders += sorted(p for p in (out.root / "images").iterdir() if p.is_dir())
    for folder in folders + [out.root]:
        if folder.is_dir():
            fsync_path(folder)


def checksums(out: Output, names: List[str]) -> Dict[str, dict]:
    """Size and SHA-256 of each output file, for the manifest (a rerun verifies them)."""
    return {name: {"bytes": (out.root / name).stat().st_size, "sha256": file_sha256(out.root / name)}
            for name in names}


def assemble(out: Output, n_chunks: int, state: dict, shards: Optional[int] = None) -> dict:
    """All committed chunks -> split files, sidecars, failures, then the manifest.

    A pure function of the chunk files, so the output is the same however the chunks were
    made. Two passes (tally, then write): one chunk in memory at a time, and the sidecar
    sizes known before writing them. The manifest is written last, once every file it
    vouches for (with its SHA-256) and every folder holding them is on disk: it marks the
    output complete; `.progress` is removed after it.
    """
    settings = state["settings"]
    t = tally(out, n_chunks, shards)
    write_outputs(out, n_chunks, t, settings["fp_levels"], dtype_for(settings["fp_bits"]))
    sync_folders(out)
    listed = [OVERLAPS] if t.overlaps.entries() else []
    files = [name for s in sorted(t.splits) for name in (f"{s}.json", f"fp/{s}.npy")] + [FAILURES] + listed
    manifest = {
        "schema": SCHEMA,
        "tool": OUTPUT_TOOL,  # with the manifest's name, how a folder input knows an output
        "settings": settings,
        "versions": state["versions"],
        "inputs": state["inputs"],
        "counts": {"items": t.items, "records": sum(v["records"] for v in t.splits.values()),
                   "failures": sum(t.stages.values()), "images": t.images},
        "splits": {s: {"file": f"{s}.json", "sidecar": f"fp/{s}.npy", "records": v["records"],
                       "sidecar_rows": v["rows"], "tasks": dict(sorted(v["tasks"].items()))}
                   for s, v in sorted(t.splits.items())},
        "failures": {"file": FAILURES, "by_stage": dict(sorted(t.stages.items()))},
        "overlaps": t.overlaps.counts(listed[0] if listed else None),
        "files": checksums(out, files),
    }
    atomic_bytes(out.root / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), out.tmp)
    fsync_path(out.root)
    with writing(out.progress, "remove"):
        shutil.rmtree(out.progress)
    return manifest


def summary(manifest: dict) -> str:
    """The end-of-run table, made from the manifest itself (so the two always agree)."""
    counts, settings = manifest["counts"], manifest["settings"]
    overlaps, overlap_lines = summary_lines(manifest)
    lines = [f"deepmolm-prepare {settings['format']}: {counts['items']} items -> "
             f"{counts['records']} records, {counts['failures']} failures, {counts['images']} images{overlaps}"]
    rows = [(split, task, n) for split, info in manifest["splits"].items() for task, n in info["tasks"].items()]
    width = max([len("task")] + [len(t) for _, t, _ in rows])
    split_width = max([len("split")] + [len(s) for s, _, _ in rows])
    lines.append(f"  {'split':<{split_width}}  {'task':<{width}}  {'records':>8}")
    for split, task, n in rows:
        lines.append(f"  {split:<{split_width}}  {task:<{width}}  {n:>8}")
    for split, info in manifest["splits"].items():
        lines.append(f"  {split:<{split_width}}  {'(all)':<{width}}  {info['records']:>8}")
    stages = manifest["failures"]["by_stage"]
    if stages:
        lines.append("  failures by stage: " + ", ".join(f"{k} {v}" for k, v in stages.items())
                     + f"  (see {manifest['failures']['file']})")
    return "\n".join(lines + overlap_lines)
