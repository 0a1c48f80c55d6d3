"""Yes/no (binary) answers: the class an answer states, and classification scores.

A binary task (a reference record's `"metric": "binary"`: BBBP's `p_np`, a Tox21 assay, ...)
is scored as a classifier, not as a regression on 0 and 1 (whose MAE said nothing a
chemist reports for such a task). What an answer states (`stated_value`, `stated_label`):

- a yes/no word opening it ("Yes.", "No, it does not cross...", "**True**", "_No_", "- Yes",
  "1. No", "Answer: yes"): 1 or 0; "Yes or no", "Yes/No", "yes and no" state nothing;
- else, where the answer names the label ("The p_np is 1.", "LogP 3.2, p_np: 0.83"), the
  number after that name, read as property answers are (`numbers.parse_value` on the text
  after it: "compound 5", a year, a list marker are no value);
- else, an answer that is only a number ("1", "0.83.").

A number anywhere else is no answer: "The molecule has 1 aromatic ring and does not cross
the barrier" was class 1 (the first number of the answer). A value in [0, 1] is the
answer's score (a probability or a class), its class 1 from 0.5 on; any other value ("The
p_np is 5.", "90%") and an answer stating nothing readable are invalid.

Scores (`binary_metrics`), class 1 the positive one:
- accuracy and balanced accuracy (the mean of the two classes' recalls) over every answer,
  an invalid one being no right answer: a model that answers nothing readable scores 0;
- F1, Matthews' correlation and ROC-AUC over the valid answers (`n_valid`, `valid_ratio`
  beside them), which need a predicted class or score: an invalid answer counted as "the
  wrong class" made a model that never answered look like a perfectly inverted classifier
  (MCC -1). ROC-AUC is rank-based, ties a half (hard 0/1 answers give their balanced
  accuracy).
A score that is 0/0 (balanced accuracy with one reference class, F1 without a positive,
MCC with one class on a side, AUROC without both classes among the valid answers) is None
and its reason is in `undefined`.
"""

from __future__ import annotations

import math
import re
from typing import Dict, Optional, Sequence

from .numbers import own_mention_end, parse_value, property_spec

# What may come before an opening yes / no: white space, markdown emphasis, a quote (curly
# ones too), a zero-width format character, a list marker ("1.", "2)", "-", "•") and an
# "Answer:" label. The word ends where no letter or digit follows (not `\b`: `_` is a word
# character, so "_Yes_" had no answer), nor a joined word ("no-go", "No's", "yes_no").
_OPENING = re.compile(r"(?:[\s*_\"'`>#“”‘’«„\u200b-\u200d\u2060\ufeff]|\d{1,2}[.)](?=\s)|[-•+](?=\s)"
                      r"|(?:answer|a)\s*:)*(yes|no|true|false)(?![^\W_]|[-'’_][^\W_])", re.IGNORECASE)
# "Yes or no", "Yes/No", "yes and no": both words, no answer
_BOTH = re.compile(r"[\s*_\"'’”]*(?:/|or(?![^\W_])|and(?![^\W_]))[\s*_\"'“‘]*(?:yes|no|true|false)(?![^\W_])",
                   re.IGNORECASE)
_WORDS = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
# an answer that is only a number, markup and a full stop aside
_BARE_NUMBER = re.compile(r"[\s*_`\"'“”]*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[\s*_`\"'“”.!]*")
THRESHOLD = 0.5  # a score from here on is class 1


def opening_word_label(text: str) -> Optional[float]:
    """1.0 / 0.0 for an answer that opens with yes / no (true / false), else None."""
    match = _OPENING.match(text)
    if match is None or _BOTH.match(text, match.end()):
        return None
    return _WORDS[match.group(1).lower()]


def stated_value(text: str, name: str) -> Optional[float]:
    """The value an answer states for the binary label `name` (module docstring), any
    number, or None; `stated_label` holds it to [0, 1]."""
    word = opening_word_label(text)
    if word is not None:
        return word
    spec = property_spec(name)
    end = own_mention_end(text, spec)  # the label's name or, for a known property, an alias
    if end is not None:
        return parse_value(text[end:], spec)
    return parse_value(text, spec) if _BARE_NUMBER.fullmatch(text) else None


def class_of(score: Optional[float]) -> Optional[int]:
    """The class a stated score is (1 from THRESHOLD on), None for no score."""
    return None if score is None else int(score >= THRESHOLD)


def stated_label(text: str, name: str) -> Optional[float]:
    """The score in [0, 1] an answer states for the binary label `name`, or None."""
    value = stated_value(text, name)
    return value if value is not None and 0.0 <= value <= 1.0 else None


def binary_metrics(scores: Sequence[Optional[float]], refs: Sequence[float], name: str) -> Dict[str, object]:
    """Classification scores (x100 but MCC, in [-1, 1]) for one binary task: `scores` what
    each answer states (`stated_label`: in [0, 1], None when invalid), `refs` the
    reference classes (0 or 1)."""
    if len(scores) != len(refs):
        raise ValueError(f"{len(scores)} predictions but {len(refs)} references")
    if any(r not in (0, 1) for r in refs):
        raise ValueError(f"{name}: reference classes must be 0 or 1, got {sorted(set(refs) - {0, 1})[:5]}")
    n, positives = len(refs), sum(int(r) for r in refs)
    valid = [(class_of(s), s, int(r)) for s, r in zip(scores, refs) if s is not None]
    # every answer: an invalid one is right in neither class
    right = [sum(c == r for c, _, r in valid if r == k) for k in (0, 1)]
    recalls = [right[0] / (n - positives) if n - positives else None, right[1] / positives if positives else None]
    # the valid answers: their predicted classes
    tp = sum(c == 1 and r == 1 for c, _, r in valid)
    tn = sum(c == 0 and r == 0 for c, _, r in valid)
    fp = sum(c == 1 and r == 0 for c, _, r in valid)
    fn = sum(c == 0 and r == 1 for c, _, r in valid)
    undefined: Dict[str, str] = {}
    if n and None in recalls:
        undefined["balanced_accuracy"] = "the references hold one class only"
    if n and not 2 * tp + fp + fn:
        undefined["f1"] = "no valid answer with a positive reference or a positive answer"
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    if n and not denominator:
        undefined["mcc"] = "one class only among the valid answers or their references"
    auroc = roc_auc([s for _, s, _ in valid], [r for _, _, r in valid])
    if n and auroc is None:
        undefined["auroc"] = "the valid answers' references hold one class only (or no answer is valid)"
    return {"label": name, "n": n, "n_valid": len(valid), "valid_ratio": 100.0 * len(valid) / n if n else None,
            "n_positive_references": positives, "n_positive_answers": tp + fp,
            "accuracy": 100.0 * sum(right) / n if n else None,
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


def roc_curve(classes: Sequence[float], scores: Sequence[float]):
    """(false positive rates, true positive rates) of the ROC curve: one point per distinct
    score, highest first, from (0, 0) to (1, 1). The eval report's binary plots and KFLM2's
    reports draw it."""
    import numpy as np

    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    y = np.asarray(classes, dtype=np.float64)[order]
    s = np.asarray(scores, dtype=np.float64)[order]
    distinct = np.r_[np.where(np.diff(s))[0], y.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (1 + distinct) - tps
    return np.r_[0.0, fps / max(fps[-1], 1)], np.r_[0.0, tps / max(tps[-1], 1)]
