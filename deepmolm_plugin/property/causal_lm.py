"""A local causal LM folder -> (tokenizer, model), for the ``llm:`` featuriser and LoRA tuning.

Accepts a plain Hugging Face causal LM folder (Qwen2, DeepSeek-R1-Distill-Qwen, any
``AutoModelForCausalLM`` folder) or a DeepMoLM / VILA / Qwen2-VL folder, whose LLM
``deepmolm_plugin.model.loading`` extracts. The tokenizer pads on the right with its pad
token, else its eos token (KFLM2's LLMs have no pad token).
"""

from __future__ import annotations

import contextlib


def llm_config(path: str):
    """The folder's transformers config. A DeepMoLM folder (model type `llava_qwen2`) is read
    after our Auto classes are registered: transformers alone stopped with KeyError
    'llava_qwen2' (the kflm2 `llm:<DeepMoLM checkpoint>` feature did not work)."""
    from transformers import AutoConfig

    from .. import usage

    config = usage.model_config(path, f"llm:{path}")
    if config is None:
        raise usage.UsageError(f"llm:{path}: the folder holds no config.json (not a model checkpoint folder)")
    if config.get("model_type") == "llava_qwen2":
        from ..model.llava_qwen2 import register_auto_classes

        register_auto_classes()
    return AutoConfig.from_pretrained(path)


def load_tokenizer(path: str):
    """The folder's tokenizer; one that makes no tokens of a SMILES is a UsageError (a folder
    without tokenizer files gave an empty tokenizer, and a reshape error at the first SMILES)."""
    from .. import usage
    from ..model import loading
    from ..tensor_files import CheckpointError

    try:
        tokenizer = loading.load_tokenizer(path)  # the one tokenizer loader (chat, eval, GUI)
    except CheckpointError as e:
        raise usage.UsageError(f"llm:{e}") from e
    if not tokenizer("CCO")["input_ids"]:
        raise usage.UsageError(f"llm:{path}: its tokenizer makes no tokens of a SMILES (no tokenizer.json, or "
                               "vocab.json + merges.txt, in the folder?)")
    return tokenizer


@contextlib.contextmanager
def progress_bars(shown: bool):
    """transformers' (and huggingface_hub's) progress bars on or off inside, as before after:
    `--quiet` did not silence transformers' "Loading weights" bar."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if shown else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()


def load_causal_lm(folder: str, dtype=None, progress: bool = True):
    """(tokenizer, model in eval mode); float32 unless `dtype` says otherwise. Loaded
    strictly (`model.loading`): missing, extra or misshapen tensors and NaN weights are a
    CheckpointError naming the folder. `progress` False: no loading bars (--quiet)."""
    if progress:
        return _load_causal_lm(folder, dtype)
    with progress_bars(False):
        return _load_causal_lm(folder, dtype)


def _load_causal_lm(folder: str, dtype=None):
    from ..model.loading import QWEN2_VL_TYPES, load_causal_lm_checked, resolve_llm_path

    path = resolve_llm_path(folder)
    model_type = llm_config(path).model_type
    tokenizer = load_tokenizer(path)
    if model_type == "llava_qwen2" or model_type in QWEN2_VL_TYPES:
        import deepmolm_plugin

        from ..model.loading import load_llm

        deepmolm_plugin.register()  # a DeepMoLM folder builds its tower and projector through the host's registry

        model = load_llm(path, dtype=dtype)
    else:
        model = load_causal_lm_checked(path, dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer, model.eval()
