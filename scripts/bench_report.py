"""What every benchmark script writes: the machine it ran on, JSON and a markdown table.

Used by scripts/bench_*.py (imported as a sibling module: `python scripts/bench_x.py`
puts scripts/ on sys.path). Results go to scripts/results/<name>.json and .md; the .md
starts with the machine line that the README quotes next to each table.

Smoke runs (--quick, --tiny, --dry-run) write to SMOKE_RESULTS unless --out-dir names
another folder, and never into scripts/results: the README quotes the files committed
there, which a smoke run's numbers overwrote (`results_folder`).
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, List, NamedTuple, Sequence

from deepmolm_plugin.cores import usable_cores  # the scripts ask bench_report for it
from deepmolm_plugin.result_files import strict_json

RESULTS = Path(__file__).resolve().parent / "results"
# Where a smoke run's files go when no --out-dir is given: outside the repository, so that
# neither the committed results nor `git status` see them.
SMOKE_RESULTS = Path(tempfile.gettempdir()) / "deepmolm-smoke-results"


# --- command-line values, checked by argparse before any work (a benchmark that ran for
# minutes and then failed on its own arguments, or published negative timings, wasted the run)

def at_least(low: int, at_most: "int | None" = None):
    """argparse type: an integer >= `low` (and <= `at_most`)."""
    def parse(text: str) -> int:
        import argparse

        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if at_most is not None and value > at_most:
            raise argparse.ArgumentTypeError(f"must be <= {at_most}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def result_name(text: str) -> str:
    """argparse type: the stem of the result files (<name>.json, <name>.md) inside --out-dir:
    a plain file name (a/b failed after the whole run, ".." left the folder, "" wrote
    hidden files)."""
    import argparse

    if not text or text.startswith(".") or any(c in text for c in "/\\\0"):
        raise argparse.ArgumentTypeError(f"a plain file name (no folder, not starting with '.'), got {text!r}")
    return text


def refuse_repeats(parser, option: str, values: Sequence) -> None:
    """parser.error when a list option names one value twice (two runs of one cell wrote one
    folder side by side; a second dtype row overwrote the first in the summary)."""
    seen = set()
    for v in values:
        if v in seen:
            parser.error(f"{option}: {v} is given twice")
        seen.add(v)


def cores_text(cores: int) -> str:
    return f"this machine has {cores} usable core{'' if cores == 1 else 's'}"


def refuse_more_than_cores(parser, option: str, value: int) -> None:
    """parser.error when `option` asks for more processes than usable cores: they only share
    them, and the report published "64 workers" (or "999 side by side") for 2 cores."""
    cores = usable_cores()
    if value > cores:
        parser.error(f"{option} {value}: {cores_text(cores)}")


def parallel_workers(parser, option: str, given: "int | None", what: str) -> int:
    """The worker processes of a 1-vs-N measurement: `given` (already >= 2 by its argparse
    type), at most the usable cores; by default every usable core, which must be 2 or more.
    argparse checks only a given value, so the default (usable_cores(), 1 on a one-core
    allocation) published "speedup 1.15x on 1 workers"; the refusal names no option the
    user did not give (it said "--workers 2: ..." of a default)."""
    cores = usable_cores()
    if given is None:
        if cores < 2:
            parser.error(f"{cores_text(cores)}: {what} needs 2")
        return cores
    refuse_more_than_cores(parser, option, given)
    return given


def results_folder(parser, option: str, given: "Path | None", smoke: "str | None") -> Path:
    """The folder a run writes its result files to: `given` (--out-dir, already checked by
    `out_dir`), else scripts/results, or SMOKE_RESULTS for a smoke run (`smoke`: the option
    that made it one, "--quick", "--tiny", "--dry-run"). A smoke run is refused
    scripts/results even when named: its numbers replaced the committed ones the README
    quotes (gpu_check --dry-run wrote CPU numbers over the H200 results). The default is
    checked as a given folder is (argparse applies `type` to neither a Path default nor
    the folder chosen here)."""
    folder = given if given is not None else SMOKE_RESULTS if smoke else RESULTS
    if smoke and Path(folder).resolve() == RESULTS.resolve():
        parser.error(f"{option} {folder}: a {smoke} run does not write into scripts/results (the committed "
                     f"results the README quotes); give another folder, or leave {option} out for {SMOKE_RESULTS}")
    if given is None:
        try:
            folder = out_dir(str(folder))
        except Exception as e:  # argparse.ArgumentTypeError: the default folder cannot be written
            parser.error(f"{option} (default {folder}): {e}")
    return Path(folder)


def smoke_mode(args, *options: str) -> "str | None":
    """The first of `options` (e.g. "--quick", "--tiny") given on this command line, or None."""
    return next((o for o in options if getattr(args, o.lstrip("-").replace("-", "_"), False)), None)


def out_dir(text: str) -> Path:
    """argparse type: a results folder that exists or can be made (not a file, writable)."""
    import argparse

    from deepmolm_plugin import usage

    try:
        return usage.output_folder(text, "folder")
    except usage.UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class CsvRow(NamedTuple):
    """A data row of a CSV as the benchmarks read it: `index`, its 0-based row number as
    deepmolm-prepare's csv source counts it (blank lines included: its ids are
    ``<stem>#<index>``); `lines`, where it lies in the file ("line 5", csv_table.line_span);
    `values`, column -> cell (None for a cell the row lacks, as csv.DictReader)."""
    index: int
    lines: str
    values: dict


def csv_rows(parser, option: str, path: Path, columns: Sequence[str] = ("smiles",)) -> List[CsvRow]:
    """The rows of a CSV given as `option`, checked before any work: a header naming each of
    `columns` (any case) and one row at least, else one line and exit 2 (an empty file said
    "no 'smiles' column in None"; a header-only one ran deepmolm-prepare, which failed).
    Each row comes with its place in the file (was: the bare rows, so a failure was named
    by its 0-based data row, "ids.csv#3", where the project's tools name the line)."""
    import csv

    from deepmolm_plugin.csv_table import line_span

    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                parser.error(f"{option} {path}: the file is empty (no header line, so no "
                             f"{', '.join(repr(c) for c in columns)} column)")
            lower = {h.lower(): h for h in header}
            missing = [c for c in columns if c.lower() not in lower]
            if missing:
                parser.error(f"{option} {path}: no {', '.join(repr(c) for c in missing)} column "
                             f"(its columns: {', '.join(header)})")
            ended = reader.line_num  # the line the previous row ended on
            for index, fields in enumerate(reader):
                if fields:  # a blank line is no row, but counts in the index as deepmolm-prepare's
                    values = {h: fields[i] if i < len(fields) else None for i, h in enumerate(header)}
                    rows.append(CsvRow(index, line_span(ended + 1, reader.line_num), values))
                ended = reader.line_num
    except (UnicodeDecodeError, csv.Error) as e:
        parser.error(f"{option} {path}: {e}")
    if not rows:
        parser.error(f"{option} {path}: no molecules (a header line only)")
    return rows


def report_failures(failures: Sequence[dict]) -> None:
    """One line per failed molecule on stderr: "FAILED <id> (<file> line <n>): <reason>",
    the same in every benchmark (the JSON keeps the list)."""
    for failure in failures:
        where = f" ({failure['where']})" if failure.get("where") else ""
        print(f"FAILED {failure['id']}{where}: {failure['error']}", file=sys.stderr)


def input_file(text: str) -> Path:
    """argparse type: an existing file, made absolute (the benchmarks run tools elsewhere)."""
    import argparse

    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: platform's answer below
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where and under which load a benchmark ran (load averages: 1, 5, 15 minutes)."""
    import torch

    info = {
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
    }
    from deepmolm_plugin.dtypes import cpu_has_native_bf16

    info["cpu_native_bf16"] = cpu_has_native_bf16()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def loadavg() -> "list | None":
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def run_ended(m: dict) -> dict:
    """`m` (a `machine()` dict) with the load average now, at the end of the run: what else
    ran beside the benchmark shows only in both (machine_line prints it)."""
    m["load_average_end"] = loadavg()
    return m


def machine_line(m: dict) -> str:
    """"Machine: <cpu> (...); torch ...; load average X at the start[, Y at the end]": the
    line every result's markdown starts with (the end only once `run_ended` recorded it)."""
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    load, end = m.get("load_average"), m.get("load_average_end")
    return (f"Machine: {m['cpu']} ({m['usable_cores']} cores, {m['cpu_capability']}, native bf16: "
            f"{'yes' if m['cpu_native_bf16'] else 'no'}){gpu}; torch {m['torch']}, {m['torch_threads']} threads; "
            f"load average {load[0] if load else '?'} at the start" + (f", {end[0]} at the end" if end else ""))


# --- dtypes: deepmolm_plugin.dtypes.auto_dtype decides, here as in the tools (bf16 where
# the device computes it natively; emulated bf16 on an AVX2-only CPU ran ~10x slower, and
# a GPU without bf16 has none)

def auto_dtype_name(device) -> str:
    """"bfloat16" / "float16" / "float32": what dtype "auto" means on `device`."""
    from deepmolm_plugin.dtypes import auto_dtype

    return str(auto_dtype(device)).replace("torch.", "")


def native_bf16(device) -> bool:
    """Whether `device` computes bf16 natively (auto_dtype picks it there)."""
    return auto_dtype_name(device) == "bfloat16"


def trainer_precision(device) -> List[str]:
    """The launcher's mixed-precision flags on `device`: bf16 where it is native, else fp32
    (no fp16: a from-scratch model in fp16 needs loss scaling, and may not converge)."""
    return ["--bf16", "True"] if native_bf16(device) else []


# --- progress of long units that write their progress to a file, not to the terminal

class progress:
    """Context manager: every `every` seconds, `poll()` (a line or None); printed when it
    changed. For commands whose output goes to a log (a 10-20 min training printed nothing
    until it ended)."""

    def __init__(self, poll: Callable[[], "str | None"], every: float = 30.0):
        self.poll, self.every, self.last = poll, every, None
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                line = self.poll()
            except OSError:  # the file is not there yet, or being replaced
                continue
            if line and line != self.last:
                self.last = line
                print(line, flush=True)

    def __enter__(self) -> "progress":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A markdown table; numbers right-aligned."""
    rows = [list(r) for r in rows]
    align = ["---:" if rows and all(isinstance(r[i], (int, float)) for r in rows) else "---"
             for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(v) for v in r) + " |")
    return "\n".join(lines)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def write(name: str, report: dict, markdown: List[str], out_dir: "str | os.PathLike" = RESULTS) -> List[Path]:
    """scripts/results/<name>.json (every number) and <name>.md (the tables)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(strict_json(report, indent=2) + "\n")  # NaN as null: jq and browsers refuse a bare NaN
    md_path.write_text("\n\n".join(markdown).rstrip() + "\n")
    return [json_path, md_path]


def publish(name: str, report: dict, markdown: List[str], out_dir: "str | os.PathLike" = RESULTS,
            show: bool = True) -> None:
    """Print the tables (all but the first, machine line), write both files, say where,
    and the runtime when the report has one."""
    if show:
        print("\n" + "\n\n".join(markdown[1:]))
    for path in write(name, report, markdown, out_dir):
        print(f"wrote {path}")
    if "runtime_s" in report:
        print(f"runtime {report['runtime_s']:.0f} s")


# --- long runs made of commands: Ctrl-C (or SIGTERM) stops them all, and says so once

# Commands running now (in --jobs threads too): each in its own session, so that on Ctrl-C
# or SIGTERM `stop_commands` ends its whole process tree (a trainer's dataloader workers,
# run_eval.sh's python) and no thread starts another one.
RUNNING: set = set()
STOPPING = {"now": False}


def stop_commands(grace: float = 10.0) -> None:
    """End every running command's session (SIGTERM, then SIGKILL after `grace` s)."""
    STOPPING["now"] = True
    procs = list(RUNNING)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:  # what ignored SIGTERM, and anything left in its session
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_command(cmd: Sequence, **popen) -> subprocess.CompletedProcess:
    """`cmd` to its end in its own session (`popen`: Popen's stdout, stderr, env, text...);
    SystemExit("error: interrupted") once `stop_commands` was called, before or during it."""
    if STOPPING["now"]:
        raise SystemExit("error: interrupted")
    proc = subprocess.Popen([str(c) for c in cmd], start_new_session=True, **popen)
    RUNNING.add(proc)
    try:
        stdout, stderr = proc.communicate()
    finally:
        RUNNING.discard(proc)
    if STOPPING["now"]:
        raise SystemExit("error: interrupted")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


class NotStarted(Exception):
    """A queued unit of `run_jobs` that was not started: another unit failed or was
    interrupted first (the caller sees that unit's error, which was submitted earlier)."""


def run_jobs(work: Callable, units: Sequence, jobs: int) -> dict:
    """{unit: work(*unit)} for every unit, `jobs` at a time in threads. On Ctrl-C the queued
    units never start (leaving a ThreadPoolExecutor's `with` block waited for every one of
    them, each minutes of training) and the running commands are stopped; when a unit fails,
    no new one starts and the running ones finish (a rerun reuses them)."""
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()

    def guarded(*unit):
        # A unit that failed or was interrupted stops the queue in its own thread: that thread
        # takes the next unit the moment this one returns, before the main thread can cancel
        # it (was: only Ctrl-C set this flag, so after a failure with --jobs 1 one more whole
        # training ran and was waited for before the error was shown).
        if stop.is_set():
            raise NotStarted(f"not started: an earlier unit failed or was interrupted ({unit})")
        try:
            return work(*unit)
        except BaseException:
            stop.set()
            raise

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {unit: pool.submit(guarded, *unit) for unit in units}
        done = {unit: future.result() for unit, future in futures.items()}
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_commands()
        pool.shutdown(wait=True)
        raise
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return done


def pool_worker_signals() -> None:
    """ProcessPoolExecutor initializer (`pool_map`): Ctrl-C is the parent's, and SIGTERM
    kills the worker at once (SIG_DFL, no Python handler). The parent ends its workers with
    the executor's end-of-work message, never a signal (was: multiprocessing.Pool.terminate
    signalled them, and a worker whose Python SIGTERM handler was due as it blocked on the
    task queue's lock never ran it: the parent waited in join forever, ~1 run in 50).
    SIGTERM still comes from outside (a job scheduler's to the process group: the parent
    gets it too) and from the executor itself, which terminates the other workers once one
    died; SIG_IGN there left them waiting for work and the parent in shutdown forever. The
    kernel's default action needs no lock, and the executor never waits for a lock a
    worker holds. A forked worker inherited `interruptible`'s handler, which raised
    KeyboardInterrupt with a traceback in every worker; Ctrl-C reached every worker too.
    die_with_parent: after a kill -9 of the parent its workers waited for work forever."""
    from deepmolm_plugin.processes import die_with_parent

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pool_map(function: Callable, items: Sequence, workers: int, chunksize: int) -> list:
    """[function(item) for item in items], in that order, on `workers` forked processes,
    which are ended by the executor's end-of-work message after the last result, and on
    Ctrl-C, SIGTERM or an error killed with the tasks they are on (`processes.stop_pool`:
    SIGKILL, which no worker can lose, where Pool.terminate's SIGTERM could be lost; was: the
    run waited for each worker's task, an ETKDG embedding deaf to signals for up to a
    minute). A worker that died (killed from outside, the OOM killer) is one line and exit
    status 1, not a traceback (the executor raises BrokenProcessPool where
    multiprocessing.Pool waited forever)."""
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    from deepmolm_plugin.processes import start_pool, stop_pool

    try:
        # forked while Ctrl-C / SIGTERM are held (a worker forked as one came inherits what
        # pool_worker_signals sets: SIGINT ignored, SIGTERM the default action)
        pool = start_pool(workers, multiprocessing.get_context("fork"), pool_worker_signals)
        try:
            results = list(pool.map(function, items, chunksize=chunksize))
        except BaseException:
            stop_pool(pool)
            raise
        pool.shutdown(wait=True)
        return results
    except BrokenProcessPool:
        raise SystemExit("error: a worker process of the parallel run died (killed from outside, or out "
                         "of memory?); no results were written") from None


def interruptible(body: Callable, *args, resumes: bool = True):
    """`body(*args)`, where Ctrl-C or SIGTERM (a job scheduler) stops the commands it runs
    and ends the script with one line and exit status 130, not a traceback (`resumes`:
    whether a rerun goes on from where it stopped, or starts again)."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return body(*args)
    except KeyboardInterrupt:
        stop_commands()
        then = "rerun the same command to resume" if resumes else "no results were written"
        print(f"interrupted: the commands it ran are stopped; {then}", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
