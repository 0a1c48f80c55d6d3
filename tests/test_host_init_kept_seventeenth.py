"""The host's disable_torch_init, undone (seventeenth round): llava's eval_model and chat CLI
make torch.nn.Linear's and LayerNorm's reset_parameters a no-op for the rest of the process.
A Python session that ran `model_vqa.main` and then built a model got uninitialised weights;
the project's own test workers did (a test running model_vqa in-process left 21 tests of other
files with NaN weights and losses). Now put back when the tool's run ends."""

from __future__ import annotations

import json

import torch

from test_fp_cap_seventeenth import _rows, checkpoint  # noqa: F401  (the fixture: a tiny checkpoint)
from test_hostile_training import white_png


def test_model_vqa_in_a_python_session_leaves_torch_init_as_it_was(checkpoint, tmp_path):  # noqa: F811
    from deepmolm_plugin.eval import model_vqa

    linear, norm = torch.nn.Linear.__dict__["reset_parameters"], torch.nn.LayerNorm.__dict__["reset_parameters"]
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": "ok", "text": "What is it?", "image": white_png(tmp_path),
                                     "molecule_fp": _rows(4)}) + "\n")
    answers = tmp_path / "out" / "a.jsonl"
    try:
        model_vqa.main(["--model-path", str(checkpoint), "--question-file", str(questions), "--image-folder",
                        str(tmp_path), "--answers-file", str(answers), "--conv-mode", "auto", "--temperature", "0",
                        "--max-new-tokens", "2", "--dtype", "float32"])
        assert [json.loads(line)["question_id"] for line in answers.read_text().splitlines()] == ["ok"]
        assert torch.nn.Linear.__dict__["reset_parameters"] is linear
        assert torch.nn.LayerNorm.__dict__["reset_parameters"] is norm
        torch.manual_seed(0)
        fresh = torch.nn.Linear(64, 64)
        torch.manual_seed(0)
        expected = torch.empty(64, 64)
        torch.nn.init.kaiming_uniform_(expected, a=5**0.5)  # what Linear.reset_parameters draws first
        assert torch.equal(fresh.weight, expected)
    finally:  # never leave this worker with the no-op, whatever failed above
        torch.nn.Linear.reset_parameters, torch.nn.LayerNorm.reset_parameters = linear, norm
