"""Property answers, the eighteenth review's mend (eval/metrics/numbers): this round first made the
number the asked property's mention labels win over an earlier unlabelled one; a review found
answers it read wrong that were read right before (each expected value is the old one):

1. a hedged opening value (`About 2.1.`, `~2.1.`, `Predicted: 2.1.`) lost to a later number
   the name labels in another sentence, a comparison or a threshold (`the LogP of ethanol is
   -0.31`, `a TPSA below 140`, `the 500 Da limit`), or to none at all (a range, a bound);
2. the asked property's own whole number, followed by a word, was demoted as a count
   (`The complexity is 245 due to ...`), and a later number read;
3. `this molecule 245`, `For this compound 245` was skipped as a compound's number;
4. a number the asked name labels was taken for a year or version (`(complexity: 1985)`)."""

import pytest

from deepmolm_plugin.eval.metrics import numbers


def _read(answer: str, prop: str):
    return numbers.value_in_unit(answer, numbers.property_spec(prop))[0]


@pytest.mark.parametrize("answer, prop, value", [
    ("It weighs 180.16 g/mol, well under the molecular weight limit of 500 Da in Lipinski's rule.", 'Molecular Weight', 180.16),  # a first version: 500.0
    ('Approximately 180.16 g/mol. The molecular weight of benzene is 78.11 g/mol.', 'Molecular Weight', 180.16),  # a first version: 78.11
    ("**≈ 180.16 g/mol**\n\nThis molecule (C9H8O4) is small and drug-like: its molecular weight is far below the 500 Da limit of Lipinski's rule.", 'Molecular Weight', 180.16),  # a first version: 500.0
    ("~2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("About 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("Around 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("Roughly 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("≈ 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("**~2.1**. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("It is 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("It's about 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("I estimate 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("I predict 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("Predicted: 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("Estimated: 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("Calculated: 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("It comes to 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ("1. 2.1. For comparison, ethanol's LogP is -0.31.", 'LogP', 2.1),  # a first version: -0.31
    ('I would estimate around 2.1. A LogP of 2-3 is typical for CNS drugs.', 'LogP', 2.1),  # a first version: None
    ('Predicted: 2.1. A LogP under 5 is favourable.', 'LogP', 2.1),  # a first version: None
    ("It is moderately lipophilic (2.1); a LogP above 5 would violate Lipinski's rule.", 'LogP', 2.1),  # a first version: None
    ('About 40.5 Å². Lipinski-like filters require a TPSA below 140 Å².', 'TPSA', 40.5),  # a first version: None
    ('It exposes about 40.5 Å² of polar surface, below the TPSA threshold of 140 Å² for oral bioavailability.', 'TPSA', 40.5),  # a first version: 140.0
    ('The TPSA (about 40.5 Å²) is below the 90 Å² needed for BBB penetration.', 'TPSA', 40.5),  # a first version: 90.0
    ("The molecular weight (~180.16 g/mol) is within Lipinski's limit of 500.", 'Molecular Weight', 180.16),  # a first version: 500.0
    ('Using DFT I obtain -6.1 eV. For comparison, the HOMO of benzene is -6.7 eV.', 'HOMO', -6.1),  # a first version: -6.7
    ('Predicted -4.2 log mol/L. Solubility below -4 is considered poor.', 'Log Solubility', -4.2),  # a first version: None
    ('ΔG_hyd = -5.2 kcal/mol; for comparison, the hydration free energy of methanol is -5.1 kcal/mol.', 'Hydration Free Energy', -5.2),  # a first version: -5.1
    ('Approximately 212. For reference, caffeine has a complexity of 293 and ibuprofen 203.', 'Complexity', 212.0),  # a first version: 293.0
])
def test_a_hedged_opening_value_is_not_replaced_by_a_comparison(answer, prop, value):
    assert _read(answer, prop) == pytest.approx(value)


@pytest.mark.parametrize("answer, prop, value", [
    ('The complexity is 245 due to the fused ring system; molecules above 500 are highly complex.', 'Complexity', 245.0),  # a first version: None
    ('The PubChem complexity of this molecule is 245 Bertz units; aspirin has 212.', 'Complexity', 245.0),  # a first version: 212.0
    ('The complexity is 245 placing it among moderately complex molecules, like caffeine (293).', 'Complexity', 245.0),  # a first version: 293.0
    ('The molecular complexity is 245 given its three fused rings and 4.5 rotatable bonds per ring.', 'Complexity', 245.0),  # a first version: 4.5
    ('The TPSA is 0 due to the absence of N and O atoms; ethanol has 20.23 Å².', 'TPSA', 0.0),  # a first version: 20.23
    ('The LogP is 3 due to the aromatic ring; ethanol is at -0.31.', 'LogP', 3.0),  # a first version: -0.31
    ('The molecular weight is 180 mass units, with carbon contributing 72.06 of it.', 'Molecular Weight', 180.0),  # a first version: 72.06
])
def test_the_asked_propertys_own_whole_number_is_no_count(answer, prop, value):
    assert _read(answer, prop) == pytest.approx(value)


@pytest.mark.parametrize("answer, prop, value", [
    ('The complexity of this molecule 245 is moderate.', 'Complexity', 245.0),  # a first version: None
    ('For this compound 245 is the complexity.', 'Complexity', 245.0),  # a first version: None
    ('For this molecule 180 is the approximate molecular weight.', 'Molecular Weight', 180.0),  # a first version: None
])
def test_this_molecule_before_a_number_is_no_enumeration(answer, prop, value):
    assert _read(answer, prop) == pytest.approx(value)


@pytest.mark.parametrize("answer, prop, value", [
    ('A complex macrocycle (complexity: 1985); rings: 4.', 'Complexity', 1985.0),  # a first version: 4.0
    ('This is a complex natural product (PubChem complexity 2010) and about 45.2% sp3 carbons.', 'Complexity', 2010.0),  # a first version: None
    ('The molecular weight (MW 2010.05) is large; it has 145.2 Å² TPSA.', 'Molecular Weight', 2010.05),  # a first version: None
])
def test_a_number_the_asked_name_labels_is_no_year_or_version(answer, prop, value):
    assert _read(answer, prop) == pytest.approx(value)

