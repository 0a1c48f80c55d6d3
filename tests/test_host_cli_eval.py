"""The host's chat CLI and model_vqa eval through our launchers, on a tiny trained checkpoint.

Subprocess tests run `python -m deepmolm_plugin.cli` / `.eval.model_vqa` as a user would
(CPU, no CUDA); the unit tests drive the host's own eval loop with a stub model to check
that each question's molecule reaches its `generate` call.
"""

from __future__ import annotations

import ast
import json
import os
import threading
from types import SimpleNamespace

import pytest
import torch

from host_fixtures import run_module

QUESTIONS = "What is this molecule?\nAnd its formula?\n"


def _debug_turns(stdout: str) -> list:
    """The `{'prompt': ..., 'outputs': ...}` dicts the host CLI prints with --debug."""
    return [ast.literal_eval(line.strip()) for line in stdout.splitlines() if line.strip().startswith("{'prompt'")]


def test_chat_cli_two_turns_keep_replies(trained_checkpoint, tmp_path):
    proc = run_module("deepmolm_plugin.cli", [
        "--model-path", str(trained_checkpoint), "--conv-mode", "auto", "--smiles", "CCO",
        "--max-new-tokens", "8", "--temperature", "0", "--debug"], cwd=tmp_path, stdin=QUESTIONS)
    turns = _debug_turns(proc.stdout)
    assert len(turns) == 2, proc.stdout
    assert all(turn["outputs"].strip() for turn in turns), turns
    # What the streamer printed after each assistant role prompt is the stored reply.
    streamed = [part.split("\n", 1)[0].strip() for part in proc.stdout.split("ASSISTANT: ")[1:]]
    assert streamed == [turn["outputs"].split("\n", 1)[0].strip() for turn in turns]
    # Multi-turn: the second prompt holds the first reply, once terminated (cli_reply).
    first = turns[0]["outputs"]
    assert f"<|im_start|>assistant\n{first}<|im_end|>\n<|im_start|>user\nAnd its formula?<|im_end|>\n" \
        in turns[1]["prompt"]
    assert turns[0]["prompt"].startswith("<|im_start|>system\n")  # --conv-mode auto -> qwen2
    assert proc.stdout.rstrip().endswith("exit...")


def test_chat_cli_screen_is_readable(trained_checkpoint, tmp_path):
    """What a person sees on the default path: plain role names, replies, no spurious warnings."""
    proc = run_module("deepmolm_plugin.cli", [
        "--model-path", str(trained_checkpoint), "--conv-mode", "auto", "--smiles", "CCO",
        "--max-new-tokens", "8", "--temperature", "0"], cwd=tmp_path, stdin=QUESTIONS)
    screen = proc.stdout + proc.stderr
    assert "USER: " in proc.stdout and "ASSISTANT: " in proc.stdout, screen
    assert "<|im_start|>" not in screen, screen
    assert "auto inferred conversation mode" not in screen, screen
    assert "generation flags are not valid" not in screen, screen
    # Two questions (then EOF): three input prompts, two replies, each with text.
    assert proc.stdout.count("USER: ") == 3, proc.stdout
    replies = [part.split("USER: ", 1)[0].strip() for part in proc.stdout.split("ASSISTANT: ")[1:]]
    assert len(replies) == 2 and all(replies), proc.stdout
    assert proc.stdout.rstrip().endswith("exit...")


def test_cli_display_changes_the_screen_only(capsys):
    """Role names on screen only; the host's conv-mode warning dropped only for the launcher's mode."""
    import llava.serve.cli as host_cli

    from deepmolm_plugin.patches import cli_display
    from deepmolm_plugin.patches.conversation_qwen2 import QWEN2_TEMPLATE, _RENDER_CHECK, _render

    cli_display.apply()
    cli_display.apply()  # idempotent
    roles = QWEN2_TEMPLATE.roles
    warning = cli_display.HOST_CONV_MODE_WARNING.format("llava_v0", "qwen2", "qwen2")
    with cli_display.launcher_chose_conv_mode("qwen2"):
        host_cli.print(warning)
        host_cli.print(f"{roles[1]}: ", end="")
        host_cli.print("exit...")
    host_cli.print(warning)  # a mode the user named: the host's warning stays
    assert capsys.readouterr().out == f"ASSISTANT: exit...\n{warning}\n"
    assert roles == ("<|im_start|>user\n", "<|im_start|>assistant\n")
    assert _render(QWEN2_TEMPLATE, _RENDER_CHECK[0]) == _RENDER_CHECK[1]  # prompts unchanged


def test_chat_cli_fusion_model_needs_a_molecule(trained_checkpoint, tmp_path):
    image = tmp_path / "any.png"
    image.write_bytes(b"")  # never read: the check comes first
    proc = run_module("deepmolm_plugin.cli", ["--model-path", str(trained_checkpoint), "--image-file", str(image)],
                      cwd=tmp_path, stdin=QUESTIONS, check=False)
    assert proc.returncode != 0
    assert "'fusion' projector, which needs the molecule" in proc.stderr
    assert "--smiles or --structure" in proc.stderr


def _write_questions(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _vqa_args(checkpoint, questions, answers, structures, *extra):
    return ["--model-path", str(checkpoint), "--question-file", str(questions), "--answers-file", str(answers),
            "--image-folder", str(questions.parent), "--structure-folder", str(structures),
            "--conv-mode", "auto", "--temperature", "0", "--max-new-tokens", "8", *extra]


def test_model_vqa_chunks_cover_every_question_and_share_the_feature_cache(trained_checkpoint, tiny_setup, tmp_path):
    from deepmolm_plugin.molecule import render_molecule

    render_molecule("CC(=O)O").save(tmp_path / "acid.png")
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [
        {"question_id": "q-image", "image": "acid.png", "smiles": "CC(=O)O", "text": "What is this molecule?"},
        {"question_id": "q-smiles", "smiles": "CCO", "text": "What is this molecule?"},
        {"question_id": "q-structure", "structure": "mol1.sdf", "text": "Describe this molecule."},
    ])
    answers = [tmp_path / "answers" / f"chunk{i}.jsonl" for i in range(2)]
    procs = [None, None]

    def chunk(i):  # two chunks at once, as on two GPUs
        procs[i] = run_module("deepmolm_plugin.eval.model_vqa", _vqa_args(
            trained_checkpoint, questions, answers[i], tiny_setup["structures"],
            "--num-chunks", "2", "--chunk-idx", str(i), "--vision-feature-cache", str(tmp_path / "features")),
            cwd=tmp_path, check=False)

    threads = [threading.Thread(target=chunk, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for proc in procs:
        assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [json.loads(line) for path in answers for line in path.read_text().splitlines()]
    assert sorted(row["question_id"] for row in rows) == ["q-image", "q-smiles", "q-structure"]
    assert all(len(path.read_text().splitlines()) >= 1 for path in answers)
    assert all(isinstance(row["text"], str) and row["text"].strip() for row in rows), rows
    renders = sorted(p.name for p in (tmp_path / "answers" / "renders").iterdir())
    assert len(renders) == 2 and not any(name.startswith("q-image") for name in renders)
    # Both chunks kept their views' tower features in the one shared folder: three views, three files.
    assert len(list((tmp_path / "features").rglob("*.safetensors"))) == 3


def test_model_vqa_bad_smiles_names_the_question(trained_checkpoint, tiny_setup, tmp_path):
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [
        {"question_id": "q-ok", "smiles": "CCO", "text": "What is this molecule?"},
        {"question_id": "q-bad", "smiles": "C1CC", "text": "What is this molecule?"},
    ])
    proc = run_module("deepmolm_plugin.eval.model_vqa", _vqa_args(
        trained_checkpoint, questions, tmp_path / "answers.jsonl", tiny_setup["structures"]),
        cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "question 'q-bad'" in proc.stderr and "C1CC" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_model_vqa_and_chat_refuse_a_prompt_longer_than_the_context(trained_checkpoint, tiny_setup, tmp_path):
    # was: the host cut the prompt (question and assistant turn) at the model's context of
    # 256 and the cut prompt was answered and scored; and a bare --answers-file name (the
    # host's default answer.jsonl) was a FileNotFoundError after the model had loaded
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [
        {"question_id": "q-ok", "smiles": "CCO", "text": "What is this molecule?"},
        {"question_id": "q-long", "smiles": "CCO", "text": "word " * 400 + "What is this molecule?"},
        {"question_id": "q-after", "smiles": "CCN", "text": "What is this molecule?"},
    ])
    proc = run_module("deepmolm_plugin.eval.model_vqa", _vqa_args(
        trained_checkpoint, questions, "answers.jsonl", tiny_setup["structures"]), cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "question 'q-long': the prompt is" in proc.stderr and "more than this model's context of 256" in proc.stderr
    assert "1 of 3 questions failed" in proc.stderr
    # the questions around it are answered; it is in the failures file
    assert [json.loads(line)["question_id"] for line in (tmp_path / "answers.jsonl").read_text().splitlines()
            ] == ["q-ok", "q-after"]
    failed = [json.loads(line) for line in (tmp_path / "answers.failures.jsonl").read_text().splitlines()]
    assert [f["question_id"] for f in failed] == ["q-long"] and "context of 256" in failed[0]["reason"]
    assert not list(tmp_path.glob(".answers.jsonl.partial-*"))
    # the chat CLI says so and goes on (it ended the chat, exit 1): the question is left out
    # of the history, the next one is answered, with the image given once
    proc = run_module("deepmolm_plugin.cli", ["--model-path", str(trained_checkpoint), "--smiles", "CCO",
                                              "--temperature", "0", "--max-new-tokens", "4", "--debug"],
                      cwd=tmp_path, stdin="word " * 400 + "\nWhat is it?\nAnd now?\n", check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.count("error: the prompt is") == 1 and "start a new one" in proc.stderr
    prompts = [ast.literal_eval(line.strip())["prompt"] for line in proc.stdout.splitlines()
               if line.strip().startswith("{'prompt'")]
    assert len(prompts) == 3 and "word word" not in prompts[1] + prompts[2]
    assert prompts[1].count("<image>") == prompts[2].count("<image>") == 1
    assert prompts[2].index("<image>") < prompts[2].index("What is it?") < prompts[2].index("And now?")


FUSION_CONFIG = SimpleNamespace(mm_projector_type="fusion", fp_bits=4096, fp_levels=4)


def _expected_fp(smiles):
    from deepmolm_plugin.molecule import fingerprint_record, molecule_from_smiles

    return fingerprint_record(molecule_from_smiles(smiles, id=smiles, policy="auto"))


def _stub_host(monkeypatch, generate):
    """The host's own model_vqa module with a stub model whose `generate(call, inputs,
    **kwargs)` is `generate` (`call`: 0, 1, ...) and whose tokenizer decodes any tokens as
    "an answer" (no tokens as "")."""
    import llava.eval.model_vqa as host
    from llava.model import builder

    calls = []

    class StubModel:
        config = SimpleNamespace(mm_use_im_start_end=False, image_aspect_ratio=None)
        device, dtype = torch.device("cpu"), torch.float32

        def generate(self, inputs, **kwargs):
            calls.append(kwargs)
            return generate(len(calls) - 1, inputs, **kwargs)

        def predict_properties(self, inputs, images, graphs, **kwargs):  # the KFLM2 head's
            return [{"p": float(len(calls))}]

    class StubTokenizer:
        bos_token_id = None

        def __call__(self, text):
            return SimpleNamespace(input_ids=[1, 2])

        def batch_decode(self, ids, skip_special_tokens=True):
            return ["an answer" if ids.shape[-1] else ""]

    def processor(images, return_tensors):
        return {"pixel_values": torch.zeros(len(images), 3, 8, 8)}

    monkeypatch.setattr(builder, "load_pretrained_model", lambda *a, **k: (StubTokenizer(), StubModel(), processor, 64))
    # The host's eval_model calls llava.utils.disable_torch_init(), which replaces these two
    # methods for the whole process (fine in its own process); restore them after this test.
    for layer in (torch.nn.Linear, torch.nn.LayerNorm):
        monkeypatch.setattr(layer, "reset_parameters", layer.reset_parameters)
    return host, calls


def _stub_args(questions, answers, *extra):
    from deepmolm_plugin.eval import model_vqa

    return model_vqa.build_parser().parse_args([
        "--model-path", "stub", "--question-file", str(questions), "--answers-file", str(answers),
        "--conv-mode", "llava_v1", *extra])


def test_each_question_molecule_reaches_its_generate(tmp_path, monkeypatch):
    """The host's own eval loop, a stub model: generate sees each question's molecule_fp."""
    from deepmolm_plugin.eval import model_vqa
    from deepmolm_plugin.eval.resume import asked_digests

    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    smiles = ["CCO", "c1ccccc1", "CCO"]
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": f"q{i}", "smiles": s, "text": "What?"} for i, s in enumerate(smiles)])
    args = _stub_args(questions, tmp_path / "a.jsonl", "--max-new-tokens", "3")
    original = host.load_pretrained_model
    model_vqa.run_host_eval(host, args, FUSION_CONFIG)

    assert len(calls) == 3
    for kwargs, s in zip(calls, smiles):
        assert torch.equal(kwargs["molecule_fp"], _expected_fp(s).unsqueeze(0)) and kwargs["max_new_tokens"] == 3
        if not torch.cuda.is_available():
            assert kwargs["images"].dtype == torch.float32  # the host's .half() followed the model's dtype
    assert not torch.equal(calls[0]["molecule_fp"], calls[1]["molecule_fp"])
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [line["question_id"] for line in lines] == ["q0", "q1", "q2"]
    # what each was asked about, for the report to hold against its references
    assert [line["metadata"]["asked"] for line in lines] == [asked_digests({"smiles": s}) for s in smiles]
    assert not (tmp_path / "a.failures.jsonl").exists()
    assert host.load_pretrained_model is original  # bound only during the run
    assert host.Image.__name__ == "PIL.Image"  # the host module's PIL is never replaced
    assert "cuda" not in torch.Tensor.__dict__ and "half" not in torch.Tensor.__dict__


def test_model_vqa_keeps_going_past_failed_questions(tmp_path, monkeypatch, capsys):
    """A batch job: a question that cannot be asked (a bad molecule, before the model loads;
    a prompt past the context, while generating) is reported on stderr and in
    `<answers>.failures.jsonl`, the others are answered, and the run ends with
    QuestionsFailed (exit 1). It stopped at the first one, the questions after it unasked."""
    from deepmolm_plugin.eval import model_vqa
    from deepmolm_plugin.model.llava_qwen2 import PromptTooLong

    def generate(call, inputs, **kwargs):
        if call == 1:  # the second question asked: "long"
            raise PromptTooLong("the prompt is 300 tokens, more than this model's context of 256")
        return torch.tensor([[5]])

    host, calls = _stub_host(monkeypatch, generate)
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": "a", "smiles": "CCO", "text": "What?"},
                                 {"question_id": "bad", "smiles": "C1CC", "text": "What?"},
                                 {"question_id": "long", "smiles": "CCN", "text": "What?"},
                                 {"question_id": 7, "smiles": "CCC", "text": "What?"}])
    answers = tmp_path / "a.jsonl"
    with pytest.raises(model_vqa.QuestionsFailed, match=r"2 of 4 questions failed \(.*a\.failures\.jsonl"):
        model_vqa.run_host_eval(host, _stub_args(questions, answers), FUSION_CONFIG)
    assert len(calls) == 3  # "bad" never reached the model
    assert [json.loads(line)["question_id"] for line in answers.read_text().splitlines()] == ["a", 7]
    failed = [json.loads(line) for line in (tmp_path / "a.failures.jsonl").read_text().splitlines()]
    assert [f["question_id"] for f in failed] == ["bad", "long"]
    assert "C1CC" in failed[0]["reason"] and "context of 256" in failed[1]["reason"]
    err = capsys.readouterr().err
    assert "error: question 'bad': " in err and "error: question 'long': the prompt is 300 tokens" in err

    # a rerun without failures leaves no failures file of the earlier run
    _write_questions(questions, [{"question_id": "a", "smiles": "CCO", "text": "What?"}])
    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    model_vqa.run_host_eval(host, _stub_args(questions, answers), FUSION_CONFIG)
    assert not (tmp_path / "a.failures.jsonl").exists()
    assert [json.loads(line)["question_id"] for line in answers.read_text().splitlines()] == ["a"]

    # every question failing: an empty answers file, all of them in the failures file
    _write_questions(questions, [{"question_id": "x", "smiles": "C1CC", "text": "What?"}])
    with pytest.raises(model_vqa.QuestionsFailed, match="1 of 1 questions failed"):
        model_vqa.run_host_eval(host, _stub_args(questions, answers), FUSION_CONFIG)
    assert answers.read_text() == ""
    assert [json.loads(line)["question_id"] for line in (tmp_path / "a.failures.jsonl").read_text().splitlines()] \
        == ["x"]


def test_model_vqa_stopped_midway_keeps_its_answers_apart(tmp_path, monkeypatch, capsys):
    """A run stopped midway (Ctrl-C) leaves an earlier complete answers file as it was and
    keeps this run's answers so far in `<answers>.partial`, failures so far in the
    failures file; the host had truncated the answers file to the lines before the stop."""
    from deepmolm_plugin.eval import model_vqa
    from deepmolm_plugin.model.llava_qwen2 import PromptTooLong

    def generate(call, inputs, **kwargs):
        if call == 1:
            raise PromptTooLong("the prompt is 300 tokens, more than this model's context of 256")
        if call == 3:
            raise KeyboardInterrupt
        return torch.tensor([[5]])

    host, calls = _stub_host(monkeypatch, generate)
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": q, "smiles": "CCO", "text": "What?"} for q in "abcd"])
    answers = tmp_path / "a.jsonl"
    answers.write_text('{"question_id": "earlier"}\n')
    with pytest.raises(KeyboardInterrupt):
        model_vqa.run_host_eval(host, _stub_args(questions, answers), FUSION_CONFIG)
    assert answers.read_text() == '{"question_id": "earlier"}\n'
    kept = tmp_path / "a.jsonl.partial"
    assert [json.loads(line)["question_id"] for line in kept.read_text().splitlines()] == ["a", "c"]
    assert [json.loads(line)["question_id"] for line in (tmp_path / "a.failures.jsonl").read_text().splitlines()] \
        == ["b"]
    assert f"the answers made so far are in {kept} (--resume keeps them)" in capsys.readouterr().err
    assert not list(tmp_path.glob(".a.jsonl.partial-*"))


def test_a_relative_sidecar_is_read_from_the_question_files_folder(tmp_path, monkeypatch):
    """was: "sidecar side/ethanol.npy is relative but the record file's folder is unknown",
    with the --question-file (and its folder) given."""
    import numpy as np

    from deepmolm_plugin.eval import model_vqa

    tokens = _expected_fp("CCO")
    (tmp_path / "side").mkdir()
    np.save(tmp_path / "side" / "ethanol.npy", tokens.numpy())
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": "q1", "smiles": "CCO", "text": "What?", "molecule_fp": {
        "sidecar": "side/ethanol.npy", "offset": 0, "atoms": len(tokens)}}])
    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    monkeypatch.chdir(tmp_path.parent)  # not the question file's folder
    model_vqa.run_host_eval(host, _stub_args(questions, tmp_path / "out" / "a.jsonl"), FUSION_CONFIG)
    assert len(calls) == 1 and torch.equal(calls[0]["molecule_fp"], tokens.unsqueeze(0))


def test_model_vqa_resume_asks_only_what_was_not_answered(tmp_path, monkeypatch, capsys):
    """was: no way to resume: a run stopped after hours asked every question again. With
    --resume an answer is kept only when it was made with the same settings for the same
    question (line, image, tokens); the rest is asked, in question order."""
    from deepmolm_plugin.eval import model_vqa

    def run(lines, *extra, stop_at=None):
        def generate(call, inputs, **kwargs):
            if call == stop_at:
                raise KeyboardInterrupt
            return torch.tensor([[5]])

        host, calls = _stub_host(monkeypatch, generate)
        _write_questions(questions, lines)
        model_vqa.run_host_eval(host, _stub_args(questions, answers, *extra), FUSION_CONFIG)
        return len(calls)

    questions, answers = tmp_path / "questions.jsonl", tmp_path / "a.jsonl"
    lines = [{"question_id": q, "smiles": "CCO", "text": f"What is {q}?"} for q in "abcd"]
    with pytest.raises(KeyboardInterrupt):
        run(lines, stop_at=2)
    assert run(lines, "--resume") == 2  # c and d
    assert "--resume: 2 of 4 questions keep the answers" in capsys.readouterr().err
    assert [json.loads(x)["question_id"] for x in answers.read_text().splitlines()] == list("abcd")
    assert not (tmp_path / "a.jsonl.partial").exists()
    assert run(lines, "--resume") == 0  # all answered: the model is not asked at all
    assert [json.loads(x)["question_id"] for x in answers.read_text().splitlines()] == list("abcd")
    lines[2] = dict(lines[2], smiles="CCN")  # another molecule under the same id
    assert run(lines, "--resume") == 1
    assert run(lines, "--resume", "--max-new-tokens", "3") == 4  # other settings: nothing kept
    assert run(lines) == 4  # without --resume every question is asked
    edited = [json.loads(x) for x in answers.read_text().splitlines()]
    edited[0]["text"] = "HAND EDIT"  # was kept: only the digests were compared
    answers.write_text("".join(json.dumps(x) + "\n" for x in edited))
    assert run(lines, "--resume") == 1


def test_a_question_without_a_molecule_is_answered_without_the_property_heads_prediction(tmp_path, monkeypatch,
                                                                                          capsys):
    """was: refused ("the model's property head needs `smiles` or `structure`"), though the
    model answers it: the head is auxiliary."""
    from PIL import Image

    from deepmolm_plugin.eval import model_vqa

    config = SimpleNamespace(mm_projector_type="linear", fp_bits=4096, fp_levels=4, aux_property_task="kflm2")
    picture = Image.new("RGB", (64, 64), "red")
    picture.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    picture.save(tmp_path / "x.bmp")
    questions, answers = tmp_path / "q.jsonl", tmp_path / "out" / "a.jsonl"
    _write_questions(questions, [{"question_id": "pic", "image": "x.bmp", "text": "Colour?"},
                                 {"question_id": "mol", "image": "x.bmp", "smiles": "CCO", "text": "What is it?"}])
    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    args = model_vqa.build_parser().parse_args(["--model-path", "stub", "--question-file", str(questions),
                                                "--answers-file", str(answers), "--conv-mode", "llava_v1",
                                                "--image-folder", str(tmp_path)])
    model_vqa.run_host_eval(host, args, config)
    assert len(calls) == 2 and len(answers.read_text().splitlines()) == 2
    predicted = [json.loads(x)["question_id"] for x in (tmp_path / "out" / "a.aux_properties.jsonl").read_text()
                 .splitlines()]
    assert predicted == ["mol"]
    assert "note: 1 question(s) have no `smiles` or `structure` for the property head's graph (e.g. 'pic')" in \
        capsys.readouterr().err


def test_model_vqa_resume_keeps_what_belongs_together(tmp_path, monkeypatch):
    """was: the property head's predictions lost after a stopped --resume; nothing kept when
    the answers were written inside the model folder (they changed its digest); a picture
    copied with its size and time kept taken as unchanged; a prediction made before its
    question failed kept without an answer."""
    from PIL import Image

    from deepmolm_plugin.eval import model_vqa
    from deepmolm_plugin.model.llava_qwen2 import PromptTooLong

    aux_config = SimpleNamespace(mm_projector_type="fusion", fp_bits=4096, fp_levels=4, aux_property_task="kflm2")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    questions, answers = tmp_path / "q.jsonl", model / "a.jsonl"  # the answers beside the model's files
    aux = model / "a.aux_properties.jsonl"

    def run(lines, *extra, stop_at=None, fail_at=None):
        def generate(call, inputs, **kwargs):
            if call == stop_at:
                raise KeyboardInterrupt
            if call == fail_at:
                raise PromptTooLong("too long")
            return torch.tensor([[5]])

        host, calls = _stub_host(monkeypatch, generate)
        _write_questions(questions, lines)
        args = model_vqa.build_parser().parse_args(["--model-path", str(model), "--question-file", str(questions),
                                                    "--answers-file", str(answers), "--conv-mode", "llava_v1",
                                                    "--image-folder", str(tmp_path), *extra])
        model_vqa.run_host_eval(host, args, aux_config)
        return len(calls)

    ids = lambda path: [json.loads(x)["question_id"] for x in path.read_text().splitlines()]  # noqa: E731
    lines = [{"question_id": q, "smiles": "CCO", "text": f"What is {q}?"} for q in "ab"]
    assert run(lines) == 2 and ids(aux) == ["a", "b"]
    lines.append({"question_id": "c", "smiles": "CCN", "text": "What is c?"})
    with pytest.raises(KeyboardInterrupt):
        run(lines, "--resume", stop_at=0)
    assert run(lines, "--resume") == 1 and ids(answers) == ["a", "b", "c"] and ids(aux) == ["a", "b", "c"]
    assert run(lines, "--resume") == 0

    picture = Image.new("RGB", (64, 64), "red")
    picture.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    picture.save(tmp_path / "x.bmp")
    pictured = [{"question_id": "p", "image": "x.bmp", "smiles": "CCO", "text": "Colour?"}]
    assert run(pictured) == 1
    stat = (tmp_path / "x.bmp").stat()
    picture = Image.new("RGB", (64, 64), "blue")
    picture.putpixel((0, 0), (0, 0, 0))
    picture.save(tmp_path / "x.bmp")  # same size, and the time put back
    assert (tmp_path / "x.bmp").stat().st_size == stat.st_size
    os.utime(tmp_path / "x.bmp", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run(pictured, "--resume") == 1

    with pytest.raises(model_vqa.QuestionsFailed):
        run(lines, fail_at=1)
    assert ids(answers) == ["a", "c"] and ids(aux) == ["a", "c"]

    # the model folder's own files stay in its digest wherever the answers are (a stem rule
    # left model.safetensors out for --answers-file results/model.jsonl)
    from deepmolm_plugin.eval import resume

    settings = {"model": str(model)}
    before = resume.settings_digest(settings, tmp_path / "results" / "config.jsonl")
    (model / "config.json").write_text('{"retrained": true}')
    assert resume.settings_digest(settings, tmp_path / "results" / "config.jsonl") != before


def test_questions_sharing_an_image_each_get_their_own_molecule(tmp_path):
    """Questions are matched to generate calls by order, not by image: two lines with one
    image file and different molecules each get their own tokens, in file order."""
    from PIL import Image

    from deepmolm_plugin.eval.model_vqa import QuestionInputs, prepare_questions

    picture = Image.new("RGB", (8, 8), "white")
    picture.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    picture.save(tmp_path / "x.png")
    lines = [{"question_id": "a", "image": "x.png", "smiles": "CCO", "text": "?"},
             {"question_id": "b", "image": "x.png", "smiles": "CCN", "text": "?"}]
    _, inputs = prepare_questions(lines, str(tmp_path), tmp_path / "renders", FUSION_CONFIG)
    assert [q.question_id for q in inputs] == ["a", "b"]
    assert torch.equal(inputs[0].molecule_fp, _expected_fp("CCO"))
    assert torch.equal(inputs[1].molecule_fp, _expected_fp("CCN"))
    seen = []
    state = QuestionInputs(inputs, uses_molecules=True)
    generate = state.bind(lambda inputs=None, **kwargs: seen.append(kwargs["molecule_fp"]))
    generate(None, images=torch.zeros(1, 3, 8, 8), image_sizes=[(8, 8)])
    with pytest.raises(RuntimeError, match="questions never generated for.*'b'"):
        state.finish()
    with pytest.raises(RuntimeError, match="question 'b' got image size \\[\\(9, 9\\)\\].*out of step"):
        generate(None, images=torch.zeros(1, 3, 8, 8), image_sizes=[(9, 9)])
    with pytest.raises(RuntimeError, match="more often than there are questions"):
        generate(None, images=torch.zeros(1, 3, 8, 8), image_sizes=[(8, 8)])
    assert torch.equal(seen[0], _expected_fp("CCO").unsqueeze(0))


def test_cli_conformer_policies_match_the_molecule_package():
    from deepmolm_plugin.cli import CONFORMER_POLICIES
    from deepmolm_plugin.molecule import POLICIES

    assert CONFORMER_POLICIES == tuple(POLICIES)


def test_tiles_mode_models_get_their_tiles_in_chat_and_eval(tmp_path):
    """The host's scripts make only the global view; a tiles-mode model gets the same tiles
    as the training batch (the processor's tile_inputs) from the CLI and eval seams."""
    from PIL import Image

    from conftest import tiny_encoder_config
    from deepmolm_plugin.cli import bind_model_inputs, tile_arguments
    from deepmolm_plugin.encoder import DeepEncoderImageProcessor
    from deepmolm_plugin.eval.model_vqa import QuestionInput, QuestionInputs

    Image.new("RGB", (300, 150), "white").save(tmp_path / "wide.png")
    tiles_mode = DeepEncoderImageProcessor.from_config(tiny_encoder_config(), mode="tiles")
    model = SimpleNamespace(device=torch.device("cpu"), dtype=torch.float32)
    expected, grid = tiles_mode.tile_inputs(Image.open(tmp_path / "wide.png").convert("RGB"))
    assert grid is not None and len(expected) == grid[0] * grid[1]
    assert tile_arguments(DeepEncoderImageProcessor.from_config(tiny_encoder_config()), tmp_path / "wide.png",
                          model) == {}  # base mode: nothing added
    seen = []
    chat = bind_model_inputs(lambda inputs=None, **kw: seen.append(kw), model, None,
                             tile_arguments(tiles_mode, tmp_path / "wide.png", model))
    chat(None, images=torch.zeros(1, 3, 128, 128), do_sample=False, temperature=0, top_p=None)
    state = QuestionInputs([QuestionInput("q", str(tmp_path / "wide.png"))], uses_molecules=False)
    state.model, state.image_processor = model, tiles_mode
    state.bind(lambda inputs=None, **kw: seen.append(kw))(None, images=torch.zeros(1, 3, 128, 128),
                                                         image_sizes=[(300, 150)], do_sample=False, temperature=0)
    for kwargs in seen:
        assert torch.equal(kwargs["tile_images"][0], expected) and kwargs["tile_grids"] == [grid]
        assert "temperature" not in kwargs and "top_p" not in kwargs  # greedy: no sampling-only flags


def test_a_questions_molecule_sources_must_be_one_molecule(tmp_path):
    """A question's SMILES (its depiction), structure and inline tokens went into the model
    side by side without a check: ethanol's picture with benzene's tokens, or with 9 token
    rows for 3 atoms. The same check as training's, in the one input resolver."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from deepmolm_plugin.eval.model_vqa import QuestionError, prepare_questions

    benzene = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1"))
    AllChem.EmbedMolecule(benzene, randomSeed=1)
    Chem.MolToMolFile(benzene, str(tmp_path / "benzene.sdf"))
    tokens = [[1, 2, 3, 4]] * 9

    def prepare(**fields):
        line = {"question_id": "q1", "text": "What is this molecule?", **fields}
        return prepare_questions([line], str(tmp_path), tmp_path / "renders", FUSION_CONFIG,
                                 structure_folder=str(tmp_path))

    with pytest.raises(QuestionError, match=r"question 'q1': its structure \(.*benzene.sdf.*\) is 'c1ccccc1' but "
                                            r"its SMILES is 'CCO'"):
        prepare(smiles="CCO", structure="benzene.sdf")
    with pytest.raises(QuestionError, match="molecule_fp has 9 atom rows but its SMILES 'CCO' has 3 heavy atoms"):
        prepare(smiles="CCO", molecule_fp=tokens)
    with pytest.raises(QuestionError, match=r"molecule_fp has 2 atom rows but its structure \(.*\) has 6 heavy"):
        prepare(structure="benzene.sdf", molecule_fp=tokens[:2])
    _, inputs = prepare(smiles="c1ccccc1", structure="benzene.sdf")  # one molecule twice: fine
    assert inputs[0].molecule_fp.shape == (6, 4)
    for atom in benzene.GetAtoms():  # a reaction tool's atom-map numbers are no other molecule
        atom.SetAtomMapNum(atom.GetIdx() + 1 if atom.GetAtomicNum() > 1 else 0)
    Chem.MolToMolFile(benzene, str(tmp_path / "mapped.sdf"))
    prepare(smiles="c1ccccc1", structure="mapped.sdf")


def test_chat_cli_gives_the_model_the_processed_pixels_not_a_float16_copy(trained_checkpoint, monkeypatch):
    """The host CLI casts the processed image to float16 before every `generate`; the fp32
    model saw pixels rounded through float16 (training, eval and the GUI never round them)."""
    import builtins

    import llava.serve.cli as host_cli

    from deepmolm_plugin import cli
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2ForCausalLM

    for layer in (torch.nn.Linear, torch.nn.LayerNorm):  # the host CLI's disable_torch_init(): as above
        monkeypatch.setattr(layer, "reset_parameters", layer.reset_parameters)
    processed, seen = [], []
    process = host_cli.process_images
    monkeypatch.setattr(host_cli, "process_images", lambda *a, **kw: processed.append(process(*a, **kw)) or processed[-1])
    monkeypatch.setattr(LlavaQwen2ForCausalLM, "generate",
                        lambda self, inputs=None, **kw: seen.append((kw["images"], self.dtype)) or inputs[:, -1:])
    questions = ["What is it?"]

    def ask(prompt=""):
        if not questions:
            raise EOFError  # the user's Ctrl-D ends the chat
        return questions.pop(0)

    monkeypatch.setattr(builtins, "input", ask)
    recorder = host_cli.process_images
    cli.main(["--model-path", str(trained_checkpoint), "--smiles", "CCO", "--device", "cpu", "--temperature", "0"])
    from deepmolm_plugin.dtypes import auto_dtype

    (images, dtype), = seen
    # the chat's dtype is "auto": float32 on most CPUs, bfloat16 on one with native bf16
    assert dtype == auto_dtype("cpu") and processed[0].dtype == torch.float32
    assert torch.equal(images, processed[0].to(dtype))  # was: processed[0].half().float(), 2.4e-4 off
    assert host_cli.process_images is recorder  # the CLI's wrapper is gone after the chat



def _model_trained_with(checkpoint, folder, **settings):
    """The checkpoint's files (linked), its config.json holding `settings` instead."""
    folder.mkdir()
    for path in checkpoint.iterdir():
        if path.name != "config.json":
            (folder / path.name).symlink_to(path)
    config = json.loads((checkpoint / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **settings}))
    return folder


def test_inference_draws_and_embeds_molecules_as_the_model_was_trained(trained_checkpoint, tiny_setup, tmp_path,
                                                                       capsys, monkeypatch):
    """Was: the chat, eval and the GUI used conformer policy auto and 1024 px depictions
    whatever training had used (a structure's file conformer against training's generated
    one: other tokens, without a word)."""
    from PIL import Image

    from deepmolm_plugin.cli import model_depiction_settings
    from deepmolm_plugin.gui.session import ChatSession

    saved = json.loads((trained_checkpoint / "config.json").read_text())
    assert (saved["conformer_policy"], saved["render_size"]) == ("auto", 1024)  # training records them
    model = _model_trained_with(trained_checkpoint, tmp_path / "model", conformer_policy="generate", render_size=512)
    from deepmolm_plugin import usage

    reads = []
    monkeypatch.setattr(usage, "model_config", lambda *a, real=usage.model_config: reads.append(a) or real(*a))
    assert model_depiction_settings(str(model), None) == "generate"
    assert len(reads) == 1  # render_size and conformer_policy from one read (it was two)
    assert model_depiction_settings(str(model), "keep") == "keep"  # an ablation may: said, not refused
    assert "the model was trained with conformer policy 'generate'" in capsys.readouterr().err
    assert model_depiction_settings(str(trained_checkpoint.parent), None) == "auto"  # no config: the default

    session = ChatSession.load(str(model), device="cpu", policy=model_depiction_settings(str(model), None))
    assert (session.resolver.policy, session.resolver.render_size) == ("generate", 512)

    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": "q", "smiles": "CCO", "text": "What is this molecule?"}])
    answers = tmp_path / "out" / "answers.jsonl"
    run_module("deepmolm_plugin.eval.model_vqa", _vqa_args(model, questions, answers, tiny_setup["structures"]),
               cwd=tmp_path)
    drawn = list((answers.parent / "renders").glob("*.png"))
    assert drawn and all(Image.open(p).size == (512, 512) for p in drawn)


@pytest.mark.parametrize("render_size", [7, "1024", True])
def test_a_bad_render_size_in_the_model_config_is_one_line_before_loading(trained_checkpoint, tiny_setup, tmp_path,
                                                                           render_size):
    """was: a ValueError traceback from the chat CLI and model_vqa (the GUI shares the check)."""
    model = _model_trained_with(trained_checkpoint, tmp_path / "model", render_size=render_size)
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": "q", "smiles": "CCO", "text": "What is this molecule?"}])
    for module, args in (("deepmolm_plugin.eval.model_vqa", _vqa_args(model, questions, tmp_path / "a.jsonl",
                                                                      tiny_setup["structures"])),
                         ("deepmolm_plugin.cli", ["--model-path", str(model), "--smiles", "CCO"]),
                         ("deepmolm_plugin.gui", ["--model-path", str(model), "--port", "7999"])):
        proc = run_module(module, args, cwd=tmp_path, check=False, stdin="", timeout=180)  # a GUI that started would serve on
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert f"--model-path {model}: the model config's render_size is {render_size!r}, not a depiction side" \
            in proc.stderr


def test_model_vqa_gives_the_model_the_processed_pixels_not_the_hosts_float16_copy(tmp_path, monkeypatch):
    """On CUDA the host's float16 cast of the image (`.half()`, then onto the GPU) stays: a float32
    or bfloat16 model saw pixels rounded through float16 (the chat CLI's fix, in eval)."""
    import llava.eval.model_vqa as host

    from deepmolm_plugin.eval.model_vqa import QuestionInput, QuestionInputs

    from PIL import Image

    Image.new("RGB", (16, 16), "white").save(tmp_path / "x.png")
    pixels = torch.rand(1, 3, 16, 16)  # what the host's process_images returns for its one image
    monkeypatch.setattr(host, "process_images", lambda images, processor, config: pixels)
    state = QuestionInputs([QuestionInput("q", str(tmp_path / "x.png"))], uses_molecules=False)
    seen = []
    with state.installed(host):
        state.model = SimpleNamespace(device=torch.device("cpu"), dtype=torch.float32)
        state.image_processor = SimpleNamespace(mode="base")
        image_tensor = host.process_images([None], None, None)[0]  # the host's lines
        state.bind(lambda inputs=None, **kw: seen.append(kw["images"]))(
            None, images=image_tensor.unsqueeze(0).half(), image_sizes=[(16, 16)])
    assert torch.equal(seen[0], pixels) and not torch.equal(pixels.half().float(), pixels)
    assert host.process_images is not None and host.process_images.__name__ == "<lambda>"  # restored
