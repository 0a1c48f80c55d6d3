"""Tenth hostile sweep of deepmolm-prepare (sweep P, findings 1, 2, 4, 5, and the SIGINT hang).

- ``--text-columns note=LogP`` made LogP questions whose answers were the column's free text:
  the report scored "ethanol, 2 carbons" as LogP = 2, and a column with no number was refused
  only by eval.questions, after training. The unknown-task error listed LogP, HOMO... as valid.
- The same input file at another path (a staged copy per array task, a moved dataset) was
  "a different run": every shard after the first was refused, a rerun needed --overwrite.
- "computed 4 items in 2 chunks of 4": the 4 was the run's number of chunks.
- Two outputs' records in one file: "an offset or atom count is wrong", not the real cause.
- A Ctrl-C while the pool forked its workers left them waiting for work, and the run never ended.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from deepmolm_plugin.data.prepare.identity import differences, identity_of
from deepmolm_plugin.data.sources import chebi20_mm, csv_source, sdf_source  # noqa: F401  (registered)
from deepmolm_plugin.data.sources.base import check_options
from deepmolm_plugin.molecule.sidecar import SidecarFiles, reference

from test_prepare import prepare, records, tree

RUN = ["--image-size", "32", "--no-progress"]
CSV = "id,smiles,note,logp\nm1,CCO,\"ethanol, 2 carbons\",-0.3\nm2,CCC,propane,1.1\nm3,CCCC,butane,1.9\n"
SDF = "mol0\n  RDKit          2D\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n" \
      "    0.0000    0.0000    0.0000 C   0  0\n    1.5000    0.0000    0.0000 O   0  0\n" \
      "  1  2  1  0\nM  END\n> <note>\nmethanol, 1 carbon\n\n$$$$\n"


# --- 1. a text column is never given a numeric task ----------------------------------


@pytest.mark.parametrize("spec, name", [("note=LogP", "LogP"), ("note=HOMO-LUMO Gap", "HOMO-LUMO Gap"),
                                        ("note=property:foo", "foo"), ("note=Molecular Weight", "Molecular Weight")])
def test_csv_text_column_with_a_numeric_task_is_refused_before_anything(tmp_path, capsys, spec, name):
    (tmp_path / "in.csv").write_text(CSV)
    out = tmp_path / "out"
    code, _ = prepare("--format", "csv", "--input", tmp_path / "in.csv", "--out", out, "--id-column", "id",
                      "--text-columns", spec, *RUN)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()  # was: 0, LogP questions answered "ethanol, 2 carbons"
    [line] = err.strip().splitlines()
    assert "numeric task" in line and f"--label-columns note={name}" in line
    assert "a column of text takes a text task, note=TASK" in line  # (review: a caption column named like a property)


def test_a_column_named_like_a_numeric_task_is_refused_too(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("smiles,LogP\nCCO,about 2\n")
    code, _ = prepare("--format", "csv", "--input", tmp_path / "in.csv", "--out", tmp_path / "out",
                      "--text-columns", "LogP", *RUN)
    assert code == 2 and "--label-columns LogP=LogP" in capsys.readouterr().err


def test_sdf_text_field_with_a_numeric_task_is_refused(tmp_path, capsys):
    (tmp_path / "in.sdf").write_text(SDF)
    code, _ = prepare("--format", "sdf", "--input", tmp_path / "in.sdf", "--out", tmp_path / "out",
                      "--text-columns", "note=LUMO", *RUN)
    assert code == 2 and "--label-columns note=LUMO" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["csv", "sdf"])
def test_the_reader_refuses_it_from_its_options_alone(fmt):
    """Checked with the option names (before --out or the input is touched), by the reader too."""
    with pytest.raises(ValueError, match="numeric task 'SCF Energy'"):
        check_options(fmt, {"text_columns": ["note=SCF Energy"]})
    check_options(fmt, {"text_columns": ["note=description"]})  # a text task passes


def test_unknown_text_task_lists_only_text_tasks(tmp_path, capsys):
    (tmp_path / "in.csv").write_text(CSV)
    code, _ = prepare("--format", "csv", "--input", tmp_path / "in.csv", "--out", tmp_path / "out",
                      "--text-columns", "note=Notes", *RUN)
    err = capsys.readouterr().err
    assert code == 2 and "needs a text task" in err and "description" in err
    for numeric in ("LogP", "HOMO", "Molecular Weight", "Topological Polar Surface Area", "SCF Energy"):
        assert numeric not in err  # was listed as a valid text task


def test_text_task_still_makes_text_items(tmp_path):
    (tmp_path / "in.csv").write_text(CSV)
    code, _ = prepare("--format", "csv", "--input", tmp_path / "in.csv", "--out", tmp_path / "out",
                      "--id-column", "id", "--text-columns", "note=description", "--label-columns", "logp", *RUN)
    got = {r["id"]: r for r in records(tmp_path / "out" / "train.json")}
    assert code == 0 and got["m1:description"]["conversations"][1]["value"] == "ethanol, 2 carbons"
    assert got["m1:property:logp"]["properties"] == {"logp": -0.3}


# --- 2. the same input at another path is the same run --------------------------------


def stage(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy2(tmp_path / "in.csv", folder / "in.csv")  # `cp -p`: same name, size, mtime, bytes
    return folder / "in.csv"


def test_shards_reading_staged_copies_make_the_single_run(tmp_path, capsys):
    (tmp_path / "in.csv").write_text(CSV)
    args = ["--format", "csv", "--id-column", "id", "--label-columns", "logp", "--chunk-size", "1", *RUN]
    one, two = stage(tmp_path, "node1"), stage(tmp_path, "node2")
    out = tmp_path / "arr"
    assert prepare(*args, "--input", one, "--out", out, "--shard", "0/2")[0] == 0
    code, _ = prepare(*args, "--input", two, "--out", out, "--shard", "1/2")
    err = capsys.readouterr().err
    assert code == 0, err  # was 2: "holds output of a different run (setting input: ... -> ...)"
    assert "note: --input" in err and "node2" in err
    assert prepare(*args, "--input", two, "--out", out, "--merge")[0] == 0
    assert prepare(*args, "--input", tmp_path / "in.csv", "--out", tmp_path / "single")[0] == 0
    made, single = tree(out), tree(tmp_path / "single")
    assert made.pop("manifest.json") != single.pop("manifest.json")  # it records where the input was
    assert made == single


def test_a_moved_input_finds_its_finished_output(tmp_path, capsys):
    (tmp_path / "in.csv").write_text(CSV)
    args = ["--format", "csv", "--label-columns", "logp", *RUN]
    assert prepare(*args, "--input", tmp_path / "in.csv", "--out", tmp_path / "out")[0] == 0
    code, printed = prepare(*args, "--input", stage(tmp_path, "moved"), "--out", tmp_path / "out")
    assert code == 0 and "already complete" in printed  # was 2, and --overwrite recomputed all


def test_a_copy_with_other_bytes_but_the_same_name_size_and_mtime_is_another_run(tmp_path, capsys):
    """The checksums of an earlier run are reused by size and mtime only at the same path."""
    (tmp_path / "in.csv").write_text(CSV)
    args = ["--format", "csv", "--label-columns", "logp", *RUN]
    assert prepare(*args, "--input", tmp_path / "in.csv", "--out", tmp_path / "out")[0] == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "in.csv").write_text(CSV.replace("1.1", "1.2"))
    stat = (tmp_path / "in.csv").stat()
    os.utime(other / "in.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    code, _ = prepare(*args, "--input", other / "in.csv", "--out", tmp_path / "out")
    assert code == 2 and "in.csv edited" in capsys.readouterr().err


def test_a_renamed_input_is_another_run(tmp_path, capsys):
    """Item ids hold the file's stem: the name relative to --input is part of the identity."""
    (tmp_path / "in.csv").write_text(CSV)
    args = ["--format", "csv", "--label-columns", "logp", *RUN]
    assert prepare(*args, "--input", tmp_path / "in.csv", "--out", tmp_path / "out")[0] == 0
    shutil.copy2(tmp_path / "in.csv", tmp_path / "renamed.csv")
    assert prepare(*args, "--input", tmp_path / "renamed.csv", "--out", tmp_path / "out")[0] == 2
    assert "renamed.csv added" in capsys.readouterr().err


def test_chebi20_mm_image_dir_is_compared_as_given_or_not():
    """image_dir is a cache of pictures taken from image.zip (an input file, by checksum)."""
    def state(image_dir):
        options = {"image_dir": image_dir} if image_dir is not None else {}
        return {"schema": 1, "versions": {}, "inputs": [{"path": "image.zip", "sha256": "ab", "bytes": 1}],
                "settings": {"format": "chebi20-mm", "input": "/x", "reader_options": options}}

    assert identity_of(state("/scratch/a")) == identity_of(state("/tmp/job7/cache"))
    assert identity_of(state(None)) != identity_of(state("/scratch/a"))
    assert differences(state(None), state("/a")) == ["setting reader_options: {} -> {'image_dir': '/a'}"]


# --- 4. the shard summary -------------------------------------------------------------


def test_shard_summary_says_which_chunks(tmp_path):
    (tmp_path / "in.csv").write_text(CSV)
    code, printed = prepare("--format", "csv", "--input", tmp_path / "in.csv", "--out", tmp_path / "out",
                            "--label-columns", "logp", "--chunk-size", "1", "--shard", "0/2", *RUN)
    assert code == 0 and "computed 2 items in 2 of the run's 3 chunks" in printed  # was "in 2 chunks of 3"


# --- 5. records of two outputs in one file --------------------------------------------


def sidecar_with(folder: Path, blocks) -> list:
    """fp/train.npy of `blocks` (row arrays) in `folder`, and their references."""
    (folder / "fp").mkdir(parents=True)
    np.save(folder / "fp" / "train.npy", np.concatenate(blocks).astype(np.int16))
    refs, offset = [], 0
    for block in blocks:
        refs.append(reference("fp/train.npy", offset, len(block), block))
        offset += len(block)
    return refs


def test_overlap_of_another_outputs_record_names_the_mixed_outputs(tmp_path):
    rows = np.arange(40, dtype=np.int16).reshape(10, 4)
    [here] = sidecar_with(tmp_path / "a", [rows[:8]])
    [there] = sidecar_with(tmp_path / "b", [rows[2:5] + 100])  # another output's 3-atom molecule, offset 0
    cause = SidecarFiles(str(tmp_path / "a")).overlap_cause({"x": here, "y": there})
    assert "record 'y'" in cause and "several deepmolm-prepare outputs" in cause
    assert "train on each output's own records, or prepare the inputs together" in cause


def test_training_records_of_two_outputs_concatenated_name_the_mixed_outputs(tmp_path):
    # sweep P: the launcher's check said "an offset or atom count is wrong" for records of two
    # deepmolm-prepare outputs put into one file (each names its sidecar relative to its own folder)
    from deepmolm_plugin.data.records import check_sidecar_overlaps

    rows = np.arange(40, dtype=np.int16).reshape(10, 4)
    [here] = sidecar_with(tmp_path / "a", [rows[:8]])
    [there] = sidecar_with(tmp_path / "b", [rows[2:5] + 100])
    records = [{"id": "x", "molecule_fp": here}, {"id": "y", "molecule_fp": there}]
    with pytest.raises(ValueError, match=r"read partly the same rows of sidecar fp/train.npy .*several "
                                         r"deepmolm-prepare outputs.*train on each output's own records"):
        check_sidecar_overlaps(records, str(tmp_path / "a" / "combined.json"))


def test_overlap_of_one_outputs_records_is_a_wrong_offset(tmp_path):
    rows = np.arange(40, dtype=np.int16).reshape(10, 4)
    first, second = sidecar_with(tmp_path, [rows[:4], rows[4:9]])
    files = SidecarFiles(str(tmp_path))
    edited = dict(second, offset=2, digest=None)  # by hand, no digest: either cause
    assert files.overlap_cause({"x": first, "y": edited}).startswith("an offset or atom count is wrong, or the "
                                                                     "records come from several")
    both_match = dict(first, atoms=2, digest=reference("fp/train.npy", 0, 2, rows[:2])["digest"])
    assert files.overlap_cause({"x": first, "y": both_match}).startswith("an offset or atom count is wrong (")


def test_a_foreign_reference_read_says_the_remedy(tmp_path):
    rows = np.arange(40, dtype=np.int16).reshape(10, 4)
    sidecar_with(tmp_path, [rows[:4]])
    foreign = reference("fp/train.npy", 0, 4, rows[:4] + 1)
    with pytest.raises(Exception, match="train on each output's own records"):
        SidecarFiles(str(tmp_path)).rows(foreign, 4)


# --- the Ctrl-C while the pool starts -------------------------------------------------


def test_ctrl_c_while_the_pool_forks_its_workers_ends_the_run(tmp_path):
    """A SIGINT that lands after the workers are forked and before the pool's thread that
    stops them runs (here: delivered at that very point) raised out of
    ProcessPoolExecutor.submit: the workers waited for work forever, and the interpreter's
    exit waited for them (the parent in do_wait, one worker reading the pipe, one in a futex)."""
    script = textwrap.dedent(f"""
        import concurrent.futures.process as pool_module, multiprocessing, signal
        from deepmolm_plugin.data.prepare.items import WorkSettings
        from deepmolm_plugin.data.prepare.schedule import start_pool
        sent, original = [], pool_module._ExecutorManagerThread.__init__
        def interrupted_init(self, executor):  # the workers are running; the thread is not yet
            if not sent:
                sent.append(1)
                signal.raise_signal(signal.SIGINT)  # its handler runs here, as after any bytecode
            original(self, executor)
        pool_module._ExecutorManagerThread.__init__ = interrupted_init
        work = WorkSettings(out={str(tmp_path)!r}, tmp={str(tmp_path / 'tmp')!r}, input_root={str(tmp_path)!r},
                            policy="auto", image_size=32)
        try:
            start_pool(multiprocessing.get_context("fork"), work, 2)
            print("started")
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"),
                                                                  str(Path(__file__).parents[1])) if p))
    try:
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:  # the old code: the process waits for its idle workers forever
        pytest.fail(f"still running 60 s after the interrupt: {e.stdout!r}")
    assert done.returncode == 0 and done.stdout.strip() == "interrupted", done.stderr


def test_a_molecule_over_the_cap_names_this_tools_option(tmp_path, capsys):
    # review: the refusal's words name where the cap was set; for deepmolm-prepare its own --max-atoms
    (tmp_path / "in.csv").write_text("id,smiles,logp\nbig," + "C" * 30 + ",1.0\nm1,CCO,0.5\n")
    out = tmp_path / "out"
    prepare("--format", "csv", "--input", tmp_path / "in.csv", "--out", out, "--id-column", "id",
            "--label-columns", "logp=LogP", "--max-atoms", "20", *RUN)
    [failure] = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["id"].startswith("big") and "too large: 30 heavy atoms > max_atoms=20" in failure["reason"]
    assert "raise it with --max-atoms, '--max-atoms none' lifts it" in failure["reason"], failure
