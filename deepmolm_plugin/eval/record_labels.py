"""A records file's `properties` labels against the values their replies state, read as the
report reads a question (`eval.scoring.task_references`). Here, in eval, because it is the
report's reading: the training launcher and the dataset patch (higher layers) call it, and
eval.questions words its refusals for a records file with `for_records_file`; `data.records`
(below eval) cannot import the report (was: it did, in a function: an import cycle).
"""

from __future__ import annotations

from ..data.records import record_id
from .merge import ReportError
from .scoring import task_references
from .task_kinds import VALUED_KINDS, task_kind


def check_answer_labels(records: list, data_path: str) -> None:
    """A record's `properties` label and the value its reply states must agree, as the report
    requires of a question (`answer_label_problem`). Was: a hand-corrected label trained
    silently, the LLM learning the reply's value and the property head the label, and only
    eval.questions refused the same file."""
    for i, record in enumerate(records):
        problem = answer_label_problem(record, record_id(record, i))
        if problem:  # it names the record
            raise ValueError(f"{data_path}: {problem}")


def answer_label_problem(record: dict, rid: str) -> "str | None":
    """Why a single-exchange record's reply contradicts its `properties` (another value, unit
    or scale on one side), naming the record, or None. The record is seen as the report sees
    its question (`eval.scoring.task_references`, through `task_kinds.reference_value`).
    Only records with `properties` and one human turn and one gpt reply (those eval asks)
    are compared; a record whose reply states no value, or of a task of another kind, passes."""
    turns = record.get("conversations")
    if not isinstance(record.get("properties"), dict) or not isinstance(turns, list) or len(turns) != 2:
        return None
    task = record.get("task")
    question = {"question_id": rid, "task": task, "answer": turns[1]["value"], "properties": record["properties"],
                **({"metric": record["metric"]} if "metric" in record else {})}
    task = task if isinstance(task, str) and task.strip() else "unspecified"
    try:
        kind = task_kind(task, question)
        if kind in VALUED_KINDS:
            task_references(task, kind, {rid: question}, [rid])
    except ReportError as e:  # the question is the record of that id, its reference answer the gpt reply
        return for_records_file(str(e).replace("question ", "record ", 1)
                                .replace("the reference answer", "its gpt reply (the reference answer)", 1))
    return None


def for_records_file(report_message: str) -> str:
    """A report refusal of a question, its remedy worded for the records file the question
    came from (training's, or eval.questions' DATA; was: "Fix the question file", given
    for a records file)."""
    return (report_message.replace("Fix the question file", "Fix the record's gpt reply or its `properties`")
            .replace("in the question file", "in the records file"))
