"""The range of a property label, one rule for deepmolm-kflm2's CSVs and the auxiliary
property head's training records.

Both standardise each target by its mean and standard deviation, which squares the labels:
beyond +-LABEL_LIMIT the squares overflow float64 (1e200 made the std inf, every target 0,
every metric NaN), and nonzero labels within +-LABEL_FLOOR underflow (a target of 1e-200s
had a std of 0, was not standardised, and its RMSE came out 1e199 x its scale, its R^2
"constant"). No measured property lies outside; a unit change brings one back.
"""

from __future__ import annotations

__all__ = ["LABEL_FLOOR", "LABEL_LIMIT", "RANGE", "in_range"]

LABEL_LIMIT = 1e100
LABEL_FLOOR = 1e-100
RANGE = f"beyond +-{LABEL_LIMIT:g} or nonzero within +-{LABEL_FLOOR:g}"  # what an error says is wrong


def in_range(value: float) -> bool:
    """A label of usable size: 0, or LABEL_FLOOR <= |value| <= LABEL_LIMIT (False for NaN, inf)."""
    return value == 0 or LABEL_FLOOR <= abs(value) <= LABEL_LIMIT
