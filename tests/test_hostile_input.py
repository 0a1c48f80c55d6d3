"""Hostile LMDB values: pickles that use only the allowed globals (numpy.dtype, the array
reconstructors) to build object, structured or void data from raw bytes.

Before safe_pickle checked dtypes, such a value made numpy read attacker bytes as object
pointers: the process segfaulted. So every forged value is loaded in a subprocess, which
reports what happened; the test fails (not the pytest process) if it crashes.
"""

import json
import pickle
import subprocess
import sys
import textwrap

import lmdb
import numpy as np
import pytest
from numpy._core import multiarray

from deepmolm_plugin.data.sources import safe_pickle
from deepmolm_plugin.data.sources.safe_pickle import safe_loads
from host_fixtures import ROOT


class Forged:
    """Pickles as ``call(*args)`` followed by ``BUILD state``: any value the allowed
    globals can express, whether or not numpy itself would ever write it."""

    def __init__(self, call, args, state=None):
        self.call, self.args, self.state = call, args, state

    def __reduce__(self):
        return (self.call, self.args) if self.state is None else (self.call, self.args, self.state)


POINTER = b"\x41" * 8  # what numpy would dereference as a PyObject* (0x4141414141414141)
OBJECT_FIELD = {"a": (np.dtype("O"), 0)}


def forged_array(dtype, data=POINTER, shape=(1,)):
    """An ndarray as numpy pickles it (protocols 0-4), with any dtype and raw bytes."""
    return Forged(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


def forged_dtype(spec, state, copy=True):
    """``numpy.dtype(spec, False, copy)`` then ``__setstate__(state)``, as pickles spell it."""
    return Forged(np.dtype, (spec, False, copy), state)


# name -> (value to pickle, text the refusal must contain)
FORGED = {
    # a structured dtype with an object field whose "has objects" flag is cleared
    "object-field-flag-cleared": (
        forged_array(forged_dtype("V8", (3, "|", None, ("a",), OBJECT_FIELD, 8, 1, 0))), "dtype kind 'V'"),
    # numpy.dtype("f8", copy=False) is numpy's shared float64: its state set to "holds objects"
    "float64-singleton-flagged-object": (
        forged_array(forged_dtype("f8", (3, "<", None, None, None, -1, -1, 0x3F), copy=False)),
        "flagged as holding objects"),
    # a field grafted onto a float64 dtype by its state
    "float64-with-object-field": (
        forged_array(forged_dtype("f8", (3, "<", None, ("a",), OBJECT_FIELD, 8, 8, 0))), "structured"),
    # what numpy itself writes: an object array, a structured dtype with an object field, void
    "object-array": ({"atoms": np.array(["C", 1], dtype=object)}, "dtype kind 'O'"),
    "structured-object-dtype": ({"d": np.dtype([("a", "O")])}, "dtype kind 'V'"),
    "structured-array": ({"x": np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])}, "dtype kind 'V'"),
    "void-array": ([np.zeros(2, dtype="V8")], "dtype kind 'V'"),
    "void-scalar": (np.void(b"ab"), "dtype kind 'V'"),
    # numpy.ndarray called directly would wrap any buffer: it is only a name for _reconstruct
    "ndarray-called": (Forged(np.ndarray, ((1,), np.dtype("f8"), POINTER)), "damaged"),
    "huge-bytes": (Forged(bytes, (1 << 50,)), "bytes(size) is not accepted"),
    # plain unicode data, but a code unit numpy cannot turn into a str (SystemError)
    "unicode-array-bad-code-point": (forged_array(np.dtype("<U1"), b"\xff" * 4), "above U+10FFFF"),
    "unicode-scalar-bad-code-point": (Forged(multiarray.scalar, (np.dtype("<U1"), b"\xff" * 4)), "above U+10FFFF"),
}

LOAD_EACH = textwrap.dedent("""
    import importlib.util, json, pickle, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("safe_pickle", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in sys.argv[2:]:
        try:
            value = module.safe_loads(open(path, "rb").read())
        except pickle.UnpicklingError as error:
            print(json.dumps([path, "refused", str(error)]), flush=True)
            continue
        print(json.dumps([path, "loaded", repr(value)[:200]]), flush=True)  # may touch forged pointers
    print(json.dumps(["float64", "hasobject", bool(np.dtype("f8").hasobject)]), flush=True)
""")


def run_python(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("protocol", [2, 5])
def test_forged_dtypes_are_refused_without_crashing(tmp_path, protocol):
    paths = {}
    for name, (value, _) in FORGED.items():
        paths[name] = tmp_path / f"{name}.pkl"
        paths[name].write_bytes(pickle.dumps(value, protocol=protocol))
    proc = run_python(LOAD_EACH, safe_pickle.__file__, *paths.values())
    assert proc.returncode == 0, f"loading crashed the process (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    *results, (_, _, float64_has_objects) = [json.loads(line) for line in proc.stdout.splitlines()]
    outcome = {path: (kind, text) for path, kind, text in results}
    for name, (_, reason) in FORGED.items():
        kind, text = outcome[str(paths[name])]
        assert kind == "refused", f"{name} was loaded: {text}"
        assert reason in text, f"{name}: {text}"
    assert not float64_has_objects  # numpy's shared float64 was never touched


def test_plain_values_still_load():
    value = {"f": np.arange(6.0).reshape(2, 3), "i": np.arange(3, dtype=np.int32), "b": np.array([True, False]),
             "u": np.array(["C", "H"]), "s": np.array([b"ab"]), "scalar": np.float64(1.5),
             "list": [1, "x", [np.ones(2, np.float32)]], "t": (1, 2.0), "raw": b"\x00\xff"}
    for protocol in range(6):
        out = safe_loads(pickle.dumps(value, protocol=protocol))
        assert out.keys() == value.keys()
        for key in ("f", "i", "b", "u", "s"):
            assert type(out[key]) is np.ndarray and out[key].dtype == value[key].dtype
            assert np.array_equal(out[key], value[key])
        assert type(out["list"][2][0]) is np.ndarray and out["list"][:2] == [1, "x"]
        assert out["scalar"] == 1.5 and out["t"] == (1, 2.0) and out["raw"] == b"\x00\xff"


def test_every_array_is_checked_again_after_unpickling():
    """The second line of defence: the walk over the result refuses a non-plain array
    wherever it sits (unpickling itself can no longer make one)."""
    walk = safe_pickle._Walk()
    with pytest.raises(pickle.UnpicklingError, match="dtype kind 'O'"):
        walk({"a": [(np.array([None], dtype=object),)]})
    with pytest.raises(pickle.UnpicklingError, match="dtype kind 'V'"):
        safe_pickle._Walk()([np.zeros(1, dtype=[("a", "f8")])])
    shared = np.ones(2)
    loop = [shared, {"k": shared}]
    loop.append(loop)
    assert safe_pickle._Walk()(loop) is loop and loop[2] is loop


READ_MOIT = textwrap.dedent("""
    import json, sys
    from deepmolm_plugin.data.sources import READERS, moit
    for out in READERS["3d-moit"](sys.argv[1], {"include": "pubchem", "tasks": ["Caption"]}):
        print(json.dumps([type(out).__name__, out.id, getattr(out, "stage", None), getattr(out, "reason", None)]))
""")


def test_moit_reports_a_forged_value_as_that_record_and_reads_on(tmp_path):
    root = tmp_path / "3d-mol-dataset"
    (root / "pubchem" / "train").mkdir(parents=True)
    water = {"cid": "962", "smiles": "O", "atoms": ["O", "H", "H"], "description": "Water.",
             "coordinates": [np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])]}
    values = {"962": water, "13": FORGED["object-field-flag-cleared"][0],
              "14": {**water, "coordinates": [FORGED["float64-singleton-flagged-object"][0]]},
              "15": {**water, "atoms": np.array(["O", "H", "H"], dtype=object)},
              "16": {**water, "atoms": 5}}
    env = lmdb.open(str(root / "pubchem" / "train" / "3d-pubchem.lmdb"), subdir=False, map_size=1 << 22, lock=False)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key.encode(), pickle.dumps(value, protocol=4))
    env.close()

    proc = run_python(READ_MOIT, root)
    assert proc.returncode == 0, f"the reader crashed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    out = {id: (kind, stage, reason) for kind, id, stage, reason in map(json.loads, proc.stdout.splitlines())}
    assert out["pubchem-train-962-caption"][0] == "SourceItem"
    for key, reason in (("13", "dtype kind 'V'"), ("14", "flagged as holding objects"), ("15", "dtype kind 'O'")):
        kind, stage, text = out[f"pubchem-train-{key}-caption"]
        assert (kind, stage) == ("SourceError", "read")
        assert f"LMDB value {key!r}" in text and reason in text, text
    assert out["pubchem-train-16-caption"][:2] == ("SourceError", "schema")  # plain but not a list of atoms
    assert len(out) == 5
