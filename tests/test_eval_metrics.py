"""Evaluation metrics (issue 6): each metric against its reference library on hand-made
examples, the property-answer parser on a table of tricky answers, SMILES metrics against
RDKit, shard merging, and WordNet's offline set-up and its error message."""

from __future__ import annotations

import json
import math

import pytest

from deepmolm_plugin.eval.metrics import molecules, numbers, text
from deepmolm_plugin.eval.metrics import wordnet as wn_setup


@pytest.fixture(scope="session")
def nltk_data(tmp_path_factory):
    """The NLTK data folder holding WordNet: the one `make test` builds (<venv>/nltk_data or
    $NLTK_DATA), else one built now from the Debian packages (WordNetMissing says how)."""
    try:
        return wn_setup.find_wordnet().parent.parent
    except wn_setup.WordNetMissing:
        return wn_setup.ensure_wordnet(tmp_path_factory.mktemp("nltk_data")).parent.parent


@pytest.fixture(scope="session")
def wordnet(nltk_data):
    return text.load_wordnet(nltk_data)


# ----------------------------------------------------------------------------- text

HYPS = [
    "The molecule is an aromatic compound with a hydroxy group.",
    "ETHANOL is a primary alcohol; it is used as a solvent.",
    "It is a carboxylic acid.",
    "",
    "2-Hydroxypropanoic acid is a 2-hydroxy monocarboxylic acid.",
]
REFS = [
    "The molecule is a phenol, an aromatic compound carrying a hydroxy group.",
    "Ethanol is a primary alcohol that is used as a solvent and fuel.",
    "It is a dicarboxylic acid found in plants.",
    "Benzene is an aromatic hydrocarbon.",
    "(S)-2-hydroxypropanoic acid is a 2-hydroxy monocarboxylic acid.",
]


def test_default_tokenizer_is_fixed_and_declared():
    assert text.DEFAULT_TOKENIZER == "words-v2"
    assert text.get_tokenizer()("The MW is 180.16 g/mol (2-Hydroxy).") == \
        ["the", "mw", "is", "180", ".", "16", "g", "/", "mol", "(", "2", "-", "hydroxy", ")", "."]
    assert text.get_tokenizer("words-cased")("C6H12O6 Å") == ["C6H12O6", "Å"]
    with pytest.raises(ValueError, match="unknown tokenizer"):
        text.get_tokenizer("llama")


@pytest.mark.parametrize("tokenizer", ["words", "whitespace"])
def test_text_metrics_equal_the_libraries_on_the_same_tokens(tokenizer, wordnet):
    from nltk.translate.bleu_score import corpus_bleu
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer

    tok = text.get_tokenizer(tokenizer)
    hyp_tokens, ref_tokens = [tok(h) for h in HYPS], [tok(r) for r in REFS]
    refs = [[r] for r in ref_tokens]
    expected = {
        "bleu2": 100 * corpus_bleu(refs, hyp_tokens, weights=(0.5, 0.5)),
        "bleu4": 100 * corpus_bleu(refs, hyp_tokens),
        "meteor": 100 * sum(meteor_score([r], h, wordnet=wordnet) for h, r in zip(hyp_tokens, ref_tokens)) / len(HYPS),
    }
    # rouge_score's own n-gram and LCS scorers on the token lists (no text round trip)
    for n in (1, 2):
        expected[f"rouge{n}"] = 100 * sum(
            rouge_scorer._score_ngrams(rouge_scorer._create_ngrams(r, n), rouge_scorer._create_ngrams(h, n)).fmeasure
            for h, r in zip(hyp_tokens, ref_tokens)) / len(HYPS)
    expected["rougeL"] = 100 * sum(rouge_scorer._score_lcs(r, h).fmeasure
                                   for h, r in zip(hyp_tokens, ref_tokens)) / len(HYPS)

    got = text.text_metrics(HYPS, REFS, tokenizer=tokenizer, wordnet=wordnet)
    assert got["tokenizer"]["name"] == tokenizer and got["n"] == len(HYPS)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    assert 0 < got["bleu2"] < 100 and 0 < got["meteor"] < 100


def test_rouge_equals_the_public_scorer_when_tokens_agree(wordnet):
    """On lower-case alphanumeric text rouge_score's own tokenizer gives our tokens."""
    from rouge_score import rouge_scorer

    hyps, refs = ["the cat sat on the mat", "a dog ran"], ["the cat lay on a mat", "the dog ran away"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    got = text.text_metrics(hyps, refs, wordnet=wordnet)
    for key in ("rouge1", "rouge2", "rougeL"):
        want = 100 * sum(scorer.score(r, h)[key].fmeasure for h, r in zip(hyps, refs)) / 2
        assert got[key] == pytest.approx(want)


def test_hypotheses_and_references_get_the_same_tokenization(wordnet):
    """Case and punctuation are normalised on both sides (DeepMoLM's copy did references only)."""
    got = text.text_metrics(["ETHANOL IS AN ALCOHOL ."], ["ethanol is an alcohol."], wordnet=wordnet)
    same = text.text_metrics(["ethanol is an alcohol."], ["ethanol is an alcohol."], wordnet=wordnet)
    for key in text.METRIC_NAMES:
        assert got[key] == same[key], key
    assert got["bleu4"] == pytest.approx(100.0) and got["rougeL"] == pytest.approx(100.0)


def test_text_metrics_check_their_inputs(wordnet):
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        text.text_metrics(["a", "b"], ["a"], wordnet=wordnet)
    with pytest.raises(ValueError, match="no hypotheses"):
        text.text_metrics([], [], wordnet=wordnet)


# ----------------------------------------------------------------------------- numbers

NUMBER_TABLE = [
    ("12", 12.0),
    ("-3", -3.0),
    ("+3", 3.0),
    ("\u22123.2", -3.2),                     # unicode minus
    ("\u20133.2 eV", -3.2),                  # en dash as a minus
    ("The LogP is \u20101.7", -1.7),          # hyphen, non-breaking hyphen, modifier minus: the sign was lost
    ("The LogP is \u20111.7", -1.7),
    ("The LogP is \u02d71.7", -1.7),
    ("1,234.5", 1234.5),
    ("1,234,567 g/mol", 1234567.0),
    ("1.2e-3", 0.0012),
    ("1.2E+03", 1200.0),
    ("1.2 \u00d7 10^-3", 0.0012),
    ("-2.1 x 10^(4) eV", -21000.0),
    ("1.2\u00b710\u207b\u00b3", 0.0012),     # 1.2·10⁻³
    ("10^3", 1000.0),
    ("\u2248 5", 5.0),                       # ≈ 5
    ("~5", 5.0),
    ("about 180 g/mol", 180.0),
    ("-0.5 eV", -0.5),
    ("The value is 12", 12.0),
    ("The molecular weight is 180.16 g/mol.", 180.16),
    (".5", 0.5),
    ("-.5", -0.5),
    ("1.E+05", 1e5),                         # Fortran / C style: was read as 1
    ("The solubility is -3.e-2.", -0.03),
    ("3.2 \u00b1 0.1", 3.2),                 # the uncertainty is not the value
    ("45%", 45.0),
    ("5eV", 5.0),
    ("\uff11\uff12\uff13", 123.0),           # full-width digits
    ("1\u202f234.5", 1234.5),                # narrow no-break space as thousands separator
    ("The HOMO energy is - 5.2 eV", -5.2),
    ("C6H12O6 weighs 180.16", 180.16),       # digits inside a formula are skipped
    ("The XLogP3 value is 2.1", 2.1),
    ("Complexity of 2-methylpropan-1-ol is 25", 25.0),  # locants are skipped
    ("(2R,3S)-2,3-butanediol: 45", 45.0),
    ("1H-indole has a TPSA of 15.8", 15.8),
    ("The 1st estimate is 7", 7.0),
    ("The molar mass is 180.16 g·mol⁻¹.", 180.16),  # g·mol⁻¹: the -1 is an exponent (was: a range)
    ("-5 kJ·mol−1", -5.0),
    ("5 kcal mol^-1", 5.0),
    # LaTeX as models write it (was: the mantissa alone, 1.5 and 1.2, and "$<$ 5" read as 5)
    ("$1.5 \\times 10^{-3}$", 0.0015),
    ("1.2 \\cdot 10^{3}", 1200.0),
    ("10^{3}", 1000.0),
    ("$\\mathrm{LogP} = 2.3$", 2.3),
    ("$<$ 5", None),
    # a superscript after a number other than 10 is a power, not more digits (was: 52, 5.21)
    ("5\u00b2", None),
    ("5.2\u00b9", None),
    ("2**10", None),
    # an exponent that is none (was: 1.2, 1, 1000)
    ("1.2e3.5", None),
    ("1e5e5", None),
    ("10^3.5", None),
    # NFKC writes ½ as 1⁄2, a fraction slash (read 1 and 31); other slashes, ÷ and ratios alike
    ("½", None),
    ("3½", None),
    ("1∕2", None),
    ("1 ÷ 2", None),
    ("3:1", None),
    # LaTeX fractions (read 1, 3, and 2: a denominator), bounds (read 5), ranges (read 3.5)
    ("\\frac{1}{2}", None),
    ("$\\dfrac{3}{2}$", None),
    ("\\frac{\\pi}{2}", None),
    ("\\leq 5", None),
    ("\\le 5", None),
    ("\\geq 5", None),
    ("\\lt 5", None),
    ("$\\leq$ 5", None),
    ("$3.5 \\text{ to } 4.0$", None),
    ("$3.5\\text{--}4.0$", None),
    ("$3.5 \\sim 4.0$", None),
    ("3 \\to 4", None),
    ("$C_6H_{12}O_6$ weighs 180.16", 180.16),  # a braced subscript (read 12)
    # bound signs and words (read as the value)
    ("≲ 5", None),                       # ≲ ≳ ⩽ ⩾ ≦ ≧ ≪ ≫ ≠
    ("≳ 5", None),
    ("⩽ 5", None),
    ("⩾ 5", None),
    ("≦ 5", None),
    ("≧ 5", None),
    ("≪ 5", None),
    ("≫ 5", None),
    ("≠ 5", None),
    ("in excess of 5", None),
    ("greater than or equal to 5", None),
    ("smaller than 5", None),
    ("a maximum of 5", None),
    # other times signs (read as the mantissa 1.2)
    ("1.2 X 10^3", 1200.0),
    ("1.2X10^3", 1200.0),
    ("1.2 ✕ 10^3", 1200.0),
    ("1.2 ✖ 10^3", 1200.0),
    ("2 X 3", None),
    # Fortran's D exponent, attached to the digits (read 1.23); an exponent set apart by a
    # space is malformed (1.2 E+3 read 1.2, 1.2 E-3 was a range)
    ("1.23D+02", 123.0),
    ("-1.5d-3", -0.0015),
    ("1.2 E+3", None),
    ("1.2 E-3", None),
    ("1.2E 3", None),
    # apostrophe and underscore thousands groups (read 1); other than three digits: malformed
    ("1'000", 1000.0),
    ("1’000", 1000.0),
    ("1_000", 1000.0),
    ("1'234.5", 1234.5),
    ("1'00", None),
    ("1_00", None),
    # Arabic decimal and thousands separators (read 3 and 1)
    ("٣٫٥", 3.5),
    ("1٬234.5", 1234.5),
    # a spaced en or em dash after a word is punctuation (read -2.1), a sign after "is"
    ("LogP — 2.1", 2.1),
    ("Answer — 2.1", 2.1),
    ("Predicted value – 2.1", 2.1),
    ("LogP (XLogP3) — 2.1", 2.1),
    ("The HOMO is – 5.2 eV", -5.2),
    ("3 eV – 4 eV", None),
    # underscore emphasis (the sign was lost)
    ("_-3.5_", -3.5),
    ("__-3.5__", -3.5),
    ("HOMO_-5.2", -5.2),
    ("_3.5_", 3.5),
    # scientific notation glued to a unit (was None); units without a slash (a mass, a range)
    ("-1.2e4eV", -12000.0),
    ("1.2e2g/mol", 120.0),
    ("180.16 g.mol-1", 180.16),
    ("120.2 gmol-1", 120.2),
    # invalid
    ("N/A", None),
    ("twelve", None),
    ("", None),
    ("nan", None),
    ("inf", None),
    ("1.2.3", None),                         # malformed
    ("2..5", None),                          # a doubled point: read 2
    ("The LogP is 3..7", None),
    ("--2.5", None),                         # a sign after a sign: read -2.5
    ("+-2.5", None),
    ("2.5e", None),                          # an exponent without digits: read 2.5
    ("2.5e-", None),
    ("2.5E+ eV", None),
    ("2.5eV", 2.5),                          # a unit, not an exponent
    ("x = -3", -3.0),
    ("12,5", None),                          # decimal comma or a list: ambiguous
    ("1,2,3", None),
    ("0,125", None),                         # a decimal comma: was read as 125 (a thousands group)
    ("-0,250 Ha", None),
    ("00,125", None),
    ("between 3 and 4", None),               # a range is not one value
    ("3-4", None),
    ("3 to 4 eV", None),
    ("3 eV - 4 eV", None),
    ("3 eV-4 eV", None),
    ("5 kcal·mol-1 - 6", None),
    ("< 5", None),                           # a bound is not a value
    (">= 5", None),
    ("\u2264 5", None),
    ("less than 200 g/mol", None),           # bounds in words (they were read as the value)
    ("It is at least 150.", None),
    ("up to 5 eV", None),
    ("Above 3", None),
    ("1e999", None),                         # not finite
]


@pytest.mark.parametrize("answer, value", NUMBER_TABLE)
def test_parse_number(answer, value):
    got = numbers.parse_number(answer)
    if value is None:
        assert got is None
    else:
        assert got == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("label", ["1.E+05", "-3.e-2", "5.", "-.5", "+1.5", "1E5", "007", "5.e3", "2.50"])
def test_every_label_preparation_accepts_is_read_back_alike(label):
    # deepmolm-prepare writes a label cell into the reference answer as it is: evaluation must
    # read the same number from it (it read "1.E+05" as 1, and then refused the reference)
    from deepmolm_plugin.csv_table import PLAIN_NUMBER

    assert PLAIN_NUMBER.fullmatch(label)
    assert numbers.parse_number(f"The solubility is {label}.") == float(label)


def test_parse_number_table_is_big_enough():
    assert len(NUMBER_TABLE) >= 25 and sum(v is None for _, v in NUMBER_TABLE) >= 10
    assert numbers.parse_number(None) is None


def test_property_specs_ranges_and_aliases():
    mw = numbers.property_spec("MW")
    assert mw.name == "Molecular Weight" and mw.unit == "g/mol"
    assert numbers.property_spec("tpsa").name == "Topological Polar Surface Area"
    assert numbers.property_spec("homo-lumo gap").name == "HOMO-LUMO Gap"
    for name in ("Molecular Weight", "LogP", "Topological Polar Surface Area", "Complexity", "HOMO", "LUMO",
                 "HOMO-LUMO Gap", "SCF Energy"):
        assert name in numbers.PROPERTY_RANGES
    other = numbers.property_spec("property:expt")  # a labelled property of the data
    assert other.name == "expt" and other.low is None and other.in_range(-1e6)
    assert numbers.is_property("property:expt") and not numbers.is_property("description")


@pytest.mark.parametrize("answer,prop,value", [
    ("The HOMO is -0.25 Hartree.", "HOMO", -0.25 * 27.211386245988),
    ("HOMO: -0.25 a.u.", "HOMO", -0.25 * 27.211386245988),
    ("-0.25 Ha", "HOMO", -0.25 * 27.211386245988),
    ("-250 meV", "LUMO", -0.25),
    ("-5.2 eV", "HOMO", -5.2),
    ("-5.2 electron volts", "HOMO", -5.2),
    ("-5.2", "HOMO", -5.2),  # no unit: the property's
    ("-5.2 units", "HOMO", -5.2),  # not a known unit: as stated
    ("-3.2 kcal/mol", "Hydration Free Energy", -3.2),  # its own unit: exactly as stated
    ("-25 kJ/mol", "Hydration Free Energy", -25 / 4.184),
    ("-25 kJ mol⁻¹", "Hydration Free Energy", -25 / 4.184),
    ("-5 kJ", "Hydration Free Energy", -5 / 4.184),  # bare kJ / kcal: per mole (were taken as stated)
    ("-6.5 kcal", "HOMO", -6.5 / 23.060547830619),
    ("-0.1 eV", "Hydration Free Energy", -0.1 * 23.060547830619),
    ("0.18 kDa", "Molecular Weight", 180.0),
    ("180 Da", "Molecular Weight", 180.0),
    ("180.2 g mol-1", "Molecular Weight", 180.2),
    ("0.2 nm^2", "TPSA", 20.0),
    ("20.2 Å²", "TPSA", 20.2),
    ("2.5 × 10^-1 Hartree", "HOMO-LUMO Gap", 0.25 * 27.211386245988),
    ("-0.25 Hartree", "SCF Energy", -0.25),  # "as in the data": never converted
    ("1.5 eV", "LogP", None),  # a unitless property stated with a unit: invalid (was 1.5, as stated)
    ("180 g/mol", "HOMO", None),  # a unit of another kind: invalid
    ("-5 kcal/mol", "TPSA", None),
    ("180 mg", "Molecular Weight", None),  # a mass, not a molar mass (was read as 180 g/mol)
    ("180 grams", "MW", None),
    ("180 g/L", "MW", None),
    ("180.2 grams per mole", "MW", 180.2),
    ("-25 kilojoules per mole", "Hydration Free Energy", -25 / 4.184),
    ("300 K", "HOMO-LUMO Gap", None),  # a temperature
    ("25 °C", "Hydration Free Energy", None),
    ("25 ℃", "Hydration Free Energy", None),
    ("45%", "TPSA", None),  # a percentage
    ("45 percent", "TPSA", None),
    ("45%", "LogP", None),  # a unitless property stated with a unit: invalid (was 45.0, rule 5)
    ("5 k", "HOMO-LUMO Gap", 5.0),  # lower-case k is no kelvin: not a known unit
    ("180.16 g.mol-1", "MW", 180.16),  # was a mass (`g`): invalid
    ("120.2 gmol-1", "MW", 120.2),  # was a range
    ("0.1202 kg/mol", "MW", 120.2),  # was a mass
    ("$180\\,\\mathrm{g\\,mol^{-1}}$", "MW", 180.0),
    ("1.2e2g/mol", "MW", 120.0),  # was None
    ("MW — 180.16 g/mol", "MW", 180.16),  # was -180.16
    ("-5 cal/mol", "Hydration Free Energy", -0.005),  # was -5 kcal/mol
    ("-5000 J/mol", "Hydration Free Energy", -5 / 4.184),
    ("-5.2 MeV", "HOMO", -5.2e6),  # was meV (matched case-insensitively); out of range when scored
    ("-5.2 MEV", "HOMO", None),  # meV or MeV: not guessed
    ("-0.19 (Hartree)", "HOMO", -0.19 * 27.211386245988),  # a unit in brackets was not seen: eV
    ("-0.19 [a.u.]", "HOMO", -0.19 * 27.211386245988),
    ("$-0.25\\,\\mathrm{Ha}$", "HOMO", -0.25 * 27.211386245988),  # `\\mathrm{..}` hid the unit: eV
    ("180 (mg)", "MW", None),
    ("-0.25 ± 0.01 Hartree", "HOMO", -0.25 * 27.211386245988),  # the unit after an uncertainty: was eV
    ("0.18 ± 0.01 kDa", "MW", 180.0),  # was 0.18 g/mol
    ("-250 (+/- 10) meV", "HOMO", -0.25),  # was -250 eV
    ("-0.25 ± 0.01 K", "HOMO", None),  # a temperature, also after the uncertainty
])
def test_answers_in_another_unit_are_converted_to_the_propertys(answer, prop, value):
    spec = numbers.property_spec(prop)
    got = numbers.parse_value(answer, spec)
    assert got == (None if value is None else pytest.approx(value, rel=1e-9))
    if "kcal/mol" in answer:
        assert got == value
    assert (numbers.value_in_unit(answer, spec)[1] is not None) == (value is None)
    if value is not None and spec.in_range(value):
        assert numbers.scored_value(answer, spec, value) == pytest.approx(value, rel=1e-9)


def test_property_report_scores_converted_answers_and_checks_reference_units(tmp_path):
    """A Hartree prediction to an eV question was read as eV (-0.25 against -6.8: error
    6.55); a reference stating a unit of another kind names its question."""
    from deepmolm_plugin.eval.merge import ReportError
    from deepmolm_plugin.eval.task_kinds import reference_value

    m = numbers.property_metrics(["-0.25 Hartree", "-6.9 eV"], [-6.8, -6.8], "HOMO")
    assert m["n_valid"] == 2 and m["mae"] == pytest.approx((abs(-0.25 * 27.211386245988 + 6.8) + 0.1) / 2)
    record = {"question_id": "q1", "answer": "The HOMO is -0.25 Hartree.", "properties": {"HOMO": -6.8}}
    assert reference_value("HOMO", record) == pytest.approx(-0.25 * 27.211386245988)  # agrees with properties
    with pytest.raises(ReportError, match=r"question 'q1' \(HOMO\): the reference answer states '180 g/mol'"):
        reference_value("HOMO", {"question_id": "q1", "answer": "180 g/mol"})


def test_task_and_property_names_compare_by_one_key():
    """Property ranges, task kinds and the report's spelling check share `name_key`: case,
    spaces, punctuation and full-width forms do not make another name; letters outside
    ASCII are kept (they once were dropped, so `ΔE gap` read as the property `gap`)."""
    from deepmolm_plugin.eval.names import name_key
    from deepmolm_plugin.eval.task_kinds import task_kind

    assert name_key("HOMO-LUMO Gap") == name_key("homo lumo_gap") == "homolumogap"
    assert name_key("ＬｏｇＰ") == name_key("log-P")
    assert numbers.property_spec("ＬｏｇＰ").name == "LogP"
    assert numbers.is_property("gap") and not numbers.is_property("ΔE gap")
    assert task_kind("Text2Mol", {}) == "smiles" and task_kind("ΔE gap", {}) == "text"


def test_property_metrics_valid_ratio_and_mae():
    preds = ["The molecular weight is 180.2 g/mol.", "about 46", "N/A", "-5 g/mol", "1e9", "78 g/mol"]
    refs = [180.16, 46.07, 18.02, 32.04, 100.0, 78.11]
    got = numbers.property_metrics(preds, refs, "Molecular Weight")
    # "-5" and "1e9" parse but fall outside [1, 10000]: invalid, like "N/A".
    errors = [abs(180.2 - 180.16), abs(46 - 46.07), abs(78 - 78.11)]
    assert got["n"] == 6 and got["n_valid"] == 3 and got["valid_ratio"] == pytest.approx(50.0)
    assert got["mae"] == pytest.approx(sum(errors) / 3)
    assert got["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 3))
    assert got["unit"] == "g/mol" and got["range"] == [1.0, 10000.0]
    gap = numbers.property_metrics(["-0.3 eV", "4.1"], [4.0, 4.0], "HOMO-LUMO Gap")  # a gap is >= 0
    assert gap["n_valid"] == 1 and gap["mae"] == pytest.approx(0.1)
    none = numbers.property_metrics(["?"], [1.0], "LogP")
    assert none["valid_ratio"] == 0 and none["mae"] is None


# ----------------------------------------------------------------------------- molecules


@pytest.mark.parametrize("answer, smiles", [
    ("The SMILES is CCO.", "CCO"),
    ("SMILES: C=CC(=O)O", "C=CC(=O)O"),
    ("The SMILES of this molecule is `c1ccccc1`.", "c1ccccc1"),
    ("  CC(C)O  ", "CC(C)O"),
    ("This is ethanol", "This is ethanol"),  # prose: not guessed
    # markdown: RDKit reads `*` as a dummy atom, so `**CCO**` was a valid molecule
    ("**CCO**", "CCO"),
    ("The SMILES is **CCO**.", "CCO"),
    ("**SMILES:** CCO", "CCO"),  # was `**`
    ("```smiles\nCCO\n```", "CCO"),  # was "smiles\nCCO"
    ("SMILES: __CCO__", "CCO"),
    ("*CC*", "*CC*"),  # single stars stay: a dummy atom at each end (a polymer's repeat unit)
    ("[*]CC*", "[*]CC*"),
])
def test_extract_smiles(answer, smiles):
    assert molecules.extract_smiles(answer) == smiles


@pytest.mark.parametrize("answer, name", [
    ("The IUPAC name is 2-hydroxypropanoic acid.", "2-hydroxypropanoic acid"),
    ("IUPAC name: (2R)-butan-2-ol", "(2R)-butan-2-ol"),
    ("(2R*,3S*)-2,3-dibromobutane", "(2R*,3S*)-2,3-dibromobutane"),  # relative stereo: no emphasis
    # markdown (was no exact match)
    ("IUPAC name: **ethanol**", "ethanol"),
    ("**IUPAC name:** ethanol", "ethanol"),
    ("The IUPAC name is *ethanol*.", "ethanol"),
    ("*N*,*N*-dimethylformamide", "N,N-dimethylformamide"),
    ("```text\nethanol\n```", "ethanol"),
])
def test_extract_iupac(answer, name):
    assert molecules.extract_iupac(answer) == name


def test_smiles_metrics_match_rdkit():
    from rdkit import Chem, DataStructs
    from rdkit.Chem import MACCSkeys, rdFingerprintGenerator

    preds = ["The SMILES is OCC.", "C1=CC=CC=C1", "C1CC", "CCN", "CC(=O)Oc1ccccc1C(=O)O"]
    refs = ["CCO", "c1ccccc1", "CCC", "CCO", "CC(=O)Oc1ccccc1C(O)=O", "C1CC"]
    preds.append("CCO")  # its reference does not parse: left out, counted
    got = molecules.smiles_metrics(preds, refs)

    morgan = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = {"maccs": MACCSkeys.GenMACCSKeys, "rdk": Chem.RDKFingerprint, "morgan": morgan.GetFingerprint}
    sims = {k: [] for k in fps}
    exact = 0
    pairs = [(p, r) for p, r in zip(["OCC", "C1=CC=CC=C1", "C1CC", "CCN", preds[4]], refs[:5])]
    for p, r in pairs:
        pm, rm = Chem.MolFromSmiles(p), Chem.MolFromSmiles(r)
        if pm is None:
            continue
        exact += Chem.MolToSmiles(pm) == Chem.MolToSmiles(rm)
        for k, fn in fps.items():
            sims[k].append(DataStructs.TanimotoSimilarity(fn(rm), fn(pm)))
    assert got["n"] == 5 and got["n_valid"] == 4 and got["n_invalid_references"] == 1
    assert got["validity"] == pytest.approx(80.0)
    assert got["exact_match"] == pytest.approx(100 * exact / 5) == pytest.approx(60.0)
    for k in fps:
        assert got[f"{k}_fts"] == pytest.approx(100 * sum(sims[k]) / len(sims[k])), k
    assert got["morgan_fts"] < 100


def test_iupac_exact_match_and_text_metrics(wordnet):
    preds = ["The IUPAC name is ethanol.", "(2r)-butan-2-ol", "propan-2-ol"]
    refs = ["ethanol", "(2R)-butan-2-ol", "propan-1-ol"]
    got = molecules.iupac_metrics(preds, refs, wordnet=wordnet)
    assert got["exact_match"] == pytest.approx(100 / 3)  # case matters: r is not R
    names = [molecules.extract_iupac(p) for p in preds]
    assert got["bleu2"] == pytest.approx(text.text_metrics(names, refs, wordnet=wordnet)["bleu2"])


# ----------------------------------------------------------------------------- merging


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _answer(qid, text_, model="tiny"):
    return {"question_id": qid, "prompt": "?", "text": text_, "answer_id": "x", "model_id": model, "metadata": {}}


@pytest.fixture
def shards(tmp_path):
    refs = _jsonl(tmp_path / "questions.jsonl", [
        {"question_id": "q0", "task": "Molecular Weight", "answer": "46.07 g/mol", "text": "?"},
        {"question_id": "q1", "task": "Molecular Weight", "answer": "78.11 g/mol", "text": "?"},
        {"question_id": "q2", "task": "smiles", "answer": "The SMILES is CCO.", "text": "?"},
        {"question_id": "q3", "task": "smiles", "answer": "The SMILES is c1ccccc1.", "text": "?"},
    ])
    a0 = _jsonl(tmp_path / "0.jsonl", [_answer("q0", "46"), _answer("q1", "80 g/mol")])
    a1 = _jsonl(tmp_path / "1.jsonl", [_answer("q2", "CCO"), _answer("q3", "C1CC")])
    return refs, a0, a1


def test_merge_all_shards(shards):
    from deepmolm_plugin.eval.merge import load_references, merge_answers

    refs, a0, a1 = shards
    merged, counts = merge_answers([a0, a1], list(load_references(refs)))
    assert sorted(merged) == ["q0", "q1", "q2", "q3"] and list(counts.values()) == [2, 2]


def test_merge_names_missing_and_duplicated_shards(shards, tmp_path):
    from deepmolm_plugin.eval.merge import MergeError, load_references, merge_answers

    refs, a0, a1 = shards
    expected = list(load_references(refs))
    with pytest.raises(MergeError, match=r"2 question\(s\) have no answer in any shard: 'q2', 'q3'"):
        merge_answers([a0], expected)  # shard 1 left out
    with pytest.raises(MergeError, match=r"answer file\(s\) missing: .*2\.jsonl"):
        merge_answers([a0, a1, tmp_path / "2.jsonl"], expected)
    copy = _jsonl(tmp_path / "copy.jsonl", [_answer("q1", "80"), _answer("q3", "CCO")])
    with pytest.raises(MergeError) as info:
        merge_answers([a0, a1, copy], expected)  # a duplicated shard
    message = str(info.value)
    assert "answered more than once" in message
    assert f"'q1' in {a0}, {copy}" in message and f"'q3' in {a1}, {copy}" in message
    extra = _jsonl(tmp_path / "extra.jsonl", [_answer("q9", "1")])
    with pytest.raises(MergeError, match=r"1 answer\(s\) to questions not in the references: 'q9'"):
        merge_answers([a0, a1, extra], expected)
    other = _jsonl(tmp_path / "other.jsonl", [_answer("q2", "CCO", model="old"), _answer("q3", "CCO", model="old")])
    with pytest.raises(MergeError, match="answers come from 2 models"):
        merge_answers([a0, other], expected)


def test_merge_refuses_shards_of_runs_with_other_settings(shards, tmp_path):
    """was: the host's model_id is the model folder's name only: exp1/checkpoint and
    exp2/checkpoint (or one chunk at another temperature) were scored as one run."""
    from deepmolm_plugin.eval.merge import MergeError, load_references, merge_answers

    refs, a0, a1 = shards
    expected = list(load_references(refs))

    def run(path, **changed):
        settings = {"model": "/exp1/checkpoint", "conv_mode": "qwen2", "temperature": 0.0, **changed}
        lines = [dict(json.loads(x), metadata={"settings": settings}) for x in path.read_text().splitlines()]
        return _jsonl(tmp_path / f"{path.stem}-{len(changed)}.jsonl", lines)

    assert len(merge_answers([run(a0), run(a1)], expected)[0]) == 4  # one run's chunks
    with pytest.raises(MergeError) as info:
        merge_answers([run(a0), run(a1, model="/exp2/checkpoint", temperature=0.7)], expected)
    assert "runs with different settings" in str(info.value)
    assert "model='/exp2/checkpoint', temperature=0.7" in str(info.value) and "conv_mode" not in str(info.value)
    # one model retrained in place between the chunks: same options, other files (settings_digest)
    retrained = _jsonl(tmp_path / "retrained.jsonl", [dict(json.loads(x), metadata={
        "settings": {"model": "/exp1/checkpoint", "conv_mode": "qwen2", "temperature": 0.0}, "settings_digest": "b"})
        for x in a1.read_text().splitlines()])
    with pytest.raises(MergeError, match="the model folder's files changed between them, retrained in place"):
        merge_answers([run(a0), retrained], expected)
    with pytest.raises(MergeError, match="carry no model_vqa settings while those in"):  # a shard of an older run
        merge_answers([a0, run(a1)], expected)


def test_report_cli_scores_and_reports_merge_errors(shards, tmp_path, capsys):
    from deepmolm_plugin.eval import report

    refs, a0, a1 = shards
    out = tmp_path / "out"
    aux = _jsonl(tmp_path / "0.aux_properties.jsonl", [{"question_id": "q0", "aux_properties": {"x": 1.0}}])
    report.main([str(a0), str(aux), str(a1), "--references", str(refs), "--out", str(out), "--no-plots"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["questions"] == 4 and metrics["tokenizer"]["name"] == "words-v2"
    mw, sm = metrics["tasks"]["Molecular Weight"], metrics["tasks"]["smiles"]
    assert mw["kind"] == "property" and mw["metrics"]["mae"] == pytest.approx((0.07 + 1.89) / 2)
    assert sm["kind"] == "smiles" and sm["metrics"]["validity"] == 50.0 and sm["metrics"]["exact_match"] == 50.0
    captured = capsys.readouterr()
    assert "| Molecular Weight | 2 | g/mol | 100.00 | 0.98 |" in captured.out
    assert "skipping 1 property-head file" in captured.err  # model_vqa's side file, matched by answers/*.jsonl
    assert metrics["inputs"]["answers"] == [str(a0), str(a1)]
    with pytest.raises(SystemExit, match=r"(?s)error: cannot merge .*'q2', 'q3'"):
        report.main([str(a0), "--references", str(refs), "--out", str(out)])
    with pytest.raises(SystemExit, match="references file .* is also listed among the answer files"):
        report.main([str(a0), str(a1), str(refs), "--references", str(refs), "--out", str(out)])


# ----------------------------------------------------------------------------- WordNet


def test_wordnet_missing_says_how_to_install(tmp_path, monkeypatch):
    empty = tmp_path / "empty_nltk_data"
    empty.mkdir()
    monkeypatch.setenv("NLTK_DATA", str(empty))
    with pytest.raises(wn_setup.WordNetMissing) as info:
        text.text_metrics(["a cat"], ["a cat"])
    message = str(info.value)
    assert str(empty) in message
    assert "apt-get install -y wordnet-base wordnet-sense-index" in message and "make wordnet" in message
    with pytest.raises(wn_setup.WordNetMissing, match="apt-get install -y wordnet-base wordnet-sense-index"):
        wn_setup.ensure_wordnet(tmp_path / "built", source=tmp_path / "no_debian_files")


def test_lexnames_rebuilt_from_the_man_page():
    page = wn_setup.LEXNAMES_MAN_PAGE
    assert page.is_file(), f"{page} missing: `make test` installs wordnet-base (apt-get install wordnet-base)"
    rebuilt = wn_setup.lexnames_from_man_page(wn_setup._read_man_page(page))
    assert rebuilt == wn_setup.lexnames_file()  # the built-in fallback table is the same
    lines = rebuilt.splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
    assert lines[29] == "29\tverb.body\t2" and lines[2] == "02\tadv.all\t4"


def test_ensure_wordnet_builds_from_debian_files(tmp_path, nltk_data):
    """Built from the dict files (here: the already built corpus as the source folder)."""
    source = wn_setup.corpus_dir(nltk_data)
    folder = wn_setup.ensure_wordnet(tmp_path / "nd", source=source, man_page=tmp_path / "no_man_page.gz")
    assert folder == tmp_path / "nd" / "corpora" / "wordnet" and wn_setup.is_complete(folder)
    assert (folder / "lexnames").read_text() == wn_setup.lexnames_file()
    assert (folder / "data.noun").read_bytes() == (source / "data.noun").read_bytes()
    assert wn_setup.find_wordnet(tmp_path / "nd") == folder
    assert wn_setup.ensure_wordnet(tmp_path / "nd", source=tmp_path / "nothing") == folder  # idempotent
    (folder / "index.sense").unlink()
    with pytest.raises(wn_setup.WordNetMissing, match="lacks some of"):
        wn_setup.find_wordnet(tmp_path / "nd")


def test_offline_wordnet_is_complete_and_serves_meteor(nltk_data, wordnet):
    from nltk.translate.meteor_score import meteor_score

    folder = wn_setup.corpus_dir(nltk_data)
    assert wn_setup.is_complete(folder)
    assert len((folder / "lexnames").read_text().splitlines()) == 45
    assert wordnet.get_version() == "3.0"
    assert "car" in {lemma.name() for s in wordnet.synsets("automobile") for lemma in s.lemmas()}
    # METEOR's synonym stage uses it: hypothesis "car" matches reference "auto" (NLTK looks
    # up the Porter stems, which for these two are the words themselves)
    assert meteor_score([["the", "auto"]], ["the", "car"], wordnet=wordnet) > 0.9
    assert meteor_score([["the", "auto"]], ["the", "banana"], wordnet=wordnet) < 0.5


def test_a_reference_outside_the_valid_range_widens_it_for_its_question():
    # was: the exact answer to a 12500 g/mol reference was "invalid" (the range ends at 10000)
    got = numbers.property_metrics(["The Molecular Weight is 12500.3.", "The Molecular Weight is 180.2.",
                                    "The Molecular Weight is 12500.3."], [12500.3, 180.2, 180.2], "Molecular Weight")
    assert (got["n_valid"], got["n_references_out_of_range"]) == (2, 1)  # the third: out of range for its reference
    assert got["mae"] == 0.0


def test_empty_answers_are_counted_and_named(tmp_path, capsys):
    """was: scored as wrong without a word (an empty reply is most often the pipeline's)."""
    from deepmolm_plugin.eval import report

    refs = _jsonl(tmp_path / "q.jsonl", [
        {"question_id": f"q{i}", "text": "?", "task": "Molecular Weight", "answer": "46.07 g/mol"} for i in range(3)])
    answers = _jsonl(tmp_path / "a.jsonl", [_answer("q0", "46.1"), _answer("q1", ""), _answer("q2", "  ")])
    report.main([str(answers), "--references", str(refs), "--out", str(tmp_path / "out"), "--no-plots"])
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["tasks"]["Molecular Weight"]["metrics"]["n_empty"] == 2
    assert "Empty answers, scored as wrong" in (tmp_path / "out" / "metrics.md").read_text()
    rows = [json.loads(x) for x in (tmp_path / "out" / "per_question.jsonl").read_text().splitlines()]
    assert [r["empty"] for r in rows] == [False, True, True]
    assert "note: 2 answer(s) are empty, scored as wrong: 'q1', 'q2'" in capsys.readouterr().err
