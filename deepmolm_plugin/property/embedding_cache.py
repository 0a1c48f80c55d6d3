"""On-disk cache of per-SMILES feature arrays, and the model-folder fingerprint that keys it.

Everything a featuriser computes is cached per (featuriser key, SMILES), so a second call
for the same SMILES computes nothing. The key of an ``llm:`` featuriser includes
``model_fingerprint`` of the files the model is loaded from (every small file's SHA-256:
config, tokenizer; every weight file's name, size, mtime and the SHA-256 of its first and
last 4 MiB; not subfolders such as checkpoint-N/, nor a Trainer's resume state), so a
fine-tuned or replaced model never reuses stale vectors. The cache is append-only shard
files written atomically.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import uuid
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import usage

logger = logging.getLogger(__name__)

CACHE_ENV = "DEEPMOLM_PROPERTY_CACHE"
_SMALL_FILE = 16 << 20  # files up to this size are hashed whole
_SAMPLE = 4 << 20  # of larger (weight) files, the first and last this many bytes


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "deepmolm_plugin" / "property")


class EmbeddingCache:
    """Append-only on-disk store of per-SMILES arrays under ``root/<key hash>/``.

    Each ``put`` writes one ``.npz`` shard (SMILES, row offsets, values) via a temporary
    file and ``os.replace``, so concurrent writers never corrupt each other. Values are
    2-D per SMILES (one row for a vector, one row per token for token states).
    """

    def __init__(self, root: str | os.PathLike, key: str):
        self.key = key
        self.dir = Path(root) / hashlib.sha256(key.encode()).hexdigest()[:24]
        self._data: dict[str, np.ndarray] | None = None
        self.hits = 0
        self.misses = 0

    def _load(self) -> dict[str, np.ndarray]:
        if self._data is None:
            self._data = {}
            if self.dir.is_dir():
                # "[!.]": a writer's temporary file (".<uuid>.tmp.npz", left behind when it was
                # killed) is no shard; pathlib's "*" matched it and every later run crashed on it.
                for shard in sorted(self.dir.glob("[!.]*.npz")):
                    self._data.update(self._read_shard(shard))
        return self._data

    def _read_shard(self, shard: Path) -> dict[str, np.ndarray]:
        """A shard's arrays; a damaged one (a disk error, a copy cut short) is named in a
        warning and set aside as `<name>.damaged`, and its SMILES are computed again: it
        stopped every later run with a BadZipFile / EOFError traceback."""
        try:
            with np.load(shard, allow_pickle=False) as z:
                smiles, offsets, values = z["smiles"].tolist(), z["offsets"], z["values"]
            if (offsets.ndim != 1 or len(offsets) != len(smiles) + 1 or offsets[0] != 0
                    or np.any(np.diff(offsets) < 0) or offsets[-1] != len(values)):
                raise ValueError(f"row offsets do not fit its {len(smiles)} SMILES and {len(values)} rows")
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
            logger.warning("embedding cache shard %s is damaged (%s): set aside as %s.damaged, its molecules are "
                           "computed again", shard, e, shard.name)
            try:
                os.replace(shard, shard.with_name(shard.name + ".damaged"))
            except OSError:  # a read-only cache: it stays, and is skipped again next time
                pass
            return {}
        return {s: values[offsets[i]:offsets[i + 1]] for i, s in enumerate(smiles)}

    def get_many(self, smiles: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
        data = self._load()
        found = {s: data[s] for s in smiles if s in data}
        missing = list(dict.fromkeys(s for s in smiles if s not in data))
        self.hits += len(smiles) - sum(1 for s in smiles if s not in data)
        self.misses += len(missing)
        return found, missing

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "key.json"
        if not meta.exists():
            meta.write_text(json.dumps({"key": self.key}))
        smiles = list(items)
        arrays = [np.atleast_2d(items[s]) for s in smiles]
        offsets = np.concatenate([[0], np.cumsum([a.shape[0] for a in arrays])]).astype(np.int64)
        values = np.concatenate(arrays, axis=0)
        tmp = self.dir / f".{uuid.uuid4().hex}.tmp.npz"
        np.savez(tmp, smiles=np.asarray(smiles, dtype=str), offsets=offsets, values=values)
        os.replace(tmp, self.dir / f"{uuid.uuid4().hex}.npz")
        self._load().update({s: a for s, a in zip(smiles, arrays)})


def cached(cache: EmbeddingCache, smiles: Sequence[str],
           compute: Callable[[list[str]], list[np.ndarray]]) -> list[np.ndarray]:
    """The arrays of `smiles` in order, computing (and storing) only those not cached yet."""
    found, missing = cache.get_many(smiles)
    if missing:
        new = dict(zip(missing, compute(missing)))
        cache.put_many(new)
        found.update({s: np.atleast_2d(v) for s, v in new.items()})
    return [found[s] for s in smiles]


def _sha_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= _SMALL_FILE:
            h.update(f.read())
        else:
            h.update(f.read(_SAMPLE))
            f.seek(size - _SAMPLE)
            h.update(f.read(_SAMPLE))
    return h.hexdigest()


def model_fingerprint(folder: str | os.PathLike, loaded: str | os.PathLike | None = None) -> str:
    """Identity of a model folder: small files by content, weight files by name, size, mtime
    and samples. `loaded`: the folder the LLM is read from when it is another one (a VILA
    folder's `llm/`), walked too: a linked `llm/` is not entered by the walk of `folder`
    (Python's rglob), so pointing the link at another model kept the fingerprint, and the
    old model's cached embeddings were served."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() and not (folder / "llm" / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a Hugging Face model folder (no config.json or llm/config.json)")
    h = hashlib.sha256()
    _hash_files(h, folder)
    if loaded is not None and usage.real_path(loaded) != usage.real_path(folder):
        h.update(b"|loaded|")
        _hash_files(h, usage.real_path(loaded))
    return h.hexdigest()


# A Trainer's resume state, beside the model in a checkpoint-N folder: never loaded as the model
TRAINING_STATE = ("optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json", "training_args.bin",
                  "rng_state*.pth")


def _hash_files(h, folder: Path) -> None:
    """The files a model is loaded from: those directly in `folder` (config, tokenizer, weights
    and their index all lie there), not subfolders, hidden files or a Trainer's resume state.
    Was every file of the tree: deleting an old checkpoint-N/ subfolder (as save_total_limit
    does) changed the fingerprint, so a resume was refused and the cache keyed anew."""
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        rel = path.name
        if rel.startswith(".") or any(fnmatch.fnmatchcase(rel, pattern) for pattern in TRAINING_STATE):
            continue
        st = path.stat()
        h.update(rel.encode())
        h.update(str(st.st_size).encode())
        if st.st_size > _SMALL_FILE:
            h.update(str(st.st_mtime_ns).encode())
        h.update(_sha_file(path, st.st_size).encode())
