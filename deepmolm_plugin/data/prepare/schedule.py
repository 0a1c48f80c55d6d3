"""The run itself: read the input through its format's reader, cut it into chunks, skip the
committed ones and compute the rest on a process pool, committing strictly in input order.
This is where the reader, the workers (`items`) and the output folder (`output`) meet."""

from __future__ import annotations

import importlib
import itertools
import multiprocessing
import operator
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Tuple

from tqdm import tqdm

from ..sidecar import dtype_for
from ..sources.base import READERS, check_options
from . import items as items_module
from .common import PrepareError
from .items import Made, WorkSettings, _init_worker, _work
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
    file) become one clear PrepareError naming the format and the position reached."""
    position = 0
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except (ValueError, OSError) as e:
            raise PrepareError(f"--format {fmt} reader stopped after {position} items: {e}") from e
        position += 1
        yield item


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
    bound on memory). With no pool, tasks run here, at once.
    """

    def __init__(self, pool, workers: int, ahead: int, commit, progress):
        self.pool, self.workers, self.ahead = pool, workers, ahead
        self.commit, self.progress = commit, progress
        self.pending: Dict[object, Tuple[_Open, int]] = {}  # future -> (chunk, slot)
        self.open: deque = deque()

    def add(self, chunk: _Open, tasks: List[list]) -> None:
        self.open.append(chunk)
        for k, task in enumerate(tasks):
            if self.pool is None:
                self._fill(chunk, k, _work(task))
                continue
            while len(self.pending) >= 2 * self.workers or (
                    len(self.open) > 1 and sum(ch.size for ch in self.open) > self.ahead):
                self._harvest(block=True)
            self.pending[self.pool.submit(_work, task)] = (chunk, k)
        self._harvest(block=False)

    def finish(self) -> None:
        while self.open:
            self._harvest(block=True)

    def _fill(self, chunk: _Open, k: int, part: list) -> None:
        chunk.parts[k] = part
        chunk.waiting -= 1
        self.progress.update(len(part))

    def _harvest(self, block: bool) -> None:
        if block and self.pending:
            wait(self.pending, return_when=FIRST_COMPLETED)
        for future in [f for f in self.pending if f.done()]:
            chunk, k = self.pending.pop(future)
            self._fill(chunk, k, future.result())
        while self.open and self.open[0].waiting == 0:
            chunk = self.open.popleft()
            self.commit(chunk.c, chunk.first, [made for part in chunk.parts for made in part])


def compute(args, out: Output, state: dict, shard: Tuple[int, int]) -> Tuple[int, int, int]:
    """Compute and commit this shard's uncommitted chunks. Returns (chunks seen in the
    input, chunks computed now, items computed now)."""
    reader = load_reader(args.format)
    settings = state["settings"]
    raw = reader(settings["input"], dict(settings["reader_options"]))
    items = checked_reader(args.format, raw)
    if settings["limit"] is not None:
        items = itertools.islice(items, settings["limit"])
    work = WorkSettings(out=str(out.root), tmp=str(out.tmp), input_root=str(input_root(Path(settings["input"]))),
                        policy=settings["conformer_policy"], image_size=settings["image_size"],
                        bits=settings["fp_bits"], levels=settings["fp_levels"], max_atoms=settings["max_atoms"],
                        embed_timeout=settings["embed_timeout"])
    done = out.committed()
    dtype = dtype_for(work.bits)
    task_size = max(1, min(16, args.chunk_size // (2 * args.workers)))
    pool = None
    if args.workers > 1:
        # A process pool that fails loudly (BrokenProcessPool) if a worker dies, e.g. out of
        # memory, where multiprocessing.Pool would wait forever; the run is then resumable.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        pool = ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context(method),
                                   initializer=_init_worker, initargs=(work,))
        pool.submit(int).result()  # start the workers now, before the progress bar's thread
    else:
        _init_worker(work, pool_worker=False)
    total = operator.length_hint(raw, 0) or None
    if total is not None and settings["limit"] is not None:
        total = min(total, settings["limit"])
    tty = sys.stderr.isatty()  # in a batch job's log, a line every 30 s rather than a stream of \r
    progress = tqdm(total=total, unit="item", desc="prepare", mininterval=1.0 if tty else 30.0,
                    disable=args.no_progress, file=sys.stderr, dynamic_ncols=tty)
    counts = {"chunks": 0, "items": 0}

    def commit(c: int, first: int, made: List[Made]) -> None:
        out.commit_chunk(c, first, made, work.levels, dtype)
        counts["chunks"] += 1
        counts["items"] += len(made)

    scheduler = Scheduler(pool, args.workers, 8 * args.chunk_size, commit, progress)
    n_chunks = 0
    try:
        for c, first, batch in chunks_of(items, args.chunk_size):
            n_chunks = c + 1
            if c in done:
                progress.update(len(batch))
            if c % shard[1] != shard[0] or c in done:
                continue
            tasks = [batch[i:i + task_size] for i in range(0, len(batch), task_size)]
            scheduler.add(_Open(c, first, len(batch), [None] * len(tasks), len(tasks)), tasks)
        scheduler.finish()
    finally:
        progress.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        else:
            items_module._MAKER.sdf.close()  # set by _init_worker in this process
    return n_chunks, counts["chunks"], counts["items"]


def input_root(path: Path) -> Path:
    """Relative paths in items (images, structure files) are relative to this folder."""
    return path if path.is_dir() else path.parent
