"""Reference answers that are not a model's, scored by the same report code as a model's.

A model's property score means little without the score of the simplest predictor on the
same questions. `mean_baseline` answers every property question with one number per task,
a statistic of the training records' reference values (read with the report's own
`reference_value`): `task_means` gives the training-set mean, `task_medians` the median,
which is the constant with the lowest MAE: a model that learned only the answer format
and one typical value lands near it, so a model must beat the median too before its MAE
says it read the molecule. Binary (yes/no) tasks get the same statistics of their 0/1
reference classes: the mean is the positive rate, an answer class 1 from 0.5 (so the
majority class, AUROC 50), and the median the majority class itself. `score_answers` scores
any {question_id: answer text} exactly
as `deepmolm_plugin.eval.report` scores a model's answers (its `questions` may not be one of
the files it writes in `out`). Used by `make demo` and
`scripts/experiment_fusion.py`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Dict, Iterable, List

from .jsonl import REPORT_FILES
from .merge import format_ids, load_references
from .questions import convert
from .outputs import overwritten_inputs, write_outputs
from .scoring import build_report, task_reference
from .task_kinds import VALUED_KINDS, task_kind


class BaselineError(ValueError):
    pass


def task_means(train_records: List[dict], data_dir: os.PathLike = ".") -> Dict[str, float]:
    """{task: mean reference value} over the property questions of training records (host
    records, as in a prepared split). A record without a value is an error."""
    return {task: math.fsum(v) / len(v) for task, v in task_values(train_records, data_dir).items()}


def task_medians(train_records: List[dict], data_dir: os.PathLike = ".") -> Dict[str, float]:
    """{task: median reference value}, as `task_means`."""
    return {task: statistics.median(v) for task, v in task_values(train_records, data_dir).items()}


def task_values(train_records: List[dict], data_dir: os.PathLike = ".") -> Dict[str, List[float]]:
    """{task: reference values} of the property (and binary) questions of training records."""
    sums: Dict[str, List[float]] = {}
    for question in convert(train_records, Path(data_dir)):
        task = question["task"]
        kind = task_kind(task, question)
        if kind not in VALUED_KINDS:
            continue
        value = task_reference(task, kind, question)
        if value is None:
            raise BaselineError(f"training record {question['question_id']!r} ({task}): no reference value")
        sums.setdefault(task, []).append(value)
    if not sums:
        raise BaselineError("the training records hold no property question")
    return sums


def mean_baseline(questions: Iterable[dict], means: Dict[str, float]) -> Dict[str, str]:
    """{question_id: answer} for the property questions whose task has a value in `means`
    (a task's training mean or median)."""
    # repr: the shortest text that reads back as the same float (".4f" made a mean of 1e-05
    # the answer "0.0000")
    return {str(q["question_id"]): repr(float(means[q["task"]])) for q in questions if q.get("task") in means}


def score_answers(answers: Dict[str, str], questions: os.PathLike, out: os.PathLike) -> dict:
    """Write `answers` as a model_vqa answer file in `out` and score it against the questions
    it answers (a subset of `questions`: the others are left out); returns the report."""
    out = Path(out)
    if overwritten_inputs([questions], out, (*REPORT_FILES, "questions.jsonl", "answers.jsonl")):
        # it was replaced by the subset asked, and the questions of other tasks were lost
        raise BaselineError(f"{questions}: is one of the files written in {out}; score into another folder")
    out.mkdir(parents=True, exist_ok=True)
    # by id as the report reads references: a question_id listed twice is refused, naming it
    # (was: "-1 answer(s) to questions not in ...", both records kept)
    questions_by_id = load_references(questions)
    unknown = [qid for qid in answers if qid not in questions_by_id]
    if unknown:
        raise BaselineError(f"{len(unknown)} answer(s) to questions not in {questions}: {format_ids(unknown)}")
    asked = [q for qid, q in questions_by_id.items() if qid in answers]
    references = out / "questions.jsonl"
    references.write_text("".join(json.dumps(q) + "\n" for q in asked))
    answer_file = out / "answers.jsonl"
    answer_file.write_text("".join(json.dumps({"question_id": q["question_id"], "text": answers[str(q["question_id"])]})
                                   + "\n" for q in asked))
    report, rows = build_report([answer_file], references)
    write_outputs(report, rows, out, make_plots=False)
    return report
