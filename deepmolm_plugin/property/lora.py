"""LoRA fine-tuning of a causal LM on SMILES, as KFLM2 adapts its LLM before featurising.

``lora_finetune`` trains PEFT LoRA adapters (r 16, alpha 32 on q, k, v, o and optionally
lm_head, as KFLM2) by next-token prediction where padding is excluded from the loss
(labels -100 at every padded position; KFLM2 trained on its pad tokens), and saves the
merged model + tokenizer as a plain folder usable as the featuriser ``llm:<out_dir>``.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .. import usage
from ..result_files import shared_mode
from ..tensor_files import share_weights_files
from .causal_lm import load_causal_lm, load_tokenizer

logger = logging.getLogger(__name__)


def lm_batch(tokenizer, smiles: Sequence[str], max_length: int = 256, pad_to: int | None = None) -> dict:
    """Causal-LM batch: SMILES + eos, right padding, labels -100 wherever attention_mask is 0."""
    eos = tokenizer.eos_token or ""
    enc = tokenizer([s + eos for s in smiles], return_tensors="pt", padding="max_length" if pad_to else True,
                    max_length=pad_to or max_length, truncation=True)
    labels = enc["input_ids"].clone()  # (batch, tokens)
    labels[enc["attention_mask"] == 0] = -100
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


def _check_settings(r, alpha, epochs, max_steps, batch_size, lr, max_length, dropout) -> None:
    """ValueError naming the argument: each of these trained nothing and saved the base model
    as "fine-tuned" (epochs or max_steps 0, alpha 0: a LoRA scaled by 0), trained the other way
    (alpha < 0), gave NaN losses (max_length 1: no next token to predict), or failed after
    the model had loaded with an error naming no argument (batch_size 0, r 0, dropout 2)."""
    def whole(value, name, least):  # numpy integers too (a value from a numpy grid)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"lora_finetune: {name} must be an integer >= {least}, got {value!r}")

    def positive(value, name):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                or value <= 0:
            raise ValueError(f"lora_finetune: {name} must be a finite number > 0, got {value!r}")

    whole(r, "r", 1)
    whole(batch_size, "batch_size", 1)
    whole(max_length, "max_length", 2)  # a SMILES token and the one after it
    if max_steps is None:
        whole(epochs, "epochs", 1)
    else:
        whole(max_steps, "max_steps", 1)
    positive(alpha, "alpha")
    positive(lr, "lr")
    if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"lora_finetune: dropout must be in [0, 1), got {dropout!r}")


def _checked_corpus(smiles_corpus: Iterable[str]) -> list:
    """The corpus as stripped SMILES; ValueError naming the items that are not SMILES (a bare
    string was trained on character by character, None and numbers failed with
    AttributeError, text RDKit refuses was trained on, and blank items dropped unsaid)."""
    from .features import parse_smiles

    if isinstance(smiles_corpus, (str, bytes)):
        raise ValueError("lora_finetune: smiles_corpus is one string; give a list of SMILES")
    corpus, bad = [], []
    for index, item in enumerate(smiles_corpus):
        if not isinstance(item, str) or not item.strip():
            bad.append(f"#{index} {item!r} (not a SMILES string)")
            continue
        mol, why = parse_smiles(item.strip())
        if mol is None:
            bad.append(f"#{index} {item.strip()[:60]!r} ({why})")
        corpus.append(item.strip())
    if bad:
        raise ValueError(f"lora_finetune: {len(bad)} corpus item(s) are not SMILES RDKit reads: {'; '.join(bad[:5])}"
                         f"{' ...' if len(bad) > 5 else ''}")
    if not corpus:
        raise ValueError("lora_finetune: empty SMILES corpus")
    return corpus


def _check_out_dir(model_dir, out_dir, overwrite: bool) -> Path:
    """`out_dir`, refused when it is `model_dir` (the base model was replaced in place) or
    already holds files and `overwrite` is False (another run's model was replaced)."""
    out = Path(out_dir)
    if out.exists() and Path(model_dir).exists() and usage.real_path(out) == usage.real_path(model_dir):
        raise ValueError(f"lora_finetune: out_dir {out} is model_dir: the base model would be overwritten")
    if out.exists() and not out.is_dir():
        raise ValueError(f"lora_finetune: out_dir {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"lora_finetune: out_dir {out} is not empty (overwrite=True replaces it)")
    return out


def _save_whole(merged, tokenizer, out: Path) -> None:
    """The merged model and tokenizer into `out`, whole or not at all: written into a sibling
    folder, then renamed (a killed run left a half folder that loaded as a model later)."""
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        merged.save_pretrained(os.fspath(partial))
        tokenizer.save_pretrained(os.fspath(partial))
        # mkdtemp's folder is 0700 and save_pretrained's weights 0600: the model folder a group
        # shares was unreadable to the others
        os.chmod(partial, shared_mode(folder=True))
        share_weights_files(partial)
        if out.exists():  # overwrite=True: the old folder goes only once the new one is whole
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(partial, out)
            shutil.rmtree(old)
        else:
            os.replace(partial, out)
    finally:
        if partial.exists():
            shutil.rmtree(partial)


def lora_finetune(model_dir: str | os.PathLike, smiles_corpus: Iterable[str], out_dir: str | os.PathLike,
                  r: int = 16, alpha: int = 32, target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
                  lm_head: bool = True, epochs: int = 1, batch_size: int = 16, lr: float = 2e-4,
                  max_length: int = 256, max_steps: int | None = None, seed: int = 0, dropout: float = 0.05,
                  overwrite: bool = False) -> dict:
    """LoRA next-token fine-tuning on SMILES (pad excluded from the loss); saves the merged model.

    Returns ``{"steps", "losses", "out_dir", "cut_smiles", "trainable_parameters"}``
    (``cut_smiles``: SMILES longer than ``max_length`` tokens, trained on their first
    ``max_length`` tokens, also logged as a warning). The saved folder is a
    plain causal-LM folder (weights + tokenizer) for ``llm:<out_dir>``, written whole or not
    at all. Settings that train nothing, corpus items that are not SMILES, an `out_dir` that
    is `model_dir` or holds files (unless `overwrite`), and a loss that is not finite are
    ValueErrors naming them.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    _check_settings(r, alpha, epochs, max_steps, batch_size, lr, max_length, dropout)
    r, epochs, batch_size, max_length = int(r), int(epochs), int(batch_size), int(max_length)  # numpy ints to peft
    max_steps = None if max_steps is None else int(max_steps)
    corpus = _checked_corpus(smiles_corpus)
    out = _check_out_dir(model_dir, out_dir, overwrite)
    tokenizer, model = load_causal_lm(os.fspath(model_dir))
    eos = tokenizer.eos_token or ""
    cut = [s for s in corpus if len(tokenizer(s + eos)["input_ids"]) > max_length]
    if cut:  # trained on their first max_length tokens: said, and counted in the result (was silent)
        logger.warning("lora_finetune: %d of %d SMILES are longer than max_length=%d tokens and are trained on "
                       "their first %d tokens only (e.g. %.80s)", len(cut), len(corpus), max_length, max_length, cut[0])
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
            if not torch.isfinite(loss):  # the merged model would be saved as if tuned
                raise ValueError(f"lora_finetune: the loss is {float(loss.detach())} at step {steps + 1} (a learning rate "
                                 f"too high for this model, lr={lr}? or a batch of one-token SMILES and a tokenizer "
                                 "without an eos token: nothing to predict); nothing was saved")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            steps += 1
            if steps >= total:
                break
    # the tokenizer as the base model's folder has it: the one trained with was given a pad token
    # (any token, even id 0, where it had none) and right padding to batch SMILES, and the tuned
    # folder then declared that token its pad token to every later user
    from ..model.loading import resolve_llm_path

    _save_whole(peft_model.merge_and_unload(), load_tokenizer(resolve_llm_path(os.fspath(model_dir))), out)
    return {"steps": steps, "losses": losses, "out_dir": os.fspath(out), "cut_smiles": len(cut),
            "trainable_parameters": int(sum(p.numel() for p in params))}
