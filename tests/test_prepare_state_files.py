"""deepmolm-prepare's own state files (manifest.json, .progress/run.json, chunks, shard
markers) that are JSON, but not laid out as the tool writes them (a key removed, a value
of another type, an item repeated): a manifest is reported and redone, the others are one
error line naming the file and what to do. All were KeyError or TypeError tracebacks (and a
repeated item an error naming neither file nor remedy)."""

import json

import pytest

from test_prepare import prepare

TINY = ["--image-size", "32", "--no-progress"]


def _args(tmp_path, out):
    data = tmp_path / "m.csv"
    data.write_text("id,smiles,y\na,CCO,1.0\nb,CCC,2.0\n")
    return ["--format", "csv", "--input", data, "--out", out, "--label-columns", "y", "--id-column", "id",
            "--chunk-size", "1", *TINY]


def _edit(path, change):
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def test_a_manifest_whose_inputs_are_reshaped_is_redone(tmp_path, capsys):
    """Was: KeyError 'bytes' from the input checksums, before the manifest's own check."""
    out = tmp_path / "out"
    args = _args(tmp_path, out)
    assert prepare(*args)[0] == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.json")}
    _edit(out / "manifest.json", lambda m: m.update(inputs=[{"path": "m.csv"}]))
    capsys.readouterr()
    code, printed = prepare(*args)
    err = capsys.readouterr().err
    assert code == 0 and "processed 2 items" in printed
    assert f"{out / 'manifest.json'} is damaged (not laid out as this tool writes it: no 'bytes'): redoing" in err
    assert {p.name: p.read_bytes() for p in out.glob("*.json")} == before


def test_a_manifest_without_what_the_summary_shows_or_overwritten_is_no_traceback(tmp_path, capsys):
    """Was: KeyError 'failures' after the check passed ("already complete"), and --overwrite
    over a manifest whose "files" is a list a TypeError from the file names."""
    out = tmp_path / "out"
    args = _args(tmp_path, out)
    assert prepare(*args)[0] == 0
    _edit(out / "manifest.json", lambda m: m.pop("failures"))
    capsys.readouterr()
    assert prepare(*args)[0] == 0
    assert "manifest.json: it is not laid out as this tool writes it (KeyError: 'failures')" in capsys.readouterr().err
    _edit(out / "manifest.json", lambda m: m.update(files=[1, 2]))
    code, printed = prepare(*args, "--image-size", "16", "--overwrite")  # another setting
    assert code == 0 and "processed 2 items" in printed


def test_a_run_json_of_another_shape_names_the_file(tmp_path, capsys):
    """Was: TypeError ('int' object is not iterable); its remedy for garbage, --overwrite,
    read the file again and failed the same way."""
    out = tmp_path / "out"
    args = _args(tmp_path, out)
    assert prepare(*args, "--shard", "0/2")[0] == 0
    run = out / ".progress" / "run.json"
    run.write_text('{"inputs": 5}')
    capsys.readouterr()
    assert prepare(*args)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deepmolm-prepare: error: {run} is damaged (not laid out as this tool writes it: "
                          "'inputs' is a JSON int): delete it and rerun")
    run.unlink()  # as it says: the committed chunk is kept
    code, printed = prepare(*args)
    assert code == 0 and "processed 1 items in 1 chunks now (1 chunks were already done)" in printed


def _repeat(meta, rows=False):
    meta["items"].append(meta["items"][0])
    if rows:  # "rows" edited too: the .npy (checksummed in this file) holds fewer
        meta["rows"] *= 2


@pytest.mark.parametrize("change, what", [
    (lambda m: m.clear(), "not laid out as this tool writes it: no 'items'"),
    (lambda m: m["items"][0].pop("record"), "not laid out as this tool writes it: no 'record'"),
    (_repeat, "not laid out as this tool writes it: its items account for 6 token rows, not 3"),
    (lambda m: _repeat(m, rows=True), "its items account for 6 token rows, chunk-0000000."),
])
def test_a_chunk_of_another_shape_names_the_file(tmp_path, capsys, change, what):
    """Was: KeyError 'items' / 'record' from the tally, or (an item repeated) "chunk 0: 3
    token rows, its records account for 6", naming neither file nor remedy."""
    out = tmp_path / "out"
    args = _args(tmp_path, out)
    assert prepare(*args, "--shard", "0/2")[0] == 0
    (chunk,) = out.glob(".progress/chunk-0000000.*.json")
    _edit(chunk, change)
    capsys.readouterr()
    assert prepare(*args)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deepmolm-prepare: error: {chunk} is damaged ({what}")
    assert err.rstrip().endswith("delete it and rerun to recompute chunk 0")
    chunk.unlink()
    assert prepare(*args)[0] == 0


@pytest.mark.parametrize("change, what", [
    (lambda m: m.pop("run"), "no 'run'"),
    (lambda m: m.update(shard=[0]), "'shard' is [0], not [I, N] with 0 <= I < N"),
])
def test_a_shard_marker_of_another_shape_names_the_file(tmp_path, capsys, change, what):
    """Was: KeyError 'run' from --merge."""
    out = tmp_path / "out"
    args = _args(tmp_path, out)
    assert prepare(*args, "--shard", "0/2")[0] == 0
    assert prepare(*args, "--shard", "1/2")[0] == 0
    marker = out / ".progress" / "shard-0-of-2.json"
    _edit(marker, change)
    capsys.readouterr()
    assert prepare(*args, "--merge")[0] == 2
    assert capsys.readouterr().err == (f"deepmolm-prepare: error: {marker} is damaged (not laid out as this tool "
                                       f"writes it: {what}): delete it and rerun that shard\n")
    marker.unlink()
    assert prepare(*args, "--shard", "0/2")[0] == 0
    assert prepare(*args, "--merge")[0] == 0
