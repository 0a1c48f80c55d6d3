"""Reading question and answer files: JSON lines, each an object with required fields.

Blank lines are skipped; a line that is not UTF-8, not JSON, states a key twice in one
object (`usage.json_loads_unique`: the last value was used without a word) or lacks a
field raises `error` naming the file and line number (callers pass their own error type,
so their CLIs report it). So does a `question_id` (when required) that is not a JSON
string or integer: ids are matched as text, so null was the id "None", true "True", 1.0
"1.0" (no match for the 1 of the other file). A byte-order mark that starts a later line
(files joined with `cat`) and lines ended by a lone carriage return are named as such.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Type

from ..usage import RepeatedKeyError, json_loads_unique, surrogate_problem


def read_jsonl(path: "str | os.PathLike", required: Sequence[str] = ("question_id",),
               error: Type[Exception] = ValueError) -> List[dict]:
    return [row for _, row in numbered_jsonl(path, required, error)]


def numbered_jsonl(path: "str | os.PathLike", required: Sequence[str] = ("question_id",),
                   error: Type[Exception] = ValueError) -> List[Tuple[int, dict]]:
    """`read_jsonl`'s rows with their line numbers in the file (blank lines counted), for
    messages that name a row found wrong later (a question_id given twice)."""
    rows = []
    # Bytes, decoded line by line: a text handle would fail on a bad byte with a
    # UnicodeDecodeError naming neither the file nor the line.
    with open(os.path.expanduser(path), "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise error(f"{path}, line {number}: not UTF-8 text: {e}") from e
            if not text.strip():
                continue
            try:
                row = json_loads_unique(text)
            except json.JSONDecodeError as e:
                raise error(f"{path}, line {number}: not JSON: {e}{_hint(text)}") from e
            except RepeatedKeyError as e:  # a question's second `text` was the one asked, without a word
                raise error(f"{path}, line {number}: {e.reason()}") from e
            if not isinstance(row, dict) or any(field not in row for field in required):
                raise error(f"{path}, line {number}: a JSON object with {', '.join(required)} is needed")
            problem = surrogate_problem(row) if "\\u" in text else None  # only a \u escape makes one
            if problem:  # it failed with a traceback when the report was written, after all the scoring
                raise error(f"{path}, line {number}: {problem}")
            if "question_id" in required and question_id_problem(row["question_id"]):
                raise error(f"{path}, line {number}: {question_id_problem(row['question_id'])}")
            rows.append((number, row))
    return rows


def _hint(text: str) -> str:
    """Why a line that json refuses may look fine in an editor."""
    if text.startswith("\ufeff"):
        return " (a byte-order mark starts this line: files joined with `cat`, one of them saved with a BOM?)"
    if "\r" in text.rstrip("\r\n"):
        return " (lines end with a lone carriage return, \\r: convert the file to \\n line ends)"
    return ""


def json_kind(value) -> str:
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    return names.get(type(value), "string")


def question_id_problem(qid) -> Optional[str]:
    """Why `qid` cannot be a question id, or None: a JSON string or integer is needed (ids
    are matched as text, and str() of null, true or 1.0 is "None", "True", "1.0")."""
    if isinstance(qid, bool) or not isinstance(qid, (str, int)):
        return f"question_id {json.dumps(qid)} is a JSON {json_kind(qid)}; a string or an integer is needed"
    if isinstance(qid, str) and not qid.strip():  # shown as nothing in every table and message
        return f"question_id {json.dumps(qid)} is blank"
    if isinstance(qid, str) and any(unicodedata.category(c) == "Cc" for c in qid):
        return f"question_id {json.dumps(qid)} holds a control character (a line break, a tab...)"
    return None


# eval.report's files in its --out (`outputs.write_outputs`, metrics.json last); model_vqa's
# settings digest leaves them out when a report was written into the model folder
REPORT_FILES = ("metrics.json", "metrics.md", "per_question.jsonl")
AUX_SUFFIX = ".aux_properties.jsonl"  # model_vqa's KFLM2 property-head predictions, next to the answers


def aux_path(answers: "str | os.PathLike") -> Path:
    """`<answers stem>.aux_properties.jsonl` beside an answers file: the property head's
    predictions for its questions (model_vqa writes it, the report reads it)."""
    answers = Path(answers)
    return answers.with_name(answers.stem + AUX_SUFFIX)


def failures_path(answers: "str | os.PathLike") -> Path:
    """`<answers stem>.failures.jsonl` beside an answers file: the `{question_id, reason}`
    lines of the questions model_vqa's run could not ask (the report names them)."""
    answers = Path(answers)
    return answers.with_name(answers.stem + ".failures.jsonl")
