"""deepmolm-prepare, eleventh round: one molecule in several splits, and copies in one split
whose labels differ, are reported (summary, manifest.json, overlaps.jsonl), never failures.
Was: written into train and test with no word in any output (finding 1 of the sweep)."""

import json

from rdkit import Chem

from test_prepare import jsonl, prepare, records, tree

TINY = ["--image-size", "32", "--no-progress"]
KEY = "canonical SMILES of the largest fragment, neutralised (deepmolm-kflm2's copy key)"


def _csv(tmp_path, rows):
    data = tmp_path / "m.csv"
    data.write_text("id,smiles,split,y\n" + "".join(f"{r}\n" for r in rows))
    return data


def _args(data, out, *extra):
    return ["--format", "csv", "--input", data, "--out", out, "--label-columns", "y", "--id-column", "id",
            "--split-column", "split", "--chunk-size", "2", *TINY, *extra]


LEAKY = ["a,CCO,train,1.0", "b,OCC,test,1.0",  # one molecule spelt twice, in train and test
         "s,CCO.Cl,valid,1.5",  # its salt: deepmolm-kflm2's key is the largest fragment
         "c,CC12CCC(CC1)C(C)(C)O2,train,-1.64", "d,CC12CCC(CC1)C(C)(C)O2,train,-1.74",  # labels differ
         "e,c1ccccc1,train,2.0", "f,C1=CC=CC=C1,train,2.0",  # a copy with the same label: not listed
         "g,CCN,test,3.0"]


def test_csv_copies_across_splits_and_differing_labels_are_counted_and_listed(tmp_path, capsys):
    out = tmp_path / "out"
    code, printed = prepare(*_args(_csv(tmp_path, LEAKY), out))
    assert code == 0 and jsonl(out / "failures.jsonl") == []  # not failures: every record is written
    assert sum(len(records(out / f"{s}.json")) for s in ("train", "valid", "test")) == 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["overlaps"] == {"file": "overlaps.jsonl", "key": KEY, "in_several_splits": 1,
                                    "by_splits": {"test + train + valid": 1}, "differing_labels": 1}
    assert "overlaps.jsonl" in manifest["files"]
    assert jsonl(out / "overlaps.jsonl") == [
        {"molecule": "CCO", "smiles": ["CCO", "OCC", "CCO.Cl"],
         "splits": {"train": ["a:property:y"], "test": ["b:property:y"], "valid": ["s:property:y"]}},
        {"molecule": "CC12CCC(CC1)C(C)(C)O2", "smiles": ["CC12CCC(CC1)C(C)(C)O2"],
         "splits": {"train": ["c:property:y", "d:property:y"]},
         "differing_labels": {"train": {"y": [{"id": "c:property:y", "value": -1.64},
                                              {"id": "d:property:y", "value": -1.74}]}}}]
    first = printed.splitlines()[0]
    assert first.endswith("8 records, 0 failures, 5 images, 1 molecules in several splits, 1 with differing "
                          "labels within a split")
    assert ("  same molecule in several splits: test + train + valid 1; copies with differing labels within a "
            "split: 1 (kept: not failures)  (see overlaps.jsonl)") in printed
    # the rerun that finds the output complete says the same, and changes nothing
    before = tree(out)
    code, again = prepare(*_args(_csv(tmp_path, LEAKY), out))
    assert code == 0 and "already complete" in again
    assert again.splitlines()[0] == first and "copies with differing labels within a split: 1" in again
    assert tree(out) == before


def test_shards_then_merge_and_a_resumed_run_give_the_same_report(tmp_path):
    data = _csv(tmp_path, LEAKY)
    single, sharded, resumed = tmp_path / "single", tmp_path / "sharded", tmp_path / "resumed"
    assert prepare(*_args(data, single))[0] == 0
    for i in range(3):  # 4 chunks over 3 shards: the copies' records are computed by different jobs
        code, printed = prepare(*_args(data, sharded, "--shard", f"{i}/3"))
        assert code == 0 and "shard" in printed
    code, printed = prepare(*_args(data, sharded, "--merge"))
    assert code == 0 and "1 molecules in several splits, 1 with differing labels" in printed
    assert prepare(*_args(data, resumed, "--shard", "1/2"))[0] == 0  # half the chunks, then the rest
    assert prepare(*_args(data, resumed))[0] == 0
    assert tree(single) == tree(sharded) == tree(resumed)  # overlaps.jsonl and the manifest included


def test_chebi20_same_cid_and_spellings_across_split_files(tmp_path):
    folder = tmp_path / "chebi"
    folder.mkdir()
    head = "CID\tSMILES\tdescription\n"
    (folder / "train.txt").write_text(head + "702\tCCO\tThe molecule is ethanol.\n892\tc1ccccc1\tThe molecule is benzene.\n")
    (folder / "validation.txt").write_text(head + "702\tCCO\tThe molecule is ethanol (valid).\n")
    (folder / "test.txt").write_text(head + "892\tC1=CC=CC=C1\tThe molecule is benzene (test).\n")
    out = tmp_path / "out"
    code, printed = prepare("--format", "chebi20", "--input", folder, "--out", out, *TINY)
    assert code == 0 and "2 molecules in several splits, 0 with differing labels" in printed
    assert [(e["molecule"], e["splits"]) for e in jsonl(out / "overlaps.jsonl")] == [
        ("CCO", {"train": ["chebi20-train-702"], "valid": ["chebi20-valid-702"]}),
        ("c1ccccc1", {"train": ["chebi20-train-892"], "test": ["chebi20-test-892"]})]


def test_sdf_same_molecule_in_train_and_test(tmp_path):
    sdf = tmp_path / "m.sdf"
    with Chem.SDWriter(str(sdf)) as writer:
        for name, smiles, split in (("m1", "CCO", "train"), ("m2", "CCN", "train"), ("m3", "OCC", "test")):
            mol = Chem.MolFromSmiles(smiles)
            mol.SetProp("ID", name), mol.SetProp("SPLIT", split), mol.SetProp("Y", "1.0")
            writer.write(mol)
    out = tmp_path / "out"
    code, printed = prepare("--format", "sdf", "--input", sdf, "--out", out, "--id-field", "ID",
                            "--split-column", "SPLIT", "--label-columns", "Y", *TINY)
    assert code == 0 and "1 molecules in several splits" in printed
    assert [e["splits"] for e in jsonl(out / "overlaps.jsonl")] == [{"train": ["m1:property:Y"],
                                                                     "test": ["m3:property:Y"]}]


def test_no_overlaps_no_file_and_an_older_manifest_says_not_checked(tmp_path, capsys):
    out = tmp_path / "out"
    assert prepare(*_args(_csv(tmp_path, LEAKY), out))[0] == 0
    clean = _csv(tmp_path, ["a,CCO,train,1.0", "b,CCC,test,2.0"])
    code, printed = prepare(*_args(clean, out, "--overwrite"))  # another input: the earlier file goes
    assert code == 0 and "0 molecules in several splits, 0 with differing labels within a split" in printed
    assert not (out / "overlaps.jsonl").exists() and "same molecule" not in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["overlaps"]["file"] is None and manifest["overlaps"]["in_several_splits"] == 0
    # an output written before the check: the rerun says it was not checked (not silence, not a redo)
    manifest.pop("overlaps")
    (out / "manifest.json").write_text(json.dumps(manifest))
    code, printed = prepare(*_args(clean, out))
    assert code == 0 and "already complete" in printed
    assert "molecules in several splits: not checked (output made by an older deepmolm-prepare" in printed


def test_the_copy_key_needs_no_torch():
    # was: `overlaps.copy_key` imported the key from the property package, and with it torch (2-5 s at
    # every assembly); the key lives in molecule/ now, beside the other identity code
    import subprocess
    import sys

    code = ("import sys; from deepmolm_plugin.data.prepare.overlaps import copy_key; "
            "print(copy_key('[Na+].[O-]C(=O)CC'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["CCC(=O)O", "False"]
