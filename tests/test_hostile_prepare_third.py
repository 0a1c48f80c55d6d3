"""Third hostile-input sweep of deepmolm-prepare and the dataset readers.

Each case crashed the run, lost records without naming them, reused stale output or
refused with a misleading message before (the "was:" comments).
"""

import csv
import json
import os
import zipfile

import pytest

from deepmolm_plugin.data.prepare import schedule
from deepmolm_plugin.data.sources import READERS, chebi20_mm, csv_source, sdf_source  # noqa: F401  (registered)
from deepmolm_plugin.data.sources.base import MoleculeSpec, SourceItem, register_reader

from test_prepare import FAST, jsonl, prepare, records
from test_sources import errors, items, read, vis_record, write_json

# One SDF record (ethanol's heavy atoms, 3D), with a data field Y = {value}.
MOLBLOCK = """{title}
     RDKit          3D

  3  2  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    1.5200    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    2.0300    1.3400    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  2  3  1  0
M  END
> <Y>
{value}

$$$$
"""


def write_sdf(path, *values):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(MOLBLOCK.format(title=f"m{v}", value=v) for v in values))


def small_run(*extra):
    return ["--image-size", "32", "--no-progress", "--label-columns", "y", *extra]


def failures(out):
    return [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]


def test_a_split_named_manifest_or_spelled_in_other_case_is_a_failure_not_a_crash(tmp_path):
    # was: a row with split "manifest" ended the whole run with a "reader bug" traceback;
    # "MANIFEST" and "Train" (next to "train") were accepted, and on a case-insensitive
    # file system MANIFEST.json / Train.json are manifest.json / train.json.
    (tmp_path / "t.csv").write_text("smiles,y,split\nCCO,1,train\nCCC,2,manifest\nCCN,3,Train\nCCCl,4,MANIFEST\n"
                                    "CCBr,5,CON\n")  # was accepted: CON.json cannot be made on Windows
    out = tmp_path / "out"
    code, _ = prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", out,
                      *small_run("--split-column", "split"))
    assert code == 0 and sorted(p.name for p in out.glob("*.json")) == ["manifest.json", "train.json"]
    reasons = {f["id"]: (f["stage"], f["reason"]) for f in failures(out)}
    assert reasons["t#1"][0] == "split" and "manifest.json" in reasons["t#1"][1]
    assert reasons["t#3"][0] == "split" and "'MANIFEST'" in reasons["t#3"][1]
    assert reasons["t#2:property:y"][0] == "split" and "only by case from the split 'train'" in reasons["t#2:property:y"][1]
    assert reasons["t#4"] == ("split", "split 'CON' is a device name on Windows, where CON.json cannot be made")


def test_line_ends_inside_a_quoted_cell_of_a_crlf_file_are_newlines(tmp_path):
    # was: the gpt answer kept "\r\n", which the model was trained to write
    (tmp_path / "t.csv").write_bytes(b'smiles,desc\r\nCCO,"An alcohol.\r\nIt burns."\r\n')
    out = tmp_path / "out"
    code, _ = prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", out, "--image-size", "32",
                      "--no-progress", "--text-columns", "desc=description")
    [record] = records(out / "train.json")
    assert code == 0 and record["conversations"][1]["value"] == "An alcohol.\nIt burns."


def test_a_relative_out_folder_makes_sdf_records(tmp_path, monkeypatch):
    # was: with a relative --out every SDF record failed ("structure file
    # out/.progress/tmp/.../record.sdf does not exist": looked for inside the input folder).
    write_sdf(tmp_path / "in" / "a.sdf", 1, 2)
    monkeypatch.chdir(tmp_path)
    code, _ = prepare("--format", "sdf", "--input", "in", "--out", "out", "--image-size", "32", "--no-progress",
                      "--label-columns", "Y")
    assert code == 0 and failures(tmp_path / "out") == []
    assert len(json.loads((tmp_path / "out" / "train.json").read_text())) == 2


def test_hidden_sdf_files_are_not_inputs(tmp_path):
    # was: the reader read .old/h.sdf, the run's input checksums skipped it (hidden): after
    # editing it a rerun said "already complete" and kept the stale records.
    write_sdf(tmp_path / "a.sdf", 1)
    write_sdf(tmp_path / ".old" / "h.sdf", 2)
    assert list(items(read("sdf", tmp_path, label_columns="Y"))) == ["a.sdf#0:property:Y"]
    (tmp_path / "a.sdf").unlink()
    with pytest.raises(FileNotFoundError, match="hidden ones are not read"):
        read("sdf", tmp_path, label_columns="Y")


def test_vis_picture_in_a_hidden_folder_is_not_read(tmp_path):
    # was: copied, though the input checksums skip hidden files (an edit went unnoticed).
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "1.png").write_bytes(b"\x89PNG fake")
    write_json(tmp_path / "train.json", [vis_record("trans_smiles", ".cache/1.png", "SMILES?", "CCO")])
    bad = errors(read("vis-chebi20", tmp_path))
    assert bad["vis-chebi20-train-1-smiles"].stage == "image"
    assert "hidden files are not read" in bad["vis-chebi20-train-1-smiles"].reason


@pytest.mark.parametrize("fmt,options", [
    ("csv", {"label_columns": ["a=Y", "b=Y"]}),
    ("csv", {"label_columns": ["a", "a"]}),
    ("sdf", {"label_columns": ["a"], "text_columns": ["b=property:a"]}),
])
def test_two_columns_for_one_task_are_refused_at_once(tmp_path, fmt, options):
    # was: both read; every row's second item failed as "duplicate-id" after the whole run.
    (tmp_path / "t.csv").write_text("smiles,a,b\nCCO,1,2\n")
    write_sdf(tmp_path / "t.sdf", 1)
    with pytest.raises(ValueError, match=r"each task needs its own column \(task 'property:.' from columns"):
        list(READERS[fmt](str(tmp_path / f"t.{fmt}"), options))


def test_csv_header_after_blank_lines_or_unreadable(tmp_path):
    # was: blank lines before the header: "is empty"; a header field over the csv field
    # limit: a csv.Error traceback instead of an error line.
    (tmp_path / "t.csv").write_text("\n\nsmiles,y\nCCO,1\n")
    assert list(items(read("csv", tmp_path / "t.csv", label_columns="y"))) == ["t#0:property:y"]
    (tmp_path / "h.csv").write_text("smiles,y," + "x" * (csv.field_size_limit() + 1) + "\nCCO,1,2\n")
    with pytest.raises(ValueError, match=r"h.csv: cannot read the header \(line 1\): field larger"):
        list(READERS["csv"](str(tmp_path / "h.csv"), {"label_columns": ["y"]}))
    (tmp_path / "e.csv").write_text("\n\n")
    with pytest.raises(ValueError, match="is empty"):
        list(READERS["csv"](str(tmp_path / "e.csv"), {"label_columns": ["y"]}))


def test_an_unclosed_quote_names_the_lines_it_swallowed(tmp_path):
    # was: "row 1 has 1 fields, the header 2" and the 3 rows after it gone unnamed.
    (tmp_path / "t.csv").write_text('smiles,y\nCCO,0\n"CC,1\nCN,2\nCCC,3\nCO,4\n')
    out = read("csv", tmp_path / "t.csv", label_columns="y")
    assert list(items(out)) == ["t#0:property:y"]
    assert "row 1 (lines 3-6 joined by quotes; a quote never closed" in errors(out)["t#1"].reason


def _mm_input(folder):
    """A one-row chebi20-mm input folder with its image.zip."""
    folder.mkdir(exist_ok=True)
    with open(folder / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(chebi20_mm.HEADER)
        writer.writerow(["9", "CCO", "Ethanol.", "20.2", "-0.1", "", "ethanol", ""])
    with zipfile.ZipFile(folder / "image.zip", "w") as archive:
        archive.writestr("CID_9.png", b"\x89PNG fake")
    return folder


def test_chebi20_mm_property_values_are_plain_decimals(tmp_path):
    # was: float() read xlogp "1_5" as 15 and polararea "٢٠" as 20, labels the answers did not say
    data = _mm_input(tmp_path / "data")
    with open(data / "train.csv", "a", newline="") as handle:
        csv.writer(handle).writerow(["10", "CCC", "Propane.", "\u0662\u0660", "1_5", "", "propane", ""])
    out = read("chebi20-mm", data, tasks="Topological Polar Surface Area,LogP")
    assert items(out)["chebi20-mm-train-9-logp"].properties == {"LogP": -0.1}
    assert not any("-10-" in id for id in items(out))
    for id, message in (("chebi20-mm-train-10-logp", "xlogp '1_5' is not a number in plain decimals"),
                        ("chebi20-mm-train-10-topological-polar-surface-area", "polararea '\u0662\u0660' is not")):
        assert errors(out)[id].stage == "schema" and message in errors(out)[id].reason, errors(out)[id]


def test_chebi20_mm_relative_image_dir(tmp_path, monkeypatch):
    # was: a relative image_dir gave relative image paths, which the engine reads against the
    # input folder (every picture "not found", or another file of that name there).
    data = _mm_input(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    got = items(read("chebi20-mm", data, tasks="description", image_dir="cache"))
    assert got["chebi20-mm-train-9-description"].image == str(tmp_path / "cache" / "CID_9.png")


def test_more_workers_than_cores_are_capped(tmp_path, monkeypatch, capsys):
    # was: --workers 16 on 2 cores took 61 s for 2 records (1 worker: 3 s): every worker
    # imports the chemistry and torch stack before the first record.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    started = []
    real = schedule.start_pool
    monkeypatch.setattr(schedule, "start_pool", lambda ctx, work, n: started.append(n) or real(ctx, work, n))
    (tmp_path / "t.csv").write_text("smiles,y\nCCO,1\n")
    code, _ = prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", tmp_path / "out",
                      *small_run("--workers", "8"))
    assert code == 0 and started == [1]
    assert "--workers 8 > 1 usable cores: using 1" in capsys.readouterr().err


def test_chebi20_mm_pictures_extracted_into_the_input_folder_are_no_input_files(tmp_path):
    # was: the extracted CID_*.png files became input files, so every rerun or resume was
    # refused with "input files changed (SHA-256)" (then: image_dir inside the input refused)
    from deepmolm_plugin.data.sources.base import input_files_of

    _mm_input(tmp_path)
    got = items(read("chebi20-mm", tmp_path, tasks="description", image_dir=str(tmp_path / "cache")))
    assert got["chebi20-mm-train-9-description"].image == str(tmp_path / "cache" / "CID_9.png")
    assert (tmp_path / "cache" / "CID_9.png").is_file()
    names = [name for _, name in input_files_of("chebi20-mm", tmp_path, {"image_dir": str(tmp_path / "cache")})]
    assert "image.zip" in names and not any(name.startswith("cache") for name in names)


def test_an_id_that_failed_is_not_also_a_record(tmp_path):
    # was: row "a" with a bad SMILES failed, the later row "a" became record "a:property:Y": row
    # "a" both failed and trained
    data = tmp_path / "d.csv"
    data.write_text("id,smiles,Y\na,C1CC,1\na,CCO,2\nb,CCC,3\n")
    code, _ = prepare("--format", "csv", "--input", data, "--out", tmp_path / "out", "--image-size", "32",
                      "--no-progress", "--label-columns", "Y", "--option", "id_column=id")
    assert code == 0
    assert [(f["id"], f["stage"]) for f in failures(tmp_path / "out")] == [("a", "smiles"), ("a", "id")]
    # with the file's lines (the row numbers count from 0 and include blank lines)
    assert "row 1 (line 3): id 'a' is also the id of row 0 (line 2)" in failures(tmp_path / "out")[1]["reason"]
    assert [r["id"] for r in json.loads((tmp_path / "out" / "train.json").read_text())] == ["b:property:Y"]


def test_a_picture_training_would_refuse_fails_at_preparation(tmp_path):
    # was: copied into the prepared data; training then refused the record when it read it
    # (an EXIF-turned photo, a black drawing on transparent black), hours into a run
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    exif = Image.Exif()
    exif[274] = 6  # "turn 90 degrees": viewers show it turned, every loader reads it as stored
    photo = Image.new("RGB", (40, 20), "white")
    photo.paste((0, 0, 0), (5, 5, 15, 15))  # each picture shows something: one colour throughout is refused
    photo.save(tmp_path / "imgs" / "1.jpg", exif=exif)
    dark = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    dark.paste((0, 0, 0, 255), (5, 5, 15, 15))
    dark.save(tmp_path / "imgs" / "2.png")
    good = Image.new("RGB", (40, 20), "white")
    good.paste((0, 0, 0), (5, 5, 15, 15))
    good.save(tmp_path / "imgs" / "3.png")
    write_json(tmp_path / "train.json", [vis_record("trans_smiles", f"imgs/{k}.{ext}", "SMILES?", "CCO")
                                         for k, ext in ((1, "jpg"), (2, "png"), (3, "png"))])
    code, _ = prepare("--format", "vis-chebi20", "--input", tmp_path, "--out", tmp_path / "out",
                      "--image-size", "32", "--no-progress")
    reasons = {f["id"]: f["reason"] for f in failures(tmp_path / "out") if f["stage"] == "image"}
    assert code == 0 and len(reasons) == 2, reasons
    assert any("EXIF orientation 6" in r for r in reasons.values())
    assert any("keeps the colour under transparent pixels" in r for r in reasons.values())
    assert len(json.loads((tmp_path / "out" / "train.json").read_text())) == 1


# --- fourth sweep: processes, locks and limits ------------------------------------------

def _csv(tmp_path, n=3):
    path = tmp_path / "t.csv"
    path.write_text("id,smiles,y\n" + "".join(f"m{i},{'C' * (i + 1)}O,{i}\n" for i in range(n)))
    return ["--format", "csv", "--input", path, "--id-column", "id", *small_run()]


@pytest.mark.parametrize("extra, message", [
    (["--image-size", "100000"], "--image-size must be <= 8192 pixels, got 100000"),  # was: every record drawn, then failed
    (["--chunk-size", "0"], "--chunk-size must be >= 1, got 0"),
    (["--chunk-size", "99999999999999999999"], "--chunk-size must be <= 9223372036854775807"),  # was: islice's error
    (["--limit", "99999999999999999999"], "--limit must be <= 9223372036854775807"),  # was: one message for three options
])
def test_option_limits_are_refused_up_front(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_:
        prepare(*_csv(tmp_path), "--out", tmp_path / "out", *extra)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_out_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit):  # was: NotADirectoryError
        prepare(*_csv(tmp_path), "--out", tmp_path / "afile" / "sub")
    assert "afile is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # was: FileNotFoundError
        prepare(*_csv(tmp_path), "--out", "/proc/deepmolm-test")
    assert exit_.value.code == 2
    assert "--out /proc/deepmolm-test: cannot be created in /proc" in capsys.readouterr().err


def test_a_run_refused_by_anothers_lock_keeps_that_runs_folder(tmp_path, monkeypatch, capsys):
    """Was: a run that found no --out, then lost the race for the lock, removed the folder
    (lock and progress) of the run that won it."""
    from deepmolm_plugin.data.prepare.common import PrepareError
    from deepmolm_plugin.data.prepare.lock import OutputLock

    out = tmp_path / "out"

    def lost_race(self):
        out.mkdir()
        (out / "run.json").write_text("{}")  # the winner's files
        raise PrepareError(f"another deepmolm-prepare is writing {out} (pid 1)")

    monkeypatch.setattr(OutputLock, "acquire", lost_race)
    code, _ = prepare(*_csv(tmp_path), "--out", out)
    assert code == 2 and "another deepmolm-prepare" in capsys.readouterr().err
    assert (out / "run.json").exists()


def test_a_record_process_killed_once_from_outside_is_made_again(tmp_path, monkeypatch):
    """Was: one outside kill of the pool worker and one of the record's own process (an
    OOM kill of another job) made a good molecule a `worker` failure that every rerun kept."""
    import signal

    from deepmolm_plugin.data.prepare import items as items_module

    parent, real_make, kills = os.getpid(), items_module.ItemMaker.make, tmp_path / "kills"

    def make(self, item):
        if item.id.startswith("m1") and os.getpid() != parent and len(kills.read_text() if kills.exists() else "") < 2:
            with open(kills, "a") as f:
                f.write("k")
            os.kill(os.getpid(), signal.SIGKILL)  # the pool's worker, then its first process alone
        return real_make(self, item)

    monkeypatch.setattr(items_module.ItemMaker, "make", make)
    out = tmp_path / "out"
    code, printed = prepare(*_csv(tmp_path), "--out", out, "--workers", "1")
    assert code == 0, printed
    assert kills.read_text() == "kk" and not (out / "failures.jsonl").read_text().strip()
    assert sorted(r["id"].split(":")[0] for r in json.loads((out / "train.json").read_text())) == ["m0", "m1", "m2"]


def test_a_pool_whose_worker_dies_at_start_is_one_error(monkeypatch):
    """Was: BrokenProcessPool's traceback (a worker killed while the pool started)."""
    import multiprocessing

    from deepmolm_plugin.data.prepare.common import PrepareError

    monkeypatch.setattr(schedule, "_init_worker", lambda settings: os._exit(9))  # inherited by fork
    with pytest.raises(PrepareError, match="died while the worker pool started.*rerun the same command"):
        schedule.start_pool(multiprocessing.get_context("fork"), None, 1)


def test_workers_end_when_the_run_is_killed(tmp_path):
    """Was: after a kill -9 of deepmolm-prepare its workers waited forever (~600 MB each)."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, time\n"
        "from deepmolm_plugin.processes import die_with_parent\n"
        "def child():\n    die_with_parent()\n    time.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    p = multiprocessing.get_context('fork').Process(target=child)\n    p.start()\n"
        "    print(p.pid, flush=True)\n    time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(0.5)  # the child has called prctl
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(50):
        try:  # gone, or a zombie not yet reaped by whoever adopted it
            if "\nState:\tZ" in open(f"/proc/{child}/status").read():
                break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")


def test_an_input_edited_while_the_run_reads_it_is_refused(tmp_path, monkeypatch, capsys):
    """Was: exit 0, and a manifest vouching for the input as it was before the edit."""
    from deepmolm_plugin.data.prepare import cli

    args = _csv(tmp_path)
    real = cli.compute

    def compute_then_append(*a, **k):
        done = real(*a, **k)
        with open(tmp_path / "t.csv", "a") as f:
            f.write("late,CCCCO,9\n")
        return done

    monkeypatch.setattr(cli, "compute", compute_then_append)
    code, _ = prepare(*args, "--out", tmp_path / "out")
    assert code == 2 and "--input changed while this run read it (t.csv)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_resume_checks_the_images_it_vouches_for(tmp_path, capsys):
    """Was: a resumed run wrote a manifest for an image damaged after it was written; only
    the rerun after that found it."""
    from deepmolm_plugin.data.prepare.output import Output

    args, out = _csv(tmp_path), tmp_path / "out"
    assert prepare(*args, "--out", tmp_path / "ref")[0] == 0
    assert prepare(*args, "--out", out)[0] == 0
    (out / "manifest.json").unlink()  # as a run killed before its assembly leaves it
    Output(out, "s0of1").progress.mkdir(exist_ok=True)
    image = sorted(out.glob("images/*/*"))[0]
    image.write_bytes(image.read_bytes() + b"x")
    assert prepare(*args, "--out", out)[0] == 2
    assert "does not hash to its name" in capsys.readouterr().err
    assert prepare(*args, "--out", out)[0] == 0
    assert image.read_bytes() == (tmp_path / "ref" / image.relative_to(out)).read_bytes()


def test_every_chunk_whose_images_are_gone_is_removed_in_one_rerun(tmp_path, monkeypatch, capsys):
    """Was: one failed rerun per chunk (the check stopped at the first): 1,000 chunks, 1,001 runs."""
    from deepmolm_plugin.data.prepare.output import Output

    args, out = [*_csv(tmp_path), "--chunk-size", "1"], tmp_path / "out"
    assert prepare(*args, "--out", tmp_path / "ref")[0] == 0
    commit = Output.commit_chunk

    def commit_two_then_interrupt(self, c, *a, **k):
        commit(self, c, *a, **k)
        if c == 1:
            raise KeyboardInterrupt  # Ctrl-C after two chunks are committed

    monkeypatch.setattr(Output, "commit_chunk", commit_two_then_interrupt)
    assert prepare(*args, "--out", out)[0] == 130
    monkeypatch.setattr(Output, "commit_chunk", commit)
    for image in out.glob("images/*/*"):
        image.unlink()
    assert prepare(*args, "--out", out)[0] == 2
    assert "2 chunk(s) with missing or damaged images were removed (with those images: chunk 0, 1)" in \
        capsys.readouterr().err
    assert prepare(*args, "--out", out)[0] == 0
    assert records(out / "train.json") == records(tmp_path / "ref" / "train.json")


def test_an_image_deleted_after_its_chunk_was_committed_is_redone(tmp_path, monkeypatch, capsys):
    """Was: "image ... is missing: delete <chunk> and rerun", and every rerun failed the same
    way until the chunk was deleted by hand (a damaged image's chunk is removed for the rerun)."""
    from deepmolm_plugin.data.prepare.output import Output

    args, out = [*_csv(tmp_path), "--chunk-size", "1"], tmp_path / "out"
    assert prepare(*args, "--out", tmp_path / "ref")[0] == 0
    commit = Output.commit_chunk

    def commit_then_interrupt(self, c, *a, **k):
        commit(self, c, *a, **k)
        raise KeyboardInterrupt  # Ctrl-C after the first chunk is committed

    monkeypatch.setattr(Output, "commit_chunk", commit_then_interrupt)
    assert prepare(*args, "--out", out)[0] == 130
    monkeypatch.setattr(Output, "commit_chunk", commit)
    (chunk,) = out.glob(".progress/chunk-0000000.*.json")
    image = out / json.loads(chunk.read_text())["items"][0]["record"]["image"]
    image.unlink()
    assert prepare(*args, "--out", out)[0] == 2
    assert ("is missing (deleted since it was written); 1 chunk(s) with missing or damaged images were removed "
            "(with those images: chunk 0)") in capsys.readouterr().err
    assert prepare(*args, "--out", out)[0] == 0
    assert image.read_bytes() == (tmp_path / "ref" / image.relative_to(out)).read_bytes()


def test_ctrl_c_is_one_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    """Was: a KeyboardInterrupt traceback from the parent (and one per worker: they now
    leave SIGINT to the parent)."""
    from deepmolm_plugin.data.prepare import cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "compute", interrupted)
    code, _ = prepare(*_csv(tmp_path), "--out", tmp_path / "out")
    assert code == 130 and "interrupted; the chunks committed so far are kept" in capsys.readouterr().err


def test_a_closed_stdout_ends_the_report_not_the_finished_run(tmp_path):
    # `deepmolm-prepare ... | head -1`: a BrokenPipeError traceback and exit 1 after the run
    # had finished and committed its output
    import subprocess
    import sys

    (tmp_path / "t.csv").write_text("smiles,y\nCCO,1\nCCN,2\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "deepmolm_plugin.data.prepare", "--format", "csv", "--input",
               str(tmp_path / "t.csv"), "--option", "label_columns=y", "--image-size", "256", "--no-progress"]
    for _ in range(2):  # the run, then the "already complete" rerun
        proc = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # the reader goes away before the first line
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == 0, err
        assert "Traceback" not in err and "Exception ignored" not in err
        assert len(json.loads((out / "train.json").read_text())) == 2


def test_label_names_that_differ_only_in_case_are_refused_at_once(tmp_path):
    # was: prepared, then the launcher refused the records as two spellings of one property
    (tmp_path / "t.csv").write_text("smiles,a,b\nCCO,1,2\n")
    with pytest.raises(ValueError, match=r"label names 'LogP' and 'logp' differ only in case"):
        list(READERS["csv"](str(tmp_path / "t.csv"), {"label_columns": ["a=LogP", "b=logp"]}))


def test_sider_columns_holding_a_comma_are_given_as_json(tmp_path):
    # SIDER: 5 column names hold a comma, which the command line's comma lists cut apart
    column = "Injury, poisoning and procedural complications"
    source = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "moleculenet", "sider.csv")
    with open(source, newline="") as handle:
        rows = list(csv.reader(handle))[:4]
    assert column in rows[0]
    with open(tmp_path / "sider.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    code, _ = prepare("--format", "csv", "--input", tmp_path / "sider.csv", "--out", tmp_path / "cut",
                      "--label-columns", column, "--no-progress", "--image-size", "256")
    assert code == 2  # the error names the JSON form (checked below, where it is raised)
    with pytest.raises(ValueError, match=r"'Injury' is not in the header .*give the list as JSON, --option"):
        list(READERS["csv"](str(tmp_path / "sider.csv"), {"label_columns": column}))
    code, _ = prepare("--format", "csv", "--input", tmp_path / "sider.csv", "--out", tmp_path / "json",
                      "--option", "label_columns=" + json.dumps([f"{column}=injury"]),
                      "--no-progress", "--image-size", "256")
    records = json.loads((tmp_path / "json" / "train.json").read_text())
    assert code == 0 and len(records) == 3 and all("injury" in r["properties"] for r in records)


def test_outputs_inside_a_folder_input_are_not_inputs(tmp_path):
    # was: run 2 counted run 1's output (inside the input folder) as input and run 1 then
    # counted run 2's: rerunning run 1 failed, "input changed"
    write_sdf(tmp_path / "in" / "a.sdf", 1, 2)
    run = ["--format", "sdf", "--input", tmp_path / "in", "--image-size", "32", "--no-progress",
           "--label-columns", "Y"]
    assert prepare(*run, "--out", tmp_path / "in" / "out1")[0] == 0
    assert prepare(*run, "--out", tmp_path / "in" / "out2")[0] == 0
    code, printed = prepare(*run, "--out", tmp_path / "in" / "out1")
    assert code == 0 and "already complete" in printed
    manifest = json.loads((tmp_path / "in" / "out2" / "manifest.json").read_text())
    assert [e["path"] for e in manifest["inputs"]] == ["a.sdf"]
    # a folder with a manifest.json of its own (not this tool's) is input as before
    (tmp_path / "in" / "mine").mkdir()
    (tmp_path / "in" / "mine" / "manifest.json").write_text('{"tool": "other"}')
    write_sdf(tmp_path / "in" / "mine" / "b.sdf", 3)
    assert list(items(read("sdf", tmp_path / "in", label_columns="Y"))) == [
        "a.sdf#0:property:Y", "a.sdf#1:property:Y", "mine/b.sdf#0:property:Y"]


def test_an_sdf_record_that_is_no_molfile_fails_for_that_reason(tmp_path):
    # was: "no value in any of the fields" / "record has no 'ID' field": a record without
    # M  END (truncated, or a CSV given as --format sdf) has no data fields to read
    truncated = MOLBLOCK.format(title="m1", value=1).split("M  END")[0]
    (tmp_path / "t.sdf").write_text(MOLBLOCK.format(title="m0", value=0) + truncated)
    found = errors(read("sdf", tmp_path / "t.sdf", label_columns="Y"))
    assert found["t.sdf#1"].stage == "molecule" and "unparseable MOL/SDF record (RDKit" in found["t.sdf#1"].reason
    # a CSV given as --format sdf: the whole file, naming the format (twenty-second round; was
    # this record's "unparseable MOL/SDF record")
    (tmp_path / "c.sdf").write_text("smiles,ID\nCCO,a\n")
    with pytest.raises(ValueError, match=r"looks like a CSV \(header 'smiles,ID'\), not an SDF; "
                                         r"give it with --format csv"):
        read("sdf", tmp_path / "c.sdf", label_columns="Y", id_field="ID")
    # a record of SMILES lines in an SDF of molfiles: that record's failure
    (tmp_path / "m.sdf").write_text(MOLBLOCK.format(title="m0", value=0) + "CCO a\nCCN b\n")
    found = errors(read("sdf", tmp_path / "m.sdf", label_columns="Y"))
    assert found["m.sdf#1"].stage == "molecule" and "unparseable MOL/SDF record" in found["m.sdf#1"].reason
    # a molfile whose atom block is broken, without the field: RDKit's reason, not "no value"
    broken = MOLBLOCK.format(title="m2", value=2).replace("  3  2  0", "  9  2  0").replace("> <Y>\n2\n", "")
    (tmp_path / "b.sdf").write_text(broken)
    (error,) = errors(read("sdf", tmp_path / "b.sdf", label_columns="Y")).values()
    assert error.stage == "molecule" and "no value" not in error.reason


def test_an_sdf_data_field_given_twice_is_a_failure_not_the_last_value(tmp_path):
    twice = MOLBLOCK.format(title="m0", value=1).replace("$$$$", "> <Y>\n2\n\n$$$$")
    (tmp_path / "t.sdf").write_text(twice + MOLBLOCK.format(title="m1", value=3))
    out = read("sdf", tmp_path / "t.sdf", label_columns="Y")
    assert errors(out)["t.sdf#0"].reason == "data field(s) appear more than once in the record: 'Y' 2 times"
    assert items(out)["t.sdf#1:property:Y"].properties == {"Y": 3.0}
    # a repeated field no option reads is harmless
    assert items(read("sdf", tmp_path / "t.sdf", text_columns="_Name=description"))


def test_a_rerun_on_a_read_only_finished_output_is_complete_not_refused(tmp_path, monkeypatch, capsys):
    # was: "--out ... is not writable" (a pipeline's rerun on a shared read-only dataset)
    (tmp_path / "t.csv").write_text("smiles,y\nCCO,1\nCCN,2\n")
    out = tmp_path / "out"
    run = ["--format", "csv", "--input", tmp_path / "t.csv", "--out", out, *small_run()]
    assert prepare(*run)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: (False if str(p) == str(out) and mode & os.W_OK
                                                       else real_access(p, mode)))
    code, printed = prepare(*run)
    assert code == 0 and "already complete (read-only)" in printed
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # no lock file, nothing written
    code, _ = prepare(*run[:-len(small_run())], *small_run("--conformer-policy", "generate"))
    assert code == 2 and "is read-only and holds output of a different run" in capsys.readouterr().err
    (out / "train.json").write_text("[]")
    code, _ = prepare(*run)
    assert code == 2 and "is read-only and does not match its manifest (train.json" in capsys.readouterr().err


def test_links_in_a_folder_input_are_followed_once_and_a_bom_is_no_title(tmp_path):
    # was: a link to a file of the input read its records twice (two ids), a linked folder
    # was skipped without a word, a link to an ancestor would loop; a UTF-8 BOM stayed in
    # the first record's title (the id with --id-field _Name)
    write_sdf(tmp_path / "in" / "a.sdf", 1)
    write_sdf(tmp_path / "elsewhere" / "b.sdf", 2)
    (tmp_path / "in" / "sub").mkdir()
    (tmp_path / "in" / "sub" / "again.sdf").symlink_to(tmp_path / "in" / "a.sdf")
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "in" / "sub" / "up").symlink_to(tmp_path / "in")
    assert sorted(items(read("sdf", tmp_path / "in", label_columns="Y"))) == [
        "a.sdf#0:property:Y", "linked/b.sdf#0:property:Y"]
    bom = tmp_path / "bom.sdf"
    bom.write_bytes(b"\xef\xbb\xbf" + MOLBLOCK.format(title="ethanol", value=1).encode())
    assert list(items(read("sdf", bom, label_columns="Y", id_field="_Name"))) == ["ethanol:property:Y"]


@pytest.mark.parametrize("edit", [lambda m: m.pop("splits"), lambda m: m.update(files=[1, 2]),
                                  lambda m: m["counts"].pop("images")])
def test_a_manifest_edited_into_another_shape_is_redone_not_a_traceback(tmp_path, capsys, edit):
    """Was: KeyError / AttributeError tracebacks from the manifest check, exit 1."""
    args, out = _csv(tmp_path), tmp_path / "out"
    assert prepare(*args, "--out", out)[0] == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.json")}
    manifest = json.loads((out / "manifest.json").read_text())
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert prepare(*args, "--out", out)[0] == 0
    assert "manifest.json: it is not laid out as this tool writes it" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.glob("*.json")} == before


def test_split_files_of_a_run_whose_manifest_was_lost_do_not_stay(tmp_path, capsys):
    """Was: the manifest truncated, another input into the same --out was accepted (a damaged
    manifest is redone) and the earlier run's valid.json and fp/valid.npy stayed beside the
    new train.json for good: no manifest named them, so not even --overwrite removed them."""
    split = tmp_path / "split.csv"
    split.write_text("id,smiles,y,split\nA,CCO,1,train\nB,CCN,2,valid\nC,CCC,3,train\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("id,smiles,y\nA,CCO,1\nB,CCN,2\nC,CCC,3\n")
    out = tmp_path / "out"
    common = ["--format", "csv", "--id-column", "id", *small_run(), "--out", out]
    assert prepare("--input", split, *common, "--split-column", "split")[0] == 0
    assert (out / "valid.json").is_file() and (out / "fp" / "valid.npy").is_file()
    (out / "notes.json").write_text("{}")  # a user's own file: no sidecar, stays
    (out / "manifest.json").write_bytes((out / "manifest.json").read_bytes()[:50])
    assert prepare("--input", plain, *common)[0] == 0
    assert "removed valid.json and fp/valid.npy: split files of an earlier run" in capsys.readouterr().err
    assert not (out / "valid.json").exists() and not (out / "fp" / "valid.npy").exists()
    assert (out / "notes.json").is_file()
    assert [r["id"] for r in json.loads((out / "train.json").read_text())] == ["A:property:y", "B:property:y", "C:property:y"]


@register_reader("test-repeated-ids", options=set())
def repeated_ids_reader(input_path, options):
    """A record, then a later item with its id that fails anyway; two ids that differ only
    in Unicode normalisation (NFD 'café' then NFC 'café')."""
    yield SourceItem("x", "train", "Caption", MoleculeSpec(smiles="CCO"), "Ethanol.")
    yield SourceItem("x", "train", "Caption", MoleculeSpec(smiles="C1CC"), "Never.")  # unclosed ring
    yield SourceItem("cafe\u0301", "train", "Caption", MoleculeSpec(smiles="CCN"), "Ethylamine.")
    yield SourceItem("caf\u00e9", "train", "Caption", MoleculeSpec(smiles="CCC"), "Propane.")


def test_a_repeated_id_fails_as_a_duplicate_even_when_the_item_failed_anyway(tmp_path):
    """was: the later 'x' failed at its molecule, listed in failures.jsonl under the id of a
    record that is in train.json; and 'café' written two ways made two records that look
    identical everywhere they are shown."""
    (tmp_path / "in.txt").write_text("")
    out = tmp_path / "out"
    assert prepare("--format", "test-repeated-ids", "--input", tmp_path / "in.txt", "--out", out, *FAST)[0] == 0
    assert [r["id"] for r in records(out / "train.json")] == ["x", "cafe\u0301"]
    failed = jsonl(out / "failures.jsonl")
    assert [(f["id"], f["stage"]) for f in failed] == [("x", "duplicate-id"), ("caf\u00e9", "duplicate-id")]
    assert "an earlier record has the same id" in failed[0]["reason"]
    assert "this one also failed (molecule: " in failed[0]["reason"]
    assert json.loads((out / "manifest.json").read_text())["failures"]["by_stage"] == {"duplicate-id": 2}


def test_csv_ids_that_differ_only_in_unicode_normalisation_are_one_id(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,smiles,Y\ncafe\u0301,CCO,1.0\ncaf\u00e9,CCN,2.0\n", encoding="utf-8")
    found = read("csv", path, id_column="id", label_columns=["Y"])
    (error,) = errors(found).values()
    assert error.stage == "id" and "is also the id of row 0" in error.reason


def test_sdf_id_and_split_fields_say_what_is_wrong(tmp_path):
    """was: `id_field` in the wrong case failed every record as "record has no 'id' field"
    (no word of 'ID'); a missing split field read as "split '' is not a plain name"; a
    data field named `_Name` was replaced by the title line without a word."""
    block = MOLBLOCK.format(title="m0", value=1).replace("$$$$", "> <ID>\nmol-0\n\n$$$$")
    (tmp_path / "t.sdf").write_text(block)
    (tmp_path / "n.sdf").write_text(block.replace("$$$$", "> <_Name>\nx\n\n$$$$"))
    (error,) = errors(read("sdf", tmp_path / "t.sdf", label_columns="Y", id_field="id")).values()
    assert error.stage == "id" and error.reason == ("record has no 'id' field (its data fields: ['Y', 'ID']); "
                                                    "'ID' differs only in case")
    (error,) = errors(read("sdf", tmp_path / "t.sdf", label_columns="Y", split_column="Split")).values()
    assert error.stage == "split" and error.reason.startswith("record has no 'Split' field (its data fields")
    (error,) = errors(read("sdf", tmp_path / "n.sdf", label_columns="Y", id_field="_Name")).values()
    assert error.stage == "read" and "a data field named '_Name', which is also the name of its title line" in error.reason
    assert list(items(read("sdf", tmp_path / "t.sdf", label_columns="Y", id_field="ID"))) == ["mol-0:property:Y"]


@pytest.mark.parametrize("fmt, option", [("sdf", "id_field"), ("sdf", "split_column"), ("csv", "id_column"),
                                         ("csv", "split_column"), ("csv", "smiles_column")])
def test_a_blank_column_or_field_option_is_refused_not_ignored(tmp_path, fmt, option):
    # was: `--id-field ""` (an unset shell variable) made the default ids without a word
    write_sdf(tmp_path / "t.sdf", 1)
    (tmp_path / "t.csv").write_text("smiles,Y\nCCO,1\n")
    with pytest.raises(ValueError, match=f"{fmt}: option {option} must name a column or field, got ' '"):
        read(fmt, tmp_path / f"t.{fmt}", label_columns="Y", **{option: " "})


def test_an_id_with_a_line_break_or_tab_is_the_items_failure(tmp_path):
    """was: an SDF id field over two lines (or a quoted CSV id cell with a tab) made records
    that evaluation refused as questions, after training; now every reader's such id is
    the item's failure when it is prepared."""
    block = MOLBLOCK.format(title="m0", value=1).replace("$$$$", "> <ID>\nmol\n0\n\n$$$$")
    (tmp_path / "t.sdf").write_text(block + MOLBLOCK.format(title="m1", value=2).replace("$$$$", "> <ID>\nm1\n\n$$$$"))
    code, _ = prepare("--format", "sdf", "--input", tmp_path / "t.sdf", "--out", tmp_path / "out", "--id-field", "ID",
                      *small_run()[:-2], "--label-columns", "Y")
    assert code == 0
    assert [r["id"] for r in records(tmp_path / "out" / "train.json")] == ["m1:property:Y"]
    assert failures(tmp_path / "out") == [{"id": "mol\n0:property:Y", "stage": "id", "reason":
                                           "id 'mol\\n0:property:Y' holds a control character ('\\n': a line "
                                           "break, a tab...)"}]
    (tmp_path / "t.csv").write_text('smiles,y,id\nCCO,1,"a\tb"\nCCN,2,c\n')
    code, _ = prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", tmp_path / "csv", "--id-column", "id",
                      *small_run())
    assert code == 0 and [f["stage"] for f in failures(tmp_path / "csv")] == ["id"]


def test_a_folder_that_lost_its_manifest_or_holds_a_start_that_committed_nothing_is_redone(tmp_path, monkeypatch,
                                                                                            capsys):
    # was: a finished folder whose manifest.json was deleted was "not empty and holds no
    # deepmolm-prepare output", --overwrite included; and the pictures of a start killed
    # before its first chunk stayed among the next run's (other settings), in no record
    from deepmolm_plugin.data.prepare import cli

    args = _csv(tmp_path)
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert prepare(*args, "--out", clean)[0] == 0
    assert prepare(*args, "--out", out)[0] == 0
    (out / "manifest.json").unlink()
    assert prepare(*args, "--out", out)[0] == 2  # it may be a folder put together by hand
    assert "holds records and sidecars but no manifest.json (deleted?)" in capsys.readouterr().err
    assert prepare(*args, "--out", out, "--overwrite")[0] == 0
    assert records(out / "train.json") == records(clean / "train.json") and (out / "manifest.json").is_file()

    started = tmp_path / "started"
    started.mkdir()
    real = cli.compute

    def killed_after_a_picture(a, o, *rest, **kw):
        (o.root / "images" / "ab").mkdir(parents=True)
        (o.root / "images" / "ab" / ("c" * 30 + ".png")).write_bytes(b"a picture of other settings")
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "compute", killed_after_a_picture)
    assert prepare(*args, "--out", started, "--image-size", "48")[0] == 130
    monkeypatch.setattr(cli, "compute", real)
    assert prepare(*args, "--out", started)[0] == 0
    assert sorted(p.relative_to(started) for p in started.rglob("*") if p.is_file() and ".lock" not in p.name) == \
        sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file() and ".lock" not in p.name)


def test_a_merge_that_finds_a_damaged_image_names_the_shard_to_rerun(tmp_path, capsys):
    """was: "rerun the same command to recompute them": the same command is --merge, which
    computes nothing (the next merge named the unfinished shard)."""
    args, out = [*_csv(tmp_path), "--chunk-size", "1", "--out", tmp_path / "out"], tmp_path / "out"
    for shard in ("0/2", "1/2"):
        assert prepare(*args, "--shard", shard)[0] == 0
    (chunk,) = out.glob(".progress/chunk-0000001.*.json")  # chunk 1: shard 1's
    (out / json.loads(chunk.read_text())["items"][0]["record"]["image"]).unlink()
    assert prepare(*args, "--merge")[0] == 2
    assert "removed (with those images: chunk 1): rerun the shard job(s) that own them (--shard 1/2), then --merge" \
        in capsys.readouterr().err
    assert prepare(*args, "--shard", "1/2")[0] == 0
    assert prepare(*args, "--merge")[0] == 0
