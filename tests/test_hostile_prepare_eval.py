"""Hostile input to deepmolm-prepare's readers and engine and to the eval files: each test
is a bug that was found with such input (a traceback, or a record silently changed)."""

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from deepmolm_plugin.data.prepare import main as prepare_main
from deepmolm_plugin.data.sources.base import SourceError, SourceItem
from deepmolm_plugin.data.sources.csv_source import read_csv
from deepmolm_plugin.data.sources.sdf_source import read_sdf
from deepmolm_plugin.eval import questions as eval_questions
from deepmolm_plugin.eval import report as eval_report
from deepmolm_plugin.eval.jsonl import read_jsonl
from deepmolm_plugin.eval.merge import MergeError, ReportError, merge_answers, references_from_answers
from deepmolm_plugin.eval.metrics.numbers import parse_number, property_metrics

FAST = ["--image-size", "64", "--no-progress"]


def csv_items(tmp_path: Path, data: bytes, **options) -> dict:
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    return {item.id: item for item in read_csv(str(path), {"id_column": "id", "label_columns": ["y"], **options})}


def prepare(*args) -> tuple:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = prepare_main([str(a) for a in args])
    return code, printed.getvalue()


# --- CSV reader --------------------------------------------------------------------------


def test_a_duplicated_header_name_of_a_used_column_is_refused(tmp_path):
    """It used to read the last `y` column silently (labels 5 and 6, not 1 and 2)."""
    with pytest.raises(ValueError, match=r"label column 'y' appears 2 times in the header \(columns \[2, 3\]\)"):
        csv_items(tmp_path, b"id,smiles,y,y\na,CCO,1.0,5\nb,CCC,2.0,6\n")
    # an unused duplicated column is harmless
    items = csv_items(tmp_path, b"id,smiles,y,z,z\na,CCO,1.0,5,6\n")
    assert items["a:property:y"].properties == {"y": 1.0}


def test_a_blank_id_is_a_failure_not_a_made_up_id(tmp_path):
    """With --id-column, a blank id used to become `<stem>#<row>` silently."""
    items = csv_items(tmp_path, b"id,smiles,y\n ,CCO,1.0\nb,CCC,2.0\n")
    assert set(items) == {"t#0", "b:property:y"}
    assert isinstance(items["t#0"], SourceError) and items["t#0"].stage == "id"
    assert "blank id in the column 'id'" in items["t#0"].reason


def test_a_label_not_in_plain_decimals_is_a_failure(tmp_path):
    """float() takes "1_000" (1000) while evaluation reads the answer "The y is 1_000." as 1."""
    items = csv_items(tmp_path, "id,smiles,y\na,CCO,1_000\nb,CCC,\u0663\nc,CCN, -1.5e3 \nd,CO,.5\n"
                                "e,CN,1e-400\nf,CC,2e308\ng,OC,0.0e-400\n".encode())
    for bad in ("a:property:y", "b:property:y"):
        assert isinstance(items[bad], SourceError) and items[bad].stage == "label", items[bad]
        assert "is not a number in plain decimals" in items[bad].reason
    # was: 1e-400 stored as the label 0.0 while its answer said 1e-400
    assert "'1e-400' is too small for a 64-bit float (it would be stored as 0)" in items["e:property:y"].reason
    assert "'2e308' is beyond the range of a 64-bit float" in items["f:property:y"].reason
    assert items["g:property:y"].properties == {"y": 0.0}  # a zero written with an exponent is a zero
    assert items["c:property:y"].properties == {"y": -1500.0}
    assert items["d:property:y"].properties == {"y": 0.5}
    for ok in ("c:property:y", "d:property:y"):  # and evaluation reads the answer back the same
        assert parse_number(items[ok].answer) == next(iter(items[ok].properties.values()))


@pytest.mark.parametrize("name", ["Tox 21", "solubility at pH 7.4"])
def test_a_label_name_holding_a_number_is_refused(tmp_path, name):
    """Evaluation takes the first number of "The Tox 21 is 0.5." as the reference value: 21."""
    with pytest.raises(ValueError, match=f"label name '{name}': evaluation would read"):
        csv_items(tmp_path, b"id,smiles,y\na,CCO,0.5\n", label_columns=[f"y={name}"])
    items = csv_items(tmp_path, b"id,smiles,y\na,CCO,0.5\n", label_columns=["y=Tox21 NR-AR"])
    assert parse_number(items["a:property:Tox21 NR-AR"].answer) == 0.5


def test_a_row_that_is_not_utf8_is_its_own_failure_and_the_read_goes_on(tmp_path):
    """A byte that is not UTF-8 used to stop the whole run (exit 2) at that row."""
    items = csv_items(tmp_path, b"id,smiles,y\na,CCO,1\xff\nb,CCC,2\n")
    assert isinstance(items["t#0"], SourceError) and items["t#0"].stage == "read"
    assert "not UTF-8" in items["t#0"].reason and "\\xff" in items["t#0"].reason
    assert isinstance(items["b:property:y"], SourceItem)
    with pytest.raises(ValueError, match="header is not UTF-8"):
        csv_items(tmp_path, b"id,smiles,y\xff\na,CCO,1\n")


def test_an_sdf_field_that_is_not_utf8_is_a_failure(tmp_path):
    """The SDF is read with errors="replace": the id would have carried U+FFFD."""
    block = "{name}\n  RDKit          3D\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n" \
            "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\nM  END\n> <SOL>\n1.5\n\n$$$$\n"
    path = tmp_path / "t.sdf"
    path.write_bytes((block.format(name="ok") + block.format(name="bad\udcff")).encode("utf-8", "surrogateescape"))
    items = list(read_sdf(str(path), {"label_columns": ["SOL"], "id_field": "_Name"}))
    assert [i.id for i in items] == ["ok:property:SOL", "t.sdf#1"]
    assert items[1].stage == "read" and "['_Name'] hold bytes that are not UTF-8" in items[1].reason


# --- engine: damaged files of its own ---------------------------------------------------


def test_a_damaged_manifest_or_chunk_is_a_clear_message_not_a_traceback(tmp_path, capsys):
    data = tmp_path / "m.csv"
    data.write_text("id,smiles,y\na,CCO,1.0\nb,CCC,2.0\n")
    out = tmp_path / "out"
    args = ["--format", "csv", "--input", data, "--out", out, "--label-columns", "y", "--id-column", "id",
            "--chunk-size", "1", *FAST]
    assert prepare(*args)[0] == 0
    first = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    manifest = out / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:100])  # truncated: used to be a JSONDecodeError traceback
    capsys.readouterr()
    assert prepare(*args)[0] == 0
    assert "manifest.json is damaged" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == first  # redone, identical

    sharded = tmp_path / "sharded"
    shard_args = [a if a != out else sharded for a in args]
    assert prepare(*shard_args, "--shard", "0/2")[0] == 0
    (chunk,) = sharded.glob(".progress/chunk-0000000.*.json")
    chunk.write_text(chunk.read_text()[:20])
    capsys.readouterr()
    assert prepare(*shard_args)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("deepmolm-prepare: error: ") and "is damaged" in err and "recompute chunk 0" in err
    chunk.unlink()  # as the message says: then the rerun recomputes that chunk
    assert prepare(*shard_args)[0] == 0
    assert (sharded / "train.json").read_bytes() == first["train.json"]


# --- eval files ---------------------------------------------------------------------------


def test_an_answer_file_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"question_id": "q1", "text": "ok"}\n{"question_id": "q2", "text": "\xff"}\n')
    with pytest.raises(ReportError, match=r"a\.jsonl, line 2: not UTF-8"):
        merge_answers([path])
    path.write_bytes(b'\xef\xbb\xbf{"question_id": "q1", "text": "ok"}\n')  # a BOM is fine
    assert read_jsonl(path) == [{"question_id": "q1", "text": "ok"}]


def test_a_null_answer_text_or_bad_metadata_is_an_error_not_the_answer_none(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"question_id": "q1", "text": null, "answer": "x"}\n')
    with pytest.raises(MergeError, match="question 'q1': `text` is NoneType None, not a string"):
        merge_answers([path])
    path.write_text('{"question_id": "q1", "text": "x", "answer": "y", "metadata": "oops"}\n')
    answers, _ = merge_answers([path])
    with pytest.raises(ReportError, match="`metadata` is str 'oops', not a JSON object"):
        references_from_answers(answers)  # was: TypeError traceback


def test_report_exits_1_for_a_null_reference_answer(tmp_path, capsys):
    (tmp_path / "r.jsonl").write_text('{"question_id": "q1", "task": "description", "answer": null}\n')
    (tmp_path / "a.jsonl").write_text('{"question_id": "q1", "text": "a molecule"}\n')
    with pytest.raises(SystemExit) as exit:
        eval_report.main([str(tmp_path / "a.jsonl"), "--references", str(tmp_path / "r.jsonl"),
                          "--out", str(tmp_path / "o"), "--no-plots"])
    assert "reference `answer` is NoneType None, not a string" in str(exit.value.code)


def test_questions_refuses_turns_that_are_not_objects_or_hold_no_text(tmp_path):
    turns = [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "2.5"}]
    bad = [{"id": "a", "conversations": ["hi", "there"]},  # was: AttributeError traceback
           {"id": "b", "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": None}]},
           # was: a bare NaN in questions.jsonl, and "no properties entry" in the report
           {"id": "c", "conversations": turns, "smiles": "CCO", "properties": {"LogP": float("nan")}},
           {"id": "d", "conversations": turns, "smiles": "CCO", "properties": {"LogP": "2.5"}}]
    for record, message in zip(bad, ["got ['hi', 'there']", "the gpt turn's value is None, not a string",
                                     "record 'c': property 'LogP' is nan, not a finite number",
                                     "record 'd': property 'LogP' is '2.5', not a finite number"]):
        data = tmp_path / "d.json"
        data.write_text(json.dumps([record]))
        with pytest.raises(SystemExit) as exit:
            eval_questions.main([str(data), str(tmp_path / "q.jsonl")])
        assert message in str(exit.value.code)
        assert not (tmp_path / "q.jsonl").exists()


@pytest.mark.parametrize("text, value", [("The LogP is 1.5e3.", 1500.0), ("The X is 1e-05.", 1e-05),
                                         ("1.5E+03.", 1500.0), ("It is 2e3, I think", 2000.0),
                                         ("value 3.2e5.5", None)])  # no exponent: malformed (was 3.2)
def test_scientific_notation_before_a_sentence_period(text, value):
    """"The LogP is 1.5e3." (the answer deepmolm-prepare writes for a label 1.5e3) read 1.5."""
    assert parse_number(text) == value


def test_property_metrics_stay_finite_for_huge_predictions():
    """RMSE of an answer 1e200 was `Infinity` in metrics.json; an error beyond the float
    range (-1.7e308 against 1.7e308) made MAE inf and crashed the parity plot."""
    m = property_metrics(["1e200", "2"], [1.0, 2.0], "property:Foo")
    assert m["n_valid"] == 2 and m["mae"] == pytest.approx(5e199) and m["rmse"] == pytest.approx(1e200 / math.sqrt(2))
    m = property_metrics(["-1.7e308", "2"], [1.7e308, 2.0], "property:Foo")
    assert m["n_valid"] == 1 and m["mae"] == 0.0 and m["rmse"] == 0.0


def test_report_with_an_overflowing_prediction_writes_strict_json_and_plots(tmp_path, capsys):
    (tmp_path / "r.jsonl").write_text('{"question_id": "1", "task": "property:Foo", "answer": "The Foo is 1.7e308."}\n'
                                      '{"question_id": "2", "task": "property:Foo", "answer": "The Foo is 2."}\n')
    (tmp_path / "a.jsonl").write_text('{"question_id": "1", "text": "-1.7e308"}\n{"question_id": "2", "text": "1e200"}\n')
    eval_report.main([str(tmp_path / "a.jsonl"), "--references", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "o")])
    text = (tmp_path / "o" / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"metrics.json holds {c}"))
    m = metrics["tasks"]["property:Foo"]["metrics"]
    assert m["n_valid"] == 1 and m["mae"] == pytest.approx(1e200) and m["rmse"] == pytest.approx(1e200)
    rows = [json.loads(line) for line in (tmp_path / "o" / "per_question.jsonl").read_text().splitlines()]
    assert [r["reference_value"] for r in rows] == [1.7e308, 2.0] and [r["valid"] for r in rows] == [False, True]
    assert (tmp_path / "o" / "plots" / "parity_property_Foo.png").is_file()


def test_question_tokens_carry_their_settings_and_eval_refuses_other_ones(tmp_path, capsys):
    # Was: questions from data prepared with 4096 bits went into an 8192-bit model without a
    # word (every 4096-bit hash is a valid 8192-bit token), and --fp-bits defaulted to 4096
    # whatever the data's manifest said.
    from types import SimpleNamespace

    from deepmolm_plugin.eval.model_vqa import QuestionError, prepare_questions

    from deepmolm_plugin.molecule.inputs import InputResolver
    from deepmolm_plugin.molecule_fp import FingerprintSettings

    tokens = InputResolver(FingerprintSettings(bits=1024, levels=3)).molecule_fp({"smiles": "CCO"}, "m").tolist()
    turns = [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]
    data = tmp_path / "prepared" / "test.json"
    data.parent.mkdir()
    data.write_text(json.dumps([{"id": "m", "conversations": turns, "smiles": "CCO", "molecule_fp": tokens}]))
    (data.parent / "manifest.json").write_text(json.dumps({"settings": {"fp_bits": 1024, "fp_levels": 3}}))
    eval_questions.main([str(data), str(tmp_path / "q.jsonl")])
    line = json.loads((tmp_path / "q.jsonl").read_text())
    assert (line["fp_bits"], line["fp_levels"]) == (1024, 3)
    with pytest.raises(SystemExit):
        eval_questions.main([str(data), str(tmp_path / "q2.jsonl"), "--fp-bits", "4096"])
    assert "--fp-bits 4096: DATA was prepared with fp_bits=1024" in capsys.readouterr().err

    def ask(bits, uses="fusion"):  # the line through eval's question preparation, for a model of `bits`
        config = SimpleNamespace(mm_projector_type=uses, fp_bits=bits, fp_levels=3)
        return prepare_questions([line], str(tmp_path), tmp_path / "renders", config)[1][0]

    assert ask(1024).molecule_fp.tolist() == tokens  # the model's own settings
    with pytest.raises(QuestionError, match="question 'm': its molecule_fp was made with fp_bits=1024, "
                                            "but the model uses fp_bits=8192, fp_levels=3"):
        ask(8192)
    assert ask(8192, uses="mlp2x_gelu").molecule_fp is None  # a model without molecule tokens does not use them


def test_questions_check_a_records_tokens_against_its_molecule(tmp_path, capsys):
    """was: sidecar rows of ethanol next to the SMILES CCCC, inline text or out-of-range
    hashes all went into the question file (and into the report's references)."""
    import numpy as np

    from deepmolm_plugin.molecule.inputs import InputResolver
    from deepmolm_plugin.molecule_fp import DEEPMOLM

    (tmp_path / "fp").mkdir()
    rows = InputResolver(DEEPMOLM).molecule_fp({"smiles": "CCO"}, "ethanol").numpy().astype(np.int16)
    np.save(tmp_path / "fp" / "good.npy", rows)
    turns = [{"from": "human", "value": "<image>\nLogP?"}, {"from": "gpt", "value": "0.1"}]
    sidecar = {"sidecar": "fp/good.npy", "offset": 0, "atoms": 3}
    cases = [({"smiles": "CCCC", "molecule_fp": sidecar}, "molecule_fp has 3 atom rows but its SMILES 'CCCC' has 4"),
             ({"smiles": "CCO", "molecule_fp": "garbage"}, "record 'a': cannot use its molecule_fp: "),
             ({"smiles": "CCO", "molecule_fp": [[99999999, -5]]}, "record 'a': cannot use its molecule_fp: ")]
    for fields, message in cases:
        data = tmp_path / "d.json"
        data.write_text(json.dumps([{"id": "a", "conversations": turns, **fields}]))
        with pytest.raises(SystemExit) as exit:
            eval_questions.main([str(data), str(tmp_path / "q.jsonl")])
        assert message in str(exit.value.code)
        assert not (tmp_path / "q.jsonl").exists()
    data.write_text(json.dumps([{"id": "a", "conversations": turns, "smiles": "CCO", "molecule_fp": sidecar}]))
    eval_questions.main([str(data), str(tmp_path / "q.jsonl")])
    assert json.loads((tmp_path / "q.jsonl").read_text())["molecule_fp"] == rows.tolist()
    # QUESTIONS under a file: one usage line (was a FileExistsError traceback)
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit) as exit:
        eval_questions.main([str(data), str(tmp_path / "afile" / "q.jsonl")])
    assert exit.value.code == 2 and "afile" in capsys.readouterr().err


def test_eval_questions_refuses_a_smiles_that_does_not_parse(tmp_path, capsys):
    # was: written into the question file; model_vqa failed that question after answering
    # every other, and the report refused the run for its missing answer
    turns = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "Ethanol."}]
    data = tmp_path / "test.json"
    data.write_text(json.dumps([{"id": "a", "smiles": "CCO", "conversations": turns},
                                {"id": "b", "smiles": "C1CC", "conversations": turns}]))
    with pytest.raises(SystemExit, match=r"record 'b': unparseable SMILES 'C1CC'"):
        eval_questions.main([str(data), str(tmp_path / "q.jsonl")])
    assert not (tmp_path / "q.jsonl").exists()


def test_eval_questions_leaves_a_molecule_past_its_parse_bound_to_model_vqa(tmp_path):
    # the parse is bounded (a 12,000-atom ring took 6 s to sanitise); a larger molecule is
    # not refused here (was: "too large ... raise it with --max-atoms", options eval.questions
    # lacks, for a molecule a model trained with --max-atoms none answers)
    turns = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A ring."}]
    ring = "C1" + "C" * (eval_questions.PARSE_BOUND + 10) + "C1"
    assert eval_questions.convert([{"id": "big", "smiles": ring, "conversations": turns}], tmp_path)[0]["smiles"] == ring
