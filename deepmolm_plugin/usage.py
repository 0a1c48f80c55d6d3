"""Checks of what a user typed, for every command line: paths, files, numbers.

Each check raises `UsageError` naming the option and the value; a command turns it into
one line on stderr (`PROG: error: ...`) and exit status 2 with `fail`, before anything
heavy is imported or loaded. Only this error type is turned into a message: any other
exception is a bug and keeps its traceback.

Light on purpose: no torch, transformers or RDKit here (the checks run before those load).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import NoReturn, Optional


import argparse
import copy


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """`--help` of our command-line tools: each option with a default shows it, "(default:
    X)", unless its help already speaks of it; no default (None) or a flag's False is not
    shown (argparse's own formatter printed "(default: None)" next to a help's own words)."""

    @staticmethod
    def _shows_default(action) -> bool:
        default = action.default
        return (bool(action.option_strings) and not any(default is v for v in (None, False, argparse.SUPPRESS))
                and default != [] and "default" not in (action.help or "").lower())

    def _format_action(self, action):
        if not action.help and self._shows_default(action):  # argparse prints no help line at all
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action):
        help = (action.help or "").strip()
        if not self._shows_default(action):
            return help
        return f"{help} (default: %(default)s)" if help else "(default: %(default)s)"


class UsageError(ValueError):
    """A user-given path, file or value that cannot work: one line, exit status 2."""


class DataError(ValueError):
    """Data found unusable after the run started (a record, a prepared dataset's manifest,
    property labels): the launchers print it as one line naming the record or file, exit
    status 1, instead of a traceback."""


def data_error_line(error: Exception) -> str:
    """A DataError as one line. Raised in a DataLoader worker, torch re-raises it in the main
    process with the worker's traceback as its text, whose last line is the error itself
    (`package.module.InputError: record 'x': reason`): that line, without the class name."""
    text = str(error).strip()
    if "Traceback" in text:
        last = text.splitlines()[-1]
        head, sep, rest = last.partition(": ")
        text = rest if sep and head.endswith(type(error).__name__) else last
    return text


def vision_model(config, value: str, option: str) -> None:
    """The chat CLI, the GUI and model_vqa show the model a picture: a language model alone
    (a base Qwen2 folder, a Qwen2-VL folder whose LLM our loader takes out) has no vision
    tower, and the host crashed on it (process_images without an image processor, a missing
    mm_projector)."""
    if not getattr(config, "mm_vision_tower", None):
        raise UsageError(f"{option} {value} is a {config.model_type!r} model without a vision tower (its "
                         "config.json has no mm_vision_tower): this shows the model a picture, so it needs a "
                         "DeepMoLM checkpoint (trained with --vision_tower)")


def fail(prog: str, message: object) -> NoReturn:
    """`PROG: error: MESSAGE` on stderr, then exit status 2 (argparse's usage-error status)."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    raise SystemExit(2)


def sigterm_as_interrupt(before=None):
    """From now on SIGTERM stops this process as Ctrl-C does (KeyboardInterrupt), so each
    tool's Ctrl-C path (what is finished kept, one line, exit 130) also serves a job
    scheduler (SLURM sends SIGTERM, then SIGKILL after a grace period) and `kill`: they
    ended the tools silently, exit 143, whatever the tool would have tidied up. Call it in
    the main thread; returns the handler it replaced (`interrupted_by_sigterm` puts it back
    when a tool's main returns). `before`: run first when the signal comes (training quiets
    its DataLoader workers' SIGCHLD there).

    Only the first SIGTERM interrupts: `timeout -s TERM` and a scheduler signal the process
    and its group, and the second one, arriving while the first was being handled, printed
    the interrupt line twice. Processes forked later (deepmolm-prepare's workers, a
    DataLoader's) keep the default SIGTERM: with this handler inherited, a worker killed from
    outside raised KeyboardInterrupt as its task's result and stopped the whole run as if
    interrupted, where a dead worker's items are made again; the parent alone stops the run
    and says so once."""
    import signal

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if before is not None:
            before()
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, interrupt)
    global _SIGTERM_HANDLER
    _SIGTERM_HANDLER = interrupt
    return previous


def interrupted_by_sigterm(main):
    """A tool's main() with `sigterm_as_interrupt` for its duration: the handler it replaced
    is put back when main returns, so a process that goes on (a test, a notebook calling
    the tool) does not keep taking SIGTERM for Ctrl-C, and then ignoring it."""
    import functools
    import signal

    @functools.wraps(main)
    def run(*args, **kwargs):
        previous = sigterm_as_interrupt()
        try:
            return main(*args, **kwargs)
        finally:
            if previous is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(signal.SIGTERM, previous)

    return run


_SIGTERM_HANDLER = None  # what sigterm_as_interrupt installed, which forked children must not keep


def sigterm_interrupts() -> bool:
    """Whether SIGTERM now stops this process as Ctrl-C does (`sigterm_as_interrupt`'s
    handler is installed). RDKit's long steps stop for it then (`molecule.errors.rdkit_step`)."""
    import signal

    return _SIGTERM_HANDLER is not None and signal.getsignal(signal.SIGTERM) is _SIGTERM_HANDLER


def _children_keep_default_sigterm() -> None:
    import signal

    if _SIGTERM_HANDLER is not None and signal.getsignal(signal.SIGTERM) in (_SIGTERM_HANDLER, signal.SIG_IGN):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_children_keep_default_sigterm)


def checked(parser, check, args):
    """`check(args)`'s result; a UsageError it raises becomes `fail` with the parser's name.
    First every path option (argparse type `user_path`) is refused if its name is too long
    (`name_length`): a tool's own checks stat some paths themselves (model_vqa's
    `--answers-file` is_dir), which raised OSError, a traceback, for such a name."""
    try:
        for action in parser._actions:
            given = getattr(args, action.dest, None) if action.type is user_path else None
            for value in given if isinstance(given, (list, tuple)) else [given] if given is not None else []:
                name_length(value, action.option_strings[0] if action.option_strings
                            else action.metavar or action.dest.upper())
        return check(args)
    except UsageError as e:
        fail(parser.prog, e)


def user_path(value: "str | os.PathLike") -> str:
    """`value` with a leading `~` / `~user` expanded: the argparse `type` of every path option
    of the launchers, so the code after parsing never sees a `~`. The shell expands it only at
    a word's start: `--model-path=~/ckpt` reached the tools as typed, passed the checks here
    (which expand it) and then failed in the loaders as a Hub id ("Repo id must use
    alphanumeric chars")."""
    return os.path.expanduser(os.fspath(value))


def real_path(value: "str | os.PathLike") -> Path:
    """`value` with `~` expanded and links and `..` followed: os.path.realpath, which (unlike
    Path.resolve in Python 3.11) does not raise RuntimeError for a loop of links."""
    return Path(os.path.realpath(user_path(value)))


def placed_in(path: "str | os.PathLike", folder: "str | os.PathLike") -> Optional[str]:
    """"is" where `path` is `folder`, "is inside" where it lies below it, else None; compared
    as real paths, so a link or a `..` spelling of the same folder counts (a cache kept in an
    output folder the run owns: training's --vision_feature_cache, deepmolm-kflm2's cache)."""
    given, home = real_path(path), real_path(folder)
    return "is" if given == home else "is inside" if home in given.parents else None


def _path(value: "str | os.PathLike") -> Path:
    return Path(user_path(value))


NAME_TOO_LONG = "name too long: over 255 bytes in one name or 4096 in the path"
# what the molecule tools say of a pipe or device given as a file (`<(...)`, a FIFO, /dev/stdin)
NOT_A_REGULAR_FILE = "is not a regular file (a pipe or a device): save it to a file first"
NAME_MAX, PATH_MAX = 255, 4096  # Linux's limits (bytes): a longer name is refused by every call on it


def name_length(value: "str | os.PathLike", option: str) -> None:
    """A UsageError naming `option` where `value` has a part over NAME_MAX bytes or is
    PATH_MAX bytes or longer: no call on it can work (ENAMETOOLONG)."""
    raw = os.fsencode(user_path(value))
    if len(raw) >= PATH_MAX or any(len(part) > NAME_MAX for part in raw.split(b"/")):
        raise UsageError(f"{option} {value}: {NAME_TOO_LONG}")


def path_stat(value: "str | os.PathLike", option: str, follow_links: bool = True) -> Optional[os.stat_result]:
    """os.stat of `value` (os.lstat with `follow_links` False); None where nothing is there
    (also under a file, a link to nothing, a loop of links). A name too long, or a folder on
    the way this user may not look into, is a UsageError naming `option`: Path.exists,
    is_dir and is_file raise OSError for those (Python 3.11 swallows only ENOENT, ENOTDIR,
    EBADF and ELOOP), which was a traceback in every tool. A name too long is refused even
    where an earlier part is missing: the folder to be created would fail later."""
    path = user_path(value)
    name_length(path, option)
    try:
        return os.stat(path) if follow_links else os.lstat(path)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF):
            return None
        if e.errno == errno.ENAMETOOLONG:  # a file system with shorter names, a link's long target
            raise UsageError(f"{option} {value}: {NAME_TOO_LONG}") from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise UsageError(f"{option} {value}: cannot be looked at (no permission to search a folder on "
                             "its way)") from None
        raise


def _reachable(value: "str | os.PathLike", option: str) -> Path:
    """`value` as a Path, once `path_stat` (the link and what it names) has found nothing
    that makes the Path checks raise OSError: after it they only answer (a parent's name is
    a part of this one)."""
    path_stat(value, option, follow_links=False)
    path_stat(value, option)
    return _path(value)


def existing_file(value: "str | os.PathLike", option: str, allow_empty: bool = True) -> Path:
    """`value` as a Path to an existing (and, unless `allow_empty`, non-empty) file."""
    path = _reachable(value, option)
    if path.is_dir():
        raise UsageError(f"{option} {value}: is a folder, not a file")
    problem = broken_link(path)
    if problem:  # was "no such file", with the link right there
        raise UsageError(f"{option} {value}: {problem}")
    if not path.is_file():
        # a pipe or device (`<(...)`, a FIFO) exists: "no such file" sent users looking for it
        raise UsageError(f"{option} {value}: {NOT_A_REGULAR_FILE if path.exists() else 'no such file'}")
    if not allow_empty and path.stat().st_size == 0:
        raise UsageError(f"{option} {value}: the file is empty")
    return path


def existing_folder(value: "str | os.PathLike", option: str) -> Path:
    path = _reachable(value, option)
    if path.is_file():
        raise UsageError(f"{option} {value}: is a file, not a folder")
    problem = broken_link(path)
    if problem:
        raise UsageError(f"{option} {value}: {problem}")
    if not path.is_dir():
        raise UsageError(f"{option} {value}: no such folder")
    return path


def output_folder(value: "str | os.PathLike", option: str) -> Path:
    """A folder to create (or reuse): neither it nor the nearest existing folder above it
    may be a file, and that folder must be writable (a read-only file system failed at the
    first write, after the model had loaded). An empty name is refused: it meant the
    current folder, or (`if value:`) no folder at all, without a word."""
    if not os.fspath(value).strip():
        raise UsageError(f"{option}: the folder name is empty")
    path = _reachable(value, option)
    for p in (path, *path.parents):
        # A link to nothing (or a loop) "does not exist", so it passed, and creating the
        # folder failed after the model had loaded ("File exists").
        problem = broken_link(p)
        if problem:
            where = "" if p == path else f"{p} "
            raise UsageError(f"{option} {value}: {where}{problem}")
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == path else f"{existing} "
        raise UsageError(f"{option} {value}: {where}is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f"{existing} "
        raise UsageError(f"{option} {value}: {where}is not writable (read-only file system, or no permission)")
    if existing is not None and existing != path:
        _try_to_create(existing, f"{option} {value}")
    return path


def _is_loop(path: "str | os.PathLike") -> bool:
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def broken_link(path: "str | os.PathLike") -> Optional[str]:
    """What is wrong with `path` where it is a symbolic link to nothing or a loop of links
    ("is a symbolic link to X, which does not exist (or is a loop of links)"), else None."""
    if not os.path.islink(path) or os.path.exists(path):
        return None
    return f"is a symbolic link to {os.readlink(path)}, which does not exist (or is a loop of links)"


def _try_to_create(existing: Path, what: str) -> None:
    """Create a folder of a unique name in `existing` (the nearest existing folder above a
    missing one) and remove it again: access() answers yes where mkdir then fails (root on
    /proc, or on other virtual and network file systems), which was a traceback after the
    model had loaded. The probe never touches the folder asked for, which other ranks or
    runs may be creating at the same time."""
    import tempfile

    try:
        probe = tempfile.mkdtemp(prefix=".deepmolm-probe-", dir=existing)
    except OSError as e:
        raise UsageError(f"{what}: cannot be created in {existing} ({e.strerror or e})") from None
    os.rmdir(probe)


def cache_folder(value: "str | os.PathLike", option: str) -> Path:
    """`output_folder`, except that an existing folder this user can read but not write is
    accepted: a cache shared on a read-only mount serves what it holds (the cache then
    stores nothing, and says so). A folder that holds a model, or one inside a model folder
    (`CHECKPOINT/feature_cache`: review), is refused (`held_model`)."""
    path = _reachable(value, option)
    held = held_model(path)
    if held:
        raise UsageError(f"{option} {value}: holds a model ({held}); the cache would write a sub-folder of "
                         "entries (one file per view) into it, to be copied and shipped with the model: give "
                         "the cache a folder of its own")
    for parent in Path(os.path.abspath(path)).parents:  # a few stat calls
        held = held_model(parent)
        if held:
            raise UsageError(f"{option} {value}: is inside the model folder {parent} ({held}); its entries would "
                             "be copied and shipped with the model: give the cache a folder outside it")
    if path.is_dir() and os.access(path, os.R_OK | os.X_OK) and not os.access(path, os.W_OK):
        return path
    return output_folder(value, option)


# A model folder's configuration files: a host / transformers model, a DeepEncoder tower.
MODEL_CONFIG_FILES = ("config.json", "deepencoder_config.json")
MODEL_WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "mm_projector.bin")


def held_model(path: Path) -> Optional[str]:
    """The files that make `path` a model folder ("config.json, model.safetensors"): a
    configuration beside weights, as a finished run, a checkpoint-<step> or a tower folder
    holds them; None otherwise (also for no folder). A feature cache never writes files at
    its top level (its entries are in sub-folders), so such a folder is no cache. Was: a
    checkpoint folder given as --vision_feature_cache got thousands of entry folders."""
    if not path.is_dir():
        return None
    try:
        configs = [name for name in MODEL_CONFIG_FILES if (path / name).is_file()]
        weights = sorted({p.name for pattern in MODEL_WEIGHT_PATTERNS for p in path.glob(pattern) if p.is_file()})
    except OSError:  # no permission to list it: the folder checks that follow say so
        return None
    if not configs or not weights:
        return None
    return ", ".join(configs + weights[:2]) + (f" and {len(weights) - 2} more" if len(weights) > 2 else "")


def output_file(value: "str | os.PathLike", option: str) -> Path:
    """A file to write: not a folder, its folder must exist, and the file be writable (or
    creatable there). Was: a PermissionError traceback at the first write, after another
    output had been emptied (deepmolm-fingerprint's --out) or the earlier run's pictures
    deleted (deepmolm-render)."""
    path = _reachable(value, option)
    if path.is_dir():
        raise UsageError(f"{option} {value}: is a folder, not a file")
    if os.path.islink(path) and not os.path.exists(path):
        # a loop of links was an OSError traceback at the first write; a link to a file yet to
        # be made is written through (its folder must exist)
        target = Path(os.path.dirname(path) or ".", os.readlink(path))
        if _is_loop(path) or not target.parent.is_dir():
            raise UsageError(f"{option} {value}: {broken_link(path)}")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {value}: no such folder {parent}" if not parent.exists()
                         else f"{option} {value}: {parent} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {value}: is not writable (read-only file, or no permission)")
    if not path.exists():
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {value}: {parent} is not writable (read-only file system, or no permission)")
        _try_to_create(parent, f"{option} {value}")  # access() says yes on some file systems where writes fail
    return path


def at_least(value: Optional[float], option: str, minimum: float = 1) -> None:
    """`value` (when given) must be a finite number >= `minimum`; NaN, which argparse's
    float takes from "nan" and which compares false both ways, is refused too (--temperature
    nan ran greedy), and so is inf (--temperature inf sampled uniformly: noise, scored as
    answers)."""
    import math

    if value is not None and not (value >= minimum and math.isfinite(value)):
        raise UsageError(f"{option} must be {number_kind(value)} >= {minimum}, got {value}")


def number_kind(value) -> str:
    """How an option's refusal names what it takes: a count (argparse's int) is "a whole
    number" (`--freesolv 0` was told it must be "a finite number"), else "a finite number"."""
    import numbers

    return "a whole number" if isinstance(value, numbers.Integral) and not isinstance(value, bool) else "a finite number"


def shortened(text: str, limit: int = 80) -> str:
    """`text` for a message: when longer than `limit`, its first characters and its length
    (a 5000-atom SMILES made a 5000-character error in the GUI's status box)."""
    return text if len(text) <= limit else f"{text[:limit - 20]}... ({len(text)} characters)"


DEVICE = re.compile(r"cpu|cuda(?::\d+)?")


def device(value: str, option: str = "--device") -> None:
    """`cpu`, `cuda` or `cuda:N` (CUDA falls back to the CPU where there is none): anything
    else (`bogus`, `CPU`, `meta`) was torch's RuntimeError or a ValueError traceback, raised
    while the model loaded."""
    if not DEVICE.fullmatch(value):
        raise UsageError(f"{option} {value!r}: give cpu, cuda or cuda:N")


def surrogate_problem(value) -> Optional[str]:
    """Why parsed JSON `value` cannot be used as text, or None: a string (or key) holding half
    of a UTF-16 surrogate pair, JSON "\\ud83d" alone (text cut inside an emoji by a UTF-16
    tool). Python keeps it, and it failed far from its record: writing a report or a
    question file ("surrogates not allowed"), tokenising a training record."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as e:
                return (f"a string holds {item[e.start]!r}, half of a UTF-16 surrogate pair (text cut inside a "
                        f"character?): {item[max(0, e.start - 30):e.start + 30]!r}")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


class RepeatedKeyError(ValueError):
    """JSON text in which one object states a key twice: ``key``; ``value``, the parsed
    text (with the last of the values); ``path``, the keys and list indices leading from
    it to that object ([] for ``value`` itself)."""

    def __init__(self, key: str, path: list, value):
        self.key, self.path, self.value = key, path, value
        super().__init__(f"the key {json.dumps(key, ensure_ascii=False)} is given twice in one object")

    def reason(self, start: int = 0) -> str:
        """The message, naming the object by its path from ``path[start]`` on."""
        inside = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path[start:]).lstrip(".")
        return (f"{self}{f' ({inside})' if inside else ''}: JSON readers, the host's too, keep the last value "
                "without a word; delete the others")


class TooDeepJSON(json.JSONDecodeError):
    """JSON nested more deeply than json.loads can read (a RecursionError there); a
    JSONDecodeError, so every reader says "not JSON" for it, without a position (it has none)."""

    def __init__(self, text: str):
        super().__init__("nested too deeply for Python's JSON parser (about 1000 levels)", text, 0)

    def __str__(self) -> str:
        return self.msg

    def __reduce__(self):  # JSONDecodeError's passes (msg, doc, pos) back, which __init__ does not take
        return type(self), (self.doc,)


def json_loads_unique(text: str):
    """json.loads, with RepeatedKeyError for an object that states a key twice: json.loads
    (and the host's json.load) keeps the last value without a word, so a hand-edited record
    with an appended correction (`"smiles": "CCO", "smiles": "c1ccccc1O"`, a second `value`
    in a turn) trained on whichever came last. The readers of user-written records and
    questions use this one."""
    repeated = []  # (object, key), innermost first as the parser completes them

    def pairs(items: list) -> dict:
        obj = dict(items)
        if len(obj) < len(items):
            seen: set = set()
            repeated.append((obj, next(k for k, _ in items if k in seen or seen.add(k))))
        return obj

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except RecursionError:  # ~1000 nested [ or {: every caller says "not JSON" for the file and line
        # (was: a RecursionError traceback from eval.report, eval.questions and training's --data_path)
        raise TooDeepJSON(text) from None
    if repeated:  # located only now (the hook cannot see where its object will sit)
        obj, key = repeated[0]
        raise RepeatedKeyError(key, _path_to(value, obj), value)
    return value


def _path_to(value, target) -> list:
    """The keys / indices leading from `value` to the object `target` (by identity)."""
    stack = [(value, [])]
    while stack:
        item, path = stack.pop()
        if item is target:
            return path
        if isinstance(item, dict):
            stack.extend((v, path + [k]) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, path + [i]) for i, v in enumerate(item))
    return []


def json_list_file(value: "str | os.PathLike", option: str, what: str = "records") -> list:
    """The non-empty JSON list of objects a file holds (e.g. training records)."""
    path = existing_file(value, option, allow_empty=False)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if text.startswith("\ufeff"):  # json.loads' own words were "Unexpected UTF-8 BOM (decode using utf-8-sig)"
            raise UsageError(f"{option} {value}: starts with a UTF-8 byte-order mark (BOM), which the host's JSON "
                             "reader refuses: save it without one")
        data = json_loads_unique(text)
    except UnicodeDecodeError as e:
        raise UsageError(f"{option} {value}: not a UTF-8 text file ({e.reason} at byte {e.start})") from e
    except json.JSONDecodeError as e:
        hint = ""
        if e.msg == "Extra data" and e.lineno > 1 and e.colno == 1:  # a second value at a line start
            hint = f"; JSON lines? it must be one JSON list of {what}: [{{...}}, {{...}}]"
        raise UsageError(f"{option} {value}: not JSON ({e}){hint}") from e
    except RepeatedKeyError as e:
        if not (e.path and isinstance(e.value, list)):  # the list itself is no object: in the top object
            raise UsageError(f"{option} {value}: {e.reason()}") from e
        record = e.value[e.path[0]]
        named = f" (id {json.dumps(record['id'], ensure_ascii=False)})" if isinstance(record, dict) and "id" in record \
            else ""
        raise UsageError(f"{option} {value}: item #{e.path[0]}{named}: {e.reason(start=1)}") from e
    if not isinstance(data, list):
        raise UsageError(f"{option} {value}: must hold a JSON list of {what}, found a JSON {type(data).__name__}")
    if not data:
        raise UsageError(f"{option} {value}: holds no {what} (an empty JSON list)")
    bad = next((i for i, item in enumerate(data) if not isinstance(item, dict)), None)
    if bad is not None:
        raise UsageError(f"{option} {value}: item #{bad} is a JSON {type(data[bad]).__name__}, "
                         f"not an object: every one of the {what} must be a JSON object")
    if "\\u" in text:  # a surrogate can only come from a \u escape: the common file is not walked
        bad = next(((i, p) for i, item in enumerate(data) if (p := surrogate_problem(item))), None)
        if bad:
            raise UsageError(f"{option} {value}: item #{bad[0]}: {bad[1]}")
    return data


# Sampling divides the logits by the temperature: below about 1e-37 they overflow to inf and
# generation failed with "probability tensor contains either inf, nan or element < 0". A
# practical floor far above that; 0 means greedy decoding.
MIN_TEMPERATURE = 1e-4


def temperature_problem(value: float) -> Optional[str]:
    """Why `value` is no sampling temperature, or None (worded to follow the option name)."""
    if not value >= 0:  # also NaN, which every comparison fails
        return f"must be at least 0, got {value}"
    if 0 < value < MIN_TEMPERATURE:
        return (f"{value} is too small to sample with (the logits divided by it overflow); use 0 for greedy "
                f"decoding, or at least {MIN_TEMPERATURE}")
    return None


def sampling_temperature(value: float, option: str = "--temperature") -> float:
    """`value`, or a UsageError naming `option` and `temperature_problem` (chat and batch
    eval: a model_vqa run given 1e-40 failed on its first question, after the model loaded)."""
    at_least(value, option, 0)  # NaN and inf too
    problem = temperature_problem(value)
    if problem:
        raise UsageError(f"{option} {problem}")
    return value


def model_config(folder: "str | os.PathLike", option: str) -> Optional[dict]:
    """The JSON object in a model folder's config.json; None when the folder has none.
    Unreadable, not JSON or not an object: UsageError naming the option and the file (the
    readers of saved models, adapters, checkpoints and KFLM2's llm: folders all come here)."""
    path = _path(folder) / "config.json"
    found = path_stat(path, option)  # a name too long: a UsageError, not an OSError traceback
    if found is None or not stat.S_ISREG(found.st_mode):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except UnicodeDecodeError as e:
        raise UsageError(f"{option}: {path} is not UTF-8 text ({e.reason} at byte {e.start})") from e
    except (OSError, ValueError) as e:
        raise UsageError(f"{option}: {path} is unreadable ({e})") from e
    if not isinstance(config, dict):
        raise UsageError(f"{option}: {path} holds a JSON {type(config).__name__}, not an object")
    return config


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def partial_model_folder(path: Path) -> Optional[str]:
    """Why a folder with a config.json holds no model to load, for the two training outputs
    that are only part of one; None otherwise. A `--lora_enable` run's folder (adapter
    only) and a stage-1 `--tune_mm_mlp_adapter` run's (mm_projector.bin only) failed in
    chat and eval with "no usable tokenizer", and as --model_name_or_path with a traceback."""
    if any((path / name).is_file() for name in WEIGHT_FILES) or (path / "llm").is_dir():
        return None
    if (path / "adapter_config.json").is_file():
        return ("a LoRA adapter folder (adapter_config.json, no model weights): it holds only the low-rank "
                "weights, not a model to load; use a fully trained model's folder")
    if (path / "mm_projector.bin").is_file():
        return ("a stage-1 projector folder (mm_projector.bin, no model weights): give its mm_projector.bin to "
                "stage 2 with --pretrain_mm_mlp_adapter; chat and eval load the stage-2 model")
    return None


# The keys of the config.json a deepmolm-kflm2 run writes in its --out folder, held since its
# first version (= property.cli.RUN_JSON_KEYS["config.json"]; that module loads torch and RDKit,
# too heavy for these checks): no model's config.json has data_file, targets and task.
KFLM2_RUN_CONFIG_KEYS = frozenset({"fingerprint", "data_file", "targets", "task", "train"})


def kflm2_run_folder(path: Path, option: str) -> Optional[str]:
    """What a deepmolm-kflm2 results folder is, when `path` is one (its config.json holds a
    run's settings); None otherwise. Was: transformers' "Unrecognized model ... Should have a
    `model_type` key" (exit 1) in chat, eval and the GUI, after the chat CLI had built the
    molecule's conformer, where a stage-1 or LoRA folder was named as one (exit 2)."""
    config = model_config(path, option)  # unreadable or not an object: that error, naming the file
    if config is None or "model_type" in config or not KFLM2_RUN_CONFIG_KEYS <= config.keys():
        return None
    held = ("config.json, results.json: the settings and scores" if (path / "results.json").is_file()
            else "config.json: the settings")  # a run writes results.json last
    return f"a deepmolm-kflm2 results folder ({held} of a property-prediction run), not a model to load"


def model_folder(value: str, option: str) -> None:
    """A model to load: a local folder with a config.json (or a VILA-style `llm/config.json`),
    or a Hugging Face Hub id `owner/name`. A value that cannot be one (an absolute or
    relative path spelled with ./ ../ ~, several slashes, a bare name) must be an existing
    folder; offline, a Hub id must be in the local cache. A folder that is only part of a
    model (`partial_model_folder`) or a deepmolm-kflm2 results folder (`kflm2_run_folder`)
    is named for what it is."""
    path = _reachable(value, option)
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "llm" / "config.json").is_file():
            raise UsageError(f"{option} {value}: the folder holds no config.json (not a model checkpoint folder)")
        why = partial_model_folder(path) or kflm2_run_folder(path, option)
        if why:
            raise UsageError(f"{option} {value}: {why}")
        return
    if path.exists():
        raise UsageError(f"{option} {value}: is a file, not a model folder")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        raise UsageError(f"{option} {value}: no such folder") from None
    if "/" not in value:
        # `checkpoint` typed in the wrong folder: transformers took it for a Hub model, retried
        # huggingface.co for ~20 s offline and ended in a traceback. The Qwen2-family and
        # DeepMoLM models this loads are Hub ids of the form owner/name.
        raise UsageError(f"{option} {value}: no such folder (a Hugging Face Hub model would be owner/name)")
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(value, "config.json"), str):
        raise UsageError(f"{option} {value}: no such folder{typed_elsewhere(value)}, and not a model in the Hugging "
                         "Face cache (HF_HUB_OFFLINE is set)")


def typed_elsewhere(value: str) -> str:
    """A hint for a model path that is no folder here but whose first part is one: `out/stage2`
    typed where out/ holds no stage2 (the README's own example) went to the Hub as an id. Not
    refused for it, since `Qwen/Qwen2-0.5B` beside a local `Qwen/` download folder is a Hub
    id; said where it fails (offline here, or transformers' load error)."""
    value = str(value)
    owner = value.split("/")[0]
    try:
        if "/" not in value or not owner or _path(value).exists() or not _path(owner).is_dir():
            return ""
    except OSError:  # a name too long, no permission: no hint (the error it goes with says why)
        return ""
    return f" ({owner}/ here holds no {value[len(owner) + 1:]}: a path typed in another folder?)"
