"""`python -m deepmolm_plugin.eval.report ANSWERS... --references QUESTIONS --out DIR`

Scores the host's model_vqa answer files (one per chunk/rank) against the reference
records, per task, and writes:

- `DIR/metrics.json`: the numbers (schema below);
- `DIR/metrics.md`: markdown tables, one per kind of task (also printed);
- `DIR/per_question.jsonl`: each question's prediction, reference and what was parsed;
- `DIR/plots/`: `text_metrics.png` (bar chart of the text metrics per text/IUPAC task) and
  `parity_<task>.png` per property task (predicted vs reference, valid answers only).

Inputs. Answer lines are the host's `{question_id, prompt, text, answer_id, model_id,
metadata}`. Reference lines (the question file `deepmolm_plugin.eval.questions` writes)
carry `question_id`, `task`, `answer` (the reference answer text) and, for property
tasks, `properties` ({name: value}); an optional `metric` field (`text`, `property`,
`smiles`, `iupac`) overrides the kind the task name implies. Without `--references`, each
answer line must carry `task` and `answer` itself (top level or in `metadata`).

Merging. Every file named must exist (an empty file is an empty chunk); files named
`*.aux_properties.jsonl` (model_vqa's property-head side files, which `answers/*.jsonl`
also matches) are skipped with a note, and a line without `text` is an error, as are
answer files that hold no answer at all (without `--references`) and a references file
with no question. A question_id
answered twice (in two shards or within one), a reference question with no answer, and an
answer to no reference question are errors naming the ids and files; so are answers
from several different `model_id`s (stale files of another run).

Kinds of task (`task_kind`): a property task when the task name is a known property
(`metrics.numbers.PROPERTY_RANGES`, aliases included) or a key of the record's
`properties`; `smiles` for SMILES_TASKS; `iupac` for IUPAC_TASKS; else `text`. The
reference value of a property question is the number parsed from the reference answer by
the same parser as the predictions (`metrics.numbers.parse_number`, so both sides read
"-2.3 × 10^4 eV" alike), else `properties[<property>]`. A question with neither is left
out of its task's scores, counted (`n_without_reference`) and named on stderr.

metrics.json:
    {"schema": "deepmolm-eval-metrics/1",
     "scales": "...",                      # every score in [0, 1] is x100; MAE/RMSE in the unit
     "tokenizer": {"name", "description"}, # the text metrics' tokenizer
     "settings": {...},                    # BLEU weights, ROUGE/METEOR/fingerprint settings
     "versions": {"nltk", "rouge-score", "rdkit", "deepmolm-plugin"},
     "inputs": {"answers": [paths], "references": path | null},
     "model_ids": [...],
     "counts": {"questions", "answers", "shards": {path: lines}, "tasks": {task: n}},
     "tasks": {task: {"kind": "text" | "iupac" | "property" | "smiles", "n": int,
                      "metrics": {...}}}}
    text:     bleu2, bleu4, rouge1, rouge2, rougeL, meteor
    iupac:    exact_match + the text metrics
    property: property, unit, range, note?, n, n_valid, valid_ratio, mae, rmse, n_without_reference
    smiles:   n, n_valid, n_invalid_references, validity, exact_match, maccs_fts, rdk_fts, morgan_fts
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .. import usage
from . import jsonl

SCHEMA = "deepmolm-eval-metrics/1"
KINDS = ("text", "iupac", "property", "smiles")
SMILES_TASKS = frozenset({"smiles", "transsmiles", "smilesgeneration", "text2smiles", "text2mol",
                          "moleculegeneration", "molgen", "descriptiontosmiles"})
IUPAC_TASKS = frozenset({"iupac", "iupacnaming", "transiupac", "iupacname", "smiles2iupac"})
MAX_IDS_SHOWN = 20
AUX_SUFFIX = ".aux_properties.jsonl"  # model_vqa's KFLM2 property-head predictions, next to the answers


class ReportError(ValueError):
    """Bad inputs to the report; printed without a traceback."""


class MergeError(ReportError):
    pass


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _ids(ids: Iterable, limit: int = MAX_IDS_SHOWN) -> str:
    ids = list(ids)
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def read_jsonl(path: os.PathLike) -> List[dict]:
    return jsonl.read_jsonl(path, required=("question_id",), error=ReportError)


def merge_answers(paths: Sequence[os.PathLike], expected: Optional[Sequence] = None) -> Tuple[Dict[str, dict], dict]:
    """{str(question_id): answer line} from all shards, and {path: line count}.

    MergeError (naming ids and files) for a missing file, an id answered more than once,
    and, when `expected` ids are given, an expected id with no answer or an answer to an
    unexpected id."""
    if not paths:
        raise MergeError("no answer files given")
    missing_files = [str(p) for p in paths if not Path(p).is_file()]
    if missing_files:
        raise MergeError(f"answer file(s) missing: {', '.join(missing_files)} (a chunk that did not run or "
                         "failed; an empty chunk still writes an empty file)")
    merged: Dict[str, dict] = {}
    where: Dict[str, List[str]] = {}
    counts = OrderedDict()
    for path in paths:
        rows = read_jsonl(path)
        counts[str(path)] = len(rows)
        for row in rows:
            if "text" not in row:
                raise MergeError(f"{path}: question {row['question_id']!r} has no `text`: not a model_vqa answer file")
            qid = str(row["question_id"])
            where.setdefault(qid, []).append(str(path))
            merged.setdefault(qid, row)
    problems = []
    duplicated = {qid: files for qid, files in where.items() if len(files) > 1}
    if duplicated:
        detail = "; ".join(f"{qid!r} in {', '.join(files)}" for qid, files in list(duplicated.items())[:MAX_IDS_SHOWN])
        more = f" ({len(duplicated)} ids in all)" if len(duplicated) > MAX_IDS_SHOWN else ""
        problems.append(f"question_id answered more than once: {detail}{more}")
    if expected is not None:
        expected_set = {str(q) for q in expected}
        missing = [str(q) for q in expected if str(q) not in merged]
        unexpected = [qid for qid in merged if qid not in expected_set]
        if missing:
            problems.append(f"{len(missing)} question(s) have no answer in any shard: {_ids(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} answer(s) to questions not in the references: {_ids(unexpected)}")
    if problems:
        raise MergeError("cannot merge the answer shards " + ", ".join(str(p) for p in paths) + ":\n  "
                         + "\n  ".join(problems))
    if not merged and expected is None:
        raise MergeError(f"the answer files hold no answers: {', '.join(str(p) for p in paths)}")
    models = sorted({str(row.get("model_id")) for row in merged.values() if row.get("model_id") is not None})
    if len(models) > 1:
        raise MergeError(f"answers come from {len(models)} models ({', '.join(models)}): stale shards of "
                         "another run among the files?")
    return merged, counts


def load_references(path: os.PathLike) -> "OrderedDict[str, dict]":
    refs: "OrderedDict[str, dict]" = OrderedDict()
    duplicated = []
    for row in read_jsonl(path):
        qid = str(row["question_id"])
        if qid in refs:
            duplicated.append(qid)
        refs[qid] = row
    if duplicated:
        raise ReportError(f"{path}: question_id listed more than once: {_ids(duplicated)}")
    if not refs:
        raise ReportError(f"--references {path}: holds no questions")
    return refs


def references_from_answers(answers: Dict[str, dict]) -> "OrderedDict[str, dict]":
    refs: "OrderedDict[str, dict]" = OrderedDict()
    lacking = []
    for qid, row in answers.items():
        source = {**(row.get("metadata") or {}), **{k: v for k, v in row.items() if k in ("task", "answer", "properties", "metric")}}
        if "answer" not in source:
            lacking.append(qid)
            continue
        refs[qid] = {"question_id": row["question_id"], **source}
    if lacking:
        raise ReportError(f"no --references given and {len(lacking)} answer(s) carry no reference `answer` "
                          f"(top level or metadata): {_ids(lacking)}")
    return refs


# --------------------------------------------------------------------------- kinds


def task_kind(task: str, record: dict) -> str:
    from .metrics.numbers import is_property

    metric = record.get("metric")
    if metric is not None:
        if metric not in KINDS:
            raise ReportError(f"question {record.get('question_id')!r}: metric {metric!r} is not one of {', '.join(KINDS)}")
        return metric
    if is_property(task) or _property_value(task, record) is not None:
        return "property"
    if _key(task) in SMILES_TASKS:
        return "smiles"
    if _key(task) in IUPAC_TASKS:
        return "iupac"
    return "text"


def _property_value(task: str, record: dict):
    """`properties[<property>]` of a record for a task (name, alias or `property:<name>`)."""
    from .metrics.numbers import property_name, property_spec

    props = record.get("properties") or {}
    if not isinstance(props, dict):
        return None
    name = property_name(task)
    for key in (task, name):
        if key in props:
            return props[key]
    wanted = _key(property_spec(name).name)
    for key, value in props.items():
        if _key(key) == _key(name) or _key(property_spec(key).name) == wanted:
            return value
    return None


def reference_value(task: str, record: dict) -> Optional[float]:
    """The reference value: the number the reference answer states, read with the same
    parser as the predictions (so "-2.3 × 10^4 eV" means the same on both sides), else
    `properties[<property>]`, else None."""
    from .metrics.numbers import parse_number

    value = parse_number(record.get("answer", ""))
    if value is None:
        value = _property_value(task, record)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- scoring


def group_by_task(refs: "OrderedDict[str, dict]") -> "OrderedDict[str, Tuple[str, List[str]]]":
    """{task: (kind, [question ids])}, tasks in order of first appearance."""
    groups: "OrderedDict[str, Tuple[str, List[str]]]" = OrderedDict()
    for qid, record in refs.items():
        task = str(record.get("task") or "unspecified")
        if "answer" not in record:
            raise ReportError(f"question {record['question_id']!r}: the reference record has no `answer`")
        kind = task_kind(task, record)
        if task in groups and groups[task][0] != kind:
            raise ReportError(f"task {task!r}: question {record['question_id']!r} is scored as {kind}, "
                              f"earlier ones as {groups[task][0]} (check `metric` / `properties`)")
        groups.setdefault(task, (kind, []))[1].append(qid)
    return groups


def score(answers: Dict[str, dict], refs: "OrderedDict[str, dict]", tokenizer=None, nltk_data=None
          ) -> Tuple["OrderedDict[str, dict]", List[dict]]:
    """Per-task results {task: {kind, n, metrics}} and per-question rows."""
    from .metrics import molecules, numbers, text

    groups = group_by_task(refs)
    wordnet = None
    if any(kind in ("text", "iupac") for kind, _ in groups.values()):
        wordnet = text.load_wordnet(nltk_data)  # fails early, with the install command
    results: "OrderedDict[str, dict]" = OrderedDict()
    rows: List[dict] = []
    for task, (kind, qids) in groups.items():
        preds = [str(answers[q].get("text", "")) for q in qids]
        ref_texts = [str(refs[q].get("answer", "")) for q in qids]
        if kind == "text":
            metrics = text.text_metrics(preds, ref_texts, tokenizer=tokenizer, wordnet=wordnet)
            extra = [{} for _ in qids]
        elif kind == "iupac":
            metrics = molecules.iupac_metrics(preds, ref_texts, tokenizer=tokenizer, wordnet=wordnet)
            extra = [{"name": molecules.extract_iupac(p), "reference_name": molecules.extract_iupac(r)}
                     for p, r in zip(preds, ref_texts)]
        elif kind == "property":
            values = [reference_value(task, refs[q]) for q in qids]
            lacking = [refs[q]["question_id"] for q, v in zip(qids, values) if v is None]
            if lacking:
                print(f"warning: {task}: {len(lacking)} question(s) without a reference value (no number in the "
                      f"reference answer, no properties entry), left out: {_ids(lacking)}", file=sys.stderr)
                kept = [i for i, v in enumerate(values) if v is not None]
                qids, preds, ref_texts = [qids[i] for i in kept], [preds[i] for i in kept], [ref_texts[i] for i in kept]
                values = [values[i] for i in kept]
            if not qids:
                raise ReportError(f"task {task!r}: no question has a reference value")
            metrics = numbers.property_metrics(preds, values, task)
            metrics["n_without_reference"] = len(lacking)
            spec = numbers.property_spec(task)
            extra = [{"value": numbers.parse_number(p), "valid": numbers.parse_prediction(p, spec) is not None,
                      "reference_value": v} for p, v in zip(preds, values)]
        else:
            metrics = molecules.smiles_metrics(preds, ref_texts)
            extra = []
            for p, r in zip(preds, ref_texts):
                ps, rs = molecules.extract_smiles(p), molecules.extract_smiles(r)
                extra.append({"smiles": ps, "reference_smiles": rs, "canonical": molecules.canonical_smiles(ps),
                              "reference_canonical": molecules.canonical_smiles(rs)})
        metrics = {k: v for k, v in metrics.items() if k != "tokenizer"}
        results[task] = {"kind": kind, "n": len(qids), "metrics": metrics}
        for q, p, r, e in zip(qids, preds, ref_texts, extra):
            rows.append({"question_id": answers[q]["question_id"], "task": task, "kind": kind,
                         "prediction": p, "reference": r, **e})
    return results, rows


def _versions() -> Dict[str, Optional[str]]:
    from importlib import metadata

    out = {}
    for name in ("nltk", "rouge-score", "rdkit", "deepmolm-plugin"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def build_report(answer_paths: Sequence[os.PathLike], references: Optional[os.PathLike] = None,
                 tokenizer=None, nltk_data=None) -> Tuple[dict, List[dict]]:
    from .metrics import molecules, text

    tok = text.get_tokenizer(tokenizer)
    if references is not None:
        if any(Path(p).resolve() == Path(references).resolve() for p in answer_paths):
            raise ReportError(f"the references file {references} is also listed among the answer files")
        refs = load_references(references)
        answers, counts = merge_answers(answer_paths, list(refs))
    else:
        answers, counts = merge_answers(answer_paths)
        refs = references_from_answers(answers)
    results, rows = score(answers, refs, tokenizer=tok, nltk_data=nltk_data)
    report = {
        "schema": SCHEMA,
        "scales": "every score in [0, 1] (BLEU, ROUGE, METEOR, validity, exact match, valid ratio, "
                  "Tanimoto) is reported x100; MAE and RMSE are in the property's unit",
        "tokenizer": tok.declaration(),
        "settings": {
            "bleu": f"nltk corpus_bleu, one reference per answer, BLEU-2 weights {list(text.BLEU2_WEIGHTS)}, "
                    f"BLEU-4 weights {list(text.BLEU4_WEIGHTS)}, no smoothing",
            "rouge": "rouge_score RougeScorer F1 (rouge1, rouge2, rougeL), no stemming, on the declared tokens, "
                     "mean over answers",
            "meteor": "nltk meteor_score defaults (alpha 0.9, beta 3, gamma 0.5, WordNet 3.0), mean over answers",
            "smiles": f"RDKit canonical SMILES; MACCS keys, RDKFingerprint, Morgan radius {molecules.MORGAN_RADIUS} "
                      f"{molecules.MORGAN_BITS} bits; Tanimoto means over valid predictions",
            "property": "first number in the answer (metrics.numbers.parse_number), invalid outside the "
                        "property's range; MAE over valid answers",
        },
        "versions": _versions(),
        "inputs": {"answers": [str(p) for p in answer_paths],
                   "references": None if references is None else str(references)},
        "model_ids": sorted({str(a.get("model_id")) for a in answers.values() if a.get("model_id") is not None}),
        "counts": {"questions": len(refs), "answers": len(answers), "shards": dict(counts),
                   "tasks": {task: r["n"] for task, r in results.items()}},
        "tasks": results,
    }
    return report, rows


# --------------------------------------------------------------------------- outputs


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


_TABLES = {
    "text": (("BLEU-2", "bleu2"), ("BLEU-4", "bleu4"), ("ROUGE-1", "rouge1"), ("ROUGE-2", "rouge2"),
             ("ROUGE-L", "rougeL"), ("METEOR", "meteor")),
    "iupac": (("exact %", "exact_match"), ("BLEU-2", "bleu2"), ("BLEU-4", "bleu4"), ("ROUGE-1", "rouge1"),
              ("ROUGE-2", "rouge2"), ("ROUGE-L", "rougeL"), ("METEOR", "meteor")),
    "property": (("unit", "unit"), ("valid %", "valid_ratio"), ("MAE", "mae"), ("RMSE", "rmse")),
    "smiles": (("validity %", "validity"), ("exact %", "exact_match"), ("MACCS FTS", "maccs_fts"),
               ("RDK FTS", "rdk_fts"), ("Morgan FTS", "morgan_fts")),
}
_TITLES = {"text": "Text tasks", "iupac": "IUPAC naming", "property": "Properties", "smiles": "SMILES generation"}


def markdown(report: dict) -> str:
    lines = [f"# Evaluation: {', '.join(report['model_ids']) or 'model'}", "",
             f"{report['counts']['answers']} answers to {report['counts']['questions']} questions from "
             f"{len(report['counts']['shards'])} shard(s). Text metrics on tokenizer `{report['tokenizer']['name']}` "
             f"({report['tokenizer']['description']}). Scores x100; MAE/RMSE in the property's unit.", ""]
    for kind in KINDS:
        tasks = [(t, r) for t, r in report["tasks"].items() if r["kind"] == kind]
        if not tasks:
            continue
        columns = _TABLES[kind]
        lines += [f"## {_TITLES[kind]}", "",
                  "| task | n | " + " | ".join(c for c, _ in columns) + " |",
                  "|---|---:|" + "|".join("---" if key == "unit" else "---:" for _, key in columns) + "|"]
        for task, result in tasks:
            cells = [_fmt(result["metrics"].get(key)) for _, key in columns]
            lines.append(f"| {task} | {result['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "task"


def plots(report: dict, rows: List[dict], folder: Path) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    text_tasks = [(t, r) for t, r in report["tasks"].items() if r["kind"] in ("text", "iupac")]
    if text_tasks:
        keys = [k for _, k in _TABLES["text"]]
        labels = [c for c, _ in _TABLES["text"]]
        width = 0.8 / len(text_tasks)
        fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(keys) + 0.5 * len(text_tasks)), 4))
        for i, (task, result) in enumerate(text_tasks):
            values = [result["metrics"].get(k) or 0.0 for k in keys]
            ax.bar([x + i * width for x in range(len(keys))], values, width, label=f"{task} (n={result['n']})")
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(keys))], labels)
        ax.set_ylabel("score (x100)")
        ax.set_title(f"Text metrics, tokenizer {report['tokenizer']['name']}")
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = folder / "text_metrics.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    for task, result in report["tasks"].items():
        if result["kind"] != "property":
            continue
        pairs = [(r["reference_value"], r["value"]) for r in rows if r["task"] == task and r["valid"]]
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        if pairs:
            xs, ys = zip(*pairs)
            ax.scatter(xs, ys, s=12, alpha=0.7)
            low, high = min(xs + ys), max(xs + ys)
            pad = (high - low) * 0.05 or 1.0
            ax.plot([low - pad, high + pad], [low - pad, high + pad], "k--", linewidth=1)
            ax.set_xlim(low - pad, high + pad)
            ax.set_ylim(low - pad, high + pad)
        m = result["metrics"]
        unit = f" ({m['unit']})" if m.get("unit") else ""
        ax.set_xlabel(f"reference{unit}")
        ax.set_ylabel(f"predicted{unit}")
        ax.set_title(f"{task}: MAE {_fmt(m.get('mae'))}, valid {_fmt(m.get('valid_ratio'), 1)}%", fontsize="medium")
        fig.tight_layout()
        path = folder / f"parity_{_safe(task)}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def write_outputs(report: dict, rows: List[dict], out: Path, make_plots: bool = True) -> str:
    out.mkdir(parents=True, exist_ok=True)
    if make_plots:
        report["plots"] = [str(p.relative_to(out)) for p in plots(report, rows, out / "plots")]
    (out / "metrics.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    table = markdown(report)
    (out / "metrics.md").write_text(table + "\n")
    with open(out / "per_question.jsonl", "w") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return table


def build_parser() -> argparse.ArgumentParser:
    from .metrics.text import DEFAULT_TOKENIZER, TOKENIZERS

    parser = argparse.ArgumentParser(prog="python -m deepmolm_plugin.eval.report",
                                     description="Merge model_vqa answer shards and score them per task.")
    parser.add_argument("answers", nargs="+", help="answer JSONL files (one per chunk/rank)")
    parser.add_argument("--references", default=None,
                        help="question file with question_id, task, answer, properties (eval.questions writes it)")
    parser.add_argument("--out", required=True, help="folder for metrics.json, metrics.md, plots/")
    parser.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                        help=f"text-metric tokenizer: {', '.join(TOKENIZERS)} or hf:<local folder> "
                             f"(default {DEFAULT_TOKENIZER})")
    parser.add_argument("--nltk-data", default=None, help="NLTK data folder holding corpora/wordnet "
                                                          "(default: $NLTK_DATA, else <venv>/nltk_data)")
    parser.add_argument("--no-plots", action="store_true")
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    """Paths and the tokenizer name, before any file is read: a UsageError names the problem
    (missing answer files are reported by `merge_answers`, all of them at once)."""
    from .metrics.text import TOKENIZERS

    if args.references is not None:
        usage.existing_file(args.references, "--references")
    usage.output_folder(args.out, "--out")
    if args.tokenizer.startswith("hf:"):
        usage.existing_folder(args.tokenizer[3:], "--tokenizer hf:")
    elif args.tokenizer not in TOKENIZERS:
        raise usage.UsageError(f"--tokenizer {args.tokenizer!r}: use one of {', '.join(TOKENIZERS)} or hf:<folder>")


def main(argv=None) -> None:
    from .metrics.wordnet import WordNetMissing

    parser = build_parser()
    args = parser.parse_args(argv)
    usage.checked(parser, check_arguments, args)
    side = [p for p in args.answers if str(p).endswith(AUX_SUFFIX)]
    if side:  # `answers/*.jsonl` also matches model_vqa's property-head side files
        print(f"note: skipping {len(side)} property-head file(s) (*{AUX_SUFFIX}): not answers", file=sys.stderr)
        args.answers = [p for p in args.answers if not str(p).endswith(AUX_SUFFIX)]
    try:
        report, rows = build_report(args.answers, args.references, args.tokenizer, args.nltk_data)
        table = write_outputs(report, rows, Path(args.out), make_plots=not args.no_plots)
    except (ReportError, WordNetMissing) as e:
        raise SystemExit(f"error: {e}") from e
    print(table)
    print(f"\nwrote {Path(args.out) / 'metrics.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
