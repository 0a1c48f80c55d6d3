"""The run itself: read the input through its format's reader, cut it into chunks, skip the
committed ones and compute the rest on a process pool, committing strictly in input order.
This is where the reader, the workers (`items`) and the output folder (`output`) meet."""

from __future__ import annotations

import functools
import importlib
import itertools
import multiprocessing
import operator
import signal
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import connection
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from tqdm import tqdm

from ... import processes
from ...cores import usable_cores
from ...molecule.inputs import OutputWriteError
from ...molecule.sidecar import dtype_for
from ..sources.base import READERS, SourceError, SourceItem, check_options, id_problem
from .common import PrepareError
from .items import Made, WorkSettings, _init_worker, _work, _work_alone, molecule_key
from .output import Output

FORMAT_MODULES = {
    "3d-moit": "deepmolm_plugin.data.sources.moit",
    "vis-chebi20": "deepmolm_plugin.data.sources.vis_chebi20",
    "chebi20-mm": "deepmolm_plugin.data.sources.chebi20_mm",
    "chebi20": "deepmolm_plugin.data.sources.chebi20",
    "csv": "deepmolm_plugin.data.sources.csv_source",
    "sdf": "deepmolm_plugin.data.sources.sdf_source",
}


def load_reader(fmt: str):
    if fmt not in READERS and fmt in FORMAT_MODULES:
        module = FORMAT_MODULES[fmt]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise  # a missing dependency of the reader: its own message says which
            raise PrepareError(f"--format {fmt}: its reader module {module} is not installed") from e
    if fmt not in READERS:
        raise PrepareError(f"--format {fmt}: no reader registered under that name")
    return READERS[fmt]


def check_reader_options(fmt: str, options: dict) -> None:
    """Refuse options the format's reader does not take (a typo such as ``splt``) before
    the run creates or changes anything in --out; the message lists the valid ones."""
    load_reader(fmt)
    try:
        check_options(fmt, options)
    except ValueError as e:
        raise PrepareError(f"--format {e}") from e


def checked_reader(fmt: str, items: Iterable) -> Iterator:
    """The reader's items; its configuration and I/O errors (a missing column, a missing
    file) become one clear PrepareError naming the format, and the position reached when
    the reader had yielded items. One raised before the first item (the header, the
    options read with it) is worded as the reader's option errors are
    (`check_reader_options`): "reader stopped after 0 items" framed a usage error as a read
    that broke off."""
    position = 0
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except (ValueError, OSError) as e:
            if position:
                raise PrepareError(f"--format {fmt} reader stopped after {position} items: {e}") from e
            said = str(e)  # the readers' messages start with the format's name, as "csv: ..."
            raise PrepareError(f"--format {said}" if said.startswith(f"{fmt}: ") else f"--format {fmt}: {said}") from e
        position += 1
        yield item


def usable_ids(items: Iterable) -> Iterator:
    """The items, where one whose id is blank, has white space around it or holds a control
    character is that item's failure (stage ``id``), whichever reader made it: a CSV id cell
    or an SDF field over two lines gave records that evaluation refused as questions."""
    for item in items:
        problem = id_problem(item.id) if isinstance(item, SourceItem) and isinstance(item.id, str) else None
        yield SourceError(item.id, "id", problem) if problem else item


def one_spelling_per_split(items: Iterable) -> Iterator:
    """The items, where one that spells an earlier split in other case (``Train`` after
    ``train``) is that item's failure: Train.json and train.json (and their sidecars) are
    one file on a case-insensitive file system (macOS, Windows), where one split's records
    would silently replace the other's or point into its sidecar. The first spelling in
    input order wins, so every shard and resume decides alike."""
    first: Dict[str, str] = {}
    for item in items:
        if isinstance(item, SourceItem) and isinstance(item.split, str):
            known = first.setdefault(item.split.lower(), item.split)
            if known != item.split:
                item = SourceError(item.id, "split", f"split {item.split!r} differs only by case from the split "
                                                     f"{known!r} met earlier (their files would collide on a "
                                                     "case-insensitive file system): spell it one way")
        yield item


def usable_workers(requested: int) -> int:
    """--workers, at most the cores this process may run on: each worker imports the
    chemistry and torch stack when it starts, so 16 workers on 2 cores took 61 s before
    the first of 2 records was made (1 worker: 3 s); the output is the same either way."""
    cores = usable_cores()
    if requested > cores:
        print(f"deepmolm-prepare: --workers {requested} > {cores} usable cores: using {cores}", file=sys.stderr)
    return min(requested, cores)


# Items per task handed to a worker. Small tasks keep both workers busy to the end of the
# run (with 16-item tasks one worker idled for up to 16 molecules, ~5 s at 1024 px, while
# the other finished); a task costs ~1 ms of pickling and pipe traffic against ~0.1-0.5 s
# of conformer, fingerprint and depiction per molecule.
TASK_ITEMS = 2


def molecule_tasks(batch: list, size: int) -> List[list]:
    """Consecutive items in tasks of at least `size` items (the last one may be smaller),
    never splitting a run of items about one molecule: a CSV row with 12 labels is 12
    items, and the worker that gets them all computes that molecule's conformer, tokens
    and depiction once (its per-process cache), instead of each worker doing it again."""
    tasks: List[list] = []
    current: list = []
    previous = None
    for item in batch:
        key = _group_key(item)
        if len(current) >= size and key != previous:
            tasks.append(current)
            current = []
        current.append(item)
        previous = key
    if current:
        tasks.append(current)
    return tasks


def _group_key(item) -> tuple:
    """Which molecule an item is about; an item that cannot say (a reader's failure line,
    malformed atoms) stands alone, and its worker reports why it fails."""
    if not isinstance(item, SourceItem):
        return ("alone", id(item))
    try:
        return molecule_key(item.molecule)
    except (TypeError, ValueError, AttributeError):  # the worker's make() turns these into its failure line
        return ("alone", id(item))


def chunks_of(items: Iterable, size: int) -> Iterator[Tuple[int, int, list]]:
    """(chunk number, position of its first item, its items) in input order."""
    iterator = iter(items)
    for c in itertools.count():
        batch = list(itertools.islice(iterator, size))
        if not batch:
            return
        yield c, c * size, batch


@dataclass
class _Open:
    """A chunk being computed: one result slot per task, filled in any order."""

    c: int
    first: int
    size: int
    parts: list
    waiting: int


class Scheduler:
    """Tasks run on the pool in any order; chunks are committed strictly in input order.

    Workers never wait for the oldest task: a slow molecule holds back only the commit of
    its own chunk, while the others go on computing up to `ahead` items beyond it (a
    bound on memory).

    A worker that dies (a segfault in a library, the kernel's OOM killer) breaks the whole
    pool, and the pool cannot say which task killed it. So every task that was on it and
    has no result is redone one record per fresh process (`isolate`); the record that
    kills its process again becomes a failure line (stage ``worker``) inside its chunk, so
    the chunk commits and a resume never meets that crash again. Then a new pool
    (`restart`) takes the remaining tasks.
    """

    def __init__(self, pool, workers: int, ahead: int, commit, progress, restart=None, isolate=None):
        self.pool, self.workers, self.ahead = pool, workers, ahead
        self.commit, self.progress = commit, progress
        self.restart, self.isolate = restart, isolate
        self.pending: Dict[object, Tuple[_Open, int, list]] = {}  # future -> (chunk, slot, task)
        self.open: deque = deque()

    def add(self, chunk: _Open, tasks: List[list]) -> None:
        self.open.append(chunk)
        for k, task in enumerate(tasks):
            while len(self.pending) >= 2 * self.workers or (
                    len(self.open) > 1 and sum(ch.size for ch in self.open) > self.ahead):
                self._harvest(block=True)
            self.pending[self._submit(task)] = (chunk, k, task)
        self._harvest(block=False)

    def finish(self) -> None:
        while self.open:
            self._harvest(block=True)

    def _submit(self, task: list) -> Future:
        try:
            return self.pool.submit(_work, task)
        except BrokenProcessPool as e:  # broke since the last harvest: that task is redone too
            future: Future = Future()
            future.set_exception(e)
            return future

    def _fill(self, chunk: _Open, k: int, part: list) -> None:
        chunk.parts[k] = part
        chunk.waiting -= 1
        self.progress.update(len(part))

    def _harvest(self, block: bool) -> None:
        if block and self.pending:
            wait(self.pending, return_when=FIRST_COMPLETED)
        broken, unwritable = self._collect([f for f in self.pending if f.done()])
        if broken and unwritable is None:
            self._recover(broken)
        while self.open and self.open[0].waiting == 0:
            chunk = self.open.popleft()
            self.commit(chunk.c, chunk.first, [made for part in chunk.parts for made in part])
        if unwritable is not None:
            raise unwritable

    def _collect(self, futures: list) -> Tuple[list, Optional[OutputWriteError]]:
        """Fill the slots of finished futures; returns the tasks a dead worker took along, and
        the first OutputWriteError a task raised (--out cannot be written: the run stops once
        the chunks finished before it are committed; was: those were computed and lost when
        the error came in the same harvest)."""
        broken, unwritable = [], None
        for future in futures:
            chunk, k, task = self.pending.pop(future)
            try:
                part = future.result()
            except BrokenProcessPool:
                broken.append((chunk, k, task))
                continue
            except OutputWriteError as e:
                unwritable = unwritable or e
                continue
            self._fill(chunk, k, part)
        return broken, unwritable

    def _recover(self, broken: list) -> None:
        if self.isolate is None or self.restart is None:
            raise PrepareError("a worker process died and this scheduler cannot redo its tasks")
        wait(self.pending)  # a broken pool fails every task it still had at once
        more, unwritable = self._collect(list(self.pending))
        if unwritable is not None:
            raise unwritable
        broken += more
        self.pool.shutdown(wait=True, cancel_futures=True)
        made = iter(self.isolate([item for _, _, task in broken for item in task]))
        for chunk, k, task in broken:
            self._fill(chunk, k, [next(made) for _ in task])
        self.pool = self.restart()

    def close(self, abandon: bool = False) -> None:
        """Shut the pool down; `abandon` (the run is stopping: Ctrl-C, SIGTERM, an error): its
        running tasks' results are not waited for (`processes.stop_pool`)."""
        if abandon:
            processes.stop_pool(self.pool)
        else:
            self.pool.shutdown(wait=True, cancel_futures=True)


def isolated(context, settings: WorkSettings, workers: int, items: list) -> List[Made]:
    """Each of `items` in a fresh process of its own, `workers` at a time: an item
    whose process dies twice is that item's failure (stage ``worker``, naming the signal or
    exit code), and takes nothing else with it. The second try is for a kill from outside
    (another job's OOM kill, a user's kill -9): one such kill made a good molecule a
    failure the output keeps. Slow (a process per item), so used only for the tasks of a
    pool that broke."""
    results: List[Optional[Made]] = [None] * len(items)
    waiting = deque((k, item, 1) for k, item in enumerate(items))
    running: Dict[object, tuple] = {}  # receiving end of the pipe -> (slot, item, try, process)
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                k, item, attempt = waiting.popleft()
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=_work_alone, args=(send, settings, item), daemon=True)
                process.start()
                send.close()  # ours: so that the child's death reads as end of file
                running[receive] = (k, item, attempt, process)
            for receive in connection.wait(list(running)):
                k, item, attempt, process = running.pop(receive)
                made = _outcome(receive, item, process)
                if made.failure is not None and made.failure["stage"] == "worker" and attempt < 2:
                    waiting.append((k, item, attempt + 1))
                else:
                    results[k] = made
    finally:
        for receive, (_, _, _, process) in running.items():  # only after an error: stop the rest
            process.kill()
            process.join()
            receive.close()
    return results


def _outcome(receive, item, process) -> Made:
    """What one isolated process sent back: its record or failure, or - if it died before
    sending - a ``worker`` failure for its item; an exception it sent is raised here."""
    try:
        kind, value = receive.recv()
    except EOFError:
        kind, value = "died", None
    finally:
        receive.close()
    process.join()
    if kind == "error":
        raise value
    if kind == "made":
        return value
    code = process.exitcode
    how = f"was killed by signal {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
    return Made(failure={"id": str(getattr(item, "id", "?")), "stage": "worker",
                         "reason": f"the process making this record {how} (also twice when it ran alone)"})


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def compute(args, out: Output, state: dict, shard: Tuple[int, int]) -> Tuple[int, int, int]:
    """Compute and commit this shard's uncommitted chunks. Returns (chunks seen in the
    input, chunks computed now, items computed now)."""
    reader = load_reader(args.format)
    settings = state["settings"]
    raw = reader(settings["input"], dict(settings["reader_options"]))
    items = one_spelling_per_split(usable_ids(checked_reader(args.format, raw)))
    if settings["limit"] is not None:
        items = itertools.islice(items, settings["limit"])
    work = WorkSettings(out=str(out.root), tmp=str(out.tmp), input_root=str(input_root(Path(settings["input"]))),
                        policy=settings["conformer_policy"], image_size=settings["image_size"],
                        bits=settings["fp_bits"], levels=settings["fp_levels"], max_atoms=settings["max_atoms"],
                        embed_timeout=settings["embed_timeout"])
    done = out.committed()
    dtype = dtype_for(work.bits)
    # Records are made in worker processes even with --workers 1: a record that crashes its
    # process (segfault, OOM kill) must not take the run down with it (see `Scheduler`).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    context = multiprocessing.get_context(method)
    workers = usable_workers(args.workers)
    restart = functools.partial(start_pool, context, work, workers)
    isolate = functools.partial(isolated, context, work, workers)
    total = operator.length_hint(raw, 0) or None
    if total is not None and settings["limit"] is not None:
        total = min(total, settings["limit"])
    tty = sys.stderr.isatty()  # in a batch job's log, a line every 30 s rather than a stream of \r
    counts = {"chunks": 0, "items": 0}

    def commit(c: int, first: int, made: List[Made]) -> None:
        out.commit_chunk(c, first, made, work.levels, dtype)
        counts["chunks"] += 1
        counts["items"] += len(made)

    n_chunks = 0
    progress = scheduler = None
    finished = False
    # the workers start now, before the progress bar's thread; the `try` follows at once, so
    # an interrupt after this line shuts the pool down (`start_pool` does it for one during)
    pool = restart()
    try:  # the bar made inside: a Ctrl-C / SIGTERM right after its first line left it open, and its
        # last line came after the interrupt line, at exit
        progress = tqdm(total=total, unit="item", desc="prepare", mininterval=1.0 if tty else 30.0,
                        disable=args.no_progress, file=sys.stderr, dynamic_ncols=tty)
        scheduler = Scheduler(pool, workers, 8 * args.chunk_size, commit, progress, restart, isolate)
        for c, first, batch in chunks_of(items, args.chunk_size):
            n_chunks = c + 1
            if c in done:
                progress.update(len(batch))
            if c % shard[1] != shard[0] or c in done:
                continue
            tasks = molecule_tasks(batch, TASK_ITEMS)
            scheduler.add(_Open(c, first, len(batch), [None] * len(tasks), len(tasks)), tasks)
        scheduler.finish()
        finished = True
    finally:
        if progress is not None:
            progress.close()
        if scheduler is not None:
            scheduler.close(abandon=not finished)  # stopping: the molecules running are redone on resume
        else:
            processes.stop_pool(pool)
    return n_chunks, counts["chunks"], counts["items"]


def start_pool(context, settings: WorkSettings, workers: int) -> ProcessPoolExecutor:
    """The workers' pool (`processes.start_pool`: running when it returns, a Ctrl-C while it
    starts not lost, loud when a worker dies)."""
    try:
        return processes.start_pool(workers, context, _init_worker, (settings,))
    except BrokenProcessPool:  # a worker killed while starting: a traceback before
        raise PrepareError("a worker process died while the worker pool started (killed from outside?); "
                           "the chunks committed so far are kept: rerun the same command to resume") from None


def input_root(path: Path) -> Path:
    """Relative paths in items (images, structure files) are relative to this folder."""
    return path if path.is_dir() else path.parent
