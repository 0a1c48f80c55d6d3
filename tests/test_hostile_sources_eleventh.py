"""Eleventh hostile round, dataset readers (deepmolm_plugin/data/sources): memo-reference
bombs in 3D-MoIT LMDB values, LMDB lock files, SDF records run together by a lost '$$$$',
UTF-16 / gzip text files, missing-value markers as answers, bytes atom symbols."""

from __future__ import annotations

import codecs
import gzip
import json
import pickle

import lmdb
import numpy as np
import pytest
from rdkit import Chem

from deepmolm_plugin.data.sources import chebi20, chebi20_mm, moit, sdf_source, vis_chebi20  # noqa: F401 (register)
from deepmolm_plugin.data.sources.base import READERS, input_files_of
from deepmolm_plugin.data.sources.safe_pickle import safe_loads
from deepmolm_plugin.molecule.io import sdf_blocks
from test_prepare import prepare
from test_sources import embedded, errors, items, read, vis_record, write_json, write_lmdb


def _doubled(leaf, depth: int):
    """``x = [leaf]``, then ``depth`` times ``x = [x, x]``: 2^depth leaves in a few bytes."""
    x = [leaf]
    for _ in range(depth):
        x = [x, x]
    return x


def _record(cid: str, smiles: str = "CCO", **fields) -> dict:
    _, atoms, coords = embedded(smiles)
    return {"cid": cid, "smiles": smiles, "atoms": atoms, "coordinates": [coords], "description": "Ethanol.",
            **fields}


# ---------------------------------------------------------------------------------------
# 2. values far larger than their bytes


@pytest.mark.parametrize("leaf", ["C", 1.5])
def test_safe_loads_refuses_shared_references_that_expand_far_beyond_the_bytes(leaf):
    # was: 34 levels of x = [x, x] (262 bytes) were admitted at once; str() of its atoms took hours
    for value in ({"atoms": _doubled(leaf, 34)}, {"a": _doubled(leaf, 30), "b": (_doubled(leaf, 30),)}):
        raw = pickle.dumps(value, protocol=4)
        assert len(raw) < 600
        with pytest.raises(pickle.UnpicklingError, match="shared references expand it to more than"):
            safe_loads(raw)
    # real records stay: 5000 references to one "H", a repeated key, arrays, a self-reference
    atoms = ["C"] + ["H"] * 5000
    rows = [{"enriched_description": "x" * 20} for _ in range(2000)]
    cyclic = [1]
    cyclic.append(cyclic)
    value = safe_loads(pickle.dumps({"atoms": atoms, "rows": rows, "coordinates": [np.zeros((5001, 3))],
                                     "cyclic": cyclic}))
    assert value["atoms"] == atoms and len(value["rows"]) == 2000 and value["coordinates"][0].shape == (5001, 3)


def test_moit_atoms_must_be_a_flat_list_of_symbols():
    # was: str() of each element: [["C"], ["H"]] became the symbols "['C']" and "['H']"
    for atoms, said in (([["C"], ["H"]], "nested lists"), (["C", 6.0], "a float")):
        with pytest.raises(moit._Reject, match=f"not a flat list of element symbols.*{said}"):
            moit._atom_list(atoms)


def test_prepare_fails_a_reference_bomb_record_and_a_peek_keeps_the_output_complete(tmp_path):
    root = tmp_path / "3d-mol-dataset"
    bomb = _record("2", atoms=_doubled("C", 22))
    db = root / "pubchem/train/3d-pubchem.lmdb"
    write_lmdb(db, {"1": _record("1"), "2": bomb}, protocol=4)
    out = tmp_path / "out"
    args = ["--format", "3d-moit", "--input", root, "--out", out, "--image-size", "32", "--no-progress",
            "--option", "tasks=Caption"]
    code, _ = prepare(*args)
    assert code == 0
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [(f["id"], f["stage"]) for f in failures] == [("pubchem-train-2-caption", "read")]
    assert "LMDB value '2'" in failures[0]["reason"] and "shared references" in failures[0]["reason"]
    assert [r["id"] for r in json.loads((out / "train.json").read_text())] == ["pubchem-train-1-caption"]
    # 3. peeking at a record with lmdb's defaults writes <file>-lock; was: "input files changed ... added"
    env = lmdb.open(str(db), subdir=False, readonly=True)
    with env.begin() as txn:
        assert txn.get(b"1")
    env.close()
    assert (db.parent / "3d-pubchem.lmdb-lock").is_file()
    code, printed = prepare(*args)
    assert code == 0 and "already complete" in printed


def test_lmdb_lock_files_are_not_inputs(tmp_path):
    root = tmp_path / "3d-mol-dataset"
    write_lmdb(root / "pubchem/train/3d-pubchem.lmdb", {"1": _record("1")}, protocol=4)
    write_lmdb(root / "pubchemqc/pubchemqc_database.lmdb", {}, protocol=4)
    for db in ("pubchem/train/3d-pubchem.lmdb", "pubchemqc/pubchemqc_database.lmdb"):
        lmdb.open(str(root / db), subdir=False).close()  # lmdb's defaults: a lock file
        assert (root / f"{db}-lock").is_file()
    names = [name for _, name in input_files_of("3d-moit", tmp_path, {})]
    assert names == ["3d-mol-dataset/pubchem/train/3d-pubchem.lmdb",
                     "3d-mol-dataset/pubchemqc/pubchemqc_database.lmdb"]


# ---------------------------------------------------------------------------------------
# 7. bytes atom symbols


def test_moit_atoms_stored_as_bytes_are_element_symbols(tmp_path):
    # was: every record failed as unknown element "b'C'"
    good = _record("1")
    symbols = good["atoms"]
    good["atoms"] = np.array([s.encode() for s in symbols])  # dtype S1, as numpy-1 era pickles hold them
    assert good["atoms"].dtype.kind == "S"
    listed = _record("2", atoms=[s.encode() for s in symbols])
    foreign = _record("3", atoms=["C".encode(), "\u00e9".encode("latin-1")] + [s.encode() for s in symbols[2:]])
    root = tmp_path / "3d-mol-dataset"
    write_lmdb(root / "pubchem/train/3d-pubchem.lmdb", {"1": good, "2": listed, "3": foreign}, protocol=2)
    out = read("3d-moit", root, tasks="Caption")
    got = items(out)
    assert list(got["pubchem-train-1-caption"].molecule.atoms) == symbols
    assert list(got["pubchem-train-2-caption"].molecule.atoms) == symbols
    failure = errors(out)["pubchem-train-3-caption"]
    assert failure.stage == "schema" and "not an ASCII element symbol" in failure.reason


# ---------------------------------------------------------------------------------------
# 4. SDF records run together


def _molfile(smiles: str, fields: dict, title: str = "", end: bool = True) -> str:
    mol = embedded(smiles)[0]
    mol.SetProp("_Name", title)
    text = Chem.MolToMolBlock(Chem.RemoveHs(mol))
    text += "".join(f"> <{k}>\n{v}\n\n" for k, v in fields.items())
    return text + ("$$$$\n" if end else "")


@pytest.mark.parametrize("last", ["NOTE", "SOL"])
def test_sdf_record_without_its_dollars_names_both_records_and_keeps_later_indices(tmp_path, last):
    # was: one failure "lig.sdf#0" blaming a repeated field or an empty line; m9 named nowhere,
    # and m10 was lig.sdf#1
    def fields(i, sol):
        f = {"ID": f"m{i}", "NOTE": f"vendor {i}", "SOL": sol}
        return {k: f[k] for k in ["ID"] + [n for n in ("NOTE", "SOL") if n != last] + [last]}

    path = tmp_path / "lig.sdf"
    path.write_text(_molfile("CCN", fields(8, "4"), title="eight", end=False) + _molfile("CCCN", fields(9, "5"))
                    + _molfile("CCCCN", fields(10, "6")))
    out = read("sdf", path, id_field="ID", label_columns="SOL")
    failed = errors(out)
    assert sorted(failed) == ["lig.sdf#0", "lig.sdf#1"]
    first, second = failed["lig.sdf#0"].reason, failed["lig.sdf#1"].reason
    assert first.startswith("record lig.sdf#0 (ID 'm8', title 'eight') has no '$$$$' line: it runs into the next "
                            "record, record lig.sdf#1 (ID 'm9')")
    assert "record lig.sdf#1 (ID 'm9')" in second and "follows record lig.sdf#0" in second
    assert {f.stage for f in failed.values()} == {"read"}
    item = items(out)["m10:property:SOL"]
    assert item.molecule.structure[1] == 2 and item.extra["index"] == 2
    # the engine's record cursor counts alike: record 2 is m10's text
    with open(path) as handle:
        blocks = list(sdf_blocks(handle))
    assert len(blocks) == 3 and "m10" in blocks[2]


# ---------------------------------------------------------------------------------------
# 5. UTF-16 and gzip text files


def _utf16(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))


def _gzip(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))


@pytest.mark.parametrize("save, said", [(_utf16, "file is UTF-16 text; save it as UTF-8"),
                                        (_gzip, "file is compressed (gzip")])
def test_text_readers_refuse_utf16_and_gzip_files_in_one_line(tmp_path, save, said):
    # was: the decoded bytes shown as a header, or one "line 1" failure for a whole 3D-MoIT task file
    save(tmp_path / "c20/train.txt", "CID\tSMILES\tdescription\n1\tCCO\tEthanol.\n")
    save(tmp_path / "mm/train.csv", ",".join(chebi20_mm.HEADER) + "\n1,CCO,Ethanol.,20.2,0.1,InChI=x,ethanol,x\n")
    save(tmp_path / "vis/train.json", json.dumps([vis_record("trans_smiles", "imgs/1.png", "SMILES?",
                                                             "The SMILES is CCO.")]))
    root = tmp_path / "moit/3d-mol-dataset"
    write_lmdb(root / "pubchem/train/3d-pubchem.lmdb", {"1": _record("1")}, protocol=4)
    json_path = root / "pubchem/train/2d_computed_properties.json"
    save(json_path, json.dumps([{"instruction": "q", "input": "1", "output": "46.07 g/mol",
                                 "task": "Molecular Weight"}] * 4))
    cases = [("chebi20", tmp_path / "c20", {}, tmp_path / "c20/train.txt"),
             ("chebi20-mm", tmp_path / "mm", {}, tmp_path / "mm/train.csv"),
             ("vis-chebi20", tmp_path / "vis", {}, tmp_path / "vis/train.json"),
             ("3d-moit", root, {"tasks": "Molecular Weight"}, json_path)]
    for fmt, folder, options, path in cases:
        with pytest.raises(ValueError) as raised:
            list(READERS[fmt](str(folder), options))
        assert str(raised.value).startswith(f"{fmt}: {path}: {said}")
        assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------------------
# 6. missing-value markers as answers


@pytest.mark.parametrize("marker", ["N/A", "n/a", "nan", "NaN", "None", "null", "NULL", "-", "--", "?", " NA ",
                                    "#N/A", "<NA>"])
def test_a_missing_value_marker_is_no_answer(marker):
    from deepmolm_plugin.data.sources.base import answer_problem  # the shared rule (was: none)

    assert answer_problem(marker, "column 'desc'") == \
        f"column 'desc' is {marker.strip()!r}, a missing-value marker, not an answer"


def test_answers_that_are_only_a_marker_fail_their_item_in_every_reader(tmp_path):
    # csv: a text column; "Na" (sodium) and "-1 charge" are answers
    (tmp_path / "p.csv").write_text("smiles,desc\nCCO,N/A\nCCN,nan\nCCC,Na\nCCCC,-1 charge\n")
    out = read("csv", tmp_path / "p.csv", text_columns="desc=description")
    assert {k: (e.stage, e.reason) for k, e in errors(out).items()} == {
        "p#0:description": ("answer", "column 'desc' is 'N/A', a missing-value marker, not an answer"),
        "p#1:description": ("answer", "column 'desc' is 'nan', a missing-value marker, not an answer")}
    assert [i.answer for i in items(out).values()] == ["Na", "-1 charge"]
    # chebi20: the description
    (tmp_path / "c20").mkdir()
    (tmp_path / "c20/train.txt").write_text("CID\tSMILES\tdescription\n702\tCCO\tN/A\n703\tCCN\tAn amine.\n")
    out = read("chebi20", tmp_path / "c20")
    assert errors(out)["chebi20-train-702"].reason == "line 2: description is 'N/A', a missing-value marker, " \
                                                      "not an answer"
    assert list(items(out)) == ["chebi20-train-703"]
    # chebi20-mm: an IUPAC name "N/A" (a blank one gives no item) and a description "-"
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm/train.csv").write_text(",".join(chebi20_mm.HEADER) + "\n"
                                           "1,CCO,Ethanol.,20.2,0.1,InChI=x,N/A,x\n2,CCN,-,20.2,0.1,InChI=y,,y\n")
    failed = errors(read("chebi20-mm", tmp_path / "mm"))
    assert failed["chebi20-mm-train-1-iupac-naming"].reason == "iupacname is 'N/A', a missing-value marker, " \
                                                               "not an answer"
    assert failed["chebi20-mm-train-2-description"].reason == "description is '-', a missing-value marker, " \
                                                              "not an answer"
    assert "chebi20-mm-train-2-iupac-naming" not in failed
    # sdf: a text field
    (tmp_path / "d.sdf").write_text(_molfile("CCO", {"DESC": "None"}) + _molfile("CCN", {"DESC": "An amine."}))
    out = read("sdf", tmp_path / "d.sdf", text_columns="DESC=description")
    assert errors(out)["d.sdf#0:description"].reason == "field 'DESC' is 'None', a missing-value marker, not an answer"
    assert list(items(out)) == ["d.sdf#1:description"]
    # 3D-MoIT: a caption
    root = tmp_path / "3d-mol-dataset"
    write_lmdb(root / "pubchem/train/3d-pubchem.lmdb", {"1": _record("1", description="null")}, protocol=4)
    failure = errors(read("3d-moit", root, tasks="Caption"))["pubchem-train-1-caption"]
    assert (failure.stage, failure.reason) == ("answer", "description is 'null', a missing-value marker, not an answer")
    # vis-chebi20: a description answer
    (tmp_path / "vis/imgs").mkdir(parents=True)
    (tmp_path / "vis/imgs/1.png").write_bytes(b"\x89PNG fake")
    write_json(tmp_path / "vis/train.json", [vis_record("trans_smiles", "imgs/1.png", "SMILES?", "The SMILES is CCO."),
                                             vis_record("general_desp", "imgs/1.png", "Describe.", "N/A")])
    failure = errors(read("vis-chebi20", tmp_path / "vis"))["vis-chebi20-train-1-description"]
    assert (failure.stage, failure.reason) == ("answer", "the general_desp answer is 'N/A', a missing-value marker, "
                                                         "not an answer")


def test_sdf_second_molfile_cut_short_still_counts_as_its_own_record(tmp_path):
    # a lost '$$$$' before a record cut after its counts line: no second 'M  END', but a
    # second molfile all the same; the structure reader and deepmolm-prepare count 3 records
    from deepmolm_plugin.molecule.io.sdf import read_sdf

    cut = "\n".join(_molfile("CCCN", {}, title="nine", end=False).splitlines()[:6]) + "\n"
    path = tmp_path / "cut.sdf"
    path.write_text(_molfile("CCN", {"SOL": "4"}, title="eight", end=False) + cut + "$$$$\n"
                    + _molfile("CCCCN", {"SOL": "6"}, title="ten"))
    out = read("sdf", path, label_columns="SOL")
    assert sorted(errors(out)) == ["cut.sdf#0", "cut.sdf#1"]
    assert "record cut.sdf#0 (title 'eight') has no '$$$$' line" in errors(out)["cut.sdf#0"].reason
    assert items(out)["cut.sdf#2:property:SOL"].molecule.structure[1] == 2
    with open(path) as handle:
        parsed = list(read_sdf(handle, "cut.sdf"))
    assert [(p.index, p.error is None) for p in parsed] == [(0, False), (1, False), (2, True)]
    assert "the '$$$$' line between two records is missing (it runs into the next record, 'nine'" in \
        parsed[0].error.reason
