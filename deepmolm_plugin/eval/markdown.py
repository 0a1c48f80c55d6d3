"""metrics.json -> metrics.md: one markdown table per kind of task (text, IUPAC, property, binary, SMILES)."""

from __future__ import annotations

from .metrics.text import MAX_TOKENS
from .task_kinds import KINDS

# kind -> the table's (column header, metrics key); the bar chart of text metrics uses TABLES["text"] too
TABLES = {
    "text": (("BLEU-2", "bleu2"), ("BLEU-4", "bleu4"), ("ROUGE-1", "rouge1"), ("ROUGE-2", "rouge2"),
             ("ROUGE-L", "rougeL"), ("METEOR", "meteor")),
    "iupac": (("exact %", "exact_match"), ("BLEU-2", "bleu2"), ("BLEU-4", "bleu4"), ("ROUGE-1", "rouge1"),
              ("ROUGE-2", "rouge2"), ("ROUGE-L", "rougeL"), ("METEOR", "meteor")),
    "property": (("unit", "unit"), ("valid %", "valid_ratio"), ("MAE", "mae"), ("RMSE", "rmse")),
    "binary": (("valid %", "valid_ratio"), ("accuracy %", "accuracy"), ("balanced acc. %", "balanced_accuracy"),
               ("F1", "f1"), ("MCC", "mcc"), ("AUROC", "auroc")),
    "smiles": (("validity %", "validity"), ("exact %", "exact_match"), ("BLEU", "bleu"),
               ("Levenshtein", "levenshtein"), ("MACCS FTS", "maccs_fts"), ("RDK FTS", "rdk_fts"),
               ("Morgan FTS", "morgan_fts")),
}
TITLES = {"text": "Text tasks", "iupac": "IUPAC naming", "property": "Properties",
          "binary": "Yes/no (binary) tasks", "smiles": "SMILES generation"}

# kind -> lines under its title that say how its scores are counted
NOTES = {"binary": ("Accuracy and balanced accuracy count every answer, an invalid one (no yes / no, no value in "
                    "[0, 1]) right in neither class; F1, MCC and AUROC are over the valid answers; MCC is in "
                    "[-1, 1], the others x100. `n_positive_references` / `n_positive_answers` in metrics.json.", "")}

# Significant digits of a value that `digits` decimals would show with fewer than two
SIGNIFICANT = 3


def fmt(value, digits: int = 2) -> str:
    """A table cell or a figure's number: floats to `digits` decimals (from 1e9 on in
    scientific notation: the MAE of an answer of 1e300 would be a 300-digit cell), a
    missing value as an en dash. A value that `digits` decimals show with fewer than two
    significant digits gets SIGNIFICANT of them (`0.00400`, `0.000100`, `1.00e-05` below
    1e-4): MAEs of 0.004 and 0.0001 Hartree both read `0.00`, two models 40 times apart
    shown as equal and perfect."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 1e9:
            return f"{value:.{digits}e}"
        if 0 < abs(value) < 10.0 ** (1 - digits):
            return f"{value:#.{SIGNIFICANT}g}"  # `#`: trailing zeros kept, as in the fixed cells
        return f"{value:.{digits}f}"
    return str(value)


def cell(text: str) -> str:
    """Text as one table cell: a `|` would start a new column and a line break end the row
    (task names are free text in the question file). A backslash is escaped too: a task
    named `a\\|b` was written `a\\\\|b`, which Markdown reads as an escaped backslash and a
    bare `|` that split the cell."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def markdown(report: dict) -> str:
    lines = [f"# Evaluation: {', '.join(report['model_ids']) or 'model'}", "",
             f"{report['counts']['answers']} answers to {report['counts']['questions']} questions from "
             f"{len(report['counts']['shards'])} shard(s). Text metrics on tokenizer `{report['tokenizer']['name']}` "
             f"({report['tokenizer']['description']}). Scores x100; MAE/RMSE in the property's unit.", ""]
    for kind in KINDS:
        tasks = [(t, r) for t, r in report["tasks"].items() if r["kind"] == kind]
        if not tasks:
            continue
        columns = TABLES[kind]
        lines += [f"## {TITLES[kind]}", "", *NOTES.get(kind, ()),
                  "| task | n | " + " | ".join(c for c, _ in columns) + " |",
                  "|---|---:|" + "|".join("---" if key == "unit" else "---:" for _, key in columns) + "|"]
        for task, result in tasks:
            cells = [fmt(result["metrics"].get(key)) for _, key in columns]
            lines.append(f"| {cell(task)} | {result['n']} | " + " | ".join(cell(c) for c in cells) + " |")
        mean = (report.get("means") or {}).get(kind)
        if mean is not None:
            cells = [fmt(mean.get(key)) for _, key in columns]
            lines.append(f"| **mean of {mean['n_tasks']} tasks** | {mean['n']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += mean_notes(mean, columns)
        lines += (not_scored_notes(tasks) + left_out_notes(tasks) + undefined_notes(tasks, columns)
                  + counted_notes(tasks) + out_of_range_notes(tasks))
    return "\n".join(lines)


def mean_notes(mean, columns) -> list:
    """A line under a table with a mean row: that it is the unweighted mean over the tasks,
    and which tasks a score's mean leaves out (undefined there; `left_out` in metrics.json)."""
    if mean is None:
        return []
    headers = {key: header for header, key in columns}
    left = [f"{headers.get(key, key)} without {', '.join(cell(t) for t in tasks)}"
            for key, tasks in mean["left_out"].items()]
    return ["The mean row is the unweighted mean over the tasks (`means` in metrics.json), each score over the "
            "tasks where it is defined" + (f": {'; '.join(left)}" if left else "") + ".", ""]


def not_scored_notes(tasks) -> list:
    """A line under a table for its tasks of no scored question (`not_scored`): a row of n 0
    and dashes, which alone did not say that the data, not the model, left nothing to score."""
    notes = [f"{cell(task)}: {cell(result['not_scored'])}" for task, result in tasks if result.get("not_scored")]
    if not notes:
        return []
    return ["Not scored, no question left to score (`not_scored` in metrics.json): " + "; ".join(notes) + ".", ""]


# metrics key -> why its questions were left out of a task's scores and its n
LEFT_OUT = {"n_without_reference": "without a reference value",
            "n_invalid_references": "whose reference SMILES does not parse"}


def left_out_notes(tasks) -> list:
    """A line under a table for questions it does not count: its header's answer count
    was larger than the rows' n, and only metrics.json and stderr said why."""
    notes = [f"{cell(task)}: {result['metrics'][key]} question(s) {why}"
             for task, result in tasks for key, why in LEFT_OUT.items() if result["metrics"].get(key)]
    if not notes:
        return []
    return ["Left out of n and the scores (rows with `\"scored\": false` in per_question.jsonl): "
            + "; ".join(notes) + ".", ""]


def undefined_notes(tasks, columns) -> list:
    """A line under a table for its scores that are undefined (a `–` cell) or leave pairs
    out (metrics' `undefined`: BLEU of one-word answers, ROUGE-2 of one-word pairs, the
    Tanimoto of two empty fingerprints): they were reported as 0, a wrong answer's score."""
    headers = {key: header for header, key in columns}
    notes = [f"{cell(task)}: {headers.get(key, key)} {why}" for task, result in tasks
             for key, why in (result["metrics"].get("undefined") or {}).items()]
    if not notes:
        return []
    return ["Undefined scores, left out rather than counted as 0 (`undefined` in metrics.json): "
            + "; ".join(notes) + ".", ""]


# metrics key -> the line under a table counting such answers: scored, but most often the
# pipeline's doing (generation stopped at once, or ran on), which the scores alone did not say
COUNTED = {
    "n_empty": "Empty answers, scored as wrong (`\"empty\": true` in per_question.jsonl; most often generation "
               "stopped at once: check --max-new-tokens and the template's stop token)",
    "n_truncated": f"Answers of more than {MAX_TOKENS} tokens, text metrics on their first {MAX_TOKENS} "
                   "(`\"truncated\": true` in per_question.jsonl; most often generation ran on to --max-new-tokens: "
                   "check the template's stop token)",
    "n_capped": "Answers whose generation stopped at --max-new-tokens, before the model ended them (`\"capped\": "
                "true` in per_question.jsonl; they may be cut short: raise --max-new-tokens)",
    "n_cut_values": "Property answers stopped at --max-new-tokens with their number, or the unit after it, at "
                    "the very end, scored invalid: it may be cut short, \"12\" of 1234.5, \"-0.19 Hart\" "
                    "(`\"value_may_be_cut\": true` in per_question.jsonl)",
    "n_reasoning_removed": "Answers that opened with a reasoning block (`<think> ... </think>`), scored on the text "
                           "after it; one that never closed it has no answer, scored as empty "
                           "(`\"reasoning_removed\": true` in per_question.jsonl)",
    "n_final_answer_marked": "Answers that mark their final answer (`<answer>...</answer>`, `\\boxed{...}`), "
                             "scored on what the markup marks (`\"final_answer_marked\": true` in "
                             "per_question.jsonl)",
}


def counted_notes(tasks) -> list:
    """A line under a table per COUNTED key that some task has answers of."""
    lines = []
    for key, what in COUNTED.items():
        counts = [f"{cell(task)}: {result['metrics'][key]}" for task, result in tasks if result["metrics"].get(key)]
        if counts:
            lines += [f"{what}: " + "; ".join(counts) + ".", ""]
    return lines


def out_of_range_notes(tasks) -> list:
    """A line under the property table for reference values outside their property's valid
    range (`references_out_of_range` in metrics.json): scored into MAE and RMSE, where one
    wrong ground truth can outweigh every other error (was: only counted, in metrics.json)."""
    from .metrics.numbers import property_spec
    from .scoring import references_out_of_range_note

    notes = [f"{cell(task)}: {references_out_of_range_note(result['references_out_of_range'], property_spec(task))}"
             for task, result in tasks if result.get("references_out_of_range")]
    if not notes:
        return []
    return ["Reference values outside the property's valid range, scored into MAE/RMSE (`\"reference_out_of_range\": "
            "true` in per_question.jsonl): " + "; ".join(notes) + ".", ""]
