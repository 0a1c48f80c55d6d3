"""model_vqa killed outright (SIGKILL, the OOM killer: no handler runs): the answers the
host had written and flushed, in `.<answers>.partial-<pid>`, are kept by --resume through
the digests the run wrote beside that file when it started (they were lost, and the file
left behind for good)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from test_host_cli_eval import FUSION_CONFIG, _stub_args, _stub_host, _write_questions

TESTS = Path(__file__).resolve().parent

KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import torch
    from _pytest.monkeypatch import MonkeyPatch
    from test_host_cli_eval import FUSION_CONFIG, _stub_args, _stub_host
    from deepmolm_plugin.eval import model_vqa

    def generate(call, inputs, **kwargs):
        if call == 2:  # the third question: killed while generating
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.tensor([[5]])

    host, calls = _stub_host(MonkeyPatch(), generate)
    model_vqa.run_host_eval(host, _stub_args({questions!r}, {answers!r}), FUSION_CONFIG)
""")


def _kill_a_run(questions: Path, answers: Path) -> None:
    script = KILLED_RUN.format(tests=str(TESTS), questions=str(questions), answers=str(answers))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]


def _ids(path: Path) -> list:
    return [json.loads(line)["question_id"] for line in path.read_text().splitlines()]


def test_resume_keeps_the_answers_of_a_killed_run(tmp_path, monkeypatch, capsys):
    from deepmolm_plugin.eval import model_vqa

    questions, answers = tmp_path / "questions.jsonl", tmp_path / "a.jsonl"
    _write_questions(questions, [{"question_id": q, "smiles": s, "text": "What?"}
                                 for q, s in zip("abcd", ["CCO", "CCN", "CCC", "CCCl"])])
    _kill_a_run(questions, answers)
    left = sorted(p.name for p in tmp_path.glob(".a.jsonl.partial-*"))
    assert len(left) == 2 and left[1] == left[0] + ".digests.json" and not answers.exists()

    # the second question's molecule changed since: asked again, as with any earlier answer
    _write_questions(questions, [{"question_id": q, "smiles": s, "text": "What?"}
                                 for q, s in zip("abcd", ["CCO", "CCCN", "CCC", "CCCl"])])
    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    model_vqa.run_host_eval(host, _stub_args(questions, answers, "--resume"), FUSION_CONFIG)
    assert "--resume: 1 of 4 questions keep the answers" in capsys.readouterr().err  # was: 0 of 4
    assert len(calls) == 3 and _ids(answers) == ["a", "b", "c", "d"]
    assert not list(tmp_path.glob(".a.jsonl.partial-*"))  # adopted, then removed
    # the adopted answer carries the digests a later --resume checks
    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    model_vqa.run_host_eval(host, _stub_args(questions, answers, "--resume"), FUSION_CONFIG)
    assert len(calls) == 0


def test_a_run_without_resume_names_the_killed_runs_answers_and_leaves_them(tmp_path, monkeypatch, capsys):
    from deepmolm_plugin.eval import model_vqa

    questions, answers = tmp_path / "questions.jsonl", tmp_path / "a.jsonl"
    _write_questions(questions, [{"question_id": q, "smiles": "CCO", "text": "What?"} for q in "abc"])
    _kill_a_run(questions, answers)
    left = sorted(tmp_path.glob(".a.jsonl.partial-*"))
    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    model_vqa.run_host_eval(host, _stub_args(questions, answers), FUSION_CONFIG)
    err = capsys.readouterr().err
    assert "holds 2 answers of a run that was killed; --resume would keep those" in err
    assert len(calls) == 3 and _ids(answers) == ["a", "b", "c"]
    # was: removed, answers this run did not keep included (a later --resume had nothing)
    assert sorted(tmp_path.glob(".a.jsonl.partial-*")) == left


def test_digests_left_by_a_run_killed_while_its_model_loaded_are_removed(tmp_path, monkeypatch):
    from deepmolm_plugin.eval import model_vqa, resume

    questions, answers = tmp_path / "questions.jsonl", tmp_path / "a.jsonl"
    _write_questions(questions, [{"question_id": "a", "smiles": "CCO", "text": "What?"}])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    resume.start_host_partial(resume.host_partial(answers, int(dead.stdout)), "s", {})  # no partial file yet
    assert resume.killed_partials(answers) == [resume.host_partial(answers, int(dead.stdout))]
    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    model_vqa.run_host_eval(host, _stub_args(questions, answers), FUSION_CONFIG)
    assert not list(tmp_path.glob(".a.jsonl.partial-*"))  # was: left for good (not even found)


def test_a_live_process_of_the_same_number_that_started_later_is_not_the_run(tmp_path):
    from deepmolm_plugin.eval import resume

    answers = tmp_path / "a.jsonl"
    partial = resume.host_partial(answers, os.getpid())  # this process: alive
    partial.write_text('{"question_id": "a", "text": "an answer"}\n')
    resume.start_host_partial(partial, "s", {"a": "d"})
    assert resume.killed_partials(answers) == []
    digests = partial.with_name(partial.name + ".digests.json")
    made = json.loads(digests.read_text())
    digests.write_text(json.dumps({**made, "started": "another boot:1"}))  # a container restarted
    assert resume.killed_partials(answers) == [partial]


def test_a_live_runs_partial_file_is_not_touched(tmp_path, monkeypatch):
    from deepmolm_plugin.eval import model_vqa, resume

    questions, answers = tmp_path / "questions.jsonl", tmp_path / "a.jsonl"
    _write_questions(questions, [{"question_id": "a", "smiles": "CCO", "text": "What?"}])
    live = resume.host_partial(answers, 1)  # init: alive (another user's, or ours)
    live.write_text('{"question_id": "a", "text": "theirs"}\n')
    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    model_vqa.run_host_eval(host, _stub_args(questions, answers, "--resume"), FUSION_CONFIG)
    assert len(calls) == 1 and live.read_text() == '{"question_id": "a", "text": "theirs"}\n'


def test_the_runs_own_files_in_the_model_folder_are_no_model_files(tmp_path):
    # was: a run's hidden `.<answers>.partial-<pid>.digests.json` (and a report's metrics.json)
    # inside the model folder changed the settings digest: --resume kept none of a killed
    # run's answers there, and chunks running at once were refused as "retrained in place?"
    from types import SimpleNamespace

    from deepmolm_plugin.eval import resume

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    answers = model / "answers-0.jsonl"
    settings = resume.run_settings(SimpleNamespace(model_path=str(model), model_base=None, conv_mode="qwen2",
                                                   temperature=0.0, top_p=None, num_beams=1, max_new_tokens=8,
                                                   conformer_policy="auto"))
    before = resume.settings_digest(settings, answers)
    resume.start_host_partial(resume.host_partial(model / "answers-1.jsonl", 4242), "s", {})
    (model / "metrics.json").write_text("{}")
    assert resume.settings_digest(settings, answers) == before
    (model / "model.safetensors").write_bytes(b"other weights")  # a model file still counts
    assert resume.settings_digest(settings, answers) != before
