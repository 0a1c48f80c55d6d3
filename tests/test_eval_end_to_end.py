"""scripts/eval/run_eval.sh end to end: a prepared split -> questions -> two model_vqa
chunks of the host's eval on a tiny trained checkpoint (CPU) -> merged, scored metrics."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys

from host_fixtures import ROOT

SCRIPT = ROOT / "scripts" / "eval" / "run_eval.sh"

# (id, smiles, task, answer, properties)
RECORDS = [
    ("mw-ethanol", "CCO", "Molecular Weight", "The molecular weight is 46.07 g/mol.", {"Molecular Weight": 46.07}),
    ("mw-benzene", "c1ccccc1", "Molecular Weight", "The molecular weight is 78.11 g/mol.", {"Molecular Weight": 78.11}),
    ("desc-ethanol", "CCO", "description", "Ethanol is a primary alcohol.", None),
    ("desc-acid", "CC(=O)O", "description", "Acetic acid is a simple carboxylic acid.", None),
    ("smiles-ethylamine", "CCN", "smiles", "The SMILES is CCN.", None),
    ("iupac-ethanol", "CCO", "iupac_naming", "The IUPAC name is ethanol.", None),
]


def _nltk_data(tmp_path_factory) -> str:
    from deepmolm_plugin.eval.metrics import wordnet

    try:
        return str(wordnet.find_wordnet().parent.parent)
    except wordnet.WordNetMissing:
        return str(wordnet.ensure_wordnet(tmp_path_factory.mktemp("nltk_data")).parent.parent)


def _split(path, records=RECORDS):
    data = []
    for rid, smiles, task, answer, props in records:
        record = {"id": rid, "smiles": smiles, "task": task, "conversations": [
            {"from": "human", "value": f"<image>\nWhat about this molecule? ({task})"},
            {"from": "gpt", "value": answer}]}
        if props:
            record["properties"] = props
        data.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _run_eval(*args, env=None):
    full_env = {**os.environ, "PYTHON": sys.executable, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    full_env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=full_env,
                          timeout=600)


def test_run_eval_writes_metrics(trained_checkpoint, tmp_path, tmp_path_factory):
    data = _split(tmp_path / "data" / "test.json")
    out = tmp_path / "eval"
    proc = _run_eval(trained_checkpoint, data, out, 2, "--", "--max-new-tokens", "8",
                     env={"NLTK_DATA": _nltk_data(tmp_path_factory)})
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"

    questions = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    assert [q["question_id"] for q in questions] == [r[0] for r in RECORDS]
    assert questions[0]["text"] == "What about this molecule? (Molecular Weight)"  # no <image>: the host adds it
    assert questions[0]["answer"] == RECORDS[0][3] and questions[0]["properties"] == RECORDS[0][4]
    answers = [json.loads(line) for i in range(2) for line in (out / "answers" / f"{i}.jsonl").read_text().splitlines()]
    assert sorted(a["question_id"] for a in answers) == sorted(r[0] for r in RECORDS)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema"] == "deepmolm-eval-metrics/1"
    assert metrics["tokenizer"]["name"] == "words-v2" and metrics["tokenizer"]["description"]
    assert metrics["counts"]["questions"] == metrics["counts"]["answers"] == len(RECORDS)
    assert len(metrics["counts"]["shards"]) == 2
    tasks = metrics["tasks"]
    assert {t: r["kind"] for t, r in tasks.items()} == {
        "Molecular Weight": "property", "description": "text", "smiles": "smiles", "iupac_naming": "iupac"}
    assert tasks["Molecular Weight"]["n"] == 2 and tasks["description"]["n"] == 2
    assert set(tasks["description"]["metrics"]) >= {"bleu2", "bleu4", "rouge1", "rouge2", "rougeL", "meteor"}
    assert 0 <= tasks["Molecular Weight"]["metrics"]["valid_ratio"] <= 100
    assert tasks["Molecular Weight"]["metrics"]["unit"] == "g/mol"
    assert set(tasks["smiles"]["metrics"]) >= {"validity", "exact_match", "maccs_fts", "morgan_fts"}
    assert (out / "metrics.md").read_text().startswith("# Evaluation")
    assert "| description | 2 |" in proc.stdout  # the table is printed
    assert {"plots/text_metrics.png", "plots/parity_Molecular_Weight.png"} <= set(metrics["plots"])
    assert all((out / p).stat().st_size > 0 for p in metrics["plots"])

    # RESUME=1: every answer is kept (same settings, same questions), nothing is asked again
    proc = _run_eval(trained_checkpoint, data, out, 2, "--", "--max-new-tokens", "8",
                     env={"NLTK_DATA": _nltk_data(tmp_path_factory), "RESUME": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i in range(2):
        assert re.search(r"--resume: (\d) of \1 questions keep", (out / "logs" / f"chunk-{i}.log").read_text())
    assert json.loads((out / "metrics.json").read_text())["tasks"] == tasks

    # The scoring step alone, on the same answers, gives the same numbers.
    from deepmolm_plugin.eval import report

    again = tmp_path / "again"
    report.main([str(out / "answers" / "0.jsonl"), str(out / "answers" / "1.jsonl"),
                 "--references", str(out / "questions.jsonl"), "--out", str(again), "--no-plots",
                 "--nltk-data", _nltk_data(tmp_path_factory)])
    assert json.loads((again / "metrics.json").read_text())["tasks"] == tasks


def test_run_eval_usage_and_bad_inputs(tmp_path):
    proc = _run_eval()
    assert proc.returncode == 2 and "run_eval.sh MODEL DATA OUT [NUM_CHUNKS]" in proc.stderr
    proc = _run_eval(tmp_path, tmp_path / "missing.json", tmp_path / "out")
    assert proc.returncode == 2 and "is not a file" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "conversations": [{"from": "human", "value": "<image>\nq"}]}]))
    proc = _run_eval(tmp_path, bad, tmp_path / "out", 1)
    assert proc.returncode != 0 and "record 'x': needs exactly one human turn then one gpt turn" in proc.stderr


def test_run_eval_fails_when_a_chunk_fails(tmp_path):
    """A chunk that exits non-zero stops the run, with its log; nothing is scored."""
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/bash
if [[ $2 == deepmolm_plugin.eval.model_vqa ]]; then
    [[ " $* " == *" --chunk-idx 1 "* ]] && {{ echo "chunk one broke" >&2; exit 3; }}
    exit 0
fi
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    data = _split(tmp_path / "data" / "test.json")
    # an earlier run's report there (another model's): was left standing beside the new
    # questions, and metrics.json is what resuming callers take as a finished report
    earlier = ["metrics.json", "metrics.md", "per_question.jsonl", "plots/parity_logp.png", "plots/text_metrics.png"]
    for name in earlier:
        (tmp_path / "out" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / name).write_text("an earlier run's")
    (tmp_path / "out" / "plots" / "mine.png").write_text("not the report's")
    proc = _run_eval(tmp_path, data, tmp_path / "out", 2, env={"PYTHON": str(fake)})
    assert proc.returncode == 1
    assert "error: chunk 1 of 2 failed" in proc.stderr and "chunk one broke" in proc.stderr
    assert [name for name in earlier if (tmp_path / "out" / name).exists()] == []
    assert (tmp_path / "out" / "plots" / "mine.png").exists()
