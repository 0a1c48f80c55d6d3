"""MolT5's string scores of generated SMILES: character BLEU-4 and the mean Levenshtein
distance, over every scored pair (an invalid prediction included), beside validity, exact
match and the fingerprint similarities. They were not reported."""

from __future__ import annotations

import json
import random
import warnings

import pytest
from nltk import edit_distance as nltk_edit_distance
from nltk.translate.bleu_score import corpus_bleu

from deepmolm_plugin.eval.metrics.molecules import edit_distance, smiles_metrics


def test_edit_distance_equals_the_dynamic_programme():
    rng = random.Random(7)
    for _ in range(1500):
        a = "".join(rng.choice("CNO()=1[]@") for _ in range(rng.randint(0, 80)))
        b = "".join(rng.choice("CNO()=1c") for _ in range(rng.randint(0, 80)))
        assert edit_distance(a, b) == nltk_edit_distance(a, b) == edit_distance(b, a)
    assert edit_distance("", "CCO") == 3 and edit_distance("CCO", "CCO") == 0
    assert edit_distance("CCCO", "OCCC") == 2


def test_a_runaway_answer_is_scored_exactly():
    assert edit_distance("C" * 200_000, "CCO") == 199_998  # one pass over the long string


def test_smiles_string_scores_follow_molt5():
    preds = ["The SMILES is CCO.", "c1ccccc1O", "SMILES: C(C)O", "not a molecule", "CC(=O)O"]
    refs = ["CCO", "Oc1ccccc1", "CCO", "CCN", "C1CC1Q"]  # the last reference does not parse: left out
    m = smiles_metrics(preds, refs)
    written = [("CCO", "CCO"), ("c1ccccc1O", "Oc1ccccc1"), ("C(C)O", "CCO"), ("not a molecule", "CCN")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = corpus_bleu([[list(r)] for _, r in written], [list(p) for p, _ in written])
    assert m["n"] == 4 and m["bleu"] == pytest.approx(100 * expected)
    assert m["levenshtein"] == pytest.approx(sum(nltk_edit_distance(p, r) for p, r in written) / 4)
    assert m["exact_match"] == 75.0  # canonical: the strings differ, the molecules not


def test_bleu_without_a_four_character_prediction_is_undefined():
    m = smiles_metrics(["CO", "C"], ["CCO", "C"])
    assert m["bleu"] is None and "4 characters" in m["undefined"]["bleu"]
    assert m["levenshtein"] == 0.5
    assert smiles_metrics([], [])["levenshtein"] is None


def test_report_tables_show_them(tmp_path):
    from deepmolm_plugin.eval.markdown import markdown
    from deepmolm_plugin.eval.scoring import build_report

    refs = tmp_path / "q.jsonl"
    refs.write_text("".join(json.dumps({"question_id": q, "task": "text2smiles", "text": "SMILES?", "answer": a}) + "\n"
                            for q, a in [("a", "CCO"), ("b", "c1ccccc1")]))
    answers = tmp_path / "a.jsonl"
    answers.write_text("".join(json.dumps({"question_id": q, "text": t}) + "\n"
                               for q, t in [("a", "OCC"), ("b", "c1ccccc1")]))
    report, _ = build_report([answers], refs)
    m = report["tasks"]["text2smiles"]["metrics"]
    assert m["levenshtein"] == 1.0 and m["exact_match"] == 100.0
    assert "| BLEU | Levenshtein |" in markdown(report)


@pytest.mark.parametrize("answer", ["SMILES is given by CCO", "The SMILES can be written as CCO.",
                                    "The SMILES would be CCO", "The SMILES is represented as CCO.",
                                    "The corresponding SMILES reads CCO.", "The SMILES reads as follows: CCO"])
def test_a_verb_phrase_names_the_smiles(answer):
    # was: the next word (`given`, `represented`) or the whole sentence, an invalid SMILES
    from deepmolm_plugin.eval.metrics.molecules import extract_smiles

    assert extract_smiles(answer) == "CCO"
