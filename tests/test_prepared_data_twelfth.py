"""Prepared data into training and eval, twelfth sweep (sweep 12G, findings 1-6; tiny).

- A record whose content-addressed depiction was overwritten, or whose `image` field was
  swapped with another record's, trained and was asked without a word.
- A `properties` label contradicting the record's own reply trained silently (eval refused
  the same file, telling the user to "Fix the question file").
- Depictions of another size than the model's render_size were asked without a word, and
  training took render_size from a manifest, not from the pictures it read.
- A rerun with another --chunk-size was "a different run" (the output is the same).
- deepmolm-kflm2 read a JSON records file as a CSV whose header is "[".
- eval.questions blamed "several outputs" for an offset edited by hand.
"""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from deepmolm_plugin.data.records import RecordError
from deepmolm_plugin.eval import questions as eval_questions
from deepmolm_plugin.usage import DataError
from test_hostile_training import dataset, qwen2_template, tokenizer  # noqa: F401
from test_prepare import prepare, records, tree

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CSV = "id,smiles,logp,split\nm1,CCO,-0.31,train\nm2,CCN,-0.13,train\nm3,Oc1ccccc1,1.46,train\nm4,CCCO,0.25,valid\n"
PREP = ["--format", "csv", "--label-columns", "logp=LogP", "--id-column", "id", "--split-column", "split",
        "--no-progress"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The CSV prepared at 32 px and at 48 px (each a deepmolm-prepare output)."""
    root = tmp_path_factory.mktemp("prepared")
    (root / "in.csv").write_text(CSV)
    made = {}
    for size in (32, 48):
        code, _ = prepare(*PREP, "--input", root / "in.csv", "--out", root / f"p{size}", "--image-size", size)
        assert code == 0
        made[size] = root / f"p{size}"
    return made


def copy(outputs, size, tmp_path) -> Path:
    folder = tmp_path / f"p{size}"
    shutil.copytree(outputs[size], folder)
    return folder


def ask(data: Path, tmp_path, capsys) -> str:
    """eval.questions on `data`: its refusal (one line)."""
    with pytest.raises(SystemExit) as exit_:
        eval_questions.main([str(data), str(tmp_path / "q.jsonl")])
    return str(exit_.value.code) + capsys.readouterr().err


# --- 1. a record's picture is the one deepmolm-prepare drew for it ----------------------------

def test_prepare_records_which_molecule_each_depiction_draws(outputs):
    for record in records(outputs[32] / "train.json"):
        assert record["depiction"] == {"image": record["image"], "molecule": record["molecule_fp"]["molecule"]}


def test_an_overwritten_depiction_is_refused_by_training_and_eval(outputs, tmp_path, tokenizer, capsys):
    folder = copy(outputs, 32, tmp_path)
    ethanol, ethylamine = records(folder / "train.json")[:2]
    shutil.copy(folder / ethylamine["image"], folder / ethanol["image"])  # ethanol's file now shows ethylamine
    with pytest.raises(RecordError, match=r"record 'm1:property:LogP': image .*do not hash to its name"):
        dataset(folder, tokenizer, records(folder / "train.json"))
    assert "do not hash to its name" in ask(folder / "train.json", tmp_path, capsys)


def test_swapped_image_fields_are_refused_and_older_outputs_still_load(outputs, tmp_path, tokenizer, capsys):
    folder = copy(outputs, 32, tmp_path)
    swapped = records(folder / "train.json")
    swapped[0]["image"], swapped[1]["image"] = swapped[1]["image"], swapped[0]["image"]
    (folder / "train.json").write_text(json.dumps(swapped))
    message = ask(folder / "train.json", tmp_path, capsys)
    assert "record 'm1:property:LogP': its image" in message and "is not the depiction deepmolm-prepare drew" in message
    with pytest.raises(RecordError, match=r"record 'm1:property:LogP': its image .* not the depiction"):
        dataset(folder, tokenizer, swapped)
    # records of an output made before `depiction` was written load as before
    older = [{k: v for k, v in r.items() if k != "depiction"} for r in records(outputs[32] / "train.json")]
    assert len(dataset(copy(outputs, 32, tmp_path / "older"), tokenizer, older).list_data_dict) == 3


def test_a_smiles_edited_after_preparing_is_not_its_depictions_molecule(outputs, tmp_path, tokenizer):
    folder = copy(outputs, 32, tmp_path)
    edited = records(folder / "train.json")
    edited[0]["smiles"] = "OCC"  # the same molecule written another way: fine
    edited[1]["smiles"] = "CCS"
    del edited[1]["molecule_fp"]
    with pytest.raises(RecordError, match=r"record 'm2:property:LogP': its image .* depiction of CCN, but its "
                                          r"SMILES 'CCS' is another molecule"):
        dataset(folder, tokenizer, edited)


# --- 2. a label that contradicts the record's reply -------------------------------------------

def test_a_label_contradicting_the_reply_is_refused_by_the_launcher(outputs, tmp_path, capsys):
    from deepmolm_plugin import usage
    from deepmolm_plugin.training.inputs import check_records

    folder = copy(outputs, 32, tmp_path)
    edited = records(folder / "train.json")
    edited[0]["properties"]["LogP"] = 9.9
    (folder / "train.json").write_text(json.dumps(edited))
    with pytest.raises(usage.UsageError, match=r"--data_path .*train.json: record 'm1:property:LogP' "
                                               r"\(property:LogP\): its gpt reply .*states -0.31 .*`properties` "
                                               r"holds 9.9"):
        check_records(edited, str(folder / "train.json"))
    message = ask(folder / "train.json", tmp_path, capsys)
    assert "question 'm1:property:LogP'" in message and "question file" not in message
    assert "Fix the record's gpt reply or its `properties`" in message


# --- 3. depiction sizes ----------------------------------------------------------------------

def test_a_split_drawn_at_another_size_than_the_models_is_refused_by_model_vqa(outputs, tmp_path):
    from deepmolm_plugin.eval import model_vqa

    asked = eval_questions.convert(records(outputs[48] / "valid.json"), outputs[48])
    assert [q["depiction_size"] for q in asked] == [48]
    config = SimpleNamespace(render_size=32, fp_bits=4096, fp_levels=4, mm_projector_type="fusion")
    with pytest.raises(model_vqa.QuestionError, match=r"question 'm4:property:LogP': its picture is a depiction "
                                                      r"drawn at 48 px, but the model was trained on depictions "
                                                      r"drawn at 32 px .*--image-size 32"):
        model_vqa.prepare_questions(asked, str(outputs[48]), tmp_path / "renders", config)


def prefixed(folder: Path, split: str) -> list:
    """A split's records as a file in the output's parent folder would hold them."""
    out = records(folder / f"{split}.json")
    for record in out:
        record["image"] = f"{folder.name}/{record['image']}"
        record["molecule_fp"]["sidecar"] = f"{folder.name}/{record['molecule_fp']['sidecar']}"
    return out


def test_training_takes_render_size_from_its_depictions_and_refuses_two_sizes(outputs, tmp_path, tokenizer):
    parent = tmp_path / "parent"
    for size in (32, 48):
        copy(outputs, size, parent)
    ds = dataset(parent, tokenizer, prefixed(parent / "p32", "train"))  # no manifest beside it
    assert ds.molecules.render_size == 32  # was 1024, which chat and eval then drew at
    mixed = prefixed(parent / "p32", "train") + [dict(r, id=f"b{r['id']}") for r in prefixed(parent / "p48", "valid")]
    with pytest.raises(DataError, match=r"records 'm1:property:LogP' \(32 px\) and 'bm4:property:LogP' \(48 px\) "
                                        r"have depictions of different sizes"):
        dataset(parent, tokenizer, mixed)


# --- 4. --chunk-size is not the output's identity ---------------------------------------------

def test_a_finished_output_is_reused_and_an_unfinished_one_keeps_its_chunk_size(outputs, tmp_path, capsys):
    folder = copy(outputs, 32, tmp_path)
    before = tree(folder)
    code, printed = prepare(*PREP, "--input", outputs[32].parent / "in.csv", "--out", folder, "--image-size", 32,
                            "--chunk-size", 2)
    assert code == 0 and "already complete" in printed and tree(folder) == before
    out = tmp_path / "resumed"
    run = [*PREP, "--input", outputs[32].parent / "in.csv", "--out", out, "--image-size", 32]
    assert prepare(*run, "--chunk-size", 1, "--shard", "0/2")[0] == 0  # chunks of 1 committed, the run unfinished
    capsys.readouterr()
    code, printed = prepare(*run, "--chunk-size", 3)
    assert code == 0 and "--chunk-size 3 not used" in capsys.readouterr().err
    assert "(2 chunks were already done)" in printed
    assert records(out / "train.json") == records(outputs[32] / "train.json")


# --- 5. kflm2 given a JSON file ------------------------------------------------------------------

def test_kflm2_names_a_json_records_file_for_what_it_is(outputs, tmp_path, capsys):
    from deepmolm_plugin.property.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(outputs[32] / "train.json"), "--targets", "LogP", "--task", "regression", "--out",
              str(tmp_path / "k")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "is a JSON file (deepmolm-prepare records" in err
    assert "reads a CSV with one molecule per row" in err and "--smiles-column" not in err


# --- 6. an offset edited by hand, as eval.questions says it ------------------------------------

def test_eval_names_an_offset_edited_by_hand_not_several_outputs(outputs, tmp_path, capsys):
    folder = copy(outputs, 32, tmp_path)
    edited = records(folder / "train.json")
    edited[1]["molecule_fp"]["offset"] -= 1
    (folder / "train.json").write_text(json.dumps(edited))
    message = ask(folder / "train.json", tmp_path, capsys)
    assert "train.json was changed after deepmolm-prepare wrote it" in message
    assert "offset or atom count was edited" in message and "several deepmolm-prepare outputs" not in message
