"""Safe, lazy reading of checkpoint tensors from files, folders and shard sets.

Formats are recognised by content, not by suffix: safetensors (an 8-byte header length
followed by a JSON header) or PyTorch's zip/pickle format, which is only ever read with
``weights_only=True``. A folder is read as transformers reads it (model.safetensors, its
shard index, pytorch_model.bin, its shard index: the first present), else through its
one other shard index, else its files. safetensors tensors are read one key at a time, so taking the vision
tower out of a multi-GB DeepSeek-OCR checkpoint reads only the tower's tensors.
`save_tensors` is the one safetensors writer of our own files (not the host trainer's,
`patches.weights_file_mode`).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import stat
import struct
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch

PathLike = Union[str, os.PathLike]
TENSOR_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def save_tensors(tensors: Mapping[str, torch.Tensor], path: PathLike, metadata: Optional[Dict[str, str]] = None) -> None:
    """safetensors' `save_file`, then the mode open() gives a new file (0666 less the umask):
    save_file makes it private (0600), so a feature cache or a tower saved into a folder
    shared with a group was unreadable to the others, beside its 0644 config."""
    from safetensors.torch import save_file

    from .result_files import shared_mode

    save_file(dict(tensors), os.fspath(path), metadata=metadata)
    os.chmod(path, shared_mode())


def share_weights_files(folder: PathLike) -> None:
    """`*.safetensors` directly in `folder` (a transformers or peft `save_pretrained`: one file
    or its shards) get the mode open() gives a new file instead of save_file's 0600."""
    from .result_files import shared_mode

    for path in Path(folder).glob("*.safetensors"):
        if path.is_file() and not path.is_symlink():
            try:
                os.chmod(path, shared_mode())
            except PermissionError:  # another user's file in a shared folder: the save itself succeeded
                pass


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says which file and why."""


def sniff(path: Path) -> str:
    """'safetensors' | 'torch' (zip archive) | 'pickle' (torch's legacy format) by file
    content; CheckpointError otherwise."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:2] == b"PK":  # torch.save's zip archive (torch >= 1.6), also one cut short
        return "torch"
    if head[:1] == b"\x80":  # pickle protocol marker: the legacy format
        return "pickle"
    raise CheckpointError(
        f"{path} is not a tensor file: expected safetensors or a PyTorch checkpoint "
        f"(first bytes {head[:9]!r})"
    )


# A legacy-format (non-zip) PyTorch file cannot be memory-mapped: listing its tensors' names
# and shapes reads all of it. Up to this size that is a fraction of a second, so a
# headers-only read (`open_checkpoint(headers_only=True)`, the launcher's up-front check)
# reads it; a bigger one is left to the real load, which reads it once.
LEGACY_PICKLE_HEADER_LIMIT = 256 * 2**20


def headers_cheap(file: PathLike) -> bool:
    """Whether a headers-only read of `file` (names, shapes, dtypes) costs little: a
    safetensors header, a zip archive's pickled index (its tensors are mapped, not read),
    or a small legacy pickle. A file that is no tensor file is a CheckpointError."""
    file = Path(file)
    return sniff(file) != "pickle" or file.stat().st_size <= LEGACY_PICKLE_HEADER_LIMIT


def checkpoint_path(value: PathLike) -> Path:
    """A user-given checkpoint path as every loader reads it: `~` expanded. The shell leaves
    `--opt=~/x` and the second path of `a,~/b` alone, and the launcher's checks expand it:
    the loader must too, or a path the checks accepted was "does not exist" once the
    model had loaded."""
    return Path(os.path.expanduser(os.fspath(value)))


def _not_weights(path: Path) -> str:
    """Why an existing `path` that is neither a file nor a folder cannot hold weights."""
    mode = path.stat().st_mode
    kinds = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


# Files a training output folder holds beside the weights that are no weights (the
# Trainer's arguments, optimizer and scheduler state, RNG state; with FSDP or accelerate's
# save_state the same as .bin: optimizer.bin, optimizer_1.bin, scheduler.bin, sampler.bin,
# and pytorch_model_fsdp*.bin, a wrapped model's per-rank state): never read as weights
# (was: without the .bin names, a checkpoint-N lacking pytorch_model.bin read optimizer.bin
# as weights and was refused as "not a flat mapping of names to tensors").
TRAINER_STATE_FILES = re.compile(r"(training_args\.bin|optimizer(_rank)?(_?\d+)?\.(pt|bin)|scheduler(_\d+)?\.(pt|bin)"
                                 r"|sampler(_\d+)?\.bin|scaler\.pt|rng_state(_\d+)?\.pth"
                                 r"|pytorch_model_fsdp(_rank)?(_?\d+)?\.bin)$")
# The weights files transformers' from_pretrained looks for in a folder, in its order
# (modeling_utils: SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME):
# the first present is the one it loads, whatever else the folder holds.
TRANSFORMERS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                        "pytorch_model.bin.index.json")
# Other shard indexes (not a transformers model's names), for a folder without those files.
INDEX_PATTERNS = ("*.safetensors.index.json", "*.bin.index.json")
INDEX_SUFFIX = ".index.json"


def find_tensor_files(path: PathLike) -> List[Path]:
    """One path (file or folder) -> the tensor files it stands for, in a stable order.

    A folder: what transformers loads from it (TRANSFORMERS_WEIGHTS, the first present: a
    file, or the shards its index names), else the shards of its one other index
    (`*.safetensors.index.json`, else `*.bin.index.json`), else its `*.safetensors`, else its
    `.bin` / `.pth` / `.pt` files (`unread_tensor_files` names those left). Was: any
    `*.bin.index.json` set was read in preference to a model.safetensors beside it, which
    transformers loads, so the checks and the tower loader read stale .bin shards.
    The Trainer's own files (TRAINER_STATE_FILES) are never weights (was: a folder without
    model.safetensors read training_args.bin and was refused as "damaged")."""
    path = checkpoint_path(path)
    if not path.exists():
        if path.is_symlink():
            try:
                os.stat(path)
            except OSError as e:
                if e.errno == errno.ELOOP:  # Path.exists() says False: it was "does not exist"
                    raise CheckpointError(f"{path} is a symbolic link loop (it leads back to itself), "
                                          "not a file or folder of weights") from e
            raise FileNotFoundError(f"checkpoint path does not exist: {path} (a symbolic link to "
                                    f"{os.readlink(path)}, which does not exist)")
        raise FileNotFoundError(f"checkpoint path does not exist: {path}")
    if path.is_file():
        return [path]
    if not path.is_dir():  # /dev/null, a FIFO: iterdir() below was a bare NotADirectoryError
        raise CheckpointError(f"{path} is {_not_weights(path)}, not a file or folder of weights")
    chosen = _transformers_weights(path)
    if chosen is not None and not chosen.name.endswith(INDEX_SUFFIX):
        return [chosen]
    index = shard_index(path)
    if index is not None:
        return [path / s for s in sorted(set(index[1].values()))]
    for suffixes in ((".safetensors",), (".bin", ".pth", ".pt")):
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in suffixes
                       and not TRAINER_STATE_FILES.match(p.name))
        if files:
            return files
    if any(TRAINER_STATE_FILES.match(p.name) for p in path.iterdir()):
        raise CheckpointError(f"{path}: no model weights (model.safetensors / pytorch_model.bin); it holds only the "
                              "Trainer's files (training_args.bin, optimizer.pt, rng_state.pth: no weights)")
    raise CheckpointError(f"no tensor files ({', '.join(TENSOR_SUFFIXES)}) in folder {path}")


def _transformers_weights(folder: Path) -> Optional[Path]:
    """The first of TRANSFORMERS_WEIGHTS in `folder` (what from_pretrained loads), or None.
    A single file beside its own shard index (model.safetensors with
    model.safetensors.index.json) is refused, naming both: transformers loads the single
    file without a word, and which of the two sets is the current one cannot be told."""
    chosen = next((folder / name for name in TRANSFORMERS_WEIGHTS if (folder / name).is_file()), None)
    if chosen is not None and not chosen.name.endswith(INDEX_SUFFIX):
        _refuse_single_beside_index(folder, chosen, folder / (chosen.name + INDEX_SUFFIX))
    return chosen


def _refuse_single_beside_index(folder: Path, single: Path, index_file: Path) -> None:
    if index_file.is_file() and single.is_file():
        # transformers loads the single file and ignores the index; the checks here read the
        # shards: a sharded save copied over a folder holding model.safetensors was checked
        # (NaN, dtypes) on files that were not the ones loaded
        raise CheckpointError(f"{folder} holds both {single.name} and the shard index {index_file.name} with its "
                              "shards: two sets of weights, of which transformers would load the single file "
                              "without a word; keep one (move the other away)")


def _chosen_index(folder: Path) -> Optional[Path]:
    """The shard index `find_tensor_files` reads `folder` through, or None: the
    transformers index when that is the first of TRANSFORMERS_WEIGHTS present, none when a
    single transformers file comes first (its index, if any, is not read), else the
    folder's one other index (INDEX_PATTERNS, a .safetensors set before a .bin one)."""
    chosen = _transformers_weights(folder)
    if chosen is not None:
        return chosen if chosen.name.endswith(INDEX_SUFFIX) else None
    for pattern in INDEX_PATTERNS:
        indexes = sorted(folder.glob(pattern))
        if len(indexes) > 1:
            raise CheckpointError(f"{folder} holds several shard indexes: {[p.name for p in indexes]}")
        if indexes:
            return indexes[0]
    return None


def shard_index(folder: Path) -> Optional[Tuple[Path, Dict[str, str]]]:
    """(index file, its weight_map: tensor name -> shard file name) of the shard index
    `folder` is read through (`_chosen_index`), or None without one; an index that cannot
    stand for the folder's weights is a CheckpointError naming it and why."""
    index_file = _chosen_index(folder)
    if index_file is None:
        return None
    _refuse_single_beside_index(folder, folder / index_file.name[: -len(INDEX_SUFFIX)], index_file)
    index = _read_index(index_file)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index_file} has no 'weight_map' object")
    problem = index_metadata_problem(index)
    if problem:
        raise CheckpointError(f"{index_file}: {problem}")
    if not weight_map:  # was: no file read at all, and a layout error listing nothing ("read , not ...")
        raise CheckpointError(f"{index_file}: its 'weight_map' is empty (it names no tensor and no shard)")
    odd = [k for k, v in weight_map.items() if not isinstance(v, str)]
    if odd:
        raise CheckpointError(f"{index_file}: 'weight_map' must map tensor names to shard file names; "
                              f"not so for {odd[:5]}")
    elsewhere = sorted({s for s in weight_map.values() if Path(s).name != s or s in ("", ".", "..")})
    if elsewhere:  # was read, wherever it led (../x.safetensors: a file outside the folder)
        raise CheckpointError(f"{index_file} names shards outside its folder {folder}: {elsewhere} (shard names "
                              "are file names in the index's folder, without a path)")
    shards = sorted(set(weight_map.values()))
    missing = [s for s in shards if not (folder / s).is_file()]
    if missing:
        raise CheckpointError(f"{index_file} names shards that are not in {folder}: {missing}")
    left_out = _shards_left_out(folder, index_file, set(shards))
    if left_out:  # was: their tensors reported "missing", the file holding them unnamed
        raise CheckpointError(f"the index {index_file} does not name {', '.join(left_out)}, which "
                              f"{'is' if len(left_out) == 1 else 'are'} in the folder {folder}: a stale index (from "
                              "an earlier save, or copied from another model)? Restore the index saved with these "
                              "shards, or remove the shards it does not name")
    return index_file, weight_map


def _read_index(index_file: Path):
    """The JSON value `index_file` holds; a CheckpointError naming it when it is no JSON."""
    try:
        return json.loads(index_file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:  # truncated by a copy, edited
        raise CheckpointError(f"{index_file} is not a readable JSON shard index: {e}") from e


def index_metadata_problem(index: dict) -> Optional[str]:
    """Why a shard index's "metadata" cannot be read as transformers reads it, or None.
    transformers writes {"metadata": {"total_size": N}, "weight_map": {...}} and its
    from_pretrained adds keys to that object: one that is not an object ("metadata": [] or
    "text") was a TypeError traceback there (was: passed by our checks). A missing
    "metadata" is None here: nothing of ours reads it (`missing_index_metadata` is the
    check for a load through from_pretrained, which does)."""
    from .eval.jsonl import json_kind

    if "metadata" in index and not isinstance(index["metadata"], dict):
        return (f"its 'metadata' is a JSON {json_kind(index['metadata'])}, not an object (transformers writes "
                '{"metadata": {"total_size": N}, "weight_map": {...}}); set it to an object, e.g. {}')
    return None


def missing_index_metadata(folder: PathLike) -> None:
    """CheckpointError naming the index when from_pretrained would load `folder` through a
    shard index (TRANSFORMERS_WEIGHTS) without a "metadata" key: transformers reads
    index["metadata"] (a KeyError 'metadata' traceback otherwise). For loaders that hand the
    folder to from_pretrained; our own readers do without it (`shard_index`)."""
    folder = checkpoint_path(folder)
    index_file = _transformers_weights(folder) if folder.is_dir() else None
    if index_file is None or not index_file.name.endswith(INDEX_SUFFIX):
        return
    shard_index(folder)  # readable, and its metadata (if any) an object: else its own error
    if "metadata" not in _read_index(index_file):
        raise CheckpointError(f"{index_file} has no 'metadata' key, which transformers' from_pretrained reads "
                              '(it writes {"metadata": {"total_size": N}, "weight_map": {...}}); add '
                              '"metadata": {} to it')


def _shards_left_out(folder: Path, index_file: Path, named: set) -> List[str]:
    """Shards of the index's own set (`model-00002-of-00002.safetensors` beside
    `model.safetensors.index.json`) in `folder` that the index does not name. Other tensor
    files (an adapter_model.safetensors) are not of the set: left unread, as before."""
    stem, suffix = os.path.splitext(index_file.name[: -len(INDEX_SUFFIX)])  # ("model", ".safetensors")
    shard = re.compile(re.escape(stem) + r"-\d+-of-\d+" + re.escape(suffix) + "$")
    return sorted(p.name for p in folder.iterdir() if p.is_file() and shard.match(p.name) and p.name not in named)


def check_shard_index(folder: PathLike, store: "TensorStore") -> None:
    """Each tensor of a sharded `folder` must be in the shard its index names: transformers
    reads every shard it names whole, so a tensor stored in another shard than the index
    says, or missing from the one it names, loaded from wherever it was (was: without a word)."""
    folder = checkpoint_path(folder)
    index = shard_index(folder) if folder.is_dir() else None
    if index is None:
        return
    index_file, weight_map = index
    # only this folder's tensors: with other paths given beside it (a sharded folder and a
    # file) their tensors were counted as ones "the index does not name", blaming the index
    ours = [k for k in store if store.file_of(k).parent == folder]
    wrong = [f"{k} (index: {weight_map[k]}, stored in {store.file_of(k).name})" for k in ours
             if k in weight_map and store.file_of(k).name != weight_map[k]]
    unlisted = [f"{k} (stored in {store.file_of(k).name})" for k in ours if k not in weight_map]
    held = set(ours)
    absent = [f"{k} (index: {v})" for k, v in weight_map.items() if k not in held]
    problems = [f"{len(items)} {what}: {_first(items)}" for items, what in (
        (wrong, "tensors stored in another shard than the index names"),
        (unlisted, "tensors the index does not name"),
        (absent, "tensors the index names that no shard holds")) if items]
    if problems:
        raise CheckpointError(f"{index_file} does not describe its shards: {'; '.join(problems)} (a stale or edited "
                              "index, or shards from another save)")


SHOWN = 5  # names listed in a message, the rest counted


def _first(items: Sequence[str]) -> str:
    return ", ".join(items[:SHOWN]) + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def unread_tensor_files(folder: PathLike) -> List[Path]:
    """The tensor files directly in `folder` that `find_tensor_files` does not read: the
    `.bin` / `.pth` / `.pt` beside its `.safetensors`, or the files outside its shard index;
    not the Trainer's own files (TRAINER_STATE_FILES), which are no weights.

    Why not read every kind: in a transformers `save_pretrained` folder `pytorch_model.bin`
    holds the same weights again as `model.safetensors` (a tensor given twice).
    Which file is which part cannot be told without reading the files, so the loader names what it skipped
    where that matters (a layout it cannot complete) and the user passes the files."""
    folder = checkpoint_path(folder)
    if not folder.is_dir():
        return []
    read = set(find_tensor_files(folder))
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in TENSOR_SUFFIXES and p not in read
                  and not TRAINER_STATE_FILES.match(p.name))


# What torch.load raises for a damaged or foreign file: a legacy (non-zip) file cut short
# gave a bare struct.error or IndexError traceback, a zip one RuntimeError or BadZipFile.
_TORCH_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, struct.error, IndexError,
                      KeyError, TypeError, ValueError, OSError)


def load_torch_file(path: PathLike, mmap: bool = False):
    """torch.load(path) of tensors and plain containers only (``weights_only=True``), on the
    CPU; a file it cannot read is a CheckpointError naming it. The weights-only refusal is
    said in a line, without torch's advice to load the file with ``weights_only=False``
    (code execution), which for a damaged file, the usual cause here, is also wrong."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except _TORCH_LOAD_ERRORS as e:
        text = str(e)
        if "WeightsUnpickler error:" in text:  # an object torch does not read without running code
            reason = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0].split(". Please use")[0]
            raise CheckpointError(f"{path} is not a plain PyTorch tensor file (damaged, or it holds objects that "
                                  f"need code to load, which is never run here): {reason}") from e
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch tensor file (cut short or damaged?): {first}") from e


def _load_torch_state(path: Path, mmap: bool = False) -> Dict[str, torch.Tensor]:
    obj = load_torch_file(path, mmap=mmap)
    # Training frameworks often wrap the weights one level down.
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and set(obj) == {wrapper} and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(f"{path} does not hold a flat mapping of names to tensors: {_holds(obj)}")
    return obj


def _holds(obj) -> str:
    """What a torch file holds instead of {name: tensor}, in a few words: its top-level keys
    (a training checkpoint: {'state_dict': ..., 'epoch': 3}), and where the weights may be."""
    if not isinstance(obj, dict):
        return f"it holds a {type(obj).__name__}"
    keys = [repr(k) for k in list(obj)[:5]]
    text = f"its top-level keys are {', '.join(keys)}{' ...' if len(obj) > 5 else ''}"
    wrapper = next((k for k in ("state_dict", "model", "module") if isinstance(obj.get(k), dict)), None)
    if wrapper is not None:  # not taken silently: other keys (an EMA copy, the optimizer) may hold weights too
        text += f" (a training checkpoint? save its weights alone: torch.save(checkpoint[{wrapper!r}], path))"
    return text


class TensorStore(Mapping[str, torch.Tensor]):
    """Read-only mapping over the tensors of several files; a key is loaded on access.

    headers_only: for names, shapes and dtypes alone. A zip-format PyTorch file is then
    memory-mapped (its pickled index is read, not its tensor data), so a check before the
    real load does not read a big .pth twice."""

    def __init__(self, files: Sequence[PathLike], headers_only: bool = False):
        from safetensors import SafetensorError, safe_open

        self.files = [Path(f) for f in files]
        self._where: Dict[str, Tuple[Path, object]] = {}
        for path in self.files:
            kind = sniff(path)
            if kind == "safetensors":
                try:
                    handle = safe_open(str(path), framework="pt", device="cpu")
                except SafetensorError as e:
                    raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e
                keys: Iterable[str] = handle.keys()
            else:
                handle = _load_torch_state(path, mmap=headers_only and kind == "torch")
                keys = handle.keys()
            for key in keys:
                if key in self._where:
                    raise CheckpointError(
                        f"tensor {key!r} appears in both {self._where[key][0]} and {path}"
                    )
                self._where[key] = (path, handle)

    def __getitem__(self, key: str) -> torch.Tensor:
        _, handle = self._where[key]
        return handle[key] if isinstance(handle, dict) else handle.get_tensor(key)

    def shape(self, key: str) -> Tuple[int, ...]:
        _, handle = self._where[key]
        if isinstance(handle, dict):
            return tuple(handle[key].shape)
        return tuple(handle.get_slice(key).get_shape())

    def dtype(self, key: str) -> Optional[torch.dtype]:
        """The tensor's dtype from the file's header (None: one torch does not name)."""
        _, handle = self._where[key]
        if isinstance(handle, dict):
            return handle[key].dtype
        return _SAFETENSORS_DTYPES.get(handle.get_slice(key).get_dtype())

    def file_of(self, key: str) -> Path:
        return self._where[key][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


SAFETENSORS_FLOATS = ("F", "BF")  # header dtype prefixes: F16, F32, F64, F8_*, BF16; not I*, U*, BOOL, C64
# safetensors' header dtype names -> torch's (those torch has)
_SAFETENSORS_DTYPES = {name: getattr(torch, attr) for name, attr in (
    ("F64", "float64"), ("F32", "float32"), ("F16", "float16"), ("BF16", "bfloat16"),
    ("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"), ("I64", "int64"), ("I32", "int32"),
    ("I16", "int16"), ("I8", "int8"), ("U8", "uint8"), ("BOOL", "bool")) if hasattr(torch, attr)}


def open_checkpoint(paths: Union[PathLike, Sequence[PathLike]], headers_only: bool = False) -> TensorStore:
    """A file, a folder, or a list of either -> one TensorStore over all their tensors; a
    tensor stored twice, or a sharded folder whose tensors are not where its index says
    (`check_shard_index`), is a CheckpointError naming it."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = [f for p in paths for f in find_tensor_files(p)]
    store = TensorStore(files, headers_only=headers_only)  # a tensor in two files: an error naming both
    for p in paths:
        check_shard_index(p, store)
    return store


def value_problem(t: torch.Tensor, expected: torch.Tensor, dtypes: Sequence[torch.dtype]) -> Optional[str]:
    """Why checkpoint tensor `t` cannot fill weight `expected`, or None: an integer or bool
    tensor for a float weight (load_state_dict casts it without a word), NaN/inf values, or
    values finite in the file but beyond one of `dtypes` (the weight's dtype, the dtype it
    will be cast to), which become inf in the copy."""
    if expected.is_floating_point() and not t.is_floating_point():
        return f"dtype {t.dtype}, not floating point"
    if not t.is_floating_point() or t.is_meta or not t.numel():
        return None
    if t.element_size() == 1:  # float8: torch has no max/isfinite for it (a NotImplementedError)
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        return f"{int((~torch.isfinite(t)).sum())} NaN/inf values"
    peak = float(t.abs().max())
    for dtype in dtypes:
        if dtype.is_floating_point and peak > torch.finfo(dtype).max:
            return f"values up to {peak:.3g} overflow {dtype} (max {torch.finfo(dtype).max:.6g}) and would be inf"
    return None
