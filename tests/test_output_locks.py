"""One writer per output, SIGTERM and a full disk in the batch tools.

What was wrong -> what happens now:

- Two runs on one output at once corrupted each other and both exited 0: deepmolm-kflm2
  `--overwrite` deleted the seeds of the run beside it (config.json of one run, results.json
  of the other); two deepmolm-fingerprint runs left one file of both runs' lines and NUL
  bytes; a deepmolm-render run deleted the pictures of the run writing the folder, which
  then stopped with a misleading "No such file or directory". -> Each holds a lock on its
  output (`deepmolm_plugin.output_lock`, the mechanics deepmolm-prepare's lock is made of):
  a second run is refused in one line naming the holder's pid, exit 2, before anything is
  deleted or written; a finished run leaves no lock file, and a killed holder's lock (the
  kernel drops it) blocks nothing.
- SIGTERM (SLURM, `kill`) ended deepmolm-kflm2, -fingerprint, -render and -prepare silently
  with 143. -> It takes each tool's Ctrl-C path: one line, exit 130, what was finished kept
  (prepare: in the parent only; its forked workers keep the default SIGTERM).
- deepmolm-kflm2 on a full disk was a 30-line chained traceback. -> One line naming the file
  and the reason, exit 1, as the other tools say it; nothing half-written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from deepmolm_plugin.molecule import tools
from deepmolm_plugin.property import cli as kcli

from test_hostile_kflm2 import FORTY, _run
from test_hostile_property_images import _csv
from test_prepare_hardening import HOLD  # another run holding a lock file, whoever took it

pytestmark = pytest.mark.usefixtures("one_torch_thread", "sigterm_restored")


# a console script's entry (deepmolm_plugin.entry_points) with the given arguments
ENTRY = "import sys; from deepmolm_plugin import entry_points; sys.exit(entry_points.{}())"


@pytest.fixture
def sigterm_restored():
    """The tools' main() installs a SIGTERM handler (usage.sigterm_as_interrupt): not kept
    in the test process after the test."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def _code(main, argv) -> int:
    """A tool's exit status, returned or raised (usage.fail)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:
        return e.code


# each tool: (its name, run it on `out` -> exit status, its output and lock file for `tmp`)
def _kflm2(tmp: Path, out: Path) -> int:
    data = tmp / "data.csv"
    if not data.exists():
        _csv(data, ["smiles", "y"], [(s, i % 7) for i, s in enumerate(FORTY)])
    return _code(kcli.main, _run(data, out))


def _fingerprint(tmp: Path, out: Path) -> int:
    return _code(tools.fingerprint_main, ["--smiles", "CCO", "c1ccccc1", "--out", out, "--no-progress"])


def _render(tmp: Path, out: Path) -> int:
    return _code(tools.render_main, ["--smiles", "CCO", "c1ccccc1", "--out", out, "--size", "64", "--no-progress"])


TOOLS = {
    "deepmolm-kflm2": (_kflm2, lambda tmp: tmp / "run", lambda out: out / ".lock"),
    "deepmolm-fingerprint": (_fingerprint, lambda tmp: tmp / "fp.jsonl", lambda out: out.with_name("fp.jsonl.lock")),
    "deepmolm-render": (_render, lambda tmp: tmp / "pictures", lambda out: out / ".lock"),
}


def _snapshot(path: Path) -> dict:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and p.name != ".lock"]
    return {p: p.read_bytes() for p in files}


@pytest.mark.parametrize("ends", ["exits", "is killed"])
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_second_run_on_a_held_output_is_refused_naming_the_holder(tool, ends, tmp_path, capsys):
    run, output, lock_of = TOOLS[tool]
    out = output(tmp_path)
    assert run(tmp_path, out) == 0  # an earlier run's output, which the refused run must not touch
    assert not lock_of(out).exists()  # released after a normal run: no lock file left
    before = _snapshot(out)
    capsys.readouterr()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_of(out))], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert run(tmp_path, out) == 2
        err = capsys.readouterr().err
        assert f"{tool}: error: another {tool} is writing {out} (pid {holder.pid})\n" == err
        assert _snapshot(out) == before  # nothing deleted, emptied or written
    finally:
        if ends == "exits":
            holder.communicate("")
        else:  # the kernel drops a dead process's flock: its lock file stays, locking nothing
            holder.kill()
            holder.communicate()
    assert run(tmp_path, out) == 0
    assert not lock_of(out).exists()


@pytest.mark.parametrize("main", [tools.fingerprint_main, tools.render_main])
def test_a_failures_file_another_run_writes_is_refused_and_both_locks_let_go(main, tmp_path, capsys):
    # 2026-12-06: two runs with their own --out and one --failures file interleaved their failure lines
    failures = tmp_path / "failed.jsonl"
    out = tmp_path / ("fp.jsonl" if main is tools.fingerprint_main else "pictures")
    argv = ["--smiles", "CCO", "C1CC", "--out", out, "--failures", failures, "--no-progress"]
    if main is tools.render_main:
        argv += ["--size", "64"]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(failures) + ".lock"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert _code(main, argv) == 2
        assert f"is writing {failures} (pid {holder.pid})" in capsys.readouterr().err
        assert not failures.exists() and not (out.with_name("fp.jsonl.lock") if out.suffix else out / ".lock").exists()
    finally:
        holder.communicate("")
    assert _code(main, argv) == 1  # one record failed: written to --failures, both locks let go
    assert "C1CC" in failures.read_text() and not Path(str(failures) + ".lock").exists()


def _await(stream, marker: bytes) -> bytes:
    """What `stream` gives up to and including `marker` (a line the tool prints once its work runs)."""
    seen = b""
    while marker not in seen:
        byte = stream.read(1)
        assert byte, f"ended before {marker!r}: {seen.decode(errors='replace')}"
        seen += byte
    return seen


def _terminated(command: list, marker: bytes, cwd: Path) -> tuple[int, str]:
    """Start a console script, await `marker` on its stderr, send SIGTERM: (status, stderr)."""
    process = subprocess.Popen([sys.executable, "-c", *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               cwd=cwd)
    watchdog = threading.Timer(240, process.kill)  # a tool stuck before its marker fails the test, not hangs it
    watchdog.start()
    try:
        seen = _await(process.stderr, marker)
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        watchdog.cancel()
    process.send_signal(signal.SIGTERM)
    try:
        _, rest = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:  # it did not stop: killed, and the test fails on its status
        process.kill()
        _, rest = process.communicate()
    return process.wait(), (seen + rest).decode(errors="replace")


def test_sigterm_stops_deepmolm_fingerprint_as_ctrl_c_does(tmp_path):
    # the first record fails (its FAILED line says the work runs), thousands follow
    out = tmp_path / "fp.jsonl"
    code, err = _terminated([ENTRY.format("fingerprint"), "--smiles", "C1CC", *["CCO"] * 3000, "--out", str(out),
                             "--no-progress"], b"FAILED", tmp_path)
    assert code == 130, err
    assert err.strip().splitlines()[-1].startswith("deepmolm-fingerprint: interrupted after ")
    assert f"--out {out} holds those only" in err
    assert not (tmp_path / "fp.jsonl.lock").exists()


def test_sigterm_stops_deepmolm_kflm2_as_ctrl_c_does(tmp_path):
    data = _csv(tmp_path / "data.csv", ["smiles", "y"], [(s, i % 7) for i, s in enumerate(FORTY)])
    argv = [a for a in _run(data, tmp_path / "run") if a != "--quiet"] + ["--epochs", "100000", "--patience", "100000"]
    code, err = _terminated([ENTRY.format("kflm2"), *argv], b"epoch", tmp_path)  # the bar: seed 0 epoch N
    assert code == 130, err
    assert err.strip().splitlines()[-1] == ("deepmolm-kflm2: interrupted; the seeds finished so far are kept: rerun "
                                            "the same command to resume")
    assert (tmp_path / "run" / "config.json").is_file() and not (tmp_path / "run" / ".lock").exists()


def test_sigterm_stops_deepmolm_prepare_in_its_parent_and_a_rerun_resumes(tmp_path):
    data = _csv(tmp_path / "in.csv", ["smiles", "logS"], [(s, i % 5) for i, s in enumerate(FORTY)])
    argv = [ENTRY.format("prepare"), "--format", "csv", "--input", str(data), "--out", str(tmp_path / "out"),
            "--chunk-size", "4", "--image-size", "32", "--workers", "2", "--label-columns", "logS"]
    code, err = _terminated(argv, b"prepare:", tmp_path)  # the progress bar: the pool runs
    assert code == 130, err
    lines = err.strip().splitlines()
    line = ("deepmolm-prepare: interrupted; the chunks committed so far are kept: rerun the same command to resume")
    assert line in lines, err
    # (a SIGTERM landing inside the progress bar's first drawing, before the run holds the bar,
    # leaves its last state to be drawn at exit, after the line)
    assert all(rest.startswith("prepare:") for rest in lines[lines.index(line) + 1:]), err
    assert "Traceback" not in err  # (the workers kept the default SIGTERM: no traceback of theirs)
    rerun = subprocess.run([sys.executable, "-c", *argv, "--no-progress"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "processed " in rerun.stdout and not list((tmp_path / "out").glob(".lock*"))


def test_forked_workers_keep_the_default_sigterm_and_a_second_sigterm_is_ignored():
    """The parent's SIGTERM handler raised KeyboardInterrupt in a worker too: one sent SIGTERM
    mid-task returned it as its task's result and the whole run stopped as if interrupted.
    `timeout -s TERM` signals the process and its group: the second SIGTERM printed the
    interrupt line twice."""
    from deepmolm_plugin import usage

    before = signal.getsignal(signal.SIGTERM)
    try:
        usage.sigterm_as_interrupt()
        handler = signal.getsignal(signal.SIGTERM)
        assert handler not in (signal.SIG_DFL, signal.SIG_IGN)
        pid = os.fork()
        if pid == 0:  # the child: as a pool worker forked by deepmolm-prepare, or a DataLoader worker
            os._exit(0 if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        with pytest.raises(KeyboardInterrupt):
            handler(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("failing", ["seeds/seed_0.json", "results.json"])
def test_deepmolm_kflm2_on_a_full_disk_says_one_line(failing, tmp_path, monkeypatch, capsys):
    from deepmolm_plugin.property import report
    from deepmolm_plugin.result_files import write_atomic

    def full(path, text):
        if Path(path).as_posix().endswith("/" + failing):
            raise OSError(28, "No space left on device")
        write_atomic(path, text)

    monkeypatch.setattr(kcli, "write_atomic", full)
    monkeypatch.setattr(report, "write_atomic", full)
    out = tmp_path / "run"
    capsys.readouterr()
    assert _kflm2(tmp_path, out) == 1
    err = capsys.readouterr().err
    where = out / failing if failing.startswith("seeds/") else \
        f"the reports in {out} (results.json, results.md, plots/)"
    assert err == (f"deepmolm-kflm2: error: cannot write {where}: No space left on device; the seeds finished so "
                   "far are kept: rerun the same command to resume\n")
    assert not (out / "results.json").exists() and not (out / ".lock").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.undo()  # room again: the rerun finishes the run
    assert _kflm2(tmp_path, out) == 0 and (out / "results.json").is_file()


def test_a_tools_main_puts_the_sigterm_handler_back_when_it_returns(tmp_path):
    """The handler stayed after main returned: a process that went on (a test, a notebook)
    took its next SIGTERM for Ctrl-C, and ignored every one after that."""
    from deepmolm_plugin.molecule.tools import fingerprint_main

    before = signal.getsignal(signal.SIGTERM)
    assert fingerprint_main(["--smiles", "CCO", "--out", str(tmp_path / "fp.jsonl"), "--no-progress"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_forked_child_never_releases_its_parents_lock(tmp_path):
    """A forked child unwinding a `finally` removed the parent's lock file (and could close a
    descriptor number it had reused): the next run was let in beside the live one."""
    from deepmolm_plugin import output_lock

    lock = output_lock.hold(output_lock.folder_lock(tmp_path, "test"))
    try:
        pid = os.fork()
        if pid == 0:
            lock.release()
            os._exit(0)
        os.waitpid(pid, 0)
        assert (tmp_path / ".lock").is_file()
        with pytest.raises(output_lock.Refused):
            output_lock.hold(output_lock.folder_lock(tmp_path, "test"))
    finally:
        lock.release()
    assert not (tmp_path / ".lock").exists()
