"""The report's files in its output folder:

- `metrics.json`: the numbers (`scoring.build_report` documents the schema);
- `metrics.md`: markdown tables, one per kind of task (`markdown.markdown`);
- `per_question.jsonl`: each question's prediction, reference and what was parsed;
- `plots/`: `text_metrics.png` (bar chart of the text metrics per text/IUPAC task) and
  `parity_<task>.png` per property task (predicted vs reference, valid answers only).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List

from .. import plots as draw
from .markdown import TABLES, fmt, markdown

DPI = 100


def _safe(name: str) -> str:
    """A task name as a file name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "task"


def plots(report: dict, rows: List[dict], folder: Path) -> List[Path]:
    """The figures of a report in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    text_tasks = [(t, r) for t, r in report["tasks"].items() if r["kind"] in ("text", "iupac")]
    if text_tasks:
        keys = [k for _, k in TABLES["text"]]
        fig, (ax,) = draw.panels(1, figsize=(max(6.0, 1.2 * len(keys) + 0.5 * len(text_tasks)), 4))
        draw.bars(ax, [c for c, _ in TABLES["text"]],
                  [[result["metrics"].get(k) or 0.0 for k in keys] for _, result in text_tasks],
                  labels=[f"{task} (n={result['n']})" for task, result in text_tasks])
        ax.set_ylabel("score (x100)")
        ax.set_title(f"Text metrics, tokenizer {report['tokenizer']['name']}")
        ax.legend(fontsize="small")
        written.append(draw.save(fig, folder / "text_metrics.png", DPI))
    for task, result in report["tasks"].items():
        if result["kind"] != "property":
            continue
        pairs = [(r["reference_value"], r["value"]) for r in rows if r["task"] == task and r["valid"]]
        fig, (ax,) = draw.panels(1, figsize=(4.5, 4.5))
        draw.parity(ax, [(*zip(*pairs), None)] if pairs else [], size=12, alpha=0.7, linewidth=1, pad=0.05)
        m = result["metrics"]
        unit = f" ({m['unit']})" if m.get("unit") else ""
        ax.set_xlabel(f"reference{unit}")
        ax.set_ylabel(f"predicted{unit}")
        ax.set_title(f"{task}: MAE {fmt(m.get('mae'))}, valid {fmt(m.get('valid_ratio'), 1)}%", fontsize="medium")
        written.append(draw.save(fig, folder / f"parity_{_safe(task)}.png", DPI))
    return written


def write_outputs(report: dict, rows: List[dict], out: Path, make_plots: bool = True) -> str:
    """All the files in `out` (the figures unless `make_plots` is False, their paths then
    listed in the report's `plots`); returns the markdown tables."""
    out.mkdir(parents=True, exist_ok=True)
    if make_plots:
        report["plots"] = [str(p.relative_to(out)) for p in plots(report, rows, out / "plots")]
    (out / "metrics.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    table = markdown(report)
    (out / "metrics.md").write_text(table + "\n")
    with open(out / "per_question.jsonl", "w") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return table
