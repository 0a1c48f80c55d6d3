"""deepmolm-prepare on hostile input and hostile surroundings.

Per-record isolation: a damaged picture, a library error, an unparseable CSV row, a
damaged LMDB page or a record that kills its worker process is one failure line; the run
goes on and a resume never meets it again. Durability: outputs are on disk before the
manifest that vouches for them, a rerun verifies them against its checksums and redoes
a damaged output, one run at a time writes a folder, and --overwrite deletes only what
the tool wrote.
"""

import io
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image

from deepmolm_plugin.data.prepare import main
from deepmolm_plugin.data.prepare import items as items_module
from deepmolm_plugin.data.prepare.common import PrepareError
from deepmolm_plugin.data.sources import moit  # noqa: F401 (registers 3d-moit)
from deepmolm_plugin.data.sources.base import READERS, MoleculeSpec, SourceError, SourceItem, register_reader
from deepmolm_plugin.molecule import molecule_from_smiles
from test_prepare import prepare, records, tree

FAST = ["--image-size", "256", "--no-progress"]


def failures(out: Path) -> list:
    return [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]


# --- pictures -------------------------------------------------------------------------


def png_bytes(seed: int, size: int = 48) -> bytes:
    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def flipped_byte(data: bytes, fix_checksum: bool) -> bytes:
    """One byte of the compressed pixels flipped; with `fix_checksum` the chunk's CRC is
    made right again, so only decoding the pixels finds the damage (verify() passes)."""
    data = bytearray(data)
    at = data.index(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    data[at + 4 + length // 2] ^= 0xFF
    if fix_checksum:
        data[at + 4 + length:at + 8 + length] = struct.pack(">I", zlib.crc32(bytes(data[at:at + 4 + length])))
    return bytes(data)


def huge_png(side: int) -> bytes:
    """A valid PNG header claiming side x side grey pixels: a decompression bomb."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def vis_record(image: str, smiles: str) -> dict:
    return {"messages": [{"role": "user", "content": "<image>SMILES?"},
                         {"role": "assistant", "content": f"The SMILES is {smiles}."}],
            "images": [image], "task_name": "trans_smiles"}


def test_damaged_pictures_are_failures_and_the_run_goes_on(tmp_path):
    """Before: the PNG with a bad chunk checksum ended the run with Pillow's SyntaxError
    (and a resume died on it again); a picture damaged past its checksums was copied."""
    root = tmp_path / "vis"
    (root / "imgs").mkdir(parents=True)
    good = png_bytes(0)
    pictures = {
        "good": good,
        "checksum": flipped_byte(png_bytes(1), fix_checksum=False),  # verify(): SyntaxError
        "pixels": flipped_byte(png_bytes(2), fix_checksum=True),  # verify() passes, load() fails
        "truncated": png_bytes(3)[:300],
        "bomb": huge_png(20000),  # over twice Image.MAX_IMAGE_PIXELS: DecompressionBombError
        "large": huge_png(10000),  # over Image.MAX_IMAGE_PIXELS: a warning in Pillow, an error here
    }
    smiles = ["CCO", "CCN", "CCC", "CCCl", "OCCO", "CC(=O)O"]
    for name, data in pictures.items():
        (root / "imgs" / f"{name}.png").write_bytes(data)
    (root / "train.json").write_text(json.dumps([vis_record(f"imgs/{n}.png", s) for n, s in zip(pictures, smiles)]))
    out = tmp_path / "out"
    args = ["--format", "vis-chebi20", "--input", root, "--out", out, "--chunk-size", "2", *FAST]

    code, printed = prepare(*args)
    assert code == 0, printed
    (record,) = records(out / "train.json")
    assert record["id"] == "vis-chebi20-train-good-smiles" and (out / record["image"]).read_bytes() == good
    got = {f["id"]: f for f in failures(out)}
    assert sorted(got) == sorted(f"vis-chebi20-train-{n}-smiles" for n in pictures if n != "good")
    assert {f["stage"] for f in got.values()} == {"image"}
    assert "bad header checksum" in got["vis-chebi20-train-checksum-smiles"]["reason"]
    assert "broken data stream" in got["vis-chebi20-train-pixels-smiles"]["reason"]
    assert "DecompressionBombError" in got["vis-chebi20-train-bomb-smiles"]["reason"]
    assert "DecompressionBombWarning" in got["vis-chebi20-train-large-smiles"]["reason"]
    code, printed = prepare(*args)  # the rerun meets nothing again
    assert code == 0 and "processed 0 items" in printed


# --- a library error, a killed worker -------------------------------------------------


@register_reader("test-hardening", options=())
def molecules_reader(input_path, options):
    """Eight molecules; "boom" is CCO again, so its sidecar rows are shared with "a"."""
    for id, smiles in [("a", "CCO"), ("b", "CCN"), ("c", "CCC"), ("boom", "CCO"), ("d", "CCCl"),
                       ("e", "OCCO"), ("f", "CC(=O)O"), ("g", "CCCO")]:
        yield SourceItem(id, "train", "Caption", MoleculeSpec(smiles=smiles), f"Molecule {id}.")


def hardening_args(tmp_path: Path, out: Path, *extra) -> list:
    return ["--format", "test-hardening", "--input", tmp_path, "--out", out, "--chunk-size", "3", *FAST, *extra]


def test_an_unexpected_library_error_is_that_records_failure(tmp_path, monkeypatch):
    """Before: a RuntimeError from the fingerprint library ended the whole run."""
    import deepmolm_plugin.molecule.fingerprint as fingerprint_module

    real = fingerprint_module.fingerprint_record

    def fingerprint(record, *args, **kwargs):
        if record.id == "CCN":
            raise RuntimeError("e3fp exploded")
        return real(record, *args, **kwargs)

    # Where the input resolver looks it up; inherited by the forked workers.
    monkeypatch.setattr(fingerprint_module, "fingerprint_record", fingerprint)
    out = tmp_path / "out"
    code, printed = prepare(*hardening_args(tmp_path, out))
    assert code == 0, printed
    (failure,) = failures(out)
    assert failure["id"] == "b" and failure["stage"] == "molecule"
    assert failure["reason"].startswith("unexpected RuntimeError: e3fp exploded (at ")
    assert "fingerprint" in failure["reason"]  # where it was raised
    assert [r["id"] for r in records(out / "train.json")] == ["a", "c", "boom", "d", "e", "f", "g"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_record_that_kills_its_worker_is_a_failure_and_the_run_goes_on(tmp_path, monkeypatch, workers):
    """Before: the pool broke (BrokenProcessPool) and the run died, on every resume again
    (with --workers 1 the record was made in the run's own process)."""
    reference = tmp_path / "reference"
    assert prepare(*hardening_args(tmp_path, reference))[0] == 0

    parent, real_make = os.getpid(), items_module.ItemMaker.make

    def make(self, item):
        if getattr(item, "id", None) == "boom" and os.getpid() != parent:  # never kill pytest itself
            os.kill(os.getpid(), signal.SIGKILL)
        return real_make(self, item)

    monkeypatch.setattr(items_module.ItemMaker, "make", make)  # inherited by the forked workers
    out = tmp_path / "killed"
    code, printed = prepare(*hardening_args(tmp_path, out, "--workers", workers))
    assert code == 0, printed
    (failure,) = failures(out)
    assert failure["id"] == "boom" and failure["stage"] == "worker"
    assert "killed by signal SIGKILL" in failure["reason"]
    expected = [r for r in records(reference / "train.json") if r["id"] != "boom"]
    assert records(out / "train.json") == expected  # every other record, exactly as without the crash
    assert (out / "fp/train.npy").read_bytes() == (reference / "fp/train.npy").read_bytes()
    code, printed = prepare(*hardening_args(tmp_path, out, "--workers", workers))
    assert code == 0 and "processed 0 items" in printed  # a resume never meets the crash again


# --- reader errors in the middle of a file --------------------------------------------


def test_an_oversized_csv_field_is_that_rows_failure(tmp_path):
    """Before: csv's "field larger than field limit" ended the whole read."""
    data = tmp_path / "rows.csv"
    huge = "x" * 200_000  # over csv.field_size_limit() (131072)
    data.write_text(f'smiles,expt\nCCO,1.5\nCCN,"{huge}"\nCCC,2.5\n')
    out = tmp_path / "out"
    code, printed = prepare("--format", "csv", "--input", data, "--out", out, "--label-columns", "expt", *FAST)
    assert code == 0, printed
    (failure,) = failures(out)
    assert failure["id"] == "rows#1" and failure["stage"] == "read"
    assert "field larger than field limit" in failure["reason"]
    assert [r["id"] for r in records(out / "train.json")] == ["rows#0:property:expt", "rows#2:property:expt"]


def leaf_pages(path: Path) -> list:
    """Page numbers of an LMDB file's leaf pages (page header: pgno u64, pad u16, flags u16)."""
    data, size = path.read_bytes(), 4096
    return [n for n in range(2, len(data) // size) if struct.unpack_from("<H", data, n * size + 10)[0] & 0x02]


def test_a_damaged_lmdb_page_is_a_failure_and_the_read_goes_on(tmp_path):
    """Before: lmdb.CorruptedError ended the whole read (captions and every later file)."""
    root = tmp_path / "3d-mol-dataset"
    mol = molecule_from_smiles("CCO").mol
    value = {"smiles": "CCO", "atoms": [a.GetSymbol() for a in mol.GetAtoms()],
             "coordinates": [mol.GetConformer().GetPositions()], "description": "Ethanol."}
    db_path = root / "pubchem/train/3d-pubchem.lmdb"
    db_path.parent.mkdir(parents=True)
    env = lmdb.open(str(db_path), subdir=False, map_size=1 << 24, lock=False)
    with env.begin(write=True) as txn:
        for cid in range(1000, 1060):
            txn.put(str(cid).encode(), pickle.dumps({**value, "cid": str(cid)}))
    env.close()
    leaves = leaf_pages(db_path)
    assert len(leaves) >= 3
    damaged = bytearray(db_path.read_bytes())
    damaged[leaves[1] * 4096:leaves[1] * 4096 + 16] = b"\xff" * 16  # the second leaf page's header
    db_path.write_bytes(bytes(damaged))

    out = list(READERS["3d-moit"](str(root), {}))
    captions = [o for o in out if isinstance(o, SourceItem) and o.task == "Caption"]
    (walk,) = [o for o in out if isinstance(o, SourceError)]
    assert 0 < len(captions) < 60  # those before the damaged page
    assert walk.stage == "read" and "MDB_CORRUPTED" in walk.reason
    assert walk.id == f"pubchem-train-lmdb-after-{captions[-1].extra['cid']}"

    lost = str(int(captions[-1].extra["cid"]) + 1)  # the first key on the damaged page
    (root / "pubchem/train/2d_computed_properties.json").write_text(json.dumps([
        {"instruction": "MW?", "input": "1000", "output": "46.07", "task": "Molecular Weight"},
        {"instruction": "MW?", "input": lost, "output": "46.07", "task": "Molecular Weight"},
    ]))
    out = list(READERS["3d-moit"](str(root), {}))
    weights = [o for o in out if isinstance(o, SourceItem) and o.task == "Molecular Weight"]
    assert [w.extra["cid"] for w in weights] == ["1000"]  # the instruction file was read after the walk
    (lookup,) = [o for o in out if isinstance(o, SourceError) and o.id == f"pubchem-train-{lost}-molecular-weight"]
    assert lookup.stage == "read" and "MDB_CORRUPTED" in lookup.reason


# --- durability -----------------------------------------------------------------------


def test_outputs_are_on_disk_before_the_manifest(tmp_path, monkeypatch):
    """Before: records, failures, sidecars and the folders' renames were never synced."""
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "out"
    assert prepare(*hardening_args(tmp_path, out))[0] == 0
    names = [p.name for p in synced]
    manifest = next(i for i, p in enumerate(synced) if p.name.startswith("manifest.json"))
    before = set(names[:manifest])
    assert {"train.json", "failures.jsonl", "train.npy", "fp", "images", out.name} <= before
    image_folders = {p.parent.name for p in out.glob("images/*/*")}
    assert image_folders <= before
    assert out.name in names[manifest + 1:]  # and the manifest's own rename


def test_a_damaged_output_is_found_and_redone(tmp_path, capsys):
    """Before: a rerun said "already complete" over an edited or truncated output."""
    out = tmp_path / "out"
    args = hardening_args(tmp_path, out)
    assert prepare(*args)[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"train.json", "fp/train.npy", "failures.jsonl"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    intact = tree(out)

    train = out / "train.json"
    train.write_bytes(train.read_bytes()[:100])  # truncated after the run
    image = next(out.glob("images/*/*"))
    image.write_bytes(b"not the picture")
    capsys.readouterr()
    code, printed = prepare(*args)
    err = capsys.readouterr().err
    assert code == 0 and "processed 8 items" in printed
    assert "does not match its manifest" in err and "redoing the run" in err
    assert "train.json: does not match its SHA-256" in err
    assert tree(out) == intact

    image.write_bytes(b"not the picture")  # the record files intact, one picture damaged
    assert prepare(*args)[0] == 0
    assert f"{image.relative_to(out).as_posix()}: its bytes do not hash to its name" in capsys.readouterr().err
    assert tree(out) == intact
    code, printed = prepare(*args)
    assert code == 0 and "processed 0 items" in printed


HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_second_run_on_one_folder_is_refused(tmp_path, capsys):
    """Before: nothing stopped two runs writing one --out."""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out / ".lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        code, _ = prepare(*hardening_args(tmp_path, out))
        assert code == 2
        assert f"another deepmolm-prepare is writing {out} (pid {holder.pid})" in capsys.readouterr().err
        assert not (out / ".progress").exists()
    finally:
        holder.communicate("")
    assert prepare(*hardening_args(tmp_path, out))[0] == 0
    assert not list(out.glob(".lock*"))  # released: a finished output holds no lock file


def test_shard_jobs_share_the_folder_but_exclude_a_full_run(tmp_path):
    from deepmolm_plugin.data.prepare.lock import OutputLock

    out = tmp_path / "out"
    first, second = OutputLock(out, (0, 2)), OutputLock(out, (1, 2))
    first.acquire()
    second.acquire()  # array jobs of one run write together
    try:
        with pytest.raises(PrepareError, match=rf"another deepmolm-prepare is writing .* \(pid {os.getpid()}\)"):
            OutputLock(out, (0, 2)).acquire()  # the same shard twice
        with pytest.raises(PrepareError, match=rf"\(pid {os.getpid()}, {os.getpid()}\)"):
            OutputLock(out, (0, 1)).acquire()  # a full run or --merge
    finally:
        first.release()
        second.release()
    full = OutputLock(out, (0, 1))
    full.acquire()
    full.release()
    assert not list(out.glob(".lock*"))


def test_overwrite_deletes_only_what_the_tool_wrote(tmp_path):
    """Before: --overwrite removed images/ and fp/ whole, a user's files in them too."""
    out = tmp_path / "out"
    assert prepare(*hardening_args(tmp_path, out))[0] == 0
    mine = {"notes.txt": b"my notes", "images/mine.png": png_bytes(9), "images/ab/keep.txt": b"mine",
            "fp/README": b"my sidecar notes"}
    for name, data in mine.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    old_images = {p.relative_to(out).as_posix() for p in out.glob("images/??/*") if p.name != "keep.txt"}
    code, _ = prepare(*hardening_args(tmp_path, out, "--image-size", "128", "--overwrite"))
    assert code == 0
    for name, data in mine.items():
        assert (out / name).read_bytes() == data
    new_images = {p.relative_to(out).as_posix() for p in out.glob("images/??/*") if p.name != "keep.txt"}
    assert not old_images & new_images  # the 256 px pictures went, the 128 px ones came
    assert json.loads((out / "manifest.json").read_text())["settings"]["image_size"] == 128


def test_a_shard_with_other_settings_is_refused_before_any_chunk_is_committed(tmp_path, monkeypatch, capsys):
    """was: array tasks start together; a task with another --image-size, started before
    its sibling had committed a chunk, was accepted and rewrote the run's settings, so the
    sibling's rerun and --merge were the ones refused (only --overwrite, losing both, helped)."""
    from deepmolm_plugin.data.prepare import cli

    out = tmp_path / "out"
    real = cli.compute

    def started(*args, **kwargs):  # shard 0 has written .progress/run.json, committed nothing yet
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "compute", started)
    assert prepare(*hardening_args(tmp_path, out, "--shard", "0/2"))[0] == 130
    monkeypatch.setattr(cli, "compute", real)
    assert (out / ".progress" / "run.json").is_file() and not list((out / ".progress").glob("chunk-*"))
    assert prepare(*hardening_args(tmp_path, out, "--shard", "1/2", "--image-size", "128"))[0] == 2
    err = capsys.readouterr().err
    assert "holds the start of a different run (setting image_size: 256 -> 128), with no chunk committed" in err
    assert f"delete {out / '.progress' / 'run.json'} (or run once without --shard with --overwrite)" in err
    for shard in ("0/2", "1/2"):  # the run's own settings go on
        assert prepare(*hardening_args(tmp_path, out, "--shard", shard))[0] == 0
    assert prepare(*hardening_args(tmp_path, out, "--merge"))[0] == 0
