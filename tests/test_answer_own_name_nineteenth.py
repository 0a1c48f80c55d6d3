"""A labelled column's own name labels its number: deepmolm-prepare's tasks are
`property:<column name>` (`y`, `expt`, `p_np`, `NR-AR`), names the number reader did not
know, so another property's mention earlier in the clause labelled every number to the
clause's end: `The molecular weight is 180 g/mol and y is 0.5` had no value for y."""

from __future__ import annotations

import pytest

from deepmolm_plugin.eval.metrics.numbers import own_mention_end, parse_value, property_spec


@pytest.mark.parametrize("task, answer, expected", [
    ("property:y", "The molecular weight is 180 g/mol and y is 0.5", 0.5),
    ("property:p_np", "It has a LogP of 3.2 and p_np is 0", 0.0),
    ("property:expt", "The LogP is 1.2 and expt is -3.1", -3.1),
    ("property:NR-AR", "The TPSA is 20.2 Å² and NR-AR is 1", 1.0),
    ("property:NR-AR", "The TPSA is 20.2 Å² and nr ar is 1", 1.0),  # its words joined by a space
    # unchanged: the value first, alone, or after a clause break
    ("property:y", "y is 0.5", 0.5), ("property:expt", "The expt is -3.1 and the LogP is 1.2", -3.1),
    ("property:y", "The LogP is 2.1; y: 0.5", 0.5),
    # a function word is never looked for as a name
    ("property:a", "The LogP is 2 and a is 1", None),
    # only another property's number: still no value
    ("property:expt", "The LogP is 1.2.", None),
    # review: a name that is a word of every answer labels only a number right after it
    ("property:value", "| Property | Value |\n|---|---|\n| LogP | 2.1 |\n| value | 0.5 |", 0.5),
    ("property:value", "The molecular weight value is 180 g/mol; the value is 3.1.", 3.1),
    ("property:value", "The LogP value is 2.1 and the predicted value is 0.35.", 0.35),
    ("property:FDA_APPROVED", "The drug was FDA approved in 1998; FDA_APPROVED = 1.", 1.0),
    ("property:y", "In the y direction the dipole moment is 1.2 D; I predict 0.5.", 0.5),
    ("property:Y", "The LogP Y is 2.1; the Y is 0.5.", 0.5),
    ("property:label", "Regarding label and the LogP of 2.1, my estimate is 0.5.", 0.5),
])
def test_the_asked_labels_own_name_labels_its_number(task, answer, expected):
    assert parse_value(answer, property_spec(task)) == expected


def test_own_mention_end():
    text = "LogP 3.2, p_np: 0"
    assert text[:own_mention_end(text, property_spec("property:p_np"))].endswith("p_np")
    assert own_mention_end("The LogP is 2.", property_spec("property:p_np")) is None
    assert own_mention_end("The logP is 2.", property_spec("LogP")) == len("The logP")  # a known name too
    # a column's name wherever it stands (the binary reader reads the number after it)
    assert own_mention_end("The p_np of this molecule is 1.", property_spec("property:p_np")) == len("The p_np")
