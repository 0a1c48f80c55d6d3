"""Hostile inputs, third sweep: fingerprint settings, lone hydrogens, the sidecar store and
the tools' output files. Each case once gave other tokens, lost data or failed unclearly;
the comment says what used to happen ("was: ...")."""

import json
import logging
import os

import numpy as np
import pytest

from deepmolm_plugin.molecule import MoleculeError, fingerprint_record, molecule_from_smiles
from deepmolm_plugin.molecule.sidecar import SidecarBuilder, SidecarError, SidecarFiles, dtype_for, reference
from deepmolm_plugin.molecule.tools import fingerprint_main, render_main
from deepmolm_plugin.molecule_fp import FingerprintSettings


@pytest.fixture(scope="module")
def ethanol():
    return molecule_from_smiles("CCO", "ethanol", policy="generate")


# --- fingerprint settings ---------------------------------------------------------------
@pytest.mark.parametrize("fields, message", [
    (dict(bits=1), r"bits >= 2 .* got bits=1"),                 # was: every hash folded to 0
    (dict(bits=2**40), r"bits <= 4294967296"),                  # was: taken; E3FP hashes are 32-bit
    (dict(levels=99), r"levels <= 64"),                         # was: taken; levels=2**31 a 48 GB array
    (dict(bits=4096.7), r"bits \(fp_bits\) must be an integer, got 4096.7"),  # was: failed in e3fp
    (dict(bits="4096"), r"must be an integer, got '4096'"),      # was: numpy's ufunc 'log2' error
    (dict(bits=True), r"must be an integer, got True"),         # was: bits=1
    (dict(levels=1.5), r"levels \(fp_levels\) must be an integer"),
])
def test_absurd_fingerprint_settings_are_refused_where_they_are_made(fields, message):
    with pytest.raises(ValueError, match=message):
        FingerprintSettings(**fields)


def test_tool_rows_carry_their_settings_and_a_model_with_others_refuses_them(tmp_path, capsys):
    # was: deepmolm-fingerprint always hashed at 4096 bits and said nothing of it; its rows,
    # pasted into training records of an fp_bits 8192 model, were taken (hashes below 4096 are
    # valid 8192-bit tokens) while the same molecule's SMILES was hashed at 8192 everywhere else
    from deepmolm_plugin.molecule.inputs import InputError, InputResolver

    out = tmp_path / "fp.jsonl"
    assert fingerprint_main(["--smiles", "CCO", "--fp-bits", "8192", "--out", str(out), "--no-progress"]) == 0
    [line] = [json.loads(text) for text in out.read_text().splitlines()]
    assert (line["fp_bits"], line["fp_levels"]) == (8192, 4)
    wide = InputResolver(fp=FingerprintSettings(8192, 4), policy="generate")
    assert wide.molecule_fp(line, "r").tolist() == line["molecule_fp"]  # the model takes its own rows
    with pytest.raises(SystemExit):
        fingerprint_main(["--smiles", "CCO", "--fp-bits", "1"])
    assert "--fp-bits / --fp-levels: fingerprint settings need bits >= 2" in capsys.readouterr().err
    assert fingerprint_main(["--smiles", "CCO", "--out", str(out), "--no-progress"]) == 0
    default = json.loads(out.read_text())
    record = {"smiles": "CCO", "molecule_fp": default["molecule_fp"], "fp_bits": 4096, "fp_levels": 4}
    with pytest.raises(InputError, match=r"record 'r': its molecule_fp was made with fp_bits=4096, but "
                                         r"the model uses fp_bits=8192, fp_levels=4: make them with the model's"):
        wide.molecule_fp(record, "r")
    for stamp in ({"fp_bits": 8192, "fp_levels": None}, {"fp_bits": "8192", "fp_levels": 4.0}):  # one, or as text
        assert wide.molecule_fp({**line, **stamp}, "r").shape[0] == 3
    unstamped = {k: v for k, v in record.items() if not k.startswith("fp_")}
    # rows without a stamp: told apart by their level-0 column against the SMILES (it was
    # taken); a hash below 4096 folds alike at 8192, so this catches 2 of ethanol's 3 rows
    with pytest.raises(InputError, match="2 of 3 rows differ .* or were made with other settings than the "
                                         "model's fp_bits=8192"):
        wide.molecule_fp(unstamped, "r")


def test_settings_from_a_config_are_not_truncated_and_null_is_the_default():
    with pytest.raises(ValueError, match="got 4096.9"):  # was: int(4096.9) = 4096
        FingerprintSettings.from_config({"fp_bits": 4096.9})
    # was: a TypeError for null
    assert FingerprintSettings.from_config({"fp_bits": None, "fp_levels": None}) == FingerprintSettings()
    assert FingerprintSettings(np.int64(1024), np.int32(2)) == FingerprintSettings(1024, 2)


def test_bits_of_no_power_of_two_fold_alike_and_fingerprinting_leaves_logging_alone(ethanol):
    # was: Fingerprinter(bits=1000) logged "bits are not multiple of 2" per molecule, and
    # e3fp's logging.debug in run() gave the root a stderr handler at the first molecule
    root = logging.getLogger()
    saved = list(root.handlers)  # pytest's capture handlers, added for each test phase
    root.handlers[:] = []  # as in a script that configured no logging
    try:
        wide = fingerprint_record(ethanol, FingerprintSettings(2**32, 4))
        narrow = fingerprint_record(ethanol, FingerprintSettings(1000, 4))
        assert root.handlers == []
    finally:
        root.handlers[:] = saved
    expected = np.where(wide.numpy() >= 0, wide.numpy() % 1000, -1)
    np.testing.assert_array_equal(narrow.numpy(), expected)


# --- hydrogens bonded to no heavy atom ----------------------------------------------------
@pytest.mark.parametrize("smiles, named", [
    ("[H+].[Cl-]", "H1 (charge +1)"),     # was: the tokens of Cl- alone
    ("[Na+].[H-]", "H2 (charge -1)"),     # was: the tokens of Na+ alone
    ("[H][H].CCO", "H1, H2"),             # was: the tokens of ethanol
])
def test_hydrogens_bonded_to_no_heavy_atom_are_an_error_not_left_out(smiles, named):
    record = molecule_from_smiles(smiles, "salt", policy="generate")
    with pytest.raises(MoleculeError, match="bonded to no heavy atom") as info:
        fingerprint_record(record)
    assert named in info.value.reason and "'salt'" in str(info.value)


def test_fragments_largest_drops_a_lone_hydrogen_with_a_note():
    record = molecule_from_smiles("[H+].[Cl-]", "hcl", policy="generate", fragments="largest")
    assert fingerprint_record(record).tolist() == fingerprint_record(molecule_from_smiles("[Cl-]")).tolist()
    assert any("dropped" in note for note in record.notes)


# --- the sidecar store ---------------------------------------------------------------------
def test_sidecar_builder_refuses_rows_its_dtype_cannot_hold(tmp_path):
    builder = SidecarBuilder(tmp_path / "fp.tmp.npy", 2, 4, dtype_for(4096))
    with pytest.raises(SidecarError, match=r"values -1\.\.70000 do not fit this int16"):  # was: stored as 4464
        builder.append(np.array([[70000, 5, -1, -1]], dtype=np.int64))
    with pytest.raises(SidecarError, match="must be integers"):  # was: 1.9 stored as 1
        builder.append(np.array([[1.9, 5, -1, -1]]))
    assert dtype_for(4096) == np.int16 and dtype_for(2**31) == np.int32
    assert dtype_for(2**32) == np.int64  # was: int32, so hashes from 2**31 on wrapped negative


def _sidecar(tmp_path, name="fp.npy", rows=10):
    np.save(tmp_path / name, np.arange(rows * 4, dtype=np.int16).reshape(rows, 4))
    return tmp_path / name


def test_a_sidecar_longer_than_its_header_says_is_refused(tmp_path):
    with open(_sidecar(tmp_path), "ab") as f:  # rows appended, or a header edited to fewer rows
        f.write(b"\0" * 16)
    with pytest.raises(SidecarError, match="header and rows disagree"):  # was: read, extra bytes ignored
        SidecarFiles(str(tmp_path)).rows(reference("fp.npy", 0, 1), 4)


def test_a_file_that_is_no_npy_says_so(tmp_path):
    (tmp_path / "fp.npy").write_text("offset,atoms\n0,3\n")
    with pytest.raises(SidecarError, match=r"is not a \.npy file \(it starts with b'offset'"):
        SidecarFiles(str(tmp_path)).rows(reference("fp.npy", 0, 1), 4)  # was: "contains pickled (object) data"


@pytest.mark.parametrize("change", ["replace", "truncate"])
def test_a_sidecar_changed_while_open_is_an_error_not_stale_rows(tmp_path, change):
    path = _sidecar(tmp_path)
    files = SidecarFiles(str(tmp_path))
    assert files.rows(reference("fp.npy", 1, 1), 4).tolist() == [[4, 5, 6, 7]]
    if change == "replace":  # a new deepmolm-prepare run renames its sidecar into place
        np.save(tmp_path / "new.npy", np.arange(40, dtype=np.int16).reshape(10, 4) + 100)
        os.replace(tmp_path / "new.npy", path)
    else:  # cut short in place: reading the old map's pages killed the process with SIGBUS
        os.truncate(path, 128)
    with pytest.raises(SidecarError, match="changed since it was opened"):  # was: [[4, 5, 6, 7]] again
        files.rows(reference("fp.npy", 1, 1), 4)


# --- the tools' output files -----------------------------------------------------------------
@pytest.fixture
def smiles_csv(tmp_path):
    path = tmp_path / "mols.csv"
    path.write_text("smiles,id\nCCO,ethanol\nC1CC,bad\n")
    return path


@pytest.mark.parametrize("option", ["--out", "--failures"])
def test_fingerprint_output_that_is_an_input_is_refused_not_emptied(smiles_csv, capsys, option):
    extra = ["--out", str(smiles_csv.parent / "o.jsonl")] if option == "--failures" else []
    with pytest.raises(SystemExit) as info:  # was: the input emptied, then "CSV has no 'smiles' column"
        fingerprint_main([str(smiles_csv), option, str(smiles_csv.parent / "." / "mols.csv"), *extra, "--no-progress"])
    assert info.value.code == 2 and "is the input file" in capsys.readouterr().err
    assert smiles_csv.read_text().startswith("smiles,id\nCCO")


def test_fingerprint_failures_and_out_must_differ(smiles_csv, capsys):
    out = smiles_csv.parent / "o.jsonl"
    with pytest.raises(SystemExit):  # was: both written into one file, cut into each other
        fingerprint_main([str(smiles_csv), "--out", str(out), "--failures", str(out), "--no-progress"])
    assert "--failures" in capsys.readouterr().err and not out.exists()
    devnull = ["--out", os.devnull, "--failures", os.devnull, "--no-progress"]
    assert fingerprint_main([str(smiles_csv), *devnull]) == 1  # /dev/null may take both


def test_render_failures_must_not_be_the_index_or_an_input(smiles_csv, tmp_path, capsys):
    out = tmp_path / "pngs"
    for failures in (out / "index.jsonl", smiles_csv):
        with pytest.raises(SystemExit):
            render_main([str(smiles_csv), "--out", str(out), "--failures", str(failures), "--no-progress"])
    assert smiles_csv.read_text().startswith("smiles,id")
    assert render_main([str(smiles_csv), "--out", str(out), "--failures", str(tmp_path / "f.jsonl"),
                        "--no-progress", "--size", "64"]) == 1
    assert [json.loads(line)["id"] for line in (tmp_path / "f.jsonl").read_text().splitlines()] == ["bad"]


def test_settings_beyond_their_bounds_are_refused_by_every_entry_point(tmp_path, capsys):
    # was: --fp_bits 2**40 passed the launcher's `>= 1` and the projector config; the model
    # then failed allocating its table (or `eval.questions --fp-bits 1` raised a traceback)
    from deepmolm_plugin.eval import questions
    from deepmolm_plugin.projector import ProjectorConfig

    with pytest.raises(ValueError, match="ProjectorConfig.fp_bits 1048576 makes a fingerprint embedding table"):
        ProjectorConfig(hidden_size=4096, mm_hidden_size=64, num_heads=2, fp_bits=2**20)
    with pytest.raises(ValueError, match=r"bits <= 4294967296, got bits=1099511627776"):
        ProjectorConfig(hidden_size=8, mm_hidden_size=64, num_heads=2, fp_bits=2**40)
    data = tmp_path / "data.json"
    data.write_text("[]")
    with pytest.raises(SystemExit) as exit_:
        questions.main([str(data), str(tmp_path / "q.jsonl"), "--fp-bits", "1"])
    assert exit_.value.code == 2 and "--fp-bits / --fp-levels: fingerprint settings need bits >= 2" in capsys.readouterr().err


def test_a_render_rerun_leaves_no_picture_of_a_record_that_now_fails(tmp_path):
    # was: every picture of the earlier run stayed (a record of an edited input that now
    # fails kept its old PNG beside an index line saying it failed); the earlier index's
    # pictures go, files in --out that no index listed are not ours and stay
    out = tmp_path / "pngs"
    assert render_main(["--smiles", "CCO", "CCN", "--out", str(out), "--no-progress", "--size", "64"]) == 0
    (out / "mine.png").write_bytes(b"not the tool's")
    assert render_main(["--smiles", "CCO", "C1CC", "--out", str(out), "--no-progress", "--size", "64"]) == 1
    assert sorted(p.name for p in out.glob("*.png")) == ["CCO.png", "mine.png"]
    (out / "index.jsonl").write_text("not json\n")
    with pytest.raises(SystemExit) as exit_:
        render_main(["--smiles", "CCO", "--out", str(out), "--no-progress", "--size", "64"])
    assert exit_.value.code == 2


def test_render_never_deletes_or_overwrites_files_it_did_not_write(tmp_path, capsys):
    """was: another dataset's index.jsonl in --out made its photo1.jpg be deleted and the
    user's a.png be overwritten by a depiction, and `--failures out/a.png` was written over
    by the picture of the record named a."""
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "photo1.jpg").write_text("data")
    (out / "index.jsonl").write_text('{"image": "photo1.jpg", "caption": "x"}\n')
    with pytest.raises(SystemExit) as exit_:
        render_main(["--smiles", "CCO", "--out", str(out), "--no-progress", "--size", "64"])
    assert exit_.value.code == 2 and "line 1 of its index.jsonl is not a line deepmolm-render writes" in \
        capsys.readouterr().err
    assert (out / "photo1.jpg").read_text() == "data"

    smi = tmp_path / "one.smi"
    smi.write_text("CCO a\nCCN b\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.png").write_bytes(b"my own picture")
    assert render_main([str(smi), "--out", str(mine), "--failures", str(mine / "b.png"), "--no-progress",
                        "--size", "64"]) == 0
    assert (mine / "a.png").read_bytes() == b"my own picture" and (mine / "b.png").read_bytes() == b""
    index = [json.loads(line) for line in (mine / "index.jsonl").read_text().splitlines()]
    assert [line["image"] for line in index] == ["a__2.png", "b__2.png"]
    # a rerun removes its own pictures only, and makes the same ones
    assert render_main([str(smi), "--out", str(mine), "--no-progress", "--size", "64"]) == 0
    assert sorted(p.name for p in mine.iterdir()) == ["a.png", "a__2.png", "b.png", "b__2.png", "index.jsonl"]
