"""Hostile input to evaluation, third sweep: SMILES RDKit reads as another molecule,
answers that hang the answer extractors, reference problems that were only counted or
silently resolved one way, answer lines that disagree with their references, ids of other
JSON types, special tokens, and inputs that are the report's own outputs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deepmolm_plugin.eval import baselines, questions as eval_questions, report
from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.eval.metrics import molecules
from deepmolm_plugin.eval.scoring import build_report
from timing_guard import within_linear_time


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _questions(tmp_path, rows):
    return _jsonl(tmp_path / "questions.jsonl", [{"text": "?", **row} for row in rows])


def _answers(tmp_path, texts, name="answers.jsonl"):
    return _jsonl(tmp_path / name, [{"question_id": qid, "text": text} for qid, text in texts.items()])


def _report(argv):
    with pytest.raises(SystemExit) as exit:
        report.main([str(a) for a in argv])
    return str(exit.value.code)


# --- SMILES ---------------------------------------------------------------------------------------
def test_smiles_exact_match_is_rdkits_canonical_molecule_and_non_ascii_is_invalid():
    """Was: "CCOé" (RDKit stops at the non-ASCII byte, the rest is a name) scored as valid
    ethanol and an exact match; so did a control character."""
    for bad in ("CCOé", "CCO\x7f", "ＣＣＯ"):
        result = molecules.smiles_metrics([bad], ["CCO"])
        assert result["n_valid"] == 0 and result["exact_match"] == 0.0, bad
    # What "exact" means (documented in metrics.molecules): one molecule, any spelling ...
    for pred, ref in [("C1=CC=CC=C1", "c1ccccc1"), ("[H]OC", "CO"), ("[CH3][OH]", "OC")]:
        assert molecules.smiles_metrics([pred], [ref])["exact_match"] == 100.0, pred
    # ... but stereo, charges, isotopes and salts are part of the molecule.
    for pred, ref in [("CC=CC", "C/C=C/C"), ("CC(=O)O", "CC(=O)[O-].[Na+]"), ("C", "[2H]C"),
                      ("CC(=O)O", "CC(=O)[O-]")]:
        assert molecules.smiles_metrics([pred], [ref])["exact_match"] == 0.0, pred


def test_smiles_in_markdown_are_read_as_their_molecule():
    """Was: `**CCO**` was valid and no exact match (RDKit reads `*` as a dummy atom), so its
    Tanimoto scores were another molecule's; `**SMILES:** CCO` gave `**`, a fence's info
    string stayed in the SMILES."""
    preds = ["**CCO**", "The SMILES is **CCO**.", "**SMILES:** CCO", "```smiles\nCCO\n```"]
    result = molecules.smiles_metrics(preds, ["CCO"] * 4)
    assert result["validity"] == result["exact_match"] == result["morgan_fts"] == 100.0
    assert molecules.smiles_metrics(["*CC*"], ["*CC*"])["exact_match"] == 100.0  # dummy atoms stay


def test_answers_repeating_the_keyword_are_read_in_linear_time():
    """Was: 46 s for a 100k-character "SMILES SMILES ..." answer and 29 s for "IUPAC name
    ..." (the extractor's regex rescanned the line from every keyword)."""
    def read(extract, answer):
        return within_linear_time(lambda: extract(answer), answer)

    assert read(molecules.extract_smiles, "SMILES " * 15000 + "is CCO.") == "CCO"
    assert read(molecules.extract_iupac, "IUPAC name " * 10000 + "is ethanol.") == "ethanol"
    assert read(molecules.extract_smiles, "SMILES " * 15000) == ("SMILES " * 15000).strip()  # none named: all
    assert read(molecules.extract_smiles, "**a " * 25000).startswith("**a")  # emphasis never closed
    assert read(molecules.extract_iupac, "*a " * 30000 + "\n```\n" * 3) == ("*a " * 30000).strip()
    # The same answers as before for the ordinary forms.
    assert molecules.extract_smiles("The SMILES\nof it is CCO") == "The SMILES\nof it is CCO"  # not on its line
    assert molecules.extract_smiles("The SMILES of the SMILES = CCN.") == "CCN"
    assert molecules.extract_smiles("SMILES:\n  CCO") == "CCO"
    assert molecules.extract_iupac("IUPAC name is\nethanol") == "ethanol"


@pytest.mark.parametrize("answer, smiles", [("The SMILES is: CCO.", "CCO"), ("SMILES is = CCO", "CCO"),
                                            ("Its SMILES is:\n`CCO`", "CCO")])
def test_is_followed_by_a_colon_is_one_separator(answer, smiles):
    """Was: "The SMILES is: CCO" gave the SMILES ":" (invalid) and "The IUPAC name is:
    ethanol" the name ": ethanol" (no exact match)."""
    assert molecules.extract_smiles(answer) == smiles
    assert molecules.extract_iupac("The IUPAC name is: ethanol.") == "ethanol"


def test_invalid_reference_smiles_are_named_and_not_in_n(tmp_path, capsys):
    """Was: left out of the scores without a word, while the table's n still counted them
    (n=3 over scores of 2 questions)."""
    refs = _questions(tmp_path, [{"question_id": i, "task": "smiles", "answer": s}
                                 for i, s in enumerate(["CCO", "C1CC", "c1ccccc1"])])
    answers = _answers(tmp_path, {0: "CCO", 1: "CCO", 2: "CCO"})
    report, rows = build_report([answers], refs)
    result = report["tasks"]["smiles"]
    assert result["n"] == result["metrics"]["n"] == 2 and result["metrics"]["n_invalid_references"] == 1
    assert "smiles: 1 question(s) whose reference SMILES does not parse, left out: 1" in capsys.readouterr().err
    # and in the per-question rows, with the reason (it was named on stderr only)
    assert [(r["question_id"], r["scored"]) for r in sorted(rows, key=lambda r: r["question_id"])] == [
        (0, True), (1, False), (2, True)]
    assert next(r for r in rows if not r["scored"])["reason"] == "whose reference SMILES does not parse"
    refs = _questions(tmp_path, [{"question_id": 0, "task": "smiles", "answer": "C1CC"}])
    with pytest.raises(ReportError, match="task 'smiles': no question is left to score"):
        build_report([_answers(tmp_path, {0: "CCO"})], refs)


def test_an_iupac_reference_naming_nothing_is_an_error(tmp_path):
    """Was: counted in n_empty_references and scored 0 for every answer (the task's means
    dropped); an empty `answer` was already an error."""
    refs = _questions(tmp_path, [{"question_id": "q", "task": "iupac", "answer": "The IUPAC name is ."}])
    with pytest.raises(ReportError, match=r"question 'q' \(iupac\): .* holds no IUPAC name"):
        build_report([_answers(tmp_path, {"q": "ethanol"})], refs)


# --- tasks and references -------------------------------------------------------------------------
def test_one_task_spelled_two_ways_is_refused(tmp_path):
    """Was: `LogP` and `logp` (or `HOMO-LUMO gap` and `HOMO LUMO Gap`) were two rows of the
    report, each with part of the questions."""
    for names in (("LogP", "logp"), ("HOMO-LUMO gap", "HOMO LUMO Gap"), ("caption", "Caption ")):
        refs = _questions(tmp_path, [{"question_id": i, "task": t, "answer": "1.0"} for i, t in enumerate(names)])
        with pytest.raises(ReportError, match=f"tasks {names[0]!r} and {names[1]!r} differ only in case"):
            build_report([_answers(tmp_path, {0: "1.0", 1: "1.0"})], refs)


def test_several_reference_answers_say_one_is_scored(tmp_path):
    """Was: "the reference `answer` is list [...], not a string", which did not say that a
    question is scored against one reference."""
    refs = _questions(tmp_path, [{"question_id": "q", "task": "caption", "answer": ["An acid.", "A carboxylic acid."]}])
    with pytest.raises(ReportError, match="is a list of 2; one reference answer per question is scored"):
        build_report([_answers(tmp_path, {"q": "An acid."})], refs)


def test_reference_answer_and_properties_must_agree(tmp_path):
    """Was: the answer's number won silently (a scale or unit on one side only: the
    prediction -28000 scored an MAE of 27997). Rounding in the answer text still passes,
    and so does a unit the report converts ("-0.25 Hartree" is -6.80 eV)."""
    refs = _questions(tmp_path, [{"question_id": "q", "task": "SCF Energy", "answer": "The SCF energy is -2.8 eV.",
                                  "properties": {"SCF Energy": -28000.0}}])
    with pytest.raises(ReportError, match=r"question 'q' \(SCF Energy\): the reference answer states -2.8 .* "
                                          r"`properties` holds -28000"):
        build_report([_answers(tmp_path, {"q": "-28000 eV"})], refs)
    refs = _questions(tmp_path, [{"question_id": "q", "task": "HOMO", "answer": "The HOMO is -0.25 Hartree.",
                                  "properties": {"HOMO": -6.8}}])
    homo = build_report([_answers(tmp_path, {"q": "-0.25 Hartree"})], refs)[0]["tasks"]["HOMO"]["metrics"]
    assert homo["n_valid"] == 1 and homo["mae"] == 0.0
    refs = _questions(tmp_path, [{"question_id": "q", "task": "LogP", "answer": "The LogP is 2.35.",
                                  "properties": {"LogP": 2.3456}}])
    assert build_report([_answers(tmp_path, {"q": "2.35"})], refs)[0]["tasks"]["LogP"]["metrics"]["mae"] == 0.0


def test_property_answers_are_read_in_linear_time():
    """The normalising patterns try each run of letters or underscores once: tried from every
    position, 100k letters took minutes."""
    from deepmolm_plugin.eval.metrics.numbers import parse_number

    for text in ("a" * 100000, "_" * 100000, "ab \u2014 " * 20000 + "5", "_{" * 50000 + "5"):
        within_linear_time(lambda: parse_number(text), text)


@pytest.mark.parametrize("task, answer, properties, value", [
    ("LogP", "The LogP is ½.", {"LogP": 0.5}, 0.5),  # read 1 (a fraction): disagreed with `properties`
    ("Molecular Weight", "The molecular weight is 1'234.5 g/mol.", {"Molecular Weight": 1234.5}, 1234.5),  # read 1
    ("Molecular Weight", "The molecular weight is 180.16 g.mol-1.", {}, 180.16),  # was "a mass": an error
    ("HOMO", "The HOMO is -0.19 (Hartree).", {"HOMO": -5.17}, -0.19 * 27.211386245988),  # read as eV: an error
    ("LogP", "LogP — 2.1", {"LogP": 2.1}, 2.1),  # read -2.1: an error
])
def test_reference_answers_are_read_like_predictions(task, answer, properties, value):
    from deepmolm_plugin.eval.task_kinds import reference_value

    record = {"question_id": "q", "answer": answer, "properties": properties}
    assert reference_value(task, record) == pytest.approx(value, rel=1e-12)


def test_the_properties_key_closest_to_the_task_gives_its_value(tmp_path):
    """Was: with no number in the answer, {"XLogP": 2, "log P": 1} gave task `LogP` the value
    of whichever key came first in the file (2 here: an alias matched as early as a
    spelling). Now the task's own key, then its spelling, then an alias; two keys alike with
    different values are an error."""
    for props in ({"XLogP": 2.0, "log P": 1.0}, {"log P": 1.0, "XLogP": 2.0}):
        refs = _questions(tmp_path, [{"question_id": "q", "task": "LogP", "answer": "unknown", "properties": props}])
        assert build_report([_answers(tmp_path, {"q": "1.0"})], refs)[0]["tasks"]["LogP"]["metrics"]["mae"] == 0.0
    refs = _questions(tmp_path, [{"question_id": "q", "task": "LogP", "answer": "unknown",
                                  "properties": {"logp": 1.0, "LOGP": 2.0}}])
    with pytest.raises(ReportError, match=r"`properties` keys 'logp', 'LOGP' all name this property"):
        build_report([_answers(tmp_path, {"q": "1.0"})], refs)


# --- answer lines -------------------------------------------------------------------------------------
def test_answers_carrying_another_task_or_reference_are_refused(tmp_path):
    """Was: an answer line whose metadata said task LogP, answer "1.0" was scored as the
    caption its question id has in the references, without a word."""
    refs = _questions(tmp_path, [{"question_id": 0, "task": "LogP", "answer": "The LogP is 1.0."}])
    for carried, field in (({"metadata": {"task": "ESOL"}}, "task"), ({"answer": "The LogP is 3.0."}, "answer")):
        answers = _jsonl(tmp_path / "a.jsonl", [{"question_id": 0, "text": "1.0", **carried}])
        with pytest.raises(ReportError, match=f"1 answer\\(s\\) carry another .*`?{field}`? than their references"):
            build_report([answers], refs)
    same = _jsonl(tmp_path / "a.jsonl", [{"question_id": 0, "text": "1.0", "metadata": {"task": "LogP"}}])
    assert build_report([same], refs)[0]["counts"]["answers"] == 1


@pytest.mark.parametrize("qid, shown", [(None, "null"), (True, "true"), (1.0, "1.0"), ([1], "[1]")])
def test_question_ids_must_be_strings_or_integers(tmp_path, qid, shown):
    """Was: stringified, so null was the id "None", true "True", 1.0 "1.0" (and matched a
    reference of the same type: scored under a made-up id)."""
    refs = _questions(tmp_path, [{"question_id": qid, "task": "LogP", "answer": "1.0"}])
    answers = _jsonl(tmp_path / "a.jsonl", [{"question_id": qid, "text": "1.0"}])
    with pytest.raises(ReportError, match=re.escape(f"line 1: question_id {shown} is a JSON")
                                          + ".* a string or an integer is needed"):
        build_report([answers], refs)


@pytest.mark.parametrize("field, value, message", [
    ("id", 1.0, r"record #0: its id becomes the question_id: question_id 1.0 is a JSON number"),
    ("id", True, r"record #0: its id becomes the question_id: question_id true is a JSON boolean"),
    ("id", {"a": 1}, r"question_id \{\"a\": 1\} is a JSON object"),
    ("task", 0, r"record 'r': task 0 is not a string"),  # was written as "unspecified"
    ("task", False, r"record 'r': task false is not a string"),
    ("task", "  ", r"record 'r': task '  ' is blank"),  # was written, and refused by the report after the model ran
])
def test_question_files_are_built_only_with_ids_and_tasks_the_report_reads(field, value, message):
    """Was: written as is (a float, boolean or object id; a falsy task became "unspecified"),
    and the report refused the question file only when the answers were scored."""
    record = {"id": "r", "conversations": [{"from": "human", "value": "<image>\nLogP?"},
                                           {"from": "gpt", "value": "1.0"}], field: value}
    with pytest.raises(eval_questions.QuestionFileError, match=message):
        eval_questions.record_to_question(record, 0, Path("."))


@pytest.mark.parametrize("extra, answer, message", [
    ({"task": "LogP", "properties": {"LogP": 9.0}}, "The LogP is 2.0.",
     r"question 'r' \(LogP\): the reference answer states 2"),
    ({"task": "caption", "metric": "nope"}, "An alcohol.", r"metric 'nope' is not one of"),
    ({"task": "iupac", "metric": "iupac"}, "The IUPAC name is .", r"holds no IUPAC name"),
])
def test_question_files_are_refused_where_the_report_would_refuse_them(extra, answer, message):
    """Was: written ("1 questions -> ..."), the model asked, and the report then refused the
    question file."""
    record = {"id": "r", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                           {"from": "gpt", "value": answer}], **extra}
    with pytest.raises(eval_questions.QuestionFileError, match=r"the report would refuse it: .*" + message):
        eval_questions.convert([record], Path("."))
    ok = dict(record, conversations=[record["conversations"][0], {"from": "gpt", "value": "The LogP is 9.0."}])
    if extra.get("task") == "LogP":
        assert eval_questions.convert([ok], Path("."))[0]["answer"] == "The LogP is 9.0."


def test_answers_holding_special_tokens_are_refused(tmp_path):
    """Was: scored as text: "CCO<|im_end|>" was an invalid SMILES, a caption lost n-grams."""
    refs = _questions(tmp_path, [{"question_id": i, "task": "smiles", "answer": "CCO"} for i in range(2)])
    answers = _answers(tmp_path, {0: "CCO<|im_end|>", 1: "CCO"})
    with pytest.raises(ReportError, match=r"1 answer\(s\) hold chat special tokens such as '<\|im_end\|>'.*: '0'"):
        build_report([answers], refs)


def test_joined_files_and_lone_carriage_returns_are_named(tmp_path):
    """Was: "Unexpected UTF-8 BOM ... line 1 column 1" on line 2 of two files joined with
    cat, and "Extra data" for a file with lone \\r line ends."""
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(b'{"question_id": 1, "text": "x"}\r\n\xef\xbb\xbf{"question_id": 2, "text": "y"}\r\n')
    with pytest.raises(ReportError, match=r"line 2: .*a byte-order mark starts this line"):
        build_report([joined])
    old_mac = tmp_path / "mac.jsonl"
    old_mac.write_bytes(b'{"question_id": 1, "text": "x"}\r{"question_id": 2, "text": "y"}\r')
    with pytest.raises(ReportError, match=r"line 1: .*lone carriage return"):
        build_report([old_mac])


def test_a_turn_of_blanks_is_converted_in_linear_time():
    """Was: 8 s for a human turn of 40,000 blanks (a regex with \\s* on both sides of
    <image> rescanned the run from every position), about a minute at 10^5."""
    record = {"id": "r", "conversations": [{"from": "human", "value": "<image>What" + " \t\n" * 20_000 + "?"},
                                           {"from": "gpt", "value": "An alcohol."}]}
    question = within_linear_time(lambda: eval_questions.record_to_question(record, 0, Path(".")),
                                  record["conversations"][0]["value"])
    assert question["text"] == "What" + " \t\n" * 20_000 + "?"


@pytest.mark.parametrize("turn", ["Look at <image> and name it.", "Name it. <image>\n\nPlease.",
                                  "<image>\nWhat is it?", "What is it?\n<image>"])
def test_eval_asks_the_words_training_saw(turn):
    """Was: eval.questions joined the pieces around a mid-text <image> with one space, while
    the host's training removed the token and kept both spaces: other prompt tokens, no message."""
    from types import SimpleNamespace

    import deepmolm_plugin

    deepmolm_plugin.register()
    from llava.train.train import preprocess_multimodal

    record = {"id": "r", "conversations": [{"from": "human", "value": turn}, {"from": "gpt", "value": "Ethanol."}]}
    [[trained, _]] = preprocess_multimodal([[dict(t) for t in record["conversations"]]],
                                           SimpleNamespace(is_multimodal=True, mm_use_im_start_end=False))
    asked = eval_questions.record_to_question(record, 0, Path("."))["text"]
    assert trained["value"] == "<image>\n" + asked  # model_vqa puts the token before the question


def test_half_a_surrogate_pair_is_named_where_it_is_read(tmp_path, capsys):
    """Was: a JSON "\\ud83d" alone (text cut inside an emoji) was scored, then the report
    stopped with a UnicodeEncodeError traceback while writing; eval.questions and training
    records the same ("surrogates not allowed")."""
    from deepmolm_plugin import usage

    refs = _questions(tmp_path, [{"question_id": i, "task": "caption", "answer": "An alcohol."} for i in range(2)])
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": 0, "text": "An alcohol."}\n{"question_id": 1, "text": "An \\ud83d"}\n')
    with pytest.raises(ReportError, match=r"answers.jsonl, line 2: a string holds '\\ud83d', half of a UTF-16 "
                                          r"surrogate pair .*'An \\ud83d'"):
        build_report([answers], refs)
    answers.write_text('{"question_id": 0, "text": "An alcohol \\ud83d\\ude00"}\n'  # a whole pair is an emoji
                       '{"question_id": 1, "text": "An alcohol."}\n')
    build_report([answers], refs)
    record = {"id": "r", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                           {"from": "gpt", "value": "An \ud83d"}]}
    data = tmp_path / "split.json"
    data.write_text(json.dumps([{**record, "id": "ok"}, record]).replace('An \\ud83d"}]}, {', 'An"}]}, {', 1))
    with pytest.raises(SystemExit):
        eval_questions.main([str(data), str(tmp_path / "q.jsonl")])
    assert "split.json: item #1: a string holds '\\ud83d'" in capsys.readouterr().err
    with pytest.raises(usage.UsageError, match=r"--data_path .*split.json: item #1: a string holds"):
        usage.json_list_file(data, "--data_path")


# --- files ----------------------------------------------------------------------------------------
def test_report_inputs_that_are_its_outputs_are_refused(tmp_path, capsys):
    """Was: `report results/*.jsonl --out results` read the earlier report's
    per_question.jsonl as an answer file and failed with "has no `text`"."""
    refs = _questions(tmp_path, [{"question_id": 0, "task": "LogP", "answer": "1.0"}])
    answers = _answers(tmp_path, {0: "1.0"})
    (tmp_path / "per_question.jsonl").write_text("{}\n")
    assert _report([answers, tmp_path / "per_question.jsonl", "--references", refs, "--out", tmp_path]) == "2"
    assert "per_question.jsonl: this report's own output in --out" in capsys.readouterr().err


def test_questions_out_that_is_the_data_is_refused(tmp_path, capsys):
    """Was: `eval.questions test.json test.json` replaced the prepared split by its questions."""
    record = {"id": "r", "conversations": [{"from": "human", "value": "<image>\nLogP?"},
                                           {"from": "gpt", "value": "1.0"}]}
    data = tmp_path / "split.json"
    data.write_text(json.dumps([record]))
    with pytest.raises(SystemExit):
        eval_questions.main([str(data), str(data)])
    assert "is the DATA file" in capsys.readouterr().err
    assert json.loads(data.read_text()) == [record]


def test_baseline_questions_inside_its_out_are_refused(tmp_path):
    """Was: score_answers(..., questions=out/questions.jsonl) replaced the question file by
    the subset it scored (the other tasks' questions were lost)."""
    refs = _questions(tmp_path, [{"question_id": i, "task": "LogP", "answer": "1.0"} for i in range(2)])
    before = refs.read_text()
    with pytest.raises(baselines.BaselineError, match="is one of the files written in"):
        baselines.score_answers({"0": "1.0"}, refs, tmp_path)
    assert refs.read_text() == before


def test_a_failed_rerun_says_the_folder_holds_an_earlier_report(tmp_path):
    """Was: the error alone, beside a metrics.json of the earlier run that looked current."""
    refs = _questions(tmp_path, [{"question_id": 0, "task": "LogP", "answer": "1.0"}])
    out = tmp_path / "out"
    report.main([str(_answers(tmp_path, {0: "1.0"})), "--references", str(refs), "--out", str(out), "--no-plots"])
    before = (out / "metrics.json").read_text()
    message = _report([_answers(tmp_path, {1: "1.0"}, "other.jsonl"), "--references", refs, "--out", out,
                       "--no-plots"])
    assert "no answer" in message and f"the metrics.json in {out} is an earlier run's" in message
    assert (out / "metrics.json").read_text() == before
