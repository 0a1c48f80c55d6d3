"""`~` in the path options of every command line, and CSV files that are not comma-separated.

1. The shell expands `~` only at a word's start: `--out=~/fp.jsonl` reached the tools as
   typed and deepmolm-fingerprint wrote `./~/fp.jsonl`. Every path option now expands it
   where it is parsed (`usage.user_path`).
2. A semicolon (or tab, bar) separated table read as a CSV has a header of one cell: the
   molecule CSV reader (deepmolm-fingerprint, deepmolm-render) and deepmolm-kflm2 said "no
   'smiles' column" about it; now each says the file is not comma-separated
   (`csv_table.separator_problem`, the rule deepmolm-prepare's readers use too).
"""

from __future__ import annotations

import argparse
import json

import pytest

from deepmolm_plugin.molecule.tools import fingerprint_main, render_main


class _Parsed(Exception):
    """Raised instead of running a tool once its arguments are parsed."""


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def _parsed(monkeypatch, main, argv) -> argparse.Namespace:
    """What `main(argv)` parsed: the tool stops right after parse_args."""
    seen = {}
    parse = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        seen["args"] = parse(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(_Parsed):
        main(argv)
    return seen["args"]


def _cases():
    from deepmolm_plugin import demo
    from deepmolm_plugin.data.prepare import cli as prepare
    from deepmolm_plugin.eval import questions, report
    from deepmolm_plugin.eval.metrics import wordnet
    from deepmolm_plugin.property import cli as kflm2

    return [
        (report.main, ["~/a.jsonl", "--references", "~/q.jsonl", "--out", "~/rep", "--nltk-data", "~/nltk"],
         {"answers": ["a.jsonl"], "references": "q.jsonl", "out": "rep", "nltk_data": "nltk"}),
        (prepare.main, ["--format", "csv", "--input", "~/in.csv", "--out", "~/prep"],
         {"input": "in.csv", "out": "prep"}),
        (kflm2.main, ["--data", "~/d.csv", "--targets", "y", "--task", "regression", "--test-file", "~/t.csv",
                      "--out", "~/runs", "--cache-dir", "~/cache"],
         {"data": "d.csv", "test_file": ["t.csv"], "out": "runs", "cache_dir": "cache"}),
        (fingerprint_main, ["~/m.sdf", "--out", "~/fp.jsonl", "--failures", "~/bad.jsonl"],
         {"out": "fp.jsonl", "failures": "bad.jsonl"}),  # INPUTs: expanded after parsing (not with --smiles)
        (render_main, ["~/m.sdf", "--out", "~/png", "--failures", "~/bad.jsonl"],
         {"out": "png", "failures": "bad.jsonl"}),
        (demo.main, ["--out", "~/demo"], {"out": "demo"}),
        (wordnet.main, ["--nltk-data", "~/nltk", "--source", "~/dict", "--man-page", "~/lex.gz"],
         {"nltk_data": "nltk", "source": "dict", "man_page": "lex.gz"}),
        (questions.main, ["~/records.json", "~/questions.jsonl"], {"data": "records.json", "out": "questions.jsonl"}),
    ]


def test_every_path_option_of_the_tools_expands_a_tilde(home, monkeypatch):
    for main, argv, expected in _cases():
        args = _parsed(monkeypatch, main, argv)
        monkeypatch.undo()  # parse_args back (HOME is set again below)
        monkeypatch.setenv("HOME", str(home))
        for name, value in expected.items():
            want = [str(home / v) for v in value] if isinstance(value, list) else str(home / value)
            got = getattr(args, name)
            got = [str(g) for g in got] if isinstance(got, list) else str(got)
            assert got == want, (main.__module__, name)


def test_fingerprint_out_with_a_tilde_writes_under_home(home, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert fingerprint_main(["--smiles", "CCO", "--out=~/fp.jsonl", "--no-progress"]) == 0
    assert not (work / "~").exists()
    rows = [json.loads(line) for line in (home / "fp.jsonl").read_text().splitlines()]
    assert len(rows) == 1


def test_render_reads_an_input_file_named_with_a_tilde(home, tmp_path, monkeypatch):
    (home / "mols.smi").write_text("CCO ethanol\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert render_main(["~/mols.smi", "--out=~/png", "--size", "64", "--no-progress"]) == 0
    assert not (work / "~").exists()
    assert [p.suffix for p in (home / "png").iterdir() if p.suffix == ".png"] == [".png"]


# ------------------------------------------------------------------ not comma-separated

SEMICOLONS = "smiles;logS\nCCO;-0,77\nc1ccccc1;-1,64\n"
NAMED = "the header is one cell, 'smiles;logS', holding semicolons (';'): the file is not comma-separated"


def test_the_separator_rule_lives_in_csv_table_and_prepare_keeps_it():
    from deepmolm_plugin.csv_table import separator_problem
    from deepmolm_plugin.data.sources import base

    assert base.separator_problem is separator_problem
    assert separator_problem(["smiles;logS"]).startswith(NAMED)
    assert "tabs" in separator_problem(["smiles\tlogS"]) and "vertical bars" in separator_problem(["smiles|logS"])
    assert separator_problem(["smiles", "logS"]) is None


def test_fingerprint_and_render_name_the_separator(tmp_path, capsys):
    table = tmp_path / "semi.csv"
    table.write_text(SEMICOLONS)
    failures = tmp_path / "failures.jsonl"
    assert fingerprint_main([str(table), "--out", str(tmp_path / "fp.jsonl"), "--failures", str(failures),
                             "--no-progress"]) != 0
    assert NAMED in failures.read_text()
    assert "has no 'smiles' column" not in failures.read_text()
    capsys.readouterr()
    assert render_main([str(table), "--out", str(tmp_path / "png"), "--no-progress"]) != 0
    assert NAMED in capsys.readouterr().err


def test_kflm2_names_the_separator(tmp_path, capsys):
    from deepmolm_plugin.property.cli import load_table, main

    table = tmp_path / "semi.csv"
    table.write_text(SEMICOLONS)
    with pytest.raises(SystemExit) as exit:
        main(["--data", str(table), "--targets", "logS", "--task", "regression", "--out", str(tmp_path / "run")])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert NAMED in err and "no SMILES column" not in err
    with pytest.raises(SystemExit) as error:  # TableError: the reader itself, for callers of load_table
        load_table(table, ["logS"])
    assert NAMED in str(error.value)
