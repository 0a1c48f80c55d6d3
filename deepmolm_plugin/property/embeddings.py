"""Molecule "embedding" featurisers for the embedding branch, with an on-disk cache.

A featuriser spec is a ``+``-joined list of:

- ``llm:<folder>``: KFLM2's featuriser. The SMILES (no prompt) goes through a local
  Hugging Face causal LM folder (a plain Qwen2 / DeepSeek-R1-Distill-Qwen folder, any
  ``AutoModelForCausalLM`` folder, or a DeepMoLM / VILA / Qwen2-VL folder via
  ``deepmolm_plugin.model.loading``); the embedding is the mean of the last hidden state
  (after the final norm) over the SMILES tokens, padding excluded. Batched (sorted by
  length), in float32 unless ``dtype`` says otherwise. Token states (for the attention
  fusion) come from the same pass.
- ``rdkit2d``: the 217 RDKit 2D descriptors (``Descriptors.descList``; a descriptor RDKit
  fails on is NaN, imputed later). Normalised by ``FeatureScaler`` ("quantile": the
  empirical CDF of the *training* molecules, as Chemprop's ``rdkit_2d_normalized`` uses a
  CDF, but fitted on the split's own training set).
- ``morgan`` (or ``morgan:<radius>:<bits>``, default 2:2048): Morgan count fingerprint,
  ``log1p(count)``.

Everything is cached on disk per (featuriser key, SMILES): the key of ``llm:`` is a
fingerprint of the model folder (every small file's SHA-256: config, tokenizer; every
weight file's name, size, mtime and the SHA-256 of its first and last 4 MiB), so a
fine-tuned or replaced model never reuses stale vectors. The cache is append-only shard
files written atomically; a second call for the same SMILES computes nothing.

``lora_finetune`` adapts an LLM to SMILES with PEFT LoRA (r 16, alpha 32 on q, k, v, o
and optionally lm_head, as KFLM2) by next-token prediction where padding is excluded from
the loss (labels -100 at every padded position; KFLM2 trained on its pad tokens), and
saves the merged model + tokenizer as a plain folder usable as ``llm:<out_dir>``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

CACHE_ENV = "DEEPMOLM_PROPERTY_CACHE"
_SMALL_FILE = 16 << 20
_SAMPLE = 4 << 20


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "deepmolm_plugin" / "property")


# ---------------------------------------------------------------------------------------- cache
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
                for shard in sorted(self.dir.glob("*.npz")):
                    with np.load(shard, allow_pickle=False) as z:
                        smiles, offsets, values = z["smiles"], z["offsets"], z["values"]
                    for i, s in enumerate(smiles.tolist()):
                        self._data[s] = values[offsets[i]:offsets[i + 1]]
        return self._data

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
    found, missing = cache.get_many(smiles)
    if missing:
        new = dict(zip(missing, compute(missing)))
        cache.put_many(new)
        found.update({s: np.atleast_2d(v) for s, v in new.items()})
    return [found[s] for s in smiles]


# --------------------------------------------------------------------------- model fingerprint
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


def model_fingerprint(folder: str | os.PathLike) -> str:
    """Identity of a model folder: small files by content, weight files by name, size, mtime and samples."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a Hugging Face model folder (no config.json)")
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        st = path.stat()
        h.update(rel.encode())
        h.update(str(st.st_size).encode())
        if st.st_size > _SMALL_FILE:
            h.update(str(st.st_mtime_ns).encode())
        h.update(_sha_file(path, st.st_size).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------ featurisers
class Featurizer:
    """Maps RDKit molecules (and their SMILES, the cache key) to an (n, dim) float32 matrix."""

    name = "base"
    scaling = "standard"  # how FeatureScaler normalises it: standard | quantile | none
    dim = 0

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cache = EmbeddingCache(cache_dir or default_cache_dir(), self.cache_key())

    def cache_key(self) -> str:
        raise NotImplementedError

    def compute(self, mols: list, smiles: list[str]) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, mols: Sequence, smiles: Sequence[str]) -> np.ndarray:
        by_smiles = dict(zip(smiles, mols))
        rows = cached(self.cache, list(smiles), lambda miss: self.compute([by_smiles[s] for s in miss], miss))
        return np.concatenate(rows, axis=0).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)


class RDKit2D(Featurizer):
    name = "rdkit2d"
    scaling = "quantile"

    def __init__(self, cache_dir=None):
        from rdkit.Chem import Descriptors

        self._functions = list(Descriptors.descList)
        self.dim = len(self._functions)
        super().__init__(cache_dir)

    def cache_key(self) -> str:
        import rdkit

        names = ",".join(n for n, _ in self._functions)
        return f"rdkit2d|rdkit {rdkit.__version__}|{hashlib.sha256(names.encode()).hexdigest()}"

    def compute(self, mols, smiles):
        from rdkit import RDLogger

        RDLogger.DisableLog("rdApp.*")
        out = []
        try:
            for mol in mols:
                row = np.empty(self.dim, dtype=np.float64)
                for j, (_, fn) in enumerate(self._functions):
                    try:
                        row[j] = float(fn(mol))
                    except Exception:  # noqa: BLE001 - some descriptors fail on odd molecules
                        row[j] = np.nan
                row[~np.isfinite(row)] = np.nan
                # float32 overflow (e.g. Ipc) -> +-inf would poison the scaler: keep it finite
                out.append(np.clip(row, -3e38, 3e38).astype(np.float32)[None])
        finally:
            RDLogger.EnableLog("rdApp.*")
        return out


class Morgan(Featurizer):
    name = "morgan"
    scaling = "none"

    def __init__(self, radius: int = 2, bits: int = 2048, cache_dir=None):
        self.radius, self.bits, self.dim = radius, bits, bits
        super().__init__(cache_dir)

    def cache_key(self) -> str:
        import rdkit

        return f"morgan-count|r{self.radius}|b{self.bits}|rdkit {rdkit.__version__}"

    def compute(self, mols, smiles):
        from rdkit.Chem import rdFingerprintGenerator

        gen = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.bits)
        return [np.log1p(gen.GetCountFingerprintAsNumPy(m).astype(np.float32))[None] for m in mols]


def _load_causal_lm(folder: str, dtype=None):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from ..model.loading import QWEN2_VL_TYPES, resolve_llm_path

    path = resolve_llm_path(folder)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model_type = AutoConfig.from_pretrained(path).model_type
    if model_type == "llava_qwen2" or model_type in QWEN2_VL_TYPES:
        from ..model.loading import load_llm

        model = load_llm(path, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer, model.eval()


class LLMEmbedding(Featurizer):
    """Mean-pooled last hidden state of a local causal LM over the SMILES tokens (padding excluded).

    ``tokens(mols, smiles)`` returns the per-token states themselves (one (n_tokens, d)
    array per molecule, float16 in the cache) for the attention fusion.
    """

    name = "llm"
    scaling = "standard"

    def __init__(self, folder: str, cache_dir=None, batch_size: int = 32, max_length: int = 512, dtype=None,
                 device: str = "cpu"):
        self.folder = os.fspath(folder)
        self.batch_size, self.max_length, self.dtype, self.device = batch_size, max_length, dtype, device
        self.fingerprint = model_fingerprint(self.folder)
        from transformers import AutoConfig

        self.dim = int(AutoConfig.from_pretrained(self._resolved()).hidden_size)
        self.name = f"llm[{Path(self.folder).name}]"
        super().__init__(cache_dir)
        self.token_cache = EmbeddingCache(cache_dir or default_cache_dir(), self.cache_key() + "|tokens")
        self._model = None

    def _resolved(self) -> str:
        from ..model.loading import resolve_llm_path

        return resolve_llm_path(self.folder)

    def cache_key(self) -> str:
        return f"llm-mean|{self.fingerprint}|max_length {self.max_length}|dtype {self.dtype}"

    def model(self):
        if self._model is None:
            tokenizer, model = _load_causal_lm(self.folder, self.dtype)
            self._model = (tokenizer, model.to(self.device))
        return self._model

    def _states(self, smiles: list[str]) -> list[np.ndarray]:
        """Last hidden state of each SMILES, (n_tokens, d) float32, padding removed."""
        import torch

        tokenizer, model = self.model()
        base = model.base_model  # the decoder (post-norm last_hidden_state), no lm_head
        order = sorted(range(len(smiles)), key=lambda i: len(smiles[i]))
        out: list[np.ndarray | None] = [None] * len(smiles)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = tokenizer([smiles[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                                max_length=self.max_length, add_special_tokens=True)
                enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
                hidden = base(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].bool()
                for row, i in enumerate(idx):
                    out[i] = hidden[row][mask[row]].cpu().numpy()
        return out  # type: ignore[return-value]

    def compute(self, mols, smiles):
        states = self._states(list(smiles))
        return [s.mean(axis=0, keepdims=True).astype(np.float32) for s in states]

    def tokens(self, mols: Sequence, smiles: Sequence[str]) -> list[np.ndarray]:
        def compute(miss):
            return [s.astype(np.float16) for s in self._states(list(miss))]

        return [t.astype(np.float32) for t in cached(self.token_cache, list(smiles), compute)]


class Concatenated(Featurizer):
    def __init__(self, parts: list[Featurizer]):
        self.parts = parts
        self.dim = sum(p.dim for p in parts)
        self.name = "+".join(p.name for p in parts)

    def __call__(self, mols, smiles):
        return np.concatenate([p(mols, smiles) for p in self.parts], axis=1)


def make_featurizer(spec: str, cache_dir=None, **llm_options) -> Featurizer:
    """``rdkit2d``, ``morgan[:radius:bits]``, ``llm:<folder>``, or several joined by ``+``."""
    parts: list[Featurizer] = []
    for item in _split_spec(spec):
        if item == "rdkit2d":
            parts.append(RDKit2D(cache_dir))
        elif item == "morgan" or item.startswith("morgan:"):
            bits = item.split(":")[1:]
            radius = int(bits[0]) if bits else 2
            size = int(bits[1]) if len(bits) > 1 else 2048
            parts.append(Morgan(radius, size, cache_dir))
        elif item.startswith("llm:"):
            parts.append(LLMEmbedding(item[4:], cache_dir, **llm_options))
        else:
            raise ValueError(f"unknown featuriser {item!r}: use rdkit2d, morgan[:radius:bits] or llm:<folder>")
    if not parts:
        raise ValueError("empty featuriser spec")
    return parts[0] if len(parts) == 1 else Concatenated(parts)


def _split_spec(spec: str) -> list[str]:
    """Split on '+' except inside an llm: path (an llm: item runs to the next '+rdkit2d'/'+morgan'/'+llm:')."""
    items, current = [], ""
    for piece in spec.split("+"):
        starts_new = piece in ("rdkit2d",) or piece.startswith(("morgan", "llm:"))
        if current and (starts_new or not current.startswith("llm:")):
            items.append(current)
            current = piece
        else:
            current = f"{current}+{piece}" if current else piece
    if current:
        items.append(current)
    return [i.strip() for i in items if i.strip()]


def llm_featurizer(featurizer: Featurizer | None) -> LLMEmbedding | None:
    """The LLM part of a (possibly concatenated) featuriser, for token states."""
    if isinstance(featurizer, LLMEmbedding):
        return featurizer
    if isinstance(featurizer, Concatenated):
        for p in featurizer.parts:
            if isinstance(p, LLMEmbedding):
                return p
    return None


# --------------------------------------------------------------------------------- scaling
class FeatureScaler:
    """Per-block normalisation fitted on training rows only; NaN imputed by the training median.

    ``quantile``: x -> empirical CDF of the training values (piecewise linear, in [0, 1]);
    ``standard``: (x - mean) / std; ``none``: only NaN imputation (0).
    """

    def __init__(self, blocks: list[tuple[int, int, str]]):
        self.blocks = blocks

    @classmethod
    def for_featurizer(cls, featurizer: Featurizer) -> "FeatureScaler":
        parts = featurizer.parts if isinstance(featurizer, Concatenated) else [featurizer]
        blocks, start = [], 0
        for p in parts:
            blocks.append((start, start + p.dim, p.scaling))
            start += p.dim
        return cls(blocks)

    def fit(self, x: np.ndarray) -> "FeatureScaler":
        self.params = []
        for lo, hi, kind in self.blocks:
            block = x[:, lo:hi].astype(np.float64)
            median = np.nanmedian(block, axis=0) if block.shape[0] else np.zeros(hi - lo)
            median = np.where(np.isfinite(median), median, 0.0)
            filled = np.where(np.isnan(block), median, block)
            if kind == "quantile":
                grids = [np.unique(filled[:, j]) for j in range(hi - lo)]
                self.params.append((median, grids))
            elif kind == "standard":
                mean, std = filled.mean(0), filled.std(0)
                self.params.append((median, (mean, np.where(std > 1e-8, std, 1.0))))
            else:
                self.params.append((np.zeros(hi - lo), None))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x, dtype=np.float32)
        for (lo, hi, kind), (median, p) in zip(self.blocks, self.params):
            block = x[:, lo:hi].astype(np.float64)
            block = np.where(np.isnan(block), median, block)
            if kind == "quantile":
                for j, grid in enumerate(p):
                    if grid.size < 2:
                        block[:, j] = 0.0
                    else:
                        block[:, j] = np.interp(block[:, j], grid, np.linspace(0.0, 1.0, grid.size))
            elif kind == "standard":
                block = np.clip((block - p[0]) / p[1], -10.0, 10.0)
            out[:, lo:hi] = block
        return out


# ------------------------------------------------------------------------------ LoRA tuning
def lm_batch(tokenizer, smiles: Sequence[str], max_length: int = 256, pad_to: int | None = None) -> dict:
    """Causal-LM batch: SMILES + eos, right padding, labels -100 wherever attention_mask is 0."""
    import torch

    eos = tokenizer.eos_token or ""
    enc = tokenizer([s + eos for s in smiles], return_tensors="pt", padding="max_length" if pad_to else True,
                    max_length=pad_to or max_length, truncation=True)
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


def lora_finetune(model_dir: str | os.PathLike, smiles_corpus: Iterable[str], out_dir: str | os.PathLike,
                  r: int = 16, alpha: int = 32, target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
                  lm_head: bool = True, epochs: int = 1, batch_size: int = 16, lr: float = 2e-4,
                  max_length: int = 256, max_steps: int | None = None, seed: int = 0, dropout: float = 0.05) -> dict:
    """LoRA next-token fine-tuning on SMILES (pad excluded from the loss); saves the merged model.

    Returns ``{"steps", "losses", "out_dir", "trainable_parameters"}``. The saved folder is a
    plain causal-LM folder (weights + tokenizer) for ``llm:<out_dir>``.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    corpus = [s.strip() for s in smiles_corpus if s and s.strip()]
    if not corpus:
        raise ValueError("empty SMILES corpus")
    tokenizer, model = _load_causal_lm(os.fspath(model_dir))
    targets = list(target_modules)
    if lm_head:
        targets.append("lm_head")
        if getattr(model.config, "tie_word_embeddings", False):
            # a LoRA on a tied lm_head would be merged into the input embeddings too: untie first
            model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
            model.config.tie_word_embeddings = False
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                                                  target_modules=targets, task_type="CAUSAL_LM"))
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    rng = np.random.default_rng(seed)
    losses, steps = [], 0
    total = max_steps if max_steps is not None else epochs * math.ceil(len(corpus) / batch_size)
    while steps < total:
        order = rng.permutation(len(corpus))
        for start in range(0, len(order), batch_size):
            batch = lm_batch(tokenizer, [corpus[i] for i in order[start:start + batch_size]], max_length)
            loss = peft_model(**batch).loss  # HF shifts labels and ignores -100 (the padding)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            steps += 1
            if steps >= total:
                break
    merged = peft_model.merge_and_unload()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(os.fspath(out_dir))
    tokenizer.save_pretrained(os.fspath(out_dir))
    return {"steps": steps, "losses": losses, "out_dir": os.fspath(out_dir),
            "trainable_parameters": int(sum(p.numel() for p in params))}
