"""Eleventh round (hostile sweeps and what earlier notes left); was:

1. eval.model_vqa took any --max-new-tokens (5000 on a model with a 256-token context):
   generation ran on past everything the model was trained to see, where the chat CLI and
   the GUI already stopped at the context.
"""

from __future__ import annotations

import json
import types

import pytest


# --- 1. model_vqa's --max-new-tokens within the model's context ----------------------------------
@pytest.mark.parametrize("context, given, used, note", [
    (256, 5000, 256, "note: --max-new-tokens 5000 set to 256 (this model's context is 256)"),
    (256, 256, 256, None),
    (32768, 2048, 2048, None),  # no GUI limit in batch eval: a long description may need it
    (None, 5000, 5000, None),  # no context stated: nothing to compare with
    (256, None, None, None),  # not given: the host's own default stays
])
def test_model_vqa_caps_max_new_tokens_at_the_models_context(capsys, context, given, used, note):
    from deepmolm_plugin.cli import new_tokens_within_context

    assert new_tokens_within_context(given, types.SimpleNamespace(tokenizer_model_max_length=context)) == used
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ([note] if note else []), err


def test_model_vqa_runs_the_host_with_the_capped_number(trained_checkpoint, tmp_path, monkeypatch, capsys):
    from deepmolm_plugin.eval import model_vqa

    context = json.loads((trained_checkpoint / "config.json").read_text())["tokenizer_model_max_length"]
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": 0, "smiles": "CCO", "text": "What is it?"}) + "\n")
    got = []
    monkeypatch.setattr(model_vqa, "run_host_eval", lambda host, args, config: got.append(args.max_new_tokens))
    model_vqa.main(["--model-path", str(trained_checkpoint), "--question-file", str(questions),
                    "--answers-file", str(tmp_path / "a.jsonl"), "--max-new-tokens", str(context + 100)])
    assert got == [context]
    assert f"note: --max-new-tokens {context + 100} set to {context}" in capsys.readouterr().err
