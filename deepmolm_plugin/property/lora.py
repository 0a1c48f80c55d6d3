"""LoRA fine-tuning of a causal LM on SMILES, as KFLM2 adapts its LLM before featurising.

``lora_finetune`` trains PEFT LoRA adapters (r 16, alpha 32 on q, k, v, o and optionally
lm_head, as KFLM2) by next-token prediction where padding is excluded from the loss
(labels -100 at every padded position; KFLM2 trained on its pad tokens), and saves the
merged model + tokenizer as a plain folder usable as the featuriser ``llm:<out_dir>``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .causal_lm import load_causal_lm

logger = logging.getLogger(__name__)


def lm_batch(tokenizer, smiles: Sequence[str], max_length: int = 256, pad_to: int | None = None) -> dict:
    """Causal-LM batch: SMILES + eos, right padding, labels -100 wherever attention_mask is 0."""
    eos = tokenizer.eos_token or ""
    enc = tokenizer([s + eos for s in smiles], return_tensors="pt", padding="max_length" if pad_to else True,
                    max_length=pad_to or max_length, truncation=True)
    labels = enc["input_ids"].clone()  # (batch, tokens)
    labels[enc["attention_mask"] == 0] = -100
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


def lora_finetune(model_dir: str | os.PathLike, smiles_corpus: Iterable[str], out_dir: str | os.PathLike,
                  r: int = 16, alpha: int = 32, target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
                  lm_head: bool = True, epochs: int = 1, batch_size: int = 16, lr: float = 2e-4,
                  max_length: int = 256, max_steps: int | None = None, seed: int = 0, dropout: float = 0.05) -> dict:
    """LoRA next-token fine-tuning on SMILES (pad excluded from the loss); saves the merged model.

    Returns ``{"steps", "losses", "out_dir", "cut_smiles", "trainable_parameters"}``
    (``cut_smiles``: SMILES longer than ``max_length`` tokens, trained on their first
    ``max_length`` tokens, also logged as a warning). The saved folder is a
    plain causal-LM folder (weights + tokenizer) for ``llm:<out_dir>``.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    corpus = [s.strip() for s in smiles_corpus if s and s.strip()]
    if not corpus:
        raise ValueError("empty SMILES corpus")
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
    return {"steps": steps, "losses": losses, "out_dir": os.fspath(out_dir), "cut_smiles": len(cut),
            "trainable_parameters": int(sum(p.numel() for p in params))}
