"""From-scratch tiny Qwen2 LLMs, for the demo and the tests (nothing can be downloaded).

`train_chatml_tokenizer` trains a byte-level BPE with Qwen2's pre-tokenizer and ChatML
special tokens (pad <|endoftext|>, eos <|im_end|>, no unk — as Qwen2) on a corpus in a
second; `build_qwen2` saves a seeded, randomly initialised Qwen2ForCausalLM plus that
tokenizer as a plain Qwen2 checkpoint folder — the same kind of folder a user passes to
`--model_name_or_path`, so everything downstream runs the full-scale code path.
"""

from __future__ import annotations

import os
import threading
from typing import Iterable

import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from .tensor_files import share_weights_files

# Qwen2's pre-tokenizer pattern (transformers' tokenization_qwen2.PRETOKENIZE_REGEX), so the
# tiny tokenizer splits text exactly where a real Qwen2 tokenizer does.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def train_chatml_tokenizer(corpus: Iterable[str], vocab_size: int = 800,
                           model_max_length: int = 2048) -> transformers.PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus), trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=model_max_length,
    )


_BUILD_LOCK = threading.Lock()


def build_qwen2(path, tokenizer, hidden_size: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                intermediate: int = 128, seed: int = 0):
    """Save a seeded random Qwen2ForCausalLM + `tokenizer` in `path` (global RNG untouched)."""
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # The weights come from torch's global generator: two threads building at once (the
    # experiment trains arms in parallel threads) would draw from it in turns and each get
    # other weights than its seed's. One build at a time.
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Qwen2ForCausalLM(config)
    model.save_pretrained(os.fspath(path))  # safetensors
    tokenizer.save_pretrained(os.fspath(path))
    share_weights_files(path)  # save_pretrained's safetensors are 0600, its other files 0644
    return path
