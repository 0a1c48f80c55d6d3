"""bench_molecules' parallel run ends its workers in every path, without a signal a worker can lose.

Was: a multiprocessing.Pool; a normal run ended it by its end-of-work message, but on
Ctrl-C, SIGTERM or an error the `with` block called Pool.terminate, which takes the task
queue's lock and then SIGTERMs every worker: a worker whose Python SIGTERM handler was due
as it blocked on that lock never ran it, and the parent waited in join forever (about one
run in fifty). A worker killed from outside made Pool.map wait forever for its task.
Now (bench_report.pool_map): a ProcessPoolExecutor; a finished run ends its workers by the
executor's end-of-work message; on Ctrl-C or SIGTERM the queued tasks are cancelled and the
workers killed with the task they are on (SIGKILL, which no process can lose; twentieth
round: the run had waited for each worker's task, an ETKDG embedding deaf to signals for up
to a minute per molecule); a dead worker is one line and exit status 1; the workers die with
the parent (an executor's workers, unlike Pool's, never notice it died: they waited for work
forever).

Each run is a child Python (the pool forks, and a fork of a pytest worker with other
tests' threads running once deadlocked), with a `process` that marks when each molecule
starts and ends, by worker pid.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import deepmolm_plugin

SCRIPTS = Path(deepmolm_plugin.__file__).resolve().parents[1] / "scripts"

# argv: scripts folder, marks folder, JSON [[id, seconds], ...]; prints the results' ids and
# the child's processes still alive after the run
_CHILD = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import bench_molecules, bench_report

marks = sys.argv[2]

def slow(item):
    id, seconds = item
    open(os.path.join(marks, f"start-{os.getpid()}-{id}"), "w").close()
    time.sleep(seconds)
    open(os.path.join(marks, f"done-{os.getpid()}-{id}"), "w").close()
    return {"id": id, "error": None}

def children():
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and state not in "ZX":
            found.append(int(entry))
    return found

bench_molecules.process = slow
items = [tuple(pair) for pair in json.loads(sys.argv[3])]
_, results = bench_report.interruptible(bench_molecules.run, items, 2, resumes=False)
print(json.dumps({"ids": [r["id"] for r in results], "children": children()}))
"""

INTERRUPTED = "interrupted: the commands it ran are stopped; no results were written\n"
DIED = ("error: a worker process of the parallel run died (killed from outside, or out of memory?); "
        "no results were written\n")


def _start(tmp_path, items) -> subprocess.Popen:
    marks = tmp_path / "marks"
    marks.mkdir()
    # its own session: a signal to its process group is a terminal's Ctrl-C
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(SCRIPTS), str(marks), json.dumps(items)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _marks(tmp_path, kind: str) -> set:
    return {tuple(name.split("-", 2)[1:]) for name in os.listdir(tmp_path / "marks") if name.startswith(kind + "-")}


def _workers(tmp_path) -> set:
    return {int(pid) for pid, _ in _marks(tmp_path, "start")}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in "ZX"  # a zombie has ended


def _wait_busy(tmp_path, child, timeout: float = 30.0) -> set:
    """The worker pids once both workers are on a molecule."""
    deadline = time.monotonic() + timeout
    while len(_workers(tmp_path)) < 2:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.02)
    return _workers(tmp_path)


def _finish(child, tmp_path, timeout: float = 30.0):
    """(exit status, stdout, stderr); a child still running after `timeout` s hung: it and
    its workers are killed (by pid) and the test fails."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(child.pid, *_workers(tmp_path))
        child.communicate()
        pytest.fail(f"the run did not end within {timeout} s of the interrupt (hung)")
    return child.returncode, out, err


def _kill(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _gone(pids, timeout: float = 10.0) -> list:
    """The pids still alive after `timeout` s (then killed, so that none outlives the test)."""
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if _alive(p)]
    _kill(*left)
    return left


def test_results_keep_the_items_order_and_no_worker_is_left(tmp_path):
    # molecules of different lengths finish out of order on the two workers
    items = [[f"m{k}", 0.01 * ((k * 7) % 5)] for k in range(24)]
    child = _start(tmp_path, items)
    status, out, err = _finish(child, tmp_path)
    assert status == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ids"] == [id for id, _ in items]
    assert result["children"] == []  # every worker ended before run() returned
    assert len(_workers(tmp_path)) == 2 and _marks(tmp_path, "start") == _marks(tmp_path, "done")


@pytest.mark.parametrize("how", ["ctrl-c to the process group", "sigterm to the parent"])
def test_an_interrupt_ends_the_workers_at_once(tmp_path, how):
    items = [[f"m{k}", 5.0] for k in range(8)]  # 2 molecules of 5 s per task: 10 s a task
    child = _start(tmp_path, items)
    workers = _wait_busy(tmp_path, child)
    sent = time.monotonic()
    if how.startswith("ctrl-c"):
        os.killpg(child.pid, signal.SIGINT)  # what a terminal sends: the workers get it too
    else:
        os.kill(child.pid, signal.SIGTERM)  # a job scheduler's
    status, out, err = _finish(child, tmp_path)
    took = time.monotonic() - sent
    assert (status, err) == (130, INTERRUPTED)  # one line, no traceback (of the parent or a worker)
    assert took < 8, f"{took:.1f} s: the run waited for the workers' molecules"  # was ~10 s (their task)
    assert len(_marks(tmp_path, "done")) < len(items)  # the queued tasks were cancelled, not waited for
    assert _gone(workers) == []


def test_a_worker_killed_from_outside_is_one_line_not_a_hang(tmp_path):
    # was: Pool started a new worker and map waited forever for the dead one's task
    items = [[f"m{k}", 0.4] for k in range(40)]
    child = _start(tmp_path, items)
    workers = _wait_busy(tmp_path, child)
    _kill(min(workers))
    status, out, err = _finish(child, tmp_path)
    assert (status, err) == (1, DIED)
    assert _gone(workers) == []


def test_the_workers_die_with_the_parent(tmp_path):
    # an executor's workers hold both ends of their pipes: after a kill -9 of the parent they
    # waited for work forever without die_with_parent (Pool's died writing their result)
    items = [[f"m{k}", 0.4] for k in range(40)]
    child = _start(tmp_path, items)
    workers = _wait_busy(tmp_path, child)
    _kill(child.pid)
    child.communicate()
    assert _gone(workers, timeout=5.0) == []
