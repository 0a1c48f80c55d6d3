"""Eighteenth round: the SMILES / IUPAC name an answer names, not a span before or after it.

Found by a read-only sweep of `eval.report`: a `=` in prose before a real "is" was read as
the SMILES separator ("... a C=O carbonyl) is CC(=O)C." was formaldehyde), a SMILES written
with spaces was its first token ("SMILES: C C O" was methane), right answers were invalid
(`shown`, a ```smiles block with prose after it, `CCO!`), and IUPAC names ran to the end of
the line (", also known as ...", "(C2H6O)") or were the aside before the naming "is".
"""

import pytest

from deepmolm_plugin.eval.metrics import molecules


# --- 1. the run the sentence names, a real separator before a `=` in prose ----------------------
@pytest.mark.parametrize("answer, smiles", [
    ("The SMILES string (containing a C=O carbonyl) is CC(=O)C.", "CC(=O)C"),  # was C=O
    ("The SMILES for a molecule with a terminal C=C bond is C=CCC.", "C=CCC"),  # was C=C
    ("The SMILES string of the N=N azo compound is CN=NC.", "CN=NC"),  # was N=N
    ("The SMILES for this compound, which is an alcohol, is CCO.", "CCO"),  # was `an`
    ("The SMILES of it is ethanol: CCO", "CCO"),  # was `ethanol:`
])
def test_a_real_separator_names_the_smiles_over_a_bond_in_prose(answer, smiles):
    assert molecules.extract_smiles(answer) == smiles


# --- 2. a SMILES written with spaces is no SMILES --------------------------------------------------
@pytest.mark.parametrize("answer, spaced", [
    ("SMILES: C C O", "C C O"),  # was C: methane, valid
    ("The SMILES is C C ( = O ) O.", "C C ( = O ) O"),  # was C
    ("SMILES: [Na+] [Cl-]", "[Na+] [Cl-]"),  # was [Na+]
    ("SMILES: C = O", "C = O"),  # was C (and not O, the value after the spaced `=`)
])
def test_a_smiles_written_with_spaces_is_invalid_as_without_the_keyword(answer, spaced):
    assert molecules.extract_smiles(answer) == spaced
    assert molecules.mol_from_smiles(spaced) is None
    assert molecules.smiles_metrics([answer], ["CCO"])["n_valid"] == 0


# --- 3. right answers that were invalid ----------------------------------------------------------
@pytest.mark.parametrize("answer, smiles", [
    ("The SMILES for the compound is shown below:\n```\nCCO\n```", "CCO"),  # was `shown`
    ("The SMILES for the compound is shown below.\n```\nCCO\n```", "CCO"),  # a block the line announces
    ("```smiles\nCCO\n```\nThis is ethanol.", "CCO"),  # was the whole text
    ("Here is the SMILES\n```smiles\nCCO\n```", "CCO"),
    ("The SMILES is CCO!", "CCO"),  # was `CCO!`
    ("The SMILES is CCO?", "CCO"),
    ("SMILES: CCO:", "CCO"),
    ('The SMILES is "CCO"!', "CCO"),
    ("The SMILES is `CCO`!", "CCO"),
    ("Isobutane (SMILES: CC(C)C)!", "CC(C)C"),  # its own `)` stays, the sentence's goes
])
def test_a_right_answer_in_a_block_or_before_sentence_punctuation_is_read(answer, smiles):
    assert molecules.extract_smiles(answer) == smiles
    assert molecules.smiles_metrics([answer], [smiles])["exact_match"] == 100.0


def test_the_sweeps_smiles_answers_score_as_their_molecules():
    answers = ["The SMILES string (containing a C=O carbonyl) is CC(=O)C.",
               "The SMILES for a molecule with a terminal C=C bond is C=CCC.", "SMILES: C C O",
               "The SMILES for the compound is shown below:\n```\nCCO\n```", "```smiles\nCCO\n```\nThis is ethanol.",
               "The SMILES is CCO!"]
    got = molecules.smiles_metrics(answers, ["CC(=O)C", "C=CCC", "CCO", "CCO", "CCO", "CCO"])
    assert got["n_valid"] == 5 and got["exact_match"] == pytest.approx(500 / 6)  # was 3 valid, none exact


# --- 4. an IUPAC name ends with its sentence --------------------------------------------------------
@pytest.mark.parametrize("answer, name", [
    ("The IUPAC name of this compound is ethanol, also known as ethyl alcohol.", "ethanol"),
    ("The IUPAC name for this compound, which is an alcohol, is ethanol.", "ethanol"),  # was "an alcohol, is ethanol"
    ("The IUPAC name is ethanol (C2H6O).", "ethanol"),
    ("The IUPAC name is ethanol, which is a primary alcohol.", "ethanol"),
    ("The IUPAC name (which is systematic) is ethanol.", "ethanol"),  # was "systematic) is ethanol"
    ("The IUPAC name is ethanol. It is a primary alcohol.", "ethanol"),
    ("The IUPAC name is N,N-dimethylformamide, a common solvent.", "N,N-dimethylformamide"),
    ("The IUPAC name is propan-2-ol (C3H8O).", "propan-2-ol"),
    ("IUPAC name: 2,3-dimethylbutane; it is a branched alkane.", "2,3-dimethylbutane"),
])
def test_an_iupac_name_ends_before_prose_and_a_formula(answer, name):
    assert molecules.extract_iupac(answer) == name


def test_the_sweeps_iupac_answers_are_exact_matches(wordnet):
    answers = ["The IUPAC name of this compound is ethanol, also known as ethyl alcohol.",
               "The IUPAC name for this compound, which is an alcohol, is ethanol.",
               "The IUPAC name is ethanol (C2H6O)."]
    assert molecules.iupac_metrics(answers, ["ethanol"] * 3, wordnet=wordnet)["exact_match"] == 100.0  # was 0


# --- what reads as before -------------------------------------------------------------------------
@pytest.mark.parametrize("answer, smiles", [
    ("The SMILES C=CC(=O)O is acrylic acid.", "C=CC(=O)O"),  # the run named, no molecule after "is"
    ("SMILES string C=CC(=O)O", "C=CC(=O)O"),
    ("The SMILES is CCO, which is ethanol.", "CCO"),
    ("The SMILES is CCO I think", "CCO"),  # `I` is prose here
    ("The SMILES is CCO ( ethanol )", "CCO"),  # tokens without an atom are prose
    ("The SMILES is C (methane).", "C"),
    ("The SMILES is CCO - ethanol", "CCO"),
    ("The SMILES is not known; the molecule has a C=O group.", "not"),  # no guess out of the prose
    ("SMILES: XC=CCO", "XC=CCO"),  # the `=` inside the named run names nothing
    ("The SMILES is ethanol!", "ethanol!"),  # stripped only where that makes a molecule
    ("```\nCCO\n```\nThis is ethanol.", "CCO\n\nThis is ethanol"),  # a block nothing announces
    ("C C O", "C C O"),
    ("SMILES: C1CC(C1)", "C1CC(C1)"),
    ("Ethanol (SMILES: CCO)", "CCO"),
])
def test_what_was_read_right_reads_the_same(answer, smiles):
    assert molecules.extract_smiles(answer) == smiles


@pytest.mark.parametrize("answer, name", [
    ("IUPAC name: 2,3-dimethylbutane", "2,3-dimethylbutane"),
    ("IUPAC name: (2S)-2-aminopropanoic acid.", "(2S)-2-aminopropanoic acid"),
    ("The IUPAC name is ethyl (2S)-2-aminopropanoate.", "ethyl (2S)-2-aminopropanoate"),
    ("The IUPAC name is propan-2-ol.", "propan-2-ol"),
    ("The IUPAC name is benzoic acid.", "benzoic acid"),
    ("The IUPAC name is sodium chloride.", "sodium chloride"),
    ("IUPAC name: N,N-dimethylformamide", "N,N-dimethylformamide"),
    ("IUPAC name: propanoic acid, 2-methyl-, ethyl ester", "propanoic acid, 2-methyl-, ethyl ester"),  # CAS-style
    ("IUPAC name: bicyclo[2.2.2]octane.", "bicyclo[2.2.2]octane"),
    ("The IUPAC name is (R)-butan-2-ol (S)", "(R)-butan-2-ol (S)"),  # `(S)` is no formula
    ("IUPAC name: propan-2-ol(C3H8O)", "propan-2-ol(C3H8O)"),  # no space: not set off
    ("ethanol, also known as ethyl alcohol", "ethanol, also known as ethyl alcohol"),  # not named: as written
])
def test_names_with_commas_brackets_and_spaces_read_the_same(answer, name):
    assert molecules.extract_iupac(answer) == name
