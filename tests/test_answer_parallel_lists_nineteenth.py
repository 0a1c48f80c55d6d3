"""Parallel lists of properties and values (`HOMO/LUMO: -5.2/-1.1 eV`): the i-th name labels the
i-th number (`labels._Labels`, `_parallel_items`). Was: the nearest name labelled both numbers
(the LUMO read the HOMO's -5.2) or `-5.2 and -1.1` was read as a range (no value)."""

import pytest

from deepmolm_plugin.eval.metrics.numbers import parse_value, property_spec

HARTREE = 27.211386


@pytest.mark.parametrize("task, text, want", [
    ("LUMO", "HOMO/LUMO: -5.2/-1.1 eV", -1.1),
    ("LUMO", "HOMO / LUMO = -5.2 / -1.1 eV", -1.1),
    ("HOMO", "HOMO, LUMO: -5.2, -1.1 eV", -5.2),
    ("LUMO", "HOMO, LUMO: -5.2, -1.1 eV", -1.1),
    ("HOMO-LUMO gap", "HOMO, LUMO: -5.2, -1.1 eV", None),  # the gap is not stated
    ("LUMO", "The HOMO and LUMO energies are -5.2 and -1.1 eV, respectively.", -1.1),
    ("HOMO", "The HOMO and LUMO energies are -5.2 and -1.1 eV, respectively.", -5.2),
    ("LUMO", "The HOMO and LUMO are -5.2 eV and -1.1 eV.", -1.1),
    # three items, `, and` joins, the gap last
    ("HOMO-LUMO gap", "HOMO, LUMO, gap: -5.2, -1.1, 4.1 eV", 4.1),
    ("HOMO", "The HOMO, LUMO and gap are -5.2, -1.1 and 4.1 eV, respectively.", -5.2),
    # the last number's unit is every unitless number's where the properties share a unit ...
    ("HOMO", "HOMO/LUMO: -0.19/-0.04 Hartree", -0.19 * HARTREE),
    ("LUMO", "HOMO/LUMO (Hartree): -0.19/-0.04", -0.04 * HARTREE),
    # ... and not where they do not: LogP takes no unit (`Å²` would make it invalid)
    ("LogP", "LogP and TPSA: 2.1 and 40.5 Å²", 2.1),
    ("Topological Polar Surface Area", "LogP/TPSA = 2.1/40.5", 40.5),
    ("Molecular Weight", "logP, MW: 2.1, 180.16 g/mol, respectively", 180.16),
    # emphasis and uncertainties inside the list
    ("LUMO", "HOMO/LUMO: **-5.2**/**-1.1** eV", -1.1),
    ("LUMO", "HOMO/LUMO: -5.2 ± 0.1/-1.1 ± 0.1 eV", -1.1),
])
def test_the_ith_name_labels_the_ith_number(task, text, want):
    _reads(task, text, want)


@pytest.mark.parametrize("task, text, want", [
    # another count of numbers than names labels nothing new: as before
    ("HOMO", "HOMO/LUMO/gap: -5.2/-1.1 eV", -5.2),
    # a unit's slash, a separate clause and a range are no list
    ("Molecular Weight", "The molecular weight is 180.16 g/mol and the LogP is 2.1.", 180.16),
    ("HOMO", "The gap between the HOMO and LUMO is 4.1 eV; the HOMO is -5.2 eV.", -5.2),
    ("HOMO", "HOMO and LUMO lie between -5.2 and -1.1 eV", None),
    # review R4: a range or choice at the list's end, an unnamed first name, a fraction
    ("Log Solubility", "The log S and log P are -2.11 and 1.1-2.8.", -2.11),
    ("polarizability", "The polarizability and HOMO-LUMO gap are 112.3 and 4.63 to 6.89 eV.", 112.3),
    ("LogP", "XLogP and molecular mass: -1.70 and 318.33 or 464.95 g/mol", -1.7),
    ("Log Solubility", "dipole moment and polarizability: 3.90 D and 70.0 or 182.6 a.u.", None),
    ("Molecular Weight", "The MW and LogP are 180.16 and 1.2 to 1.5.", 180.16),
    ("Hydration Free Energy", "The HOMO energy and hydration free energy are -8.12 and -10.10/-7.80 kcal/mol "
                              "(two methods).", None),
    ("TPSA", "cLogP, TPSA, MW: 2.1, 40.5", 40.5),
    ("Molecular Weight", "MW/molecular complexity: 1/2", None),
])
def test_no_list_keeps_the_reading(task, text, want):
    _reads(task, text, want)


def _reads(task, text, want):
    """The answer reads `want` for `task` (None: no value)."""
    got = parse_value(text, property_spec(task))
    if want is None:
        assert got is None
    else:
        assert got == pytest.approx(want, rel=1e-3)


@pytest.mark.parametrize("text", ["HOMO, LUMO: -5.2, -1.1, 4.1 eV", "HOMO/LUMO/gap: -5.2/-1.1 eV",
                                  "HOMO and LUMO: -5.2 eV", "The HOMO and LUMO are -5.2 eV."])
def test_another_count_makes_no_list(text):
    from deepmolm_plugin.eval.metrics.numbers.labels import _Labels
    from deepmolm_plugin.eval.metrics.numbers.normalise import normalise

    normalised = normalise(text)
    assert _Labels.of_answer(normalised, property_spec("LUMO")).items == {}


def test_a_list_labels_its_numbers_in_order():
    from deepmolm_plugin.eval.metrics.numbers.labels import _Labels

    text = "HOMO, LUMO, gap: -5.2, -1.1, 4.1 eV"
    items = _Labels.of_answer(text, property_spec("LUMO")).items
    assert [(text[start:start + 4], item.mention[2]) for start, item in sorted(items.items())] == [
        ("-5.2", "HOMO"), ("-1.1", "LUMO"), ("4.1 ", "gap")]
