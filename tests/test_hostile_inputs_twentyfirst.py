"""Hostile inputs found by the twenty-first round's sweep of the tools, as a user would give
them: a link to nothing in a folder input (a whole split was left out, exit 0), a loop of
links as an output file (a traceback), a reference answer of invisible characters only
(scored: the task's means halved), impossible atoms trained on by deepmolm-kflm2, and a split
name too long for a file name (the whole run failed at its end, and every rerun)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deepmolm_plugin.data.sources.base import split_problem, visible_files
from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.eval.scoring import build_report
from deepmolm_plugin.property.features import parse_smiles
from jsonl_helpers import write_jsonl


def _tool(name: str, *argv, cwd) -> subprocess.CompletedProcess:
    code = f"import sys; from deepmolm_plugin import entry_points; sys.exit(entry_points.{name}())"
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_a_link_to_nothing_in_a_folder_input_is_named_not_left_out(tmp_path):
    (tmp_path / "a.sdf").write_text("x")
    os.symlink(tmp_path / "gone" / "b.sdf", tmp_path / "b.sdf")
    os.symlink("loop2.sdf", tmp_path / "loop1.sdf")
    os.symlink("loop1.sdf", tmp_path / "loop2.sdf")
    with pytest.raises(FileNotFoundError, match=r"b\.sdf is a symbolic link to .*gone/b\.sdf, which does not exist"
                                                r".*loop1\.sdf is a symbolic link to loop2\.sdf"):
        visible_files(tmp_path)


def test_a_chebi20_split_file_linked_to_nothing_stops_the_run(tmp_path):
    data = tmp_path / "chebi"
    data.mkdir()
    for name, cid in (("test.txt", 1), ("validation.txt", 2)):
        (data / name).write_text(f"CID\tSMILES\tdescription\n{cid}\tCCO\tThe molecule is ethanol.\n")
    os.symlink("/nonexistent/mount/train.txt", data / "train.txt")
    done = _tool("prepare", "--no-progress", "--format", "chebi20", "--input", data, "--out", tmp_path / "out",
                 cwd=tmp_path)
    assert done.returncode == 2, done.stderr  # was 0, with the test and valid splits only
    assert "train.txt is a symbolic link to /nonexistent/mount/train.txt, which does not exist" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("option", ["--out", "--failures"])
def test_a_loop_of_links_as_an_output_file_is_one_line(tmp_path, option):
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    outputs = {"--out": "fp.jsonl", "--failures": "failed.jsonl", option: "loop1"}
    done = _tool("fingerprint", "--no-progress", "--smiles", "CCO", "--out", outputs["--out"],
                 "--failures", outputs["--failures"], cwd=tmp_path)
    assert done.returncode == 2, done.stderr  # was a traceback (OSError: Too many levels of symbolic links)
    assert done.stderr.strip() == (f"deepmolm-fingerprint: error: {option} loop1: is a symbolic link to loop2, "
                                   "which does not exist (or is a loop of links)")


def test_a_link_to_an_output_file_yet_to_be_made_is_written_through(tmp_path):
    os.symlink(tmp_path / "made.jsonl", tmp_path / "link.jsonl")
    done = _tool("fingerprint", "--no-progress", "--smiles", "CCO", "--out", "link.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "made.jsonl").read_text())["id"] == "CCO"


def test_a_loop_of_links_among_the_report_inputs_is_no_traceback(tmp_path):
    from deepmolm_plugin.eval.outputs import overwritten_inputs

    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    assert overwritten_inputs([tmp_path / "loop1"], tmp_path / "out") == []  # was RuntimeError: Symlink loop


def _report(tmp_path, references, answers):
    return build_report([write_jsonl(tmp_path / "a.jsonl", answers)], write_jsonl(tmp_path / "q.jsonl", references))


def test_a_reference_of_invisible_characters_only_is_refused(tmp_path):
    references = [{"question_id": "d0", "task": "description", "text": "Describe.", "answer": "An alcohol."},
                  {"question_id": "d1", "task": "description", "text": "Describe.", "answer": "\u200b"}]
    answers = [{"question_id": "d0", "text": "An alcohol."}, {"question_id": "d1", "text": "A ketone."}]
    with pytest.raises(ReportError, match="question 'd1' \\(description\\): the reference `answer` is empty"):
        _report(tmp_path, references, answers)  # was scored: every answer 0, the task's means halved


def test_a_task_name_of_invisible_characters_only_is_refused(tmp_path):
    references = [{"question_id": "d0", "task": "\u200b", "text": "Describe.", "answer": "An alcohol."}]
    with pytest.raises(ReportError, match=r"`task` is '\\u200b'; give a task name"):
        _report(tmp_path, references, [{"question_id": "d0", "text": "An alcohol."}])


def test_an_answer_of_invisible_characters_only_counts_as_empty(tmp_path):
    references = [{"question_id": "d0", "task": "description", "text": "Describe.", "answer": "An alcohol."}]
    report, rows = _report(tmp_path, references, [{"question_id": "d0", "text": "\u200b\u200b"}])
    assert report["tasks"]["description"]["metrics"]["n_empty"] == 1 and rows[0]["empty"] is True


@pytest.mark.parametrize("smiles, reason", [
    ("[C+8]CC", "charge +8 removes more electrons than the atom's 6"),
    ("[133CH3]CO", "no isotope 133 of carbon is known"),
    ("[C-15]", "charge -15 is more electrons than its valence shell holds"),
    ("[Fe+30]", "charge +30 removes more electrons than the atom's 26"),
])
def test_kflm2_refuses_impossible_atoms_as_the_other_tools_do(smiles, reason):
    mol, why = parse_smiles(smiles)  # was a molecule, trained on
    assert mol is None and reason in why and "impossible atom(s)" in why


def test_kflm2_keeps_possible_atoms():
    for smiles in ("[13CH3]O", "[Na+].[Cl-]", "[Fe+3]", "[2H]O[2H]", "*C", "[2*]C"):  # a dummy atom: KeyError 0
        assert parse_smiles(smiles)[0] is not None


def test_a_split_name_too_long_for_a_file_name_is_the_rows_failure():
    assert "is 300 characters long, more than 100" in split_problem("s" * 300)
    assert split_problem("s" * 100) is None  # was: the run failed writing fp/<split>.npy at its end, every rerun


@pytest.mark.parametrize("failures, said", [
    ("newout", "--failures newout: is the --out folder; give a file (such as newout/failures.jsonl)"),
    ("newout/sub/f.jsonl", "--failures newout/sub/f.jsonl: no such folder newout/sub"),
])
def test_a_refused_render_leaves_no_out_folder_it_made(tmp_path, failures, said):
    done = _tool("render", "--smiles", "CCO", "--out", "newout", "--failures", failures, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == f"deepmolm-render: error: {said}"
    assert not (tmp_path / "newout").exists()  # was left behind, empty ("is a folder, not a file")


def test_rdkits_warning_on_an_unusual_charge_is_noted_once_and_not_printed(tmp_path):
    done = _tool("fingerprint", "--no-progress", "--smiles", "[U+6]", "--out", "u.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Unusual charge" not in done.stderr  # was printed raw ("[23:20:21] Unusual charge on atom 0 ...")
    notes = json.loads((tmp_path / "u.jsonl").read_text())["notes"]
    assert len([n for n in notes if "Unusual charge" in n]) == 1  # was twice


def test_an_input_that_is_a_loop_of_links_says_so(tmp_path):
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    done = _tool("fingerprint", "--no-progress", "loop1", "--out", "x.jsonl", cwd=tmp_path)
    assert done.returncode == 1  # the record's failure; was "no such file (use --smiles ...)"
    assert "FAILED loop1: is a symbolic link to loop2, which does not exist (or is a loop of links)" in done.stderr


def test_an_embedding_time_limit_too_large_says_its_bound(tmp_path):
    done = _tool("fingerprint", "--smiles", "C", "--embed-timeout", "1e300", cwd=tmp_path)
    assert done.returncode == 2 and "expected seconds > 0 and < 2**31 (68 years), or 'none', got '1e300'" in done.stderr
