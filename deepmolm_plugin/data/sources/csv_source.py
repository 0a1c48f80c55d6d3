"""CSV reader (``--format csv``): a SMILES column plus the label / text columns you name.

For MoleculeNet-style files (``../shared/data/moleculenet``) and any table of molecules.
Options (from the ``deepmolm-prepare`` command line):

- ``smiles_column`` (default: the column called ``smiles``, any case);
- ``label_columns``: numeric columns, each ``COLUMN`` or ``COLUMN=NAME``; one item per
  row and column, task ``property:NAME``, asked with the shared property question and
  answered "The NAME is VALUE." (the value as the file writes it), with
  ``properties={NAME: float(VALUE)}``. A blank cell is a missing label (Tox21 has many):
  that row simply has no item for that task - never a zero;
- ``binary_labels``: label NAMEs (of ``label_columns``) that are yes/no labels, each cell 0
  or 1 (another value is that item's ``SourceError``); their records carry ``"metric":
  "binary"``, so evaluation scores them as classifications (accuracy, F1, AUROC:
  ``eval.metrics.classes``) instead of by MAE; a name that is no label NAME is refused;
- ``text_columns``: text answers, each ``COLUMN=TASK`` or a ``COLUMN`` whose name is a task
  of the prompt table (``description``); one item per row and column, blank cells skipped.
  A numeric task (LogP, HOMO..., ``property:*``: what evaluation scores as a number) is
  refused before the file is read: numbers are ``label_columns``. A cell that is only a
  missing-value marker ("N/A", "nan", "None", "-": `base.answer_problem`) is that item's
  ``SourceError`` (stage ``answer``);
- ``id_column`` (default: ``<file stem>#<row>``, rows counted from 0 after the header; a stem
  that no id can start with, " esol" or one holding a tab, is refused before any row is read,
  `base.id_file_name`; with
  the option, a row whose id is blank, or that `base.id_problem` refuses once the white
  space around it is trimmed (a control or invisible format character: shown), is a
  ``SourceError`` named ``<file stem>#<row>``);
- ``split_column`` (default: every row in ``train``).

Item ids are ``<row id>:<task>``. A row whose SMILES is blank or is refused (it does not
parse, has no heavy atoms, holds a dummy atom: the molecule readers' reason,
`smiles_refusal`), that holds bytes that are not UTF-8, or a control character other than
a tab, LF or CR in a column that is read (a NUL: ``base.control_problem``; wherever it is in the file:
a file is refused whole only for NULs or other control bytes throughout, ``not_text``),
whose split is blank or not a plain name,
that has the wrong number of fields (the message says what is past the header's columns),
that the csv module cannot parse (a field over
``csv.field_size_limit()``), or that has no label or text at all is one ``SourceError``
naming the row; a label that is not a finite number
(or not written in plain decimals: ``1_000``) is a ``SourceError`` for that item. A named
column missing from the header or appearing in it twice, a label name holding a number
(evaluation would read that number as the value), two label names that differ only in
case, spaces or punctuation (`eval.names.name_key`: training and evaluation refuse them as
two spellings of one property), a label name no record can carry (`label_names`: a line
break, tab or invisible character, the image placeholder, a chat-template token), or an
unknown option, is
a configuration error raised at once; header cells are matched with spaces around them
aside (``columns_named``'s rule), so two cells that differ only so are a column named
twice. A file that is no UTF-8 text (UTF-16, gzip, zip: ``molecule.io.read.not_text``)
is one error saying so, and so is one whose header is one cell holding semicolons, tabs
or bars (`base.separator_problem`: not comma-separated). Column names holding a comma (5 of SIDER's) are
given as a JSON list, ``--option 'label_columns=["Injury, poisoning ..."]'``: the comma
lists of the command line would cut them apart (the error for the missing piece says so).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

from ...csv_table import columns_named, csv_rows, line_span, plain_number, spelled_otherwise
from ...molecule import MAX_ATOMS, MoleculeError, molecule_from_smiles
from ...molecule.errors import MoleculeTooLarge
from ..prompts import PROPERTY_PREFIX, TASKS, is_known_task, property_answer, property_task
from ...molecule.io.read import not_text
from .base import (MoleculeSpec, SourceError, SourceItem, answer_problem, control_problem, csv_header,
                   field_count_problem, fields_control_problem, id_file_name, id_problem, option_name,
                   other_format_problem, register_reader, repeated_id, split_problem, undecodable)
from .label_names import check_label_name_usable

OPTIONS = {"smiles_column", "label_columns", "binary_labels", "text_columns", "id_column", "split_column"}
# A label as the answer writes it (PLAIN_NUMBER): evaluation (eval.metrics.numbers) must read it back the same.


def as_list(value) -> List[str]:
    """Column lists arrive as a list or one comma-separated string. A list (the JSON form,
    ``--option 'label_columns=["a, b"]'``) keeps names that hold a comma whole."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [v.strip() for v in items if v.strip()]


def named(spec: str, header: Sequence[str] = ()) -> Tuple[str, str]:
    """``COLUMN=NAME`` -> (COLUMN, NAME); ``COLUMN`` -> (COLUMN, COLUMN). A spec that is a
    whole column of `header` is that column ("logD (pH=7.4)"); else it is split at its last
    '=' ("logD (pH=7.4)=logD": split at the first, the column could not be named at all).
    A blank NAME ("a=") is refused before this is asked (`check_renames`)."""
    if spec.strip() in (column.strip() for column in header) or "=" not in spec:
        return spec.strip(), spec.strip()
    column, _, name = spec.rpartition("=")
    return column.strip(), name.strip()


def check_renames(fmt: str, options: dict, header: Sequence[str] = ()) -> None:
    """A ``COLUMN=`` whose NAME is blank (what ``a=$NAME`` gives with NAME empty) is refused,
    as a blank --id-column is (`base.option_name`): it fell back to the column's own name
    without a word. Read against the `header`, as `named` reads it (a column "a=" is whole)."""
    for option in ("label_columns", "text_columns"):
        for spec in as_list(options.get(option)):
            column, name = named(spec, header)
            if not name:
                raise ValueError(f"{fmt}: option {option} gives the column {column!r} a blank name after '=' "
                                 f"({spec!r}): write {column}=NAME, or {column} alone to keep its own name")


def text_task(spec: str, fmt: str, header: Sequence[str] = ()) -> Tuple[str, str]:
    """(column, task) of a text column; the task must be a text task the prompt table knows
    (`text_tasks`). Was: any task of the table, the numeric ones too, whose free-text answers
    the report then scored by the first number in them."""
    column, task = _column_task(spec, header)
    refuse_numeric_text_task(fmt, column, task)
    if not is_known_task(task):
        raise ValueError(f"{fmt}: text column {column!r} needs a text task of the prompt table "
                         f"({', '.join(text_tasks())}): write {column}=TASK (numbers: --label-columns "
                         f"{column}=NAME)")
    return column, task


def _column_task(spec: str, header: Sequence[str] = ()) -> Tuple[str, str]:
    """(column, task) as written: ``COLUMN=TASK``, or a ``COLUMN`` named like a task."""
    column, task = named(spec, header)
    if column == spec.strip():
        task = next((t for t in TASKS if t.lower() == column.lower()), column)
    return column, task


def is_numeric_task(task: str) -> bool:
    """Whether evaluation scores `task` as a number: the property names of the prompt table
    (LogP, HOMO...) and ``property:*`` (`eval.task_kinds.task_kind`, the one place that decides)."""
    from ...eval.task_kinds import task_kind

    return task_kind(task, {}) == "property"


def text_tasks() -> list:
    """The prompt table's tasks that a text column may answer (not the numeric ones)."""
    return [t for t in TASKS if not is_numeric_task(t)]


def refuse_numeric_text_task(fmt: str, column: str, task: str) -> None:
    """A text column's answers are kept as written, with no `properties`: for a numeric task
    the report took the first number in each ("ethanol, 2 carbons" as LogP 2), and an answer
    with no number was refused by eval.questions only after training."""
    if is_numeric_task(task):
        name = task[len(PROPERTY_PREFIX):] if task.startswith(PROPERTY_PREFIX) else task
        raise ValueError(f"{fmt}: text column {column!r} is given the numeric task {task!r}, which evaluation scores "
                         f"by the number in each answer: numbers go in --label-columns {column}={name}; a column of "
                         f"text takes a text task, {column}=TASK (Caption, description, ...)")


def check_column_lists(fmt: str, options: dict) -> None:
    """The column options are a name, names separated by commas, or a JSON list of names
    (`as_list`): ``--option label_columns=5`` (the int 5) was a TypeError traceback."""
    for name in ("label_columns", "binary_labels", "text_columns"):
        value = options.get(name)
        if not (value is None or isinstance(value, str)
                or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise ValueError(f"{fmt}: option {name} must be a column name, names separated by commas or a JSON "
                             f"list of names, got {value!r}")


def check_text_columns(fmt: str, options: dict) -> None:
    """`refuse_numeric_text_task` for every text column, before the input is opened (the
    reader's `check`; the header may still change which part of a spec is the column,
    `named`, and `text_task` checks again with it). The column lists' form first
    (`check_column_lists`)."""
    check_column_lists(fmt, options)
    for spec in as_list(options.get("text_columns")):
        refuse_numeric_text_task(fmt, *_column_task(spec))


def require_columns(fmt: str, options: dict, header: Sequence[str] = ()) -> None:
    """A table read for no column would yield nothing but errors: say so at once. Label
    names and tasks are checked as the reader will read them (`named` with the `header`).
    (Unknown options are refused by the registry, see ``base.check_options``.)"""
    check_renames(fmt, options, header)
    if not as_list(options.get("label_columns")) and not as_list(options.get("text_columns")):
        raise ValueError(f"{fmt}: name at least one --label-columns or --text-columns column")
    from ...eval.names import name_key  # stdlib only

    folded: dict = {}  # name_key -> the name's first spelling
    for _, name in (named(spec, header) for spec in as_list(options.get("label_columns"))):
        check_label_name_usable(fmt, name)  # a line break, '<image>': every row failed at run time
        check_label_name(fmt, name)
        first = folded.setdefault(name_key(name), name)
        if first != name:  # training (data.records.check_property_names) and evaluation would refuse the records
            raise ValueError(f"{fmt}: label names {first!r} and {name!r} differ only in case, spaces or punctuation: "
                             "training and evaluation refuse them as two spellings of one property; name them "
                             "apart, COLUMN=NAME")
    check_one_column_per_task(fmt, options, header)
    binary_names(fmt, options, header)


def check_one_column_per_task(fmt: str, options: dict, header: Sequence[str] = ()) -> None:
    """Item ids are ``<row id>:<task>``: two columns answering one task (``a=Y b=Y``, a
    column named twice) would give every row two items with one id, and the later one of
    each would fail as a duplicate id after the whole run."""
    columns: dict = {}
    for column, name in (named(spec, header) for spec in as_list(options.get("label_columns"))):
        columns.setdefault(property_task(name), []).append(column)
    # the tasks as written (`_column_task`): whether each is a valid text task is `text_task`'s check
    for column, task in (_column_task(spec, header) for spec in as_list(options.get("text_columns"))):
        columns.setdefault(task, []).append(column)
    shared = {task: names for task, names in columns.items() if len(names) > 1}
    if shared:
        listed = "; ".join(f"task {task!r} from columns {names}" for task, names in shared.items())
        raise ValueError(f"{fmt}: each task needs its own column ({listed}): give them different names, "
                         "COLUMN=NAME")


def label_item(row_id: str, split: str, column: str, name: str, value: str, molecule: MoleculeSpec,
               extra: dict, binary: bool = False) -> SourceItem | SourceError | None:
    """The property item of one label cell; None for a blank (missing) label. A `binary`
    label (`binary_labels`) is 0 or 1 and its item is scored as a yes/no classification
    (`metric` "binary": accuracy, F1, AUROC... where a regression's MAE said little)."""
    value = (value or "").strip()
    task = property_task(name)
    if not value:
        return None
    # float() also takes "1_000" (evaluation would read the answer "The y is 1_000." as 1)
    try:
        number = plain_number(value)
    except ValueError as e:
        return SourceError(f"{row_id}:{task}", "label", f"column {column!r} value {e}")
    if binary and number not in (0.0, 1.0):  # e.g. a -1/1 coding, or a probability
        return SourceError(f"{row_id}:{task}", "label", f"column {column!r} value {value!r} is not 0 or 1 "
                                                        f"({name!r} is in binary_labels)")
    return SourceItem(id=f"{row_id}:{task}", split=split, task=task, molecule=molecule,
                      answer=property_answer(name, value), properties={name: number}, extra=extra,
                      metric="binary" if binary else None)


def binary_names(fmt: str, options: dict, header: Sequence[str] = ()) -> frozenset:
    """The label names of `binary_labels` (each the NAME a label column is given, or its
    column's own name); one that names no label column is a configuration error."""
    labels = [name for _, name in (named(spec, header) for spec in as_list(options.get("label_columns")))]
    binary = as_list(options.get("binary_labels"))
    unknown = [name for name in binary if name not in labels]
    if unknown:
        raise ValueError(f"{fmt}: binary_labels {unknown} name no label column; the labels are {labels} "
                         "(a binary label is one of --label-columns, by its NAME)")
    return frozenset(binary)


def text_item(row_id: str, split: str, where: str, task: str, value: str, molecule: MoleculeSpec,
              extra: dict) -> SourceItem | SourceError | None:
    """The text item of one cell or field (`where`: "column 'desc'"); None for a blank one (a
    missing text, skipped). One that is only a missing-value marker ("N/A", "nan" as pandas
    writes a missing cell: `base.missing_marker`) is that item's failure; was: its answer."""
    text = (value or "").strip()
    if not text:
        return None
    control = control_problem(text, where)  # a NUL (was kept in the answer); `_row` checks its cells first too
    if control:
        return SourceError(f"{row_id}:{task}", "read", control)
    problem = answer_problem(text, where)
    if problem:
        return SourceError(f"{row_id}:{task}", "answer", problem)
    return SourceItem(id=f"{row_id}:{task}", split=split, task=task, molecule=molecule, answer=text, extra=extra)


def check_label_name(fmt: str, name: str) -> None:
    """A label's answer ("The NAME is VALUE.") must read back as VALUE in evaluation, which
    takes the first number of the reference answer: a name holding a number ("Tox 21",
    "solubility at pH 7") would make every reference value that number."""
    from ...eval.metrics.numbers import parse_number

    for probe in ("0.5", "-1.5e-3"):
        got = parse_number(property_answer(name, probe))
        if got != float(probe):
            raise ValueError(f"{fmt}: label name {name!r}: evaluation would read the answer "
                             f"{property_answer(name, probe)!r} as {got}, not {probe} (the name holds a "
                             "number): give the column a name without one, COLUMN=NAME")


def _columns(fmt: str, header: List[str], options: dict) -> dict:
    def need(column: str, what: str) -> str:
        # Spaces around a header cell aside, as `columns_named` finds the SMILES column: the
        # names given are stripped, so a label cell " y " could not be named in any spelling.
        where = [i for i, name in enumerate(header) if name.strip() == column.strip()]
        if not where:
            with_comma = [c for c in header if "," in c]
            hint = (f"; a name holding a comma ({with_comma[0]!r}) is cut apart in a comma list: give the list as "
                    f"JSON, --option 'label_columns=[\"{with_comma[0]}\"]' (or text_columns)" if with_comma else "")
            raise ValueError(f"{fmt}: {what} column {column!r} is not in the header {header}"
                             f"{spelled_otherwise(header, column)}{hint}")
        if len(where) > 1:  # else the last one would be read, silently
            spelled = [header[i] for i in where]
            spelled = f": {spelled}, spaces around them aside" if len(set(spelled)) > 1 else ""
            raise ValueError(f"{fmt}: {what} column {column!r} appears {len(where)} times in the header "
                             f"(columns {where}{spelled}): rename them apart")
        return header[where[0]]  # the cell as written: rows are read by it

    for name in ("smiles_column", "id_column", "split_column"):
        option_name(fmt, options, name)  # a blank one fell back to the default without a word
    found = [header[i] for i in columns_named(header, "smiles")]
    if not options.get("smiles_column") and len(found) > 1:  # `SMILES` and `smiles`: the first was read, silently
        raise ValueError(f"{fmt}: the header has several SMILES columns {found}: name the one to read with "
                         "--smiles-column")
    smiles = options.get("smiles_column") or next(iter(found), None)
    if smiles is None:
        raise ValueError(f"{fmt}: no 'smiles' column in the header {header}; name it with --smiles-column")
    return {
        "smiles": need(smiles, "SMILES"),
        "labels": [(need(c, "label"), n) for c, n in (named(s, header) for s in as_list(options.get("label_columns")))],
        "binary": binary_names(fmt, options, header),
        "texts": [(need(c, "text"), t) for c, t in (text_task(s, fmt, header)
                                                    for s in as_list(options.get("text_columns")))],
        "id": need(options["id_column"], "id") if options.get("id_column") else None,
        "split": need(options["split_column"], "split") if options.get("split_column") else None,
    }


# files: none (a folder is refused when read)
@register_reader("csv", options=OPTIONS, files=lambda folder, options: [], check=check_text_columns)
def read_csv(input_path: str, options: dict) -> Iterator[SourceItem | SourceError]:
    path = Path(input_path)
    if not path.is_file():
        raise FileNotFoundError(f"csv: {path} is not a file")
    # a .csv.gz or UTF-16 file was "the header is not UTF-8 text: [garbage]"; an SDF, no 'smiles' column
    problem = not_text(path) or other_format_problem(path, "csv")
    if problem:
        raise ValueError(f"csv: {path}: {problem}")
    # surrogateescape: a byte that is not UTF-8 fails its own row (below), not the whole read
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = csv_header(reader, path, "csv")
        if any(map(undecodable, header)):
            raise ValueError(f"csv: {path}: the header is not UTF-8 text: {header}")
        require_columns("csv", options, header)  # the names as read with the header ("logD (pH=7.4)" whole)
        columns = _columns("csv", header, options)
        # the default ids are "<file stem>#<row>": a stem no id can start with is refused here,
        # once, before any row is read (was: every row failed, blaming its id)
        if columns["id"] is None:
            id_file_name("csv", path, path.stem, "--id-column")
        at = {name: i for i, name in enumerate(header)}
        ended = reader.line_num  # the line the previous row ended on
        ids: dict = {}  # id column value -> the row that has it
        for index, fields in enumerate(csv_rows(reader)):
            where = f"row {index} ({line_span(ended + 1, reader.line_num)})"
            ended = reader.line_num
            if isinstance(fields, csv.Error):
                yield SourceError(f"{path.stem}#{index}", "read", f"{where}: {fields}")
            elif any(map(undecodable, fields)):
                bad = next(f for f in fields if undecodable(f)).encode("utf-8", "surrogateescape")
                yield SourceError(f"{path.stem}#{index}", "read", f"{where}: not UTF-8 text: {bad!r}")
            elif fields:  # a blank line is not a row
                yield from _row(path, index, where, fields, header, at, columns, ids)


def smiles_refusal(smiles: str, reason: str) -> str:
    """A row's SMILES failure in the molecule readers' words (deepmolm-fingerprint and
    -render give `reason` alone), with the SMILES named where the reason does not name it.
    Was "SMILES '[H+]' does not parse: no heavy atoms...": it parses, and is refused."""
    return reason if repr(smiles) in reason else f"SMILES {smiles!r} is refused: {reason}"


def _row(path: Path, index: int, where: str, fields: list, header: list, at: dict, columns: dict, ids: dict):
    row_id = f"{path.stem}#{index}"
    # (a trailing empty cell is not dropped here, as the chebi20 reader drops a trailing tab: a
    # table's last column may be empty, and `CCN,1,5,` under smiles,y,z, a decimal comma and an
    # empty z, was read as y=1, z=5)
    # White space around the cell is trimmed, as around every cell of the row (Excel and
    # hand-written files pad them: refusing " r1" failed whole files); what is left must be
    # an id `id_problem` takes (a tab or an invisible character inside it), and two cells
    # that trim alike are one id twice (`repeated_id`, which names the rows).
    cell = fields[at[columns["id"]]].strip() if columns["id"] and len(fields) == len(header) else None
    refused = id_problem(cell) if cell else None
    if cell and not refused:
        row_id = cell
    if len(fields) != len(header):
        yield SourceError(row_id, "read", f"{where} has {len(fields)} fields, the header {len(header)}: "
                                          f"{field_count_problem(fields, header, quoted=True)}")
        return
    if columns["id"] and not cell:  # a made-up id could collide or shift on edits
        yield SourceError(row_id, "id", f"{where} has a blank id in the column {columns['id']!r}")
        return
    if refused:
        yield SourceError(row_id, "id", f"{where}: {refused}")
        return
    # `where` names the file lines too: the row number counts blank lines, as the ids do
    problem = repeated_id(ids, row_id, where) if columns["id"] else None
    if problem:
        yield SourceError(row_id, "id", problem)
        return
    # a NUL (or another control character) in a cell that is read: this row's failure wherever
    # it is (was: the whole file refused when it was in the first 64 KiB, `not_text`; after
    # that, "SMILES ... does not parse" or "not a number", without the row's line)
    used = [columns["smiles"], columns["split"]] + [c for c, _ in columns["texts"] + columns["labels"]]
    control = fields_control_problem((f"column {c!r}", fields[at[c]]) for c in used if c)
    if control:
        yield SourceError(row_id, "read", f"{where}: {control}")
        return
    split = fields[at[columns["split"]]].strip() if columns["split"] else "train"
    if split_problem(split):
        yield SourceError(row_id, "split", split_problem(split))
        return
    smiles = fields[at[columns["smiles"]]].strip()
    if not smiles:
        yield SourceError(row_id, "smiles", "blank SMILES")
        return
    try:
        # parse + sanitise only; the size cap is the worker's (--max-atoms). A molecule over
        # the default cap (MAX_ATOMS, 256 heavy atoms) is only parsed here: sanitising a
        # 20,000-atom macrocycle took 52 s and 12 GB in this, the main, process (killed under
        # a memory limit); the worker then refuses it under its cap, or reads it without one.
        molecule_from_smiles(smiles, row_id, policy="keep", max_atoms=MAX_ATOMS)
    except MoleculeTooLarge:
        pass
    except MoleculeError as e:
        yield SourceError(row_id, "smiles", smiles_refusal(smiles, e.reason))
        return
    molecule, extra = MoleculeSpec(smiles=smiles), {"row": index}
    produced = False
    for column, task in columns["texts"]:
        item = text_item(row_id, split, f"column {column!r}", task, fields[at[column]], molecule, extra)
        if item is not None:
            produced = True
            yield item
    for column, name in columns["labels"]:
        item = label_item(row_id, split, column, name, fields[at[column]], molecule, extra,
                          binary=name in columns["binary"])
        if item is not None:
            produced = True
            yield item
    if not produced:
        names = [c for c, _ in columns["texts"]] + [c for c, _ in columns["labels"]]
        yield SourceError(row_id, "labels", f"no label or text in any of the columns {names}")
