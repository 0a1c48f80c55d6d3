"""Seventh hostile sweep of deepmolm-prepare: what was wrong before.

- Two different molecules with equal E3FP tokens (methanol and 13C-methanol: the tokens
  ignore the carbon's isotope) were stored on one set of sidecar rows, and training refused
  the prepared split ("... are different molecules: an offset is wrong"). (The sweep's
  radical, C[CH2]O, is ethanol itself; a real radical, C[CH]O, has tokens of its own.)
- Every file of a folder input was part of the run's identity: a log the run itself wrote
  there (nohup.out) failed it at the end as "--input changed", --overwrite included, and a
  NOTES.txt added after a finished run failed the rerun as "input files changed (SHA-256)",
  naming no file.
- A column flag (--label-columns) and --option setting the same reader option, one --option
  key or one column flag given twice: the later value silently replaced the earlier.
- Label names differing only in punctuation or spaces (`logP`, `log_P`) passed prepare and
  training; evaluation then refused them as one task spelled two ways.
- Ctrl-C while a first run removed its chunks after writing manifest.json deleted the whole
  finished --out.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from deepmolm_plugin.data.prepare import cli, output
from deepmolm_plugin.data.records import check_property_names, check_records
from deepmolm_plugin.data.sources import READERS, chebi20, csv_source, vis_chebi20  # noqa: F401  (registered)
from deepmolm_plugin.data.sources.base import input_files_of

from test_hostile_prepare_third import write_sdf
from test_prepare import prepare, records
from test_sources import vis_record, write_json

RUN = ["--image-size", "32", "--no-progress"]


def test_different_molecules_with_equal_tokens_get_their_own_rows(tmp_path):
    (tmp_path / "t.csv").write_text("smiles,y,z\nCO,1,2\n[13CH3]O,3,4\nCCO,5,6\nC[CH]O,7,8\n")
    out = tmp_path / "out"
    code, _ = prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", out, *RUN, "--label-columns", "y,z")
    assert code == 0
    got = records(out / "train.json")
    check_records(got, str(out / "train.json"))  # training's check: was "an offset is wrong"
    spans = {}
    for record in got:
        spans.setdefault(record["smiles"], set()).add(record["molecule_fp"]["offset"])
    assert all(len(offsets) == 1 for offsets in spans.values())  # a molecule's two records still share rows
    assert len({offsets.pop() for offsets in spans.values()}) == 4  # four molecules (the radical too), four spans


def sdf_folder(tmp_path) -> Path:
    data = tmp_path / "ligands"
    write_sdf(data / "set.sdf", 1, 2, 3)
    return data


def run_sdf(data: Path, out: Path, *extra):
    return prepare("--format", "sdf", "--input", data, "--out", out, *RUN, "--label-columns", "Y", *extra)


def test_a_log_written_into_the_input_folder_during_the_run_is_not_input(tmp_path, monkeypatch):
    data, real = sdf_folder(tmp_path), cli.compute

    def compute_and_log(*args, **kwargs):  # nohup.out growing while the run reads the folder
        (data / "nohup.out").write_text("deepmolm-prepare: computing\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "compute", compute_and_log)
    code, _ = run_sdf(data, tmp_path / "out")
    assert code == 0  # was 2: "--input changed while this run read it (nohup.out)"


def test_an_added_note_is_not_input_and_a_changed_input_file_is_named(tmp_path, capsys):
    data, out = sdf_folder(tmp_path), tmp_path / "out"
    assert run_sdf(data, out)[0] == 0
    (data / "NOTES.txt").write_text("conformers from vendor, batch B\n")
    code, printed = run_sdf(data, out)
    assert code == 0 and "already complete" in printed  # was 2: "input files changed (SHA-256)"
    write_sdf(data / "more.sdf", 4)
    write_sdf(data / "set.sdf", 1, 2)
    capsys.readouterr()
    assert run_sdf(data, out)[0] == 2
    assert "input files changed (SHA-256): more.sdf added, set.sdf edited" in capsys.readouterr().err


def test_a_split_file_reader_identifies_its_input_by_its_split_files(tmp_path):
    (tmp_path / "train.txt").write_text("CID\tSMILES\tdescription\n1\tCCO\tethanol\n")
    (tmp_path / "test.txt").write_text("CID\tSMILES\tdescription\n2\tCCC\tpropane\n")
    (tmp_path / "README.md").write_text("MolT5's ChEBI-20\n")
    assert [name for _, name in input_files_of("chebi20", tmp_path, {})] == ["train.txt", "test.txt"]
    assert [name for _, name in input_files_of("chebi20", tmp_path, {"splits": "test"})] == ["test.txt"]



def test_vis_chebi20_identifies_its_input_by_its_json_files_and_the_pictures_they_name(tmp_path):
    (tmp_path / "imgs").mkdir()
    for name in ("1.png", "2.png", "unused.png"):
        (tmp_path / "imgs" / name).write_bytes(name.encode())
    write_json(tmp_path / "train.json", [vis_record("trans_smiles", "imgs/1.png", "SMILES?", "The SMILES is CCO."),
                                         vis_record("struct_cap", "2.png", "Caption?", "A molecule.")])
    (tmp_path / "nohup.out").write_text("log\n")
    assert [name for _, name in input_files_of("vis-chebi20", tmp_path, {})] == ["imgs/1.png", "imgs/2.png",
                                                                                 "train.json"]


@pytest.mark.parametrize("options, named", [
    (["--label-columns", "logS", "--option", 'label_columns=["Injury, poisoning=injury"]'],
     "reader option label_columns is given both as --label-columns and as --option"),
    (["--label-columns", "logS", "--option", "id_column=a", "--option", "id_column=b"],
     "--option id_column is given twice ('id_column=a', 'id_column=b')"),
])
def test_a_reader_option_given_twice_is_a_usage_error(tmp_path, capsys, options, named):
    (tmp_path / "t.csv").write_text('smiles,logS,"Injury, poisoning",a,b\nCCO,1.5,0,x,y\n')
    code, _ = prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", tmp_path / "out",
                      *RUN, *options)
    assert code == 2 and named in capsys.readouterr().err  # was 0, the earlier value dropped
    assert not (tmp_path / "out").exists()


def test_a_reader_option_flag_given_twice_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("smiles,y,z\nCCO,1,2\n")
    with pytest.raises(SystemExit) as exit:  # was: z alone prepared, y dropped
        prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", tmp_path / "out", *RUN,
                "--label-columns", "y", "--label-columns", "z")
    assert exit.value.code == 2 and "--label-columns is given twice" in capsys.readouterr().err


def test_label_names_differing_only_in_punctuation_are_one_name(tmp_path):
    (tmp_path / "t.csv").write_text("smiles,logP,log_P\nCCO,-0.31,-0.1\n")
    with pytest.raises(ValueError, match=r"label names 'logP' and 'log_P' differ only in case, spaces or punctuation"):
        list(READERS["csv"](str(tmp_path / "t.csv"), {"label_columns": ["logP", "log_P"]}))
    with pytest.raises(ValueError, match=r"property names 'logP' \(record 'a'\) and 'log P' \(record 'b'\)"):
        check_property_names([{"id": "a", "properties": {"logP": 1.0}}, {"id": "b", "properties": {"log P": 2.0}}],
                             "train.json")


def test_ctrl_c_after_the_manifest_keeps_the_finished_output(tmp_path, monkeypatch):
    (tmp_path / "t.csv").write_text("smiles,y\nCCO,1.5\nCCC,2.5\n")
    real = shutil.rmtree

    def interrupted(path, *args, **kwargs):  # Ctrl-C once the chunks are gone, before .progress is
        if Path(path).name == ".progress":
            for chunk in Path(path).glob("chunk-*.json"):
                chunk.unlink()
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(output.shutil, "rmtree", interrupted)
    out = tmp_path / "out"
    code, _ = prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", out, *RUN, "--label-columns", "y")
    assert code == 130
    assert (out / "manifest.json").is_file() and len(records(out / "train.json")) == 2  # was: --out deleted
    monkeypatch.setattr(output.shutil, "rmtree", real)
    code, printed = prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", out, *RUN,
                            "--label-columns", "y")
    assert code == 0 and "already complete" in printed


def test_an_output_made_when_every_file_was_input_is_still_this_run(tmp_path, capsys, monkeypatch):
    # was: after the upgrade, every finished output whose folder held a file the reader never
    # reads was "a different run (input files changed (SHA-256): README.md removed)"
    data, out = sdf_folder(tmp_path), tmp_path / "out"
    assert run_sdf(data, out)[0] == 0
    (data / "README.md").write_text("vendor notes\n")
    manifest = json.loads((out / "manifest.json").read_text())
    old_rule = dict(manifest, inputs=sorted(manifest["inputs"] + [
        {"path": "README.md", "bytes": 13, "sha256": "0" * 64}], key=lambda e: e["path"]))
    (out / "manifest.json").write_text(json.dumps(old_rule))
    real_access = os.access
    with monkeypatch.context() as read_only:  # a shared dataset on a read-only mount, too
        read_only.setattr(os, "access", lambda p, mode: (False if str(p) == str(out) and mode & os.W_OK
                                                         else real_access(p, mode)))
        code, printed = run_sdf(data, out)
        assert code == 0 and "already complete (read-only)" in printed
    (out / "manifest.json").write_text(json.dumps(old_rule))
    code, printed = run_sdf(data, out)
    assert code == 0 and "already complete" in printed
    # a file the reader read that is gone is still a change
    gone = dict(old_rule, inputs=old_rule["inputs"] + [{"path": "zz.sdf", "bytes": 1, "sha256": "1" * 64}])
    (out / "manifest.json").write_text(json.dumps(gone))
    capsys.readouterr()
    assert run_sdf(data, out)[0] == 2 and "zz.sdf removed" in capsys.readouterr().err
