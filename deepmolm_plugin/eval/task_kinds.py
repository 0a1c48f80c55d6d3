"""How a question is scored: its kind of task, and (property tasks) its reference value.

Kinds (`task_kind`): `property` when the task name is a known property
(`metrics.numbers.PROPERTY_RANGES`, aliases included) or a key of the record's
`properties`; `smiles` for SMILES_TASKS; `iupac` for IUPAC_TASKS; else `text`. A record's
optional `metric` field (one of KINDS) overrides the kind the task name implies.

The reference value of a property question is the number parsed from the reference answer
by the same parser as the predictions (`metrics.numbers.parse_number`, so both sides read
"-2.3 × 10^4 eV" alike), else `properties[<property>]`.
"""

from __future__ import annotations

import math
import re
from typing import Optional

from .merge import ReportError

KINDS = ("text", "iupac", "property", "smiles")
# task names compared by `_key`: lower case, letters and digits only
SMILES_TASKS = frozenset({"smiles", "transsmiles", "smilesgeneration", "text2smiles", "text2mol",
                          "moleculegeneration", "molgen", "descriptiontosmiles"})
IUPAC_TASKS = frozenset({"iupac", "iupacnaming", "transiupac", "iupacname", "smiles2iupac"})


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def task_kind(task: str, record: dict) -> str:
    from .metrics.numbers import is_property

    metric = record.get("metric")
    if metric is not None:
        if metric not in KINDS:
            raise ReportError(f"question {record.get('question_id')!r}: metric {metric!r} is not one of "
                              f"{', '.join(KINDS)}")
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
