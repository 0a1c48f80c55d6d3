"""Sixth sweep, source readers: damaged pickled values in 3D-MoIT LMDB files (a numpy.dtype
state numpy never writes, length fields and memo indices longer than the value) and
vis-ChEBI-20 image paths the file system refuses to look up (a name too long, a folder this
user cannot search). Each was one record's damage that ended the whole run.

The dtype states crashed the process (SIGSEGV), so they are loaded in a subprocess that
reports what happened: the test fails, not the pytest process.
"""

import errno
import json
import pathlib
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from deepmolm_plugin.data.sources import moit, safe_pickle, vis_chebi20  # noqa: F401  (registered)
from deepmolm_plugin.data.sources.safe_pickle import safe_loads
from host_fixtures import ROOT, run_module
from test_hostile_input import LOAD_EACH, Forged, forged_array, forged_dtype, run_python
from test_prepare import prepare
from test_sources import embedded, errors, items, read, vis_record, write_json, write_lmdb

# ---------------------------------------------------------------------------------------
# numpy.dtype states

# name -> pickled state of numpy.dtype(spec, False, True); numpy writes (3, byteorder, None,
# None, None, elsize, alignment, flags) for these dtypes, elsize/alignment -1 unless a string
BAD_DTYPE_STATES = {
    "six-items": ("i1", (3, "<", None, -1, -1, 0)),  # numpy's __setstate__ segfaulted on this one
    "seven-items": ("f8", (3, "<", None, None, None, -1, -1)),
    "version-2": ("f8", (2, "<", None, None, None, -1, -1, 0)),
    "version-bool": ("f8", (True, "<", None, None, None, -1, -1, 0)),
    "byte-order-x": ("f8", (3, "x", None, None, None, -1, -1, 0)),
    "byte-order-int": ("f8", (3, 60, None, None, None, -1, -1, 0)),
    "element-size-f8-4": ("f8", (3, "<", None, None, None, 4, -1, 0)),
    "element-size-S3-100": ("S3", (3, "|", None, None, None, 100, 1, 0)),
    "alignment-float": ("f4", (3, "<", None, None, None, -1, 1.5, 0)),
    "not-a-tuple": ("f4", [3, "<", None, None, None, -1, -1, 0]),
    "metadata-list": ("f4", (4, "<", None, None, None, -1, -1, 0, [1])),
}


def _forged_dtype_paths(tmp_path, protocol):
    paths = {}
    for name, (spec, state) in BAD_DTYPE_STATES.items():
        paths[name] = tmp_path / f"{name}-{protocol}.pkl"
        value = {"x": forged_array(forged_dtype(spec, state), data=b"\x00" * 8)} if name == "six-items" else \
            forged_dtype(spec, state)
        paths[name].write_bytes(pickle.dumps(value, protocol=protocol))
    return paths


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_dtype_state_numpy_never_writes_is_a_damaged_value_not_a_crash(tmp_path, protocol):
    # was: handed to numpy's own dtype.__setstate__, which segfaulted on the 6-tuple
    paths = _forged_dtype_paths(tmp_path, protocol)
    proc = run_python(LOAD_EACH, safe_pickle.__file__, *paths.values())
    assert proc.returncode == 0, f"loading crashed the process (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    outcome = {path: (kind, text) for path, kind, text in map(json.loads, proc.stdout.splitlines()[:-1])}
    for name, path in paths.items():
        kind, text = outcome[str(path)]
        assert kind == "refused", f"{name} was loaded: {text}"
        assert text.startswith("damaged pickled value: numpy.dtype("), f"{name}: {text}"


def test_dtype_states_that_set_objects_or_fields_are_still_refused_by_name():
    flagged = forged_dtype("f8", (3, "<", None, None, None, -1, -1, 0x3F))
    with pytest.raises(pickle.UnpicklingError, match="flagged as holding objects"):
        safe_loads(pickle.dumps(forged_array(flagged), protocol=2))
    fields = forged_dtype("f8", (3, "<", None, ("a",), {"a": (np.dtype("f8"), 0)}, 8, 8, 0))
    with pytest.raises(pickle.UnpicklingError, match="structured or subarray"):
        safe_loads(pickle.dumps(forged_array(fields), protocol=2))
    assert not np.dtype("f8").hasobject


@pytest.mark.parametrize("spec", ["01U1", "(01,)i4", "U1,(01)f8", "(" * 5000])
def test_a_dtype_spec_numpy_never_writes_is_refused_before_numpy_parses_it(spec):
    # was: numpy parsed it with ast.literal_eval, and a SyntaxError escaped the reader
    with pytest.raises(pickle.UnpicklingError, match="only a type string such as 'f8'"):
        safe_loads(pickle.dumps(Forged(np.dtype, (spec, False, True)), protocol=2))


PLAIN = ["?", "i1", "u1", "<i2", ">i2", "<u4", ">i8", "<f2", ">f4", "<f8", ">f8", "<c8", ">c16", "S3", "<U2", ">U2"]


@pytest.mark.parametrize("protocol", range(6))
def test_dtypes_numpy_writes_still_load_in_either_byte_order(protocol):
    arrays = {spec: (np.array(["a", "bc", ""]) if np.dtype(spec).kind in "SU" else np.arange(3)).astype(spec)
              for spec in PLAIN}
    value = {"arrays": arrays, "dtypes": [np.dtype(spec) for spec in PLAIN],
             "scalars": [np.float32(1.5), np.int64(-3), np.bool_(True), np.str_("ab"), np.bytes_(b"xy")],
             "metadata": np.ones(2, dtype=np.dtype("f4", metadata={"unit": "A"}))}  # version-4 state
    data = pickle.dumps(value, protocol=protocol)
    out, numpy_own = safe_loads(data), pickle.loads(data)
    for spec, array in arrays.items():
        got = out["arrays"][spec]
        # numpy itself loads a big-endian array of protocols 0-4 in native order
        assert type(got) is np.ndarray and got.dtype.str == numpy_own["arrays"][spec].dtype.str, spec
        assert np.array_equal(got, array), spec
    if protocol == 5:
        assert [out["arrays"][spec].dtype.str for spec in PLAIN] == [np.dtype(spec).str for spec in PLAIN]
    assert [d.str for d in out["dtypes"]] == [np.dtype(spec).str for spec in PLAIN]
    assert [(type(s), s) for s in out["scalars"]] == [(type(s), s) for s in value["scalars"]]
    assert out["metadata"].dtype == np.float32 and out["metadata"].dtype.metadata is None
    assert np.array_equal(out["metadata"], value["metadata"])


# ---------------------------------------------------------------------------------------
# length fields and memo indices

def _declared(opcode: bytes, size_format: str, size: int, payload: bytes = b"C\x00\x00\x00O\x00\x00\x00") -> bytes:
    return b"\x80\x05" + opcode + struct.pack(size_format, size) + payload + b"."


LONG_FIELDS = {  # opcode -> a declared length far beyond the value's own bytes
    "BYTEARRAY8": _declared(b"\x96", "<Q", 21031245681000496),
    "BINBYTES8": _declared(b"\x8e", "<Q", 1 << 60),
    "BINUNICODE8": _declared(b"\x8d", "<Q", 1 << 60),
    "BINBYTES": _declared(b"B", "<I", 0xFFFFFFF0),
    "BINUNICODE": _declared(b"X", "<I", 0xFFFFFFF0),
}


@pytest.mark.parametrize("name", LONG_FIELDS)
def test_a_length_field_longer_than_the_value_is_a_damaged_value(name, capfd):
    # was: BYTEARRAY8/BINBYTES8/BINUNICODE8 escaped as MemoryError (the C unpickler allocates
    # the declared length first), and a bytearray's printed "SystemError: deallocated
    # bytearray object has exported buffers"; the 4-byte ones asked for 4 GB first
    with pytest.raises(pickle.UnpicklingError, match=r"damaged pickled value: expected \d+ bytes in a"):
        safe_loads(LONG_FIELDS[name])
    assert "SystemError" not in capfd.readouterr().err


def test_a_memo_index_larger_than_the_value_is_a_damaged_value():
    # was: the C unpickler grew its memo table to twice the index and cleared it: 12 GB for an
    # index of 1.4e9 (here 10**7: 160 MB, then the value loaded as if sound)
    data = b"\x80\x02]r" + struct.pack("<I", 10**7) + b"K\x01a."  # [1], memoized as entry 10**7
    with pytest.raises(pickle.UnpicklingError, match="LONG_BINPUT at position 3 stores memo entry 10000000"):
        safe_loads(data)
    assert safe_loads(pickle.dumps([[1]] * 3, protocol=2)) == [[1]] * 3  # real memo entries still load


def test_memory_and_recursion_errors_while_loading_are_damaged_values(monkeypatch):
    # the second line of defence, for what the length scan cannot see
    for error in (MemoryError(), RecursionError("deep"), SystemError("numpy")):
        def load(self, error=error):
            raise error
        monkeypatch.setattr(safe_pickle.SafeUnpickler, "load", load)
        with pytest.raises(pickle.UnpicklingError, match=f"damaged pickled value: {type(error).__name__}"):
            safe_loads(pickle.dumps([1], protocol=2))


# ---------------------------------------------------------------------------------------
# deepmolm-prepare on such LMDB values

def _moit_input(tmp_path, damaged: dict, protocol: int) -> pathlib.Path:
    _, atoms, coords = embedded("CCO")
    good = {"cid": "1", "smiles": "CCO", "atoms": atoms, "coordinates": [coords], "description": "Ethanol."}
    root = tmp_path / "3d-mol-dataset"
    write_lmdb(root / "pubchem/train/3d-pubchem.lmdb", {"1": good, **damaged}, protocol=protocol)
    return root


def _moit_args(root, out):
    return ["--format", "3d-moit", "--input", str(root), "--out", str(out), "--image-size", "32", "--no-progress",
            "--option", "tasks=Caption"]


def _failures(out):
    return {f["id"]: f for f in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}


def test_prepare_reports_a_damaged_dtype_state_and_goes_on(tmp_path):
    # was: deepmolm-prepare itself died with SIGSEGV (exit -11): no failures.jsonl, no manifest
    _, atoms, coords = embedded("CCO")
    bad = {"cid": "2", "smiles": "CCO", "atoms": atoms, "coordinates": [coords], "description": "x",
           "junk": forged_dtype(*BAD_DTYPE_STATES["six-items"])}
    root = _moit_input(tmp_path, {"2": pickle.dumps(bad, protocol=2)}, protocol=2)
    proc = run_module("deepmolm_plugin.data.prepare", _moit_args(root, tmp_path / "out"), cwd=ROOT, check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    failure = _failures(tmp_path / "out")["pubchem-train-2-caption"]
    assert failure["stage"] == "read" and "LMDB value '2'" in failure["reason"]
    assert "damaged pickled value: numpy.dtype('i1') state (3, '<', None, -1, -1, 0)" in failure["reason"]
    records = json.loads((tmp_path / "out" / "train.json").read_text())
    assert [r["id"] for r in records] == ["pubchem-train-1-caption"]
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_prepare_reports_a_damaged_length_field_and_goes_on(tmp_path, capfd):
    # was: MemoryError with a traceback, every record lost
    root = _moit_input(tmp_path, {"2": LONG_FIELDS["BYTEARRAY8"], "3": LONG_FIELDS["BINBYTES8"]}, protocol=5)
    code, _ = prepare(*_moit_args(root, tmp_path / "out"))
    assert code == 0
    got = _failures(tmp_path / "out")
    for key in ("2", "3"):
        failure = got[f"pubchem-train-{key}-caption"]
        assert failure["stage"] == "read" and f"LMDB value {key!r}" in failure["reason"]
        assert "damaged pickled value: expected" in failure["reason"], failure["reason"]
    assert [r["id"] for r in json.loads((tmp_path / "out" / "train.json").read_text())] == ["pubchem-train-1-caption"]
    assert "SystemError" not in capfd.readouterr().err


# ---------------------------------------------------------------------------------------
# vis-chebi20 image paths the file system refuses

def _vis_input(root, *bad_images):
    (root / "imgs").mkdir(parents=True)
    picture = Image.new("RGB", (32, 32), "white")
    picture.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    picture.save(root / "imgs" / "1.png")
    write_json(root / "train.json", [vis_record("trans_smiles", "imgs/1.png", "SMILES?", "The SMILES is CCO.")]
               + [vis_record("trans_smiles", image, "SMILES?", "The SMILES is CCN.") for image in bad_images])
    return root


LONG_NAME = "imgs/" + "x" * 300 + ".png"


def test_vis_image_name_too_long_is_that_records_failure(tmp_path):
    # was: "--format vis-chebi20 reader stopped after 0 items: [Errno 36] File name too long"
    out = read("vis-chebi20", _vis_input(tmp_path, LONG_NAME))
    assert list(items(out)) == ["vis-chebi20-train-1-smiles"]
    [(id, error)] = errors(out).items()
    assert id == "vis-chebi20-train-" + "x" * 300 + "-smiles" and error.stage == "image"
    assert f"image file {LONG_NAME!r} cannot be looked up" in error.reason and "File name too long" in error.reason


def test_vis_image_in_a_folder_that_cannot_be_searched_is_that_records_failure(tmp_path, monkeypatch):
    # EACCES as a user meets it (root, who runs these tests in CI, may search any folder)
    is_file = pathlib.Path.is_file

    def refusing(self):
        if "locked" in self.parts:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return is_file(self)

    monkeypatch.setattr(pathlib.Path, "is_file", refusing)
    out = read("vis-chebi20", _vis_input(tmp_path, "locked/2.png"))
    assert list(items(out)) == ["vis-chebi20-train-1-smiles"]
    error = errors(out)["vis-chebi20-train-2-smiles"]
    assert error.stage == "image" and "image file 'locked/2.png' cannot be looked up" in error.reason
    assert str(tmp_path / "locked" / "2.png") in error.reason and "Permission denied" in error.reason


def test_prepare_reports_a_vis_image_name_too_long_and_goes_on(tmp_path):
    root = _vis_input(tmp_path / "vis", LONG_NAME)
    code, _ = prepare("--format", "vis-chebi20", "--input", root, "--out", tmp_path / "out", "--image-size", "32",
                      "--no-progress")
    assert code == 0
    [failure] = _failures(tmp_path / "out").values()
    assert failure["stage"] == "image" and "File name too long" in failure["reason"]
    assert [r["id"] for r in json.loads((tmp_path / "out" / "train.json").read_text())] == ["vis-chebi20-train-1-smiles"]


def test_chebi20_mm_picture_that_cannot_be_cached_is_that_records_failure(tmp_path):
    # was: a 300-digit CID (a damaged row) made a cache file name too long: the OSError
    # stopped the whole read, every later record lost
    import csv
    import zipfile

    from deepmolm_plugin.data.sources import chebi20_mm  # noqa: F401  (registered)
    from test_hostile_prepare_third import _mm_input

    data = _mm_input(tmp_path / "data")
    long_cid = "7" * 300
    with open(data / "train.csv", "a", newline="") as handle:
        csv.writer(handle).writerow([long_cid, "CCC", "Propane.", "0", "1.5", "", "propane", ""])
        csv.writer(handle).writerow(["11", "CCCC", "Butane.", "0", "2.5", "", "butane", ""])
    with zipfile.ZipFile(data / "image.zip", "a") as archive:
        archive.writestr(f"CID_{long_cid}.png", b"\x89PNG fake")
        archive.writestr("CID_11.png", b"\x89PNG fake")
    out = read("chebi20-mm", data, tasks="description", image_dir=str(tmp_path / "cache"))
    assert {"chebi20-mm-train-9-description", "chebi20-mm-train-11-description"} <= set(items(out))
    (failure,) = errors(out).values()
    assert failure.stage == "image" and failure.reason == (f"CID_{long_cid}.png cannot be extracted into image_dir: "
                                                           "File name too long")
