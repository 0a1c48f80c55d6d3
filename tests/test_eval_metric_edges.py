"""Evaluation metrics at their edges: a `=` or `:` inside a SMILES taken as the "SMILES = X"
separator, similarities and n-gram scores that are undefined (0/0) reported as 0 or as a
smoothing epsilon, and invisible format characters that were tokens of their own."""

from __future__ import annotations

import json

import pytest

from deepmolm_plugin.eval import report
from deepmolm_plugin.eval.metrics import molecules, text


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _metrics_md(tmp_path, rows):
    """(metrics.json, metrics.md) of a report on [(task, reference answer, prediction)]."""
    refs = _jsonl(tmp_path / "q.jsonl", [{"question_id": f"q{i}", "text": "?", "task": t, "answer": a}
                                         for i, (t, a, _) in enumerate(rows)])
    answers = _jsonl(tmp_path / "a.jsonl", [{"question_id": f"q{i}", "text": p} for i, (_, _, p) in enumerate(rows)])
    report.main([str(answers), "--references", str(refs), "--out", str(tmp_path / "out"), "--no-plots"])
    return (json.loads((tmp_path / "out" / "metrics.json").read_text()),
            (tmp_path / "out" / "metrics.md").read_text())


# --- A: a `=` or `:` of the SMILES itself is no separator -------------------------------------
@pytest.mark.parametrize("answer, smiles", [
    ("SMILES string C=CC(=O)O", "C=CC(=O)O"),  # was CC(=O)O: acrylic acid read as acetic acid
    ("Generated SMILES C=CC", "C=CC"),         # was CC
    ("Isomeric SMILES C/C=C/C", "C/C=C/C"),    # was C/C
    ("SMILES [CH3:1][OH:2]", "[CH3:1][OH:2]"),  # was 1][OH:2] (an atom map's colon)
    ("SMILES O=CCO", "O=CCO"),                 # was CCO
    ("The SMILES `O=CCO`.", "O=CCO"),
    # a word glued to its separator is no molecule: the separator stays one
    ("SMILES (canonical):CCO", "CCO"),
    ("SMILES code:C1=CC=CC=C1", "C1=CC=CC=C1"),
    ("SMILES notation=CCO", "CCO"),
    ("The SMILES of ethanol:CCO", "CCO"),
])
def test_a_bond_or_atom_map_inside_the_smiles_is_no_separator(answer, smiles):
    assert molecules.extract_smiles(answer) == smiles


def test_a_smiles_named_without_a_separator_is_no_false_exact_match():
    """Was: "SMILES O=CCO" (glycolaldehyde) was an exact match for ethanol."""
    got = molecules.smiles_metrics(["SMILES O=CCO", "SMILES string C=CC(=O)O"], ["CCO", "CC(=O)O"])
    assert got["validity"] == 100.0 and got["exact_match"] == 0.0
    # the separators that name a SMILES still do, a `=` or `:` of the SMILES after them included
    for answer in ("SMILES: CCO", "SMILES = CCO", "SMILES is CCO", "The SMILES of it: CCO", "SMILES:CCO",
                   "SMILES =CCO", "SMILES is: CCO", "SMILES is = CCO", "SMILES:\n  CCO", "**SMILES:** CCO"):
        assert molecules.extract_smiles(answer) == "CCO", answer
    assert molecules.extract_smiles("SMILES: C=CC(=O)O") == "C=CC(=O)O"
    assert molecules.extract_smiles("SMILES = [CH3:1][OH:2]") == "[CH3:1][OH:2]"


# --- B: two empty fingerprints have no Tanimoto similarity ------------------------------------
def test_two_empty_fingerprints_are_left_out_and_counted_not_scored_0():
    """Was: water, sodium and methane against themselves: exact match 100 %, RDK FTS 0 (no
    bond, no RDK path bit: Tanimoto 0/0, which RDKit returns as 0)."""
    got = molecules.smiles_metrics(["O", "[Na+]", "C"], ["O", "[Na+]", "C"])
    assert got["exact_match"] == 100.0
    assert got["rdk_fts"] is None and got["n_undefined_rdk_fts"] == 3
    assert got["maccs_fts"] == got["morgan_fts"] == 100.0 and got["n_undefined_morgan_fts"] == 0
    assert "rdk_fts" in got["undefined"] and set(got["undefined"]) == {"rdk_fts"}
    mixed = molecules.smiles_metrics(["O", "CCO"], ["O", "CCO"])  # the mean is over the defined pair
    assert mixed["rdk_fts"] == 100.0 and mixed["n_undefined_rdk_fts"] == 1
    hydrogen = molecules.smiles_metrics(["[H]", "[H][H]"], ["[H]", "[H][H]"])  # no MACCS key set
    assert hydrogen["maccs_fts"] is None and hydrogen["n_undefined_maccs_fts"] == 2
    # one empty fingerprint against a full one is a defined 0
    assert molecules.smiles_metrics(["O"], ["CCO"])["rdk_fts"] == 0.0


# --- C: n-gram scores without n-grams ---------------------------------------------------------
def test_bleu_and_rouge2_of_one_token_answers_are_undefined_not_a_smoothing_epsilon(wordnet):
    """Was: `oxidane` against `oxidane` (exact match 100 %): BLEU-2 1.5e-152, BLEU-4 1.8e-229
    (nltk's epsilon for a precision of 0/0) and ROUGE-2 0."""
    got = text.text_metrics(["oxidane"], ["oxidane"], wordnet=wordnet)
    assert got["bleu2"] is None and got["bleu4"] is None and got["rouge2"] is None
    assert got["rouge1"] == got["rougeL"] == 100.0
    assert got["n_undefined_rouge2"] == 1 and got["n_undefined_rouge1"] == 0
    assert set(got["undefined"]) == {"bleu2", "bleu4", "rouge2"}
    # one-token pairs leave ROUGE-2's mean to the others; BLEU-4 needs one answer of 4 tokens
    mixed = text.text_metrics(["oxidane", "ethanol is an alcohol"], ["oxidane", "ethanol is an alcohol"],
                              wordnet=wordnet)
    assert mixed["rouge2"] == 100.0 and mixed["n_undefined_rouge2"] == 1
    assert mixed["bleu4"] is not None and mixed["bleu4"] > 0


def test_an_order_without_a_match_is_exactly_0(wordnet):
    """Was ~1e-152: nltk's "no smoothing" puts the smallest float in the precision."""
    got = text.text_metrics(["a b c d"], ["a x b y"], wordnet=wordnet)
    assert got["bleu2"] == 0.0 and got["bleu4"] == 0.0 and got["undefined"] == {}


def test_undefined_scores_are_a_dash_with_their_reason_in_metrics_md(tmp_path, wordnet):
    metrics, md = _metrics_md(tmp_path, [("iupac", "oxidane", "The IUPAC name is oxidane."),
                                         ("smiles", "O", "SMILES: O")])
    iupac = metrics["tasks"]["iupac"]["metrics"]
    assert iupac["exact_match"] == 100.0 and iupac["bleu2"] is None and iupac["rouge2"] is None
    assert metrics["tasks"]["smiles"]["metrics"]["rdk_fts"] is None
    row = next(line for line in md.splitlines() if line.startswith("| iupac |"))
    assert row.split(" | ")[3] == "–"  # BLEU-2
    assert "Undefined scores" in md and "BLEU-2 undefined: no answer has 2 tokens" in md
    assert "RDK FTS leaves out 1 of 1 valid pair(s): both fingerprints empty" in md


# --- D: invisible format characters are no tokens ---------------------------------------------
@pytest.mark.parametrize("mark", ["\u200b", "\u200e", "\u200f", "\ufeff", "\u00ad", "\u2060"])
def test_format_characters_are_no_tokens(mark, wordnet):
    tokenize = text.get_tokenizer()
    assert tokenize(f"eth{mark}anol is an{mark} alcohol") == ["ethanol", "is", "an", "alcohol"]
    assert text.get_tokenizer("words-cased-v2")(f"Eth{mark}anol") == ["Ethanol"]
    got = text.text_metrics([f"eth{mark}anol is a primary{mark} alcohol ."], ["ethanol is a primary alcohol ."],
                            wordnet=wordnet)
    assert got["bleu2"] == got["bleu4"] == got["rougeL"] == 100.0


def test_the_fixed_tokenizer_has_a_new_name_and_the_old_one_is_kept():
    """`words` "will never change": the rule without format characters is `words-v2`, the
    default, and each report names it."""
    assert text.DEFAULT_TOKENIZER == "words-v2" and text.get_tokenizer().name == "words-v2"
    assert "Cf" in text.get_tokenizer().declaration()["description"]
    assert text.get_tokenizer()("e\u200b\u0301t\u00e9") == ["été"]  # removed before NFKC: the accent composes
    assert text.get_tokenizer("words")("eth\u200banol") == ["eth", "\u200b", "anol"]  # as it always was
    assert text.get_tokenizer("words-cased")("Eth\u00adanol") == ["Eth", "\u00ad", "anol"]
