"""Seventeenth sweep: a Ctrl-C during a slow 3D embedding was lost when the embedding then
ended past its time limit. RDKit takes SIGINT itself while it embeds, and checks for it and
for its time limit at the same points, between its stages: when the stage running at the
Ctrl-C ended past `--embed-timeout`, RDKit reported the time limit only, no "Interrupted"
line, so the record was written as "3D embedding stopped at the time limit", the batch went
on and the tool exited 1 (README, tenth round: a Ctrl-C while RDKit embeds stops the run,
exit 130, no failure line)."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from deepmolm_plugin.molecule import MoleculeError, molecule_from_smiles
from deepmolm_plugin.molecule.errors import rdkit_messages, rdkit_step

# 40 cyclopropanes in a chain (120 heavy atoms): ETKDG's first try fails in a fraction of a
# second, the try from random starting coordinates then spends about 5 CPU s in stages RDKit
# does not interrupt, so with --embed-timeout 1 the step always ends past its deadline
CHAIN = "C1CC1" * 40
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, from /proc (machine load does
    not change it, as it changes wall time)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def test_ctrl_c_during_an_embedding_that_ends_past_its_time_limit_exits_130(tmp_path):
    # was: "FAILED chain (...): 3D embedding stopped at the time limit embed_timeout=1 s, after 6 s",
    # ethylamine fingerprinted after the Ctrl-C, exit 1
    source, out, failures = tmp_path / "in.smi", tmp_path / "out.jsonl", tmp_path / "failed.jsonl"
    source.write_text(f"smiles id\nCCO ethanol\n{CHAIN} chain\nCCN ethylamine\n")
    code = "import sys; from deepmolm_plugin.molecule.tools import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.Popen([sys.executable, "-c", code, "fingerprint", str(source), "--out", str(out),
                            "--failures", str(failures), "--embed-timeout", "1", "--no-progress"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # ethanol's line is written (flushed) before the chain is read: from then on the child
        # embeds the chain; 1 CPU s later it is inside the random-coordinates try
        while run.poll() is None and not (out.exists() and out.read_text().endswith("\n")):
            time.sleep(0.05)
        assert run.poll() is None, run.communicate()
        started = _cpu_seconds(run.pid)
        while run.poll() is None and _cpu_seconds(run.pid) < started + 1.0:
            time.sleep(0.05)
        assert run.poll() is None, run.communicate()
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 130, err
    assert "FAILED" not in err and "time limit" not in err, err
    assert "interrupted" in err, err
    written = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert written == ["ethanol"]  # neither the chain (as failed) nor ethylamine after it
    assert not failures.exists() or failures.read_text() == ""


def test_the_same_chain_without_a_ctrl_c_is_the_time_limit_failure():
    # the control: what the interrupted run above was written as, so the test above stands on
    # an embedding that does end past its deadline
    with pytest.raises(MoleculeError, match="stopped at the time limit embed_timeout=1 s"):
        molecule_from_smiles(CHAIN, "chain", embed_timeout=1)


def _rdkit_flag() -> ctypes.c_bool:
    """RDKit's Ctrl-C flag (RDKit::ControlCHandler::d_gotSignal), which its SIGINT handler sets."""
    return ctypes.c_bool.in_dll(ctypes.CDLL(rdDistGeom.__file__), "_ZN5RDKit15ControlCHandler11d_gotSignalE")


def _took_a_ctrl_c_and_said_nothing(calls: list[int]):
    """A step as RDKit runs one that took a Ctrl-C and then found its time limit run out: the
    flag set while it runs, cleared before it returns, no "Interrupted" line; it waits until
    the watching thread has seen the flag (that thread ends then) instead of for a time."""
    def step():
        calls.append(1)
        if len(calls) > 1:
            return 0
        flag = _rdkit_flag()
        flag.value = True
        try:
            while any(t.name == "rdkit-sigint" for t in threading.enumerate()):
                time.sleep(0.001)
        finally:
            flag.value = False
        return -1
    return step


def test_a_ctrl_c_rdkit_took_without_saying_so_is_a_keyboard_interrupt():
    calls: list[int] = []
    with rdkit_messages() as messages, pytest.raises(KeyboardInterrupt):
        rdkit_step(_took_a_ctrl_c_and_said_nothing(calls), messages)
    assert calls == [1]  # no second try


def test_where_sigint_is_ignored_the_step_rdkit_cut_short_is_done_again():
    # deepmolm-prepare's workers: their parent acts on the Ctrl-C, the worker's result is the
    # uninterrupted one (was: the time-limit failure, written as the record's)
    calls: list[int] = []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with rdkit_messages() as messages:
            assert rdkit_step(_took_a_ctrl_c_and_said_nothing(calls), messages) == 0
    finally:
        signal.signal(signal.SIGINT, previous)
    assert calls == [1, 1]


def test_a_step_without_a_ctrl_c_returns_its_result_and_raises_its_error():
    with rdkit_messages() as messages:
        assert rdkit_step(lambda: Chem.MolToSmiles(Chem.MolFromSmiles("OCC")), messages) == "CCO"
        with pytest.raises(ValueError, match="boom"):
            rdkit_step(lambda: (_ for _ in ()).throw(ValueError("boom")), messages)
