"""A local causal LM folder -> (tokenizer, model), for the ``llm:`` featuriser and LoRA tuning.

Accepts a plain Hugging Face causal LM folder (Qwen2, DeepSeek-R1-Distill-Qwen, any
``AutoModelForCausalLM`` folder) or a DeepMoLM / VILA / Qwen2-VL folder, whose LLM
``deepmolm_plugin.model.loading`` extracts. The model runs in float32 unless the caller's
dtype says otherwise, whatever dtype the folder was saved in. The tokenizer pads on the
right with its pad token, else its eos token (KFLM2's LLMs have no pad token), else any
token it has: padding is masked out of every use (attention mask, pooling, loss).
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


def run_dtype(dtype=None):
    """The torch dtype the LLM runs in: `dtype` (a torch.dtype or its name), float32 when None.
    Asked for explicitly: given None, transformers loads a DeepMoLM folder in the dtype its
    config.json records (bfloat16 after bf16 training), so one checkpoint was featurised in
    bfloat16 and a plain Qwen2 one in float32, both documented and cache-keyed as float32."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        found = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(found, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}: use e.g. float32, bfloat16 or float16")
        return found
    return dtype


def context_limit(config) -> tuple[int | None, str]:
    """(token limit, where it comes from) of a model: the context it was trained with where its
    config records one (`tokenizer_model_max_length`, what the chat holds prompts to:
    `LlavaQwen2ForCausalLM.context_length`), else its `max_position_embeddings`. Was
    max_position_embeddings only: a DeepMoLM checkpoint trained on 256 tokens featurised a
    301-token SMILES, in positions it never trained on, without a word."""
    from ..model.llava_qwen2 import trained_context  # the chat's reader: 256.0 was no context here

    trained = trained_context(config)
    if trained is not None:
        return trained, "its trained context, tokenizer_model_max_length in config.json"
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    positions = getattr(text, "max_position_embeddings", None)
    return positions, "its max_position_embeddings in config.json"


def load_tokenizer(path: str):
    """The folder's tokenizer; one that makes no tokens of a SMILES is a UsageError (a folder
    without tokenizer files gave an empty tokenizer, and a reshape error at the first SMILES),
    and so is one with more tokens than the config's embedding table has rows (tokenizer files
    of another model: an IndexError traceback at the first SMILES using an extra id, after
    --out was written), checked as the chat loader checks it (`loading.check_tokenizer_fits`)."""
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
    _check_fits(tokenizer, loading._config_vocab_size(llm_config(path)), path)  # before minutes of loading
    return tokenizer


def _check_fits(tokenizer, rows: int | None, path: str) -> None:
    """`loading.check_tokenizer_fits` (the chat loader's rule), as a UsageError."""
    from .. import usage
    from ..model.loading import check_tokenizer_fits
    from ..tensor_files import CheckpointError

    try:
        check_tokenizer_fits(tokenizer, rows, path)
    except CheckpointError as e:
        raise usage.UsageError(f"llm:{e}") from e


def _set_padding(tokenizer) -> None:
    """Right padding with the pad token, else eos, else any token the tokenizer has (its unknown
    token, else id 0): padded positions are masked (attention mask, pooling, loss), so which id
    pads changes no embedding. Was: a tokenizer with neither pad nor eos token stopped with
    transformers' ValueError traceback at the first batch."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token or tokenizer.convert_ids_to_tokens(0)
    tokenizer.padding_side = "right"


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
    """(tokenizer, model in eval mode); float32 unless `dtype` says otherwise (`run_dtype`). Loaded
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
    dtype = run_dtype(dtype)
    if model_type == "llava_qwen2" or model_type in QWEN2_VL_TYPES:
        import deepmolm_plugin

        from ..model.loading import load_llm

        deepmolm_plugin.register()  # a DeepMoLM folder builds its tower and projector through the host's registry

        model = load_llm(path, dtype=dtype)
    else:
        model = load_causal_lm_checked(path, dtype)
    _check_fits(tokenizer, model.get_input_embeddings().num_embeddings, path)  # the table itself
    _set_padding(tokenizer)
    return tokenizer, model.eval()
