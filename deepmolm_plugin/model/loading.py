"""Loading the LLM side: every checkpoint a DeepMoLM user starts from, as LlavaQwen2.

- a plain Qwen2 folder (`model_type: qwen2`): the usual start of training;
- a VILA-style folder with an `llm/` subfolder (what DeepMoLM/VILA released): the LLM is
  `llm/`; `resolve_llm_path` points there;
- an official Qwen2-VL / Qwen2.5-VL checkpoint: the language-model weights are taken out
  (old `model.layers.*` or new `model.language_model.*` names; `visual.*` dropped) and
  the text config becomes a Qwen2 config (M-RoPE with equal t/h/w positions, which is
  all text-only input ever has, is plain RoPE);
- a saved DeepMoLM checkpoint (`model_type: llava_qwen2`), tower and projector included.

Loading is strict: a tensor the model expects but the checkpoint lacks is an error that
lists them (transformers would initialise it randomly and only warn).
"""

from __future__ import annotations

import logging
import os
from typing import Optional, Tuple

import torch
from transformers import AutoConfig, AutoTokenizer, Qwen2Config

from ..cpu_memory import keep_freed_memory
from ..dtypes import AUTO, resolve_dtype
from ..tensor_files import CheckpointError, open_checkpoint
from .llava_qwen2 import LlavaQwen2Config, LlavaQwen2ForCausalLM

logger = logging.getLogger(__name__)

QWEN2_TYPES = ("qwen2", "llava_qwen2")
QWEN2_VL_TYPES = ("qwen2_vl", "qwen2_5_vl")
_TEXT_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "use_sliding_window",
    "sliding_window", "max_window_layers", "attention_dropout", "bos_token_id", "eos_token_id",
)


def resolve_llm_path(path: str) -> str:
    """A VILA-style folder keeps its LLM (and tokenizer) in `llm/`."""
    llm = os.path.join(path, "llm")
    if os.path.isfile(os.path.join(llm, "config.json")) and not os.path.isfile(os.path.join(path, "config.json")):
        return llm
    return path


def model_type_of(path: str) -> str:
    return AutoConfig.from_pretrained(resolve_llm_path(path)).model_type


def _qwen2_config_from_vl(vl_config) -> Qwen2Config:
    text = vl_config.get_text_config() if hasattr(vl_config, "get_text_config") else vl_config
    fields = {k: getattr(text, k) for k in _TEXT_FIELDS if getattr(text, k, None) is not None}
    rope = getattr(text, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(text, "rope_theta", 1_000_000.0))
    fields["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    fields["tie_word_embeddings"] = getattr(vl_config, "tie_word_embeddings", False)
    return Qwen2Config(**fields)


def _check_loading_info(info: dict, path: str) -> None:
    missing = list(info.get("missing_keys", []))
    if missing:
        raise CheckpointError(
            f"{path} lacks {len(missing)} tensors the model needs (they would be random): {', '.join(missing)}"
        )
    mismatched = list(info.get("mismatched_keys", []))
    if mismatched:
        raise CheckpointError(f"{path} has tensors of the wrong shape: {mismatched}")


def _from_qwen2_vl(path: str, dtype) -> LlavaQwen2ForCausalLM:
    config = LlavaQwen2Config(**_qwen2_config_from_vl(AutoConfig.from_pretrained(path)).to_dict())
    store = open_checkpoint(path)
    state, dropped = {}, 0
    for key in store:
        if key.startswith("model.language_model."):
            state["model." + key[len("model.language_model."):]] = store[key]
        elif key.startswith(("model.layers.", "model.embed_tokens.", "model.norm.", "lm_head.")):
            state[key] = store[key]
        else:
            dropped += 1  # visual.* / model.visual.*: the Qwen2-VL vision tower
    model = LlavaQwen2ForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if config.tie_word_embeddings:
        missing = [k for k in missing if k != "lm_head.weight"]
        model.tie_weights()
    if missing or unexpected:
        raise CheckpointError(
            f"Qwen2-VL checkpoint {path}: language-model tensors missing {missing}, unexpected {unexpected}"
        )
    logger.info("took the language model out of Qwen2-VL checkpoint %s (%d vision tensors dropped)", path, dropped)
    return model.to(dtype) if dtype is not None else model


def load_llm(path: str, dtype: Optional[torch.dtype] = None, **kwargs) -> LlavaQwen2ForCausalLM:
    """Any supported Qwen2-family checkpoint folder -> LlavaQwen2ForCausalLM, strictly."""
    path = resolve_llm_path(path)
    model_type = AutoConfig.from_pretrained(path).model_type
    if model_type in QWEN2_VL_TYPES:
        return _from_qwen2_vl(path, dtype)
    if model_type not in QWEN2_TYPES:
        raise ValueError(f"{path} is a {model_type!r} checkpoint, not Qwen2-family")
    config = LlavaQwen2Config.from_pretrained(path) if model_type == "llava_qwen2" else None
    if config is None:
        config = LlavaQwen2Config(**AutoConfig.from_pretrained(path).to_dict())
    kwargs = {k: v for k, v in kwargs.items() if v is not None and k != "torch_dtype"}
    model, info = LlavaQwen2ForCausalLM.from_pretrained(
        path, config=config, dtype=dtype, output_loading_info=True, **kwargs
    )
    _check_loading_info(info, path)
    return model


def pick_device_and_dtype(device: str, dtype: "torch.dtype | str | None") -> Tuple[str, torch.dtype]:
    """The host defaults to device='cuda' and float16; on a machine without CUDA that
    cannot run, so fall back to CPU. dtype None or "auto": `deepmolm_plugin.dtypes`
    picks bf16 on CUDA and on CPUs with native bf16, float32 on other CPUs (float16 on
    GPUs without bf16); a name ("float32") or a torch.dtype is kept."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: loading on CPU")
        device = "cpu"
    return device, resolve_dtype(AUTO if dtype is None else dtype, device)


def load_pretrained_model(
    model_path, model_base=None, model_name=None, load_8bit=False, load_4bit=False,
    device_map="auto", device="cuda", use_flash_attn=False, dtype=None, **kwargs,
):
    """The host's `load_pretrained_model` contract for a saved DeepMoLM (llava_qwen2) folder.

    Returns (tokenizer, model, image_processor, context_len). Unlike the host's, it does
    not force float16 and works on CPU; the tower comes from the checkpoint itself. On CPU
    the process keeps freed memory for reuse (`cpu_memory.keep_freed_memory`).
    """
    if load_8bit or load_4bit:
        raise NotImplementedError("8/4-bit loading of DeepMoLM checkpoints is not supported")
    if model_base is not None:
        raise NotImplementedError(
            "model_base (LoRA / projector-only checkpoints on a base LLM) is not supported for "
            "llava_qwen2; save a full checkpoint (train without --lora_enable) and load that"
        )
    device, dtype = pick_device_and_dtype(device, dtype)
    if torch.device(device).type == "cpu":  # inference on CPU: freed activations reused, not re-faulted
        keep_freed_memory()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = load_llm(model_path, dtype=dtype).to(device).eval()
    if tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if im_end is not None and im_end != tokenizer.unk_token_id:
        # ChatML replies end with <|im_end|>: stop there, not only at <|endoftext|>.
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        model.generation_config.eos_token_id = sorted(set(eos + [im_end]))
    tower = model.get_vision_tower()
    image_processor = tower.image_processor if tower is not None else None
    context_len = getattr(model.config, "max_sequence_length", None) or getattr(
        model.config, "max_position_embeddings", 2048
    )
    return tokenizer, model, image_processor, context_len
