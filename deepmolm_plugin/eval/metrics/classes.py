"""Yes/no (binary) answers: the class an answer states, and classification scores.

A binary task (a reference record's `"metric": "binary"`: BBBP's `p_np`, a Tox21 assay, ...)
is scored as a classifier, not as a regression on 0 and 1 (whose MAE said nothing a
chemist reports for such a task). What an answer states (`stated_label`):

- a yes/no word opening it ("Yes.", "No, it does not cross...", "**True**"): 1 or 0;
- else the number the property reader finds for the task's label name
  (`numbers.parse_value`: "The p_np is 1.", "p_np: 0.83"): a value in [0, 1] is the
  answer's score (a probability or a class), its class 1 from 0.5 on; any other value
  ("The p_np is 5.") and an answer stating nothing readable are invalid.

Scores (`binary_metrics`), class 1 the positive one: accuracy, balanced accuracy, F1 and
Matthews' correlation over every answer, an invalid one counted as the wrong class (as a
wrong answer: a model that answers nothing readable scores 0, not "n/a"), and ROC-AUC over
the valid answers' scores (rank-based, ties halved: hard 0/1 answers give the balanced
accuracy of those answers). A score that is 0/0 (F1 without any positive reference or
prediction, MCC with one class on a side, AUROC without both classes among the valid
answers) is None and its reason is in `undefined`.
"""

from __future__ import annotations

import math
import re
from typing import Dict, Optional, Sequence

from .numbers import parse_value, property_spec

# An opening word that answers the question: "Yes" / "No" (and the JSON-ish true / false),
# after markdown emphasis or a quote; a word of a longer one ("Nonetheless", "Note") is not.
_OPENING = re.compile(r"\s*[*_\"'`>#\s]*(yes|no|true|false)\b(?![-'’])", re.IGNORECASE)
_WORDS = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
THRESHOLD = 0.5  # a score from here on is class 1


def opening_word_label(text: str) -> Optional[float]:
    """1.0 / 0.0 for an answer that opens with yes / no (true / false), else None."""
    match = _OPENING.match(text)
    return _WORDS[match.group(1).lower()] if match else None


def stated_label(text: str, name: str) -> Optional[float]:
    """The score in [0, 1] an answer states for the binary label `name`, or None."""
    word = opening_word_label(text)
    if word is not None:
        return word
    value = parse_value(text, property_spec(name))
    return value if value is not None and 0.0 <= value <= 1.0 else None


def binary_metrics(scores: Sequence[Optional[float]], refs: Sequence[float], name: str) -> Dict[str, object]:
    """Classification scores (x100 but MCC, in [-1, 1]) for one binary task: `scores` what
    each answer states (`stated_label`: in [0, 1], None when invalid), `refs` the
    reference classes (0 or 1)."""
    if len(scores) != len(refs):
        raise ValueError(f"{len(scores)} predictions but {len(refs)} references")
    if any(r not in (0, 1) for r in refs):
        raise ValueError(f"{name}: reference classes must be 0 or 1, got {sorted(set(refs) - {0, 1})[:5]}")
    # an invalid answer is the wrong class
    classes = [1 - int(r) if s is None else int(s >= THRESHOLD) for s, r in zip(scores, refs)]
    tp = sum(c == 1 and r == 1 for c, r in zip(classes, refs))
    tn = sum(c == 0 and r == 0 for c, r in zip(classes, refs))
    fp = sum(c == 1 and r == 0 for c, r in zip(classes, refs))
    fn = sum(c == 0 and r == 1 for c, r in zip(classes, refs))
    n, positives = len(refs), tp + fn
    undefined: Dict[str, str] = {}
    recalls = [tp / positives if positives else None, tn / (tn + fp) if tn + fp else None]
    if None in recalls:
        undefined["balanced_accuracy"] = "the references hold one class only"
    if not 2 * tp + fp + fn:
        undefined["f1"] = "no positive reference and no positive answer"
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    if not denominator:
        undefined["mcc"] = "one class only among the references or the answers"
    valid = [(s, r) for s, r in zip(scores, refs) if s is not None]
    auroc = roc_auc([s for s, _ in valid], [r for _, r in valid])
    if auroc is None:
        undefined["auroc"] = "the valid answers' references hold one class only (or none is valid)"
    return {"label": name, "n": n, "n_valid": len(valid), "valid_ratio": 100.0 * len(valid) / n if n else None,
            "n_positive_references": positives, "n_positive_answers": sum(s >= THRESHOLD for s, _ in valid),
            "accuracy": 100.0 * (tp + tn) / n if n else None,
            "balanced_accuracy": None if None in recalls else 50.0 * (recalls[0] + recalls[1]),
            "f1": 100.0 * 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None,
            "mcc": (tp * tn - fp * fn) / denominator if denominator else None,
            "auroc": None if auroc is None else 100.0 * auroc,
            "undefined": undefined}


def roc_auc(scores: Sequence[float], classes: Sequence[float]) -> Optional[float]:
    """The probability that a random class-1 item scores above a random class-0 one (ties
    count a half): the Mann-Whitney form of the ROC area, from average ranks. None without
    both classes. KFLM2's reports use it too (`property.train.roc_auc`)."""
    import numpy as np
    from scipy.stats import rankdata

    positive = np.asarray(classes, dtype=np.float64) == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
