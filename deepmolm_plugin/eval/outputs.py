"""The report's files in its output folder:

- `metrics.json`: the numbers (`scoring.build_report` documents the schema);
- `metrics.md`: markdown tables, one per kind of task (`markdown.markdown`);
- `per_question.jsonl`: each question's prediction, reference and what was parsed;
- `plots/`: `text_metrics.png` (bar chart of the text metrics per text/IUPAC task) and
  `parity_<task>.png` per property task (predicted vs reference, valid answers only; the
  task name made file-safe, cut to `MAX_NAME` characters, with a hash of the name when it
  was cut or when two tasks would share a file: `a/b` and `a b`; a panel without a point
  says why: no valid answer, the task not scored, or no value drawable), and `roc_<task>.png`
  per binary (yes/no) task (the ROC curve of the valid answers' scores, its AUROC, the
  chance diagonal; without both classes among them the panel says so). Each task's figure
  is named in metrics.json (`task_plots`: {task: file}, relative to the report's folder). Task names
  are drawn as plain text (`plots.save`): a `$` in one is no matplotlib math, and characters
  no installed font has (CJK without fonts-noto-cjk) are drawn as `\\uXXXX` escapes, with a note. Values beyond `plots.MAX_DRAWABLE` (1e300: matplotlib cannot lay out
  such an axis) are left out of the plot, and its title says how many.

A rerun into the same folder first removes the files an earlier report wrote there (the
three above, `text_metrics.png`, `parity_*.png`, `roc_*.png`), so that a run that fails midway leaves
no metrics.json beside files of its own, and `plots/` never mixes two runs. An input that is one
of these files (`overwritten_inputs`: an earlier report's `per_question.jsonl` caught by
`results/*.jsonl`) is refused before anything is read or written.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path
from typing import Dict, List

from .. import plots as draw
from .. import usage
from ..result_files import strict_json, write_atomic
from .jsonl import REPORT_FILES
from .markdown import TABLES, cell, fmt, markdown

DPI = 100


def overwritten_inputs(inputs, out, files=REPORT_FILES) -> List[str]:
    """The `inputs` that are one of `files` in the folder `out` (resolved, links followed):
    writing the outputs would replace them, and an earlier report's output read as input
    gives errors about the wrong file."""
    # real_path: Path.resolve raised RuntimeError (a traceback) on a loop of links
    targets = {usage.real_path(Path(out) / name) for name in files}
    return [str(p) for p in inputs if usage.real_path(p) in targets]


# Characters of a task name kept in a file name: file systems allow 255 bytes, and a
# 275-character assay description as a task name failed (OSError: File name too long).
MAX_NAME = 100


def _digest(task: str) -> str:
    """The first 8 hex digits of the task name's SHA-1: tells apart names that are one file name."""
    return hashlib.sha1(task.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _safe(name: str) -> str:
    """A task name as a file name part (ASCII, so its characters are its bytes): one longer
    than MAX_NAME is cut, and the digest of the whole name added (names alike in their first
    MAX_NAME characters keep apart)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "task"
    return f"{safe[:MAX_NAME]}-{_digest(name)}" if len(safe) > MAX_NAME else safe


def _file_names(tasks: List[str]) -> Dict[str, str]:
    """{task: file name part}, unique even case-insensitively (macOS, Windows): a name that
    another task already has gets the task name's digest."""
    names, taken = {}, set()
    for task in tasks:
        name = _safe(task)
        if name.lower() in taken:
            name = f"{name}-{_digest(task)}"
        taken.add(name.lower())
        names[task] = name
    return names


def remove_stale(out: Path) -> None:
    """Delete the files an earlier report wrote in `out`, metrics.json first (resuming callers
    take it as the mark of a finished report): a rerun that failed while drawing left the
    earlier metrics.json listing plots it had deleted, and a task of that run that this one
    lacks would keep its parity plot beside the new ones."""
    folder = out / "plots"
    figures = ([folder / "text_metrics.png", *folder.glob("parity_*.png"), *folder.glob("roc_*.png")]
               if folder.is_dir() else [])
    for path in [*(out / name for name in REPORT_FILES), *figures]:  # metrics.json first
        path.unlink(missing_ok=True)


def plots(report: dict, rows: List[dict], folder: Path) -> List[Path]:
    """The figures of a report in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    names = _file_names([t for t, r in report["tasks"].items() if r["kind"] == "property"])
    roc_names = _file_names([t for t, r in report["tasks"].items() if r["kind"] == "binary"])
    text_tasks = [(t, r) for t, r in report["tasks"].items() if r["kind"] in ("text", "iupac")]
    if text_tasks:
        keys = [k for _, k in TABLES["text"]]
        fig, (ax,) = draw.panels(1, figsize=(max(6.0, 1.2 * len(keys) + 0.5 * len(text_tasks)), 4))
        draw.bars(ax, [c for c, _ in TABLES["text"]],
                  [[result["metrics"].get(k) for k in keys] for _, result in text_tasks],  # None: "n/a", no bar
                  labels=[f"{task} (n={result['n']})" for task, result in text_tasks])
        ax.set_ylabel("score (x100)")
        ax.set_title(f"Text metrics, tokenizer {report['tokenizer']['name']}")
        ax.legend(fontsize="small")
        written.append(draw.save(fig, folder / "text_metrics.png", DPI))
        for task, _ in text_tasks:
            report.setdefault("task_plots", {})[task] = _in_report(written[-1])
    for task, result in report["tasks"].items():
        if result["kind"] != "property":
            continue
        pairs = [(r["reference_value"], r["value"]) for r in rows if r["task"] == task and r.get("valid")]
        shown = [p for p in pairs if draw.drawable(p).all()]  # 1e308 for a property without a range
        fig, (ax,) = draw.panels(1, figsize=(4.5, 4.5))
        draw.parity(ax, [(*zip(*shown), None)] if shown else [], size=12, alpha=0.7, linewidth=1, pad=0.05)
        m = result["metrics"]
        unit = f" ({m['unit']})" if m.get("unit") else ""
        ax.set_xlabel(f"reference{unit}")
        ax.set_ylabel(f"predicted{unit}")
        left_out = len(pairs) - len(shown)
        if not shown:  # an empty 0-1 frame said nothing: no point, or no point to draw?
            empty = ("not scored: " + result["not_scored"] if result.get("not_scored")
                     else "no valid answer" if not pairs else f"no value within ±{draw.MAX_DRAWABLE:g}")
            ax.text(0.5, 0.5, textwrap.fill(empty, 40), ha="center", va="center", transform=ax.transAxes)
        note = f"\n{left_out} beyond ±{draw.MAX_DRAWABLE:g} not drawn" if left_out else ""
        ax.set_title(f"{task}: MAE {fmt(m.get('mae'))}, valid {fmt(m.get('valid_ratio'), 1)}%{note}",
                     fontsize="medium")
        written.append(draw.save(fig, folder / f"parity_{names[task]}.png", DPI))
        report.setdefault("task_plots", {})[task] = _in_report(written[-1])
    for task, result in report["tasks"].items():
        if result["kind"] == "binary":
            written.append(_roc_plot(task, result, rows, folder / f"roc_{roc_names[task]}.png"))
            report.setdefault("task_plots", {})[task] = _in_report(written[-1])
    return written


def _roc_plot(task: str, result: dict, rows: List[dict], path: Path) -> Path:
    """A binary task's ROC curve over its valid answers' scores (`metrics.classes.roc_curve`)."""
    from .metrics.classes import roc_curve

    pairs = [(r["reference_value"], r["value"]) for r in rows if r["task"] == task and r.get("valid")]
    m = result["metrics"]
    curves = []
    if len({reference for reference, _ in pairs}) == 2:
        fpr, tpr = roc_curve(*zip(*pairs))
        curves.append((fpr, tpr, f"AUROC {fmt(m.get('auroc'))} ({len(pairs)} valid answers)"))
    empty = ("not scored: " + result["not_scored"] if result.get("not_scored") else "no valid answer" if not pairs
             else "no ROC: the valid answers' references hold one class only")
    fig, (ax,) = draw.panels(1, figsize=(4.5, 4.5))
    draw.roc(ax, curves, empty=textwrap.fill(empty, 40))
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(f"{task}: accuracy {fmt(m.get('accuracy'))}%, valid {fmt(m.get('valid_ratio'), 1)}%",
                 fontsize="medium")
    return draw.save(fig, path, DPI)


def _in_report(figure: Path) -> str:
    """A figure's path as metrics.json gives it: relative to the report's folder, as in
    `plots` (`task_plots`: {task: its figure}, beside `tasks`, whose entries a report with
    --no-plots keeps alike; was: none, and `parity_task-7679fc0d.png` could not be told
    to be the parity plot of "溶解度")."""
    return f"{figure.parent.name}/{figure.name}"


def not_asked_note(report: dict) -> str:
    """The line under the tables for questions model_vqa could not ask (`counts.not_asked`,
    each task's `n_not_asked`): left out of n and the scores, which alone did not say that
    the header's question count held questions no model answered. "" when there are none."""
    total = report["counts"].get("not_asked", 0)
    if not total:
        return ""
    per_task = [f"{cell(task)}: {r['metrics']['n_not_asked']}" for task, r in report["tasks"].items()
                if r["metrics"].get("n_not_asked")]
    unknown = total - sum(r["metrics"].get("n_not_asked", 0) for r in report["tasks"].values())
    if unknown:  # no references file: their task is unknown
        per_task.append(f"task unknown (no --references): {unknown}")
    return (f"Not asked, {total} question(s) model_vqa could not ask, left out of n and the scores (listed in "
            f"{', '.join(report['inputs']['failures'])}; rows with `\"not_asked\": true` in per_question.jsonl): "
            + "; ".join(per_task) + ".")


def write_outputs(report: dict, rows: List[dict], out: Path, make_plots: bool = True) -> str:
    """All the files in `out` (the figures unless `make_plots` is False, their paths then
    listed in the report's `plots`); returns the markdown tables."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale(out)  # also with make_plots False: old figures would not match metrics.json
    if make_plots:
        report["plots"] = [str(p.relative_to(out)) for p in plots(report, rows, out / "plots")]
    # Each file whole or not at all, metrics.json last: resuming callers (the fusion
    # experiment) take it as the mark of a finished report, so a run killed in between left
    # metrics.json beside no per_question.jsonl, or an older run's.
    write_atomic(out / "per_question.jsonl", "".join(strict_json(row, ensure_ascii=False) + "\n" for row in rows))
    note = not_asked_note(report)  # (markdown.py draws the tables; this line is about the whole run)
    table = markdown(report) + (f"\n{note}\n" if note else "")
    write_atomic(out / "metrics.md", table + "\n")
    write_atomic(out / "metrics.json", strict_json(report, indent=2, ensure_ascii=False) + "\n")
    return table
