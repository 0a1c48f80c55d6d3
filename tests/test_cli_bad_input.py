"""Bad input at every console entry point: one clear line, a non-zero exit, no traceback.

Each case runs one command as a user would (a subprocess: the console script, or
``python -m``) on bad input built in a temporary folder: a missing file, an empty file, a
column that is not in the CSV header, a nonsense number, a file that is not what the
option wants. It must exit non-zero without a traceback, with one stderr line naming the
problem (the option, the path or the column). Bad input must fail before anything heavy
runs: the model paths here are empty stand-ins (a folder with ``{}`` as config.json), so a
check that came after the model load would show as a traceback.

The selected cases run concurrently (a module fixture starts them all; each test waits for
its own), so the battery costs about its slowest few commands, not their sum.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
# Console scripts as installed (setup.cfg), else the same entry point through python -m.
SCRIPTS = {
    "deepmolm-prepare": ["-m", "deepmolm_plugin.data.prepare"],
    "deepmolm-fingerprint": ["-m", "deepmolm_plugin.molecule.tools", "fingerprint"],
    "deepmolm-render": ["-m", "deepmolm_plugin.molecule.tools", "render"],
    "deepmolm-kflm2": ["-m", "deepmolm_plugin.property.cli"],
}
MODULES = {
    "train": "deepmolm_plugin.train",
    "chat": "deepmolm_plugin.cli",
    "vqa": "deepmolm_plugin.eval.model_vqa",
    "report": "deepmolm_plugin.eval.report",
    "questions": "deepmolm_plugin.eval.questions",
    "gui": "deepmolm_plugin.gui",
}
JOBS = max(2, min(4, os.cpu_count() or 2))


def command(tool: str) -> list:
    if tool in MODULES:
        return [sys.executable, "-m", MODULES[tool]]
    script = BIN / tool
    return [str(script)] if script.is_file() else [sys.executable, *SCRIPTS[tool]]


def make_inputs(root: Path) -> dict:
    """Every input file the cases name, good and bad; paths by short name."""
    f = {"root": root}

    def write(name, text):
        path = root / name
        path.write_text(text)
        f[name.replace(".", "_")] = path
        return path

    for name in ("empty.csv", "empty.sdf", "empty.json", "empty.jsonl"):
        write(name, "")
    write("ok.csv", "smiles,y\nCCO,1.0\nCCC,2.0\nCCCO,1.5\n")
    write("header_only.csv", "smiles,y\n")
    write("ok.smi", "CCO ethanol\n")
    write("dict.json", json.dumps({"id": "a"}))
    write("truncated.json", '[{"id": "a", "conversations": [')
    record = {"id": "a", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                           {"from": "gpt", "value": "Ethanol."}], "smiles": "CCO"}
    write("train.json", json.dumps([record]))
    write("questions.jsonl", json.dumps({"question_id": "q1", "text": "What is it?", "smiles": "CCO",
                                         "answer": "Ethanol.", "task": "description"}) + "\n")
    write("truncated.jsonl", '{"question_id": "q1", "text": \n')
    write("answers.jsonl", json.dumps({"question_id": "q1", "text": "Ethanol.", "model_id": "m"}) + "\n")
    model = root / "model"  # stands in for a checkpoint folder: never loaded by a bad-input case
    model.mkdir()
    (model / "config.json").write_text("{}")
    # its tokenizer is: the training launcher refuses one without a vocabulary up front (twelfth round)
    from tiny_models import make_tiny_tokenizer

    make_tiny_tokenizer(model)
    f["model"] = model
    llm = root / "llm-only"  # a language model's folder (no vision tower), also never loaded
    llm.mkdir()
    (llm / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    f["llm_only"] = llm
    f["missing"] = root / "missing"
    return f


# name -> (tool, arguments (formatted with the input paths and {out}: this case's output
# folder), the texts one stderr line must hold (formatted alike), the exit status or None
# for any non-zero one)
CASES = {
    # deepmolm-prepare
    "prepare-missing-input": ("deepmolm-prepare", "--format csv --input {missing}.csv --out {out} --label-columns y",
                              ["--input", "{missing}.csv", "does not exist"], 2),
    "prepare-empty-input": ("deepmolm-prepare", "--format csv --input {empty_csv} --out {out} --label-columns y",
                            ["{empty_csv}", "is empty"], 2),
    "prepare-wrong-smiles-column": ("deepmolm-prepare", "--format csv --input {ok_csv} --out {out} --label-columns y "
                                    "--smiles-column nope", ["'nope'", "SMILES column"], 2),
    "prepare-header-only": ("deepmolm-prepare", "--format csv --input {header_only_csv} --out {out} --label-columns y",
                            ["no records", "no items"], 1),  # was: exit 1 and only "0 items -> 0 records"
    "prepare-negative-limit": ("deepmolm-prepare", "--format csv --input {ok_csv} --out {out} --label-columns y "
                               "--limit -1", ["--limit", "-1"], 2),
    # deepmolm-fingerprint / deepmolm-render: a bad record is a FAILED line and exit 1 (the batch goes on)
    "fingerprint-missing-file": ("deepmolm-fingerprint", "{missing}.sdf --no-progress",
                                 ["{missing}.sdf", "no such file"], 1),
    "fingerprint-bad-smiles": ("deepmolm-fingerprint", "--smiles C1CC --no-progress", ["C1CC", "unparseable"], 1),
    "fingerprint-out-in-missing-folder": ("deepmolm-fingerprint", "{ok_smi} --out {missing}/x.jsonl --no-progress",
                                          ["--out", "{missing}/x.jsonl", "no such folder"], 2),
    "render-zero-size": ("deepmolm-render", "--smiles CCO --size 0 --out {out} --no-progress", ["--size", "0"], 2),
    "render-out-is-a-file": ("deepmolm-render", "--smiles CCO --out {ok_csv} --no-progress",
                             ["--out", "{ok_csv}", "is a file"], 2),
    # deepmolm-kflm2
    "kflm2-missing-data": ("deepmolm-kflm2", "--data {missing}.csv --targets y --task regression --out {out}",
                           ["--data", "{missing}.csv", "no such file"], 2),
    "kflm2-empty-data": ("deepmolm-kflm2", "--data {empty_csv} --targets y --task regression --out {out}",
                         ["--data", "{empty_csv}", "empty"], 2),
    "kflm2-wrong-targets": ("deepmolm-kflm2", "--data {ok_csv} --targets nope --task regression --out {out}",
                            ["--targets", "'nope'", "{ok_csv}"], 2),
    "kflm2-wrong-smiles-column": ("deepmolm-kflm2", "--data {ok_csv} --smiles-column nope --targets y "
                                  "--task regression --out {out}", ["--smiles-column", "'nope'", "{ok_csv}"], 2),
    "kflm2-zero-seeds": ("deepmolm-kflm2", "--data {ok_csv} --targets y --task regression --seeds 0 --out {out}",
                         ["--seeds", "0"], 2),
    # python -m deepmolm_plugin.train (the host's train.py): all before the model loads
    "train-missing-data": ("train", "--model_name_or_path {model} --data_path {missing}.json --output_dir {out}",
                           ["--data_path", "{missing}.json", "no such file"], 2),
    "train-empty-data": ("train", "--model_name_or_path {model} --data_path {empty_json} --output_dir {out}",
                         ["--data_path", "{empty_json}", "empty"], 2),
    "train-data-not-a-list": ("train", "--model_name_or_path {model} --data_path {dict_json} --output_dir {out}",
                              ["--data_path", "{dict_json}", "JSON list"], 2),
    "train-data-not-json": ("train", "--model_name_or_path {model} --data_path={truncated_json} --output_dir {out}",
                            ["--data_path", "{truncated_json}", "not JSON"], 2),
    "train-missing-model": ("train", "--model_name_or_path {missing} --data_path {train_json} --output_dir {out}",
                            ["--model_name_or_path", "{missing}", "no such folder"], 2),
    "train-missing-structure-folder": ("train", "--model_name_or_path {model} --data_path {train_json} "
                                       "--structure_folder {missing} --output_dir {out}",
                                       ["--structure_folder", "{missing}", "no such folder"], 2),
    "train-zero-fp-bits": ("train", "--model_name_or_path {model} --data_path {train_json} --fp_bits 0 "
                           "--output_dir {out} --report_to none", ["--fp_bits", "0"], 2),
    # transformers' own checks of TrainingArguments (`--bf16 True` on a CPU without
    # --use_cpu is the common one; this one fails on any hardware): was a traceback
    "train-transformers-check": ("train", "--model_name_or_path {model} --data_path {train_json} --output_dir {out} "
                                 "--report_to none --version qwen2 --load_best_model_at_end True --eval_strategy no",
                                 ["load_best_model_at_end"], 2),
    "train-misspelt-option": ("train", "--model_name_or_path {model} --data_path {train_json} --output_dir {out} "
                              "--learing_rate 1e-3", ["unrecognized arguments", "--learing_rate 1e-3"], 2),
    # python -m deepmolm_plugin.cli (chat)
    "chat-missing-model": ("chat", "--model-path {missing} --smiles CCO", ["--model-path", "{missing}",
                                                                            "no such folder"], 2),
    "chat-missing-structure": ("chat", "--model-path {model} --structure {missing}.sdf",
                               ["--structure", "{missing}.sdf", "no such file"], 2),
    "chat-empty-structure": ("chat", "--model-path {model} --structure {empty_sdf}",
                             ["--structure", "empty.sdf", "no molecules"], 2),
    "chat-bare-name-not-a-folder": ("chat", "--model-path nosuchmodel --smiles CCO",  # was: ~20 s of Hub retries
                                    ["--model-path", "nosuchmodel", "no such folder", "owner/name"], 2),
    "chat-llm-without-tower": ("chat", "--model-path {llm_only} --smiles CCO",  # was: TypeError in process_images
                               ["--model-path", "{llm_only}", "without a vision tower"], 2),
    "chat-structure-is-a-folder": ("chat", "--model-path {model} --structure {root}",
                                   ["--structure", "{root}", "is a folder"], 2),
    # the GUI and model_vqa share the chat's check (the GUI crashed on a missing mm_projector)
    "gui-llm-without-tower": ("gui", "--model-path {llm_only} --device cpu",
                              ["--model-path", "{llm_only}", "without a vision tower"], 2),
    "vqa-llm-without-tower": ("vqa", "--model-path {llm_only} --question-file {questions_jsonl} "
                              "--answers-file {out}/a.jsonl", ["--model-path", "{llm_only}", "without a vision tower"],
                              None),
    "chat-bad-smiles": ("chat", "--model-path {model} --smiles C1CC", ["--smiles", "C1CC", "unparseable"], 2),
    "chat-empty-smiles": ("chat", "--model-path {model} --smiles ''",  # was: "molecule None: no molecule field"
                          ["--smiles: empty SMILES"], 2),
    "chat-tiny-temperature": ("chat", "--model-path {model} --smiles CCO --temperature 1e-40",  # was: a sampler
                              ["--temperature 1e-40 is too small to sample with", "use 0"], 2),  # RuntimeError
    "chat-missing-image": ("chat", "--model-path {model} --image-file {missing}.png",
                           ["--image-file", "{missing}.png", "no such file"], 2),
    "chat-zero-max-new-tokens": ("chat", "--model-path {model} --smiles CCO --max-new-tokens 0",
                                 ["--max-new-tokens", "0"], 2),
    # was torch's RuntimeError ("Expected one of cpu, cuda, ...") once the model loaded
    "chat-bad-device": ("chat", "--model-path {model} --smiles CCO --device bogus",
                        ["--device 'bogus'", "give cpu, cuda or cuda:N"], 2),
    "gui-bad-device": ("gui", "--model-path {model} --device CPU", ["--device 'CPU'", "give cpu, cuda or cuda:N"], 2),
    # python -m deepmolm_plugin.eval.model_vqa
    "vqa-missing-model": ("vqa", "--model-path {missing} --question-file {questions_jsonl}",
                          ["--model-path", "{missing}", "no such folder"], 2),
    "vqa-missing-question-file": ("vqa", "--model-path {model} --question-file {missing}.jsonl",
                                  ["--question-file", "{missing}.jsonl", "no such file"], 2),
    "vqa-empty-question-file": ("vqa", "--model-path {model} --question-file {empty_jsonl}",
                                ["--question-file", "{empty_jsonl}", "no questions"], None),
    "vqa-question-file-not-json": ("vqa", "--model-path {model} --question-file {truncated_jsonl}",
                                   ["{truncated_jsonl}", "line 1", "not JSON"], None),
    "vqa-zero-num-chunks": ("vqa", "--model-path {model} --question-file {questions_jsonl} --num-chunks 0",
                            ["--num-chunks"], 2),
    "vqa-negative-chunk-idx": ("vqa", "--model-path {model} --question-file {questions_jsonl} --chunk-idx -1",
                               ["--chunk-idx", "-1"], 2),
    "vqa-tiny-temperature": ("vqa", "--model-path {model} --question-file {questions_jsonl} --temperature 1e-40",
                             ["--temperature 1e-40 is too small to sample with", "use 0"], 2),  # was: the sampler's
    # RuntimeError on the first question, after the model loaded
    "vqa-zero-max-new-tokens": ("vqa", "--model-path {model} --question-file {questions_jsonl} --max-new-tokens 0",
                                ["--max-new-tokens"], 2),
    "vqa-missing-structure-folder": ("vqa", "--model-path {model} --question-file {questions_jsonl} "
                                     "--structure-folder {missing}", ["--structure-folder", "{missing}"], 2),
    # python -m deepmolm_plugin.eval.report
    "report-missing-answers": ("report", "{missing}.jsonl --out {out}", ["{missing}.jsonl", "missing"], None),
    "report-missing-references": ("report", "{answers_jsonl} --references {missing}.jsonl --out {out}",
                                  ["--references", "{missing}.jsonl", "no such file"], 2),
    "report-empty-references": ("report", "{answers_jsonl} --references {empty_jsonl} --out {out}",
                                ["--references", "{empty_jsonl}", "no questions"], None),
    "report-empty-answers": ("report", "{empty_jsonl} --out {out}", ["{empty_jsonl}", "no answers"], None),
    "report-answers-not-json": ("report", "{truncated_jsonl} --out {out}", ["{truncated_jsonl}", "not JSON"], None),
    "report-unknown-tokenizer": ("report", "{answers_jsonl} --references {questions_jsonl} --out {out} "
                                 "--tokenizer bogus", ["--tokenizer", "'bogus'"], 2),
    "report-out-is-a-file": ("report", "{answers_jsonl} --references {questions_jsonl} --out {ok_csv}",
                             ["--out", "{ok_csv}", "is a file"], 2),
    # python -m deepmolm_plugin.eval.questions
    "questions-missing-data": ("questions", "{missing}.json {out}/q.jsonl", ["{missing}.json", "no such file"], 2),
    "questions-empty-data": ("questions", "{empty_json} {out}/q.jsonl", ["{empty_json}", "empty"], 2),
    "questions-data-not-a-list": ("questions", "{dict_json} {out}/q.jsonl", ["{dict_json}", "JSON list"], None),
    "questions-data-not-json": ("questions", "{truncated_json} {out}/q.jsonl", ["{truncated_json}"], None),
    "questions-zero-fp-bits": ("questions", "{train_json} {out}/q.jsonl --fp-bits 0", ["--fp-bits", "0"], 2),
}

# Cases whose output folder must not be created by the refused run.
UNTOUCHED_OUT = {"kflm2-missing-data", "kflm2-empty-data", "kflm2-wrong-targets", "kflm2-wrong-smiles-column",
                 "kflm2-zero-seeds", "train-missing-data", "train-zero-fp-bits", "report-unknown-tokenizer",
                 "questions-zero-fp-bits",
                 # a refused deepmolm-prepare leaves no --out behind (it left an empty folder or .progress/)
                 "prepare-missing-input", "prepare-empty-input", "prepare-wrong-smiles-column"}


def _fill(text: str, files: dict, out: Path) -> str:
    return text.format_map({**{k: str(v) for k, v in files.items()}, "out": str(out)})


def _run(name: str, files: dict) -> subprocess.CompletedProcess:
    tool, args, _, _ = CASES[name]
    cwd = files["root"] / "runs" / name
    cwd.mkdir(parents=True)
    argv = [_fill(a, files, cwd / "out") for a in shlex.split(args)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command(tool) + argv, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    """Runs every selected case at once (JOBS at a time); {name: future of its process}."""
    files = make_inputs(tmp_path_factory.mktemp("bad_input"))
    wanted = [item.callspec.params["name"] for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec") and "name" in item.callspec.params]
    pool = ThreadPoolExecutor(max_workers=JOBS)
    futures = {name: pool.submit(_run, name, files) for name in wanted}
    yield files, futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line(outcomes, name):
    files, futures = outcomes
    proc = futures[name].result()
    _, _, expected, status = CASES[name]
    out = files["root"] / "runs" / name / "out"
    shown = f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert proc.returncode != 0, shown
    if status is not None:
        assert proc.returncode == status, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    wanted = [_fill(text, files, out) for text in expected]
    assert any(all(text in line for text in wanted) for line in proc.stderr.splitlines()), \
        f"no stderr line names {wanted}\n{shown}"
    if name in UNTOUCHED_OUT:
        assert not out.exists(), f"{out} was created by a refused run\n{shown}"


def test_help_shows_defaults_once():
    """was: kflm2, prepare and the GUI showed no defaults (--epochs, --split, --port...), and
    the training launcher printed "(default: DeepSeek-OCR sizes) (default: None)"."""
    from deepmolm_plugin.data.prepare import cli as prepare_cli
    from deepmolm_plugin.gui.__main__ import build_parser as gui_parser
    from deepmolm_plugin.property.cli import build_parser as kflm2_parser

    kflm2 = " ".join(kflm2_parser().format_help().split())
    assert "--epochs EPOCHS (default: 40)" in kflm2 and "--split {random,scaffold,scaffold-sorted} (default: random)" in kflm2
    assert "--dropout DROPOUT (default: 0.0)" in kflm2  # a zero default (0 == False) was hidden
    gui = " ".join(gui_parser().format_help().split())
    assert "--port PORT (default: 7860)" in gui
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as shown:
        prepare_cli.parse_args(["--help"])
    prepare = " ".join(shown.getvalue().split())
    assert "(default: auto)" in prepare and "(default 256)" in prepare
    for text in (kflm2, gui, prepare):
        assert "(default: None)" not in text and "(default: False)" not in text
