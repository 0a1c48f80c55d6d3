"""Whether a label name (``--label-columns COLUMN=NAME`` of the csv and sdf readers) can name
the records made from it, asked once before any row is read.

The name is written into every item of its column: the id (``<row id>:property:NAME``), the
question ("What is the NAME of this molecule?") and the answer ("The NAME is VALUE.").
A name that one of the run's own rules refuses there (a line break or tab in the id, an
image placeholder or a chat-template token in the question) failed every row at run
time, under the stage of whichever rule came first ("id", "answer"), blaming the id or
the answer. The rules asked here are the run's own (`base.id_problem`, which the engine
applies to every item's id; `prompts.conversation`, which makes every item's turns), so a
name passes here exactly when its items pass there.
"""

from __future__ import annotations

from typing import Optional

from ..prompts import conversation, instruction_for, property_answer, property_task, question_problem
from .base import id_problem

ROW_ID = "<record id>"  # stands for any row's or record's id in the probe item id: the name is what is judged
PROBE_VALUE = "1"  # any label value: the answer's wording around the name is what is judged


def label_name_problem(name: str) -> Optional[str]:
    """Why no item of the label `name` can become a record, worded to follow "it" (the
    name), or None."""
    # The rule `conversation` applies to the question and answer the name is written into,
    # asked of the name itself: the message then names the name, not "the answer".
    problem = question_problem(name)
    if problem:
        return problem
    task = property_task(name)
    problem = id_problem(f"{ROW_ID}:{task}")
    if problem:
        return f"makes item ids the run refuses: {problem}"
    try:
        conversation(instruction_for(task), property_answer(name, PROBE_VALUE))
    except ValueError as error:  # any other rule of the record's turns
        return f"makes questions or answers the run refuses: {error}"
    return None


def check_label_name_usable(fmt: str, name: str) -> None:
    """A configuration error (ValueError naming the reader `fmt` and the name) when
    `label_name_problem` refuses `name`."""
    problem = label_name_problem(name)
    if problem:
        raise ValueError(f"{fmt}: every item of the label name {name!r} would fail: it {problem}; give the "
                         "column another name, COLUMN=NAME")
