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



def test_a_figure_is_written_whole_or_not_at_all(tmp_path):
    # 2026-12-06: plots.save wrote the PNG in place; a run killed (or a disk filled) while drawing left a
    # cut file that passed for a plot. Now the old figure stays until the new one is complete.
    from deepmolm_plugin import plots

    target = tmp_path / "parity.png"
    fig, (ax,) = plots.panels(1, (3, 3))
    ax.plot([0, 1], [0, 1])
    plots.save(fig, target, 50)
    old = target.read_bytes()
    assert old.startswith(b"\x89PNG")

    fig, (ax,) = plots.panels(1, (3, 3))
    ax.plot([0, 1], [1, 0])
    original = fig.savefig

    def cut_short(f, **kwargs):  # half of a real PNG written, then the process is interrupted
        original(f, **kwargs)
        f.truncate(f.tell() // 2)
        raise KeyboardInterrupt

    fig.savefig = cut_short
    with pytest.raises(KeyboardInterrupt):
        plots.save(fig, target, 50)
    assert target.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["parity.png"]
