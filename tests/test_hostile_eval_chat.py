"""Hostile input to evaluation and chat, second sweep: answers that silently pair with the
wrong references, references no answer can match, number formats read as another value,
question files model_vqa would overwrite or mis-key, and Ctrl-C in the chat CLI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from deepmolm_plugin.eval import model_vqa, questions as eval_questions, report
from deepmolm_plugin.eval.merge import MergeError, ReportError
from deepmolm_plugin.eval.metrics.numbers import parse_number
from deepmolm_plugin.eval.scoring import build_report


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _refs(tmp_path, rows):
    return _jsonl(tmp_path / "questions.jsonl", rows)


def _answer(qid, text, prompt="What is the LogP?"):
    return {"question_id": qid, "prompt": prompt, "text": text, "answer_id": "x", "model_id": "m", "metadata": {}}


# --- answers to another question file ------------------------------------------------------------
def test_answers_asked_other_questions_are_refused(tmp_path):
    """Two splits with numbered ids: the ids matched, so the other split's answers were scored."""
    refs = _refs(tmp_path, [{"question_id": i, "task": "LogP", "answer": f"The LogP is {i}.",
                             "text": "What is the LogP?"} for i in range(3)])
    ours = _jsonl(tmp_path / "ours.jsonl", [_answer(i, "1.0") for i in range(3)])
    report_, _ = build_report([ours], refs)
    assert report_["tasks"]["LogP"]["n"] == 3  # the same questions: scored
    other = _jsonl(tmp_path / "other.jsonl", [_answer(0, "1.0")] + [
        _answer(i, "1.0", prompt="What is the molecular weight?") for i in (1, 2)])
    with pytest.raises(SystemExit) as exit:
        report.main([str(other), "--references", str(refs), "--out", str(tmp_path / "o"), "--no-plots"])
    message = str(exit.value.code)
    assert "2 answer(s) were asked another question than the references hold" in message
    assert "'1', '2'" in message and "'What is the molecular weight?'" in message
    assert not (tmp_path / "o" / "metrics.json").exists()
    # Answer lines without `prompt` (other producers) or references without `text` are not compared.
    bare = _jsonl(tmp_path / "bare.jsonl", [{"question_id": i, "text": "1.0"} for i in range(3)])
    assert build_report([bare], refs)[0]["counts"]["answers"] == 3


def test_answers_about_other_molecules_under_the_same_prompt_are_refused(tmp_path):
    """was: two splits numbered alike, with one fixed prompt ("Describe the input molecule.")
    for every record: the other split's answers were scored, exit 0."""
    from deepmolm_plugin.eval.resume import asked_digests

    def question(i, smiles):
        return {"question_id": i, "task": "caption", "text": "Describe it.", "smiles": smiles, "answer": smiles}

    asked = [question(0, "CCO"), question(1, "c1ccccc1")]
    answers = [dict(_answer(q["question_id"], "A molecule.", prompt="Describe it."),
                    metadata={"asked": asked_digests(q)}) for q in asked]
    ours = _jsonl(tmp_path / "ours.jsonl", answers)
    assert build_report([ours], _refs(tmp_path, asked))[0]["counts"]["answers"] == 2  # its own questions
    fewer = [{k: v for k, v in q.items() if k != "smiles"} for q in asked]  # references without the molecule
    assert build_report([ours], _jsonl(tmp_path / "fewer.jsonl", fewer))[0]["counts"]["answers"] == 2
    other = _jsonl(tmp_path / "other.jsonl", [question(0, "CCO"), question(1, "CCCC")])
    with pytest.raises(MergeError, match=r"1 answer\(s\) were asked about another molecule or image than their "
                                         r"references hold \(answers to another question file\?\): '1'; first: "
                                         r"question '1', whose smiles differ"):
        build_report([ours], other)


def test_a_tokenizer_folder_without_a_tokenizer_is_one_line(tmp_path, capsys):
    # was: transformers' "Couldn't instantiate the backend tokenizer" traceback
    refs = _refs(tmp_path, [{"question_id": 0, "task": "caption", "answer": "Ethanol.", "text": "What?"}])
    ours = _jsonl(tmp_path / "ours.jsonl", [_answer(0, "Ethanol.", prompt="What?")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit:
        report.main([str(ours), "--references", str(refs), "--out", str(tmp_path / "o"), "--no-plots",
                     "--tokenizer", f"hf:{tmp_path / 'empty'}"])
    assert exit.value.code == 2
    assert "--tokenizer hf:" in capsys.readouterr().err and not (tmp_path / "o" / "metrics.json").exists()


def test_a_blank_or_boolean_task_and_a_boolean_reference_value_are_refused(tmp_path):
    # was: `true` scored as a text task "True", "" merged with the questions without a task,
    # and properties {"LogP": true} the reference value 1.0
    for task in ("", True):
        refs = _refs(tmp_path, [{"question_id": 0, "task": task, "answer": "Ethanol.", "text": "What?"}])
        ours = _jsonl(tmp_path / "ours.jsonl", [_answer(0, "Ethanol.", prompt="What?")])
        with pytest.raises(ReportError, match=r"question 0: `task` is (''|True); give a task name"):
            build_report([ours], refs)
    refs = _refs(tmp_path, [{"question_id": 0, "task": "LogP", "answer": "The LogP is unknown.", "text": "What?",
                             "properties": {"LogP": True}},
                            {"question_id": 1, "task": "LogP", "answer": "The LogP is 2.0.", "text": "What?"}])
    ours = _jsonl(tmp_path / "ours.jsonl", [_answer(0, "The LogP is 1.0.", prompt="What?"),
                                            _answer(1, "The LogP is 2.0.", prompt="What?")])
    # then left out as "no reference value"; now an error, as in eval.questions and training
    with pytest.raises(ReportError, match="question 0: property 'LogP' is True, not a finite number"):
        build_report([ours], refs)


# --- references no answer can match --------------------------------------------------------------
def test_a_blank_reference_answer_is_an_error_naming_it(tmp_path):
    """A caption task with an empty reference scored every answer 0 there, without a word."""
    record = {"id": "r1", "conversations": [{"from": "human", "value": "<image>\nDescribe it."},
                                            {"from": "gpt", "value": "  \n"}]}
    with pytest.raises(eval_questions.QuestionFileError, match=r"record 'r1': the gpt turn .* is empty"):
        eval_questions.convert([record], tmp_path)
    refs = _refs(tmp_path, [{"question_id": "a", "task": "caption", "answer": "An alcohol.", "text": "?"},
                            {"question_id": "b", "task": "caption", "answer": " ", "text": "?"}])
    answers = _jsonl(tmp_path / "a.jsonl", [{"question_id": q, "text": "An alcohol."} for q in "ab"])
    with pytest.raises(SystemExit, match=r"question 'b' \(caption\): the reference `answer` is empty"):
        report.main([str(answers), "--references", str(refs), "--out", str(tmp_path / "o"), "--no-plots"])
    # A property question may still take its value from `properties`.
    refs = _refs(tmp_path, [{"question_id": "p", "task": "LogP", "answer": "", "properties": {"LogP": 1.5},
                             "text": "?"}])
    answers = _jsonl(tmp_path / "a.jsonl", [{"question_id": "p", "text": "1.0"}])
    assert build_report([answers], refs)[0]["tasks"]["LogP"]["metrics"]["mae"] == pytest.approx(0.5)


# --- numbers read as another value ---------------------------------------------------------------
@pytest.mark.parametrize("text, value", [
    ("1 234.5", None),        # read 1: a thousands group after a plain space, or two numbers
    ("12 345 g/mol", None),   # read 12
    ("1/2", None),            # read 1: a fraction
    ("4.5/5", None),          # read 4.5: a rating
    ("3 / 4", None),
    ("180 g/mol", 180.0),     # a unit after a slash is still a unit
    ("5 eV/atom", 5.0),
    ("12.5 100", 12.5),       # a decimal number is no thousands group: the first number decides
    ("-0.0 eV", 0.0),
    ("\u22122.5 kcal/mol", -2.5),
    ("1.5 \u00d7 10\u22123 M", 1.5e-3),  # read 1.5: a superscript exponent lost in copying
    ("1.5 x 10-3", 1.5e-3),
    ("2.0 \u00b7 10+4", 2.0e4),
    ("1.5 \u00d7 10", None),     # read 1.5: a product, not evaluated
    ("2 x 3", None),
    ("1.5 x 10-3.5", None),
])
def test_ambiguous_number_formats_are_invalid(text, value):
    got = parse_number(text)
    assert got == value if value is not None else got is None


# --- model_vqa -----------------------------------------------------------------------------------
def test_question_ids_are_unique_as_text(tmp_path):
    """1 and "1" were two questions to model_vqa; the report then refused the run's answers."""
    path = _jsonl(tmp_path / "q.jsonl", [{"question_id": 1, "text": "a?"}, {"question_id": "1", "text": "b?"}])
    with pytest.raises(model_vqa.EvalInputError, match="question_id '1' appears twice"):
        model_vqa.read_questions(str(path))


def test_answers_file_that_is_the_question_file_is_refused(tmp_path, capsys):
    """The host opens the answers file with "w": the question file was lost."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    lines = [{"question_id": "q0", "text": "What?", "smiles": "CCO"}]
    path = _jsonl(tmp_path / "q.jsonl", lines)
    with pytest.raises(SystemExit) as exit:
        model_vqa.main(["--model-path", str(model), "--question-file", str(path),
                        "--answers-file", str(tmp_path / "." / "q.jsonl")])
    assert exit.value.code == 2
    assert "is the --question-file" in capsys.readouterr().err
    assert [json.loads(line) for line in path.read_text().splitlines()] == lines
    os.link(path, tmp_path / "linked.jsonl")  # the same file under another name
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "renders").write_text("")  # was: a FileExistsError traceback drawing the first depiction
    for answers, message in ((tmp_path / "linked.jsonl", "is the --question-file"),
                             (tmp_path / "out" / "a.jsonl", "renders/ folder .*renders: is a file, not a folder")):
        with pytest.raises(SystemExit) as exit:
            model_vqa.main(["--model-path", str(model), "--question-file", str(path), "--answers-file", str(answers)])
        assert exit.value.code == 2
        assert re.search(message, capsys.readouterr().err)
    assert [json.loads(line) for line in path.read_text().splitlines()] == lines


def test_a_rerun_never_leaves_an_earlier_property_head_file(tmp_path):
    """A run that makes no property-head predictions (here an empty chunk) left the
    earlier run's `*.aux_properties.jsonl` beside its new answers."""
    import llava.eval.model_vqa as host

    path = _jsonl(tmp_path / "q.jsonl", [{"question_id": "q0", "text": "What?", "smiles": "CCO"}])
    answers, aux = tmp_path / "a.jsonl", tmp_path / "a.aux_properties.jsonl"
    aux.write_text(json.dumps({"question_id": "old", "aux_properties": {"LogP": 1.0}}) + "\n")
    args = model_vqa.build_parser().parse_args(["--model-path", "stub", "--question-file", str(path),
                                                "--answers-file", str(answers), "--num-chunks", "2",
                                                "--chunk-idx", "1"])
    config = SimpleNamespace(mm_projector_type="fusion", fp_bits=4096, fp_levels=4)
    model_vqa.run_host_eval(host, args, config)
    assert answers.read_text() == "" and not aux.exists()


# --- chat CLI ------------------------------------------------------------------------------------
def test_chat_cli_ctrl_c_ends_with_one_line(trained_checkpoint, tmp_path):
    """Ctrl-C printed a KeyboardInterrupt traceback through the host and torch."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "deepmolm_plugin.cli", "--model-path", str(trained_checkpoint),
                             "--smiles", "CCO", "--max-new-tokens", "4", "--temperature", "0"],
                            cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    seen, deadline = b"", time.monotonic() + 120
    while b"USER: " not in seen and time.monotonic() < deadline:  # the model is loaded: the first prompt
        chunk = os.read(proc.stdout.fileno(), 1024)
        if not chunk:
            break
        seen += chunk
    assert b"USER: " in seen, (seen, proc.stderr.read() if proc.poll() is not None else "")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err and "Traceback" not in err, err[-3000:]


def test_nan_is_refused_where_a_minimum_is_checked():
    from deepmolm_plugin import usage

    with pytest.raises(usage.UsageError, match="--temperature must be a finite number >= 0, got nan"):  # ran greedy
        usage.at_least(float("nan"), "--temperature", 0)
    with pytest.raises(usage.UsageError, match="--temperature must be a finite number >= 0, got inf"):  # sampled noise
        usage.at_least(float("inf"), "--temperature", 0)
    usage.at_least(0.0, "--temperature", 0)
    usage.at_least(None, "--temperature", 0)


def test_questions_keep_every_molecule_field_of_their_records(tmp_path):
    """The questions converter copied `smiles` and `structure` only: a 3D-MoIT record
    (`atoms` + `coordinates`) became a question with no molecule, or one whose SMILES got a
    generated conformer (other tokens than training's), and `structure_index` was dropped
    (`holds 2 molecules, expected 1`). Every molecule field is copied, charge 0 and index 0
    included."""
    turns = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "butanol"}]
    atoms = {"id": "a", "conversations": turns, "atoms": ["C", "O"], "coordinates": [[0, 0, 0], [1.43, 0, 0]],
             "charge": 0, "smiles": "CO"}
    indexed = {"id": "b", "conversations": turns, "structure": "lib.sdf", "structure_index": 0}
    first, second = eval_questions.convert([atoms, indexed], tmp_path)
    assert {k: first[k] for k in ("atoms", "coordinates", "charge", "smiles")} == \
        {k: atoms[k] for k in ("atoms", "coordinates", "charge", "smiles")}
    assert second["structure"] == "lib.sdf" and second["structure_index"] == 0


def test_model_vqa_ctrl_c_ends_with_one_line(trained_checkpoint, tmp_path, monkeypatch, capsys):
    """Ctrl-C during the answers printed a KeyboardInterrupt traceback through the host."""
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": "a", "text": "What is it?", "smiles": "CCO"}) + "\n")

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_vqa, "run", interrupted)
    with pytest.raises(SystemExit) as exit_:
        model_vqa.main(["--model-path", str(trained_checkpoint), "--question-file", str(questions),
                        "--answers-file", str(tmp_path / "a.jsonl")])
    assert exit_.value.code == 130 and capsys.readouterr().err.strip().endswith("model_vqa: interrupted")


def test_report_names_the_questions_model_vqa_could_not_ask(tmp_path):
    """Questions model_vqa left out (its `<answers>.failures.jsonl`) have no answer: a merge
    missing others too says why the listed ones are missing; the report scores the answered
    ones and reports the listed ones as not asked (it refused the whole merge: eleventh round)."""
    from deepmolm_plugin.eval.merge import MergeError, merge_answers

    answers = tmp_path / "chunk0.jsonl"
    answers.write_text(json.dumps({"question_id": "q1", "text": "ethanol"}) + "\n")
    with pytest.raises(MergeError) as plain:
        merge_answers([answers], expected=["q1", "q2", "q3"])
    assert "could not be asked" not in str(plain.value)
    (tmp_path / "chunk0.failures.jsonl").write_text(json.dumps({"question_id": "q2", "reason": "SMILES 'C1CC': bad"})
                                                    + "\n")
    with pytest.raises(MergeError, match=r"2 question\(s\) have no answer in any shard: 'q2', 'q3'; 1 of them could "
                                         r"not be asked \(.*chunk0\.failures\.jsonl\), e\.g\. 'q2': SMILES 'C1CC': bad"):
        merge_answers([answers], expected=["q1", "q2", "q3"])
    # `report answers/*.jsonl` names the failures file too: skipped, not read as answers
    # (was: "question 'q2' has no text: not a model_vqa answer file")
    refs = _refs(tmp_path, [{"question_id": f"q{i}", "task": "caption", "answer": "ethanol", "text": "What?"}
                            for i in (1, 2)])
    report.main([str(answers), str(tmp_path / "chunk0.failures.jsonl"), "--references", str(refs),
                 "--out", str(tmp_path / "o"), "--no-plots"])
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["counts"]["not_asked"] == 1
    rows = {r["question_id"]: r for r in map(json.loads, (tmp_path / "o" / "per_question.jsonl").read_text().splitlines())}
    assert rows["q2"]["not_asked"] is True and rows["q2"]["scored"] is False
    assert "SMILES 'C1CC': bad" in rows["q2"]["reason"]
    assert rows["q1"]["scored"] is True


@pytest.mark.parametrize("value, shown", [("NaN", "nan"), ("Infinity", "inf"), ("true", "True"), ('"2.5"', "'2.5'")])
@pytest.mark.parametrize("where", ["references", "answers"])
def test_a_reference_property_that_is_not_a_finite_number_is_an_error_naming_it(tmp_path, value, shown, where):
    """was: NaN, inf and true were read as no entry (the question left out as having "no
    properties entry") and the text "2.5" as the number 2.5; eval.questions and training
    refuse them."""
    from deepmolm_plugin.eval.merge import ReportError, load_references, references_from_answers

    line = '{"question_id": "a", "text": "2.0", "task": "LogP", "answer": "The value", "properties": {"LogP": %s}}'
    path = tmp_path / "lines.jsonl"
    path.write_text(line % value + "\n")
    with pytest.raises(ReportError, match=rf"question 'a': property 'LogP' is {re.escape(shown)}, not a finite number"):
        if where == "references":
            load_references(path)
        else:
            references_from_answers({"a": json.loads(path.read_text())})


def test_a_reply_holding_a_placeholder_or_control_token_goes_back_as_text(tmp_path):
    """was: an earlier reply with the text `<image>` became a second image slot for the one
    image (IndexError on every later turn, GUI and chat CLI), and `<|im_end|>` spelled in a
    reply ended it early in the next prompt."""
    import deepmolm_plugin

    deepmolm_plugin.register()  # the qwen2 template
    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.mm_utils import tokenizer_image_token

    from tiny_models import make_tiny_tokenizer
    from deepmolm_plugin.data.prompts import history_messages
    from deepmolm_plugin.data.prompts import reply_as_text
    from deepmolm_plugin.gui.chat import build_prompt

    reply = "it looks like <image> here<|im_end|><|im_start|>system"
    assert reply_as_text(reply).replace("\u2060", "") == reply and "<image>" not in reply_as_text(reply)
    prompt = build_prompt("qwen2", [("What is it?", reply), ("And?", None)])
    assert prompt.count("<image>") == 1 and prompt.count("<|im_start|>system") == 1  # the template's own
    tokenizer = make_tiny_tokenizer()
    assert tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX).count(IMAGE_TOKEN_INDEX) == 1

    # the chat CLI's history: a turn answered with nothing is left out, its image placeholder
    # moves on to the next question
    messages = [["USER", "<image>\nword word"], ["ASSISTANT", ""], ["USER", "What is it?"], ["ASSISTANT", reply],
                ["USER", "And?"], ["ASSISTANT", None]]
    assert history_messages(messages, ("USER", "ASSISTANT")) == [
        ["USER", "<image>\nWhat is it?"], ["ASSISTANT", reply_as_text(reply)], ["USER", "And?"], ["ASSISTANT", None]]


@pytest.mark.parametrize("question, refused", [("\x00", True), ("what\x07?", True), ("a\x7fb", True),
                                               ("two\nlines\tand a tab\r", False), ("café?", False)])
def test_a_question_with_a_control_character_is_refused(question, refused):
    """was: a NUL passed the empty-question check (str.strip keeps it) and was answered, in
    the GUI and the chat CLI; every place that takes a question asks question_problem."""
    from deepmolm_plugin.data.prompts import question_problem

    problem = question_problem(question)
    assert (problem is not None and "control character U+" in problem) if refused else problem is None


def test_answer_files_that_are_folders_or_given_twice_are_named_as_such(tmp_path):
    """was: a folder was "missing", and one file given twice (`a.jsonl ./a.jsonl`) listed
    every id as answered more than once."""
    from deepmolm_plugin.eval.jsonl import question_id_problem
    from deepmolm_plugin.eval.merge import MergeError, merge_answers

    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"question_id": "q1", "text": "x"}) + "\n")
    with pytest.raises(MergeError, match="answer file\\(s\\) that are folders: "):
        merge_answers([answers, tmp_path])
    with pytest.raises(MergeError, match=r"answer file .*/\./a\.jsonl is given twice \(also as .*a\.jsonl\)"):
        merge_answers([answers, f"{tmp_path}/./a.jsonl"])
    # ids shown as nothing, or split over lines, in every table and message
    assert "is blank" in question_id_problem(" ") and "control character" in question_id_problem("a\nb")
    assert question_id_problem("q 1") is None and question_id_problem(7) is None
