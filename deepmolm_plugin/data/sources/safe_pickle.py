"""Unpickle LMDB values that may hold only plain numpy arrays and builtin containers.

3D-MoIT's LMDB files (one file per split, key = CID) store each molecule as a pickled dict of
numpy arrays, lists and strings. ``pickle.loads`` on such a value runs whatever callable
the bytes name, so a crafted value executes code the moment it is read. Unpickle only
files from a source you trust; ``safe_loads`` is the safety net on top of that, and a
value it refuses is a ``pickle.UnpicklingError`` naming the reason, never a crash:

1. ``find_class`` resolves only the globals that numpy arrays, numpy scalars and builtin
   values need, and refuses any other global (``os.system``, ``builtins.eval``,
   ``subprocess.Popen``, ...) before anything is called.
2. The numpy globals are not numpy's own callables but checking stand-ins. Allowed
   globals alone are not harmless: ``numpy.dtype``'s ``__setstate__`` rewrites fields
   and flags in place (even of the process-wide ``float64`` singleton), so a value can
   build a structured dtype with an object field but its object flag cleared, and an
   array of it from raw bytes: pointers numpy then dereferences (a segfault, or worse).
   So only plain dtypes are admitted - numeric, bool, bytes and unicode strings (kinds
   ``biufcSU``), no void/structured/subarray/object/datetime dtypes - checked when a
   dtype is constructed. Its pickled state is never passed to numpy's ``__setstate__``
   (which crashes the process on a state of the wrong shape): it must be the layout numpy
   writes for a plain dtype, and only its byte order is used. Every array is made by this
   module from such a dtype and may get its state once. ``bytes`` and
   ``bytearray`` refuse an integer size (``bytes(10**12)`` would exhaust memory).
3. The unpickled value is walked (dicts, lists, tuples, sets) and every array, scalar
   and dtype in it checked once more; anything that is not a builtin value or a plain
   numpy value is refused.
4. Its size with every shared (memo) reference written out is bounded by its bytes
   (`_check_expansion`): a few hundred bytes of references to references are billions
   of elements to whoever converts or prints the value.

The allowed globals are exactly what ``pickle.dumps`` emits for plain arrays, dtypes and
scalars with protocols 0-5 under numpy 2.4 (checked by pickling them), plus their numpy 1
spellings (``numpy.core.*``: the published files were written with numpy 1):

- ``numpy._core.multiarray._reconstruct`` + ``numpy.ndarray`` (protocols 0-4 arrays),
  ``numpy._core.numeric._frombuffer`` (protocol 5 arrays), ``numpy.dtype``,
  ``numpy._core.multiarray.scalar`` (numpy scalars such as ``np.float64``);
- the builtins that protocols 0-4 reconstruct by name: ``set``, ``frozenset``,
  ``complex``, ``bytearray`` (``list``/``dict``/``tuple``/``str``/``int``/``float``/
  ``bytes`` are allowed too, harmless constructors);
- ``_codecs.encode``, which protocols 0-2 use for ``bytes``: accepted only as
  ``encode(text, "latin1")``.

``copyreg._reconstructor`` is not needed by any of these and stays forbidden. Object and
structured arrays, which numpy can pickle, are refused.
"""

from __future__ import annotations

import builtins
import codecs
import io
import pickle
import pickletools
import re

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

__all__ = ["SafeUnpickler", "safe_loads"]

PLAIN_KINDS = frozenset("biufcSU")  # bool, ints, floats, complex, bytes, unicode
_OBJECT_FLAGS = 0x01 | 0x02 | 0x04  # NPY_ITEM_REFCOUNT, NPY_LIST_PICKLE, NPY_ITEM_IS_POINTER
_TYPE_STRING = re.compile(r"[<>|=]?[A-Za-z?]{1,16}[0-9]{0,8}", re.ASCII)  # "f8", "<U1", "float64"
MAX_DEPTH = 64  # containers nested deeper are refused (a record is a dict of lists of arrays)
# How much larger than its bytes a value may be once its shared references are written out
# (`_check_expansion`): a real record refers to a string or list again with a 2-5 byte memo
# reference at most a few times per byte (atom symbols: ~1 element per 2 bytes; a repeated
# 20-character dict key: 10 characters per byte), so 64 units per byte, and 2^20 in all for
# small values, leave room; 34 nested `x = [x, x]` are 2^34 elements in 262 bytes.
EXPANSION_PER_BYTE = 64
MIN_EXPANSION = 1 << 20


def _refuse(reason: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"refused pickled value: {reason} (deepmolm_plugin.data.sources.safe_pickle)")


def check_plain(dtype: np.dtype, what: str) -> None:
    """Refuse any dtype but a plain numeric, bool or string one: only those are raw bytes
    that numpy never reads as pointers, whatever the bytes are."""
    if dtype.kind not in PLAIN_KINDS:
        raise _refuse(f"{what} has dtype kind {dtype.kind!r}; only plain numeric, bool and string "
                      "dtypes may be unpickled (no void, structured, object or datetime dtypes)")
    if dtype.fields is not None or dtype.names is not None or dtype.subdtype is not None:
        raise _refuse(f"{what} has a structured or subarray dtype")
    if dtype.hasobject or dtype.flags & _OBJECT_FLAGS:
        raise _refuse(f"{what} has a dtype flagged as holding objects")


def check_code_points(array: np.ndarray, what: str) -> None:
    """Refuse unicode data holding a code unit above U+10FFFF: numpy turns such an element
    into a SystemError wherever it is read, which would end the whole dataset read."""
    if array.dtype.kind != "U" or array.size == 0 or array.dtype.itemsize == 0:
        return
    units = np.ascontiguousarray(array).reshape(-1).view(array.dtype.str[0] + "u4")
    if int(units.max()) > 0x10FFFF:
        raise _refuse(f"{what} holds a code point above U+10FFFF")


class _Dtype:
    """What ``numpy.dtype(spec, align, copy)`` gives inside a pickle: a checked plain dtype.

    ``__setstate__`` (the pickle's BUILD) never reaches numpy: the state must be the
    layout numpy writes for a plain dtype (``_dtype_byteorder``), and only its byte order
    is used, on ``numpy.dtype(spec)``; whatever else it says is checked, then dropped.
    """

    def __init__(self, spec, align=False, copy=False):
        if not isinstance(spec, str):
            raise _refuse(f"numpy.dtype({type(spec).__name__}): only a type string is accepted")
        # numpy writes a kind and a size ("f8", "U1", "b1"). Was: any string went to numpy's
        # parser, which reads "(01,)i4" with ast.literal_eval: a SyntaxError escaped the reader.
        if not _TYPE_STRING.fullmatch(spec):
            raise _refuse(f"numpy.dtype({spec[:40]!r}): only a type string such as 'f8' or '<U1' is accepted "
                          "(no commas, shapes or fields)")
        self.spec = spec
        self.dtype = np.dtype(spec)
        check_plain(self.dtype, f"numpy.dtype({spec!r})")
        self.built = False

    def __setstate__(self, state) -> None:
        if self.built:
            raise _refuse(f"numpy.dtype({self.spec!r}) given its state twice")
        self.built = True
        # was: the state went to numpy's own dtype.__setstate__ (on a throwaway copy), which
        # crashes the process (SIGSEGV) on a state of a shape numpy never writes, e.g. the
        # 6-tuple (3, "<", None, -1, -1, 0): one damaged LMDB value killed deepmolm-prepare
        # with no failures.jsonl. So the state is only read here, never handed to numpy.
        self.dtype = self.dtype.newbyteorder(_dtype_byteorder(self.spec, self.dtype, state))  # "|": unchanged
        check_plain(self.dtype, f"numpy.dtype({self.spec!r}) with its pickled state")


def _damaged_dtype_state(spec: str, state, why: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"damaged pickled value: numpy.dtype({spec!r}) state {_short(state)} {why} "
                                  "(deepmolm_plugin.data.sources.safe_pickle)")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _is_int(value) -> bool:
    return type(value) is int  # not bool, not a float: numpy writes plain ints


def _dtype_byteorder(spec: str, dtype: np.dtype, state) -> str:
    """The byte order of a pickled plain dtype's state, checked against the layout numpy
    writes for one (numpy 1.x and 2.x alike, checked by pickling them):
    ``(3, byteorder, None, None, None, elsize, alignment, flags)``, or version 4 with a
    ninth item, the dtype's metadata (None or a dict; dropped: a plain dtype needs none).
    ``elsize`` and ``alignment`` are -1 for fixed-size dtypes ("f4", "b1") and the
    dtype's own for strings ("S3": 3, 1; "U2": 8, 4). Anything else is refused."""
    if not isinstance(state, tuple) or len(state) not in (8, 9):
        raise _damaged_dtype_state(spec, state, "is not the (version, byteorder, subarray, names, fields, "
                                                "elsize, alignment, flags) tuple numpy writes")
    version, byteorder, subarray, names, fields, elsize, alignment, flags = state[:8]
    if not _is_int(version) or (version, len(state)) not in ((3, 8), (4, 9)):
        raise _damaged_dtype_state(spec, state, f"has version {version!r} with {len(state)} items "
                                                "(numpy writes 3 with 8 items, or 4 with 9)")
    if len(state) == 9 and not (state[8] is None or isinstance(state[8], dict)):
        raise _damaged_dtype_state(spec, state, "has metadata that is not a dict")
    if subarray is not None or names is not None or fields is not None:
        raise _refuse(f"numpy.dtype({spec!r}) with its pickled state has a structured or subarray dtype")
    if not isinstance(byteorder, str) or byteorder not in ("<", ">", "|", "="):
        raise _damaged_dtype_state(spec, state, f"has byte order {byteorder!r} (not one of < > | =)")
    if not (_is_int(elsize) and _is_int(alignment) and _is_int(flags)):
        raise _damaged_dtype_state(spec, state, "has an element size, alignment or flags that is not an integer")
    if elsize != dtype.itemsize and (dtype.kind in "SU" or elsize != -1):
        raise _damaged_dtype_state(spec, state, f"has element size {elsize}; numpy.dtype({spec!r}) has "
                                                f"{dtype.itemsize}")
    if alignment not in (-1, dtype.alignment):
        raise _damaged_dtype_state(spec, state, f"has alignment {alignment}; numpy.dtype({spec!r}) has "
                                                f"{dtype.alignment}")
    if flags & _OBJECT_FLAGS:
        raise _refuse(f"numpy.dtype({spec!r}) with its pickled state has a dtype flagged as holding objects")
    return byteorder


def _plain_dtype(value) -> np.dtype:
    if not isinstance(value, _Dtype):
        raise _refuse(f"an array or scalar needs a pickled numpy.dtype, got {type(value).__name__}")
    return value.dtype


class _NdarrayName:
    """``numpy.ndarray`` inside a pickle: only a name for ``_reconstruct`` to accept (the
    real class, called or instantiated, would build an array over any buffer)."""


_NDARRAY = _NdarrayName()


class _Array:
    """An array being unpickled: ``_reconstruct`` makes it empty, one ``__setstate__`` fills
    it from a plain dtype; ``_frombuffer`` makes it full. The walk swaps it for ``.array``."""

    def __init__(self, array=None):
        self.array = array

    def __setstate__(self, state) -> None:
        if self.array is not None:
            raise _refuse("a numpy array given its state twice")
        if not isinstance(state, tuple) or len(state) != 5:
            raise _refuse("a numpy array's state must be (version, shape, dtype, fortran, data)")
        version, shape, dtype, fortran, data = state
        array = _multiarray._reconstruct(np.ndarray, (0,), b"b")
        array.__setstate__((version, shape, _plain_dtype(dtype), fortran, data))
        self.array = array


def _reconstruct(cls, shape, typecode) -> _Array:
    """``numpy._core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")``: an empty array."""
    if cls is not _NDARRAY:
        raise _refuse("_reconstruct builds only numpy.ndarray")
    return _Array()


def _frombuffer(buffer, dtype, shape, order) -> _Array:
    """``numpy._core.numeric._frombuffer`` (protocol 5) with a checked plain dtype."""
    if not isinstance(buffer, (bytes, bytearray)):
        raise _refuse(f"_frombuffer needs bytes, got {type(buffer).__name__}")
    return _Array(_numeric._frombuffer(buffer, _plain_dtype(dtype), shape, order))


def _scalar(dtype, data=None):
    """``numpy._core.multiarray.scalar(dtype, raw bytes)``, for plain dtypes only."""
    if not isinstance(data, bytes):
        raise _refuse(f"a numpy scalar needs raw bytes, got {type(data).__name__}")
    dtype = _plain_dtype(dtype)
    if dtype.kind == "U":
        check_code_points(np.frombuffer(data[:dtype.itemsize], dtype=dtype), "a numpy str_ scalar")
    return _multiarray.scalar(dtype, data)


def _sized_free(constructor):
    """``bytes``/``bytearray`` without their ``(size)`` form: ``bytes(10**12)`` would
    allocate that much memory, and pickles never need it."""

    def build(*args):
        if args and isinstance(args[0], int):
            raise _refuse(f"{constructor.__name__}(size) is not accepted")
        return constructor(*args)

    return build


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocols 0-2 use it for bytes; any other codec is refused."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"forbidden call _codecs.encode(..., {encoding!r})")
    return codecs.encode(text, "latin1")


_NUMPY = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
    ("multiarray", "_reconstruct"): _reconstruct,
    ("multiarray", "scalar"): _scalar,
    ("numeric", "_frombuffer"): _frombuffer,
}
_NUMPY_MODULES = {  # numpy 2 and numpy 1 spellings of the same modules
    "numpy._core.multiarray": "multiarray",
    "numpy.core.multiarray": "multiarray",
    "numpy._core.numeric": "numeric",
    "numpy.core.numeric": "numeric",
}
_BUILTINS = {name: getattr(builtins, name) for name in (
    "list", "dict", "tuple", "set", "frozenset", "str", "int", "float", "complex", "bool")}
_BUILTINS.update(bytes=_sized_free(bytes), bytearray=_sized_free(bytearray))
_ATOMS = (str, bytes, bytearray, int, float, complex, type(None))  # bool is an int


class SafeUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose ``find_class`` only knows the allow-list above."""

    def find_class(self, module: str, name: str):
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        key = (_NUMPY_MODULES.get(module, module), name)
        if key in _NUMPY:
            return _NUMPY[key]
        raise pickle.UnpicklingError(
            f"forbidden global {module}.{name} in a pickled value: only numpy arrays and "
            "builtin values may be unpickled (deepmolm_plugin.data.sources.safe_pickle)"
        )


class _Walk:
    """The unpickled value with every stand-in swapped for its numpy value and every
    numpy value checked again. Lists and dicts are updated in place (so shared and
    cyclic ones stay so); each object is visited once."""

    def __init__(self):
        self.done: dict = {}  # id -> (original, result); the original is kept alive
        self.tuples_open: set = set()

    def __call__(self, value, depth: int = 0):
        if isinstance(value, _ATOMS):
            return value
        if id(value) in self.tuples_open:
            raise _refuse("a tuple that contains itself")
        if id(value) in self.done:
            return self.done[id(value)][1]
        if depth > MAX_DEPTH:
            raise _refuse(f"containers nested deeper than {MAX_DEPTH} levels")
        result = self._visit(value, depth + 1)
        self.done[id(value)] = (value, result)
        return result

    def _visit(self, value, depth: int):
        kind = type(value)
        if kind is list:
            self.done[id(value)] = (value, value)
            value[:] = [self(item, depth) for item in value]
            return value
        if kind is dict:
            self.done[id(value)] = (value, value)
            items = [(self._key(key, depth), self(item, depth)) for key, item in value.items()]
            value.clear()
            value.update(items)
            return value
        if kind is tuple:
            self.tuples_open.add(id(value))
            result = tuple(self(item, depth) for item in value)
            self.tuples_open.discard(id(value))
            return result
        if kind in (set, frozenset):
            return kind(self._key(item, depth) for item in value)
        return self._numpy(value)

    def _key(self, value, depth: int):
        """A dict key or set member: an array there (unhashable) is refused."""
        if isinstance(value, _Array):
            raise _refuse("a numpy array as a dict key or set member")
        return self(value, depth)

    @staticmethod
    def _numpy(value):
        if isinstance(value, _Array):
            if value.array is None:
                raise _refuse("a numpy array that was never given its state")
            value = value.array
        if isinstance(value, _Dtype):
            value = value.dtype
        if isinstance(value, np.dtype):
            check_plain(value, "a dtype")
        elif isinstance(value, np.ndarray):
            check_plain(value.dtype, "a numpy array")
            check_code_points(value, "a numpy array")
        elif isinstance(value, np.generic):
            check_plain(value.dtype, f"a numpy {type(value).__name__}")
        else:
            raise _refuse(f"a {type(value).__name__} is not a builtin or plain numpy value")
        return value


_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _check_lengths(data: bytes) -> None:
    """Refuse a value whose opcodes cannot all be read: ``pickletools.genops`` reads each
    opcode's argument without running it and fails on a declared length (BINBYTES8,
    BYTEARRAY8, BINUNICODE8, BINSTRING, ...) longer than the bytes that remain. Was: the
    C unpickler allocates a declared length before reading it, so one damaged length field
    (a BYTEARRAY8 of 21 PB) escaped as MemoryError and ended the whole deepmolm-prepare run
    with a traceback (and, for a bytearray, CPython's failed allocation printed "SystemError:
    deallocated bytearray object has exported buffers"); a smaller one asked for gigabytes
    for a few bytes of data (virtual memory, but a MemoryError where that is capped).

    Memo indices too: the C unpickler grows its memo table to twice a PUT's index and
    clears it, so a damaged LONG_BINPUT index of 1.4e9 used 12 GB of memory (then
    MemoryError, or the run killed for memory). A pickler numbers memo entries from 0, one
    opcode each, so an index as large as the value's own length is damage."""
    try:
        for opcode, argument, position in pickletools.genops(data):
            if opcode.name in _MEMO_PUTS and argument >= len(data):
                raise pickle.UnpicklingError(
                    f"damaged pickled value: {opcode.name} at position {position} stores memo entry {argument}, "
                    f"more than a {len(data)}-byte value can hold")
    except ValueError as error:  # pickletools reports every unreadable opcode as a ValueError
        raise pickle.UnpicklingError(f"damaged pickled value: {error}") from error


def _expanded_size(value, limit: int, sizes: dict, open_: set) -> int:
    """The size of `value` written out with every shared reference expanded: one per
    container and number, a string's characters, an array's elements (a reference back into
    an enclosing container counts 1, as ``str()`` shows it ``[...]``). Each object is sized
    once (`sizes`, by id), so this takes time in the number of objects, not in their
    expansion; over `limit` it stops with ``OverflowError``."""
    if isinstance(value, (str, bytes, bytearray)):
        return max(1, len(value))
    if isinstance(value, np.ndarray):
        return max(1, value.size)
    if not isinstance(value, (list, tuple, dict, set, frozenset)):
        return 1
    key = id(value)
    if key in sizes:
        return sizes[key]
    if key in open_:
        return 1
    open_.add(key)
    total = 1
    for item in (x for pair in value.items() for x in pair) if isinstance(value, dict) else value:
        total += _expanded_size(item, limit, sizes, open_)
        if total > limit:
            raise OverflowError
    open_.discard(key)
    sizes[key] = total
    return total


def _check_expansion(value, size: int) -> None:
    """Refuse a value whose shared references make it far larger than its `size` bytes.
    Was: a 262-byte value (``x = ["C"]``, then 34 times ``x = [x, x]``, each level two memo
    references to the one before) was admitted at once, since the walk visits each object
    once, and a reader's ``str()`` of its atoms, or ``np.asarray`` of its coordinates, then
    expanded 2^34 elements: hours in deepmolm-prepare's main process, with no failure line."""
    limit = max(MIN_EXPANSION, EXPANSION_PER_BYTE * size)
    try:
        _expanded_size(value, limit, {}, set())
    except OverflowError:
        raise _refuse(f"its shared references expand it to more than {limit} elements and characters from "
                      f"{size} bytes (a container or string referred to over and over)") from None


def safe_loads(data: bytes) -> object:
    """Unpickle ``data`` with ``SafeUnpickler``, then check what came out (``_Walk``).

    Every failure is a ``pickle.UnpicklingError``: a forbidden global (named in the
    message), a refused dtype or value (the reason in the message) or a damaged value
    (truncated bytes, a length field longer than the value, a bad argument to an allowed
    callable).
    """
    _check_lengths(data)
    try:
        value = _Walk()(SafeUnpickler(io.BytesIO(data)).load())
        _check_expansion(value, len(data))
        return value
    except pickle.UnpicklingError:
        raise
    # MemoryError, RecursionError, SystemError: what the C unpickler or numpy raise on some
    # damaged values; was: they escaped the reader and ended the whole run with a traceback
    except (EOFError, ValueError, TypeError, AttributeError, LookupError, OverflowError,
            MemoryError, RecursionError, SystemError) as error:
        raise pickle.UnpicklingError(f"damaged pickled value: {type(error).__name__}: {error}") from error
