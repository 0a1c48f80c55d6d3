"""Reading question and answer files: JSON lines, each an object with required fields.

Blank lines are skipped; a line that is not UTF-8, not JSON or lacks a field raises
`error` naming the file and line number (callers pass their own error type, so their CLIs
report it).
"""

from __future__ import annotations

import json
import os
from typing import List, Sequence, Type


def read_jsonl(path: "str | os.PathLike", required: Sequence[str] = ("question_id",),
               error: Type[Exception] = ValueError) -> List[dict]:
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
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise error(f"{path}, line {number}: not JSON: {e}") from e
            if not isinstance(row, dict) or any(field not in row for field in required):
                raise error(f"{path}, line {number}: a JSON object with {', '.join(required)} is needed")
            rows.append(row)
    return rows
