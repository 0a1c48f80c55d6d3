"""Review of the yes/no (binary) answers (`eval.metrics.classes.opening_word_label`): an
opening "Yes" / "No" in markdown italics with underscores, between single or curly quotes,
or after a zero-width character (a BOM) was no answer, so a right answer counted as the
wrong class; a word of a longer one still is no answer."""

from __future__ import annotations

import pytest

from deepmolm_plugin.eval.metrics.classes import stated_label
from deepmolm_plugin.eval.task_kinds import reference_label


@pytest.mark.parametrize("answer, expected", [
    ("_Yes_", 1.0), ("__No__, it does not cross.", 0.0),  # markdown emphasis with underscores
    ("'Yes'", 1.0), ("“Yes”", 1.0), ("‘No’", 0.0),  # quoted, straight or curly
    ("\ufeffNo", 0.0), ("\u200bYes.", 1.0),  # a BOM / zero-width space first
])
def test_an_opening_yes_or_no_in_emphasis_or_quotes_is_read(answer, expected):
    assert stated_label(answer, "p_np") == expected


@pytest.mark.parametrize("answer", ["no-go", "No's", "yes_no", "Nonetheless", "Noé", "Yes1"])
def test_a_word_of_a_longer_one_is_no_answer(answer):
    assert stated_label(answer, "p_np") is None


def test_a_quoted_reference_yes_is_its_class():
    # was: no reference class, the question left out of the scores with a warning
    assert reference_label("property:p_np", {"question_id": "q", "answer": "“Yes”"}) == 1.0
