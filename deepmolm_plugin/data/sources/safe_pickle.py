"""Unpickle LMDB values that may hold only numpy arrays and builtin containers.

3D-MoIT's LMDB files (design.md section 9) store each molecule as a pickled dict of
numpy arrays, lists and strings. ``pickle.loads`` on such a value runs whatever callable
the bytes name, so a crafted value executes code the moment it is read. Unpickle only
files from a source you trust; ``safe_loads`` is the safety net on top of that: its
``find_class`` resolves only the globals that numpy arrays, numpy scalars and builtin
values need, and refuses any other global (``os.system``, ``builtins.eval``,
``subprocess.Popen``, ...) with ``pickle.UnpicklingError`` before anything is called.

The allowed globals are exactly what ``pickle.dumps`` emits for arrays, dtypes and
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

``copyreg._reconstructor`` is not needed by any of these and stays forbidden.
"""

from __future__ import annotations

import builtins
import codecs
import io
import pickle

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

__all__ = ["SafeUnpickler", "safe_loads"]


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocols 0-2 use it for bytes; any other codec is refused."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"forbidden call _codecs.encode(..., {encoding!r})")
    return codecs.encode(text, "latin1")


_NUMPY = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("multiarray", "scalar"): _multiarray.scalar,
    ("numeric", "_frombuffer"): _numeric._frombuffer,
}
_NUMPY_MODULES = {  # numpy 2 and numpy 1 spellings of the same modules
    "numpy._core.multiarray": "multiarray",
    "numpy.core.multiarray": "multiarray",
    "numpy._core.numeric": "numeric",
    "numpy.core.numeric": "numeric",
}
_BUILTINS = frozenset(
    {"list", "dict", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int",
     "float", "complex", "bool"}
)


class SafeUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose ``find_class`` only knows the allow-list above."""

    def find_class(self, module: str, name: str):
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(builtins, name)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        key = (_NUMPY_MODULES.get(module, module), name)
        if key in _NUMPY:
            return _NUMPY[key]
        raise pickle.UnpicklingError(
            f"forbidden global {module}.{name} in a pickled value: only numpy arrays and "
            "builtin values may be unpickled (deepmolm_plugin.data.sources.safe_pickle)"
        )


def safe_loads(data: bytes) -> object:
    """Unpickle ``data`` with ``SafeUnpickler``.

    Every failure is a ``pickle.UnpicklingError``: a forbidden global (named in the
    message) or a damaged value (truncated bytes, a bad argument to an allowed callable).
    """
    try:
        return SafeUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError:
        raise
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise pickle.UnpicklingError(f"damaged pickled value: {type(error).__name__}: {error}") from error
