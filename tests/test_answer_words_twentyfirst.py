"""Words around an answer (twenty-first round): a hedge, an adverb or an aside between "The
SMILES is" and the SMILES was read as the SMILES (`probably`, or the empty text before a
comma); informal yes/no words, "not" as the whole statement ("Probably not.", "Not at all.")
and a negated class word ("Not active.") were no answer, and "(A) Yes" too."""

from __future__ import annotations

import pytest

from deepmolm_plugin.eval.metrics.classes import stated_label
from deepmolm_plugin.eval.metrics.molecules import extract_smiles


@pytest.mark.parametrize("text, expected", [
    ("The SMILES is, I think, CCO", "CCO"),  # was ''
    ("The SMILES is, therefore, CCO.", "CCO"),
    ("The SMILES is probably CCO.", "CCO"),  # was 'probably'
    ("The SMILES is most likely CC(=O)O.", "CC(=O)O"),
    ("SMILES: probably CCO", "CCO"),
    ("The SMILES is then C1=CC=CC=C1", "C1=CC=CC=C1"),
    ("The SMILES is (see above) CCO", "CCO"),  # was '(see'
    ("The SMILES is probably: CCO", "CCO"),
    # what stays: a bracket that opens the value, a SMILES right after the separator
    ("The SMILES is (E)-C/C=C/C", "(E)-C/C=C/C"),
    ("The SMILES is (CCO).", "(CCO)"),
    ("SMILES (canonical): CCO", "CCO"),
    ("The SMILES is probably wrong", "wrong"),
    ("SMILES: CCO", "CCO"),
])
def test_words_between_the_separator_and_the_smiles(text, expected):
    assert extract_smiles(text) == expected


@pytest.mark.parametrize("text, expected", [
    # informal words, "not" as the whole statement, a negated outcome word, a choice marker
    ("Nope.", 0.0), ("Nope, it does not.", 0.0), ("Yep.", 1.0), ("Yeah, it crosses.", 1.0), ("Nah.", 0.0),
    ("Probably not.", 0.0), ("Certainly not", 0.0), ("Of course not.", 0.0), ("Not really.", 0.0),
    ("Not at all.", 0.0), ("Not likely.", 0.0), ("Unlikely.", 0.0), ("Not active.", 0.0),
    ("(A) Yes", 1.0), ("(B) No, it does not.", 0.0), ("Clearly no (it is a P-gp substrate)", 0.0),
    # no answer: what follows "not" goes on, the choices repeated, two classes side by side,
    # "no" qualifying a noun, sodium hydride
    ("Not sure.", None), ("Not all tautomers cross.", None), ("Not in my training data.", None),
    ("Not for me to say.", None), ("Not positive, but I think it crosses.", None),
    ("Not active against CYP3A4, but active against HIV.", None), ("Not negative in the sense you mean.", None),
    ("Probably not in every patient, but generally yes.", None),
    ("(A) Yes (B) No", None), ("(A) Yes\n(B) No\n\nTPSA 45 Å²", None),
    ("Yeah, no.", None), ("Yeah nah, it will not cross.", None), ("Yeah - no wait, it's inactive.", None),
    ("Absolutely no doubt about it: it crosses.", None), ("Of course no one can be sure.", None),
    ("Of course no single descriptor decides this, but it does cross.", None),
    ("NaH is not part of the molecule; it is active.", None),
    # as before
    ("Yes\n(B) No is incorrect because the TPSA is low.", 1.0), ("Yes (B) no is wrong here.", 1.0),
    ("Active against HIV.", 1.0), ("Negative for NR-AR.", 0.0), ("No, no, it does not.", 0.0),
    ("Positive charge sits on N", None),
])
def test_yes_no_words(text, expected):
    assert stated_label(text, "p_np") == expected


def test_hostile_openings_stay_linear():
    import time

    for text in ["probably " * 100_000, "not " * 200_000, "(A) " * 200_000 + "Yes", "Not" + " " * 1_000_000 + "x"]:
        began = time.perf_counter()
        stated_label(text, "p_np")
        assert time.perf_counter() - began < 10.0  # seconds for 1 MB, linear (0.1-5 s on a 2-core VM)


@pytest.mark.parametrize("text, name, expected", [
    # a number stated again, more precisely, right after it: the later one (was the first)
    ("The molecular weight is 180 g/mol rounded, more precisely 180.16 g/mol.", "Molecular Weight", 180.16),
    ("MW: 180 (more precisely 180.16)", "Molecular Weight", 180.16),
    ("The LogP is about 2, or more precisely 2.13.", "LogP", 2.13),
    ("The LogP is 2 (to be exact, 2.13).", "LogP", 2.13),
    ("HOMO: -5.2 eV; more exactly -5.21 eV", "HOMO", -5.21),
    # no restatement: `exactly` alone, another sentence, no number after it
    ("The LogP is 2.1 (exactly 0.3 higher than ethanol).", "LogP", 2.1),
    ("The LogP is 2.1. More precisely, the TPSA is 40.", "LogP", 2.1),
    ("The LogP is 2, more precisely", "LogP", 2.0),
])
def test_a_number_stated_again_more_precisely(text, name, expected):
    from deepmolm_plugin.eval.metrics.numbers import parse_value, property_spec

    assert parse_value(text, property_spec(name)) == pytest.approx(expected)


def test_a_restatement_after_long_white_space_stays_linear():
    import time

    from deepmolm_plugin.eval.metrics.numbers import parse_value, property_spec

    began = time.perf_counter()
    parse_value("LogP 2.1" + " " * 200_000 + "x", property_spec("LogP"))  # a first version: quadratic
    assert time.perf_counter() - began < 10.0


@pytest.mark.parametrize("text, expected", [
    # an answer corrected right after its first word states both classes (was: the first word's)
    ("No, actually yes.", None), ("Nope. Wait, yes it crosses.", None), ("Yes - sorry, no.", None),
    ("No. Well, actually, yes it crosses.", None), ("Nah, I think yes.", None), ("No, I mean yes.", None),
    # no correction: the same class again, a word after the second one
    ("No, actually no.", 0.0), ("Yes, actually no doubt about it.", 1.0),
    ("Yes. Actually, the TPSA is low, so yes.", 1.0),
    ("No, it does not; actually the TPSA is 140.", 0.0), ("No, I think it does not.", 0.0),
])
def test_an_answer_corrected_at_once(text, expected):
    assert stated_label(text, "p_np") == expected


def test_the_restatements_own_words_are_not_taken_for_a_unit():
    from deepmolm_plugin.eval.metrics.numbers import parse_number

    # `or more` before `exactly`: the first version took both for the unit's words, then found no restatement
    assert parse_number("180 or more exactly 180.16") == 180.16
