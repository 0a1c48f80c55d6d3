"""Molecule featurisers of the embedding branch, by name: ``make_featurizer(spec)``.

A featuriser spec is a ``+``-joined list of registered featurisers (``FEATURIZERS``):

- ``llm:<folder>``: KFLM2's featuriser. The SMILES (no prompt) goes through a local causal
  LM folder (``causal_lm.load_causal_lm``); the embedding is the mean of the last hidden
  state (after the final norm) over the SMILES tokens, padding excluded. Batched (sorted
  by length), in float32 unless ``dtype`` says otherwise. Token states (for the attention
  fusion) come from the same pass. A SMILES is never cut: one longer than the model's
  context (``causal_lm.context_limit``: the trained context where the config records it, as
  the chat uses, else max_position_embeddings), or whose states are not finite (in float32,
  or as the float16 token states cached for the attention fusion), is a FeaturizerError
  naming it.
- ``rdkit2d``: the 217 RDKit 2D descriptors (``Descriptors.descList``; a descriptor RDKit
  fails on is NaN, imputed later). Normalised by ``scaling.FeatureScaler`` ("quantile":
  the empirical CDF of the *training* molecules, as Chemprop's ``rdkit_2d_normalized``
  uses a CDF, but fitted on the split's own training set).
- ``morgan`` (or ``morgan:<radius>:<bits>``, default 2:2048): Morgan count fingerprint,
  ``log1p(count)``.

``rdkit2d`` and ``morgan`` are computed on ``molecule.standard.standard_molecule`` (explicit H
removed, atom maps cleared, canonical order), so every spelling of a molecule gets one row:
``[H]OC([H])([H])C([H])([H])[H]`` had 13 Morgan bits, ``CCO`` 6. Every featuriser caches its
rows per SMILES (``embedding_cache``); the key of these two names the standard molecule, so
rows cached from the molecule as written are not reused.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import usage
from .causal_lm import load_causal_lm
from .embedding_cache import EmbeddingCache, cached, default_cache_dir, model_fingerprint
from ..molecule.standard import standard_molecule

# In the cache keys of the featurisers that compute on standard_molecule (see above)
STANDARD_MOLECULE = "standard molecule: no explicit H, no atom maps, canonical order"


def molecule_bar(items: Sequence, desc: str, shown: bool):
    """`items` with a tqdm bar on stderr where `shown` and there are enough to take a while:
    the featurising and graph passes of a large table were minutes without a line (41,000
    HIV rows: about 8 minutes of silence, which reads as a hang). In a log (stderr not a
    terminal) it updates every 30 s, not at every molecule."""
    import sys

    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="mol", disable=not shown or len(items) < 500,
                mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)


class FeaturizerError(ValueError):
    """A molecule or model a featuriser cannot use; the message names it (one line in the CLI)."""


class Featurizer:
    """Maps RDKit molecules (and their SMILES, the cache key) to an (n, dim) float32 matrix."""

    name = "base"
    scaling = "standard"  # how FeatureScaler normalises it: standard | quantile | none
    dim = 0
    molecule_progress = False  # a bar over the molecules computed (`molecule_bar`); the CLI sets it unless --quiet

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cache = EmbeddingCache(cache_dir or default_cache_dir(), self.cache_key())

    def cache_key(self) -> str:
        raise NotImplementedError

    def compute(self, mols: list, smiles: list[str]) -> list[np.ndarray]:
        raise NotImplementedError

    @property
    def parts(self) -> list:
        """The featurisers whose columns this one's are, in order: itself; a Concatenated's
        parts (what the scaler's blocks, the imputation report and the LLM lookup walk)."""
        return [self]

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
        self.columns = [name for name, _ in self._functions]
        super().__init__(cache_dir)

    def cache_key(self) -> str:
        import rdkit

        names = ",".join(n for n, _ in self._functions)
        return f"rdkit2d|rdkit {rdkit.__version__}|{hashlib.sha256(names.encode()).hexdigest()}|{STANDARD_MOLECULE}"

    def compute(self, mols, smiles):
        from rdkit import rdBase

        out = []
        with rdBase.BlockLogs():  # descriptors warn on many molecules; a failure is NaN below
            for mol in map(standard_molecule, molecule_bar(mols, self.name, self.molecule_progress)):
                row = np.empty(self.dim, dtype=np.float64)
                for j, (_, fn) in enumerate(self._functions):
                    try:
                        row[j] = float(fn(mol))
                    except Exception:  # noqa: BLE001 - some descriptors fail on odd molecules
                        row[j] = np.nan
                row[~np.isfinite(row)] = np.nan
                # float32 overflow (e.g. Ipc) -> +-inf would poison the scaler: keep it finite
                out.append(np.clip(row, -3e38, 3e38).astype(np.float32)[None])
        return out


class Morgan(Featurizer):
    name = "morgan"
    scaling = "none"

    def __init__(self, radius: int = 2, bits: int = 2048, cache_dir=None):
        self.radius, self.bits, self.dim = radius, bits, bits
        # the reports' name says which fingerprint (was "morgan" for every radius and size)
        self.name = f"morgan[radius {radius}, {bits} bits, counts]"
        super().__init__(cache_dir)

    def cache_key(self) -> str:
        import rdkit

        return f"morgan-count|r{self.radius}|b{self.bits}|rdkit {rdkit.__version__}|{STANDARD_MOLECULE}"

    def compute(self, mols, smiles):
        from rdkit.Chem import rdFingerprintGenerator

        gen = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.bits)
        return [np.log1p(gen.GetCountFingerprintAsNumPy(standard_molecule(m)).astype(np.float32))[None]
                for m in molecule_bar(mols, self.name, self.molecule_progress)]


class LLMEmbedding(Featurizer):
    """Mean-pooled last hidden state of a local causal LM over the SMILES tokens (padding excluded).

    ``tokens(mols, smiles)`` returns the per-token states themselves (one (n_tokens, d)
    array per molecule, float16 in the cache) for the attention fusion.
    """

    name = "llm"
    scaling = "standard"

    def __init__(self, folder: str, cache_dir=None, batch_size: int = 32, max_length: int | None = None,
                 dtype=None, device: str = "cpu", progress: bool = True):
        from .causal_lm import context_limit, llm_config, run_dtype

        self.folder = os.fspath(folder)
        # the dtype the model runs in, as the cache key records it (None was keyed "None" and
        # run in whatever dtype the folder's config.json named)
        self.batch_size, self.dtype, self.device = batch_size, run_dtype(dtype), device
        self.progress = progress  # False (--quiet): no "Loading weights" bar from transformers
        self.fingerprint = model_fingerprint(self.folder, self._resolved())
        config = llm_config(self._resolved())
        text = config.get_text_config()
        self.dim = int(text.hidden_size)  # a Qwen2-VL folder: its LLM's width
        # Never cut: a longer SMILES is an error naming it (cut at 512 tokens, a 300-mer
        # acid and its amide had one embedding, without a word). The limit is the one the
        # chat holds prompts to (`context_limit`) unless the caller gives one.
        self.max_length, self.limit_source = (max_length, "the max_length given") if max_length else \
            context_limit(config)
        self.name = f"llm[{Path(self.folder).name}]"
        super().__init__(cache_dir)
        self.token_cache = EmbeddingCache(cache_dir or default_cache_dir(), self.cache_key() + "|tokens")
        self._model = None

    def _resolved(self) -> str:
        from ..model.loading import resolve_llm_path

        return resolve_llm_path(self.folder)

    def cache_key(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")  # the dtype the model runs in, e.g. float32
        return f"llm-mean|{self.fingerprint}|uncut, at most {self.max_length} tokens|dtype {dtype}"

    def model(self):
        if self._model is None:
            tokenizer, model = load_causal_lm(self.folder, self.dtype, progress=self.progress)
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
                enc = tokenizer([smiles[i] for i in idx], return_tensors="pt", padding=True,
                                add_special_tokens=True)
                enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
                mask = enc["attention_mask"].bool()  # (batch, tokens)
                lengths = mask.sum(1).tolist()
                if self.max_length is not None and max(lengths) > self.max_length:
                    i = idx[lengths.index(max(lengths))]
                    raise FeaturizerError(f"llm:{self.folder}: SMILES {usage.shortened(smiles[i])!r} is {max(lengths)} "
                                          f"tokens, more than the model's {self.max_length} "
                                          f"({self.limit_source}): leave such molecules out")
                hidden = base(**enc).last_hidden_state.float()  # (batch, tokens, d)
                for row, i in enumerate(idx):
                    out[i] = hidden[row][mask[row]].cpu().numpy()
                    if not np.isfinite(out[i]).all():  # a float16 overflow: cached, it was every later run's
                        raise FeaturizerError(f"llm:{self.folder}: its hidden states for SMILES "
                                         f"{usage.shortened(smiles[i])!r} are not finite (NaN or inf): try "
                                         "another dtype")
        return out  # type: ignore[return-value]

    def compute(self, mols, smiles):
        return self.compute_means(self._states(list(smiles)))

    @staticmethod
    def compute_means(states: list[np.ndarray]) -> list[np.ndarray]:
        """Each molecule's mean embedding, (1, d) float32, from its (n_tokens, d) states."""
        return [s.mean(axis=0, keepdims=True).astype(np.float32) for s in states]

    def tokens(self, mols: Sequence, smiles: Sequence[str]) -> list[np.ndarray]:
        """Each SMILES's token states, (n_tokens, d) float32 (stored as float16). The mean
        embeddings of the molecules computed here are stored too, so that `__call__` for them
        after this reads its cache (was: --fusion attention ran the LLM over every molecule
        twice, once for the means and once for the tokens: `build_inputs` asks for the tokens
        first)."""
        def compute(miss):
            tokens, states = [], self._states(list(miss))  # each (n_tokens, d) float32
            _, no_mean = self.cache.get_many(miss)
            means = dict(zip(miss, self.compute_means(states)))
            self.cache.put_many({smi: means[smi] for smi in no_mean})
            for smi, state in zip(miss, states):  # state: (n_tokens, d) float32
                with np.errstate(over="ignore"):  # an overflow is the refusal below, not a warning
                    t = state.astype(np.float16)  # (n_tokens, d)
                if not np.isfinite(t).all():  # cached, inf was every later run's, as "training diverged"
                    raise FeaturizerError(
                        f"llm:{self.folder}: its token states for SMILES {usage.shortened(smi)!r} exceed float16's "
                        f"range (|state| up to {float(np.abs(state).max()):.4g}; float16, in which --fusion "
                        "attention stores them, holds up to 65504): use --fusion concat (float32 mean "
                        "embeddings) or leave the molecule out")
                tokens.append(t)
            return tokens

        return [t.astype(np.float32) for t in cached(self.token_cache, list(smiles), compute)]


class Concatenated(Featurizer):
    def __init__(self, parts: list[Featurizer]):
        self._parts = parts
        self.dim = sum(p.dim for p in parts)
        self.name = "+".join(p.name for p in parts)

    @property
    def parts(self) -> list:
        return self._parts

    def __call__(self, mols, smiles):
        return np.concatenate([p(mols, smiles) for p in self.parts], axis=1)


# ------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Registered:
    """How a spec item names a featuriser: ``<name>`` and/or ``<name>:<argument>``."""

    build: Callable[[str | None, object, dict], Featurizer]  # (argument or None, cache_dir, llm options)
    argument: str  # "none", "optional" or "required"
    usage: str  # as the error message spells it

    def accepts(self, has_argument: bool) -> bool:
        return self.argument == "optional" or has_argument == (self.argument == "required")


MORGAN_MAX_RADIUS, MORGAN_MAX_BITS = 32, 1 << 20  # RDKit overflows past int32; 2^20 floats: 4 MB per molecule


def morgan_settings(argument: str | None) -> tuple[int, int]:
    """(radius, bits) of ``morgan[:radius[:bits]]``; out of bounds is a ValueError (an
    OverflowError from RDKit, or 400 MB per molecule, after --out was written)."""
    parts = argument.split(":") if argument is not None else []
    radius, bits = int(parts[0]) if parts else 2, int(parts[1]) if len(parts) > 1 else 2048
    if not 0 <= radius <= MORGAN_MAX_RADIUS or not 1 <= bits <= MORGAN_MAX_BITS:
        raise ValueError(f"morgan:{argument}: the radius must be 0..{MORGAN_MAX_RADIUS} and the bits "
                         f"1..{MORGAN_MAX_BITS}")
    return radius, bits


def _morgan(argument, cache_dir, llm_options) -> Morgan:
    return Morgan(*morgan_settings(argument), cache_dir)


FEATURIZERS = {
    "rdkit2d": Registered(lambda argument, cache_dir, llm_options: RDKit2D(cache_dir), "none", "rdkit2d"),
    "morgan": Registered(_morgan, "optional", "morgan[:radius:bits]"),
    "llm": Registered(lambda argument, cache_dir, llm_options: LLMEmbedding(argument, cache_dir, **llm_options),
                      "required", "llm:<folder>"),
}


def make_featurizer(spec: str, cache_dir=None, **llm_options) -> Featurizer:
    """``rdkit2d``, ``morgan[:radius:bits]``, ``llm:<folder>``, or several joined by ``+``;
    ``llm_options`` (batch_size, max_length, dtype, device, progress) go to every ``llm:`` part."""
    parts: list[Featurizer] = []
    for item in split_spec(spec):
        name, sep, argument = item.partition(":")
        entry = FEATURIZERS.get(name)
        if entry is None or not entry.accepts(bool(sep)):
            usages = [e.usage for e in FEATURIZERS.values()]
            raise ValueError(f"unknown featuriser {item!r}: use {', '.join(usages[:-1])} or {usages[-1]}")
        parts.append(entry.build(argument if sep else None, cache_dir, llm_options))
    if not parts:
        raise ValueError("empty featuriser spec")
    return parts[0] if len(parts) == 1 else Concatenated(parts)


def _starts_item(piece: str) -> bool:
    """Whether a '+'-separated piece begins a new featuriser (else it continues an llm: path)."""
    for name, entry in FEATURIZERS.items():
        if entry.argument == "none" and piece == name:
            return True
        if entry.argument == "optional" and piece.startswith(name):
            return True
        if entry.argument == "required" and piece.startswith(name + ":"):
            return True
    return False


def split_spec(spec: str) -> list[str]:
    """Split on '+' except inside an llm: path (an llm: item runs to the next '+rdkit2d'/'+morgan'/'+llm:')."""
    items, current = [], ""
    for piece in spec.split("+"):
        if current and (_starts_item(piece) or not current.startswith("llm:")):
            items.append(current)
            current = piece
        else:
            current = f"{current}+{piece}" if current else piece
    if current:
        items.append(current)
    return [i.strip() for i in items if i.strip()]


def llm_featurizer(featurizer: Featurizer | None) -> LLMEmbedding | None:
    """The LLM part of a (possibly concatenated) featuriser, for token states."""
    return next((p for p in featurizer.parts if isinstance(p, LLMEmbedding)), None) if featurizer else None
