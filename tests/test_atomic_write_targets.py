"""Whole-file writes (`result_files.write_atomic`: answers, reports, question files)
replace their target by a rename: a symbolic link was replaced by a file (the shared file
it named left as it was), a FIFO by a file, a device such as /dev/full by a file (as
root), and a process substitution (/dev/fd/63) was a traceback."""

from __future__ import annotations

import json
import os
import stat

import pytest

from deepmolm_plugin.result_files import write_atomic


def test_a_symbolic_link_is_written_through(tmp_path):
    (tmp_path / "shared.jsonl").write_text("old\n")
    (tmp_path / "link.jsonl").symlink_to("shared.jsonl")
    write_atomic(tmp_path / "link.jsonl", "new\n")
    assert (tmp_path / "link.jsonl").is_symlink() and (tmp_path / "shared.jsonl").read_text() == "new\n"


def test_a_pipe_is_refused_and_left_alone(tmp_path):
    fifo = tmp_path / "q_fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="q_fifo is not a regular file"):
        write_atomic(fifo, "text\n")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["q_fifo"]


def test_eval_questions_names_an_output_that_is_no_file(tmp_path, capsys):
    from deepmolm_plugin.eval import questions

    data = tmp_path / "test.json"
    data.write_text(json.dumps([{"id": "a", "smiles": "CCO", "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "Ethanol."}]}]))
    fifo = tmp_path / "q_fifo"
    os.mkfifo(fifo)
    with pytest.raises(SystemExit) as info:
        questions.main([str(data), str(fifo)])
    assert info.value.code == 2 and "is not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # was: replaced by a regular file

