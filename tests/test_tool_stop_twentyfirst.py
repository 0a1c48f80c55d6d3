"""SIGTERM stops an RDKit step as Ctrl-C does (twenty-first round). RDKit's long steps
(conformer embedding, bond orders, CIP labels) take SIGINT themselves and stop at their next
check, but SIGTERM, which the tools take as Ctrl-C (`usage.sigterm_as_interrupt`), reached
Python's handler only once the step returned: `kill` or a scheduler's SIGTERM during the
embedding of a long chain ended deepmolm-fingerprint when that embedding call ended. Now the
step's watcher (`molecule.errors._SigintWatch`) reads the signal from Python's wakeup file and
sets RDKit's flag, and the KeyboardInterrupt comes once the step is over (raised inside it,
it came out of RDKit's log call as a SystemError)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

ENTRY = "import sys; from deepmolm_plugin import entry_points; sys.exit(entry_points.fingerprint())"

# A step that signals its own process and then waits, outside Python's bytecode as RDKit's C++
# does (sleep releases the GIL), for RDKit's flag: set by the watcher, or never.
STEP = textwrap.dedent("""
    import os, signal, time
    from deepmolm_plugin import usage
    from deepmolm_plugin.molecule import errors

    usage.sigterm_as_interrupt()
    flag = errors._rdkit_got_signal()
    seen = []

    def step():
        os.kill(os.getpid(), signal.{signal})
        for _ in range(500):
            if flag.value:
                seen.append("rdkit flag set")
                break
            time.sleep(0.01)
        return -1

    try:
        errors.rdkit_step(step, [])
    except KeyboardInterrupt:
        print("KeyboardInterrupt;", *seen or ["rdkit flag never set"], "; flag now", flag.value)
""")


def _run_step(signum: str) -> str:
    done = subprocess.run([sys.executable, "-c", STEP.replace("{signal}", signum)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_sigterm_inside_an_rdkit_step_sets_rdkits_flag():
    # was: the KeyboardInterrupt raised at once inside the step (C++ there: only once it returned)
    assert _run_step("SIGTERM") == "KeyboardInterrupt; rdkit flag set ; flag now False"


def test_the_sigterm_watch_leaves_python_code_interruptible_by_ctrl_c():
    # Ctrl-C in Python code inside the step: Python's own handler, at once, as before
    assert _run_step("SIGINT") == "KeyboardInterrupt; rdkit flag never set ; flag now False"


def test_sigterm_during_a_long_embedding_ends_the_tool_with_its_line(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", ENTRY, "--smiles", "C" * 150, "--embed-timeout", "none",
                                "--out", str(tmp_path / "fp.jsonl")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    try:
        seen = b""
        while b"fingerprint:" not in seen:  # the progress bar: reading the first record
            byte = process.stderr.read(1)
            assert byte, seen.decode(errors="replace")
            seen += byte
        time.sleep(3)  # inside EmbedMolecule
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=280)
    finally:
        watchdog.cancel()
    err = (seen + rest).decode(errors="replace")
    assert process.returncode == 130, err
    assert "deepmolm-fingerprint: interrupted after 0 records" in err
    assert "Traceback" not in err and "SystemError" not in err  # the first try raised inside RDKit's log call
