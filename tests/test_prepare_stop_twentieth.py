"""Ctrl-C / SIGTERM stop deepmolm-prepare at once, also while a worker embeds a large
molecule (twentieth round). The pool's shutdown waited for the tasks its workers were running,
and ETKDG (RDKit's C++, which checks its time limit only between stages) is deaf to signals:
a SIGTERM during the embedding of a 120-carbon chain ended the run 56 s later. Now a stopping
run kills its workers (`processes.stop_pool`); the molecules they were making are redone when
the run resumes (the existing SIGTERM-and-resume test in test_output_locks.py)."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from deepmolm_plugin.processes import stop_pool

ENTRY = "import sys; from deepmolm_plugin import entry_points; sys.exit(entry_points.prepare())"


def test_stop_pool_does_not_wait_for_a_running_task():
    pool = ProcessPoolExecutor(1)
    running = pool.submit(time.sleep, 120)
    queued = pool.submit(time.sleep, 120)
    while not running.running():
        time.sleep(0.05)
    time.sleep(0.5)  # the worker is inside the sleep
    start = time.monotonic()
    stop_pool(pool)
    assert time.monotonic() - start < 20  # shutdown(wait=True) waited the full 120 s
    assert queued.done() and running.done()  # cancelled, or failed with the broken pool: not run
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def test_sigterm_during_a_long_embedding_ends_the_run_at_once(tmp_path):
    data = tmp_path / "long.csv"
    data.write_text("smiles,y\n" + "".join(f"{'C' * 120}{'O' * k},1.0\n" for k in range(1, 4)))
    argv = [ENTRY, "--format", "csv", "--input", str(data), "--out", str(tmp_path / "out"), "--workers", "1",
            "--label-columns", "y"]
    process = subprocess.Popen([sys.executable, "-c", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               cwd=tmp_path)
    watchdog = threading.Timer(240, process.kill)
    watchdog.start()
    try:
        seen = b""
        while b"prepare:" not in seen:  # the progress bar: the pool runs
            byte = process.stderr.read(1)
            assert byte, seen.decode(errors="replace")
            seen += byte
        time.sleep(4)  # the worker is embedding the first chain (a minute of ETKDG)
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, rest = process.communicate(timeout=200)
        took = time.monotonic() - sent
    finally:
        watchdog.cancel()
    err = (seen + rest).decode(errors="replace")
    assert process.returncode == 130, err
    assert "deepmolm-prepare: interrupted; the chunks committed so far are kept" in err
    assert took < 20, f"{took:.1f} s after SIGTERM"  # was 56 s
