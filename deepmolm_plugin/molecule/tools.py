"""Command-line tools: ``deepmolm-fingerprint`` and ``deepmolm-render``.

Inputs are structure files (format from the suffix, see ``io/__init__.py``); with
``--smiles`` every input is a SMILES string instead. There is no guessing: without
``--smiles`` an input that is not an existing file is a failed record.

Both tools report every failed record (one ``FAILED`` line on stderr, a ``--failures``
JSONL line if asked, and for ``deepmolm-fingerprint`` an output line with ``error`` set
and ``molecule_fp`` null), keep going, and exit 1 if any record failed (0 otherwise,
2 for usage errors: one line, before any record is read, e.g. an ``--out`` or
``--failures`` file in a folder that does not exist, an ``--out`` folder that is a file,
``--size`` below 16 or above 8192, one input file given under two spellings or links,
an input or output at another output's lock file ``<file>.lock`` / ``<folder>/.lock``). An
output that cannot be written any more (stdout closed by ``| head``, ``--out`` on a full
disk) stops with one line and exit 1. A tqdm progress bar goes to stderr.

Work per record is bounded, so one huge molecule cannot stall a batch: ``--max-atoms``
(default 256 heavy atoms, ``none`` lifts it) fails a larger record before any conformer
work, and ``deepmolm-fingerprint --embed-timeout`` (default 60 s, ``none`` lifts it) stops a
conformer embedding that runs too long; both failures name the limit.

``deepmolm-fingerprint`` writes one JSON line per record:
``{id, molecule_fp, num_atoms, source, conformer, notes, error}``; ``molecule_fp`` is the
``[num_atoms, 4]`` token list (-1 = no shell) and ``num_atoms`` its row count.
``deepmolm-render --out DIR`` writes ``DIR/<id>.png`` (1024 px by default; unsafe
characters in ids become ``_``, ids repeated (ignoring case) get ``__2``, ``__3``...) and
``DIR/index.jsonl`` with ``{id, image, source, error}`` per record.

Ids are the key of both outputs. An untitled record's id is ``<file name>#<index>``, or
``<path as given>#<index>`` where two inputs share a file name (was: ``siteA/pose.sdf`` and
``siteB/pose.sdf`` both gave ``pose.sdf#0``). A record of a file whose id an earlier record
has (as Unicode NFC text, deepmolm-prepare's ``duplicate-id`` rule) is a failed record of
``deepmolm-fingerprint`` naming the earlier one's source (was: both lines written under one
id, exit 0). ``deepmolm-render`` still draws it, as ``<id>__2.png`` (its index line and
source tell the pictures apart, and a picture is never one of the other record's), and says
so in a note naming the repeated ids. (With ``--smiles`` the id is the SMILES, so one id is
one molecule: a repeat is neither.) A record whose title or name column deepmolm-prepare
would refuse as an id (white space around it, a tab or other control character, an
invisible format character such as U+200B) fails with that reason in both tools (was:
written and drawn under an id no prepared record can have). ``deepmolm-render`` fails a
record with a hydrogen bonded to no heavy atom (a salt's H+), as fingerprinting does (was:
drawn; ``--fragments largest`` drops it).

Also runnable as ``python -m deepmolm_plugin.molecule.tools {fingerprint,render} ...``.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.molecule.tools", "python -m deepmolm_plugin.molecule.tools")

import argparse
import contextlib
import json
import math
import os
import re
import stat
import sys
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from .. import output_lock, usage
from ..molecule_fp import DEEPMOLM, FingerprintSettings
from .conformer import EMBED_TIMEOUT
from .errors import MoleculeError, MoleculeTooLarge
from .fingerprint import check_lone_hydrogens, fingerprint_record
from .render import render_molecule
from .builders import molecule_from_smiles
from .io import read_structures, unknown_format
from .inputs import MAX_RENDER_SIZE, MIN_RENDER_SIZE
from .io.base import id_key, id_problem
from .policy import MAX_ATOMS, POLICIES
from .record import MoleculeRecord

__all__ = ["fingerprint_main", "render_main", "main", "max_atoms_arg", "embed_timeout_arg"]


def add_fingerprint_options(parser) -> None:
    """--fp-bits / --fp-levels: the fingerprint settings of the model the output is for
    (deepmolm-fingerprint, deepmolm-prepare; training refuses tokens made with others)."""
    parser.add_argument("--fp-bits", type=int, default=DEEPMOLM.bits,
                        help=f"hash bits, the model's fp_bits (default {DEEPMOLM.bits}, DeepMoLM's)")
    parser.add_argument("--fp-levels", type=int, default=DEEPMOLM.levels,
                        help=f"E3FP levels, the model's fp_levels (default {DEEPMOLM.levels})")


def fingerprint_settings(args) -> FingerprintSettings:
    """The settings of `add_fingerprint_options`, checked: a UsageError naming them."""
    try:
        return FingerprintSettings(args.fp_bits, args.fp_levels)
    except ValueError as e:  # the settings' bounds, naming the setting
        raise usage.UsageError(f"--fp-bits / --fp-levels: {e}") from e


def max_atoms_arg(text: str) -> int | None:
    """``--max-atoms``: a positive integer, or ``none`` for no cap."""
    text = text.strip()
    if text.lower() == "none":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'none', got {text!r}")
    return int(text)


def embed_timeout_arg(text: str) -> float | None:
    """``--embed-timeout``: seconds (> 0), or ``none`` for no time limit."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 2**31:  # also rejects nan and inf
        # the upper bound is RDKit's (unsigned 32-bit seconds): `1e300` was told "> 0"
        raise argparse.ArgumentTypeError(f"expected seconds > 0 and < 2**31 (68 years), or 'none', got {text!r}")
    return int(value) if value.is_integer() else value  # '60' equals the default 60 in settings


def _user_path(value: str) -> Path:
    """A path option's value with `~` expanded: the shell leaves `--out=~/x` as typed, and it
    was written to a folder named `~` in the current one."""
    return Path(usage.user_path(value))


def _expand_inputs(args) -> None:
    """INPUT files with `~` expanded, after parsing: with --smiles they are SMILES, kept as typed."""
    if not args.smiles:
        args.inputs = [usage.user_path(value) for value in args.inputs]


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="structure files (.sdf .mol .mol2 .xyz .pdb .smi .txt .csv), or SMILES with --smiles",
    )
    parser.add_argument("--smiles", action="store_true", help="treat every INPUT as a SMILES string")
    parser.add_argument(
        "--max-atoms", type=max_atoms_arg, default=MAX_ATOMS, metavar="N",
        help=f"cap on heavy atoms per molecule (default {MAX_ATOMS}; 'none' lifts it)",
    )
    parser.add_argument(
        "--fragments", choices=("all", "largest"), default="all",
        help="keep all fragments (default) or only the largest",
    )
    parser.add_argument(
        "--failures", type=_user_path, help="also write failed records as JSON lines {id, source, error} here"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _records(args, **options) -> Iterator[MoleculeRecord | MoleculeError]:
    """Every record of every input, failures included, in input order; a size refusal names
    this tool's --max-atoms (was: "raise it with max_atoms / --max-atoms")."""
    for item in _each_record(args, **options):
        if isinstance(item, MoleculeRecord) and not args.smiles:
            # a title or name column that deepmolm-prepare refuses as an id ("a\tb", one of
            # U+200B alone) was written and drawn, under an id no prepared record can have
            # (with --smiles the id is the SMILES, which parsed)
            problem = id_problem(item.id)
            if problem is not None:
                item = MoleculeError(item.id, problem, source=item.source)
        yield item.reworded("--max-atoms") if isinstance(item, MoleculeTooLarge) else item


def _fallback_names(inputs: list[str]) -> dict[str, str]:
    """What each input file's untitled records are numbered under (``read_structures``'
    ``name``): its file name, or the path as given where two inputs share a file name
    (was: the file name always, so ``siteA/pose.sdf`` and ``siteB/pose.sdf`` both gave
    ``pose.sdf#0``). The same path given twice still gives one id twice: a duplicate."""
    counts = Counter(Path(item).name for item in inputs)
    return {item: item if counts[Path(item).name] > 1 else Path(item).name for item in inputs}


def _each_record(args, **options) -> Iterator[MoleculeRecord | MoleculeError]:
    names = {} if args.smiles else _fallback_names(args.inputs)
    for n, item in enumerate(args.inputs):
        if args.smiles:
            try:
                yield molecule_from_smiles(item, item, source=f"argv#{n}", **options)
            except MoleculeError as error:
                error.source = f"argv#{n}"
                yield error
            continue
        path = Path(item)
        if path.is_dir():
            yield MoleculeError(item, "is a folder, not a structure file", source=item)
            continue
        if not path.is_file():
            # a pipe or device (`<(...)`, /dev/stdin) exists: "no such file" sent users looking for it
            reason = ("is not a regular file (a pipe or a device): save it to a file first" if path.exists()
                      else usage.broken_link(path) or "no such file (use --smiles to pass SMILES strings)")
            yield MoleculeError(item, reason, source=item)
            continue
        problem = unknown_format(path)
        if problem:
            yield MoleculeError(item, problem, source=item)
            continue
        # outputs are keyed by the name
        yield from read_structures(path, names_are_keys=True, name=names[item], **options)


def _file_key(path: Path) -> tuple | None:
    """One key per file, however it is named: device and inode of an existing file (links,
    `./`), else the absolute resolved path; None for a device or pipe (/dev/null may be
    every output)."""
    try:
        st = os.stat(path)
    except OSError:
        return (str(usage.real_path(path)),)  # (Path.resolve raised RuntimeError on a loop of links)
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def _check_inputs(args) -> dict:
    """The input files, ``{file key: INPUT as given}`` (`_file_key`; what `_check_outputs`
    compares the outputs with). No input file is given twice under two spellings (``x.smi
    ./x.smi``, a link): it was read twice, under two sets of ids, exit 0. Compared by device
    and inode, as deepmolm-prepare removes such duplicates by real path; one line naming both
    spellings, before any record. (One path typed twice gives one id twice, so its records
    already fail as ``duplicate-id`` (render: ``__2`` and a note), as documented: that stays.)"""
    seen: dict = {}
    if args.smiles:
        return seen
    for item in args.inputs:
        usage.name_length(item, "INPUT")  # (is_file raised ENAMETOOLONG as a traceback)
        key = _file_key(Path(item)) if Path(item).is_file() else None
        if key is None:
            continue
        if key in seen and seen[key] != item:
            raise usage.UsageError(f"INPUT {item} is the same file as INPUT {seen[key]}: give each input file once")
        seen[key] = item
    return seen


# what an existing file at a lock path may hold: a pid written by a holder (a killed one
# leaves it), or nothing; anything else is a user's file the lock would empty and delete
_LOCK_TEXT = re.compile(rb"\d*\n?")


def _foreign_file(path: Path) -> bool:
    """Whether `path` is a regular file that is no lock file of ours (see _LOCK_TEXT)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return False
        if st.st_size > 32:  # no pid is that long
            return True
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return _LOCK_TEXT.fullmatch(head) is None


def _check_outputs(args, inputs: dict, outputs: dict, locks: dict | None = None) -> None:
    """Each output file (``{option: path}``) is none of the inputs (``inputs``: `_check_inputs`'s
    ``{file key: INPUT}``) and no other output: they
    are opened for writing before the first record is read. was: ``--out`` or ``--failures``
    naming an input emptied it (every record lost, one "CSV has no 'smiles' column" failure),
    and ``--failures`` equal to ``--out`` wrote both into one file, cut into each other.

    The lock files (``locks``: ``{option: lock path}``, `_lock_paths`) count as outputs too: a
    lock file is emptied when taken and deleted when released, so ``--failures fp.jsonl.lock``
    beside ``--out fp.jsonl`` (or an input, or a user's file there) was deleted, exit 1."""
    lock_of: dict = {}  # lock file key -> the option whose lock it is
    for option, lock in (locks or {}).items():
        key = _file_key(lock)
        if key is None:
            continue
        if key in inputs:
            raise usage.UsageError(f"INPUT {inputs[key]} is the lock file of {option} {_value(args, option)}: "
                                   "it would be deleted; give that output another name")
        lock_of[key] = option
    seen: dict = {}
    for option, path in outputs.items():
        if path is None:  # not given, or stdout
            continue
        key = _file_key(path)
        if key is None:
            continue
        if key in inputs:
            raise usage.UsageError(f"{option} {path} is the input file {inputs[key]}: it would be emptied "
                                   "before it is read")
        if key in seen:
            raise usage.UsageError(f"{option} {path} is also {seen[key]}: give each output its own file")
        if key in lock_of:
            other = lock_of[key]
            raise usage.UsageError(f"{option} {path} is the lock file of {other} {_value(args, other)}: it would "
                                   "be deleted; give it another name")
        seen[key] = option
    for option, lock in (locks or {}).items():  # a user's file where no option names it
        if _foreign_file(lock):
            raise usage.UsageError(f"{option} {_value(args, option)}: its lock file {lock} exists and is not one (it "
                                   "would be emptied and deleted); move it, or give that output another name")


def _value(args, option: str):
    """The value of `option` (``--out``) in `args`."""
    return getattr(args, option.lstrip("-"))


def _lock_paths(prog: str, kinds: dict, args) -> dict:
    """``{option: lock file path}`` of the locks `_hold_outputs` takes (not yet taken)."""
    return {option: lock.path for option, lock in _locks(prog, kinds, args)}


def _locks(prog: str, kinds: dict, args) -> list:
    """``(option, lock)`` of each output `_hold_outputs` locks (see there), none taken yet."""
    found = []
    for option, lock_of in kinds.items():
        path = getattr(args, option.lstrip("-"))
        if lock_of is None or path is None or (lock_of is output_lock.file_lock and _file_key(Path(path)) is None):
            continue
        found.append((option, lock_of(path, prog)))
    return found


def _hold_outputs(prog: str, kinds: dict, args) -> list:
    """The locks of the outputs (``{option: output_lock.file_lock / folder_lock / None}``, the
    path in ``args``), taken before any of them is emptied: a second run into the same
    --out, or the same --failures file beside another --out, interleaved both runs' lines.
    A device or pipe (/dev/null) is every run's to write. All or none: on a refusal the
    locks taken so far are released."""
    locks = []
    try:
        for option, lock in _locks(prog, kinds, args):
            path = getattr(args, option.lstrip("-"))
            try:
                locks.append(output_lock.hold(lock))
            except OSError as e:  # its pid could not be written (a full disk)
                raise usage.UsageError(f"{option} {path}: cannot lock it ({e.strerror or e})") from e
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return locks


def _printable(text) -> str:
    """`text` on one terminal line as it is: control characters (line breaks, ESC) and
    invisible format characters escaped (an id of U+200B alone showed as nothing, U+202E
    turned the rest of the line around)."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Cf") else c for c in str(text))


# A record's source: ``path#index``, or ``path#index, line N`` (``lines N-M ...``) where the
# reader numbers records apart from lines (CSV); a problem of the whole file has the path alone
# (``read_structures``, and this tool's own: no such file, a folder, an unknown suffix)
_RECORD_SOURCE = re.compile(r"#\d+(, lines? \d.*)?$")


class _Ids:
    """The records' ids so far (``id_key``: as Unicode NFC text) and where each was first
    seen: the outputs are joined on the id, so a repeated one would attach one molecule's
    tokens or picture to another's record. With ``--smiles`` (``smiles=True``) the id is the
    SMILES itself: one id is one molecule, so a repeat is no conflict and is not counted
    (``--smiles C C`` gives two lines of the same tokens)."""

    def __init__(self, smiles: bool):
        self.smiles = smiles
        self.first: dict[str, str] = {}  # id key -> the source of its first record
        self.repeated: dict[str, list[str]] = {}  # id -> the sources of all its records

    def earlier(self, item: MoleculeRecord | MoleculeError) -> str | None:
        """The source of an earlier record with ``item``'s id (failed or not, as
        deepmolm-prepare counts them), or None when it is the first. A problem of a whole file
        (a folder, empty, unreadable, not text) is no record, and no output is joined on its
        id: it is neither counted nor compared (was: two empty ``pose.sdf`` files gave
        "duplicate-id" before "file contains no molecules")."""
        if isinstance(item, MoleculeError) and not _RECORD_SOURCE.search(str(item.source)):
            return None
        key = id_key(item.id)
        if self.smiles or key not in self.first:
            self.first[key] = str(item.source)
            return None
        self.repeated.setdefault(item.id, [self.first[key]]).append(str(item.source))
        return self.first[key]

    def duplicate(self, item: MoleculeRecord | MoleculeError, earlier: str) -> MoleculeError:
        """``item`` failed as deepmolm-prepare's ``duplicate-id``, naming the earlier record; a
        record that failed anyway says that too."""
        also = f"; this one also failed: {item.reason}" if isinstance(item, MoleculeError) else ""
        return MoleculeError(item.id, f"duplicate-id: an earlier record ({earlier}) has the same id (as Unicode "
                                      f"NFC text); outputs are joined on the id, so give each record its own{also}",
                             source=item.source)

    def note(self, prog: str, what: str) -> None:
        """One stderr line naming the repeated ids (ten at most) and their records' sources."""
        if not self.repeated:
            return
        named = [f"{_printable(id)} ({' / '.join(map(_printable, sources[:5]))})"
                 for id, sources in list(self.repeated.items())[:10]]
        more = f" and {len(self.repeated) - 10} more" if len(self.repeated) > 10 else ""
        print(f"{prog}: {len(self.repeated)} id(s) given to more than one record, {what}: {'; '.join(named)}{more}",
              file=sys.stderr)


class _Reporter:
    """Counts failures, prints them above the progress bar, and mirrors them to a file."""

    def __init__(self, failures: Path | None, desc: str, quiet: bool):
        self.failed = 0
        self.done = 0
        self.file = open(failures, "w", encoding="utf-8") if failures else None
        self.bar = tqdm(desc=desc, unit="mol", file=sys.stderr, disable=quiet, dynamic_ncols=True)

    def ok(self) -> None:
        self.done += 1
        self.bar.update(1)

    def fail(self, error: MoleculeError) -> None:
        self.done += 1
        self.failed += 1
        self.bar.update(1)
        # one line per failure: an id with a line break split it, an ESC sequence rewrote the terminal
        # the place once: a problem of a whole file has the file as its id and source ("FAILED
        # empty.sdf (empty.sdf): ..." named it twice)
        where = f" ({_printable(error.source)})" if error.source and error.source != error.id else ""
        tqdm.write(f"FAILED {_printable(error.id)}{where}: {_printable(error.reason)}", file=sys.stderr)
        if self.file:
            line = {"id": error.id, "source": error.source, "error": error.reason}
            self.file.write(json.dumps(line) + "\n")
            self.file.flush()  # on disk as it is reported: a killed run had written none

    def interrupted(self, prog: str, outputs: list[str]) -> int:
        """Ctrl-C: one line saying how far it came and where the partial output is; exit 130.
        The verb agrees with the number of ``outputs`` (was: "--out x.jsonl hold those only")."""
        self.close("done:", stopped=True)
        verb = "holds" if len(outputs) == 1 else "hold"
        print(f"{prog}: interrupted after {self.done} records; {' and '.join(outputs)} {verb} those only (a rerun "
              "starts over)", file=sys.stderr)
        return 130

    def unwritable(self, prog: str, what: str, error: OSError, done: str) -> int:
        """An output could not be written (a full disk): one line naming it and the reason
        instead of a traceback, after the summary; exit 1."""
        self.close(done, stopped=True)
        print(f"{prog}: cannot write {what}: {error.strerror or error} (after {self.done} records); stopped",
              file=sys.stderr)
        return 1

    def close(self, what: str, stopped: bool = False) -> int:
        """The summary line; `stopped`: the run ended before its last record, so the count is
        of the records read so far ("2 of 2 records" read as the whole input, of 4)."""
        self.bar.close()
        if self.file:
            self.file.close()
        read = f"the {self.done} records read before it stopped" if stopped else f"{self.done} records"
        summary = f"{what} {self.done - self.failed} of {read}; {self.failed} failed"
        print(summary, file=sys.stderr)
        return 1 if self.failed else 0


@usage.interrupted_by_sigterm  # a scheduler's SIGTERM or `kill`: the Ctrl-C line, not a silent 143
def fingerprint_main(argv: list[str] | None = None) -> int:
    """``deepmolm-fingerprint``: E3FP tokens as JSON lines."""
    parser = argparse.ArgumentParser(
        prog="deepmolm-fingerprint",
        description="Per-atom E3FP tokens (DeepMoLM molecule_fp) as JSON lines.",
    )
    _common_arguments(parser)
    parser.add_argument(
        "--policy", choices=[p for p in POLICIES if p != "keep"], default="auto",
        help="3D policy (default auto: the file's 3D conformer, else generate one)",
    )
    parser.add_argument(
        "--too-large", choices=("error", "truncate"), default="error",
        help="over --max-atoms: fail the record (default) or keep the first rows (noted)",
    )
    parser.add_argument(
        "--embed-timeout", type=embed_timeout_arg, default=EMBED_TIMEOUT, metavar="SECONDS",
        help=f"time limit for embedding one conformer (default {EMBED_TIMEOUT}; 'none' lifts it)",
    )
    add_fingerprint_options(parser)
    parser.add_argument("--out", default="-", type=usage.user_path, help="output JSONL file (default stdout)")
    args = parser.parse_args(argv)
    _expand_inputs(args)
    try:
        settings = fingerprint_settings(args)  # every line is stamped with them: training and eval refuse
        # rows made for another model
        if args.out != "-":
            usage.output_file(args.out, "--out")
        if args.failures is not None:
            usage.output_file(args.failures, "--failures")
        kinds = {"--out": None if args.out == "-" else output_lock.file_lock, "--failures": output_lock.file_lock}
        outputs = {"--out": args.out if args.out != "-" else None, "--failures": args.failures}
        _check_outputs(args, _check_inputs(args), outputs,
                       _lock_paths(parser.prog, kinds, args))
        # before the file is emptied: a second run into it interleaved both runs' lines (and NUL
        # bytes); a device or pipe (/dev/null, `>(...)`) is every run's to write
        locks = _hold_outputs(parser.prog, kinds, args)
    except usage.UsageError as e:
        usage.fail(parser.prog, e)
    try:
        return _fingerprint(parser.prog, args, settings)
    finally:
        for lock in locks:
            lock.release()


def _fingerprint(prog: str, args, settings: FingerprintSettings) -> int:
    """The records of `fingerprint_main`, each line written (and flushed) as it is made: a
    killed or interrupted run's --out holds the records done so far (documented; a rerun
    starts over), so the file is written in place, not renamed into place at the end."""
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    report = _Reporter(args.failures, "fingerprint", args.no_progress)
    try:
        options = dict(
            policy=args.policy, max_atoms=args.max_atoms, too_large=args.too_large,
            fragments=args.fragments, embed_timeout=args.embed_timeout,
        )
        ids = _Ids(args.smiles)
        for item in _records(args, **options):
            earlier = ids.earlier(item)
            if earlier is not None:  # its tokens are not written (was: a second line under the same id)
                item = ids.duplicate(item, earlier)
            line = dict(id=item.id, molecule_fp=None, num_atoms=None, fp_bits=settings.bits,
                        fp_levels=settings.levels, source=item.source, conformer=None, notes=[], error=None)
            if isinstance(item, MoleculeRecord):
                try:
                    tokens = fingerprint_record(item, settings)  # [num_atoms, levels]
                    line.update(molecule_fp=tokens.tolist(), num_atoms=int(tokens.shape[0]),
                                conformer=item.conformer, notes=item.notes)
                    report.ok()
                except MoleculeError as error:
                    error.source = item.source
                    item = error
            if isinstance(item, MoleculeError):
                line.update(error=item.reason)
                report.fail(item)
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            out.flush()  # each line on disk as it is made (a killed run had written none); a closed pipe is caught here
    except KeyboardInterrupt:
        return report.interrupted(prog, ["stdout" if out is sys.stdout else f"--out {args.out}"])
    except BrokenPipeError:
        if out is not sys.stdout:
            raise
        return _stdout_closed(prog, report)
    except OSError as error:  # the --out file's disk is full (or its device failed)
        if out is sys.stdout:
            raise
        try:
            out.close()
        except OSError:  # the same failed write, retried by close: reported once
            pass
        return report.unwritable(prog, f"--out {args.out}", error, "fingerprinted")
    finally:
        if out is not sys.stdout and not out.closed:
            out.close()
    return report.close("fingerprinted")


def _stdout_closed(prog: str, report: _Reporter) -> int:
    """The reader of stdout went away (``| head``): stop, as Unix tools do, with one line
    instead of a BrokenPipeError traceback; exit 1 (not every record was written)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # else Python's final flush of stdout fails again
    report.close("fingerprinted", stopped=True)
    print(f"{prog}: stdout was closed by its reader after {report.done} records; stopped", file=sys.stderr)
    return 1


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _PngNames:
    """Safe, unique PNG names for ids (unique ignoring case, for macOS/Windows disks), none of
    `taken` (the stems of pictures already in --out). The next number to try is kept per base
    name: counting up from __2 at every repeat made N records of one id (or of ids alike once
    cut to 100 characters or made safe) cost N^2/2 lookups, 10 s more for 8,000 records."""

    def __init__(self, taken: set[str]):
        self.used, self.next = set(taken), {}

    def __call__(self, id: str) -> str:
        base = _UNSAFE.sub("_", id).strip("._")[:100] or "molecule"
        n = self.next.get(base.lower(), 1)
        name = base if n == 1 else f"{base}__{n}"
        while name.lower() in self.used:
            n += 1
            name = f"{base}__{n}"
        self.used.add(name.lower())
        self.next[base.lower()] = n + 1
        return name + ".png"


INDEX_KEYS = {"id", "image", "source", "error"}  # the lines render_main writes to index.jsonl


def _remove_earlier_images(out: Path) -> None:
    """Delete the PNGs an earlier run's `index.jsonl` in `out` lists (only those: other files
    in the folder are not ours). A record that failed in this run kept the earlier run's
    picture beside an index line that says it failed; a folder listing showed it as made.
    An `index.jsonl` this tool did not write (lines of other keys, an image that is no bare
    `.png` name) is a UsageError: another dataset's index made its pictures be deleted."""
    index = out / "index.jsonl"
    if not index.is_file():
        return
    names = []
    for number, text in enumerate(index.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError as e:
            line, problem = None, f"is not JSON ({e})"
        else:
            image = line.get("image") if isinstance(line, dict) else None
            problem = (None if isinstance(line, dict) and set(line) == INDEX_KEYS and (
                image is None or (isinstance(image, str) and Path(image).name == image and image.endswith(".png")))
                else "is not a line deepmolm-render writes")
        if problem:
            raise usage.UsageError(f"--out {out}: line {number} of its index.jsonl {problem}: the folder holds "
                                   "another tool's files; use another --out")
        if image is not None:
            names.append(image)
    removed = 0
    for path in [out / name for name in names] + sorted(out.glob(".*.png.part")):  # (.part: a killed run's)
        if path.is_file() or path.is_symlink():  # a folder of that name is not a picture of ours
            path.unlink()
            removed += 1
    if removed:  # the earlier run's pictures, said (they went without a word)
        print(f"deepmolm-render: removed {removed} pictures (and unfinished ones) an earlier run into {out} made",
              file=sys.stderr)


class _Unwritable(Exception):
    """Writing into --out failed (its OSError is the cause); an input's read error is not this."""


@contextlib.contextmanager
def _writing():
    try:
        yield
    except OSError as error:
        raise _Unwritable() from error


@usage.interrupted_by_sigterm
def render_main(argv: list[str] | None = None) -> int:
    """``deepmolm-render``: one PNG depiction per record."""
    parser = argparse.ArgumentParser(
        prog="deepmolm-render",
        description="DeepMoLM depictions (RDKit 2D, white background) as PNG files.",
    )
    _common_arguments(parser)
    parser.add_argument("--out", type=_user_path, required=True, help="output directory (created)")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels (default 1024)")
    parser.add_argument("--stereo-labels", action="store_true", help="also write CIP labels")
    args = parser.parse_args(argv)
    _expand_inputs(args)
    created = False  # --out made by this run: a refusal after it leaves no empty folder behind
    try:
        usage.at_least(args.size, "--size", MIN_RENDER_SIZE)
        if args.size > MAX_RENDER_SIZE:  # else every record fails in Cairo, or the machine runs out of memory
            raise usage.UsageError(f"--size must be <= {MAX_RENDER_SIZE} pixels, got {args.size}")
        usage.output_folder(args.out, "--out")
        if args.failures is not None and usage.real_path(args.failures) == usage.real_path(args.out):
            raise usage.UsageError(f"--failures {args.failures}: is the --out folder; give a file (such as "
                                   f"{os.path.join(args.failures, 'failures.jsonl')})")
        created = not args.out.exists()
        args.out.mkdir(parents=True, exist_ok=True)
        usage.output_file(args.out / "index.jsonl", "--out's index.jsonl")  # a folder there was a traceback
        if args.failures is not None:  # may be inside --out
            usage.output_file(args.failures, "--failures")
        kinds = {"--out": output_lock.folder_lock, "--failures": output_lock.file_lock}
        outputs = {"--out's index": args.out / "index.jsonl", "--failures": args.failures}
        _check_outputs(args, _check_inputs(args), outputs,
                       _lock_paths(parser.prog, kinds, args))
        # before anything in --out is deleted: a second run removed the pictures (and the
        # unfinished one) of the run writing there, which then failed
        locks = _hold_outputs(parser.prog, kinds, args)
    except usage.UsageError as e:
        if created and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # (`--failures newout` beside `--out newout` left an empty newout/)
        usage.fail(parser.prog, e)
    try:
        return _render(parser.prog, args)
    finally:
        for lock in locks:
            lock.release()


def _render(prog: str, args) -> int:
    """The records of `render_main`, into --out (whose lock this process holds)."""
    try:
        _remove_earlier_images(args.out)
    except usage.UsageError as e:
        usage.fail(prog, e)
    report = _Reporter(args.failures, "render", args.no_progress)
    # names taken by files already in --out (not ours, or the --failures file) are skipped: a
    # user's a.png, or --failures r/a.png, was overwritten by a depiction
    # (only pictures: the tool's own index.jsonl made a record named `index` index__2.png on a rerun)
    png_name = _PngNames({path.stem.lower() for path in args.out.iterdir() if path.suffix.lower() == ".png"})
    part = None
    ids = _Ids(args.smiles)
    try:
        with _writing():
            index = open(args.out / "index.jsonl", "w", encoding="utf-8")
        with index:
            # policy 'keep': drawing needs the graph and stereo, not a generated conformer.
            for item in _records(args, policy="keep", fragments=args.fragments, max_atoms=args.max_atoms):
                ids.earlier(item)  # drawn all the same, as <id>__2.png; named in the note at the end
                line = {"id": item.id, "image": None, "source": item.source, "error": None}
                if isinstance(item, MoleculeRecord):
                    try:
                        # what fingerprinting (so training) refuses is not drawn either
                        check_lone_hydrogens(item.mol, item.id)
                        image = render_molecule(item, size=args.size,
                                                stereo_labels=args.stereo_labels)
                        # by the id's NFC text: ids one only as NFC ("café" typed two ways) are
                        # a repeat, numbered __2 as the note says (were named apart)
                        name = png_name(id_key(item.id))
                        # written under a hidden name, listed, then put in place: a killed run left
                        # pictures its index did not list, and the rerun named them __2
                        part = args.out / f".{name}.part"
                        with _writing():
                            image.save(part, format="PNG")
                        line["image"] = name
                        report.ok()
                    except MoleculeError as error:
                        error.source = item.source
                        item = error
                if isinstance(item, MoleculeError):
                    line["error"] = item.reason
                    report.fail(item)
                with _writing():
                    index.write(json.dumps(line) + "\n")
                    index.flush()
                    if part is not None:
                        os.replace(part, args.out / line["image"])
                part = None
    except KeyboardInterrupt:
        return report.interrupted(prog, [str(args.out), "its index.jsonl"])
    except _Unwritable as unwritable:  # a full disk: one line, as deepmolm-fingerprint says it
        if part is not None:
            part.unlink(missing_ok=True)
        return report.unwritable(prog, f"into --out {args.out}", unwritable.__cause__, "rendered")
    ids.note(prog, "their pictures are numbered __2, __3... in input order (a join on the id in index.jsonl "
                   "matches several lines)")
    return report.close("rendered")


def main(argv: list[str] | None = None) -> int:
    """``python -m deepmolm_plugin.molecule.tools {fingerprint,render} ...``"""
    argv = sys.argv[1:] if argv is None else list(argv)
    tools = {"fingerprint": fingerprint_main, "render": render_main}
    if not argv or argv[0] not in tools:
        print("usage: python -m deepmolm_plugin.molecule.tools {fingerprint,render} ...", file=sys.stderr)
        return 2
    return tools[argv[0]](argv[1:])

