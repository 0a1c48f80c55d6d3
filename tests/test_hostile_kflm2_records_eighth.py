"""deepmolm-kflm2 and the record readers, eighth hostile sweep: what was wrong -> what happens now.

- A classification seed whose training subset held one class of a target (its few positives
  all in valid/test) was trained and its meaningless test ROC-AUC averaged into the result,
  exit 0 -> refused before anything is written, naming the seed, the target, the class counts.
- ``--out`` took any folder for a run's: one's own results.md / results.json / plots/roc*.png
  in a folder without config.json were deleted, and a saved model's folder was "results of a
  different configuration", its config.json replaced under --overwrite -> a non-empty folder
  that is not a run's is refused (exit 2), --overwrite or not, nothing in it touched.
- A JSON object that states a key twice (a record's `smiles`, a property, a turn's `value`, a
  question's `text`) was read as its last value without a word -> refused, naming the record
  (item and id, or line) and the key; a records file starting with a UTF-8 BOM is refused in
  plain words instead of json's "Unexpected UTF-8 BOM (decode using utf-8-sig)".
"""

from __future__ import annotations

import json

import pytest

from deepmolm_plugin import usage
from deepmolm_plugin.eval.model_vqa import EvalInputError, read_questions
from deepmolm_plugin.property import cli as kcli

from test_hostile_kflm2 import FORTY
from test_hostile_property_images import _csv, _run

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads cost more than they give


# ------------------------------------------------- classification: one class in a training subset
@pytest.mark.parametrize("task, label, refusal", [
    # rows 38 and 39 are the only positives; the random split of seed 21 puts both in valid/test
    ("classification", int, r"holds only class 0 of classification target 'y' \(0 of the 2 molecules of class 1; 38 "
                            r"of class 0 in all\): .*more molecules of class 1, a larger TRAIN fraction"),
    # 2026-12-06: rows 38 and 39 are the only values other than 0.0; seed 21's model was trained on a constant
    # and its test error averaged in, exit 0
    ("regression", float, r"holds only the value 0 of regression target 'y' \(2 of its 40 labels differ, all in "
                          r"valid/test\): trained on a constant"),
])
def test_a_seed_whose_training_subset_has_one_label_is_refused_before_anything_is_written(tmp_path, task, label,
                                                                                           refusal):
    data = _csv(tmp_path / "rare.csv", ["smiles", "y"], [(s, label(i >= 38)) for i, s in enumerate(FORTY)])
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"^seed 21: the train subset \(\d+ molecules\) " + refusal):
        kcli.main(_run(data, out, task=task, extra=["--seeds", "22", "--epochs", "1"]))
    assert not out.exists()
    # seeds 0..20 all hold another label in train: those runs go on
    assert kcli.main(_run(data, out, task=task, extra=["--seeds", "2", "--epochs", "1"])) in (0, 1)
    assert (out / "results.json").is_file()


# ------------------------------------------------------------------ --out of someone else
def _refused(args, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        kcli.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give an empty or new folder" in err
    return err


def test_ones_own_reports_in_a_folder_without_config_are_kept(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i / 10) for i, s in enumerate(FORTY)])
    mine = tmp_path / "mypaper"
    (mine / "plots").mkdir(parents=True)
    files = {"results.md": "# my results, hand written\n", "results.json": '{"mine": 1}',
             "plots/roc_final.png": "figure"}
    for name, text in files.items():
        (mine / name).write_text(text)
    for extra in ([], ["--overwrite"]):
        err = _refused(_run(data, mine, extra=extra), capsys)
        assert "not a deepmolm-kflm2 run folder: it holds results.json" in err
    (mine / "results.json").unlink()  # the reports alone: no run writes them without its results.json
    files.pop("results.json")
    assert "it holds results.md without a run's results.json" in _refused(_run(data, mine), capsys)
    assert {p.relative_to(mine).as_posix() for p in mine.rglob("*") if p.is_file()} == set(files)
    assert all((mine / name).read_text() == text for name, text in files.items())

    # what a run killed before its config.json leaves (seeds/, splits/ and a temporary file) is a run's
    killed = tmp_path / "killed"
    (killed / "seeds").mkdir(parents=True)
    (killed / "splits").mkdir()
    (killed / ".config.json.abc.tmp").write_text("{")
    assert kcli.main(_run(data, killed)) == 0


def test_a_model_folder_is_not_taken_for_a_run_even_with_overwrite(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i / 10) for i, s in enumerate(FORTY)])
    model = tmp_path / "model"
    model.mkdir()
    config = json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64})
    (model / "config.json").write_text(config)
    (model / "model.safetensors").write_bytes(b"weights")
    for extra in ([], ["--overwrite"]):
        err = _refused(_run(data, model, extra=extra), capsys)
        assert f"--out {model} is not a deepmolm-kflm2 run folder: its config.json is not a run's" in err
    assert (model / "config.json").read_text() == config
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.safetensors"]


# ------------------------------------------------------------ JSON records: a key twice, a BOM
RECORD = ('{{"id": "r1", "smiles": "CCO",{smiles} "properties": {{"LogP": -0.31}},\n'
          ' "conversations": [{{"from": "human", "value": "<image>\\nWhat is this molecule?"}},\n'
          '                   {{"from": "gpt", "value": "This is ethanol."{value}}}]}}')


@pytest.mark.parametrize("smiles, value, where", [
    (' "smiles": "c1ccccc1O",', "", r'item #1 \(id "r1"\): the key "smiles" is given twice in one object: '),
    ("", ', "value": "This is phenol."', r'item #1 \(id "r1"\): the key "value" is given twice in one object '
                                         r'\(conversations\[1\]\): '),
])
def test_a_key_stated_twice_in_a_record_is_refused_naming_the_record(tmp_path, smiles, value, where):
    path = tmp_path / "records.json"
    path.write_text(f'[{RECORD.format(smiles="", value="").replace("r1", "r0")},\n'
                    f' {RECORD.format(smiles=smiles, value=value)}]')
    with pytest.raises(usage.UsageError, match=rf"^--data_path {path}: {where}.*keep the last value") as e:
        usage.json_list_file(path, "--data_path")
    assert "\n" not in str(e.value)


def test_a_records_file_with_a_byte_order_mark_is_refused_in_plain_words(tmp_path):
    path = tmp_path / "records.json"
    path.write_bytes(b"\xef\xbb\xbf[" + RECORD.format(smiles="", value="").encode() + b"]")
    with pytest.raises(usage.UsageError, match=r"starts with a UTF-8 byte-order mark \(BOM\), which the host's "
                                               r"JSON reader refuses: save it without one$"):
        usage.json_list_file(path, "--data_path")


def test_a_question_with_two_texts_is_refused_naming_its_line(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text('{"question_id": "q1", "text": "What is this molecule?"}\n'
                    '{"question_id": "q2", "text": "Name it.", "text": "Give its LogP."}\n')
    with pytest.raises(EvalInputError, match=r'line 2: the key "text" is given twice in one object'):
        read_questions(str(path))
