"""Sixteenth round: dataset readers (deepmolm_plugin/data/sources) and the image check of
deepmolm-prepare: a 3D-MoIT int of more than 4300 digits stopped the whole run, an empty atom
list was replaced by a generated conformer, text values of the wrong type were captions or
"blank", a blank NAME in ``--label-columns a=`` was the column's own name, and a palette
PNG's transparency printed a Pillow warning."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from deepmolm_plugin.data.prepare.items import decode_image
from deepmolm_plugin.data.sources import READERS, csv_source, moit, sdf_source  # noqa: F401 (register)
from test_hostile_sources import moit_record
from test_prepare import prepare
from test_sources import embedded, errors, items, read, write_json, write_lmdb

BIG = 10 ** 5000  # str() of it raises ValueError (Python's 4300-digit limit)
FAST = ["--image-size", "32", "--no-progress"]


def _failures(out) -> dict:
    lines = (out / "failures.jsonl").read_text().splitlines()
    return {f["id"]: (f["stage"], f["reason"]) for f in map(json.loads, lines)}


# --- 1. an int too long to write as text -------------------------------------------------------


@pytest.mark.parametrize("field", ["description", "cid", "atoms"])
def test_moit_pubchem_int_beyond_4300_digits_is_that_records_read_failure(tmp_path, field):
    # was: "--format 3d-moit: Exceeds the limit (4300 digits) ...", exit 2, no failures.jsonl
    # (in atoms: the molecule's "unexpected ValueError")
    bad = moit_record("1")
    bad[field] = [BIG] + bad["atoms"][1:] if field == "atoms" else BIG
    root = tmp_path / "3d-mol-dataset"
    write_lmdb(root / "pubchem/train/3d-pubchem.lmdb", {"1": bad, "2": moit_record("2")}, protocol=4)
    out = tmp_path / "out"
    code, _ = prepare("--format", "3d-moit", "--input", root, "--out", out, *FAST, "--option", "tasks=Caption")
    assert code == 0
    stage, reason = _failures(out)["pubchem-train-1-caption"]
    assert stage == "read" and reason.startswith("LMDB value '1' in ")
    assert f"{field!r} holds an integer of more than 4300 digits, which Python will not write as text" in reason
    assert [r["id"] for r in json.loads((out / "train.json").read_text())] == ["pubchem-train-2-caption"]


def test_moit_pubchemqc_cid_beyond_4300_digits_is_that_records_read_failure(tmp_path):
    _, atoms, coords = embedded("CCO")
    qc = {key: {"cid": cid, "smi": "CCO", "atoms": atoms, "coordinates_list": [coords]}
          for key, cid in (("0", BIG), ("1", 702))}
    write_lmdb(tmp_path / "pubchemqc/pubchemqc_database.lmdb", qc, protocol=4)
    write_json(tmp_path / "pubchemqc/train/3d_computed_properties_unit.json",
               [{"instruction": "HOMO?", "input": key, "output": "-6.4 eV", "task": "HOMO"} for key in "01"])
    out = read("3d-moit", tmp_path)
    bad = errors(out)["pubchemqc-train-0-homo"]
    assert bad.stage == "read" and "LMDB value '0'" in bad.reason
    assert "'cid' holds an integer of more than 4300 digits" in bad.reason
    assert items(out)["pubchemqc-train-1-homo"].extra["cid"] == "702"


# --- 2. an empty atom list --------------------------------------------------------------------


def test_moit_empty_atom_list_and_conformer_is_refused_not_generated(tmp_path):
    # was: the record was written with a conformer generated from its SMILES, no failure
    records = {"1": dict(moit_record("1"), atoms=[], coordinates=[np.zeros((0, 3))]),
               "2": dict(moit_record("2"), atoms=np.array([], dtype="<U1"), coordinates=np.zeros((1, 0, 3))),
               "3": moit_record("3")}
    write_lmdb(tmp_path / "pubchem/train/3d-pubchem.lmdb", records, protocol=4)
    out = read("3d-moit", tmp_path, tasks="Caption")
    bad = errors(out)
    for cid in "12":
        assert (bad[f"pubchem-train-{cid}-caption"].stage, bad[f"pubchem-train-{cid}-caption"].reason) == (
            "atoms", "empty atom list / conformer ('atoms' and 'coordinates'[0] hold no atoms)")
    assert list(items(out)) == ["pubchem-train-3-caption"]


# --- 3. text values of the wrong type ----------------------------------------------------------


def test_moit_text_of_the_wrong_type_is_refused_by_its_type(tmp_path):
    # was: numbers became captions ("3.5", "12345"); a list, dict, bool, bytes or 0-d array was "blank"
    values = {"1": np.float64(3.5), "2": 7, "3": ["Ethanol", "is an alcohol."], "4": {"text": "Ethanol."},
              "5": True, "6": b"Ethanol.", "7": np.array("Ethanol.")}
    records = {cid: dict(moit_record(cid), description=value) for cid, value in values.items()}
    folder = tmp_path / "pubchem/train"
    write_lmdb(folder / "3d-pubchem.lmdb", {**records, "702": moit_record("702")}, protocol=4)
    entry = lambda output, task: {"instruction": "?", "input": "702", "output": output, "task": task}  # noqa: E731
    write_json(folder / "2d_computed_properties.json",
               [entry(True, "Complexity"), entry(["46.07"], "Molecular Weight"), entry(12345, "Description"),
                entry(46.07, "Molecular Weight"), entry(None, "LogP")])
    out = read("3d-moit", tmp_path)
    got, bad = items(out), errors(out)
    found = {cid: bad[f"pubchem-train-{cid}-caption"] for cid in values}
    assert {cid: (e.stage, e.reason) for cid, e in found.items()} == {
        "1": ("answer", "description is a float64, not text"), "2": ("answer", "description is a int, not text"),
        "3": ("answer", "description is a list, not text"), "4": ("answer", "description is a dict, not text"),
        "5": ("answer", "description is a bool, not text"), "6": ("answer", "description is a bytes, not text"),
        "7": ("answer", "description is a ndarray, not text")}
    assert bad["pubchem-train-702-complexity"].reason == "output is a bool, not text"
    assert bad["pubchem-train-702-molecular-weight"].reason == "output is a list, not text"
    assert bad["pubchem-train-702-description"].reason == "output is a int, not text"
    assert bad["pubchem-train-702-logp"].reason == "blank output"  # a missing value is still "blank"
    # a number is an answer where the task is numeric
    assert got["pubchem-train-702-molecular-weight-2"].answer == "46.07"
    assert got["pubchem-train-702-molecular-weight-2"].properties == {"Molecular Weight": 46.07}


# --- 4. a blank NAME after '=' ----------------------------------------------------------------


@pytest.mark.parametrize("option, column", [("label_columns", "a"), ("text_columns", "description")])
def test_a_blank_name_after_equals_is_refused(tmp_path, option, column):
    # was: "a=" (an empty shell variable in "a=$NAME") fell back to the column's own name:
    # label 'a', text task 'description'
    path = tmp_path / "t.csv"
    path.write_text(f"smiles,{column}\nCCO,1\n")
    with pytest.raises(ValueError) as raised:
        read("csv", path, **{option: f"{column}="})
    assert str(raised.value) == (f"csv: option {option} gives the column {column!r} a blank name after '=' "
                                 f"('{column}='): write {column}=NAME, or {column} alone to keep its own name")


def test_a_blank_name_after_equals_is_a_usage_error_of_deepmolm_prepare(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("smiles,a\nCCO,1\n")
    code, _ = prepare("--format", "csv", "--input", path, "--out", tmp_path / "out", *FAST, "--label-columns", "a=")
    assert code == 2 and not (tmp_path / "out").exists()
    assert "--format csv: option label_columns gives the column 'a' a blank name after '='" in capsys.readouterr().err


def test_a_blank_name_after_equals_is_refused_by_the_sdf_reader_too(tmp_path):
    # the reader's option check, before any file is opened
    with pytest.raises(ValueError, match=r"^sdf: option label_columns gives the column 'SOL' a blank name"):
        list(READERS["sdf"](str(tmp_path / "absent.sdf"), {"label_columns": "SOL= "}))


def test_a_header_column_named_with_a_trailing_equals_is_still_that_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("smiles,a=\nCCO,1\n")
    [item] = read("csv", path, label_columns=["a="])
    assert item.properties == {"a=": 1.0}


# --- 5. Pillow's palette transparency warning -------------------------------------------------


def test_a_palette_png_with_transparency_bytes_is_checked_without_a_warning():
    # was: "UserWarning: Palette images with Transparency expressed in bytes should be converted
    # to RGBA images" on stderr during deepmolm-prepare's image check, for a fine record
    picture = Image.new("P", (64, 64), 0)
    picture.putpalette([255, 255, 255, 0, 0, 0])
    picture.paste(1, (20, 20, 40, 40))
    data = io.BytesIO()
    picture.save(data, format="PNG", transparency=255)  # an index no pixel uses
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decode_image(data.getvalue(), "palette.png")
