"""``deepmolm-kflm2``: KFLM2-style property prediction under an honest protocol.

    deepmolm-kflm2 --data delaney-processed.csv --targets "measured log solubility in mols per litre" \\
        --task regression --split scaffold --seeds 10 --features rdkit2d --fusion concat --out runs/esol

(``python -m deepmolm_plugin.property.cli`` is the same.) For every seed 0..N-1: a seeded
8:1:1 split (``--split random|scaffold|scaffold-sorted``; with ``--test-file`` the given
files are the test sets and the training file is split train : valid = 8 : 1), training
with early stopping on validation, one evaluation of the selected model on test. Written
to ``--out``: ``config.json``, ``data_report.json`` (unparseable SMILES with row numbers and
reasons, unlabelled rows, missing-label counts), ``splits/seed_<k>.json`` (indices into the
used molecules and CSV row numbers), ``seeds/seed_<k>.json`` (metrics, learning curves,
predictions, seconds), ``results.json`` / ``results.md`` (mean ± std over all seeds) and
``plots/``; every file is written atomically (temporary file, fsync, rename). A rerun with
the same configuration skips seeds whose results exist (resume); the configuration
includes the sha256 of the data and test files' contents, so a different configuration or
an edited data file in the same folder is refused unless ``--overwrite``; a non-empty
``--out`` that is not a run's (``foreign_out``: a model folder, one's own reports) is
refused, --overwrite or not. A seed file that is truncated or corrupt (or from another
run) is reported and that seed trained again.
Labels: empty / ``NA`` / ``none`` / ``null`` cells are missing (masked); ``nan`` / ``inf``
cells, labels beyond +-1e100 or nonzero within +-1e-100 (``data.labels``), other text that is not a number, and rows whose field count
differs from the header's are errors listing their rows; so are a target without any
label, a target with one value only (one class, or a constant regression target), a
split that leaves a subset empty or a target unlabelled in a subset, and a target with one
class (classification) or one value (regression) in a seed's training subset (before
anything is written; each one line ``deepmolm-kflm2: error: ...``, exit status 2, as a bad
argument; a run that fails, a diverged training or no test AUC, is exit status 1). Copies
of one molecule (``molecule.standard.molecule_keys``: the same parent molecule, salts, charges, explicit H and atom
maps aside) stay in the data but always in one subset; data_report.json and results.md
count them and list those whose labels disagree; training rows of a molecule in a
--test-file are removed. Copies inside a --test-file are counted and listed alike (a
warning where their labels disagree) and every row is scored as given. Bad arguments are
refused before anything is computed or written (one line on stderr, exit status 2): a
missing or empty --data / --test-file, a --smiles-column or --targets column not in the
CSV header, an unknown --features item or missing llm: folder, nonsense numbers (--seeds 0,
--epochs 0, --dropout 1, ...), two --test-file names alike or named train / valid. The run
is fingerprinted by resolved settings (the SMILES column read, --features in one spelling,
real paths), so spelling out a default resumes the same run.

Branches: the graph network (D-MPNN over full atom + bond features, ``--no-graph`` to drop
it) and the embedding branch (``--features``: ``llm:<folder>``, ``rdkit2d``, ``morgan``, or
several joined with ``+``; ``none`` to drop it), fused by ``--fusion concat|gated|attention``
(attention needs an ``llm:`` featuriser: it attends over the LLM's token states).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.property.cli", "python -m deepmolm_plugin.property.cli")

import argparse
import codecs
import contextlib
import csv
import fnmatch
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import output_lock, usage
from ..csv_table import (columns_named, csv_rows, first_row, line_span, plain_number, separator_problem,
                         spelled_otherwise)
from ..data.labels import RANGE as LABEL_RANGE, in_range as label_in_range
from .features import GRAPH_FEATURES, mol_to_graph, parse_smiles
from ..result_files import file_sha256, strict_json, write_atomic
from .report import PLOT_FILES, remove_reports
from ..molecule.standard import STANDARD_RULES, molecule_keys
from .splits import SPLITS, join_groups, key_groups, make_split, scaffold_sets, train_valid_split
from .train import (Inputs, SCALED_RMSE, SCALED_RMSE_MEANING, TrainConfig, TrainingDiverged, primary_metric, run_seed,
                    selection_metric, warm_up)

SMILES_COLUMNS = ("smiles", "SMILES", "Smiles", "canonical_smiles")
# --sizes when not given; with --test-file its TEST share is unused (`run_sizes`)
DEFAULT_SIZES = (0.8, 0.1, 0.1)


# ---------------------------------------------------------------------------------- data
@dataclass
class Table:
    """The usable molecules of one CSV file, and what was excluded and why."""

    path: str
    smiles: list[str]
    mols: list
    y: np.ndarray  # (n, tasks), NaN = missing
    rows: np.ndarray  # CSV data-row number (0-based) of each molecule
    task_names: list[str]
    rows_read: int = 0
    invalid: list[dict] = field(default_factory=list)  # {"row", "smiles", "reason"}
    unlabelled_rows: list[int] = field(default_factory=list)
    bad_labels: int = 0

    def report(self) -> dict:
        far = far_labels(self)
        return {
            "file": self.path, "rows": self.rows_read, "molecules": len(self.smiles),
            "invalid_smiles": len(self.invalid), "invalid": self.invalid,
            "unlabelled_rows": len(self.unlabelled_rows), "unparseable_labels": self.bad_labels,
            "missing_labels": int(np.isnan(self.y).sum()),
            "missing_labels_per_task": {t: int(np.isnan(self.y[:, k]).sum()) for k, t in enumerate(self.task_names)},
            "far_labels": {"rule": FAR_RULE_IN_FULL, "count": len(far), "labels": far[:FAR_SHOWN]},
        }

    def subset(self, keep: np.ndarray) -> "Table":
        return Table(self.path, [self.smiles[i] for i in keep], [self.mols[i] for i in keep], self.y[keep],
                     self.rows[keep], self.task_names, self.rows_read, self.invalid, self.unlabelled_rows,
                     self.bad_labels)


MISSING_LABELS = ("", "na", "none", "null")  # cells that mean "no measurement": masked

# A label more than FAR_MADS median absolute deviations (MAD) from its target's median is
# almost surely a placeholder for "missing" (1e30, 9.99e99, -999999 among values of order 1)
# or a unit slip: a normal target's MAD is 0.67 sigma, so this is ~1500 sigma, which no
# measurement reaches, and median and MAD (unlike mean and std) are not moved by the few
# such values themselves. Was: trained on silently, its square ruling the standardisation
# and every metric. A warning and data_report.json list them; they are not refused (a
# target in a raw unit spanning many decades can be that spread and still be data).
#
# A target whose labels mostly share one sign is judged on log10|label| as well: a label of
# that sign is far only if it is also more than FAR_LOG_MADS MADs of log10|label| from their
# median. Why: IC50 / Ki in nM are log-normal with a log10 spread of 1-2 (ChEMBL), and on the
# raw values alone their real inactive values (~1e6 nM) were "placeholders" (19-137 of 2000
# labels for a spread of 1.2-2). 10 log-MADs is ~15 sigma of a log-normal target (the largest
# of a million draws is ~5 sigma), while a placeholder stays far on both scales: 1e30 among
# IC50s of median 1e3 nM and log10 spread 2 is 20 log-MADs out, among values of order 1 ~100.
# Not a "span over 3 decades" switch to log10 alone: the placeholder itself makes that span,
# and 1000 MADs of log10 values flag nothing. A label of the other sign (-999999 among IC50s)
# has no such log, and is judged on the raw values alone, as before.
FAR_MADS, FAR_LOG_MADS, FAR_SHOWN = 1e3, 10, 100
FAR_RULE = f"more than {FAR_MADS:g} x the median absolute deviation from their target's median"
FAR_RULE_IN_FULL = FAR_RULE + (f" (where over half the labels equal the median: the median of the other deviations; "
                               f"where over half the labels share a sign, a label of that sign also more than "
                               f"{FAR_LOG_MADS:g} x the median absolute deviation of log10|label| from its median)")


def outliers(values: np.ndarray, mads: float) -> np.ndarray:
    """Which `values` lie more than `mads` median absolute deviations from their median (none
    where the values do not differ); a target mostly of one value (0 for inactive) is judged
    by the deviations of those that differ."""
    deviation = np.abs(values - np.median(values))
    scale = np.median(deviation)
    if scale == 0:
        nonzero = deviation[deviation > 0]
        scale = np.median(nonzero) if nonzero.size else 0.0
    return deviation > mads * scale if scale > 0 else np.zeros(values.shape, bool)


def far_mask(values: np.ndarray) -> np.ndarray:
    """Which of one target's labels are far by ``FAR_RULE_IN_FULL`` (see FAR_LOG_MADS)."""
    far = outliers(values, FAR_MADS)
    for same_sign in (values > 0, values < 0):
        if far.any() and 2 * same_sign.sum() > values.size:
            on_log = np.zeros(values.shape, bool)
            on_log[same_sign] = outliers(np.log10(np.abs(values[same_sign])), FAR_LOG_MADS)
            far &= on_log | ~same_sign
    return far


def far_labels(table: "Table") -> list[dict]:
    """{"row", "target", "value"} of every label outside ``FAR_RULE_IN_FULL``, in row order."""
    found = []
    for k, target in enumerate(table.task_names):
        labelled = ~np.isnan(table.y[:, k])
        values = table.y[labelled, k]
        if values.size < 3:  # no spread to judge by
            continue
        far = far_mask(values)
        for row, value in zip(table.rows[labelled][far], values[far]):
            found.append({"row": int(row), "target": target, "value": float(value)})
    return sorted(found, key=lambda f: f["row"])


def warn_far_labels(report: dict, where: str, shown: int = 10) -> None:
    """One stderr line naming the labels ``far_labels`` found in a file (its report)."""
    far = report["far_labels"]
    if not far["count"]:
        return
    listed = ", ".join(f"row {f['row']} ({f['target']}={f['value']:g})" for f in far["labels"][:shown])
    more = f" and {far['count'] - shown} more" if far["count"] > shown else ""
    print(f"deepmolm-kflm2: warning: {where}: {far['count']} label(s) {FAR_RULE}: {listed}{more}; a placeholder for "
          "a missing value (leave the cell empty) or a unit slip? They are trained on and scored as given "
          "(listed in data_report.json, far_labels)", file=sys.stderr)


def _label(text: str | None) -> float | None:
    """A label cell as a float, or None when the cell says "missing".

    ``nan`` / ``inf`` are not missing markers: they parse to non-finite floats, which the
    caller rejects (a NaN written by a broken upstream step must not pass as "unmeasured",
    and an infinite target would make every loss and metric infinite).
    """
    text = (text or "").strip()
    if text.lower() in MISSING_LABELS:
        return None
    value = float(text)  # ValueError for text that is no number at all
    # "1_000", "١٢" (float() reads 1000, 12), "1e-400" (0.0): ValueError; nan / inf go on as such
    return plain_number(text) if math.isfinite(value) else value


def _row_labels(row: dict, targets: Sequence[str], n: int, nonfinite: list,
                unparseable: list) -> tuple[list[float], int]:
    """Row ``n``'s labels (NaN = missing) and its count of unparseable cells. Non-finite
    (outside ``labels.in_range``) and unparseable cells (text such as ``abc``, ``<0.5``,
    ``1,5``) are appended to ``nonfinite`` / ``unparseable`` as (row, column, text) and
    become NaN here so that the later checks of this row still run (the caller raises
    after the last row): masking them would silently drop measured values."""
    labels, bad = [], 0
    for t in targets:
        try:
            value = _label(row.get(t))
        except ValueError:
            unparseable.append((n, t, (row.get(t) or "").strip()))
            labels.append(math.nan)
            bad += 1
            continue
        if value is not None and not label_in_range(value):
            nonfinite.append((n, t, (row.get(t) or "").strip()))
            value = None
        labels.append(math.nan if value is None else value)
    return labels, bad


class TableError(SystemExit):
    """A user's mistake found once the data are read, refused before anything is trained: a
    data or test file's rows the run cannot use (``load_table``), too few usable molecules, a
    target without a label or with one class / value (``check_labels``), a split that leaves a
    subset empty, unlabelled or one-class (``check_split``, ``check_split_labels``), an --out
    holding another configuration's results (``_prepare_out``) or a folder where a seed's result
    goes. `main` prints it as ``deepmolm-kflm2: error: ...`` with exit status 2, as the other
    input errors; was a bare message and exit status 1, which a batch script could not tell from a run that failed
    (a diverged training, no test AUC: still exit 1). A SystemExit still, whose text is the
    message, for callers of these functions outside the CLI."""

    def __init__(self, message: str):
        super().__init__(message)
        self.code = 2  # the exit status where it is not caught: the message is printed by `main`


def _reject(path: str, found: list, what: str, hint: str, shown: int = 20) -> None:
    """One error listing every bad row of a kind (``found``: "row N (...)" texts, the first
    ``shown`` of them) and what to do, instead of masking the cells or shifting them."""
    if not found:
        return
    more = f" and {len(found) - shown} more" if len(found) > shown else ""
    raise TableError(f"{path}: {len(found)} {what}: {', '.join(found[:shown])}{more}. Rows are data rows numbered "
                     f"from 0 after the header, as in data_report.json; {hint}")


def _reject_bad_rows(path: str, ragged: list, width: int, nonfinite: list, unparseable: list,
                     not_binary: Sequence = ()) -> None:
    """Rows whose field count differs from the header's (an extra field has no column and a
    missing one reads as empty: an unquoted comma puts cells under the wrong column), then
    nan/inf labels, then label text that is not a number, then classification labels that
    are not 0/1 (after the field counts: `CCN,1,07,0` was "label 7.0 is not 0/1"); with
    --task classification every cell that is not 0, 1 or missing (text such as True, nan,
    -1) is in that last list (`not_binary`: row, column, cell as shown, lines): was one kind
    per run, text first and without its line."""
    missing = "leave a cell empty (or NA) to mark a label missing"
    _reject(path, [f"row {n} ({fields} fields, {lines})" for n, fields, lines in ragged],
            f"row(s) whose number of fields differs from the header's {width}", "quote cells that contain commas")
    _reject(path, [f"row {n} ({column}={text!r})" for n, column, text in nonfinite],
            f"non-finite label(s) (nan/inf), {LABEL_RANGE} (change the unit)", missing)
    _reject(path, [f"row {n} ({column}={text!r})" for n, column, text in unparseable],
            "label(s) that are not numbers", missing)
    _reject(path, [f"row {n} ({column}={shown}, {lines})" for n, column, shown, lines in not_binary],
            "classification label(s) that are not 0/1", "--task classification takes 0/1 labels (an empty cell or "
            "NA for a missing one)", shown=10)


def _not_binary(row: dict, targets: Sequence[str], labels: list[float], bad_cells: list, n: int,
                lines: str) -> list[tuple]:
    """(row, column, cell as shown, lines) of row `n`'s classification cells that are not 0,
    1 or missing: numbers other than 0/1 (as %g), and `bad_cells`, the row's cells
    `_row_labels` found non-finite or not numbers (quoted), in column order."""
    bad_columns = {column for _, column, _ in bad_cells}
    found = []
    for name, value in zip(targets, labels):
        if name in bad_columns:
            found.append((n, name, repr((row.get(name) or "").strip()), lines))
        elif not math.isnan(value) and value not in (0.0, 1.0):
            found.append((n, name, f"{value:g}", lines))
    return found


def json_file_problem(path: str | os.PathLike) -> str | None:
    """Why a file is no CSV table but JSON, or None: one starting with `[` or `{` (after white
    space). Was: its first character read as the header, "no SMILES column ... in the header
    ['[']", and --smiles-column suggested, which cannot help."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        head = f.read(65536)
    if head.lstrip()[:1] not in ("[", "{"):
        return None
    records = '"conversations"' in head and '"smiles"' in head  # deepmolm-prepare's record layout
    what = " (deepmolm-prepare records: give kflm2 the CSV they were prepared from)" if records else ""
    return (f"is a JSON file{what}; deepmolm-kflm2 reads a CSV with one molecule per row (a SMILES column and the "
            "--targets columns)")


def column_problem(header: Sequence[str], targets: Sequence[str], smiles_column: str | None) -> str | None:
    """What is wrong with a CSV header for these options (not comma-separated, a missing or
    repeated column), else None."""
    separated = separator_problem(header)  # was: "no SMILES column ... in the header ['smiles;logS']"
    if separated:
        return separated
    if smiles_column is None:  # `SMILES` and `smiles` of other molecules: prepare read one, kflm2 the other
        found = [header[i] for i in columns_named(header, "smiles")]
        if len(found) > 1:
            return (f"the header has several SMILES columns ({', '.join(found)}): name the one to read with "
                    "--smiles-column")
    used = [smiles_column] if smiles_column is not None else [c for c in SMILES_COLUMNS if c in header][:1]
    repeated = sorted({c for c in [*used, *targets] if list(header).count(c) > 1})
    if repeated:  # the CSV reader would silently keep only the last column of that name
        return f"column(s) {repeated} appear more than once in the header {list(header)}"
    if len(set(targets)) < len(targets):
        return f"--targets names a column more than once: {list(targets)}"
    if used and used[0] in targets:
        return f"--targets {used[0]!r} is the SMILES column"
    if smiles_column is not None and smiles_column not in header:
        return (f"--smiles-column {smiles_column!r} is not in the header {list(header)}"
                f"{spelled_otherwise(header, smiles_column)}")
    if smiles_column is None and not any(c in header for c in SMILES_COLUMNS):
        return f"no SMILES column (any of {', '.join(SMILES_COLUMNS)}; else name it with --smiles-column) " \
               f"in the header {list(header)}"
    missing = [t for t in targets if t not in header]
    if missing:
        return (f"--targets column(s) {missing} not in the header {list(header)}"
                + "".join(spelled_otherwise(header, t) for t in missing))
    return None


def resolved_smiles_column(header: Sequence[str], smiles_column: str | None) -> str:
    """The column SMILES are read from: --smiles-column, or the first of ``SMILES_COLUMNS`` in
    the header (``column_problem`` has checked there is one)."""
    return smiles_column or next(c for c in SMILES_COLUMNS if c in header)


def data_smiles_column(path: str | os.PathLike, smiles_column: str | None) -> str:
    """``resolved_smiles_column`` of a CSV file's header (blank lines before it skipped)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return resolved_smiles_column(first_row(csv.reader(f)) or [], smiles_column)


def load_table(path: str | os.PathLike, targets: Sequence[str], smiles_column: str | None = None,
               task: str = "regression", max_rows: int | None = None) -> Table:
    path = os.fspath(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = first_row(reader) or []  # blank lines before it are skipped, as between rows
        except csv.Error as e:  # a header field over csv.field_size_limit()
            raise TableError(f"{path}: cannot read the header (line {reader.line_num}): {e}") from e
        problem = json_file_problem(path) or column_problem(header, targets, smiles_column)
        if problem:
            raise TableError(f"{path}: {problem}")
        column = resolved_smiles_column(header, smiles_column)
        smiles, mols, ys, rows, invalid, unlabelled, nonfinite, unparseable, ragged, not_binary = (
            [] for _ in range(10))
        bad = 0
        rows_read = 0
        n, last_line = -1, reader.line_num
        for cells in csv_rows(reader):
            first_line, last_line = last_line + 1, reader.line_num  # a row's lines: more with quoted line breaks
            if not cells:  # blank lines are no rows
                continue
            n += 1
            if max_rows is not None and n >= max_rows:
                break
            if isinstance(cells, csv.Error):  # was a traceback; a model needs every labelled row it was given
                raise TableError(f"{path} row {n} (line {reader.line_num}): cannot be parsed as CSV: {cells} "
                                 "(a quote never closed, or a field over csv.field_size_limit())")
            rows_read += 1
            if len(cells) != len(header):
                ragged.append((n, len(cells), line_span(first_line, last_line)))
            row = dict(zip(header, cells))
            before = len(nonfinite), len(unparseable)
            labels, row_bad = _row_labels(row, targets, n, nonfinite, unparseable)
            bad += row_bad
            if task == "classification":
                not_binary += _not_binary(row, targets, labels, nonfinite[before[0]:] + unparseable[before[1]:],
                                          n, line_span(first_line, last_line))
                del nonfinite[before[0]:], unparseable[before[1]:]  # listed with the other non-0/1 cells
            text = (row.get(column) or "").strip()
            mol, reason = parse_smiles(text)
            if mol is None:
                invalid.append({"row": n, "smiles": text, "reason": reason})
                continue
            if all(math.isnan(v) for v in labels):
                unlabelled.append(n)
                continue
            smiles.append(text)
            mols.append(mol)
            ys.append(labels)
            rows.append(n)
    _reject_bad_rows(path, ragged, len(header), nonfinite, unparseable, not_binary)
    y = np.asarray(ys, dtype=np.float64).reshape(-1, len(targets))
    return Table(path, smiles, mols, y, np.asarray(rows, dtype=np.int64), list(targets), rows_read, invalid,
                 unlabelled, bad)


def imputed_features(featurizer, embed) -> dict:
    """{featuriser: {molecules, values, columns: {column: molecules}}} of the values a
    featuriser could not compute (NaN: a descriptor RDKit fails on, for a salt, a metal or a
    dummy atom), which the scaler imputes by the training median: said nowhere before."""
    if featurizer is None:
        return {}
    found, start = {}, 0
    for part in featurizer.parts:
        missing = np.isnan(embed[:, start:start + part.dim])  # (molecules, part.dim)
        start += part.dim
        if missing.any():
            names = getattr(part, "columns", None) or [str(j) for j in range(part.dim)]
            found[part.name] = {"molecules": int(missing.any(1).sum()), "values": int(missing.sum()),
                                "columns": {names[j]: int(n) for j, n in enumerate(missing.sum(0)) if n}}
    return found


def build_inputs(table: Table, graph: bool, featurizer, tokens: bool, progress: bool = False) -> Inputs:
    from .featurizers import llm_featurizer, molecule_bar
    from .scaling import FeatureScaler

    graphs = [mol_to_graph(m) for m in molecule_bar(table.mols, "graphs", progress)] if graph else None
    embed = blocks = tok = None
    if tokens:  # first: the LLM pass for the tokens stores the mean embeddings as well
        llm = llm_featurizer(featurizer)
        if llm is None:
            raise usage.UsageError("--fusion attention attends over LLM token states: use --features llm:<folder>")
        tok = llm.tokens(table.mols, table.smiles)
    if featurizer is not None:
        embed = featurizer(table.mols, table.smiles)
        blocks = FeatureScaler.for_featurizer(featurizer).blocks
    return Inputs(graphs=graphs, embed=embed, tokens=tok, scaler_blocks=blocks)


# ----------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepmolm-kflm2", description=__doc__.split("\n\n")[0],
                                formatter_class=usage.HelpFormatter)
    p.add_argument("--data", required=True, type=usage.user_path, help="CSV file, one molecule per row")
    p.add_argument("--smiles-column", default=None, help="default: the first of smiles/SMILES/Smiles")
    # extend: `--targets a --targets b` kept b alone without a word (argparse's last-wins)
    p.add_argument("--targets", nargs="+", action="extend", required=True,
                   help="label column(s); empty cells are missing")
    p.add_argument("--task", choices=("regression", "classification"), required=True)
    p.add_argument("--split", choices=SPLITS, default="random")
    p.add_argument("--sizes", nargs=3, type=float, default=DEFAULT_SIZES, metavar=("TRAIN", "VALID", "TEST"),
                   help="fractions of the data (default: 0.8 0.1 0.1); with --test-file the data are split "
                        "TRAIN:VALID only and TEST is 0 or the default's 0.1 (unused either way)")
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (split and model)")
    p.add_argument("--test-file", action="append", default=[], type=usage.user_path,
                   help="fixed test set (repeatable; e.g. Llinas 2020 set 1 / set 2): the training file is split "
                        "train:valid 8:1 only")
    p.add_argument("--out", default=None, type=usage.user_path, help="output folder (default kflm2_runs/<data>_<split>)")
    p.add_argument("--features", default="rdkit2d",
                   help="embedding featuriser(s): llm:<folder>, rdkit2d, morgan[:radius:bits], joined by '+'; "
                        "'none' for the graph alone")
    p.add_argument("--no-graph", action="store_true", help="embedding MLP only")
    p.add_argument("--fusion", choices=("concat", "gated", "attention"), default="concat")
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--ffn-hidden", type=int, default=200)
    p.add_argument("--ffn-layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--aggregation", choices=("mean", "sum", "norm"), default="mean")
    p.add_argument("--fusion-dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--ensemble", type=int, default=1, help="models per seed, predictions averaged (declared)")
    p.add_argument("--bf16", action="store_true",
                   help="train under bfloat16 autocast (faster on CPUs with bf16 units); validation (model "
                        "selection), test and --test-file predictions are computed in float32 all the same")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    p.add_argument("--cache-dir", default=None, type=usage.user_path, help="featuriser cache (default $DEEPMOLM_PROPERTY_CACHE or "
                                                     "~/.cache/deepmolm_plugin/property)")
    p.add_argument("--llm-batch-size", type=int, default=32)
    p.add_argument("--max-rows", type=int, default=None, help="read only the first N rows (smoke tests)")
    p.add_argument("--overwrite", action="store_true", help="discard results of a different configuration")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _config(args) -> tuple[dict, TrainConfig]:
    cfg = TrainConfig(
        task=args.task, graph=not args.no_graph, fusion=args.fusion, hidden=args.hidden, depth=args.depth,
        ffn_hidden=args.ffn_hidden, ffn_layers=args.ffn_layers, dropout=args.dropout,
        aggregation=args.aggregation, fusion_dim=args.fusion_dim, heads=args.heads, epochs=args.epochs,
        patience=args.patience, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        ensemble=args.ensemble, bf16=args.bf16,
    )
    run = {
        # real paths: one file by two paths (a symlink, `a/../b`) is one run (was: abspath as typed)
        "data_file": os.path.realpath(args.data), "targets": list(args.targets),
        # resolved, not as typed (was: None and "smiles" for one column, "changed: smiles_column")
        "smiles_column": data_smiles_column(args.data, args.smiles_column),
        "task": args.task, "split": args.split, "sizes": run_sizes(args.sizes, args.test_file),
        "features": canonical_features(args.features),
        "test_files": [os.path.realpath(t) for t in args.test_file], "max_rows": args.max_rows,
        "train": cfg.to_dict(),
        # splits keep a molecule's copies together (seed files of ungrouped splits must not be resumed)
        "split_groups": "molecule_key",
        # graphs, features, copy keys and scaffolds of `molecule.standard.standard_molecule` (2): a folder of
        # the spelling-dependent ones (1) was resumed, its old splits and results reported as this run's
        "graph_features": GRAPH_FEATURES,
        # its rules' version (a run folder without it predates hypervalent bonds written neutral:
        # `C[S+](C)[O-]` had other graphs, keys and scaffolds than `CS(C)=O`): refused, not resumed
        "standard_molecule": STANDARD_RULES,
    }
    if args.bf16:
        # bf16 runs were evaluated under bf16 autocast before (`train.predict`): an older bf16
        # folder has no "evaluation" in its config.json and is refused (changed: evaluation)
        # instead of mixing its bf16-rounded seeds with float32 ones; float32 runs resume as before
        run["evaluation"] = "float32"
    metric, _ = selection_metric(args.task, len(args.targets))
    if metric != primary_metric(args.task)[0]:
        # several regression targets were selected by the raw mean RMSE before (`train.SCALED_RMSE`):
        # an older run folder has no "selection" in its config.json, so it is refused (changed:
        # selection) instead of resumed with seeds of the old rule; single-target runs and
        # classification select as before, and their folders resume as before
        run["selection"] = metric
    return run, cfg


def run_sizes(sizes: Sequence[float], test_files: Sequence[str]) -> list[float]:
    """--sizes as a run is fingerprinted and compared by. With --test-file only TRAIN:VALID
    splits the data (`_split`), so they are rescaled to the default's TRAIN + VALID beside its
    TEST share: the default, a typed `0.8 0.1 0.1` and `0.8 0.1 0` are one run, and a folder
    of the default keeps the fingerprint it had. Was: the sizes as typed, three fingerprints
    for one split ("changed: sizes" on resuming with the command the TEST refusal asked for)."""
    if not test_files:
        return list(sizes)
    train, valid = sizes[0], sizes[1]
    kept = DEFAULT_SIZES[0] + DEFAULT_SIZES[1]
    # rounded: 0.9 * 0.8 / 0.9 is 0.8000000000000002, which is another fingerprint
    return [round(kept * train / (train + valid), 12), round(kept * valid / (train + valid), 12), DEFAULT_SIZES[2]]


def canonical_features(spec: str) -> str:
    """--features as a run is fingerprinted: each featuriser in one spelling, in the order
    given (the order of the columns): ``morgan`` and ``morgan:2`` as ``morgan:2:2048``, an
    llm: folder by its real path, spaces around '+' dropped. Was: the text as typed, so the
    default spelled out, or one folder by another path, was "changed: features" on resume.
    A piece ``check_arguments`` would refuse is kept as typed (an older folder's record)."""
    from .featurizers import morgan_settings, split_spec

    if spec.strip() == "none":
        return "none"
    pieces = []
    for item in split_spec(spec):
        name, _, argument = item.partition(":")
        if name == "llm":
            item = "llm:" + os.path.realpath(os.path.expanduser(argument))
        elif name == "morgan":
            with contextlib.suppress(ValueError):  # out of bounds or not numbers: kept as typed
                item = "morgan:{}:{}".format(*morgan_settings(argument or None))
        pieces.append(item)
    return "+".join(pieces)


def comparable_config(config: dict, run: dict) -> dict:
    """A folder's config.json as this version's settings of the run ``run``: its --sizes by
    `run_sizes`, its --features by `canonical_features`, its files by their real paths and
    its SMILES column resolved (folders made before each recorded them as typed),
    fingerprint and argv left out. An
    older record's ``smiles_column`` None (the default: the first of ``SMILES_COLUMNS``) is
    ``run``'s resolved column where the data file's contents are the same (``data_sha256``):
    the same header resolves to the same column; where they differ the runs differ anyway."""
    old = {k: v for k, v in config.items() if k not in ("fingerprint", "argv")}
    sizes = old.get("sizes")
    if old.get("test_files") and isinstance(sizes, list) and len(sizes) == 3 and sizes[0] + sizes[1] > 0:
        old["sizes"] = run_sizes(sizes, old["test_files"])
    if isinstance(old.get("data_file"), str):
        old["data_file"] = os.path.realpath(old["data_file"])
    if isinstance(old.get("test_files"), list):
        old["test_files"] = [os.path.realpath(t) if isinstance(t, str) else t for t in old["test_files"]]
    if isinstance(old.get("features"), str):
        old["features"] = canonical_features(old["features"])
    if old.get("smiles_column") is None and old.get("data_sha256") == run.get("data_sha256"):
        old["smiles_column"] = run.get("smiles_column")
    return old


def out_folder(args) -> Path:
    """--out, or its default ``kflm2_runs/<data>_<split>``."""
    return Path(args.out or Path("kflm2_runs") / f"{Path(args.data).stem}_{args.split}")


def _fingerprint(run: dict) -> str:
    return hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:16]


def _data_digests(args) -> dict:
    """The contents of the data and test files, for the run fingerprint: a file edited under
    the same path must not resume the seeds computed from its old contents."""
    return {"data_sha256": file_sha256(args.data),
            "test_files_sha256": [file_sha256(t) for t in args.test_file]}


def _changed_settings(old: dict, run: dict) -> list[str]:
    """The run settings in which a folder's config.json differs from this run, for the refusal."""
    keys = (set(old) | set(run)) - {"fingerprint", "argv"}
    changed = []
    for k in sorted(keys):
        before, now = old.get(k), run.get(k)
        if isinstance(before, dict) and isinstance(now, dict):  # "train" holds ~24 settings: name the one
            changed += [f"{k}.{name}: {before.get(name)!r} -> {now.get(name)!r}" for name in sorted(set(before) | set(now))
                        if before.get(name) != now.get(name)]
        elif before != now:
            changed.append(k)
    return changed


# What a run writes in --out, and keys each of its JSON files has held since the first version:
# how a folder is told to be a run's before anything in it is replaced or deleted
RUN_JSON_KEYS = {
    "config.json": set(usage.KFLM2_RUN_CONFIG_KEYS),  # usage recognises such a folder given as a model
    "results.json": {"fingerprint", "summary", "per_seed"},
    "data_report.json": {"file", "rows", "molecules"},
    "seeds/seed_*.json": {"seed", "metrics"},
    "splits/seed_*.json": {"seed", "kind", "train"},
}
RUN_REPORTS = ("results.md", *(f"plots/{g}" for g in PLOT_FILES))
RUN_FOLDERS = ("seeds", "splits", "plots")


def _is_run_file(out: Path, path: Path, pattern: str) -> bool:
    """`path` (in ``out``) is named by `pattern` and, for a JSON file, holds a run's keys."""
    rel = path.relative_to(out).as_posix()
    if rel.count("/") != pattern.count("/") or not fnmatch.fnmatchcase(rel, pattern) or not path.is_file():
        return False
    keys = RUN_JSON_KEYS.get(pattern)
    try:
        value = _read_json(path) if keys else None
    except OSError:  # unreadable: nothing shows it is a run's
        return False
    return keys is None or (isinstance(value, dict) and keys <= value.keys())


def foreign_out(out: Path) -> str | None:
    """Why the existing, non-empty folder ``out`` is not a run folder of deepmolm-kflm2 (so
    none of its files may be replaced or deleted, not even with --overwrite), or None.

    A run writes config.json first (after creating seeds/ and splits/), then the seeds, the
    reports last (results.json before results.md and plots/). A folder is a run's when its
    config.json is a run's; without one (deleted, or a run killed before writing it) when
    it holds nothing but what a run writes, results.md and plots/ only beside a run's
    results.json. A saved model's folder (its config.json replaced by --overwrite) and a
    folder of one's own results.md and plots/ (deleted as a run's old reports) were taken
    for runs of another configuration."""
    if not out.is_dir() or not any(out.iterdir()):
        return None
    config = out / "config.json"
    if config.exists() or config.is_symlink():
        return None if _is_run_file(out, config, "config.json") else \
            "its config.json is not a run's (a model's folder? a run's, damaged: then move it away)"
    patterns = [*RUN_JSON_KEYS, *RUN_REPORTS]
    entries = [p for p in out.iterdir() if not (p.name in RUN_FOLDERS and p.is_dir() and not p.is_symlink())]
    entries += [p for name in RUN_FOLDERS if (out / name).is_dir() for p in (out / name).iterdir()]
    for path in entries:
        if path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file():
            continue  # write_atomic's temporary file, left by a killed run
        if path.name == output_lock.LOCK and path.is_file():
            continue  # the lock of the run writing here (or a killed run's file, no longer locked)
        if not any(_is_run_file(out, path, p) for p in patterns):
            return f"it holds {path.relative_to(out).as_posix()}, which is not a file as a run writes it"
    reports = [p for g in RUN_REPORTS for p in out.glob(g)]
    if reports and not _is_run_file(out, out / "results.json", "results.json"):
        return f"it holds {reports[0].relative_to(out).as_posix()} without a run's results.json"
    return None


def check_out_folder(out: Path) -> None:
    """UsageError if ``out`` is a non-empty folder that is not a deepmolm-kflm2 run's."""
    why = foreign_out(out)
    if why:
        raise usage.UsageError(f"--out {out} is not a deepmolm-kflm2 run folder: {why}. Nothing in it is replaced "
                               "or deleted, not even with --overwrite: give an empty or new folder")


class Unwritable(Exception):
    """A file of --out could not be written (a full disk, a failing device): `main` says so
    in one line naming `what` and the OSError's reason (it was a 30-line chained traceback)."""

    def __init__(self, what: str, error: OSError):
        super().__init__(f"cannot write {what}: {error.strerror or error}")


@contextlib.contextmanager
def _writing(what: "str | os.PathLike"):
    """OSError while writing `what` into --out -> Unwritable (an input's read error is not this)."""
    try:
        yield
    except OSError as error:
        raise Unwritable(os.fspath(what), error) from error


def check_rerun(out: Path, run: dict, fp: str, overwrite: bool) -> None:
    """Refuse, writing nothing, a folder that is not a run's (``check_out_folder``) or that
    holds results of a different configuration (without ``overwrite``). Called before the
    inputs are featurised (a rerun with a changed option was refused only after every SMILES
    had been through the featuriser's model) and again by ``_prepare_out``."""
    check_out_folder(out)
    config_path = out / "config.json"
    if not config_path.exists() or overwrite:
        return
    old = _read_json(config_path)  # a run's (check_out_folder): a JSON object with a fingerprint
    if old["fingerprint"] == fp or _fingerprint(comparable_config(old, run)) == fp:
        return
    if any((out / "seeds").glob("seed_*.json")) or (out / "results.json").exists():
        changed = ", ".join(_changed_settings(comparable_config(old, run), run))
        raise TableError(f"{out} holds results of a different configuration (changed: {changed}); "
                         f"use another --out or --overwrite")


def _prepare_out(out: Path, run: dict, fp: str, overwrite: bool) -> None:
    """Create ``out``; refuse (``check_rerun``) or, with ``overwrite``, clear results of a
    different configuration. A folder of another configuration without seed results or
    results.json (a run stopped before its first seed ended) holds no results: it is taken
    over, its splits and reports cleared (it was refused as "results of a different
    configuration", which it did not hold)."""
    check_rerun(out, run, fp, overwrite)  # again here, under the lock, where files are first replaced and deleted
    with _writing(out / "seeds"):
        (out / "seeds").mkdir(parents=True, exist_ok=True)
        (out / "splits").mkdir(exist_ok=True)
    config_path = out / "config.json"
    if not config_path.exists():
        # a run's folder (check_out_folder) whose config.json was deleted: its reports are of no
        # known configuration, and a run of another one killed before its own left them standing
        # as if they were its results
        remove_reports(out)
    else:
        old = _read_json(config_path)  # a run's (check_out_folder): a JSON object with a fingerprint
        if old["fingerprint"] != fp and _fingerprint(comparable_config(old, run)) == fp:
            # this run, its --sizes, --features or SMILES column recorded as typed before
            # `comparable_config` resolved them: its seeds are kept
            _refingerprint_seeds(out, old["fingerprint"], fp)
        elif old["fingerprint"] != fp:  # no results, or --overwrite (check_rerun)
            for f in list((out / "seeds").glob("seed_*.json")) + list((out / "splits").glob("seed_*.json")):
                f.unlink()
            remove_reports(out)  # else the old configuration's results stood until the new run ended
    with _writing(config_path):
        write_atomic(config_path, strict_json({"fingerprint": fp, **run, "argv": sys.argv[1:]}, indent=1))


def _refingerprint_seeds(out: Path, old_fp: str, fp: str) -> None:
    """The seed results of run `old_fp`, the same run as `fp` in an older record of its
    settings (`comparable_config`), carried over to `fp`: resumed, not trained again, now
    and in later runs (config.json is rewritten with `fp` after this)."""
    for path in sorted((out / "seeds").glob("seed_*.json")):
        result = _read_json(path)
        if isinstance(result, dict) and result.get("fingerprint") == old_fp:  # another is retrained, as before
            with _writing(path):
                write_atomic(path, strict_json(result | {"fingerprint": fp}))


def _read_json(path: Path):
    """A JSON file's value, or None if it is truncated or otherwise not JSON (a killed writer)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _write_split(out: Path, seed: int, kind: str, split: dict, table, only_if_missing: bool = False) -> None:
    """splits/seed_<seed>.json, the indices of every subset (rows of the data and of its CSV);
    `only_if_missing` for a resumed seed, whose deleted split file was not written again."""
    path = out / "splits" / f"seed_{seed}.json"
    if only_if_missing and path.is_file():
        return
    with _writing(path):
        write_atomic(path, strict_json({"seed": seed, "kind": kind, **{k: v.tolist() for k, v in split.items()},
                                        **{f"{k}_csv_rows": table.rows[v].tolist() for k, v in split.items()}}))


SEED_RESULT_KEYS = ("seed", "fingerprint", "metrics", "members", "predictions", "seconds")


def load_seed_result(path: Path, seed: int, fp: str) -> tuple[dict | None, str]:
    """A finished seed's result for resuming, or (None, why it cannot be used).

    A file that is not JSON (truncated, empty), lacks a result's keys, or belongs to another
    seed or configuration is not a result: the caller trains that seed again instead of
    crashing or reporting a stale number.
    """
    result = _read_json(path)
    if not isinstance(result, dict):
        return None, "is not a complete JSON result (truncated or corrupt)"
    missing = [k for k in SEED_RESULT_KEYS if k not in result]
    if missing:
        return None, f"lacks {', '.join(missing)}"
    if result["seed"] != seed or result["fingerprint"] != fp:
        return None, f"is seed {result['seed']} of run {result['fingerprint']}, not seed {seed} of run {fp}"
    return result, ""


def run_from_args(args) -> dict:
    """The run, holding --out's lock (``output_lock``) from before the first file is
    deleted or written to the end: a second run on the folder is refused, naming the first."""
    out = out_folder(args)
    lock = output_lock.folder_lock(out, "deepmolm-kflm2")
    try:
        if out.is_dir():  # refused at once, before the data and a featuriser's model are loaded
            with _writing(lock.path):
                output_lock.hold(lock)
        return _run(args, out, lock)
    finally:
        lock.release()


def _run(args, out: Path, lock: output_lock.FileLock) -> dict:
    import torch

    torch.set_num_threads(max(1, args.threads))
    run, cfg = _config(args)
    featurizer = None
    if args.features != "none":
        from .featurizers import llm_featurizer, make_featurizer

        featurizer = make_featurizer(args.features, args.cache_dir, batch_size=args.llm_batch_size,
                                     progress=not args.quiet) \
            if "llm:" in args.features else make_featurizer(args.features, args.cache_dir)
        for part in featurizer.parts:
            part.molecule_progress = not args.quiet
        llm = llm_featurizer(featurizer)
        if llm is not None:  # an llm: folder's contents can change under the same path
            run["llm_fingerprint"] = llm.fingerprint
    run.update(_data_digests(args))
    fp = _fingerprint(run)

    t_load = time.perf_counter()  # the data are read and checked before anything is written
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    # each long pass says what it does (a large table was minutes without a line before the first seed)
    say(f"reading {args.data}" + (f" and {len(args.test_file)} --test-file(s)" if args.test_file else ""))
    table = load_table(args.data, args.targets, args.smiles_column, args.task, args.max_rows)
    tests = {Path(t).stem: load_table(t, args.targets, args.smiles_column, args.task) for t in args.test_file}
    data_report = table.report()
    data_report["test_files"] = {}
    say(f"{len(table.mols)} molecules read in {time.perf_counter() - t_load:.0f} s; finding copies")
    keys = molecule_keys(table.mols)
    if tests:  # a training row of a molecule in a fixed test set (any salt / charge form) would leak: drop it
        test_key_lists = {name: molecule_keys(t.mols) for name, t in tests.items()}
        test_keys = {name: set(k) for name, k in test_key_lists.items()}
        for name, t in tests.items():
            removed = sum(k in test_keys[name] for k in keys)
            # its copies, as --data's (was: none, each copy scored as another molecule without a word)
            duplicates = duplicate_report(t, key_groups(test_key_lists[name]))
            data_report["test_files"][name] = t.report() | {"removed_from_train": removed, "duplicates": duplicates}
        in_tests = set().union(*test_keys.values())
        keep = np.array([i for i, k in enumerate(keys) if k not in in_tests], dtype=np.int64)
        data_report["removed_as_in_test_files"] = len(keys) - len(keep)
        table, keys = table.subset(keep), [keys[i] for i in keep]
        # the counts of the rows trained on (missing labels in removed rows were counted too)
        used = table.report()
        data_report.update({k: used[k] for k in ("molecules", "missing_labels", "missing_labels_per_task")})
    warn_far_labels(data_report, args.data)
    for name, path in zip(tests, args.test_file):
        warn_far_labels(data_report["test_files"][name], f"--test-file {path}")
    if len(table.smiles) < 10:
        # was: "(train, validation and test splits)" and "after removing 0 in the --test-file(s)" with --test-file
        removed = data_report.get("removed_as_in_test_files", 0)
        removed = f" after removing {removed} molecule(s) also in the --test-file(s)" if removed else ""
        splits_of_data = "train and validation splits; the test sets are the --test-file(s)" if tests else \
            "train, validation and test splits"
        raise TableError(f"only {len(table.smiles)} usable molecules in {args.data}{removed}; at least 10 are "
                         f"needed ({splits_of_data})")
    check_labels(table, args.task)
    for t in tests.values():  # a fixed test set without usable labels reported "n/a" and exit 0
        check_labels(t, args.task, test_file=True)
    groups = key_groups(keys)
    data_report["duplicates"] = duplicate_report(table, groups)
    scaffolds = join_groups(scaffold_sets(table.mols), groups) if args.split.startswith("scaffold") else None
    splits = {seed: _split(args, table, seed, scaffolds, groups, bool(tests)) for seed in range(args.seeds)}
    for seed, split in splits.items():
        check_split(split, seed, args.split, len(table.smiles), scaffolds, len(groups))
        check_split_labels(split, seed, table, args.task, args.split)
    # Every input is featurised before --out is touched: a molecule a featuriser refuses (a SMILES
    # past the model's context, states that are not finite) was refused after config.json, seeds/
    # and splits/ were written, and the rerun without it was then refused as another configuration
    # ... and a rerun of another configuration on a folder of results is refused before it (was:
    # after every SMILES had been through an llm: featuriser's model)
    check_rerun(out, run, fp, args.overwrite)
    need_tokens = args.fusion == "attention"
    what = [*([featurizer.name] if featurizer is not None else []), *(["graphs"] if not args.no_graph else [])]
    if what:
        say(f"computing {' and '.join(what)} of {len(table.mols) + sum(len(t.mols) for t in tests.values())} "
            "molecules (cached ones are read)")
    inputs = build_inputs(table, not args.no_graph, featurizer, need_tokens, progress=not args.quiet)
    test_inputs = {name: (build_inputs(t, not args.no_graph, featurizer, need_tokens, progress=not args.quiet), t.y)
                   for name, t in tests.items()}
    # (a new --out is made only here, where the run starts writing: one refused for its data is
    # not left behind)
    with _writing(lock.path):
        output_lock.hold(lock)
    _prepare_out(out, run, fp, args.overwrite)
    if table.invalid and not args.quiet:
        print(f"{len(table.invalid)} unparseable SMILES excluded (see {out / 'data_report.json'})", file=sys.stderr)
    warn_duplicates(data_report["duplicates"], args.data, "each molecule's rows are kept in one subset",
                    f"{out / 'data_report.json'}, duplicates", args.quiet)
    for name, path in zip(tests, args.test_file):
        # scored as given, not refused: a fixed benchmark is compared with numbers published on
        # the file as distributed, copies and all; an edited copy of it would be another benchmark.
        # Its conflicting labels are said with --quiet too: they move the number that is compared
        dups = data_report["test_files"][name]["duplicates"]
        warn_duplicates(dups, f"--test-file {path}", "every row is scored as given, as in numbers published on "
                        "this file", f"{out / 'data_report.json'}, test_files.{name}.duplicates",
                        args.quiet and not dups["conflicting"])

    data_report["imputed_features"] = imputed_features(featurizer, inputs.embed)
    with _writing(out / "data_report.json"):
        write_atomic(out / "data_report.json", strict_json(data_report, indent=1))
    for name, counts in data_report["imputed_features"].items():
        if not args.quiet:
            print(f"{counts['molecules']} molecules have {counts['values']} {name} feature values RDKit could not "
                  f"compute, imputed by the training median (see {out / 'data_report.json'})", file=sys.stderr)
    warm_up()  # counted here, with the data loading, not in the first trained seed's seconds
    featurise_seconds = time.perf_counter() - t_load

    from tqdm.auto import tqdm

    seeds = list(range(args.seeds))
    results = []
    bar = tqdm(seeds, desc=f"{Path(args.data).stem} {args.split}", disable=args.quiet, file=sys.stderr)
    metric, _ = selection_metric(args.task, len(args.targets))
    for seed in bar:
        seed_path = out / "seeds" / f"seed_{seed}.json"
        if seed_path.is_dir():  # its result could not be written there (an IsADirectoryError traceback)
            raise TableError(f"{seed_path} is a folder, not a seed result: move it away (the seed is then trained "
                             "again)")
        if seed_path.exists():
            done, why = load_seed_result(seed_path, seed, fp)
            if done is not None:
                results.append(done)
                bar.set_postfix_str(f"seed {seed} done before")
                _write_split(out, seed, args.split, splits[seed], table, only_if_missing=True)
                continue
            print(f"{seed_path} {why}: training seed {seed} again", file=sys.stderr)
        split = splits[seed]
        _write_split(out, seed, args.split, split, table)

        def progress(epoch, shown, seed=seed):
            bar.set_postfix_str(f"seed {seed} epoch {epoch} {shown}")

        result = run_seed(inputs, table.y, split, cfg, seed, table.task_names, test_inputs, progress)
        result["split_sizes"] = {k: int(len(v)) for k, v in split.items()}
        for name, pred in result["predictions"].items():  # `index` counts usable molecules, not CSV rows
            source = tests.get(name, table)  # a --test-file's predictions index its own table
            pred["csv_rows"] = source.rows[pred["index"]].tolist()
            pred["smiles"] = [source.smiles[i] for i in pred["index"]]
        result["fingerprint"] = fp
        with _writing(seed_path):
            write_atomic(seed_path, strict_json(result))
        results.append(result)

    feats = "none" if featurizer is None else featurizer.name
    from .report import fmt, summarise, write_reports

    summary = summarise(args.task, results)
    results_doc = {
        "dataset": Path(args.data).stem, "data_file": os.path.abspath(args.data), "split": args.split,
        "targets": list(args.targets), "seeds": seeds, "config": cfg.to_dict(), "run": run, "fingerprint": fp,
        "featurisers": ("graph D-MPNN + " if not args.no_graph else "") + feats +
                       (f" ({args.fusion} fusion)" if (not args.no_graph and featurizer is not None) else ""),
        "data": data_report | {"rows": table.rows_read}, "featurise_seconds": featurise_seconds,
        # what the headline number is (was: said nowhere; several regression targets' "rmse" is
        # the mean of RMSEs in their own units, kept for scripts that read it)
        "headline": {"metric": metric, "meaning": HEADLINE_MEANING[metric]},
        "summary": summary, "per_seed": results,
        "seconds_total": float(sum(r["seconds"] for r in results)),
    }
    try:
        with _writing(f"the reports in {out} (results.json, results.md, plots/)"):
            paths = write_reports(results_doc, out, plots=not args.no_plots, keep_plots=not args.overwrite)
    except Unwritable:
        remove_reports(out)  # some new, some old: a mixed set must not pass for this run's reports
        raise
    results_doc["paths"] = {k: [os.fspath(x) for x in v] if isinstance(v, list) else os.fspath(v)
                            for k, v in paths.items()}
    if not args.quiet:
        # every tested subset: the split's test and each --test-file (only the first was shown)
        tested = [k for k in summary if k not in ("train", "valid")] or ["valid"]
        parts = []
        for key in tested:
            e = summary[key][metric]
            shown = fmt(e)
            if e is not None and "seed" not in shown:  # fmt names the seeds when some lack it ("(1 of 2 seeds) over 1")
                shown += f" over {len(e['values'])} seeds"
            parts.append(f"{key} {metric} {shown}")
        print(f"{Path(args.data).stem} {args.split}: {'; '.join(parts)} -> {paths['markdown']}", file=sys.stderr)
    return results_doc


def check_labels(table: Table, task: str, test_file: bool = False) -> None:
    """Every target must be learnable from the usable molecules (and, in a `--test-file`,
    measurable on them): a column without a single label would be trained (tested) on
    nothing and silently left out of every averaged metric; a classification target with
    one class has no ROC-AUC anywhere, and a constant regression target has no R² and an
    RMSE that measures nothing but the model's noise."""
    where = f"--test-file {table.path}" if test_file else table.path
    for k, name in enumerate(table.task_names):
        labelled = table.y[~np.isnan(table.y[:, k]), k]
        if labelled.size == 0:
            fix = "nothing to test it on" if test_file else "drop it from --targets"
            raise TableError(f"{where}: target {name!r} has no label in the {len(table.smiles)} usable "
                             f"molecules; {fix}")
        if np.unique(labelled).size < 2:
            value, why = ("class", "no ROC-AUC can be computed") if task == "classification" else (
                "the value", "no R² can be computed on it" if test_file else "nothing to learn and no R²")
            raise TableError(f"{where}: {task} target {name!r} has only {value} {labelled[0]:g} in its "
                             f"{labelled.size} labelled molecules: {why}")


DUPLICATES_SHOWN = 20


def duplicate_report(table: Table, groups: list[list[int]]) -> dict:
    """Copies of one molecule (``groups`` of one ``molecule_key``) and those whose labels
    disagree. The rows stay (benchmark files have copies and published numbers use them),
    but nobody should learn of them from a leak: the splits keep copies together, and
    this says how many there are and lists the conflicting ones (CSV rows, SMILES, labels)."""
    copies = [g for g in groups if len(g) > 1]
    conflicting = [g for g in copies if any(np.unique(c[~np.isnan(c)]).size > 1 for c in table.y[g].T)]
    return {
        "key": "canonical SMILES of the largest fragment, neutralised", "distinct_molecules": len(groups),
        "molecules_with_copies": len(copies), "rows_in_copies": sum(map(len, copies)), "conflicting": len(conflicting),
        "conflicts": [{"csv_rows": table.rows[g].tolist(), "smiles": [table.smiles[i] for i in g],
                       "labels": [[None if math.isnan(v) else v for v in table.y[i]] for i in g]}
                      for g in conflicting[:DUPLICATES_SHOWN]],
    }


def warn_duplicates(dups: dict, where: str, fate: str, see: str, quiet: bool, shown: int = 5) -> None:
    """One stderr line (none with ``quiet``) on the copies ``duplicate_report`` found in a
    file, naming the first rows of those whose labels disagree; ``see``: where
    data_report.json lists them."""
    if not dups["molecules_with_copies"] or quiet:
        return
    copies = f"{dups['molecules_with_copies']} molecule(s) occur in several rows ({dups['rows_in_copies']} rows; " \
             f"{dups['distinct_molecules']} distinct molecules)"
    if not dups["conflicting"]:
        print(f"{where}: {copies}; {fate} (see {see})", file=sys.stderr)
        return
    rows = ", ".join("(" + ", ".join(map(str, c["csv_rows"])) + ")" for c in dups["conflicts"][:shown])
    more = f" and {dups['conflicting'] - shown} more" if dups["conflicting"] > shown else ""
    print(f"deepmolm-kflm2: warning: {where}: {copies}, {dups['conflicting']} of them with labels that disagree, in "
          f"rows {rows}{more}; {fate} (see {see})", file=sys.stderr)


def check_split(split: dict, seed: int, kind: str, n: int, scaffolds, distinct: int) -> None:
    """A subset left empty by a split (too few molecules, copies of a few molecules kept
    together, or one scaffold holding most of them) would train on nothing, select the model
    on nothing, or report no test: refuse it, naming the cause (`distinct`: molecules once
    copies are joined; 30 rows of one molecule were told to use --split random, which they did)."""
    empty = [name for name, idx in split.items() if len(idx) == 0]
    if empty:
        sizes = ", ".join(f"{name} {len(idx)}" for name, idx in split.items())
        sets = f" in {len(scaffolds)} scaffold set(s), the largest of {max(map(len, scaffolds.values()))}" \
            if scaffolds else ""
        copies = f"; they are {distinct} distinct molecules (copies stay in one subset)" if distinct < n else ""
        advice = "more data, other --sizes" + (" or --split random" if kind != "random" else "")
        raise TableError(f"--split {kind} seed {seed}: the {' and '.join(empty)} subset(s) would be empty ({sizes} "
                         f"of {n} molecules{sets}{copies}); use {advice}")


def check_split_labels(split: dict, seed: int, table: Table, task: str = "regression", kind: str = "random") -> None:
    """Every target needs a label in every non-empty subset of every seed: a sparse target
    whose few labels all fell in valid/test was trained on nothing, and its untrained
    output's test error was averaged into the seed's (only numpy's "Mean of empty slice"
    warning said so); one without a validation or test label has no number there.

    A classification target also needs both classes in every seed's training subset: one
    whose few positives all fell in valid/test was trained on one class, and that seed's
    test ROC-AUC (any value from 0 to 1, meaning nothing) was averaged into the headline
    result with exit 0. Valid and test may hold one class: validation then selects by the
    loss, and a test subset without both classes has no ROC-AUC that seed (n/a, counted in
    the report; none in any seed is exit 1)."""
    for name, idx in split.items():
        if not len(idx):
            continue
        counts = (~np.isnan(table.y[idx])).sum(0)  # (targets,) labels in this subset
        lacking = [t for t, c in zip(table.task_names, counts) if c == 0]
        if lacking:
            total = (~np.isnan(table.y)).sum(0)
            listed = ", ".join(f"{t!r} ({int(total[table.task_names.index(t)])} labels in all)" for t in lacking)
            raise TableError(f"seed {seed}: the {name} subset ({len(idx)} molecules) has no label of target(s) "
                             f"{listed}: use more labelled data, other --sizes, or leave the target out")
    train = table.y[split["train"]]
    if task != "classification":
        check_regression_train_values(train, seed, len(split["train"]), table, kind)
        return
    for k, target in enumerate(table.task_names):
        classes = np.unique(train[~np.isnan(train[:, k]), k])
        if classes.size < 2:
            have, missing = int(classes[0]), 1 - int(classes[0])
            in_all = {c: int((table.y[:, k] == c).sum()) for c in (0, 1)}
            other = " or --split random" if kind != "random" else ""
            raise TableError(
                f"seed {seed}: the train subset ({len(split['train'])} molecules) holds only class {have} of "
                f"classification target {target!r} (0 of the {in_all[missing]} molecules of class {missing}; "
                f"{in_all[have]} of class {have} in all): trained on one class, its ROC-AUC would mean nothing; "
                f"use more molecules of class {missing}, a larger TRAIN fraction (--sizes){other}, or leave the "
                "target out")


def check_regression_train_values(train: np.ndarray, seed: int, n: int, table: Table, kind: str) -> None:
    """A regression target whose training labels in one seed are all one value (its few
    other values all in valid/test) was trained on a constant: the model learns nothing
    from it and the seed's test error, that of a constant, was averaged in with exit 0.
    Refused like one class in a classification seed (`train`: that subset's label rows)."""
    for k, target in enumerate(table.task_names):
        values = np.unique(train[~np.isnan(train[:, k]), k])
        if values.size == 1:
            labelled = table.y[~np.isnan(table.y[:, k]), k]
            other = " or --split random" if kind != "random" else ""
            raise TableError(
                f"seed {seed}: the train subset ({n} molecules) holds only the value {values[0]:g} of regression "
                f"target {target!r} ({int((labelled != values[0]).sum())} of its {labelled.size} labels differ, all "
                f"in valid/test): trained on a constant, nothing to learn; use more varied labels, a larger TRAIN "
                f"fraction (--sizes){other}, or leave the target out")


def _split(args, table: Table, seed: int, scaffolds, groups: list[list[int]], fixed_test: bool) -> dict:
    if not fixed_test:
        return make_split(args.split, table.mols, seed, args.sizes, scaffolds, groups)
    train_f, valid_f = args.sizes[0], args.sizes[1]
    if args.split == "random":
        return train_valid_split(len(table.mols), seed, valid_f / (train_f + valid_f), groups)
    sizes = (train_f / (train_f + valid_f), valid_f / (train_f + valid_f), 0.0)
    split = make_split(args.split, table.mols, seed, sizes, scaffolds)
    valid = np.sort(np.concatenate([split["valid"], split["test"]]))  # no test here: leftovers to valid
    return {"train": split["train"], "valid": valid}


HEADLINE_MEANING = {"rmse": "RMSE of the one target, in its unit", SCALED_RMSE: SCALED_RMSE_MEANING,
                    "roc_auc": "mean over targets of ROC-AUC (targets with both classes in the subset)"}
MAX_SEEDS = 1000  # --seeds 1e9 built splits until memory ran out, silently
POSITIVE = ("seeds", "hidden", "depth", "ffn_hidden", "ffn_layers", "fusion_dim", "heads", "epochs", "patience",
            "batch_size", "ensemble", "threads", "llm_batch_size", "max_rows")


def check_arguments(args) -> None:
    """The files, their CSV headers, the featuriser spec and the numbers, before anything
    is computed or written: a UsageError names the first problem (option, path, column)."""
    for name in POSITIVE:
        usage.at_least(getattr(args, name), "--" + name.replace("_", "-"))
    if args.seeds > MAX_SEEDS:  # every seed's split is built and checked before the first is trained
        raise usage.UsageError(f"--seeds {args.seeds}: at most {MAX_SEEDS} (each seed trains a model; the splits "
                               "of all of them are built before the first)")
    if not 0 <= args.dropout < 1:
        raise usage.UsageError(f"--dropout must be in [0, 1), got {args.dropout}")
    # (they were a bare message and exit 1, after the data had been read)
    if args.no_graph and args.features == "none":
        raise usage.UsageError("nothing to train: --no-graph with --features none")
    if args.fusion == "attention" and ("llm:" not in args.features or args.no_graph):
        raise usage.UsageError("--fusion attention needs the graph and an llm:<folder> featuriser (token states)")
    # argparse's float takes "inf" and "nan": training with them gives NaN weights
    for option, value in [("--lr", args.lr), ("--weight-decay", args.weight_decay)] + [("--sizes", s) for s in args.sizes]:
        if not math.isfinite(value):
            raise usage.UsageError(f"{option} must be a finite number, got {value}")
    if not args.lr > 0:
        raise usage.UsageError(f"--lr must be > 0, got {args.lr}")
    usage.at_least(args.weight_decay, "--weight-decay", 0)
    train, valid, test = args.sizes
    if not (train > 0 and valid > 0 and test >= 0 and (test > 0 or args.test_file)):
        raise usage.UsageError(f"--sizes {train} {valid} {test}: TRAIN and VALID must be > 0, and TEST too "
                               "unless --test-file gives the test sets")
    if args.test_file and test not in (0, DEFAULT_SIZES[2]):
        # was: dropped without a word, TRAIN:VALID rescaled to the whole training file. A TEST
        # share of the default's 0.1 is taken (unused, as the default's is): it is what a typed
        # default or an older command says, and 0.1 and 0 are one run (`run_sizes`); another
        # share is one the user meant to be used, and refused
        raise usage.UsageError(f"--sizes {train:g} {valid:g} {test:g}: the TEST share is unused with --test-file (the "
                               f"--test-file(s) are the test sets and the --data file is split TRAIN:VALID only): "
                               f"give --sizes {train:g} {valid:g} 0")
    if not args.test_file and abs(train + valid + test - 1.0) > 1e-6:  # the splits take fractions of the data
        raise usage.UsageError(f"--sizes {train} {valid} {test}: the three fractions must sum to 1")
    names = [Path(t).stem for t in args.test_file]  # results are keyed by them, next to "train" and "valid"
    # with --test-file the split makes train and valid only (its TEST fraction goes to them): a file
    # named test.csv takes no one's place
    clash = sorted({n for n in names if names.count(n) > 1 or n in ("train", "valid")})
    if clash:
        raise usage.UsageError(f"--test-file: the name(s) {clash} (file name without extension) would overwrite "
                               "another test set's or the train/valid results; copy or rename the file(s)")
    for option, path in [("--data", args.data)] + [("--test-file", t) for t in args.test_file]:
        usage.existing_file(path, option, allow_empty=False)
        try:  # results.md names the files (UTF-8): such a name failed writing it, after every seed had trained
            os.path.abspath(path).encode("utf-8")
        except UnicodeEncodeError:
            raise usage.UsageError(f"{option} {os.fsencode(path)!r}: its path has bytes that are not UTF-8, which "
                                   "results.md cannot name: rename the file (or its folder)") from None
        check_utf8(path, option)  # the whole file: a bad byte after the first read (8 KB) was a traceback
        problem = json_file_problem(path)
        if problem:
            raise usage.UsageError(f"{option} {path}: {problem}")
        try:  # blank lines before the header are skipped, as load_table does
            with open(path, newline="", encoding="utf-8-sig") as f:
                header = first_row(csv.reader(f)) or []
        except csv.Error as e:
            raise usage.UsageError(f"{option} {path}: cannot read the header: {e}") from e
        problem = column_problem(header, args.targets, args.smiles_column)
        if problem:
            raise usage.UsageError(f"{option} {path}: {problem}")
    if args.features != "none":
        from .featurizers import split_spec as _split_spec

        items = _split_spec(args.features)
        if not items:
            raise usage.UsageError(f"--features {args.features!r}: empty")
        check_feature_pieces(args.features, items)
        for item in items:
            if item.startswith("llm:"):
                check_llm_folder(item[4:])
            elif item != "rdkit2d" and not re.fullmatch(r"morgan(:[0-9]+(:[1-9][0-9]*)?)?", item):
                raise usage.UsageError(f"--features: unknown featuriser {item!r}: use rdkit2d, "
                                       "morgan[:radius[:bits]], llm:<folder>, several joined by '+', or none")
            elif item.startswith("morgan"):
                from .featurizers import morgan_settings

                try:
                    morgan_settings(item.partition(":")[2] or None)
                except ValueError as e:
                    raise usage.UsageError(f"--features {e}") from e
    if args.out is not None:
        usage.output_folder(args.out, "--out")
    if args.features != "none":  # (without a featuriser no cache is written)
        check_cache_outside_out(args)
    check_out_folder(out_folder(args))  # a model's or one's own folder: before anything is computed
    if args.cache_dir is not None:
        usage.output_folder(args.cache_dir, "--cache-dir")
    elif args.features != "none":  # the featurisers' cache from the environment (or ~/.cache): checked alike,
        # it failed with NotADirectoryError after --out had been written
        from .embedding_cache import CACHE_ENV, default_cache_dir

        option = f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else "the featuriser cache"
        usage.output_folder(default_cache_dir(), option)


def check_cache_outside_out(args) -> None:
    """UsageError if the featurisers' cache (--cache-dir, else $DEEPMOLM_PROPERTY_CACHE, else
    ~/.cache/...) is --out or a folder inside it, as training refuses --vision_feature_cache
    inside --output_dir. Was: the first run filled the cache there, then refused its own --out
    as "not a deepmolm-kflm2 run folder: it holds cache", and so did every rerun. The paths are
    compared resolved, so a link or a `..` spelling of the same folder is caught too."""
    from .embedding_cache import CACHE_ENV, default_cache_dir

    if args.cache_dir is not None:
        cache, option = args.cache_dir, "--cache-dir"
    else:
        cache = os.fspath(default_cache_dir())
        option = f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else "the featuriser cache (no --cache-dir)"
    out = out_folder(args)
    where = usage.placed_in(cache, out)  # (a loop of links: not here, output_folder refuses it after)
    if where:
        raise usage.UsageError(f"{option} {cache}: {where} --out {out}, whose files a run owns (its reports are "
                               "replaced, and a folder that holds anything else is refused as a run's): give "
                               "--cache-dir (or $" + CACHE_ENV + ") a folder outside --out, or --out another folder")


def check_feature_pieces(spec: str, items: Sequence[str]) -> None:
    """UsageError for an empty piece (``rdkit2d+``, ``+morgan``, ``rdkit2d++morgan``) or a
    featuriser given twice (``rdkit2d+rdkit2d``; ``morgan`` and ``morgan:2:2048``; one llm:
    folder by two paths): was accepted silently, the empty piece dropped (but kept in the
    run's fingerprint) and a repeated block fed twice, doubling its weight in the fusion."""
    from .featurizers import morgan_settings

    def empty_pieces(text: str) -> int:
        return sum(not piece.strip() for piece in text.split("+"))

    # split_spec drops empty pieces, except those inside an llm: folder's path (a '+' in a name)
    if empty_pieces(spec) > sum(empty_pieces(i) for i in items):
        raise usage.UsageError(f"--features {spec!r}: an empty featuriser before, after or between '+': name one "
                               "featuriser on each side of every '+'")
    seen: dict = {}
    for item in items:
        name, _, argument = item.partition(":")
        if name == "llm":
            key = ("llm", os.path.realpath(os.path.expanduser(argument)))
        elif name == "morgan":
            try:
                key = ("morgan", morgan_settings(argument or None))
            except ValueError:  # out of bounds: check_arguments names it next
                continue
        else:
            key = (item,)
        if key in seen:
            same = "" if seen[key] == item else f" (the same as {seen[key]!r})"
            raise usage.UsageError(f"--features {spec!r}: the featuriser {item!r} is given twice{same}: its "
                                   "columns would be fed twice; name each featuriser once")
        seen[key] = item


def check_llm_folder(given: str) -> None:
    """What an `llm:` folder must hold, checked before --out is written (each was a
    traceback after it, or a model that loaded wrong): readable config.json files, a
    configuration transformers knows, a tokenizer with a vocabulary, and a weight file."""
    from ..tensor_files import CheckpointError, find_tensor_files

    folder = usage.existing_folder(given, "--features llm:")
    usage.model_folder(str(folder), "--features llm:")  # a config.json (or llm/config.json)
    # readable JSON objects (they were tracebacks): the folder's own config.json, and
    # llm/config.json where that is the one loaded (none on top, or a VILA one)
    top = usage.model_config(folder, "--features")
    if top is None or "llm_cfg" in top:
        usage.model_config(folder / "llm", "--features")
    from ..model.loading import resolve_llm_path
    from .causal_lm import llm_config, load_tokenizer

    from huggingface_hub.errors import StrictDataclassError

    path = resolve_llm_path(str(folder))
    try:
        llm_config(path)
    except (ValueError, KeyError, StrictDataclassError) as e:  # an unknown model_type, fields that disagree
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise usage.UsageError(f"--features llm:{given}: transformers cannot read its config.json: {reason}") from e
    load_tokenizer(path)
    try:
        weights = find_tensor_files(path)
    except (CheckpointError, OSError) as e:  # two shard indexes, an index naming a missing shard
        raise usage.UsageError(f"--features llm:{given}: {e}") from e
    if not weights:
        raise usage.UsageError(f"--features llm:{given}: {path} holds no weight file (*.safetensors or *.bin)")


def check_utf8(path: str, option: str) -> None:
    """UsageError naming the line of the first byte that is not UTF-8; read in blocks, so a
    large table is never held twice."""
    decoder, line = codecs.getincrementaldecoder("utf-8")(), 1
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:  # e.object: the block after a character split across blocks
                line += e.object.count(b"\n", 0, e.start)
                raise usage.UsageError(f"{option} {path}: not a UTF-8 CSV file ({e.reason}: byte "
                                       f"0x{e.object[e.start]:02x} on line {line}); save it as UTF-8") from e
            line += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            raise usage.UsageError(f"{option} {path}: not a UTF-8 CSV file (it ends inside a character); "
                                   "save it as UTF-8") from e


@usage.interrupted_by_sigterm  # a scheduler's SIGTERM or `kill`: the Ctrl-C line below, not a silent 143
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    usage.checked(parser, check_arguments, args)
    from ..tensor_files import CheckpointError
    from .featurizers import FeaturizerError

    try:
        results_doc = run_from_args(args)
    except TableError as e:  # stays a SystemExit (status 2) for callers that catch one
        print(f"deepmolm-kflm2: error: {e}", file=sys.stderr)
        raise
    except (usage.UsageError, CheckpointError, FeaturizerError) as e:  # a model or molecule the run cannot use
        print(f"deepmolm-kflm2: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"deepmolm-kflm2: error: {e}", file=sys.stderr)
        return 1
    except Unwritable as e:  # a full disk: as deepmolm-fingerprint and deepmolm-render say it
        print(f"deepmolm-kflm2: error: {e}; the seeds finished so far are kept: rerun the same command to resume",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # was a traceback through torch and exit -2
        print("\ndeepmolm-kflm2: interrupted; the seeds finished so far are kept: rerun the same command to resume",
              file=sys.stderr)
        return 130
    return 1 if undefined_test_metric(results_doc) else 0


def undefined_test_metric(results_doc: dict) -> bool:
    """Say so (stderr) and True when a test subset has its primary metric in no seed: a
    classification test split with one class per target in every seed. The reports are
    written (n/a in them); the exit status must not call it a result."""
    metric = results_doc["headline"]["metric"]
    empty = [k for k, e in results_doc["summary"].items() if k not in ("train", "valid") and e[metric]["n"] == 0]
    for subset in empty:
        print(f"deepmolm-kflm2: error: no seed's {subset} subset has both classes of any target, so there is no "
              f"{subset} {metric} (the reports in {Path(results_doc['paths']['json']).parent} say n/a); give the "
              "test subset more molecules (--sizes), more data, or a --test-file with both classes",
              file=sys.stderr)
    return bool(empty)

