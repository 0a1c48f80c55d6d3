"""The one error type of the molecule package, and RDKit log capture.

Every per-molecule failure (unparseable input, valence error, flat 3D input, embedding
failure, E3FP failure, blank depiction, size cap) is a ``MoleculeError`` naming the
molecule and the reason. Batch tools catch exactly this type, report it and go on;
anything else is a bug and propagates.

RDKit reports *why* a parse failed only through its log (``MolFromMolBlock`` returns
None and logs "Counts line too short ..."). ``rdkit_messages()`` routes RDKit's log
through Python's ``logging`` (``rdBase.LogToPythonLogger``; RDKit's own "rdkit" logger
keeps printing to stderr outside our capture, as before) and, while active, collects
the messages instead of printing them: into the error's reason when the step fails, into
the record's notes ("RDKit: ...") when it succeeds with warnings. The capture is
process-wide while active: do not read molecules from several threads at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import re
import select
import signal
import threading
from typing import Callable, Iterator, TypeVar

from rdkit import rdBase

from .. import usage

T = TypeVar("T")

__all__ = ["MODEL_CAP", "MODEL_DEFAULT_CAP", "MoleculeError", "MoleculeTooLarge", "as_notes", "atom_names", "bond_name",
           "first_line", "python_sigint_again", "rdkit_messages", "rdkit_step", "too_large_reason", "untyped_atoms", "with_messages"]


class MoleculeError(ValueError):
    """A molecule could not be read, embedded, fingerprinted or drawn.

    ``id`` names the molecule (record title, SMILES, or ``file#index``) and ``reason``
    says what went wrong; ``str(error)`` contains both. ``source`` (``path#index``) is
    filled in by the file readers.
    """

    def __init__(self, id: str, reason: str, source: str | None = None):
        self.id = str(id)
        self.reason = str(reason)
        self.source = source
        # where the record starts in its file ("line 12"), when its reader knows: for messages
        # naming the record (``inputs.InputResolver``); ``source`` stays ``path#index``, the key
        # batch outputs are joined on
        self.line: str | None = None
        super().__init__(f"molecule {self.id!r}: {self.reason}")

    def __reduce__(self):
        # Picklable with its fields, so errors cross multiprocessing boundaries.
        return (type(self), (self.id, self.reason, self.source), {"line": self.line})


def atom_names(indices, mol=None, limit: int = 10) -> str:
    """Atoms as error messages name them: element and 1-based number, `C1, O3`, the number
    counting the molecule's atoms in order, as the file's atom lines (SDF, MOL2, XYZ, PDB)
    or a SMILES' atoms come; RDKit's indices start at 0, files and chemists count from 1
    (a message naming atom 0 pointed at the line before the one meant). Without `mol`, the
    numbers alone. At most `limit` are named, then how many more."""
    indices = [int(i) for i in indices]
    names = [_atom_name(i, mol) for i in indices[:limit]]
    more = f" and {len(indices) - limit} more" if len(indices) > limit else ""
    return ", ".join(names) + more


def _atom_name(index: int, mol) -> str:
    """`C3`; a symbol that ends in a digit (an R-group `R1`) gets its number apart: `R1 (atom 3)`,
    not `R13`."""
    symbol = mol.GetAtomWithIdx(index).GetSymbol() if mol is not None else ""
    return f"{symbol} (atom {index + 1})" if symbol[-1:].isdigit() else f"{symbol}{index + 1}"


def bond_name(bond, symbol: str = "-") -> str:
    """A bond as error messages name it: its atoms as ``atom_names`` does, `C1-O2` (`C2=C3`
    with ``symbol="="``)."""
    mol = bond.GetOwningMol()
    return f"{atom_names([bond.GetBeginAtomIdx()], mol)}{symbol}{atom_names([bond.GetEndAtomIdx()], mol)}"


_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*(ERROR:\s*|WARNING:\s*)?")
_NOISE = ("moving to the beginning of the next",)


class _Collect(logging.Filter):
    """Logger filter: hands each message to every open capture and stops it printing."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[list[str]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        for line in record.getMessage().splitlines():
            line = _TIMESTAMP.sub("", line).strip()
            if line and not any(n in line for n in _NOISE):
                for messages in self.stack:
                    messages.append(line)
        return False


_collect = _Collect()
_routed = False


@contextlib.contextmanager
def rdkit_messages() -> Iterator[list[str]]:
    """Collect RDKit's warnings and errors raised inside the block (timestamps removed).

    Captures may nest: every open capture sees every message. On leaving, Python's own
    SIGINT handler is installed again (``python_sigint_again``): RDKit's interruptible calls,
    all made inside a capture, leave SIGINT restarting blocking reads.
    """
    global _routed
    if not _routed:
        rdBase.LogToPythonLogger()
        _routed = True
    error_log_off = not _collect.stack and "rdApp.error:disabled" in rdBase.LogStatus()
    if not _collect.stack:
        logging.getLogger("rdkit").addFilter(_collect)
    if error_log_off:
        # RDKit's error log is the only sign of a Ctrl-C it took (``rdkit_step``): a
        # caller's rdBase.DisableLog("rdApp.error") or BlockLogs would hide it. Collected, not printed.
        rdBase.EnableLog("rdApp.error")
    messages: list[str] = []
    _collect.stack.append(messages)
    try:
        yield messages
    finally:
        python_sigint_again()
        _collect.stack.remove(messages)
        if not _collect.stack:
            logging.getLogger("rdkit").removeFilter(_collect)
        if error_log_off:
            rdBase.DisableLog("rdApp.error")


# RDKit's long computations take SIGINT themselves while they run (conformer embedding, bond
# order perception, CIP labels, substructure search): they stop, log one of these lines and
# return as if they had failed (EmbedMolecule -1) or finished (fewer matches). Python never
# sees the Ctrl-C: it became a false "3D embedding failed", or a retry from random
# coordinates that gave another conformer, and the batch went on.
_INTERRUPTED = ("Interrupted, cancelling", "was interrupted")


def rdkit_step(step: Callable[[], T], messages: list[str]) -> T:
    """``step()``, one RDKit call made inside ``rdkit_messages()`` (``messages``), with a Ctrl-C
    that RDKit took passed on as ``KeyboardInterrupt`` (was: the step's failure, or a cut-short
    result), whatever RDKit then reported: its own "Interrupted" line, or a time limit it found
    run out at the same check (``_SigintWatch``). In a process that ignores SIGINT
    (deepmolm-prepare's workers: their parent acts on the Ctrl-C) RDKit still takes it and
    cuts the step short: the step is done again, so the worker's result is the uninterrupted
    one. RDKit's interrupt lines leave ``messages``.
    ``step`` must not change its inputs when cut short (or work on a copy). Done again at most
    `_REDOS` times: a step RDKit cuts short every time (a flag of its own left set, or Ctrl-C
    held down) ends as ``KeyboardInterrupt`` rather than looping (the parent acts on the
    Ctrl-C in any case)."""
    for _ in range(_REDOS + 1):
        failure = None
        with _SigintWatch() as watch:
            try:
                result = step()
            except (RuntimeError, ValueError) as error:  # the CIP labeller raises on a Ctrl-C
                failure = error
        if _interrupted(messages, str(failure or ""), watch.took):
            continue
        if failure is not None:
            raise failure
        return result
    raise KeyboardInterrupt


def python_sigint_again() -> None:
    """Python's own SIGINT handler installed again, after an RDKit call. RDKit's embedding,
    MMFF94 optimisation (and its other interruptible steps) install a SIGINT handler of their
    own and then put the previous one back with restart semantics (SA_RESTART): a blocking
    read (``input()`` at the chat CLI's prompt) was then restarted after a Ctrl-C instead of
    interrupted, and the Ctrl-C did nothing until Enter. ``rdkit_messages`` calls it on leaving
    (every RDKit call that does this is made inside one; a caller that blocks RDKit's logs
    instead calls it itself). Python's ``signal.signal`` installs without SA_RESTART. Only in the
    main thread (the only one that may set handlers) and only for a handler Python knows
    (``getsignal`` is None for one installed outside Python: left alone)."""
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGINT)
    if handler is not None:
        signal.signal(signal.SIGINT, handler)


_REDOS = 3


def _interrupted(messages: list[str], error: str = "", took: bool = False) -> bool:
    """Whether RDKit stopped for a Ctrl-C: it said so, or ``took`` (``_SigintWatch`` saw it
    take one). Its lines leave ``messages``. ``KeyboardInterrupt`` where this process acts on
    SIGINT, True (do it again) where it ignores it."""
    said = [line for line in [*messages, error] if any(marker in line for marker in _INTERRUPTED)]
    if not said and not took:
        return False
    messages[:] = [line for line in messages if line not in said]
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return True
    raise KeyboardInterrupt


# RDKit's SIGINT handler (RDGeneral/ControlCHandler.h) sets this one process-wide flag, which
# its long computations check between their stages; it is cleared again before the call returns.
_GOT_SIGNAL = "_ZN5RDKit15ControlCHandler11d_gotSignalE"  # RDKit::ControlCHandler::d_gotSignal
_POLL_S = 0.005  # how often _SigintWatch looks at it: far shorter than any stage that can overrun


@functools.lru_cache(maxsize=None)
def _rdkit_got_signal() -> "ctypes.c_bool | None":
    """RDKit's Ctrl-C flag, read where its extension modules share it (a unique symbol: one
    copy in the process); None in an RDKit build that does not export it (then RDKit's own
    "Interrupted" line is the only sign, as before)."""
    from rdkit.Chem import rdDistGeom

    try:
        return ctypes.c_bool.in_dll(ctypes.CDLL(rdDistGeom.__file__), _GOT_SIGNAL)
    except (OSError, ValueError):
        return None


class _SigintWatch:
    """Whether RDKit took a Ctrl-C during one step (``took``), seen by a thread that polls
    RDKit's flag while the main thread is inside RDKit (it releases the GIL). RDKit's handler
    replaces Python's for the call, so Python never sees the signal; and where the step's time
    limit had also run out by the check that found the flag, RDKit reported the time limit
    only, no "Interrupted" line: a Ctrl-C during a slow embedding was written as the record's
    "stopped at the time limit" failure and the batch went on. A Ctrl-C that lands within
    ``_POLL_S`` of that last check can still be missed. Main thread only (where Python acts
    on SIGINT).

    SIGTERM, where it stops the process as Ctrl-C does (``usage.sigterm_interrupts``: the
    tools), stops the step too. RDKit's handler takes SIGINT only, and Python runs its own
    SIGTERM handler in the main thread once RDKit returns: a `kill` or a scheduler's SIGTERM
    during a slow embedding waited for it (up to ``embed_timeout``, 60 s). Python's C-level
    handler writes the signal's number to its wakeup file (``signal.set_wakeup_fd``, set for
    the step's duration where no event loop holds it); the thread reads it there and sets
    RDKit's flag, as RDKit's handler would for a Ctrl-C. For the step, the SIGTERM handler
    only notes the signal, which is delivered again once the step is over: raised inside
    the step, the KeyboardInterrupt came out of RDKit's log call ("Interrupted, cancelling"),
    as a SystemError from Boost.Python."""

    def __init__(self) -> None:
        self.took = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._wakeup: int | None = None  # the read end of the wakeup pipe, while it is Python's wakeup file
        self._flag: "ctypes.c_bool | None" = None
        self._terms: list[int] = []  # SIGTERMs noted during the step (only when it watches for them)
        self._sigterm = None  # the SIGTERM handler it replaced, while it watches for SIGTERM

    def __enter__(self) -> "_SigintWatch":
        flag = _rdkit_got_signal()
        if flag is not None and threading.current_thread() is threading.main_thread():
            self._flag = flag
            if usage.sigterm_interrupts():
                self._wakeup = _wakeup_pipe()
            if self._wakeup is not None:
                self._sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: self._terms.append(signum))
            self._thread = threading.Thread(target=self._watch, args=(flag,), name="rdkit-sigint", daemon=True)
            self._thread.start()
        return self

    def _watch(self, flag: "ctypes.c_bool") -> None:
        while not self._done.is_set():
            if self._wakeup is None:
                self._done.wait(_POLL_S)
            elif signal.SIGTERM in _read_wakeup(self._wakeup, _POLL_S):
                flag.value = True  # RDKit stops at its next check; __exit__ delivers the SIGTERM again
            if flag.value:
                self.took = True
                return

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, self._sigterm)
            if self.took:
                self._flag.value = False  # set by the thread: RDKit clears it only when its call ends
            if self._terms:
                signal.raise_signal(signal.SIGTERM)  # the tool's handler: KeyboardInterrupt, here


_RDKIT_ATOM = re.compile(r"\batom # ?(\d+) ([A-Z][a-z]?)\b")
# rdDetermineBonds: "Unable to determine valence of atom 0 with atomic number 8 and 0 bonds."
# "Atom 0 with atomic number 78 has no valences defined" starts a sentence: either case
_RDKIT_ATOM_Z = re.compile(r"\batom (\d+) with atomic number (\d+)( and (\d+) bonds?)?", re.IGNORECASE)
_RDKIT_ATOMS = re.compile(r"\b(Unkekulized atoms:|non-ring atom)((?: \d+)+)")


# RDKit's UFF typer (ETKDG's force-field terms): "UFFTYPER: Unrecognized hybridization for
# atom: 8", "... hybridization set to SP3 for atom 5", "Unrecognized atom type: Pt+2 (8)"
_RDKIT_UFF_ATOM = re.compile(r"^(UFFTYPER: .* for atom):? (\d+)$")
_RDKIT_UFF_TYPE = re.compile(r"^(UFFTYPER: Unrecognized atom type: \S+) \((\d+)\)$")
# The typer's messages that it has no type for an atom (its type name, "Fe2+2", is UFF's own
# spelling, not the atom's charge): ``untyped_atoms`` takes them out, the conformer says what
# they mean (``conformer._untyped_note``)
_RDKIT_UFF_UNKNOWN = (re.compile(r"^UFFTYPER: Unrecognized (?:hybridization|charge state) for atom:? (\d+)$"),
                      re.compile(r"^UFFTYPER: Unrecognized atom type: \S+ \((\d+)\)$"))


def untyped_atoms(messages: list[str]) -> tuple[list[int], list[str]]:
    """(the atoms RDKit's UFF typer found no type for, in its indices, each once; the other
    messages). Was: passed on as notes, "RDKit: UFFTYPER: Unrecognized atom type: Fe2+2
    (atom Fe1)" for Fe3+, in RDKit's internal type names."""
    atoms: list[int] = []
    rest = []
    for message in messages:
        match = next((m for m in (p.match(message.strip()) for p in _RDKIT_UFF_UNKNOWN) if m), None)
        if match is None:
            rest.append(message)
        elif int(match.group(1)) not in atoms:
            atoms.append(int(match.group(1)))
    return atoms, rest


def one_based(text: str, name: Callable[[int], str] | None = None) -> str:
    """RDKit's words with its atoms named as ours are (`atom_names`): "Explicit valence for
    atom # 1 N" is atom N2 of the SMILES or file (the 0-based index pointed at the atom before),
    "Unkekulized atoms: 0 1" atoms 1 2, "non-ring atom 0 marked aromatic" atom 1, and
    rdDetermineBonds' "atom 0 with atomic number 8 and 0 bonds" atom O1 with 0 bonds.

    The UFF typer's messages count the molecule the conformer is embedded in (hydrogens added,
    atoms renumbered): ``name`` turns such an index into what the user can find
    (``conformer._canonical_names``), else it is given 1-based."""
    name = name or (lambda index: str(index + 1))
    text = _RDKIT_UFF_ATOM.sub(lambda m: f"{m.group(1)} {name(int(m.group(2)))}", text)
    text = _RDKIT_UFF_TYPE.sub(lambda m: f"{m.group(1)} (atom {name(int(m.group(2)))})", text)
    text = _RDKIT_ATOM.sub(lambda m: f"atom {m.group(2)}{int(m.group(1)) + 1}", text)
    text = _RDKIT_ATOM_Z.sub(_atom_by_number, text)
    return _RDKIT_ATOMS.sub(lambda m: m.group(1) + "".join(f" {int(i) + 1}" for i in m.group(2).split()), text)


def _atom_by_number(match: "re.Match") -> str:
    """`atom 0 with atomic number 8 and 0 bonds` as `atom O1 with 0 bonds`."""
    from rdkit import Chem

    z = int(match.group(2))
    symbol = Chem.GetPeriodicTable().GetElementSymbol(z) if 0 < z <= 118 else f"#{z}"
    bonds = f" with {match.group(4)} bond{'s' if match.group(4) != '1' else ''}" if match.group(3) else ""
    return f"atom {symbol}{int(match.group(1)) + 1}{bonds}"


def sanitization_failed(id: str, error: Exception) -> "MoleculeError":
    """RDKit's sanitisation refused the molecule: its words, atoms named 1-based."""
    return MoleculeError(id, f"sanitization failed: {one_based(str(error))}")


# Where a heavy-atom cap was set, for the words of its refusal (``MoleculeTooLarge.reworded``):
# the chat CLI, the GUI and eval take the cap from the model's config and have no option for
# it; the command-line tools take it from their --max-atoms.
MODEL_CAP = "model"  # the config's max_atoms, recorded at training
MODEL_DEFAULT_CAP = "model default"  # a model config without max_atoms: the default cap


def too_large_reason(n_heavy: int, max_atoms: int, cap_from: str | None = None) -> str:
    """Why the cap refused a molecule, naming where the cap was set: ``MODEL_CAP`` /
    ``MODEL_DEFAULT_CAP`` (a model's), an option name (``--max-atoms``: a tool's), or None
    (a caller's ``max_atoms`` argument). Was one wording for all: "raise it with max_atoms /
    --max-atoms", also in the chat and the GUI, which have no such option. The words start
    "too large: N heavy atoms" for every source (scripts look for it)."""
    head = f"too large: {n_heavy} heavy atoms"
    if cap_from == MODEL_CAP:
        return f"{head}; this model takes at most {max_atoms} heavy atoms (its max_atoms, set at training)"
    if cap_from == MODEL_DEFAULT_CAP:
        return (f"{head}; this model takes at most {max_atoms} heavy atoms (the default cap: its config records "
                "no max_atoms)")
    if cap_from:
        return (f"{head} > max_atoms={max_atoms} (the heavy-atom cap; raise it with {cap_from}, '{cap_from} none' "
                "lifts it)")
    return (f"{head} > max_atoms={max_atoms} (the heavy-atom cap; raise it with max_atoms / --max-atoms, 'none' "
            "lifts it)")


class MoleculeTooLarge(MoleculeError):
    """The heavy-atom cap refused the molecule (``policy.size_cap``; also before sanitising):
    it was read, and its ``n_heavy`` heavy atoms are over ``max_atoms``. ``cap_from``: where
    the cap was set (``too_large_reason``)."""

    def __init__(self, id: str, n_heavy: int, max_atoms: int, source: str | None = None,
                 cap_from: str | None = None):
        self.n_heavy, self.max_atoms, self.cap_from = int(n_heavy), int(max_atoms), cap_from
        super().__init__(id, too_large_reason(self.n_heavy, self.max_atoms, cap_from), source)

    def reworded(self, cap_from: str | None) -> "MoleculeTooLarge":
        """This refusal in the words of a cap set at ``cap_from`` (the builders that raise it
        know only the number; whoever set the cap knows where it came from)."""
        if cap_from is None or cap_from == self.cap_from:
            return self
        again = MoleculeTooLarge(self.id, self.n_heavy, self.max_atoms, self.source, cap_from)
        again.line = self.line
        return again

    def __reduce__(self):
        # its own fields: deepmolm-prepare's workers send errors to the main process pickled
        return (type(self), (self.id, self.n_heavy, self.max_atoms, self.source, self.cap_from),
                {"line": self.line})


_CARETS = re.compile(r"^[~^ ]+$")  # RDKit's pointer line under the echoed input: "~~~~^"
# An RDKit invariant violation logs its C++ stack trace, framed by these: a 100-line "reason"
# (an SDF star of 131 atoms) with nothing in it for the user; its first lines say what failed
_STACK = re.compile(r"^(\*{4}|-{10}|Stacktrace:|\d+# .*)$")


def _readable(messages: list[str], name: Callable[[int], str] | None = None) -> list[str]:
    """RDKit's lines as one-line message parts, each once: its caret diagram (the input
    echoed, then `~~~~^` under it) is dropped, its position already said in words; joined
    with "; " it read `... position 5:; C1CC(C; ~~~~^; ...` (the GUI showed that). Each
    part at most 200 characters (`usage.shortened`)."""
    drop = {i for i, m in enumerate(messages) if _CARETS.match(m)}
    drop |= {i - 1 for i in drop}
    drop |= {i for i, m in enumerate(messages) if _STACK.match(m)}
    kept = [m[:-1] if m.endswith(":") and i + 1 in drop else m for i, m in enumerate(messages) if i not in drop]
    # each line cut to 200 characters: RDKit echoes its input, three times for a SMILES it
    # cannot parse (a 600-atom SMILES made a 2,000-character reason)
    return list(dict.fromkeys(usage.shortened(one_based(m, name), 200) for m in kept))


def with_messages(reason: str, messages: list[str], name: Callable[[int], str] | None = None) -> str:
    """``reason`` followed by RDKit's own words, when it said anything (``name``: ``one_based``)."""
    said = "; ".join(_readable(messages, name))
    return f"{reason} (RDKit: {said})" if said else reason


def as_notes(messages: list[str], name: Callable[[int], str] | None = None) -> list[str]:
    """RDKit warnings on a record that succeeded: kept in its notes, not lost on stderr
    (``name``: ``one_based``)."""
    return [f"RDKit: {m}" for m in _readable(messages, name)]


def first_line(error: Exception) -> str:
    """RDKit invariant violations carry a stack trace; their first line says what failed."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


_WAKEUP_PIPE: "tuple[int, int] | None" = None  # (read, write), made once a process


def _wakeup_pipe() -> int | None:
    """The read end of a pipe made Python's signal wakeup file (`_SigintWatch`), emptied of
    what signals wrote before; None (nothing set) where another wakeup file is set, an event
    loop's (asyncio's), which is put back."""
    global _WAKEUP_PIPE
    if _WAKEUP_PIPE is None:
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)  # Python's handler never blocks on a full pipe
        _WAKEUP_PIPE = (read, write)
    previous = signal.set_wakeup_fd(_WAKEUP_PIPE[1], warn_on_full_buffer=False)
    if previous != -1:
        signal.set_wakeup_fd(previous)
        return None
    _read_wakeup(_WAKEUP_PIPE[0], 0)
    return _WAKEUP_PIPE[0]


def _read_wakeup(read: int, wait_s: float) -> bytes:
    """What the wakeup pipe holds (a byte per signal, its number), waiting up to `wait_s`."""
    if not select.select([read], [], [], wait_s)[0]:
        return b""
    try:
        return os.read(read, 4096)
    except BlockingIOError:
        return b""


def _forget_wakeup_pipe() -> None:  # a forked child makes its own: a shared one read the parent's signals
    global _WAKEUP_PIPE
    if _WAKEUP_PIPE is not None:
        for fd in _WAKEUP_PIPE:
            os.close(fd)
        _WAKEUP_PIPE = None


os.register_at_fork(after_in_child=_forget_wakeup_pipe)
