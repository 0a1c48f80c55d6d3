"""Evaluation end to end, tenth sweep (`eval.model_vqa`, `eval.report`, `eval.questions`); was:

1. an answer that --max-new-tokens cut off mid-number ("The molecular weight is 12" of 1234.5,
   Qwen2 writing a digit per token) was scored as a whole, valid value, and nothing said that
   generation had stopped at the cap;
3. chunks run with another --image-folder (other pictures under the same file names) merged
   into one report without a word: the folders were no setting, `asked.image` digests the name;
4. reference answers stating a decimal comma, a range or a bound were written by
   eval.questions without a word, and the report then left them out as "no number in the
   reference answer";
5. a reference value outside its property's range was scored into MAE/RMSE and only counted
   in metrics.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deepmolm_plugin.eval import questions as eval_questions, report
from deepmolm_plugin.eval.merge import ReportError
from deepmolm_plugin.eval.scoring import build_report
from test_host_cli_eval import FUSION_CONFIG, _stub_args, _stub_host, _write_questions


def _files(tmp_path, rows, name="run"):
    """(answers, references) of [(question_id, task, reference answer, prediction, answer metadata)]."""
    refs, answers = tmp_path / f"{name}_q.jsonl", tmp_path / f"{name}_a.jsonl"
    refs.write_text("".join(json.dumps({"question_id": q, "task": t, "answer": a, "text": "?"}) + "\n"
                            for q, t, a, _, _ in rows))
    answers.write_text("".join(json.dumps({"question_id": q, "text": p, **({"metadata": m} if m is not None else {})})
                               + "\n" for q, _, _, p, m in rows))
    return answers, refs


def _rows(out: Path) -> dict:
    return {r["question_id"]: r for r in map(json.loads, (out / "per_question.jsonl").read_text().splitlines())}


# --- 1. generation stopped at --max-new-tokens ------------------------------------------------------
def test_generate_records_whether_it_stopped_at_the_cap():
    from types import SimpleNamespace

    from deepmolm_plugin.eval.model_vqa import QuestionInputs

    state = QuestionInputs([], uses_molecules=False)
    state.model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[9]))
    state.tokenizer = SimpleNamespace(eos_token_id=8, decode=lambda ids: "\n" if ids == [7] else "x")
    four, cut = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 3, 4]])
    assert state.stopped_at_cap(four, cut, 4) is True  # 4 new tokens of 4, no end token
    assert state.stopped_at_cap(torch.tensor([[1, 2, 3, 9]]), torch.tensor([[1, 2, 3, 9]]), 4) is False  # the model's end
    assert state.stopped_at_cap(torch.tensor([[1, 2, 8]]), torch.tensor([[1, 2, 8]]), 3) is False  # the tokenizer's
    assert state.stopped_at_cap(torch.tensor([[1, 2]]), torch.tensor([[1, 2]]), 4) is False  # ended early
    assert state.stopped_at_cap(four, cut, None) is None  # cap not known
    state.stop = "\n"  # a PLAIN model's answer ends at its separator
    assert state.stopped_at_cap(torch.tensor([[1, 7, 3]]), torch.tensor([[1, 7]]), 3) is False
    assert state.stopped_at_cap(torch.tensor([[1, 2, 7]]), torch.tensor([[1, 2, 7]]), 3) is False
    assert state.stopped_at_cap(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 2, 3]]), 3) is True


def test_each_answer_line_says_whether_generation_stopped_at_the_cap(tmp_path, monkeypatch):
    from deepmolm_plugin.eval import model_vqa

    # q0 runs to the cap of 3 tokens, q1 ends after 1
    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5, 6, 7]] if call == 0
                                                                                      else [[5]]))
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": f"q{i}", "smiles": s, "text": "What?"}
                                 for i, s in enumerate(["CCO", "CCN"])])
    model_vqa.run_host_eval(host, _stub_args(questions, tmp_path / "a.jsonl", "--max-new-tokens", "3"), FUSION_CONFIG)
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [line["metadata"]["capped"] for line in lines] == [True, False]
    assert [c["max_new_tokens"] for c in calls] == [3, 3]


def test_the_report_scores_a_number_cut_by_the_cap_invalid_and_says_so(tmp_path, capsys):
    ref = "The molecular weight is 179.22 g/mol."
    answers, refs = _files(tmp_path, [
        ("cut", "Molecular Weight", ref, "The molecular weight is 12", {"capped": True}),
        ("point", "Molecular Weight", ref, "The molecular weight is 12.", {"capped": True}),
        ("whole", "Molecular Weight", ref, "The molecular weight is 179.2 g/mol and", {"capped": True}),
        ("ended", "Molecular Weight", ref, "The molecular weight is 179", {"capped": False}),
        ("old", "Molecular Weight", ref, "The molecular weight is 180", None),  # a file before the field
        ("t1", "caption", "An alcohol.", "An alcohol with", {"capped": True}),
    ])
    out = tmp_path / "out"
    report.main([str(answers), "--references", str(refs), "--out", str(out), "--no-plots"])
    err = capsys.readouterr().err
    rows = _rows(out)
    assert [rows[q]["valid"] for q in ("cut", "point", "whole", "ended", "old")] == [False, False, True, True, True]
    assert rows["cut"]["value_may_be_cut"] and rows["cut"]["capped"] is True and rows["old"]["capped"] is None
    assert not rows["whole"]["value_may_be_cut"] and rows["t1"]["capped"] is True
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]
    mw = metrics["Molecular Weight"]["metrics"]
    assert (mw["n_valid"], mw["n_capped"], mw["n_cut_values"]) == (3, 3, 2)
    assert mw["mae"] == pytest.approx((0.02 + 0.22 + 0.78) / 3)
    assert metrics["caption"]["metrics"]["n_capped"] == 1
    table = (out / "metrics.md").read_text()
    assert "Answers whose generation stopped at --max-new-tokens" in table and "Molecular Weight: 3" in table
    assert "scored invalid: it may be cut short" in table
    assert "note: 4 answer(s) stopped at --max-new-tokens" in err and "'cut', 'point', 'whole', 't1'" in err
    assert "note: 2 answer(s) are property answers stopped at --max-new-tokens" in err


# --- 3. chunks run with other pictures ----------------------------------------------------------------
def _pictures(folder: Path, colour: str) -> None:
    folder.mkdir(parents=True)
    for i in range(4):
        _picture(colour).save(folder / f"m{i}.png")


def _picture(colour: str):
    """An 8 x 8 picture on `colour` with one grey pixel: it shows something (one colour
    throughout is refused), and pictures on other colours still differ."""
    from PIL import Image

    picture = Image.new("RGB", (8, 8), colour)
    picture.putpixel((0, 0), (128, 128, 128))
    return picture


def _run_chunk(monkeypatch, questions, answers, images, idx, *extra):
    from deepmolm_plugin.eval import model_vqa

    host, calls = _stub_host(monkeypatch, lambda call, inputs, **kwargs: torch.tensor([[5]]))
    model_vqa.run_host_eval(host, _stub_args(questions, answers, "--image-folder", str(images), "--num-chunks", "2",
                                             "--chunk-idx", str(idx), *extra), FUSION_CONFIG)
    return len(calls)


def test_chunks_that_saw_other_pictures_under_the_same_names_are_refused(tmp_path, monkeypatch):
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": f"q{i}", "image": f"m{i}.png", "smiles": "CCO", "text": "What?",
                                  "task": "caption", "answer": "an answer"} for i in range(4)])
    _pictures(tmp_path / "a", "white")
    _pictures(tmp_path / "b", "black")  # the same names, other pictures
    assert _run_chunk(monkeypatch, questions, tmp_path / "0.jsonl", tmp_path / "a", 0) == 2
    _run_chunk(monkeypatch, questions, tmp_path / "1.jsonl", tmp_path / "b", 1)
    # --resume keeps no answer made from another picture (the question's digest holds its bytes)
    assert _run_chunk(monkeypatch, questions, tmp_path / "x.jsonl", tmp_path / "b", 0, "--resume", "--resume-from",
                      str(tmp_path / "0.jsonl")) == 2
    with pytest.raises(ReportError, match="different settings.*image_files.*other pictures or structure files.*"
                                          "--image-folder"):
        build_report([tmp_path / "0.jsonl", tmp_path / "1.jsonl"], questions)
    # the same pictures moved to another folder are the same data
    (tmp_path / "a").rename(tmp_path / "moved")
    _run_chunk(monkeypatch, questions, tmp_path / "1.jsonl", tmp_path / "moved", 1)
    build_report([tmp_path / "0.jsonl", tmp_path / "1.jsonl"], questions)


def test_a_resume_after_one_picture_changed_asks_that_question_alone_and_reports(tmp_path, monkeypatch):
    # review of the image-folder check: with the data files in the --resume digest, one changed picture
    # re-asked every question of the run; the kept answers now carry this run's data digests
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": f"q{i}", "image": f"m{i}.png", "smiles": "CCO", "text": "What?",
                                  "task": "caption", "answer": "an answer"} for i in range(4)])
    _pictures(tmp_path / "a", "white")
    assert _run_chunk(monkeypatch, questions, tmp_path / "0.jsonl", tmp_path / "a", 0) == 2
    assert _run_chunk(monkeypatch, questions, tmp_path / "1.jsonl", tmp_path / "a", 1) == 2
    _picture("black").save(tmp_path / "a" / "m0.png")  # q0 is in chunk 0
    assert _run_chunk(monkeypatch, questions, tmp_path / "0.jsonl", tmp_path / "a", 0, "--resume") == 1
    assert _run_chunk(monkeypatch, questions, tmp_path / "1.jsonl", tmp_path / "a", 1, "--resume") == 0
    build_report([tmp_path / "0.jsonl", tmp_path / "1.jsonl"], questions)  # one run's answers, as the data are now


def test_structure_files_are_part_of_the_run_settings(tmp_path):
    from types import SimpleNamespace

    from deepmolm_plugin.eval.model_vqa import data_files

    lines = [{"question_id": "q", "structure": "m.sdf", "text": "?"}]
    for name, text in (("a", "one"), ("b", "two"), ("c", "one")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "m.sdf").write_text(text)
    digests = [data_files(lines, SimpleNamespace(image_folder="", structure_folder=str(tmp_path / name)))
               for name in "abc"]
    assert digests[0]["structure_files"] != digests[1]["structure_files"]  # other bytes, the same name
    assert digests[0] == digests[2] and digests[0]["image_files"] is None  # moved: the same


# --- 4. reference answers the report cannot read ------------------------------------------------------
def _record(rid, task, answer):
    return {"id": rid, "task": task, "smiles": "CCO",
            "conversations": [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": answer}]}


def test_questions_refuse_references_stating_a_decimal_comma_a_range_or_a_bound(capsys):
    records = [_record("r0", "LogP", "The LogP is 1,7."), _record("r1", "LogP", "The LogP is 1.5-2.0."),
               _record("r2", "LogP", "The LogP is less than 5."), _record("r3", "LogP", "The LogP is 2.0.")]
    with pytest.raises(eval_questions.QuestionFileError) as error:
        eval_questions.convert(records, Path("."))
    message = str(error.value)
    assert "\n" not in message and message.startswith("3 record(s) state a reference value the report cannot read")
    assert "record 'r0' (LogP): " in message and "a decimal comma or a list ('1,7.')" in message and "with a point" in message
    assert "record 'r1' (LogP): " in message and "states a range" in message
    assert "record 'r2' (LogP): " in message and "states a bound" in message
    # with a `properties` value the reference is read from there: accepted
    fixed = [dict(r, properties={"LogP": 1.7}) for r in records[:1]] + records[3:]
    assert len(eval_questions.convert(fixed, Path("."))) == 2
    # no number at all: accepted (the report leaves it out), and named now
    assert len(eval_questions.convert([_record("n0", "LogP", "not measured"), records[3]], Path("."))) == 2
    assert "warning: record 'n0' (LogP): without a reference value (no number in the reference answer" in \
        capsys.readouterr().err


def test_the_report_says_what_the_reference_answer_states_instead_of_one_value(tmp_path, capsys):
    answers, refs = _files(tmp_path, [
        ("q0", "LogP", "The LogP is between 1.5 and 2.0.", "1.7", None),
        ("q1", "LogP", "The LogP is 1.5-2.0.", "1.7", None),
        ("q2", "LogP", "The LogP is less than 5.", "1.7", None),
        ("q3", "LogP", "The LogP is 1,7.", "1.7", None),
        ("q4", "LogP", "not measured", "1.7", None),
        ("q5", "LogP", "The LogP is 2.0.", "1.7", None)])
    out = tmp_path / "out"
    report.main([str(answers), "--references", str(refs), "--out", str(out), "--no-plots"])
    err = capsys.readouterr().err
    rows = _rows(out)
    assert "states a range ('between 1.5 and 2.0.'), not one value: 'The LogP is between 1.5 and 2.0.'" in rows["q0"]["reason"]
    assert "states a range" in rows["q1"]["reason"] and "states a bound" in rows["q2"]["reason"]
    assert "decimal comma or a list ('1,7.')" in rows["q3"]["reason"]
    assert rows["q4"]["reason"] == "without a reference value (no number in the reference answer, no properties entry)"
    assert "warning: LogP: 2 question(s) without a reference value (the reference answer states a range" in err
    assert "left out: 'q0', 'q1'" in err and "decimal comma" in err and "states a bound" in err
    warnings = [line for line in err.splitlines() if line.startswith("warning: LogP:")]
    assert len(warnings) == 4  # one per reason
    assert [line for line in warnings if "no number in the reference answer" in line] == [
        "warning: LogP: 1 question(s) without a reference value (no number in the reference answer, no properties "
        "entry), left out: 'q4'"]


def test_a_task_of_unreadable_references_says_what_they_state(tmp_path):
    answers, refs = _files(tmp_path, [("q0", "LogP", "The LogP is 1,7.", "1.7", None),
                                      ("q1", "LogP", "The LogP is 0,5.", "1.7", None)])
    with pytest.raises(ReportError, match=r"every question has no reference value \(the reference answers state "
                                          r"a decimal comma or a list \(2\) instead of one value"):
        build_report([answers], refs)


# --- 5. reference values outside the property's range -------------------------------------------------
def test_a_reference_outside_the_range_is_named_under_the_table_and_on_stderr(tmp_path, capsys):
    answers, refs = _files(tmp_path, [("q0", "HOMO", "The HOMO is -5.2 eV.", "-5.0 eV", None),
                                      ("q6", "HOMO", "The HOMO is 60 eV.", "-5.0 eV", None)])
    out = tmp_path / "out"
    report.main([str(answers), "--references", str(refs), "--out", str(out), "--no-plots"])
    err = capsys.readouterr().err
    line = "HOMO: 1 reference value(s) outside the property's range [-50, 10] eV, scored: 'q6' (60 eV); check the " \
           "ground truth"
    assert line in (out / "metrics.md").read_text() and f"note: {line}" in err
    assert _rows(out)["q6"]["reference_out_of_range"] is True and _rows(out)["q0"]["reference_out_of_range"] is False
    homo = json.loads((out / "metrics.json").read_text())["tasks"]["HOMO"]
    assert homo["references_out_of_range"] == [{"question_id": "q6", "reference_value": 60.0}]


# --- review of this sweep: chunks of one run across the data-file digests; references refused too
# widely; a capped answer cut inside its unit -----------------------------------------------------------
def _chunk(path: Path, qids, **settings):
    shown = {"model_path": "/m", "conv_mode": "qwen2", "temperature": 0, "max_new_tokens": 64, **settings}
    path.write_text("".join(json.dumps({"question_id": q, "text": "1", "model_id": "m", "metadata": {
        "settings": shown, "settings_digest": "S"}}) + "\n" for q in qids))
    return path


def test_chunks_answered_before_and_after_the_data_file_digests_merge_as_one_run(tmp_path):
    from deepmolm_plugin.eval.merge import MergeError, merge_answers

    old = _chunk(tmp_path / "0.jsonl", ["q0"])  # answered before image_files / structure_files were recorded
    new = _chunk(tmp_path / "1.jsonl", ["q1"], image_files="0123456789abcdef01234567", structure_files=None)
    again = _chunk(tmp_path / "2.jsonl", ["q2"], image_files="0123456789abcdef01234567", structure_files="ab" * 12)
    merged, _ = merge_answers([old, new, again])
    assert sorted(merged) == ["q0", "q1", "q2"]
    # two digests that were both recorded and differ: other pictures, refused as before (also with an
    # older chunk listed first, which is compared with neither)
    other = _chunk(tmp_path / "3.jsonl", ["q3"], image_files="ffffffffffffffffffffffff", structure_files=None)
    with pytest.raises(MergeError, match=r"different settings \(.*image_files=.*other pictures or structure files"):
        merge_answers([old, new, other])
    # a real difference beside an older chunk: refused, naming it
    hot = _chunk(tmp_path / "4.jsonl", ["q4"], image_files="0123456789abcdef01234567", temperature=0.7)
    with pytest.raises(MergeError, match=r"different settings \(.*temperature=0\b.*temperature=0\.7"):
        merge_answers([old, hot])


def test_questions_refuse_only_a_value_meant_and_warn_for_the_other_unreadable_references(capsys):
    # changed on purpose (review S, finding 1): a fraction, a product and digits split by a space
    # warned here; they are values written so that the report cannot read them, and now refuse
    good = _record("g", "LogP", "The LogP is 2.0.")
    warned = [_record("w0", "LogP", "Not measured."), _record("w3", "Molecular Weight", "The molecular weight is 46.07 g/mol.")]
    assert len(eval_questions.convert([good, *warned], Path("."))) == 3
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("warning: record 'w0' ("))
    assert "no number in the reference answer" in line and line.endswith("the report will leave it out")
    assert "'w3'" not in err
    for answer, finding in (("The LogP is 1,7.", "a decimal comma"), ("The LogP is 1.5-2.0.", "a range"),
                            ("The LogP is less than 5.", "a bound"), ("The LogP is 1.5 or 2.0.", "a choice"),
                            ("The LogP is 3/4.", "a fraction"), ("The LogP is 2 × 3.", "a product"),
                            ("The LogP is 1 234.", "digits split by a space")):
        with pytest.raises(eval_questions.QuestionFileError, match=rf"^1 record\(s\) state a reference value the "
                                                                  rf"report cannot read: record 'r' .*{finding}"):
            eval_questions.convert([good, *warned, _record("r", "LogP", answer)], Path("."))


@pytest.mark.parametrize("task, text, cut", [
    ("HOMO", "The HOMO energy is -0.19 Hart", True), ("HOMO", "The HOMO energy is -0.19 H", True),
    ("HOMO", "The HOMO energy is -0.38 Rydb", True), ("Molecular Weight", "The molecular weight is 0.18 kilo", True),
    ("TPSA", "The TPSA is 0.202 nano", True), ("TPSA", "The TPSA is 20.2 Å^", True),
    ("HOMO", "The HOMO energy is -3.1 kcal/", True), ("HOMO", "HOMO: -0.19 (in Hart", True),
    ("HOMO", "The HOMO energy is -0.1", True), ("HOMO", "The HOMO energy is 1.5 ×", True),
    ("Molecular Weight", "The molecular weight is 180.16 g mol-1", False),
    ("Molecular Weight", "The molecular weight is 180.16 g·mol⁻¹", False),
    ("TPSA", "The TPSA is 20.2 Å^2", False), ("HOMO", "The HOMO energy is -0.19 Hartree, which", False),
    ("Molecular Weight", "The molecular weight is 179.2 g/mol and", False),
    ("HOMO", "The HOMO energy is -5.2 eV. The LUMO is", False),
    ("LogP", "The LogP is 1.5 lo", False),  # no unit converted: a cut one changes nothing
])
def test_a_capped_answer_may_be_cut_inside_its_unit_and_a_whole_unit_is_not_cut(task, text, cut):
    from deepmolm_plugin.eval.metrics.numbers import property_spec
    from deepmolm_plugin.eval.scoring import value_may_be_cut

    assert value_may_be_cut(text, property_spec(task)) is cut


def test_the_report_scores_an_answer_cut_inside_its_unit_invalid(tmp_path):
    answers, refs = _files(tmp_path, [
        ("hart", "HOMO", "The HOMO energy is -5.2 eV.", "The HOMO energy is -0.19 Hart", {"capped": True}),
        ("ended", "HOMO", "The HOMO energy is -5.2 eV.", "The HOMO energy is -5.1 eV", {"capped": False}),
        ("mw", "Molecular Weight", "The molecular weight is 180.16 g/mol.", "The molecular weight is 180.16 g mol-1",
         {"capped": True})])
    out = tmp_path / "out"
    report.main([str(answers), "--references", str(refs), "--out", str(out), "--no-plots"])
    rows = _rows(out)
    assert rows["hart"]["value_may_be_cut"] is True and rows["hart"]["valid"] is False
    assert rows["ended"]["valid"] is True and rows["mw"]["valid"] is True and rows["mw"]["value_may_be_cut"] is False
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]
    assert metrics["HOMO"]["metrics"]["n_cut_values"] == 1 and metrics["Molecular Weight"]["metrics"]["n_cut_values"] == 0


def test_a_missing_relative_image_names_the_folder_it_was_joined_with(tmp_path):
    # sweep P: eval.questions writes the prepared data's relative image paths; model_vqa without
    # --image-folder failed every question "no such file", naming no folder
    from types import SimpleNamespace

    from deepmolm_plugin.eval.model_vqa import QuestionError, check_image

    with pytest.raises(QuestionError, match=r"no such file \(a relative path, read from the current folder: no "
                                            r"--image-folder was given; give the folder"):
        check_image("q", str(tmp_path / "images" / "m.png"), SimpleNamespace(), "")
    with pytest.raises(QuestionError, match=rf"no such file \(a relative path, joined with --image-folder {tmp_path}\)"):
        check_image("q", str(tmp_path / "images" / "m.png"), SimpleNamespace(), str(tmp_path))
    with pytest.raises(QuestionError, match=r"no such file$"):  # an absolute path: nothing was joined
        check_image("q", str(tmp_path / "m.png"), SimpleNamespace())


# review S, finding 1: only a reference answer that states no number at all warns; a value meant
# but unreadable (digits split by a space, a malformed number, digits grouped other than by
# three, a sign not its own) refused the question file only for four findings matched by their
# English words, and the report then left the others out after the run.
@pytest.mark.parametrize("answer, finding", [
    ("The molecular weight is 12 345.6 g/mol.", "digits split by a space ('12 345.6"),
    ("The molecular weight is 1.234.5 g/mol.", "a malformed number ('1.234.5"),
    ("The molecular weight is 1'23 g/mol.", 'digits grouped other than by three ("1\'23'),
    ("The molecular weight is --180 g/mol.", "a sign before the number that is not its own"),
    ("The molecular weight is 2^7 g/mol.", "a power of another base than 10"),
])
def test_a_reference_value_meant_but_unreadable_refuses_the_question_file(answer, finding):
    good = _record("g", "Molecular Weight", "The molecular weight is 180.16 g/mol.")
    with pytest.raises(eval_questions.QuestionFileError,
                       match=r"^1 record\(s\) state a reference value the report cannot read: record 'r' "
                             r"\(Molecular Weight\): .*" + __import__("re").escape(finding)):
        eval_questions.convert([good, _record("r", "Molecular Weight", answer)], Path("."))


def test_no_value_reason_gives_the_parsers_code_not_its_words():
    from deepmolm_plugin.eval.metrics.numbers import NO_VALUE_STATED, NoValue
    from deepmolm_plugin.eval.task_kinds import no_value_reason

    assert no_value_reason("not measured") == (NoValue.NO_NUMBER, "no number in the reference answer")
    what, why = no_value_reason("The LogP is 1,7.")
    assert what is NoValue.DECIMAL_COMMA and why.startswith("the reference answer states a decimal comma or a list")
    assert no_value_reason("The molecular weight is 12 345.6 g/mol.")[0] is NoValue.SPACE_GROUP
    assert NO_VALUE_STATED == {NoValue.NO_NUMBER}


# review S, finding 2: the text after the number started inside it where a shorter prefix read the
# same value ('-5.0' ends after '-5': '.0 Hart'), so a unit cut by the cap was not flagged and
# '-5.0 Hart' was scored -5.0 eV.
@pytest.mark.parametrize("task, text", [
    ("HOMO", "The HOMO energy is -5.0 Hart"), ("HOMO", "The HOMO energy is -0.190 Hart"),
    ("Molecular Weight", "The molecular weight is 0.180 kilo"), ("HOMO", "The HOMO energy is -5.00 Ryd"),
    ("HOMO", "The HOMO energy is -5.0 ± 0.10 Hart"),
])
def test_a_unit_cut_after_a_number_with_trailing_zeros_is_flagged(task, text):
    from deepmolm_plugin.eval.metrics.numbers import property_spec
    from deepmolm_plugin.eval.scoring import value_may_be_cut

    assert value_may_be_cut(text, property_spec(task)) is True
    assert value_may_be_cut(text.rsplit(" ", 1)[0] + " eV.", property_spec(task)) is False
