"""Yes/no (binary) answers: the class an answer states, and classification scores.

A binary task (a reference record's `"metric": "binary"`: BBBP's `p_np`, a Tox21 assay, ...)
is scored as a classifier, not as a regression on 0 and 1 (whose MAE said nothing a
chemist reports for such a task). What an answer states (`stated_value`, `stated_label`):

- a yes/no word opening it ("Yes.", "No, it does not cross...", "**True**", "_No_", "- Yes",
  "Probably yes", "Most likely no", "1. No", "(A) Yes", "Answer: yes", "**Answer**: No", "The
  answer is no.", "Prediction: YES", "Yep.", "Nope", "Nah"; after an answer label the word
  ends its statement: "The answer is no simple matter" says nothing), or "not" as the whole
  statement ("Probably not.", "Certainly not", "Not at all.", "Not really.", "Unlikely."; not
  "Not sure", "Not in my data"): 1 or 0; words of two classes ("Yes or no", "Yes/No", "yes
  and no", "Yeah, no.", the choices repeated: "(A) Yes (B) No") and "No answer", "No clear
  answer can be given", "No data.", "No doubt ...", "Of course no one can tell" state
  nothing; one class said twice ("No / inactive") is that class;
- a class word that is the whole opening statement ("Active.", "Inactive, it does not
  bind", "**Positive**", "Negative (it does not cross).", "The answer is negative.", "Not
  active." 0):
  active / positive 1, inactive / negative 0 (an assay's or a test's outcome; "Negative for
  NR-AR", "Active against HIV" too, a question aside). Followed by a word, `:` or `?` it is
  no answer ("Positive charge sits on N", "Positive: low MW."); nor is one of a list
  ("Active, inactive and inconclusive calls ...");
- the yes / no after a form's outcome field ("Active: no" 0, "Inactive: yes" 0) or after the
  question restated on the first line ("Is it active? No.", "Active? no.");
- else, where the answer names the label: the yes/no or class word right after the name
  ("p_np: no", "| p_np | active |"), else the number after it, read as property answers are
  (`numbers.parse_value` on the text after it: "compound 5", a year, a list marker are no
  value), a percentage only right after the name ("p_np: 85%" is 0.85; "p_np: inactive (12%
  inhibition)" is the word's 0, and a percentage further on is another quantity's);
- else, an answer that is only a number ("1", "0.83.", "90%"), also after an answer label
  ("The answer is 1.", "Answer: 85%").
A percentage is its fraction of 1 ("90%" 0.9; was 90, invalid). An answer whose opening
word and the label's word or number right after its name disagree ("Yes, it crosses (p_np =
0)") states both classes, and is no answer (was: the opening word's).

A number anywhere else is no answer: "The molecule has 1 aromatic ring and does not cross
the barrier" was class 1 (the first number of the answer). A value in [0, 1] is the
answer's score (a probability or a class), its class 1 from 0.5 on; any other value ("The
p_np is 5.", "150%") and an answer stating nothing readable are invalid.

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

from .numbers import number_and_text_after, own_mention_end, parse_value, property_spec

# What may come before an opening yes / no: white space, markdown emphasis, a quote (curly
# ones too), a table's `|`, `:` and `=` (after the label's name: "p_np: no"), a zero-width
# format character, a list marker ("1.", "2)", "-", "•") and an answer label ("Answer:", "A:",
# "The answer is", "Final answer:", "**Answer**:", "Prediction:", "Conclusion:"). The word
# ends where no letter or digit follows (not `\b`: `_` is a word character, so "_Yes_" had no
# answer), nor a joined word ("no-go", "No's", "yes_no").
_LEAD = r"[\s*_\"'`>#“”‘’«„|:=\u200b-\u200d\u2060\ufeff]|\d{1,2}[.)](?=\s)|[-•+](?=\s)|\([A-Da-d]\)(?=\s)"
_LABEL = (r"(?P<label>(?:(?:the|my|final|correct|short|simple)\s+)*(?:answer|prediction|conclusion|verdict)"
          r"(?:\s+is)?(?![^\W_])|a\s*:)")
# a hedge before the word ("Probably yes.", "Most likely inactive", "Definitely no"); the white
# space after it is `_LEAD`'s: white space two parts of the prefix can both take made a
# failing match quadratic ("probably" and 4,000 spaces took 20 s)
_HEDGE = (r"(?:(?:most|very)\s+)?(?:probably|likely|possibly|definitely|certainly|clearly|presumably|absolutely"
          r"|of\s+course)(?![^\W_])")
_PREFIX = rf"(?:{_LEAD}|{_LABEL}|(?P<hedge>{_HEDGE}))*"
_WORD_END = r"(?![^\W_]|[-'’_][^\W_])"
# informal words too ("Yep.", "Nope, it does not."); `nah` not as sodium hydride, `NaH`
_OPENING = re.compile(_PREFIX + r"(?P<word>yes|yeah|yep|yup|no|nope|(?-i:[Nn]ah|NAH)|true|false)" + _WORD_END,
                      re.IGNORECASE)
_LEADING = re.compile(_PREFIX, re.IGNORECASE)
# An outcome word, only as the whole opening statement: what follows it closes the
# statement (`_CLOSER`), never another word ("Positive charge", "Active site", "negative
# LogP" say something else), nor `:` or `?` ("Positive: low MW. Negative: high TPSA.",
# "Active? No.": a heading, the question restated). "Not active." is inactive (not "Not
# positive, but ...": unsure). In the same pattern (one pass over the opening's prefix), "not"
# as the whole statement, after a hedge or with its adverb ("Probably not.", "Certainly
# not", "Not really.", "Not at all.", "Not likely."), and "Unlikely.": a no; not "Not sure",
# "Not all tautomers ...", "Not in my data": punctuation must end it (`_STATEMENT_END`).
_CLASS_OPENING = re.compile(_PREFIX + r"(?:(?P<negated>not\s+(?=(?:in)?active))?"
                            r"(?P<word>positive|negative|active|inactive)"
                            r"|(?P<not>not(?:\s+(?:really|at\s+all|likely))?|unlikely))" + _WORD_END, re.IGNORECASE)
# What closes a one-word statement: emphasis or a quote, then punctuation, a line break, a
# table's `|`, a dash, the end, what the outcome is for ("Negative for NR-AR", "Active in
# this assay", "Active against HIV"; not a question restated, "Active against HIV? No."),
# or a bracket closed before one of those ("Negative (it does not cross)."; not "Negative
# (ionised) carboxylates ...")
_STATEMENT_END = re.compile(r"[*_\"'`”’]*[ \t]*(?:[.,;!)\]\n|]|[–—]|-\s|$)")
_CLOSER = re.compile(r"[*_\"'`”’]*[ \t]*(?:[.,;!)\]\n|]|[–—]|-\s|$"
                     r"|\([^()\n]*\)[*_\"'`”’]*[ \t]*(?:[.,;!\n]|$)"
                     r"|(?:for|in|against|at|on)(?![^\W_])(?![^\n?]*\?))", re.IGNORECASE)
# "Yes or no", "Yes/No", "yes and no", "Positive or negative": two words of different classes,
# no answer ("No / inactive", "Yes/positive" say one class twice); class words listed with a
# comma, a word or two between ("Active, inactive and inconclusive calls ...", "Negative, then
# positive, charges alternate ...")
_JOINED = re.compile(r"[\s*_\"'’”]*(?:/|or(?![^\W_])|and(?![^\W_]))[\s*_\"'“‘]*"
                     r"(yes|no|true|false|positive|negative|active|inactive)(?![^\W_])", re.IGNORECASE)
_LISTED = re.compile(r"[\s*_\"'’”]*,[\s*_\"'“‘]*(?:[^\W_]+[ \t]+){0,2}"
                     r"(positive|negative|active|inactive)(?![^\W_])", re.IGNORECASE)
# "No answer.", "No clear answer can be given", "No data": "no" qualifying a noun that says
# nothing is stated (was: class 0), on its line and ending the statement or followed by
# what says so; "No data indicate binding ..." is a "no"
_NO_ANSWER = re.compile(r"[ \t]+(?:(?:clear|definitive|conclusive|definite|reliable|certain)[ \t]+)?"
                        r"(?:answers?|ideas?|data|information|predictions?|conclusions?|values?)(?![^\W_])"
                        r"(?:[*_\"'`”’]*[ \t]*(?:[.,;:!?)\]\n]|$)|[ \t]+(?:is|are|can|could|was|were|available|"
                        r"provided|given|found|known|exists?|possible)(?![^\W_]))", re.IGNORECASE)
_WORDS = {"yes": 1.0, "yeah": 1.0, "yep": 1.0, "yup": 1.0, "true": 1.0, "positive": 1.0, "active": 1.0,
          "no": 0.0, "nope": 0.0, "nah": 0.0, "false": 0.0, "negative": 0.0, "inactive": 0.0}
# the choices a question offered, repeated after a choice marker: "(A) Yes (B) No" (on one
# line or two) states neither
_CHOICE_MARK = re.compile(r"\s*\([A-Da-d]\)")
_CHOICES = re.compile(r"[\s,;]*\([A-Da-d]\)[ \t]*(?:yes|no|true|false)(?![^\W_])", re.IGNORECASE)
# two answers of different classes side by side: "Yeah, no.", "Yeah nah", "Yeah - no wait"
_SIDE_BY_SIDE = re.compile(r"[ \t]*[,\-–—]?[ \t]*(yes|yeah|yep|yup|no|nope|nah)(?![^\W_])", re.IGNORECASE)
# the answer corrected right after it: "No, actually yes.", "Nope. Wait, yes it crosses",
# "Yes - sorry, no.", "No, I think yes." state both classes (was: the first word's); the
# corrected word ends its statement or "it"/"this" follows ("Yes, actually no doubt" is no
# correction)
_CORRECTED = re.compile(r"[^\n]{0,80}?(?<![^\W_])(?:actually|wait|correction|sorry|rather|i\s+(?:mean|think|believe))"
                        r"(?![^\W_])[\s,:;.!\-–—]*(yes|yeah|yep|yup|no|nope|nah)(?![^\W_])"
                        r"(?=[*_\"'`”’]*\s*(?:[.,;!)\n]|$|it\b|this\b))", re.IGNORECASE)
# "no" that qualifies a noun, saying nothing of the class: "No doubt it crosses", "Of course
# no one can be sure"
_NO_NOUN = re.compile(r"[ \t]+(?:doubt|one|question|wonder)(?![^\W_])", re.IGNORECASE)
_NUMBER_TEXT = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"  # each part matches in one way only (see _BARE_NUMBER)
_PERCENT_WORD = r"(?:%|percent(?![^\W_]))"
# an answer that is only a number (a percentage too), markup and a full stop aside; each
# part can match in one way only (`\d+\.?\d*` and a `\s*%?` before trailing white space
# took quadratic time on "1" followed by 64,000 digits or spaces)
_BARE_NUMBER = re.compile(r"[\s*_`\"'“”]*" + _NUMBER_TEXT + r"(?:[eE][-+]?\d+)?(?:\s*%)?[\s*_`\"'“”.!]*")
# the unit text after a number (`numbers.number_and_text_after`) that makes it a percentage
_PERCENT = re.compile(r"\s*" + _PERCENT_WORD, re.IGNORECASE)
# right after the label's name: its separator and a hedge ("p_np: 0", "p_np = 0", "p_np is about 0.8")
_AFTER_NAME = r"[\s*_:=|~≈]*(?:(?:is|was|of|about|approximately|around|roughly)(?![^\W_])[\s*_:=~≈]*)*"
# a number right after the label's name: "(p_np = 0)"; a percentage there is the label's
# score, one further on another quantity's ("NR-AR: inactive (12% inhibition)")
_LABEL_VALUE = re.compile(_AFTER_NAME + _NUMBER_TEXT, re.IGNORECASE)
_LABEL_PERCENT = re.compile(_AFTER_NAME + _NUMBER_TEXT + r"[ \t]*" + _PERCENT_WORD, re.IGNORECASE)
# The question restated before the answer ("Is it active? No.", "Does it cross the BBB? Yes"),
# or an outcome word as a form's field ("Active: no", "Inactive? Yes"): the yes / no after it
_RESTATED = re.compile(r"[^\n?]{1,200}\?")
_FIELD = re.compile(_PREFIX + r"(?P<word>positive|negative|active|inactive)[*_]*[ \t]*[:?]", re.IGNORECASE)
THRESHOLD = 0.5  # a score from here on is class 1


def opening_word_label(text: str) -> Optional[float]:
    """1.0 / 0.0 for an answer that opens with yes / no (true / false) or states the class
    word alone (active / positive, inactive / negative), else None."""
    match = _OPENING.match(text)
    negated = False
    if match is None or (match.group("label") and not _CLOSER.match(text, match.end())):
        # after an answer label the word is the whole statement: "The answer is no simple
        # matter, but ..." is no "no"
        match = _CLASS_OPENING.match(text)
        if match is None:
            return None
        if match.group("not"):  # "Probably not.", "Not at all."
            return 0.0 if _STATEMENT_END.match(text, match.end()) else None
        negated = match.group("negated") is not None  # "Not active." is inactive
        closer = _STATEMENT_END if negated else _CLOSER  # not "Not active against X, but active against Y"
        if not closer.match(text, match.end()) or _LISTED.match(text, match.end()):
            return None
    word = match.group("word").lower()
    joined = _JOINED.match(text, match.end())
    if joined is not None and _WORDS[joined.group(1).lower()] != _WORDS[word]:
        return None
    if word == "no" and (_NO_ANSWER.match(text, match.end()) or _NO_NOUN.match(text, match.end())):
        return None
    if word == "no" and match.group("hedge") and not _CLOSER.match(text, match.end()):
        return None  # "Of course no single descriptor decides this": "no" qualifies a noun
    if _CHOICE_MARK.match(text) and _CHOICES.match(text, match.end()):
        return None
    side = _SIDE_BY_SIDE.match(text, match.end()) or _CORRECTED.match(text, match.end())
    if side is not None and _WORDS[side.group(1).lower()] != _WORDS[word]:
        return None
    return 1.0 - _WORDS[word] if negated else _WORDS[word]


def stated_value(text: str, name: str) -> Optional[float]:
    """The value an answer states for the binary label `name` (module docstring), any
    number, or None; `stated_label` holds it to [0, 1]."""
    spec = property_spec(name)
    word = opening_word_label(text)
    if word is None:
        word = _answer_after_question(text)
    end = own_mention_end(text, spec)  # the label's name or, for a known property, an alias
    if end is not None:
        named = opening_word_label(text[end:])  # "p_np: no", "NR-AR: Active"
        if word is None:  # else the number after the name: "The p_np is 0.83", "p_np: 85%"
            return named if named is not None else _score(text[end:], spec, bool(_LABEL_PERCENT.match(text, end)))
        if named is None and _LABEL_VALUE.match(text, end):  # a number right after the name only
            named = _score(text[end:], spec, True)
        if named is not None and 0.0 <= named <= 1.0 and class_of(named) != class_of(word):
            return None  # "Yes, it crosses (p_np = 0)": both classes stated, neither is the answer
    if word is not None:
        return word
    lead = _LEADING.match(text)
    if lead.group("label") and _BARE_NUMBER.fullmatch(text, lead.end()):  # "The answer is 1.", "Answer: 85%"
        return _score(text[lead.end():], spec, True)
    return _score(text, spec, True) if _BARE_NUMBER.fullmatch(text) else None


def _answer_after_question(text: str) -> Optional[float]:
    """The yes / no after a form's outcome field ("Active: no" 0, "Inactive: yes" 0) or after
    the question restated on the answer's first line ("Is it active? No." 0), else None."""
    field = _FIELD.match(text)
    if field is not None:
        rest = text[field.end():]
        said = opening_word_label(rest)
        if said is None or _OPENING.match(rest) is None:  # a class word for a field ("Active: inactive"): none
            return None
        return said if _WORDS[field.group("word").lower()] == 1.0 else 1.0 - said
    restated = _RESTATED.match(text)
    return None if restated is None else opening_word_label(text[restated.end():])


def _score(text: str, spec, percent: bool) -> Optional[float]:
    """The number `parse_value` reads in `text`; with `percent`, a percentage as its
    fraction of 1 (the unit after the number, from the same reading:
    `number_and_text_after`)."""
    value = parse_value(text, spec)
    if value is None or not percent:
        return value
    _, unit = number_and_text_after(text, spec)
    return value / 100.0 if _PERCENT.match(unit) else value


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


# the scores `mean_over_tasks` averages (MoleculeNet reports a multi-task set, Tox21's 12
# assays or ClinTox's 2 endpoints, by its mean ROC-AUC over the tasks)
MEAN_SCORES = ("accuracy", "balanced_accuracy", "f1", "mcc", "auroc")


def mean_over_tasks(results: Dict[str, Dict[str, object]]) -> Optional[Dict[str, object]]:
    """The macro mean of MEAN_SCORES over binary tasks (`results`: task -> its
    `binary_metrics`), each over the tasks where it is defined; None for fewer than 2 tasks
    with a question scored. `n_tasks`, `n` and `n_valid` (questions, all tasks; `valid_ratio`
    from them), `tasks` (names), and `left_out` {score: [tasks where it is undefined]}
    beside them."""
    scored = {task: m for task, m in results.items() if m.get("n")}
    if len(scored) < 2:
        return None
    n, n_valid = sum(m["n"] for m in scored.values()), sum(m["n_valid"] for m in scored.values())
    means: Dict[str, object] = {"n_tasks": len(scored), "n": n, "tasks": list(scored), "n_valid": n_valid,
                                "valid_ratio": 100.0 * n_valid / n}
    left_out: Dict[str, list] = {}
    for key in MEAN_SCORES:
        values = [m[key] for m in scored.values() if m.get(key) is not None]
        means[key] = sum(values) / len(values) if values else None
        missing = [task for task, m in scored.items() if m.get(key) is None]
        if missing:
            left_out[key] = missing
    means["left_out"] = left_out
    return means


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
