"""deepmolm-prepare, eleventh round (sweep X): an error writing the output itself (a full disk,
a quota, a file-size limit) is the run's, not the record's; an empty or null selection option
is refused; a label written `5.` gives no doubled full stop.

Was: a depiction that could not be written became the record's failure ("unexpected OSError:
[Errno 27] File too large"), committed in its chunk, so a rerun on a disk with space again
kept those records out; a full disk at assembly was three chained tracebacks; InputResolver
raised PIL's bare OSError into eval and training; `--option splits=[]` prepared every split."""

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from test_prepare import jsonl, prepare, records

TINY = ["--image-size", "32", "--no-progress"]


def _csv(tmp_path: Path, n: int) -> Path:
    data = tmp_path / "in.csv"
    data.write_text("id,smiles,y\n" + "".join(f"m{i},{'C' * i}O,{i}.5\n" for i in range(1, n + 1)))
    return data


def _args(data: Path, out: Path, chunk: int) -> list:
    return ["--format", "csv", "--input", data, "--out", out, "--label-columns", "y", "--id-column", "id",
            "--chunk-size", str(chunk), *TINY]


def _full_disk_after(monkeypatch, allowed: int, where) -> None:
    """os.replace into a path that `where` picks fails with ENOSPC after `allowed` such renames
    (per process: the workers are forked with this patch, each with its own count)."""
    real, count = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        if where(str(dst)):
            count[0] += 1
            if count[0] > allowed:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def _error_lines(err: str) -> list:
    return [line for line in err.splitlines() if line.strip()]


def test_full_disk_while_writing_a_depiction_stops_the_run_and_the_rerun_redoes_its_records(
        tmp_path, monkeypatch, capsys):
    data, out = _csv(tmp_path, 3), tmp_path / "out"
    _full_disk_after(monkeypatch, 1, lambda dst: f"{os.sep}images{os.sep}" in dst)
    code, _ = prepare(*_args(data, out, 1))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in _error_lines(err) if "error" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"deepmolm-prepare: error: cannot write {out}{os.sep}images{os.sep}")
    assert lines[0].endswith(": No space left on device; free space and rerun the same command to resume "
                             "(the chunks committed so far are kept)")
    assert not (out / "manifest.json").exists()
    monkeypatch.undo()  # space again: the first chunk is kept, the others are computed, nothing is lost
    code, printed = prepare(*_args(data, out, 1))
    assert code == 0
    assert "processed 2 items in 2 chunks now (1 chunks were already done)" in printed
    assert jsonl(out / "failures.jsonl") == []
    assert [r["id"] for r in records(out / "train.json")] == [f"m{i}:property:y" for i in (1, 2, 3)]


def test_a_worker_that_cannot_write_under_out_raises_the_run_error_not_a_failure_line(tmp_path):
    """ItemMaker itself: an unwritable images folder (a path under a file: refused even to
    root) and an unwritable one-record SDF file in its temporary folder."""
    from deepmolm_plugin.data.prepare.items import ItemMaker, WorkSettings
    from deepmolm_plugin.data.sources.base import MoleculeSpec, SourceItem
    from deepmolm_plugin.molecule.inputs import OutputWriteError
    from deepmolm_plugin.usage import DataError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    smiles = SourceItem(id="r1", split="train", task="property:y", molecule=MoleculeSpec(smiles="CCO"),
                        answer="The y is 1.")
    maker = ItemMaker(WorkSettings(out=str(blocker / "out"), tmp=str(tmp_path / "tmp"), input_root=str(tmp_path),
                                   policy="auto", image_size=32))
    with pytest.raises(OutputWriteError) as caught:
        maker.make(smiles)
    assert str(caught.value).startswith(f"cannot write {blocker / 'out' / 'images'}")
    assert isinstance(caught.value, DataError)  # training prints a DataError as one line, exit 1

    sdf = tmp_path / "m.sdf"
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    sdf.write_text(Chem.MolToMolBlock(mol) + "$$$$\n")
    structure = SourceItem(id="s1", split="train", task="property:y", molecule=MoleculeSpec(structure=(str(sdf), 0)),
                           answer="The y is 1.")
    maker = ItemMaker(WorkSettings(out=str(tmp_path / "out"), tmp=str(blocker / "tmp"), input_root=str(tmp_path),
                                   policy="auto", image_size=32))
    with pytest.raises(OutputWriteError) as caught:
        maker.make(structure)
    assert str(caught.value).startswith(f"cannot write {blocker / 'tmp'}")


def test_full_disk_at_assembly_is_one_line_and_the_rerun_assembles_the_committed_chunks(
        tmp_path, monkeypatch, capsys):
    data, out = _csv(tmp_path, 4), tmp_path / "out"
    _full_disk_after(monkeypatch, 0, lambda dst: Path(dst).name == "train.json")
    code, _ = prepare(*_args(data, out, 2))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"deepmolm-prepare: error: cannot write {out / 'train.json'}: No space left on device; free space" in err
    monkeypatch.undo()
    code, printed = prepare(*_args(data, out, 2))
    assert code == 0 and "processed 0 items in 0 chunks now (2 chunks were already done)" in printed
    assert len(records(out / "train.json")) == 4


def test_a_file_size_limit_at_assembly_is_one_line_not_chained_tracebacks(tmp_path):
    """The sweep's repro, a real EFBIG: the records file outgrows the limit while it is written
    (its buffered rest failed again in each file's close: three chained tracebacks)."""
    data, out = _csv(tmp_path, 8), tmp_path / "out"

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (3072, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    command = [sys.executable, "-m", "deepmolm_plugin.data.prepare", *map(str, _args(data, out, 4))]
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=limited, env=dict(os.environ),
                          timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert _error_lines(done.stderr) == [
        f"deepmolm-prepare: error: cannot write {out / 'train.json'}: File too large; raise the file-size limit "
        "(ulimit -f) and rerun the same command to resume (the chunks committed so far are kept)"]
    again = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "(2 chunks were already done)" in again.stdout and len(records(out / "train.json")) == 8


def test_input_resolver_that_cannot_write_a_depiction_says_so_naming_the_file(tmp_path, monkeypatch):
    from deepmolm_plugin.molecule.inputs import InputError, InputResolver, OutputWriteError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    resolver = InputResolver(render_folder=str(blocker / "renders"), kind="question", render_size=32)
    with pytest.raises(OutputWriteError) as caught:
        resolver.resolve({"smiles": "CCO"}, "q1", fingerprint=False)
    assert not isinstance(caught.value, InputError)  # eval turns InputError into one question's failure
    message = str(caught.value)
    assert message.startswith(f"cannot write {blocker / 'renders'}{os.sep}")
    assert "the depiction of question 'q1' in the render folder: an output of this run, not a problem of the " \
           "question" in message
    # a full disk at the rename: the error names the file, and no half picture is left behind
    renders = tmp_path / "renders"
    resolver = InputResolver(render_folder=str(renders), kind="record", render_size=32)
    _full_disk_after(monkeypatch, 0, lambda dst: dst.endswith(".png"))
    with pytest.raises(OutputWriteError, match="No space left on device"):
        resolver.resolve({"smiles": "CCO"}, "r1", fingerprint=False)
    assert list(renders.iterdir()) == []


def _chebi(tmp_path: Path) -> Path:
    folder = tmp_path / "chebi"
    folder.mkdir()
    (folder / "train.txt").write_text("CID\tSMILES\tdescription\n1\tCCO\tThe molecule is ethanol.\n")
    (folder / "test.txt").write_text("CID\tSMILES\tdescription\n3\tCCCCO\tThe molecule is butanol.\n")
    return folder


@pytest.mark.parametrize("value, said", [
    ("[]", "chebi20: option splits is an empty list and names nothing: name at least one, or leave the option "
           "out for all"),
    ("null", "chebi20: option(s) ['splits'] are JSON null: give a value, or leave the option out")])
def test_an_empty_or_null_splits_option_is_refused_not_read_as_every_split(tmp_path, capsys, value, said):
    out = tmp_path / "out"
    code, _ = prepare("--format", "chebi20", "--input", _chebi(tmp_path), "--out", out, "--option",
                      f"splits={value}", *TINY)
    err = capsys.readouterr().err
    assert code == 2 and said in err, err
    assert not (out / "test.json").exists() and not (out / "manifest.json").exists()


def test_option_list_refuses_an_empty_list_for_every_reader_that_takes_names():
    from deepmolm_plugin.data.sources.base import option_list

    for empty in ([], ()):
        with pytest.raises(ValueError, match="tasks is an empty list and names nothing"):
            option_list("vis-chebi20", "tasks", empty)
    assert option_list("vis-chebi20", "tasks", None) is None  # not given
    assert option_list("vis-chebi20", "tasks", "a,b") == ["a", "b"]


def test_a_label_written_with_a_trailing_point_gives_one_full_stop_and_other_spellings_stay():
    from deepmolm_plugin.data.prompts import property_answer
    from deepmolm_plugin.eval.metrics.numbers import parse_number

    assert property_answer("y", "5.") == "The y is 5."
    assert property_answer("y", "-5.") == "The y is -5."
    for value in (".5", "007", "1E5", "2.50"):  # "the value as the file writes it"
        assert property_answer("y", value) == f"The y is {value}."
    assert parse_number(property_answer("y", "5.")) == 5.0
