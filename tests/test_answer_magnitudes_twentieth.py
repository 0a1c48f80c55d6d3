"""Answers that scale their number by a word or a suffix (twentieth round): `The complexity is
1.2k` and `1.2 million` read 1.2, each scored as stated, a thousandth or a millionth of what
the answer says. Such an answer is invalid now, with the reason; the magnitude is not applied
(a review found the scaled value 1000x wrong wherever the pick was another number or a bound
followed). A `k` that is a unit's prefix, a kelvin or a constant's symbol is read as before."""

from __future__ import annotations

import pytest

from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.eval.metrics.numbers import parse_value, property_spec, value_in_unit
from deepmolm_plugin.eval.task_kinds import reference_value


@pytest.mark.parametrize("answer, prop", [
    ("The complexity is 1.2k.", "Complexity"), ("The complexity is about 1.2 thousand", "Complexity"),
    ("The complexity is 1.2 Million.", "Complexity"), ("The value is 2 millions", "property:y"),
    ("The molecular weight is 1.2k g/mol", "Molecular Weight"), ("MW: 1.2k", "Molecular Weight"),
    ("Complexity: 5.8k+", "Complexity"), ("The complexity is 3.0k or 4.0k.", "Complexity"),  # review: were 5.8, 3.0
])
def test_a_number_scaled_by_a_word_is_invalid(answer, prop):
    value, problem = value_in_unit(answer, property_spec(prop))
    assert value is None and "a number scaled by a word, which is not read" in problem


@pytest.mark.parametrize("answer, prop, expected", [
    ("The MW is 1.2 kDa", "Molecular Weight", 1200.0),  # a unit's prefix
    ("The HOMO is -5.2 kcal/mol", "HOMO", pytest.approx(-0.22549, abs=1e-4)),
    ("The complexity is 1.2K.", "Complexity", None),  # a kelvin: no value of a complexity, as before
    ("The boiling point is 373.15k", "Boiling Point", 373.15),  # review: a temperature's lowercase kelvin
    ("The barrier is 5.86k_BT.", "property:y", 5.86), ("It is 3.1k_{B}T", "property:y", 3.1),  # review
    ("The complexity is 1.2\nthousand", "Complexity", 1.2),  # another line: not the number's word
    ("The MW is 180.16 g/mol; thousands of analogues exist.", "Molecular Weight", 180.16),
    ("The complexity is 350.", "Complexity", 350.0),
])
def test_other_ks_and_words_are_read_as_before(answer, prop, expected):
    assert parse_value(answer, property_spec(prop)) == expected


def test_a_reference_answer_with_a_magnitude_names_its_question():
    with pytest.raises(ReportError, match=r"question 'q' \(Complexity\): the reference answer states '1.2k', a "
                                          "number scaled by a word"):
        reference_value("Complexity", {"question_id": "q", "answer": "The complexity is 1.2k."})
