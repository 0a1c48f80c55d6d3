"""Summaries and reports: mean +- std over *all* seeds, JSON, a markdown table, plots.

The standard deviation is the sample standard deviation (ddof = 1) over every seed that
ran; no seed is dropped (KFLM2 reported the best 5 of 10). Plots (`deepmolm_plugin.plots`):
learning curves (training loss and the validation metric per epoch, every seed and
ensemble member), parity plots of test predictions against labels (regression, every
seed, per task) and ROC curves from the test probabilities (classification, per seed;
the first tasks of a multi-task set).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import plots as draw
from ..result_files import strict_json, write_atomic
from ..eval.metrics.classes import roc_curve
from .train import SCALED_RMSE, SCALED_RMSE_MEANING, selection_metric

SECONDARY = {"regression": ("rmse", "mae", "r2"), "classification": ("roc_auc",)}


def mean_std(values: Sequence[float | None]) -> dict:
    # None: a metric that was undefined (NaN) when its seed ran, as a resumed run reads it
    # back from the seed's strict-JSON file
    values = [float("nan") if x is None else float(x) for x in values]
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64)
    return {"mean": float(v.mean()) if v.size else float("nan"),
            # a sample std needs two values: one seed's "± 0.000" read as a result that never varies
            # (None, not NaN: results.json stays strict JSON)
            "std": float(v.std(ddof=1)) if v.size > 1 else None,
            "n": int(v.size), "values": values}


def headline_metrics(task: str, n_tasks: int) -> tuple[str, ...]:
    """The summary table's columns: ``SECONDARY``, but for several regression targets the
    unit-free ones (``train.SCALED_RMSE`` and the mean R²); their raw RMSE / MAE are in
    the per-target table (was: the mean of RMSEs in g/mol and log mol/L as the headline)."""
    return (SCALED_RMSE, "r2") if selection_metric(task, n_tasks)[0] == SCALED_RMSE else SECONDARY[task]


def summarise(task: str, seed_results: Sequence[dict], targets: Sequence[str] | None = None) -> dict:
    """{subset: {metric: mean_std}} over the seeds, plus skipped-task counts; with several
    ``targets`` (default: those in the seeds' per-task metrics) also ``per_task``:
    {target: {metric: mean_std}} (was: only in the seed files) and, where the seeds have
    it (several regression targets), ``train.SCALED_RMSE``."""
    names = {name for r in seed_results for name in r["metrics"]}
    subsets = [s for s in ("train", "valid", "test") if s in names] + sorted(names - {"train", "valid", "test"})
    if targets is None:
        targets = list(dict.fromkeys(t for r in seed_results for m in r["metrics"].values() for t in m["per_task"]))
    scaled = any(SCALED_RMSE in m for r in seed_results for m in r["metrics"].values())
    metrics = SECONDARY[task] + ((SCALED_RMSE,) if scaled else ())
    out: dict = {}
    for subset in subsets:
        rows = [r["metrics"][subset] for r in seed_results if subset in r["metrics"]]
        entry = {m: mean_std([row.get(m, float("nan")) for row in rows]) for m in metrics}
        if len(targets) > 1:  # a target left out of a seed (no label, one class) is NaN there: not counted
            entry["per_task"] = {t: {m: mean_std([row["per_task"].get(t, {}).get(m, float("nan")) for row in rows])
                                     for m in SECONDARY[task]} for t in targets}
        # {task: seeds} whose subset left it out (unscaled: of rmse_scaled, `train.regression_metrics`)
        for key in ("skipped_tasks", "constant_tasks") + (("unscaled_tasks",) if scaled else ()):
            counts: dict[str, int] = {}
            for row in rows:
                for t in row.get(key, []):
                    counts[t] = counts.get(t, 0) + 1
            entry[f"{key}_seed_counts"] = counts
        out[subset] = entry
    return out


def _spec(value: float, digits: int) -> str:
    """Fixed decimals, or exponent notation where they would print 0.000 (an RMSE of labels
    around 1e-12) or dozens of digits (labels around 1e12)."""
    return f".{digits}e" if value != 0 and not 1e-2 <= abs(value) < 1e6 else f".{digits}f"


def fmt(entry: dict, digits: int = 3) -> str:
    if entry is None or math.isnan(entry["mean"]):
        return "n/a"
    spec = _spec(entry["mean"], digits)
    spread = f" ± {entry['std']:{spec}}" if entry["n"] > 1 else ""
    seeds = len(entry["values"])  # a metric undefined for some seeds (one class in a subset) has fewer values
    count = f" ({entry['n']} of {seeds} seeds)" if entry["n"] < seeds else (" (1 seed)" if seeds == 1 else "")
    return f"{entry['mean']:{spec}}{spread}{count}"


def _number(value: float, digits: int = 3) -> str:
    """A per-seed metric, or "n/a" where it is undefined (NaN), as in the summary table."""
    return "n/a" if value is None or math.isnan(value) else f"{value:{_spec(value, digits)}}"


# A test subset's name in a plot's file name: --test-file stems are the user's (245 bytes made
# "parity_<stem>_0.png" too long to create, after every seed had trained; a newline or a
# non-ASCII letter made names shells and other systems mangle). Plain ASCII, at most this long.
PLOT_NAME_MAX = 64


def plot_file_name(prefix: str, subset: str, suffix: str = "") -> str:
    """``<prefix>_<subset><suffix>.png`` with `subset` made safe: characters other than ASCII
    letters, digits, '.', '_' and '-' replaced by '_', a leading '.' too (a hidden file),
    cut to PLOT_NAME_MAX; a name changed so (or one that already ends like the digest)
    gets '-' and 8 hex digits of the real name's SHA-256, so two subsets never share a file.
    results.json and results.md keep the real names."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", subset)
    safe = "_" + safe[1:] if safe.startswith(".") else safe
    if safe != subset or len(safe) > PLOT_NAME_MAX or re.search(r"-[0-9a-f]{8}$", safe):
        # surrogateescape: a file name's bytes that are not UTF-8 still hash
        digest = hashlib.sha256(subset.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        safe = f"{safe[:PLOT_NAME_MAX]}-{digest}"
    return f"{prefix}_{safe}{suffix}.png"


def _text(value) -> str:
    """A name (of a file, a target) on one line of results.md: control characters shown as
    escapes ("\\n"), as a newline in a --test-file name split its table row and list item."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(
        m[0], f"\\x{ord(m[0]):02x}"), str(value))


def _cell(value) -> str:
    """A name in a results.md table cell: its backslashes doubled (a name's backslash before
    a '|' turned the '|''s escape into an escaped backslash and a bare '|', which split the
    cell), then on one line (`_text`), its '|' escaped (it ended the cell)."""
    return _text(str(value).replace("\\", "\\\\")).replace("|", "\\|")


def markdown(results: dict) -> str:
    task = results["config"]["task"]
    metric, higher = selection_metric(task, len(results["targets"]))
    lines = [f"# {_text(results['dataset'])} ({results['split']} split, {task})", ""]
    d = results["data"]
    lines += [
        f"- data: `{_text(results['data_file'])}`; targets: {', '.join(_text(t) for t in results['targets'])}",
        f"- rows read: {d['rows']}; unparseable SMILES excluded: {d['invalid_smiles']}; rows without any label "
        f"excluded: {d['unlabelled_rows']}; molecules used: {d['molecules']}; missing labels (masked): "
        f"{d['missing_labels']}",
        f"- featurisers: {results['featurisers']}; ensemble per seed: {results['config']['ensemble']}",
        f"- seeds: {results['seeds']} (all reported; mean ± sample std over the seeds where the metric is "
        "defined, their count when not all)",
        "- model selection and early stopping on validation only; test evaluated once per seed",
        "",
    ]
    for name, ext in d.get("test_files", {}).items():
        lines.insert(-1, f"- fixed test set `{_text(name)}`: {_test_molecules(ext)}; {ext['removed_from_train']} "
                         f"training rows of its molecules (same parent, salts and charges aside) removed from training")
    dups = d.get("duplicates")
    if dups and dups["molecules_with_copies"]:  # copies: grouped by the split, conflicts listed in data_report
        distinct = f"; {dups['distinct_molecules']} distinct molecules in all" if "distinct_molecules" in dups else ""
        lines.insert(-1, f"- molecules in several rows (same parent, salts and charges aside): "
                         f"{dups['molecules_with_copies']} ({dups['rows_in_copies']} rows), {dups['conflicting']} of "
                         f"them with labels that disagree (the first 20 in data_report.json); each molecule's rows "
                         f"are in one subset of every split{distinct}")
    summary = results["summary"]
    cols = headline_metrics(task, len(results["targets"]))
    if metric == SCALED_RMSE:
        lines.insert(-1, f"- {len(results['targets'])} regression targets in their own units: the table gives "
                         f"{SCALED_RMSE}, the {SCALED_RMSE_MEANING}, which selects the model and stops training on "
                         "validation, and r2, the mean over targets of R²; each target's RMSE, MAE and R² are in the "
                         "per-target table below")
    lines.append("| subset | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for subset, entry in summary.items():
        lines.append(f"| {_cell(subset)} | " + " | ".join(fmt(entry[c]) for c in cols) + " |")
    lines += per_task_table(summary, SECONDARY[task])
    lines += ["", f"Per seed ({metric}, {'higher' if higher else 'lower'} is better; seconds):", "",
              "| seed | valid | test | best epochs | seconds |", "|---|---|---|---|---|"]
    for r in results["per_seed"]:
        tests = [k for k in r["metrics"] if k not in ("train", "valid")]
        test_txt = ", ".join(_number(r["metrics"][k][metric]) if tests == ["test"] else  # the split's own test set
                             f"{_cell(k)}: {_number(r['metrics'][k][metric])}" for k in tests)  # named --test-file sets
        epochs = ",".join(str(m["best_epoch"]) for m in r["members"])
        lines.append(f"| {r['seed']} | {_number(r['metrics']['valid'][metric])} | {test_txt} | {epochs} | "
                     f"{r['seconds']:.1f} |")
    skipped = {s: e.get("skipped_tasks_seed_counts") for s, e in summary.items() if
               e.get("skipped_tasks_seed_counts")}
    if skipped:  # the averages above leave these tasks out: say so
        why = "an AUC (one class only in the subset)" if task == "classification" else "a label in the subset"
        lines += ["", f"Tasks without {why}, left out of the averages, as {{task: number of seeds}}: "
                  + json.dumps(skipped)]
    constant = {s: e["constant_tasks_seed_counts"] for s, e in summary.items() if e.get("constant_tasks_seed_counts")}
    if constant:  # an "n/a" or a count of seeds in the r2 column: this is why
        lines += ["", "Tasks whose labels in the subset are all equal (R² undefined there, left out of the R² "
                  "average; RMSE and MAE are kept), as {task: number of seeds}: " + json.dumps(constant)]
    unscaled = {s: e["unscaled_tasks_seed_counts"] for s, e in summary.items() if e.get("unscaled_tasks_seed_counts")}
    if unscaled:  # (the CLI refuses such seeds; `run_seed` called directly does not)
        lines += ["", f"Targets without a spread in the seed's training subset (no label there, or one value), left "
                  f"out of {SCALED_RMSE} (their RMSE has no unit-free scale; in the per-target table), as "
                  "{task: number of seeds}: " + json.dumps(unscaled)]
    return "\n".join(lines) + "\n"


def _test_molecules(ext: dict) -> str:
    """A --test-file's molecule count for results.md: its rows scored and, where some hold
    copies of one molecule, how many distinct molecules they are and how many copies' labels
    disagree (was: "110 molecules" for 100, copies with contradictory labels unmentioned)."""
    excluded = f"({ext['invalid_smiles']} unparseable excluded)"
    dups = ext.get("duplicates")  # (none in a results.json of an older version)
    if not dups or not dups["molecules_with_copies"]:
        return f"{ext['molecules']} molecules {excluded}"
    return (f"{ext['molecules']} rows scored {excluded}, {dups['distinct_molecules']} distinct molecules: "
            f"{dups['molecules_with_copies']} in several rows (same parent, salts and charges aside), "
            f"{dups['conflicting']} of them with labels that disagree (the first 20 in data_report.json); every row is "
            f"scored as given")


def per_task_table(summary: dict, cols: Sequence[str]) -> list[str]:
    """Markdown lines: every target's metrics per subset, mean ± std over the seeds as in the
    summary table (none with one target: the summary is that target's)."""
    rows = [(subset, target, entry["per_task"][target]) for subset, entry in summary.items()
            for target in entry.get("per_task", {})]
    if not rows:
        return []
    lines = ["", "Per target (each in its own unit; mean ± sample std over the seeds):", "",
             "| subset | target | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    return lines + [f"| {_cell(subset)} | {_cell(target)} | " + " | ".join(fmt(e[c]) for c in cols) + " |"
                    for subset, target, e in rows]


DPI = 110


def plot_learning_curves(seed_results: Sequence[dict], task: str, path: Path, n_tasks: int = 1) -> None:
    metric, _ = selection_metric(task, n_tasks)  # the curve that chose the epoch
    fig, (ax1, ax2) = draw.panels(2, figsize=(10, 4))
    draw.learning_curves(ax1, ax2, [([c["epoch"] for c in m["curve"]], [c["train_loss"] for c in m["curve"]],
                                     [c["valid_" + metric] for c in m["curve"]], f"seed {r['seed']}", m["best_epoch"])
                                    for r in seed_results for m in r["members"]])
    ax1.set(xlabel="epoch", ylabel="training loss (scaled targets)" if task == "regression" else "training BCE",
            yscale="log", title="training loss")
    ax2.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"validation {metric} (dotted: selected epoch)")
    if len(seed_results) <= 10:
        ax2.legend(fontsize=6)
    draw.save(fig, path, DPI)


def _test_names(seed_results) -> list[str]:
    return sorted({k for r in seed_results for k in r["predictions"] if k != "valid"})


def plot_parity(seed_results: Sequence[dict], task_names: Sequence[str], path_stem: Path) -> list[Path]:
    """One figure per test subset and task (the first 4 tasks): every seed's labelled test molecules."""
    paths = []
    for subset in _test_names(seed_results):
        for t, name in enumerate(task_names[:4]):
            fig, (ax,) = draw.panels(1, figsize=(4.5, 4.5))
            series = []
            for r in seed_results:
                points = _task_points(r, subset, t)
                if points is not None:
                    y, pr, m = points
                    series.append((y[m], pr[m], f"seed {r['seed']}"))
            draw.parity(ax, series, size=6, alpha=0.5)
            # a task named "measured ..." was labelled "measured measured ..."
            measured = name if name.lower().startswith("measured") else f"measured {name}"
            ax.set(xlabel=measured, ylabel="predicted", title=f"{subset}: parity ({name})")
            if series and len(series) <= 10:  # which colour is which seed (as the learning curves say)
                ax.legend(fontsize=6, markerscale=2)
            paths.append(draw.save(fig, path_stem.with_name(plot_file_name(path_stem.name, subset, f"_{t}")), DPI))
    return paths


def _task_points(seed_result: dict, subset: str, t: int):
    """Task t's (labels, predictions, labelled mask) in one seed's subset, or None."""
    p = seed_result["predictions"].get(subset)
    if not p:
        return None
    y = np.array([row[t] if row[t] is not None else np.nan for row in p["y"]], dtype=float)
    pr = np.array([row[t] for row in p["pred"]], dtype=float)
    return y, pr, ~np.isnan(y)


def plot_roc(seed_results: Sequence[dict], task_names: Sequence[str], path_stem: Path) -> list[Path]:
    """One figure per test subset, a panel per task (the first 4), a curve per seed with its AUC."""
    paths = []
    for subset in _test_names(seed_results):
        n = min(len(task_names), 4)
        fig, axes = draw.panels(n, figsize=(4.2 * n, 4.2))
        for t, ax in enumerate(axes):
            curves = []
            for r in seed_results:
                points = _task_points(r, subset, t)
                if points is None:
                    continue
                y, pr, m = points
                if m.sum() == 0 or len(np.unique(y[m])) < 2:
                    continue
                fpr, tpr = roc_curve(y[m], pr[m])
                auc = r["metrics"][subset]["per_task"].get(task_names[t], {}).get("roc_auc", float("nan"))
                curves.append((fpr, tpr, f"seed {r['seed']} ({auc:.3f})"))
            draw.roc(ax, curves, empty="no ROC: one class only in this subset\n(for every seed)")
            ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{subset}: ROC ({task_names[t]})")
        paths.append(draw.save(fig, path_stem.with_name(plot_file_name(path_stem.name, subset)), DPI))
    return paths


PLOT_FILES = ("learning_curves.png", "parity*.png", "roc*.png")  # what write_reports draws in plots/


def remove_reports(out_dir: str | os.PathLike) -> None:
    """Delete the reports and plots ``write_reports`` writes (nothing else): plots are named
    by target position, so an earlier configuration's parity_test_1.png stayed beside a new
    run's plots as if it were one of them."""
    out = Path(out_dir)
    for path in [out / "results.json", out / "results.md"] + [p for g in PLOT_FILES for p in (out / "plots").glob(g)]:
        path.unlink(missing_ok=True)


def _plotted_results(slim: dict) -> dict:
    """What plots/ is drawn from, as results.json holds it: the run and every seed's results
    (the predictions they draw are in the seed files of that run, keyed by its fingerprint)."""
    return json.loads(strict_json({k: slim.get(k) for k in ("fingerprint", "targets", "per_seed")}))


def _plots_of(out: Path, slim: dict) -> list[Path]:
    """The plots in ``out`` when the results.json beside them holds the results ``slim`` is
    about to write (a rerun that resumed every seed), else []."""
    plotted = sorted(p for g in PLOT_FILES for p in (out / "plots").glob(g))
    try:
        old = json.loads((out / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none, or a killed writer's: the plots are of no known results
        return []
    return plotted if isinstance(old, dict) and _plotted_results(old) == _plotted_results(slim) else []


def write_reports(results: dict, out_dir: str | os.PathLike, plots: bool = True, keep_plots: bool = True) -> dict:
    """results.json, results.md and plots/ in ``out_dir`` (those of an earlier run replaced);
    returns the written paths. Without ``plots`` (--no-plots), plots drawn from these very
    results (the same run and seeds) are kept where ``keep_plots`` (not with --overwrite) and
    listed in the paths; others are deleted, and stderr says so (was: every plot deleted
    without a word, those of the results being rewritten too)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    slim = dict(results)
    slim["per_seed"] = [{k: v for k, v in r.items() if k != "predictions"} for r in results["per_seed"]]
    kept = _plots_of(out, slim) if keep_plots and not plots else []
    if kept:
        for path in (out / "results.json", out / "results.md"):
            path.unlink(missing_ok=True)
    else:
        removed = [p for g in PLOT_FILES for p in (out / "plots").glob(g)]
        remove_reports(out)
        if removed and not plots:
            why = "as --overwrite asks" if not keep_plots else \
                "drawn from other results than these (another configuration or other seeds)"
            print(f"deepmolm-kflm2: note: deleted {len(removed)} plot(s) in {out / 'plots'}, {why}; --no-plots draws "
                  "none: rerun without it to draw them", file=sys.stderr)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    if kept:
        paths["plots_kept"] = kept
    write_atomic(paths["json"], strict_json(slim, indent=1))
    write_atomic(paths["markdown"], markdown(results))
    if plots:
        pdir = out / "plots"
        pdir.mkdir(exist_ok=True)
        task = results["config"]["task"]
        plot_learning_curves(results["per_seed"], task, pdir / "learning_curves.png", len(results["targets"]))
        paths["learning_curves"] = pdir / "learning_curves.png"
        if task == "regression":
            paths["parity"] = plot_parity(results["per_seed"], results["targets"], pdir / "parity")
        else:
            paths["roc"] = plot_roc(results["per_seed"], results["targets"], pdir / "roc")
    return paths
