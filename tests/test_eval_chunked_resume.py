"""`RESUME=1 scripts/eval/run_eval.sh` with another chunk count or record order, and its GPU list.

Each model_vqa chunk looked for earlier answers only in its own answers file (answers/<i>.jsonl,
its .partial, its killed runs' partials): a rerun with another NUM_CHUNKS (the default follows
the GPUs visible, so a job restarted on another node changes it) or with the records in
another order asked again the questions that had moved to another chunk, and left the earlier
chunks numbered NUM_CHUNKS or higher in answers/, which the README's `report answers/*.jsonl`
refused as questions answered twice. Now model_vqa keeps answers from `--resume-from` files
too, run_eval.sh passes every earlier chunk's (a copy, since chunks rewrite their files while
the others read them), and removes the earlier chunks past NUM_CHUNKS once every chunk
succeeded (a failed run keeps them all).

run_eval.sh also took nvidia-smi's "No devices were found" (stdout, exit status 6, on a CPU
node of a CUDA image) for a GPU index: every chunk got CUDA_VISIBLE_DEVICES=Nodeviceswerefound
and no OMP_NUM_THREADS share.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from host_fixtures import ROOT
from test_host_cli_eval import FUSION_CONFIG, _stub_args, _stub_host, _write_questions

TESTS = Path(__file__).resolve().parent
SCRIPT = ROOT / "scripts" / "eval" / "run_eval.sh"
QUESTIONS = [{"question_id": f"q{i}", "smiles": s, "text": "What?"}
             for i, s in enumerate(["CCO", "CCN", "CCC", "CCCl", "CCBr", "c1ccccc1"])]


def _ids(path: Path) -> list:
    return [json.loads(line)["question_id"] for line in path.read_text().splitlines()]


def _chunks(monkeypatch, questions, folder: Path, n: int, *extra, config=FUSION_CONFIG) -> int:
    """Run chunks 0..n-1 of `questions` into folder/<i>.jsonl; the number of questions asked."""
    from deepmolm_plugin.eval import model_vqa

    asked = 0
    for i in range(n):
        host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
        args = _stub_args(questions, folder / f"{i}.jsonl", "--num-chunks", str(n), "--chunk-idx", str(i), *extra)
        model_vqa.run_host_eval(host, args, config)
        asked += len(calls)
    return asked


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_resume_from_keeps_the_answers_of_other_chunk_files(tmp_path, monkeypatch, capsys):
    from deepmolm_plugin.eval import resume

    # one answers folder, as run_eval.sh's (a drawn depiction is its renders/ file, part of the
    # question), the earlier chunks moved aside as it copies them
    questions, new = tmp_path / "questions.jsonl", tmp_path / "answers"
    old = new / "earlier"
    _write_questions(questions, QUESTIONS)
    assert _chunks(monkeypatch, questions, new, 3) == 6
    old.mkdir()
    for i in range(3):
        (new / f"{i}.jsonl").rename(old / f"{i}.jsonl")
    # chunk 1 was stopped (its answers in .partial); chunk 2 killed outright (the host's
    # partial file, without digests in its lines, and the digests file the run wrote beside it)
    (old / "1.jsonl").rename(old / "1.jsonl.partial")
    made = [json.loads(line) for line in (old / "2.jsonl").read_text().splitlines()]
    killed = resume.host_partial(old / "2.jsonl", _dead_pid())
    resume.start_host_partial(killed, made[0]["metadata"][resume.SETTINGS],
                              {line["question_id"]: line["metadata"][resume.QUESTION] for line in made})
    killed.write_text("".join(json.dumps({k: v for k, v in line.items() if k != "metadata"}) + "\n" for line in made))
    (old / "2.jsonl").unlink()
    before = {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()}

    # the records reversed, one molecule changed, 2 chunks: each chunk's questions were in others' files
    changed = [dict(q, smiles="CCCCO") if q["question_id"] == "q4" else q for q in reversed(QUESTIONS)]
    _write_questions(questions, changed)
    capsys.readouterr()
    from_old = [a for i in range(3) for a in ("--resume-from", str(old / f"{i}.jsonl"))]
    assert _chunks(monkeypatch, questions, new, 2, "--resume", *from_old) == 1  # was: 6 (no such option)
    assert re.findall(r"--resume: (\d) of 3", capsys.readouterr().err) == ["2", "3"]
    assert _ids(new / "0.jsonl") + _ids(new / "1.jsonl") == [q["question_id"] for q in changed]
    # only read: the earlier files (a killed run's partial too) stay as they were, for other chunks
    assert {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()} == before
    # what was kept carries the digests a later --resume checks
    assert _chunks(monkeypatch, questions, new, 2, "--resume") == 0


def test_resume_from_keeps_the_property_heads_predictions(tmp_path, monkeypatch):
    from deepmolm_plugin.eval.jsonl import aux_path

    config = SimpleNamespace(mm_projector_type="fusion", fp_bits=4096, fp_levels=4, aux_property_task="kflm2")
    questions, new = tmp_path / "questions.jsonl", tmp_path / "answers"
    old = new / "earlier"
    _write_questions(questions, QUESTIONS[:4])
    assert _chunks(monkeypatch, questions, new, 2, config=config) == 4
    old.mkdir()
    for i in range(2):
        for path in (new / f"{i}.jsonl", aux_path(new / f"{i}.jsonl")):
            path.rename(old / path.name)
    from_old = [a for i in range(2) for a in ("--resume-from", str(old / f"{i}.jsonl"))]
    assert _chunks(monkeypatch, questions, new, 1, "--resume", *from_old, config=config) == 0
    assert _ids(aux_path(new / "0.jsonl")) == ["q0", "q1", "q2", "q3"]  # was: none (the option unknown)


def test_resume_from_is_checked(tmp_path):
    from deepmolm_plugin import usage
    from deepmolm_plugin.eval import model_vqa, resume

    model, questions = tmp_path / "model", tmp_path / "questions.jsonl"
    model.mkdir()
    (model / "config.json").write_text("{}")
    _write_questions(questions, QUESTIONS[:1])

    def check(*extra):
        model_vqa.check_arguments(model_vqa.build_parser().parse_args([
            "--model-path", str(model), "--question-file", str(questions), "--answers-file", str(tmp_path / "a.jsonl"),
            *extra]))

    earlier = tmp_path / "earlier.jsonl"
    for extra, message in [
            (["--resume-from", str(earlier)], "--resume-from needs --resume (without it no earlier answer is kept)"),
            (["--resume", "--resume-from", str(earlier)],  # a mistyped name kept nothing, without a word
             f"--resume-from {earlier}: no such file (nor its .partial or a killed run's partial file)"),
            (["--resume", "--resume-from", str(tmp_path)], f"--resume-from {tmp_path}: is a folder, not a file")]:
        with pytest.raises(usage.UsageError) as error:
            check(*extra)
        assert str(error.value) == message
    # a run's partial file alone is one (a live run's too: run_eval.sh's copy of it is)
    resume.host_partial(earlier, 1).write_text("")
    check("--resume", "--resume-from", str(earlier))


# --- run_eval.sh ------------------------------------------------------------------------------------
def _run_eval(tmp_path, python: Path, *args, env=None):
    full = {**os.environ, "PYTHON": str(python), "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    full.pop("CUDA_VISIBLE_DEVICES", None)
    full.pop("OMP_NUM_THREADS", None)
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=full,
                          timeout=600)


def _split(path: Path, questions) -> Path:
    records = [{"id": q["question_id"], "smiles": q["smiles"], "task": "description", "conversations": [
        {"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A molecule."}]} for q in questions]
    path.write_text(json.dumps(records))
    return path


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


STUB_VQA = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import torch
    from _pytest.monkeypatch import MonkeyPatch
    from test_host_cli_eval import FUSION_CONFIG, _stub_host
    from deepmolm_plugin.eval import model_vqa

    args = model_vqa.build_parser().parse_args(sys.argv[1:])
    model_vqa.check_arguments(args)
    args.conv_mode = "llava_v1"  # what `run` resolves auto to for a real model
    host, calls = _stub_host(MonkeyPatch(), lambda call, inputs, **kwargs: torch.tensor([[5]]))
    model_vqa.run_host_eval(host, args, FUSION_CONFIG)
""")


def test_run_eval_resume_with_another_chunk_count_and_order_asks_nothing_again(tmp_path):
    # model_vqa is the real one on the host's loop with a stub model; the report is skipped
    stub = tmp_path / "stub_vqa.py"
    stub.write_text(STUB_VQA.format(tests=str(TESTS)))
    python = _executable(tmp_path / "python", f"""#!/bin/bash
if [[ $2 == deepmolm_plugin.eval.model_vqa ]]; then shift 2; exec {sys.executable} {stub} "$@"; fi
[[ $2 == deepmolm_plugin.eval.report ]] && exit 0
exec {sys.executable} "$@"
""")
    model, out = tmp_path / "model", tmp_path / "out"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = _split(tmp_path / "test.json", QUESTIONS)
    proc = _run_eval(tmp_path, python, model, data, out, 3)
    assert proc.returncode == 0, proc.stderr[-3000:]

    _split(data, list(reversed(QUESTIONS)))
    proc = _run_eval(tmp_path, python, model, data, out, 2, env={"RESUME": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i in range(2):  # was: "1 of 3 ... asking the other 2", "0 of 3 ... asking the other 3"
        assert "--resume: 3 of 3 questions keep" in (out / "logs" / f"chunk-{i}.log").read_text()
    # exactly this run's chunks (was: 2.jsonl too, its questions answered twice for the report)
    assert sorted(os.listdir(out / "answers")) == ["0.jsonl", "1.jsonl", "renders"]
    assert _ids(out / "answers" / "0.jsonl") + _ids(out / "answers" / "1.jsonl") == [
        q["question_id"] for q in reversed(QUESTIONS)]


# A model_vqa that shows its options in its chunk's log, writes an answers file and fails
# for chunk FAIL_CHUNK; for the other modules, the real interpreter.
ECHO_VQA = """#!/bin/bash
if [[ $2 == deepmolm_plugin.eval.model_vqa ]]; then
    echo "CUDA_VISIBLE_DEVICES=[${{CUDA_VISIBLE_DEVICES-unset}}] OMP_NUM_THREADS=[${{OMP_NUM_THREADS-unset}}]" >&2
    printf '%s\\n' "$@" >&2
    [[ -n ${{FAIL_CHUNK:-}} && " $* " == *" --chunk-idx $FAIL_CHUNK "* ]] && exit 3
    while [[ $# -gt 0 && $1 != --answers-file ]]; do shift; done
    echo '{{"question_id": "new"}}' > "$2"
    exit 0
fi
[[ $2 == deepmolm_plugin.eval.report ]] && exit 0
exec {python} "$@"
"""


def test_run_eval_removes_earlier_chunks_only_after_every_chunk_succeeded(tmp_path):
    python = _executable(tmp_path / "python", ECHO_VQA.format(python=sys.executable))
    model, out = tmp_path / "model", tmp_path / "o u t"
    model.mkdir()
    data = _split(tmp_path / "test.json", QUESTIONS)
    answers = out / "answers"
    answers.mkdir(parents=True)
    earlier = {"0.jsonl": "a0", "1.jsonl": "a1", "2.jsonl": "a2", "2.jsonl.partial": "p2",
               "2.failures.jsonl": "f2", "2.aux_properties.jsonl": "x2", "2.aux_properties.jsonl.partial": "y2",
               ".2.jsonl.partial-99999999": "k2", ".2.jsonl.partial-99999999.digests.json": "d2",
               "3.jsonl.partial": "p3", "notes.txt": "mine", "0.jsonl.bak": "mine", "3.jsonl~": "mine"}
    mine = ["0.jsonl.bak", "3.jsonl~", "notes.txt"]  # a user's files: never removed (0.jsonl.bak and 3.jsonl~ were)
    for name, text in earlier.items():
        (answers / name).write_text(text)

    proc = _run_eval(tmp_path, python, model, data, out, 2, env={"RESUME": "1", "FAIL_CHUNK": "1"})
    assert proc.returncode == 1 and "error: chunk 1 of 2 failed" in proc.stderr
    # nothing lost: the earlier chunks stay, and a copy of them all as this run began
    assert all((answers / name).exists() for name in earlier if not name.startswith("0."))
    assert {p.name: p.read_text() for p in (answers / "earlier" / "1").iterdir()} == {
        name: text for name, text in earlier.items() if name not in mine}
    log = (out / "logs" / "chunk-1.log").read_text().splitlines()
    assert [log[i + 1] for i, arg in enumerate(log) if arg == "--resume-from"] == [
        f"{answers}/earlier/1/{i}.jsonl" for i in (0, 1, 2, 3)]

    proc = _run_eval(tmp_path, python, model, data, out, 2, env={"RESUME": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "logs" / "chunk-0.log").read_text().splitlines()
    resumed = [log[i + 1] for i, arg in enumerate(log) if arg == "--resume-from"]
    assert resumed == [f"{answers}/earlier/{n}/{i}.jsonl" for n, chunks in ((1, "0123"), (2, "0123")) for i in chunks]
    # was: 2.jsonl (and its side files) stayed, and `report answers/*.jsonl` refused its duplicates
    assert sorted(p.name for p in answers.iterdir()) == sorted(["0.jsonl", "1.jsonl", *mine])

    # without RESUME an earlier run's chunks and copies are gone before any chunk runs
    for name, text in earlier.items():
        (answers / name).write_text(text)
    (answers / "earlier" / "1").mkdir(parents=True)
    proc = _run_eval(tmp_path, python, model, data, out, 1, env={"FAIL_CHUNK": "0"})
    assert proc.returncode == 1 and sorted(p.name for p in answers.iterdir()) == mine


@pytest.mark.parametrize("listed, status, gpus", [
    ("No devices were found", 6, []),  # was: GPU "Nodeviceswerefound"
    ("Failed to initialize NVML: Driver/library version mismatch", 18, []),
    ("0\n1", 0, ["0", "1"]),
])
def test_run_eval_takes_gpu_indices_only_from_a_successful_nvidia_smi(tmp_path, listed, status, gpus):
    python = _executable(tmp_path / "python", ECHO_VQA.format(python=sys.executable))
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    _executable(bin_ / "nvidia-smi", f"#!/bin/bash\ncat <<'X'\n{listed}\nX\nexit {status}\n")
    (tmp_path / "model").mkdir()
    data = _split(tmp_path / "test.json", QUESTIONS[:2])
    proc = _run_eval(tmp_path, python, tmp_path / "model", data, tmp_path / "out",
                     env={"PATH": f"{bin_}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    chunks = max(len(gpus), 1)
    assert f"running {chunks} chunk(s){' on GPUs ' + ' '.join(gpus) if gpus else ''}; logs" in proc.stderr
    for i in range(chunks):
        first = (tmp_path / "out" / "logs" / f"chunk-{i}.log").read_text().splitlines()[0]
        if gpus:
            assert first == f"CUDA_VISIBLE_DEVICES=[{gpus[i]}] OMP_NUM_THREADS=[unset]"
        else:  # the CPU branch: the cores shared out (was: each chunk took them all)
            assert re.fullmatch(r"CUDA_VISIBLE_DEVICES=\[unset\] OMP_NUM_THREADS=\[[1-9][0-9]*\]", first), first


def test_resume_from_another_answers_folder_keeps_drawn_depiction_questions(tmp_path, monkeypatch):
    """A question without its own image is asked with a depiction drawn into the answers
    folder's renders/: its digest held that file's absolute path, so answers made in another
    folder (a run moved, a copy on another disk) kept none of them. The drawn file's bytes are
    in the digest; its place is not part of the question."""
    questions, first, second = tmp_path / "questions.jsonl", tmp_path / "first", tmp_path / "second"
    _write_questions(questions, QUESTIONS[:3])
    assert _chunks(monkeypatch, questions, first, 1) == 3
    assert _chunks(monkeypatch, questions, second, 1, "--resume", "--resume-from", str(first / "0.jsonl")) == 0
    assert _ids(second / "0.jsonl") == ["q0", "q1", "q2"]
    # a molecule changed since: its drawing differs, so it is asked again
    _write_questions(questions, [dict(q, smiles="CCCCO") if q["question_id"] == "q1" else q for q in QUESTIONS[:3]])
    third = tmp_path / "third"
    assert _chunks(monkeypatch, questions, third, 1, "--resume", "--resume-from", str(first / "0.jsonl")) == 1
