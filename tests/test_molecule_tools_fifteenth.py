"""deepmolm-fingerprint / deepmolm-render: lock files and one input file under two names.

What was wrong -> what happens now:

- An output named like another output's lock file (``--out fp.jsonl --failures
  fp.jsonl.lock``, ``--out pics --failures pics/.lock``) was emptied when the lock was taken
  and deleted when it was released (the failures file gone, exit 1); an input or a user's
  file at that path was deleted the same way. -> Refused in one line naming both (or the
  file), exit 2, before anything is written; a pid left by a killed run is still locked over.
- One input file given under two spellings (``x.smi ./x.smi``, a link) was read twice under
  two sets of ids, exit 0. -> Refused in one line naming both spellings, exit 2, before any
  record is read (files are compared by device and inode; two copies are two files; one path
  typed twice still fails its repeated records as duplicate-id, exit 1, as documented).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepmolm_plugin.molecule import tools

from test_output_locks import _code

# (SIGTERM, which main() sets, is put back after every test by conftest's `_stop_signals_kept`)


def _files(folder: Path) -> dict:
    """Every file under `folder` (relative name -> bytes): what a refused run must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(capsys, *names) -> str:
    """The run's stderr is one usage line naming each of `names`."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], captured.err
    for name in names:
        assert name in lines[0], lines[0]
    assert captured.out == ""
    return lines[0]


FP = ["--no-progress"]
RENDER = ["--no-progress", "--size", "64"]


# 1. an output, an input or a user's file at another output's lock file

def test_failures_at_the_lock_file_of_out_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = _code(tools.fingerprint_main, FP + ["--smiles", "CCO", "C1CC", "--out", "fp.jsonl",
                                               "--failures", "fp.jsonl.lock"])
    assert code == 2
    line = _refused(capsys, "--failures fp.jsonl.lock", "--out fp.jsonl", "lock file")
    assert "deepmolm-fingerprint" in line
    assert _files(tmp_path) == {}  # nothing written (was: fp.jsonl alone, the failures file deleted)

    (tmp_path / "pics").mkdir()
    code = _code(tools.render_main, RENDER + ["--smiles", "CCO", "C1CC", "--out", "pics", "--failures", "pics/.lock"])
    assert code == 2
    _refused(capsys, "--failures pics/.lock", "--out pics", "lock file")
    assert _files(tmp_path) == {}


def test_an_input_at_the_lock_file_of_an_output_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fp.jsonl.lock").write_text("CCO\n")
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / ".lock").write_text("CCO\n")
    before = _files(tmp_path)

    assert _code(tools.fingerprint_main, FP + ["fp.jsonl.lock", "--out", "fp.jsonl"]) == 2
    _refused(capsys, "INPUT fp.jsonl.lock", "--out fp.jsonl")
    assert _files(tmp_path) == before  # the input kept (was: emptied and deleted)

    assert _code(tools.render_main, RENDER + ["pics/.lock", "--out", "pics"]) == 2
    _refused(capsys, "INPUT pics/.lock", "--out pics")
    assert _files(tmp_path) == before


def test_a_users_file_at_a_lock_path_is_refused_a_killed_runs_pid_is_not(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fp.jsonl.lock").write_text("my notes\n")
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / ".lock").write_text("my notes\n")
    (tmp_path / "bad.jsonl.lock").write_text("x" * 4000)  # the --failures file's lock
    before = _files(tmp_path)

    assert _code(tools.fingerprint_main, FP + ["--smiles", "CCO", "--out", "fp.jsonl"]) == 2
    _refused(capsys, "--out fp.jsonl", "fp.jsonl.lock")
    assert _code(tools.render_main, RENDER + ["--smiles", "CCO", "--out", "pics"]) == 2
    _refused(capsys, "--out pics", ".lock")
    assert _code(tools.fingerprint_main, FP + ["--smiles", "CCO", "--failures", "bad.jsonl"]) == 2
    _refused(capsys, "--failures bad.jsonl", "bad.jsonl.lock")
    assert _files(tmp_path) == before

    # a pid a killed holder left (or an empty file) is a lock file: locked over, removed at the end
    (tmp_path / "fp.jsonl.lock").write_text("4242\n")
    (tmp_path / "pics" / ".lock").write_text("")
    assert _code(tools.fingerprint_main, FP + ["--smiles", "CCO", "--out", "fp.jsonl"]) == 0
    assert _code(tools.render_main, RENDER + ["--smiles", "CCO", "--out", "pics"]) == 0
    assert not (tmp_path / "fp.jsonl.lock").exists() and not (tmp_path / "pics" / ".lock").exists()
    assert (tmp_path / "fp.jsonl").read_text().count("\n") == 1


# 2. one input file given twice

def test_one_input_file_under_two_spellings_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mols.smi").write_text("CCO\nCCC\n")
    (tmp_path / "d").mkdir()
    os.symlink("../mols.smi", tmp_path / "d" / "mols.smi")
    os.link(tmp_path / "mols.smi", tmp_path / "hard.smi")
    before = _files(tmp_path)

    assert _code(tools.fingerprint_main, FP + ["mols.smi", "./mols.smi"]) == 2  # was: 4 lines, exit 0
    _refused(capsys, "INPUT ./mols.smi", "INPUT mols.smi")
    assert _code(tools.fingerprint_main, FP + ["mols.smi", "hard.smi", "--out", "fp.jsonl"]) == 2
    _refused(capsys, "INPUT hard.smi", "INPUT mols.smi")
    assert _code(tools.render_main, RENDER + ["mols.smi", "d/mols.smi", "--out", "pics"]) == 2
    _refused(capsys, "INPUT d/mols.smi", "INPUT mols.smi")
    after = _files(tmp_path)
    assert after == {**before, "d/mols.smi": before["mols.smi"]}  # (the link, read through)
    # (a refused render removes the --out folder it made: was left behind, empty)
    assert not (tmp_path / "fp.jsonl").exists() and not (tmp_path / "pics").exists()

    # two copies are two files: both read, their ids told apart by path
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "mols.smi").write_text("CCO\nCCC\n")
    assert _code(tools.fingerprint_main, FP + ["mols.smi", "e/mols.smi"]) == 0
    assert capsys.readouterr().out.count("\n") == 4
    # one path typed twice: one id twice, its second records fail as duplicate-id (documented)
    assert _code(tools.fingerprint_main, FP + ["mols.smi", "mols.smi"]) == 1
    assert capsys.readouterr().out.count("duplicate-id") == 2
