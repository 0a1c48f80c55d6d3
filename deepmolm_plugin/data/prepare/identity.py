"""The identity of a run: input checksums, settings and package versions. Committed chunks
and finished outputs are reused only by a run with the same identity, so this is what makes
a run resumable (and what a changed run is refused with)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import List, Optional, Tuple

from ... import usage
from ..sources.base import READER_LOCATIONS, input_files_of
from ...result_files import file_sha256
from .common import PrepareError, Shape, dumps, need


def input_files(settings: dict, out: Path) -> List[Tuple[Path, str]]:
    """(file, name) of the input of a run with `settings` (`cli.settings_of`): the file, or
    the files of the folder that the format's reader reads (`sources.base.input_files_of`;
    a file the reader never opens, such as the run's own nohup.out, is not input), sorted,
    the output folder (if inside) left out."""
    path = usage.real_path(settings["input"])
    if path.is_file():
        return [(path, path.name)]
    if not path.is_dir():
        raise PrepareError(f"--input {path} does not exist")
    try:
        files = input_files_of(settings["format"], path, settings["reader_options"])
    except (ValueError, OSError) as e:  # the reader's own words (no split file, no SDF under the folder)
        raise PrepareError(f"--input {path}: {e}") from e
    return sorted((p, name) for p, name in files if out not in p.parents)


def checksum_inputs(settings: dict, out: Path, known: List[dict]) -> List[dict]:
    """SHA-256 of every input file; reused from an earlier run's `known` entries (see
    `reusable_checksums`) when size and mtime match."""
    cache = {(e["path"], e["bytes"], e.get("mtime_ns")): e["sha256"] for e in known}
    entries = []
    for file, name in input_files(settings, out):
        stat = file.stat()
        sha = cache.get((name, stat.st_size, stat.st_mtime_ns)) or file_sha256(file)
        entries.append({"path": name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha})
    return entries


def changed_inputs(settings: dict, out: Path, entries: List[dict]) -> List[str]:
    """Input files whose size or mtime differ from `entries` (checksummed at the start), or
    that came or went: an input edited while the run read it. A run that read a file while
    it grew wrote the checksum of the file as it was before into its manifest."""
    now = {name: file.stat() for file, name in input_files(settings, out)}
    before = {e["path"]: e for e in entries}
    changed = sorted(set(now) ^ set(before))
    changed += sorted(name for name in set(now) & set(before)
                      if (now[name].st_size, now[name].st_mtime_ns) != (before[name]["bytes"], before[name]["mtime_ns"]))
    return changed


def reusable_checksums(previous: Optional[dict], settings: dict) -> List[dict]:
    """The input entries of an earlier run (`previous`: its manifest or run.json) whose
    checksums may be reused by size and mtime: only when it read the same --input path. A
    copy elsewhere (`cp -p`: same name, size and mtime) is read again, since its content is
    what says whether it is the same run (`identity_of`)."""
    if not previous or (previous.get("settings") or {}).get("input") != settings.get("input"):
        return []
    return previous.get("inputs", [])


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import deepmolm_plugin

    from ...molecule.conformer import CONFORMER_RULES
    from ...molecule.io import READER_RULES
    from ...molecule.render import DRAWING_RULES

    out = {"deepmolm_plugin": deepmolm_plugin.__version__}
    # What a depiction shows (raised with every change of how one input is drawn): an output
    # drawn under older rules is not reused. Its first appearance also retires outputs that
    # drew an atom list next to a SMILES from the atoms (the resolver draws the SMILES).
    out["drawing_rules"] = DRAWING_RULES
    out["conformer_rules"] = CONFORMER_RULES  # likewise for generated conformers (so tokens)
    out["reader_rules"] = READER_RULES  # and for what the structure readers read from the same bytes
    for name in ("rdkit", "e3fp", "numpy", "torch", "pillow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def run_id(state: dict) -> str:
    return hashlib.sha256(dumps(identity_of(state)).encode()).hexdigest()[:12]


def check_state(state: dict) -> None:
    """What is read from an earlier run's manifest or run.json before anything else about
    it (`checksum_inputs`, `identity_of`, `differences`): a `Shape` when it is JSON of
    another layout (a KeyError or TypeError traceback, before the manifest's own check).
    A missing key is left to `differences`: that output is another run's."""
    for key in ("settings", "versions"):
        if key in state:
            need(state, key, dict)
    if "shards" in state and need(state, "shards", int) < 2:  # run.json: the N of --shard I/N (cli.start)
        raise Shape(f"'shards' is {state['shards']}")
    for entry in need(state, "inputs", list) if "inputs" in state else []:
        need(entry, "path", str), need(entry, "bytes", int), need(entry, "sha256", str)
        if entry.get("mtime_ns") is not None:
            need(entry, "mtime_ns", int)


def identity_of(state: dict) -> dict:
    """What must match for outputs to be reused: settings (less the locations,
    `compared_settings`), versions, input contents (names relative to --input, SHA-256)."""
    return {"schema": state.get("schema"), "settings": compared_settings(state.get("settings")),
            "versions": state.get("versions"), "inputs": [(e["path"], e["sha256"]) for e in state.get("inputs", [])]}


# Settings that cut the work into commits without changing the output (byte-identical for
# any --chunk-size): a finished output is compared without them (`output_identity`); an
# unfinished run keeps its committed chunks' size (`cli.start`), since chunks are numbered in it
COMMIT_SETTINGS = ("chunk_size",)


def output_identity(state: dict) -> dict:
    """`identity_of` as a finished output is reused: without COMMIT_SETTINGS (was: a rerun
    with another --chunk-size was "a different run", and --overwrite recomputed it all)."""
    identity = identity_of(state)
    if isinstance(identity["settings"], dict):
        identity["settings"] = {k: v for k, v in identity["settings"].items() if k not in COMMIT_SETTINGS}
    return identity


def compared_settings(settings):
    """The settings as they decide the output: without --input's absolute path (the files it
    names are compared by name and SHA-256 under ``inputs``), and with a reader option that
    only names a location (`sources.base.READER_LOCATIONS`: chebi20-mm's image_dir cache)
    reduced to whether it is given. Was: the path itself, so the same file staged to another
    folder ($TMPDIR per array task, a moved dataset) was "a different run", refused but for
    --overwrite, a full recompute."""
    if not isinstance(settings, dict):
        return settings
    compared = {k: v for k, v in settings.items() if k != "input"}
    options, locations = compared.get("reader_options"), READER_LOCATIONS.get(settings.get("format"), ())
    if isinstance(options, dict):
        compared["reader_options"] = {k: (v not in (None, "") if k in locations else v) for k, v in options.items()}
    return compared


def relocated(previous: dict, state: dict) -> List[str]:
    """The locations that differ between two runs of one identity (`compared_settings`
    leaves them out): "--input '/a/x.csv' -> '/b/x.csv'", "--option image_dir ...", for a note."""
    a, b = previous.get("settings") or {}, state.get("settings") or {}
    moved = [f"--input {a.get('input')!r} -> {b.get('input')!r}"] if a.get("input") != b.get("input") else []
    before, now = a.get("reader_options") or {}, b.get("reader_options") or {}
    for key in sorted(READER_LOCATIONS.get(b.get("format"), ())):
        if before.get(key) != now.get(key):
            moved.append(f"--option {key} {before.get(key)!r} -> {now.get(key)!r}")
    return moved


def narrow_inputs(previous: dict, state: dict) -> None:
    """An earlier output made when every visible file of a folder input identified it (before
    each reader named the files it reads): its entries for files that are still in the folder
    but that the reader does not read are dropped from `previous`, when every file read now
    is among its entries, unchanged. The upgrade alone made every such output "a different
    run" (README.md removed), to be made again with --overwrite. A file the reader reads that
    was deleted, or any changed one, still makes it another run."""
    folder = Path((state.get("settings") or {}).get("input", ""))
    now = {e["path"]: e["sha256"] for e in state.get("inputs", [])}
    before = {e["path"]: e["sha256"] for e in previous.get("inputs", [])}
    extra = set(before) - set(now)
    if (not extra or not folder.is_dir() or not set(now) <= set(before)
            or any(before[path] != sha for path, sha in now.items())
            or not all((folder / path).is_file() for path in extra)):
        return
    previous["inputs"] = [e for e in previous["inputs"] if e["path"] in now]


def differences(old: dict, new: dict) -> List[str]:
    a, b = identity_of(old), identity_of(new)
    out = [f"{k}: {a[k]} -> {b[k]}" for k in ("schema", "versions") if a[k] != b[k]]
    for k in sorted(set(a["settings"] or {}) | set(b["settings"] or {})):
        if (a["settings"] or {}).get(k) != (b["settings"] or {}).get(k):  # shown as given, compared as identity_of
            out.append(f"setting {k}: {(old.get('settings') or {}).get(k)!r} -> {(new.get('settings') or {}).get(k)!r}")
    if a["inputs"] != b["inputs"]:  # named: "input files changed" alone left the user to guess which
        before, now = dict(a["inputs"]), dict(b["inputs"])
        named = ([f"{n} added" for n in sorted(set(now) - set(before))] +
                 [f"{n} removed" for n in sorted(set(before) - set(now))] +
                 [f"{n} edited" for n in sorted(set(before) & set(now)) if before[n] != now[n]])
        out.append(f"input files changed (SHA-256): {', '.join(named[:10])}{' ...' if len(named) > 10 else ''}")
    return out
