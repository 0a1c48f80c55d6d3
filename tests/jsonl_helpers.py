"""Helpers for the eval tests: questions and answers files written from records."""

from __future__ import annotations

import json
from pathlib import Path


def write_jsonl(path: Path, rows) -> Path:
    """`rows` (dicts) as JSON lines at `path`; returns `path`."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
