"""Answers that scale their number by a word or a suffix, and SMILES answers that say no
SMILES is given (twentieth round). Each read a wrong value before: `The complexity is 1.2k`
was 1.2 and `1.2 million` 1.2 (each scored as stated, a silent mismatch of 1000x), and `The
SMILES is unknown, but the core is c1ccccc1` was benzene."""

from __future__ import annotations

import pytest

from deepmolm_plugin.eval.metrics.molecules import extract_smiles
from deepmolm_plugin.eval.metrics.numbers import parse_value, property_spec
from deepmolm_plugin.eval.task_kinds import reference_value


@pytest.mark.parametrize("answer, prop, expected", [
    ("The complexity is 1.2k.", "Complexity", 1200.0),
    ("The complexity is about 1.2 thousand", "Complexity", 1200.0),
    ("The complexity is 1.2 Million.", "Complexity", 1.2e6),
    ("The complexity is 2 millions", "Complexity", 2e6),
    ("The molecular weight is 1.2k g/mol", "Molecular Weight", 1200.0),  # the unit after the magnitude
    ("MW: 1.2k", "Molecular Weight", 1200.0),
    # not a magnitude: a unit, a kelvin, a prefixed unit
    ("The MW is 1.2 kDa", "Molecular Weight", 1200.0),
    ("The HOMO is -5.2 kcal/mol", "HOMO", pytest.approx(-0.22549, abs=1e-4)),
    ("The complexity is 1.2K.", "Complexity", None),  # a temperature: no value of a complexity
    ("The complexity is 1.2\nthousand", "Complexity", 1.2),  # another line: not the number's word
    ("The complexity is 350.", "Complexity", 350.0),
])
def test_a_magnitude_scales_the_number(answer, prop, expected):
    assert parse_value(answer, property_spec(prop)) == expected


def test_a_reference_answer_with_a_magnitude_is_read_alike():
    record = {"question_id": "q", "answer": "The complexity is 1.2k.", "properties": {"Complexity": 1200}}
    assert reference_value("Complexity", record) == 1200.0  # was 1.2, refused as disagreeing with 1200


@pytest.mark.parametrize("answer, expected", [
    ("The SMILES is unknown, but the core is c1ccccc1", "unknown"),
    ("SMILES: not known; the ring is c1ccccc1", "not"),
    ("SMILES: none", "none"),
    ("The SMILES is CCO", "CCO"),
    ("The SMILES for a molecule with a terminal C=C bond is C=CCC.", "C=CCC"),  # prose first, then the SMILES
    ("The SMILES is N", "N"),  # ammonia, not "no SMILES"
])
def test_a_smiles_answer_that_names_no_smiles_is_invalid(answer, expected):
    assert extract_smiles(answer) == expected
