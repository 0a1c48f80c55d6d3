"""Property answers (eval.metrics.numbers): a minus sign the parser dropped, so that a
negative answer scored as the positive number (rules 1, 2 and 4 of the module), and answers
whose patterns took seconds to minutes on long runs of whitespace (a model stuck emitting
spaces hung the report)."""

from __future__ import annotations

import pytest

from deepmolm_plugin.eval.metrics import numbers
from timing_guard import within_linear_time


# --------------------------------------------------------------------------- signs

@pytest.mark.parametrize("invisible", ["\u200b", "\u200d", "\u2060", "\u00ad", "\ufeff", "\u200b\u200d"])
def test_an_invisible_format_character_does_not_cut_the_sign_off(invisible):
    """`-\\u200b2.0` read 2.0: Unicode format characters (category Cf) are removed (rule 1)."""
    assert numbers.parse_number(f"-{invisible}2.0") == -2.0
    assert numbers.parse_number(f"The LogP is \u2212{invisible}2.0.") == -2.0


@pytest.mark.parametrize("answer, value", [
    ("is \u2013\u200b5.2 eV", -5.2),  # an en dash after `is` is a minus (rule 1), zero-width space or not
    ("5\u200b.2", 5.2),              # read 5
    ("1\u00ad234", 1234.0),          # read 1: the soft hyphen is not shown, the number is
    ("10\u2060^3", 1000.0),          # read 10
])
def test_format_characters_inside_a_number_are_not_there(answer, value):
    assert numbers.parse_number(answer) == value


@pytest.mark.parametrize("answer", [
    # a sign apart from its digits by more or other whitespace than rule 2's one space
    "-\t5.2", "-\n5.2", "-\r\n5.2", "\u2212\u2009 5.2", "-  5.2", "The HOMO is -\t5.2 eV", "+\t5",
    # a sign glued to a word or a point (the number pattern does not take it)
    "HOMO-5.2 eV", "LogP\u22122.3", "It is\u22122", "value.-5", "HOMO- 5.2",
    # a spaced sign after other punctuation (it was dropped as "a dash between words")
    "x,- 5", "[- 5.2]", '"- 5"', "-- 5",
    # sign words
    "minus 2.5", "Minus 2.5", "negative 2.5", "The value is negative -2.5", "minus\n2.5",
    # plus-or-minus as the number's only sign: no one value (it read 5); a power of a power
    "± 5", "The LogP is ± 5.", "\u2213 2", "±-5", "10^3^2", "10**3**2",
])
def test_a_sign_that_is_not_the_numbers_own_makes_the_answer_invalid(answer):
    """Each read as the positive number (or, for `-1` after HOMO, as 1)."""
    assert numbers.parse_number(answer) is None


@pytest.mark.parametrize("answer, value", [
    ("HOMO-1 energy is -5.2 eV", -5.2), ("LUMO+1 is 2", 2.0), ("CID-702 has MW 46.07", 46.07),
])
def test_a_whole_number_glued_to_a_name_is_the_names_not_the_value(answer, value):
    """Was 1 (HOMO-1), then the whole answer invalid: an orbital's or an id's number is skipped."""
    assert numbers.parse_number(answer) == value


def test_a_dropped_sign_is_no_longer_scored_as_an_exact_answer():
    """`-\\u200b2.0` against 2.0 was valid with error 0, and so were the others."""
    got = numbers.property_metrics(["-\u200b2.0", "-\t2.0", "LogP\u22122.0", "minus 2.0"], [2.0] * 4, "LogP")
    assert got["n_valid"] == 1 and got["mae"] == pytest.approx(4.0)
    homo = numbers.property_spec("HOMO")
    assert numbers.parse_value("HOMO-5.2 eV", homo) is None
    assert numbers.parse_value("-\u200b0.19 Hartree", homo) == pytest.approx(-0.19 * 27.211386245988)


def test_an_exponent_in_brackets_before_a_tab_is_read():
    """`[ )]*$` found no exponent in `× 10^(3\\t)`: an AttributeError traceback."""
    assert numbers.parse_number("5 \u00d7 10^(3\t)") == 5000.0
    assert numbers.parse_number("5 \u00d7 10^(\u22123\n)") == 0.005


# --------------------------------------------------------------------------- linear time

N = 100_000


def _shapes(space: str):
    run, half = (space * N)[:N], (space * N)[:N // 2]
    alternating = ((" /" if space == " " else space + "/") * N)[:N]
    return [run, "5" + run + "x", "5/" + run + "x", "10^" + run + "x", "a/" + run + "x 5", "5 (" + run + "x",
            "5 (" + run + ")", "5 \u00b1" + run + "x", "5 E" + run + "x", "5 E+" + run + "3", "5^" + run + "x",
            "5 \u00d7" + half + "10^" + half + "x", "5 \u00d7 10^(" + half + "3" + half + ")", "x/{" + run + "x 5",
            "less than" + run + "x 5", "-" + run + "5", "5" + alternating, "a" + alternating + " 5"]


@pytest.mark.parametrize("space", [" ", "\t", "\n", " \t\r\n", "\u2009", "\u00a0"])
def test_long_runs_of_whitespace_are_read_in_linear_time(space):
    """`5/` and 20000 spaces took 8.7 s, `10^` and 20000 spaces 4.4 s: two `\\s*` around an
    optional token tried every split of the run, and searches retried it from every space."""
    for answer in _shapes(space):
        within_linear_time(lambda: numbers.parse_number(answer), answer)


@pytest.mark.parametrize("prefix, suffix, prop", [
    ("5 kcal/mol", "^ x", "Hydration Free Energy"),  # `mol\s*\^?\s*-1`
    ("5 kcal mol", "x", "Hydration Free Energy"),
    ("5 \u00c5", "x", "TPSA"),                       # `\s*(?:\^|\*\*)?\s*2`
    ("5 nm", "x", "TPSA"),
])
def test_units_after_long_runs_of_whitespace_are_read_in_linear_time(prefix, suffix, prop):
    spec = numbers.property_spec(prop)
    for space in (" ", "\t\n"):
        answer = prefix + (space * N)[:N] + suffix
        within_linear_time(lambda: numbers.parse_value(answer, spec), answer)



def test_name_numbers_are_skipped_in_linear_time(monkeypatch):
    # was: every "HOMO-1" skipped searched the whole text before it: 52 s for an answer of
    # 20,000 of them (quadratic). The label test now looks at the two characters before.
    from deepmolm_plugin.eval.metrics.numbers import skips  # where `_not_a_value` looks it up

    spans = []
    real = skips._LABEL_BEFORE

    class Spy:
        def search(self, string, pos=0, endpos=None):
            endpos = len(string) if endpos is None else endpos
            spans.append(endpos - pos)
            return real.search(string, pos, endpos)

    monkeypatch.setattr(skips, "_LABEL_BEFORE", Spy())
    assert numbers.parse_number("HOMO-1 " * 500 + "is -5.2 eV") == -5.2
    assert len(spans) == 501 and max(spans) <= 2  # each name number, then -5.2
    assert numbers.parse_number("CID-702") is None and numbers.parse_number("LUMO+1: 3") == 3.0
