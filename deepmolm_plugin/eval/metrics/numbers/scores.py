"""Scores of a property's predictions against their references.

`property_metrics(preds, refs, name)`: n, n_valid, valid_ratio (x100), MAE and RMSE over
the valid predictions (None when none is valid), plus the property's unit and range. A
prediction whose error with the reference is not a finite float (1e308 against -1e308) is
invalid, so MAE and RMSE are always finite numbers (computed without overflow).

Separate because it is the one place answers become numbers for the report: parsing
(`value.py`) and ranges (`properties.py`) meet here."""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

from .properties import PropertySpec, property_spec
from .value import parse_value


def parse_prediction(text: str, spec: PropertySpec) -> Optional[float]:
    """The parsed value in the property's unit, or None if it is not a number, states a
    unit of another kind, or is out of the property's range."""
    value = parse_value(text, spec)
    return value if value is not None and spec.in_range(value) else None


def property_metrics(preds: Sequence[str], refs: Sequence[float], name: str) -> Dict[str, object]:
    """Valid ratio (x100) and MAE/RMSE over valid predictions for one property.

    preds: answer texts; refs: reference values (finite numbers)."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    spec = property_spec(name)
    errors = []
    for pred, ref in zip(preds, refs):
        ref = float(ref)
        if not math.isfinite(ref):
            raise ValueError(f"{name}: reference value {ref} is not finite")
        value = scored_value(pred, spec, ref)
        if value is not None:
            errors.append(abs(value - ref))
    n, n_valid = len(preds), len(errors)
    result = spec.describe()
    result.update({"n": n, "n_valid": n_valid, "valid_ratio": 100.0 * n_valid / n if n else None,
                   "n_references_out_of_range": sum(not spec.in_range(float(r)) for r in refs),
                   "mae": mean_error(errors), "rmse": root_mean_square(errors)})
    return result


def scored_value(text: str, spec: PropertySpec, reference: float) -> Optional[float]:
    """The value a prediction is scored with, or None when it is invalid: not a number, out
    of range (widened to take in the reference), or so far from the reference that the
    error is beyond the float range (a
    property without a range, the model answering 1e308): that error is no number."""
    value = parse_value(text, spec)
    if value is None or not spec.in_range(value, reference):
        return None
    return value if math.isfinite(value - reference) else None


def mean_error(errors: Sequence[float]) -> Optional[float]:
    """The mean, summed as e/n: a plain sum of large errors overflows to inf."""
    return sum(e / len(errors) for e in errors) if errors else None


def root_mean_square(errors: Sequence[float]) -> Optional[float]:
    """RMSE scaled by the largest error: e*e overflows to inf above 1.3e154 (an answer of
    1e200 for a property without a range), and metrics.json would hold `Infinity`."""
    if not errors:
        return None
    scale = max(errors)
    if scale == 0:
        return 0.0
    return scale * math.sqrt(sum((e / scale) ** 2 for e in errors) / len(errors))
