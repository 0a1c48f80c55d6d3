"""Numeric answers, mending the thirteenth review's number-parser change (eval/metrics/numbers.py)
and plots.readable_texts: unscored properties' names label only a number attached to them,
`not exactly 2.1` is a hedge, a bracketed header labels the number after it, an orbital's
index is no value, count nouns label the whole number before them, name-implied kinds come
from the name's first word or the whole name, `a.u.` is no unit for a unitless property,
temperatures convert to the scale a name states, and escapes above U+FFFF decode."""

import codecs

import pytest

from deepmolm_plugin.eval.metrics import numbers


def _read(answer: str, prop: str):
    return numbers.value_in_unit(answer, numbers.property_spec(prop))


# --- finding 1: an unscored property's name in a sentence is context, not a label -------------


@pytest.mark.parametrize("prop, answer, value", [
    ("HOMO", "The HOMO computed with density functional theory is -5.2 eV.", -5.2),
    ("HOMO", "Using DFT the HOMO energy is estimated from the electron density as -5.2 eV.", -5.2),
    ("HOMO-LUMO Gap", "The HOMO-LUMO gap from density functional theory is 4.1 eV.", 4.1),
    ("LUMO", "The LUMO from DFT electron density calculations is -1.1 eV.", -1.1),
    ("HOMO", "The HOMO with a high electron density is -5.2 eV.", -5.2),
    ("HOMO", "The HOMO localized on the heavy atoms is -5.2 eV.", -5.2),
    ("Log Solubility", "The log solubility estimated from the melting point is -3.2.", -3.2),
    ("Log Solubility", "log S (mol/L) estimated via melting point: -3.2", -3.2),
    ("LogP", "The LogP accounting for the hydrogen bond donors is 2.1.", 2.1),
    ("Topological Polar Surface Area", "The TPSA contributed by the hydrogen bond acceptors is 40.5 Å².", 40.5),
    ("Molecular Weight", "The molecular weight including the dipole moment contributions is 180 g/mol.", 180.0),
    ("LogP", "The LogP reflects the HBD count and is 2.1.", 2.1),
    ("HOMO", "The HOMO, with high charge density on the nitrogen, lies at -5.2 eV.", -5.2),
])
def test_an_unscored_property_named_in_passing_hides_no_value(prop, answer, value):
    assert _read(answer, prop) == (pytest.approx(value), None)  # each was no value (OTHER_PROPERTY)


@pytest.mark.parametrize("prop, answer, value", [
    ("LogP", "pKa 4.2, LogP 2.1", 2.1),  # the change's win, kept
    ("LogP", "pKa = 4.2 and the LogP is 2.1", 2.1),
    ("LogP", "IC50 of 5 nM; LogP 2.1", 2.1),
    ("LogP", "melting point (°C): 150, LogP 2.1", 2.1),
    ("Molecular Weight", "Density 1.2 g/cm³, molecular weight 180.16 g/mol", 180.16),
    ("LogP", "mp 120-122 °C; LogP 2.1", 2.1),  # the range's other end is the melting point's too
])
def test_a_number_attached_to_an_unscored_property_is_still_its(prop, answer, value):
    assert _read(answer, prop) == (pytest.approx(value), None)


# --- finding 7: a count noun right after a whole number labels it ------------------------------


@pytest.mark.parametrize("prop, answer, value", [
    ("Molecular Weight", "With 13 heavy atoms, the molecular weight is 180.16 g/mol.", 180.16),  # was 13
    ("Molecular Weight", "The molecule has 13 heavy atoms; MW 180.16 g/mol.", 180.16),  # was 13
    ("LogP", "It has 2 hydrogen bond donors and the LogP is 2.1.", 2.1),  # was 2
    ("Topological Polar Surface Area", "With 2 H-bond donors, the TPSA is 40.5 Å².", 40.5),  # was 2
    ("LogP", "The LogP with 2 HBD is 2.1.", 2.1),  # was 2
    ("LogP", "With 1 rotatable bond, the LogP is 2.1.", 2.1),
])
def test_a_count_before_its_noun_is_not_the_value(prop, answer, value):
    assert _read(answer, prop) == (pytest.approx(value), None)


def test_an_answer_with_only_a_count_has_no_value():
    assert numbers.no_value_finding("It has 13 heavy atoms.", numbers.property_spec("Molecular Weight")).kind \
        is numbers.NoValue.OTHER_PROPERTY


# --- finding 2: a hedge after `not` is an approximation -----------------------------------------


@pytest.mark.parametrize("prop, answer, value", [
    ("LogP", "The LogP is not exactly 2.1 but close to it.", 2.1),
    ("HOMO", "The HOMO energy is not exactly -5.2 eV, but close.", -5.2),
    ("LogP", "Probably not 2.1 precisely, but near.", 2.1),
    ("LogP", "The LogP is not quite 2.1.", 2.1),
    ("HOMO", "It is not -5.2 eV exactly, but near it.", -5.2),
])
def test_not_exactly_is_a_hedge_not_a_rejection(prop, answer, value):
    assert _read(answer, prop) == (pytest.approx(value), None)  # each was no value (DENIED)


@pytest.mark.parametrize("answer", ["The LogP is not 3 but 2.1.", "Rather than 3.0, the LogP is 2.1"])
def test_a_rejected_number_is_still_skipped(answer):
    assert _read(answer, "LogP") == (pytest.approx(2.1), None)


# --- finding 3: a bracketed header labels the number after it; orbital indices are no value ---


@pytest.mark.parametrize("prop, answer, value", [
    ("LUMO", "Orbital 1 (HOMO): -5.2 eV; Orbital 2 (LUMO): -1.1 eV", -1.1),  # was -5.2
    ("LUMO", "MO 42 (HOMO) = -5.2 eV, MO 43 (LUMO) = -1.1 eV", -1.1),  # was -5.2
    ("HOMO", "MO 42 (HOMO) = -5.2 eV, MO 43 (LUMO) = -1.1 eV", -5.2),  # was 42
    ("HOMO", "Orbital 1 (HOMO): -5.2 eV; Orbital 2 (LUMO): -1.1 eV", -5.2),  # was 1
    ("LUMO", "The LUMO of state 2 (LUMO) is -1.1 eV", -1.1),
    ("LUMO", "-5.2 eV (HOMO) and -1.1 eV (LUMO)", -1.1),  # the change's win, kept
])
def test_a_bracketed_header_labels_the_number_after_it(prop, answer, value):
    assert _read(answer, prop) == (pytest.approx(value), None)


# --- finding 4: a temperature converts to the scale the name states -----------------------------


@pytest.mark.parametrize("prop, answer, value", [
    ("Melting Point (°C)", "The melting point is 423.15 K.", 150.0),
    ("property:bp_celsius", "The boiling point is 212 °F.", 100.0),
    ("property:mp_K", "mp: 150 °C", 423.15),
    ("property:bp_celsius", "100 degrees Celsius", 100.0),
])
def test_a_temperature_is_converted_to_the_scale_the_name_states(prop, answer, value):
    assert _read(answer, prop) == (pytest.approx(value), None)  # each was read as stated


def test_a_temperature_in_no_named_scale_is_invalid_where_the_name_states_one():
    assert _read("150 degrees", "property:mp_K") == (
        None, "states '150 degrees', a temperature in no scale it names, for mp_K (in K)")


def test_metrics_say_a_temperature_without_a_scale_is_taken_as_stated():
    result = numbers.property_metrics(["The melting point is 150 °C."], [150.0], "Melting Point")
    assert result["n_valid"] == 1 and "name the scale" in result["note"]
    converted = numbers.property_metrics(["The melting point is 423.15 K."], [150.0], "Melting Point (°C)")
    assert converted["mae"] == pytest.approx(0.0) and "converted to °C" in converted["note"]


# --- finding 5: arbitrary units are no unit for a unitless property -----------------------------


@pytest.mark.parametrize("answer", ["Complexity: 350 a.u.", "350 AU", "350 arb. units", "350 (arbitrary units)"])
def test_arbitrary_units_are_no_unit(answer):
    assert _read(answer, "Complexity") == (pytest.approx(350.0), None)  # `a.u.` was a Hartree, invalid


def test_a_real_unit_still_makes_a_unitless_value_invalid():
    assert _read("The LogP is 1.5 eV.", "LogP")[0] is None


# --- finding 6: kinds come from the name's first word or the whole name -------------------------


@pytest.mark.parametrize("prop, answer, value", [
    ("property:temperature_sensitive_yield", "85%", 85.0),  # was invalid: a temperature
    ("property:logistic_score", "0.5 %", 0.5),  # was invalid: a log
    ("property:tm_score", "0.5 eV", 0.5),
    ("property:energy_rank", "3 K", 3.0),
])
def test_a_word_inside_a_name_implies_no_kind(prop, answer, value):
    assert _read(answer, prop) == (pytest.approx(value), None)
    assert "implies" not in numbers.property_spec(prop).note


@pytest.mark.parametrize("prop, kind", [
    ("property:boiling_point", "a temperature"), ("Melting Point", "a temperature"), ("property:bp", "a temperature"),
    ("property:homo", "an energy"), ("property:logp_exp", "no unit"), ("property:Tg", "a temperature"),
])
def test_the_inferred_kind_is_in_the_note(prop, kind):
    assert f"its name implies {kind}" in numbers.property_spec(prop).describe()["note"]


def test_a_name_implied_kind_still_refuses_another_kind():
    assert _read("1.5 eV", "property:boiling_point")[0] is None


# --- finding 8: escapes above U+FFFF decode --------------------------------------------------


def test_a_character_above_ffff_is_escaped_so_it_decodes(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepmolm_plugin import plots

    monkeypatch.setattr(plots, "_font_having", lambda lacking: None)  # no installed font has it
    monkeypatch.setattr(plots, "_charmap", lambda font_file: frozenset(range(128)))
    fig, ax = plt.subplots()
    try:
        ax.set_title("LogP \U0001F9EA ²")
        assert plots.readable_texts(fig) == ["\U0001F9EA", "²"]
        title = ax.get_title()
        assert title == "LogP \\U0001f9ea \\u00b2"  # was `\u1f9ea`: U+1F9E and an `a`
        assert codecs.decode(title, "unicode_escape") == "LogP \U0001F9EA ²"
    finally:
        plt.close(fig)
