"""The deepmolm-prepare command line: arguments, the checks a run makes before it starts
(foreign or stale --out, changed identity), and the order of compute, shard marker, merge
and assembly. The engine itself lives in the sibling modules."""

from __future__ import annotations

# `python -m deepmolm_plugin.data.prepare.cli` (this module, where `main` is) did nothing and
# exited 0, even for --help or a bad --format: it had no guard. Before the imports below, so
# a Ctrl-C while they load is one line too, as for the console script.
if __name__ == "__main__":
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.data.prepare.cli", "python -m deepmolm_plugin.data.prepare.cli")

import argparse
import json
import os
import re
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ...molecule import EMBED_TIMEOUT, MAX_ATOMS
from ... import usage
from ...molecule.inputs import MAX_RENDER_SIZE, MIN_RENDER_SIZE
from ...molecule.tools import add_fingerprint_options, embed_timeout_arg, fingerprint_settings, max_atoms_arg
from ...molecule.sidecar import SidecarError
from ..sources.base import READERS
from ...molecule.inputs import OutputWriteError
from .common import PrepareError, Shape, atomic_bytes, dumps, need, resume_hint, writing
from .identity import (changed_inputs, check_state, checksum_inputs, differences, identity_of, narrow_inputs,
                       output_identity, relocated, reusable_checksums, run_id, versions)
from .lock import OutputLock
from .output import MANIFEST, PROGRESS, SCHEMA, Output, assemble, read_object, summary
from .schedule import FORMAT_MODULES, check_reader_options, compute

# The first line of the package docstring (deepmolm_plugin.data.prepare), as --help shows it.
DESCRIPTION = "deepmolm-prepare: a public dataset -> host training records, ready for the launcher."


class Once(argparse.Action):
    """A reader option flag, given once: given twice, argparse kept the last value without a
    word (`--label-columns y --label-columns z` prepared z only)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} is given twice: give it once (several columns: one list, COL1 COL2 "
                         "or COL1,COL2)")
        setattr(namespace, self.dest, values)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    formats = sorted(set(FORMAT_MODULES) | set(READERS))
    p = argparse.ArgumentParser(prog="deepmolm-prepare", description=DESCRIPTION,
                                formatter_class=usage.HelpFormatter)
    p.add_argument("--format", required=True, choices=formats)
    p.add_argument("--input", required=True, type=usage.user_path, help="input file or folder (as the format's reader expects)")
    p.add_argument("--out", required=True, type=usage.user_path, help="output folder (created; resumable)")
    p.add_argument("--workers", type=int, default=1, help="processes computing molecules (default 1)")
    p.add_argument("--shard", default="0/1", help="I/N: compute only chunks c with c %% N == I (array jobs)")
    p.add_argument("--merge", action="store_true",
                   help="only assemble the chunks committed by --shard runs (does not read the input)")
    p.add_argument("--chunk-size", type=int, default=256, help="items per resumable commit (default 256)")
    p.add_argument("--limit", type=int, default=None, help="only the first N items of the input")
    p.add_argument("--conformer-policy", default="auto", choices=("auto", "generate", "from-file"))
    p.add_argument("--max-atoms", type=max_atoms_arg, default=MAX_ATOMS, metavar="N",
                   help=f"heavy atoms per molecule; a larger one is a failure (default {MAX_ATOMS}; 'none': no cap)")
    p.add_argument("--embed-timeout", type=embed_timeout_arg, default=EMBED_TIMEOUT, metavar="SECONDS",
                   help=f"time limit for one conformer embedding (default {EMBED_TIMEOUT}; 'none': no limit)")
    p.add_argument("--image-size", type=int, default=1024, help="depiction size in pixels (DeepMoLM: 1024)")
    add_fingerprint_options(p)  # a model with other --fp_bits / --fp_levels refuses DeepMoLM's tokens
    p.add_argument("--overwrite", action="store_true", help="discard earlier outputs made with other settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("reader options (passed to the format's reader)")
    g.add_argument("--smiles-column", action=Once)
    g.add_argument("--label-columns", nargs="+", action=Once,
                   help="numeric columns/fields: COL or COL=NAME (comma lists too)")
    g.add_argument("--binary-labels", nargs="+", action=Once,
                   help="label NAMEs (of --label-columns) that are yes/no, 0 or 1: evaluation scores them as "
                        "classifications (accuracy, F1, AUROC) instead of by MAE")
    g.add_argument("--text-columns", nargs="+", action=Once,
                   help="text columns/fields: COL=TASK, a text task (description...); numbers: --label-columns")
    g.add_argument("--id-column", action=Once)
    g.add_argument("--split-column", action=Once)
    g.add_argument("--id-field", action=Once)
    g.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a format-specific reader option (repeatable); VALUE is parsed as JSON when it can be")
    args = p.parse_args(argv)
    match = re.fullmatch(r"(\d+)/(\d+)", args.shard)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        p.error(f"--shard must be I/N with 0 <= I < N, got {args.shard!r}")
    args.shard = (int(match.group(1)), int(match.group(2)))
    for option, value, low in (("--workers", args.workers, 1), ("--chunk-size", args.chunk_size, 1),
                               ("--image-size", args.image_size, MIN_RENDER_SIZE)):
        if value < low:
            p.error(f"{option} must be >= {low}, got {value}")
    if args.image_size > MAX_RENDER_SIZE:  # every record was computed, then failed drawing ("PNG header not recognized")
        p.error(f"--image-size must be <= {MAX_RENDER_SIZE} pixels, got {args.image_size}")
    try:  # a path under a file, or a read-only folder: a traceback when the lock was taken
        usage.output_folder(args.out, "--out")
    except usage.UsageError as e:
        if not read_only_output(Path(args.out)):  # that one is checked, not written (main)
            p.error(str(e))
    try:
        fingerprint_settings(args)
    except usage.UsageError as e:
        p.error(str(e))
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit must be >= 1 (the first N items), got {args.limit}")
    for option, value in (("--chunk-size", args.chunk_size), ("--limit", args.limit), ("--shard", args.shard[1])):
        if value is not None and value > sys.maxsize:  # islice's ValueError traceback ("Stop argument")
            p.error(f"{option} must be <= {sys.maxsize}, got {value}")
    if args.merge and args.shard != (0, 1):
        p.error("--merge assembles all shards: give it no --shard")
    return args


def reader_options(args) -> dict:
    options = {}
    for name in ("smiles_column", "id_column", "split_column", "id_field"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    for name in ("label_columns", "binary_labels", "text_columns"):
        if getattr(args, name):
            options[name] = [c.strip() for v in getattr(args, name) for c in v.split(",") if c.strip()]
    given = {}  # --option key -> its KEY=VALUE
    for pair in args.option:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PrepareError(f"--option {pair!r}: expected KEY=VALUE")
        # One value per option: the later one replaced the earlier, or a column flag, without a word
        # (--label-columns logS with --option label_columns=[...] prepared the --option columns only).
        if key in given:
            raise PrepareError(f"--option {key} is given twice ({given[key]!r}, {pair!r}): give it once")
        if key in options:
            raise PrepareError(f"reader option {key} is given both as --{key.replace('_', '-')} and as --option "
                               f"{pair!r}: give it once")
        given[key] = pair
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return dict(sorted(options.items()))


def settings_of(args) -> dict:
    """Everything that changes the output (so not --out, --workers, --shard), and --input's
    path, which is recorded but not compared (`identity.compared_settings`)."""
    return {"format": args.format, "input": str(usage.real_path(args.input)), "reader_options": reader_options(args),
            "conformer_policy": args.conformer_policy, "image_size": args.image_size, "chunk_size": args.chunk_size,
            "limit": args.limit, "fp_bits": args.fp_bits, "fp_levels": args.fp_levels, "max_atoms": args.max_atoms,
            "embed_timeout": args.embed_timeout}


def run_state(args, out: Output, previous: Optional[dict]) -> dict:
    """What this run would make: settings, versions and input checksums (`previous`: an
    earlier run's manifest or run.json, whose checksums are reused for files whose size and
    mtime are unchanged at the same path, `reusable_checksums`)."""
    settings = settings_of(args)
    return {"schema": SCHEMA, "settings": settings, "versions": versions(),
            "inputs": checksum_inputs(settings, usage.real_path(out.root), reusable_checksums(previous, settings))}


def note_relocated(previous: dict, state: dict) -> None:
    """Say that this run goes on with the work of one that read the same files elsewhere
    (a staged copy per array task, a moved dataset): the files are compared by content."""
    moved = relocated(previous, state)
    if moved:
        print(f"deepmolm-prepare: note: {'; '.join(moved)}: the same input files (names and SHA-256) and settings, "
              "so the work done there is used", file=sys.stderr)


def check_input(value: str) -> None:
    """--input must be a file or a folder. A name too long was an OSError traceback; a pipe
    (`<(...)`) was "does not exist", naming the /proc/.../fd/pipe:[...] .resolve() made of it
    (the readers would block or read it only once)."""
    try:
        found = usage.path_stat(value, "--input")
    except usage.UsageError as e:
        raise PrepareError(str(e)) from None
    if found is None:
        # abspath: Path.resolve raised RuntimeError for a loop of links, which stats as nothing there
        raise PrepareError(f"--input {os.path.abspath(value)} does not exist")
    if not (stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode)):
        raise PrepareError(f"--input {value}: {usage.NOT_A_REGULAR_FILE}")


def read_only_output(root: Path) -> bool:
    """A finished output this user cannot write (a shared dataset on a read-only mount)."""
    try:
        return (root / MANIFEST).is_file() and not os.access(root, os.W_OK | os.X_OK)
    except OSError:  # a name too long, no permission: not one (--out's check says why)
        return False


def confirm_read_only(args, out: Output) -> dict:
    """The manifest of a read-only finished output, when this command would make exactly
    it and its files are intact: the rerun a pipeline does before training is then
    "already complete", as on a writable copy (it failed taking the lock). Anything else
    cannot be redone there: an error saying why."""
    manifest = out.read_json(MANIFEST, "it cannot be redone on a read-only --out", check_state)
    state = run_state(args, out, manifest)
    narrow_inputs(manifest, state)
    if output_identity(manifest) != output_identity(state):
        raise PrepareError(f"--out {out.root} is read-only and holds output of a different run "
                           f"({'; '.join(differences(manifest, state))}): use another --out")
    note_relocated(manifest, state)
    problems = out.verify(manifest)
    if problems:
        listed = "; ".join(f"{name}: {problem}" for name, problem in sorted(problems.items()))
        raise PrepareError(f"--out {out.root} is read-only and does not match its manifest ({listed}): it cannot "
                           "be redone there; use another --out")
    return manifest


def start(args, out: Output) -> Tuple[dict, Optional[dict]]:
    """This run's state (settings, versions, inputs) and the finished manifest if the
    output is already complete with the same identity. Refuses foreign or stale folders."""
    root = out.root  # a folder: the lock (OutputLock.acquire) made it, or refused a file there
    if root.is_dir() and not out.is_empty() and not out.is_ours():
        if not out.lost_its_manifest():
            raise PrepareError(f"--out {root} is not empty and holds no deepmolm-prepare output: use an empty folder")
        if not args.overwrite:  # it may be a folder put together by hand: nothing goes unasked
            raise PrepareError(f"--out {root} holds records and sidecars but no {MANIFEST} (deleted?): nothing vouches "
                               "for them; --overwrite redoes the run there (deleting this tool's files), or use "
                               "another --out")
        out.remove_outputs()
    # A damaged run.json: --overwrite, as it said, read it again and failed the same way.
    manifest = read_manifest(out)
    run = out.read_json(f"{PROGRESS}/run.json", "delete it and rerun (the committed chunks are kept)", check_state)
    state = run_state(args, out, manifest or run)
    previous = manifest or run
    if (manifest is None and run is not None and not out.committed(any_run=True)
            and args.shard == (0, 1) and not args.merge):
        # an earlier start that committed nothing: nothing to protect, and nothing of it may
        # stay (its pictures, of other settings, were left among this run's, in no record).
        # Only by a run alone on the folder: a shard's siblings start together and may be
        # computing now, under that run.json, before any chunk is committed; a shard with
        # other settings took it over then, and the siblings were the ones refused.
        out.remove_outputs()
        previous = run = None
    if manifest is not None:  # a finished output only: an unfinished run's chunks are named by its id
        narrow_inputs(manifest, state)
    if manifest is None and run is not None and output_identity(run) == output_identity(state):
        keep_committed_chunk_size(args, out, run, state)
    # a finished output whatever --chunk-size made it (it is the same); a run's chunks in their own size
    same = output_identity if manifest is not None else identity_of
    if previous is not None and same(previous) != same(state):
        if not args.overwrite:
            changes = "; ".join(differences(previous, state))
            if args.shard != (0, 1) and manifest is None and not out.committed(any_run=True):
                # --overwrite in every task of an array: each removed what the others were writing
                raise PrepareError(f"--out {root} holds the start of a different run ({changes}), with no chunk "
                                   f"committed: if its shards were started with these settings by mistake, this "
                                   f"one is refused; if that run is abandoned, delete {out.progress / 'run.json'} "
                                   "(or run once without --shard with --overwrite), then start the shards again")
            raise PrepareError(f"--out {root} holds output of a different run ({changes}); "
                               "use --overwrite to discard it, or another --out")
        out.remove_outputs()
        manifest = run = None
    if manifest is not None or run is not None:  # the same identity, perhaps read elsewhere
        note_relocated(manifest or run, state)
    if manifest is not None and redo(out, manifest):
        manifest = None
    if manifest is not None and run is None:
        return state, manifest
    if manifest is not None:  # killed after the manifest, before .progress was removed
        shutil.rmtree(out.progress)
        return state, manifest
    sharded = args.shard[1] > 1 and not args.merge
    if sharded:
        check_shard_count(out, run if run is not None and identity_of(run) == identity_of(state) else None,
                          run_id(state), args.shard)
    with writing(out.progress):
        out.progress.mkdir(parents=True, exist_ok=True)
    out.clean_tmp()
    if run is None or identity_of(run) != identity_of(state):
        # The N of --shard I/N is kept beside the settings (not among them: a run without
        # --shard, or the --merge, goes on with the same chunks), for the next shard to compare.
        run = dict(state, **({SHARDS: args.shard[1]} if sharded else {}))
        atomic_bytes(out.progress / "run.json", dumps(run).encode(), out.tmp)
    elif sharded and SHARDS not in run:  # a run without --shard started it
        atomic_bytes(out.progress / "run.json", dumps(dict(run, **{SHARDS: args.shard[1]})).encode(), out.tmp)
    return state, None


def keep_committed_chunk_size(args, out: Output, run: dict, state: dict) -> None:
    """An unfinished run goes on in its own --chunk-size: its chunks are numbered in it, so
    chunks of two sizes cannot be combined, and the output is the same for any size. A note
    says so (was: "a different run (setting chunk_size: 256 -> 2)", and --overwrite, which
    threw away every computed conformer, was the only remedy offered)."""
    size = (run.get("settings") or {}).get("chunk_size")
    if size == args.chunk_size or type(size) is not int or size < 1:  # another value: a different run, said so
        return
    print(f"deepmolm-prepare: note: --chunk-size {args.chunk_size} not used: the unfinished run in {out.root} commits "
          f"chunks of {size} items, and goes on with them (the output is the same for any chunk size; to change it, "
          "let this run finish, or start again with --overwrite)", file=sys.stderr)
    args.chunk_size = state["settings"]["chunk_size"] = size


SHARDS = "shards"  # run.json: the N of the --shard I/N runs of this run (the settings' neighbour)


def shard_markers(out: Output, run: str) -> dict:
    """N -> the names of this run's shard markers written with that N (`main` writes them
    at the end of a --shard run; `run` is the run's id: another run's are not its shards)."""
    found: dict = {}
    for path in sorted(out.progress.glob("shard-*-of-*.json")) if out.progress.is_dir() else []:
        marker = read_object(path, "delete it and rerun that shard", check_marker)
        if marker["run"] == run:
            found.setdefault(marker["shard"][1], []).append(path.name)
    return found


def check_shard_count(out: Output, run: Optional[dict], this_run: str, shard: Tuple[int, int]) -> None:
    """Refuse a --shard I/N whose N is not the N of the shards already run into this --out for
    the same run (`.progress/run.json`'s "shards", and the markers of finished shards),
    before anything is computed. Tasks with two N compute overlapping sets of chunks and
    leave others to none: --merge then found chunks missing and named the shards of
    whichever N sorted first."""
    n = shard[1]
    others = {}
    if run is not None and isinstance(run.get(SHARDS), int) and run[SHARDS] != n:
        others[run[SHARDS]] = [f"{PROGRESS}/run.json"]
    for m, names in shard_markers(out, this_run).items():
        if m != n:
            others.setdefault(m, []).extend(names)
    if others:
        m = run[SHARDS] if run is not None and run.get(SHARDS) in others else min(others)
        named = "; ".join(f"N={k}: {', '.join(v)}" for k, v in sorted(others.items()))
        # no shard of the other N finished (an array cancelled and resubmitted with another N):
        # forgetting the recorded N lets the new array go on (committed chunks are kept)
        restart = (f", or delete {PROGRESS}/run.json to start the array again with N={n}"
                   if all(v == [f"{PROGRESS}/run.json"] for v in others.values()) else "")
        raise PrepareError(f"--out {out.root} holds shards of this run started with another N (setting shards: "
                           f"{m} -> {n}; {named}): every task of an array needs the same N; give this one "
                           f"--shard {shard[0] if shard[0] < m else 'I'}/{m}{restart}, or run once without --shard "
                           "to compute the remaining chunks here (committed chunks are kept)")


def read_manifest(out: Output) -> Optional[dict]:
    """The finished output's manifest. A damaged one (truncated, not JSON) vouches for
    nothing, like a manifest whose files do not match (`redo`): said, removed, and the run
    is made again with this command's settings."""
    try:
        return out.read_json(MANIFEST, "redoing the run", check_state)
    except PrepareError as e:
        print(f"deepmolm-prepare: {e}", file=sys.stderr)
        with writing(out.root / MANIFEST, "remove"):
            (out.root / MANIFEST).unlink()
        return None


def redo(out: Output, manifest: dict) -> bool:
    """Whether a finished output must be made again: its files no longer match the
    manifest's checksums (edited, truncated, deleted). Reported, then the manifest and the
    damaged files go and the run computes again (intact images are kept)."""
    problems = out.verify(manifest)
    if problems:
        listed = "; ".join(f"{name}: {problem}" for name, problem in sorted(problems.items()))
        print(f"deepmolm-prepare: {out.root} does not match its manifest ({listed}): redoing the run",
              file=sys.stderr)
        out.discard(problems)
    return bool(problems)


def say(text: str) -> None:
    """Print a line of the run's report on stdout. A reader that went away (`| head -1`)
    ends the report, not the run: the output folder is what the run makes, and it is
    complete; the rest of the report goes nowhere and the exit status stays the run's (it
    was a BrokenPipeError traceback and exit 1 after the run had finished)."""
    try:
        print(text, flush=True)  # flushed here, where the closed pipe is caught, not at exit
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # else Python's final flush fails again


@usage.interrupted_by_sigterm  # SIGTERM (a scheduler, `kill`) takes the Ctrl-C path; workers keep the default
def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    tag = f"s{args.shard[0]}of{args.shard[1]}"
    out = Output(Path(args.out), tag)
    lock = OutputLock(out.root, args.shard)
    began = time.perf_counter()
    made_out = not out.root.exists()  # a refused run removes the --out it created (nothing committed)
    failed = locked = False
    try:
        check_reader_options(args.format, reader_options(args))
        check_input(args.input)  # before --out is created
        if read_only_output(out.root) and not args.merge and args.shard == (0, 1):
            finished = confirm_read_only(args, out)
            say(summary(finished))
            say(f"already complete (read-only): processed 0 items ({out.root / MANIFEST})")
            return 0 if finished["counts"]["records"] else 1
        try:
            lock.acquire()
        except OSError as e:  # /proc/x, a folder this user cannot write
            raise PrepareError(f"--out {out.root}: cannot create or lock it ({e.strerror or e})") from e
        locked = True
        state, finished = start(args, out)
        out.run_id = run_id(state)
        if finished is not None:
            say(summary(finished))
            say(f"already complete: processed 0 items ({out.root / MANIFEST})")
            return 0 if finished["counts"]["records"] else 1
        shards = None  # --merge: the number of shard jobs that computed the chunks
        if args.merge:
            (n_chunks, shards), computed = merge_chunks(out), (0, 0)
        else:
            n_chunks, *computed = compute(args, out, state, args.shard)
            if args.shard != (0, 1):
                marker = {"run": out.run_id, "shard": list(args.shard), "chunks": n_chunks,
                          "computed_chunks": computed[0]}
                atomic_bytes(out.progress / f"shard-{args.shard[0]}-of-{args.shard[1]}.json",
                             dumps(marker).encode(), out.tmp)
                # was "in 2 chunks of 4": read as chunks of 4 items, when 4 was the run's chunk count
                say(f"shard {args.shard[0]}/{args.shard[1]}: computed {computed[1]} items in {computed[0]} of the "
                    f"run's {n_chunks} chunks ({time.perf_counter() - began:.1f} s); when every shard is done, "
                    "run the same command with --merge instead of --shard")
                return 0
        changed = changed_inputs(state["settings"], usage.real_path(out.root), state["inputs"])
        if changed:
            raise PrepareError(f"--input changed while this run read it ({', '.join(changed[:5])}): its records may "
                               "mix the old and the new contents; rerun the same command with --overwrite")
        manifest = assemble(out, n_chunks, state, shards)
    except (PrepareError, SidecarError) as e:
        print(f"deepmolm-prepare: error: {e}", file=sys.stderr)
        failed = True
        return 2
    except OutputWriteError as e:  # --out itself (a full disk), in this process or a worker: the run's error
        print(f"deepmolm-prepare: error: {e}; {resume_hint(e)}", file=sys.stderr)
        failed = True
        return 1
    except KeyboardInterrupt:  # Ctrl-C: a traceback before, and one per worker
        print("\ndeepmolm-prepare: interrupted; the chunks committed so far are kept: rerun the same command "
              "to resume", file=sys.stderr)
        failed = True
        return 130
    finally:
        # Only what this refused run created, while it still holds the lock alone: a run
        # refused by another's lock removed the folder that other run was writing (shard
        # jobs share the lock: another shard may be writing there too). Never a finished
        # output: a Ctrl-C while assembly removed the chunks after writing the manifest
        # found no chunk and deleted the whole output.
        alone = locked and args.shard == (0, 1)
        complete = (out.root / MANIFEST).is_file()
        if failed and made_out and alone and out.root.is_dir() and not out.committed(any_run=True) and not complete:
            shutil.rmtree(out.root)
        lock.release()
    seconds = time.perf_counter() - began
    say(summary(manifest))
    rate = computed[1] / seconds if seconds > 0 else 0.0
    say(f"processed {computed[1]} items in {computed[0]} chunks now ({n_chunks - computed[0]} chunks were already "
          f"done) in {seconds:.1f} s, {rate:.1f} items/s -> {out.root}")
    if not manifest["counts"]["records"]:
        reason = ("every item failed: see failures.jsonl" if manifest["counts"].get("items")
                  else "the input gave no items (a CSV with a header and no rows, an empty SDF?)")
        print(f"deepmolm-prepare: error: no records: {reason}", file=sys.stderr)
        return 1
    return 0


def merge_chunks(out: Output) -> Tuple[int, int]:
    """(chunks, shards) for --merge, from the shards' markers; every chunk must be there."""
    markers = [read_object(p, "delete it and rerun that shard", check_marker)
               for p in sorted(out.progress.glob("shard-*-of-*.json"))]
    markers = [m for m in markers if m["run"] == out.run_id]
    if not markers:
        raise PrepareError(f"--merge: no finished shard in {out.progress}; run the --shard I/N jobs first")
    counts = {m["chunks"] for m in markers}
    if len(counts) != 1:
        raise PrepareError(f"--merge: shards saw different inputs ({sorted(counts)} chunks)")
    n_chunks = counts.pop()
    missing = sorted(set(range(n_chunks)) - out.committed())
    by_n = shard_markers(out, out.run_id)
    if len(by_n) > 1:  # was: the N of the first marker, as if it were the only one
        named = "; ".join(f"N={k}: {', '.join(v)}" for k, v in sorted(by_n.items()))
        unfinished = (f"{len(missing)} chunks are not committed (chunk {', '.join(map(str, missing[:10]))}"
                      f"{' ...' if len(missing) > 10 else ''}); " if missing else "")
        raise PrepareError(f"--merge: the shards in {out.progress} were run with different N ({named}): "
                           f"{unfinished}run without --shard/--merge to compute what is missing here and assemble "
                           "(committed chunks are kept), or delete the markers of the wrong N, rerun its shards "
                           "with the right one, then --merge")
    n = markers[0]["shard"][1]
    if missing:
        shards = sorted({c % n for c in missing})
        raise PrepareError(f"--merge: {len(missing)} chunks are not committed (shards {shards} of {n} are "
                           "unfinished); rerun those shards, or run without --shard/--merge to compute them here")
    return n_chunks, n


def check_marker(marker: dict) -> None:
    """What --merge reads from a shard marker (`main` writes it)."""
    need(marker, "run", str)
    if need(marker, "chunks", int) < 0:
        raise Shape(f"'chunks' is {marker['chunks']}")
    shard = need(marker, "shard", list)
    if len(shard) != 2 or not all(type(v) is int for v in shard) or not 0 <= shard[0] < shard[1]:
        raise Shape(f"'shard' is {shard!r}, not [I, N] with 0 <= I < N")
