"""Loading the LLM side: every checkpoint a DeepMoLM user starts from, as LlavaQwen2.

- a plain Qwen2 folder (`model_type: qwen2`): the usual start of training;
- a VILA-style folder with an `llm/` subfolder (what DeepMoLM/VILA released): the LLM is
  `llm/`; `resolve_llm_path` points there;
- an official Qwen2-VL / Qwen2.5-VL checkpoint: the language-model weights are taken out
  (old `model.layers.*` or new `model.language_model.*` names; `visual.*` dropped) and
  the text config becomes a Qwen2 config (M-RoPE with equal t/h/w positions, which is
  all text-only input ever has, is plain RoPE);
- a saved DeepMoLM checkpoint (`model_type: llava_qwen2`), tower and projector included.

Loading is strict: a tensor the model expects but the checkpoint lacks, or one of the wrong
shape, is an error that lists them (transformers would initialise it randomly and only
warn); so are NaN/inf weights and, in a saved DeepMoLM checkpoint, tensors its config.json
builds no place for (a tower or projector the config lost would be dropped), and float
weights stored as integers or booleans (safetensors headers; transformers casts them).
Names under a DDP / torch.compile prefix (`module.`, `_orig_mod.`) are read without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import zipfile
from typing import Dict, Iterator, Optional, Tuple

import torch
from transformers import AutoConfig, AutoTokenizer, Qwen2Config

from .. import usage
from ..checkpoint_config import check_config_fields
from ..cpu_memory import keep_freed_memory
from ..dtypes import AUTO, NAMES, resolve_dtype, trained_dtype
from ..encoder.checkpoint import common_wrapper_prefix
from ..molecule.errors import first_line
from ..tensor_files import (SAFETENSORS_FLOATS, CheckpointError, find_tensor_files, headers_cheap, load_torch_file,
                            missing_index_metadata, open_checkpoint, value_problem)
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
    """A VILA-style folder keeps its LLM (and tokenizer) in `llm/`. VILA's own releases
    also have a top-level config.json (model_type llava_llama, with `llm_cfg`,
    `vision_tower_cfg`...): such a folder was refused as "not Qwen2-family"."""
    import json

    llm = os.path.join(path, "llm")
    if not os.path.isfile(os.path.join(llm, "config.json")):
        return path
    top = os.path.join(path, "config.json")
    if not os.path.isfile(top):
        return llm
    try:
        with open(top, encoding="utf-8") as handle:
            vila = "llm_cfg" in json.load(handle)
    except (OSError, ValueError, TypeError):  # not a readable JSON object: transformers will say so for `path`
        return path
    return llm if vila else path


def read_config(path: str):
    """`path`'s config (AutoConfig); a config.json transformers cannot read (no model_type, an
    unknown one, not JSON, no such folder) is a CheckpointError in one line naming it (was
    AutoConfig's traceback in the chat CLI and model_vqa)."""
    try:
        return AutoConfig.from_pretrained(path)
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{os.path.join(path, 'config.json')}: cannot be read as a model config: "
                              f"{first_line(e)}{usage.typed_elsewhere(path)}") from e


def loaded_config(path: str):
    """The config of the model `path` loads as: its `llm/` one in a VILA-style folder
    (`resolve_llm_path`), else its own. What the loader reads its model type and training
    dtype from, so the launchers read them there too (was: the top-level config for the
    launcher's "auto" line and llm/'s for the loader's, two lines for one choice)."""
    return read_config(resolve_llm_path(path))


def model_type_of(path: str) -> str:
    return loaded_config(path).model_type


def _qwen2_config_from_vl(vl_config) -> Qwen2Config:
    text = vl_config.get_text_config() if hasattr(vl_config, "get_text_config") else vl_config
    fields = {k: getattr(text, k) for k in _TEXT_FIELDS if getattr(text, k, None) is not None}
    rope = getattr(text, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(text, "rope_theta", 1_000_000.0))
    fields["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    fields["tie_word_embeddings"] = getattr(vl_config, "tie_word_embeddings", False)
    return Qwen2Config(**fields)


# Extra tensors some savers write that the model rebuilds itself: rotary inverse frequencies.
HARMLESS_EXTRA = re.compile(r"\.rotary_emb\.inv_freq$")


# The property head's record of its names' order (AuxPropertyHead.names_digest): a checkpoint
# saved before it existed lacks it, and is loaded unchecked.
NAMES_DIGEST = ".names_digest"


def _check_head_names(model, older: bool, path: str) -> None:
    """The auxiliary property head's outputs must be config.json's aux_properties, in order."""
    head = getattr(model.get_model(), "optional_head", None) if hasattr(model, "get_model") else None
    if head is None or not hasattr(head, "names_problem"):
        return
    if older:
        head.saved_before_names()
    problem = head.names_problem()
    if problem:
        raise CheckpointError(f"{path}: {problem}")


def _check_loading_info(info: dict, path: str) -> None:
    missing = list(info.get("missing_keys", []))
    if missing:
        raise CheckpointError(
            f"{path} lacks {len(missing)} tensors the model needs (they would be random): {', '.join(missing)}"
        )
    mismatched = [_shape_note(entry) for entry in info.get("mismatched_keys", [])]
    if mismatched:
        raise CheckpointError(f"{path} has {len(mismatched)} tensors of the wrong shape: {', '.join(mismatched)}")
    unexpected = sorted(k for k in info.get("unexpected_keys", []) if not HARMLESS_EXTRA.search(k))
    if unexpected:
        # Tensors its config.json builds no place for would be dropped silently (transformers
        # only prints a table): a tower or projector a DeepMoLM config lost, a second layer
        # a Qwen2 config.json says is not there, fp8 `weight_scale_inv` scales without a
        # quantization_config (the weights then load unscaled: 448 for 0.07).
        raise CheckpointError(
            f"{path} holds {len(unexpected)} tensors its config.json builds no place for (they would be "
            f"dropped): {', '.join(unexpected)}"
        )


def _shape_note(entry) -> str:
    """transformers' (name, checkpoint shape, model shape) as 'name: checkpoint [..] vs model [..]'."""
    if isinstance(entry, (tuple, list)) and len(entry) == 3:
        name, theirs, ours = entry
        return f"{name}: checkpoint {list(theirs)} vs model {list(ours)}"
    return str(entry)


NAN_TENSORS_SHOWN = 3  # tensors named in the NaN/inf weights error, the rest counted


def _check_finite(model: torch.nn.Module, path: str, prefix: str = "") -> None:
    """NaN/inf weights (a diverged run, a damaged file) make every output NaN: an error naming
    them (`prefix`: where `model` sits in the checkpoint's names)."""
    bad = [f"{prefix}{name} ({problem})" for name, t in model.state_dict().items()
           if (problem := value_problem(t, t, ())) is not None]
    if bad:
        # the first few by name: was every one of them, a line of thousands of characters
        # (tens of kilobytes for a 1.5B model, whose whole LLM a diverged run leaves NaN)
        shown = ", ".join(bad[:NAN_TENSORS_SHOWN]) + (f" and {len(bad) - NAN_TENSORS_SHOWN} more"
                                                     if len(bad) > NAN_TENSORS_SHOWN else "")
        raise CheckpointError(f"{path} has NaN/inf values in {len(bad)} tensors: {shown} (the usual cause: a "
                              "training run that diverged and saved NaN weights; train again from an earlier "
                              "checkpoint or with a lower --learning_rate; else the file is damaged)")


def _stored_float_flags(path: str) -> Dict[str, bool]:
    """{tensor name: is it floating point} for a checkpoint folder's tensor files, from
    safetensors headers and memory-mapped .bin files (no tensor data is read). The files are
    then opened as every loader of ours opens them (`open_checkpoint`): a tensor stored in two
    files, or not in the shard its index names, is a CheckpointError naming it (was:
    transformers loaded whichever copy it read last, without a word, where the tower loader refused)."""
    from safetensors import SafetensorError, safe_open

    flags: Dict[str, bool] = {}
    files = find_tensor_files(path)
    for file in files:
        if file.suffix != ".safetensors":
            # pytorch_model.bin: memory-mapped, so only the dtypes are read (an int64 norm
            # weight of 3s was cast to 3.0 without a word)
            if not zipfile.is_zipfile(file):  # torch's legacy format cannot be memory-mapped: not checked
                continue
            state = load_torch_file(file, mmap=True)
            flags.update({k: v.is_floating_point() for k, v in state.items() if torch.is_tensor(v)})
            continue
        try:
            with safe_open(str(file), framework="pt", device="cpu") as handle:
                for key in handle.keys():
                    flags[key] = handle.get_slice(key).get_dtype().startswith(SAFETENSORS_FLOATS)
        except (SafetensorError, OSError) as e:  # a file cut short: was a bare SafetensorError traceback
            raise CheckpointError(f"{file} cannot be read as safetensors (cut short or damaged?): {e}") from e
    if all(headers_cheap(f) for f in files):  # a big legacy-format .bin would be read whole: left to transformers
        open_checkpoint(path, headers_only=True)  # headers again: the duplicate and shard-index rules
    # transformers' from_pretrained reads index["metadata"], which our readers do without
    # (was: a KeyError 'metadata' traceback from load_llm and load_causal_lm_checked)
    missing_index_metadata(path)
    return flags


def _check_stored_dtypes(is_float: Dict[str, bool], model: torch.nn.Module, path: str) -> None:
    """A float weight stored as integers or booleans is a damaged or foreign file: transformers
    and load_state_dict cast it to float without a word (a weight of ones, zeros...)."""
    expected = model.state_dict()
    bad = sorted(k for k, flt in is_float.items() if not flt and k in expected and expected[k].is_floating_point())
    if bad:
        raise CheckpointError(f"{path} stores {len(bad)} floating-point weights as integers or booleans: {', '.join(bad)}")


def _wrapper_prefix(names, path: str) -> str:
    """DDP (`module.`) and torch.compile (`_orig_mod.`) saves put a prefix before every name;
    they are read without it, as the tower loader does (transformers reported every tensor missing)."""
    prefix = common_wrapper_prefix(list(names))
    if prefix:
        logger.warning("%s: tensor names carry the wrapper prefix %r (a DDP / torch.compile save); read without it",
                       path, prefix)
    return prefix


def _qwen2_vl_lm_name(key: str) -> Optional[str]:
    """A Qwen2-VL tensor name (wrapper prefix removed) -> its Qwen2 name, or None for a
    tensor not of the language model (the vision tower's). New names hold the LM under
    `model.language_model.`, old ones under `model.`."""
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model."):]
    if key.startswith(("model.layers.", "model.embed_tokens.", "model.norm.", "lm_head.")):
        return key
    return None


def _from_qwen2_vl(path: str, dtype) -> LlavaQwen2ForCausalLM:
    """The language model of a Qwen2-VL checkpoint, checked as strictly as a Qwen2 folder:
    wrapper prefixes, tensor shapes, integer-stored floats, NaN/inf values (also those the
    requested dtype makes: 1e5 in float16)."""
    config = LlavaQwen2Config(**_qwen2_config_from_vl(read_config(path)).to_dict())
    store = open_checkpoint(path)
    prefix = _wrapper_prefix(list(store), path)
    state, stored_as, dropped = {}, {}, 0
    for stored in store:
        key = _qwen2_vl_lm_name(stored[len(prefix):])
        if key is None:
            dropped += 1  # visual.* / model.visual.*: the Qwen2-VL vision tower
            continue
        if key in stored_as:  # was: the copy read last kept, the other dropped without a word
            raise CheckpointError(f"Qwen2-VL checkpoint {path} holds language-model tensor {key} twice, as "
                                  f"{stored_as[key]} and as {stored} (old and new names; a half-converted file?): "
                                  "keep one of them")
        stored_as[key], state[key] = stored, store[stored]
    model = LlavaQwen2ForCausalLM(config)
    expected = model.state_dict()
    wrong = [f"{k}: checkpoint {list(v.shape)} vs model {list(expected[k].shape)}"
             for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise CheckpointError(f"Qwen2-VL checkpoint {path} has {len(wrong)} tensors of the wrong shape: "
                              f"{', '.join(wrong)}")
    _check_stored_dtypes({k: v.is_floating_point() for k, v in state.items()}, model, path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if config.tie_word_embeddings:
        missing = [k for k in missing if k != "lm_head.weight"]
        model.tie_weights()
    if missing or unexpected:
        raise CheckpointError(
            f"Qwen2-VL checkpoint {path}: language-model tensors missing {missing}, unexpected {unexpected}"
        )
    logger.info("took the language model out of Qwen2-VL checkpoint %s (%d vision tensors dropped)", path, dropped)
    dtype = resolve_dtype(dtype, "cpu")  # a name ("bfloat16"), as the Qwen2 path takes it
    model = model.to(dtype) if dtype is not None else model
    _check_finite(model, path)
    return model


def load_llm(path: str, dtype: Optional[torch.dtype] = None, **kwargs) -> LlavaQwen2ForCausalLM:
    """Any supported Qwen2-family checkpoint folder -> LlavaQwen2ForCausalLM, strictly."""
    path = resolve_llm_path(path)
    model_type = read_config(path).model_type
    if model_type in QWEN2_VL_TYPES:
        return _from_qwen2_vl(path, dtype)
    if model_type not in QWEN2_TYPES:
        raise ValueError(f"{path} is a {model_type!r} checkpoint, not Qwen2-family")
    config = LlavaQwen2Config.from_pretrained(path) if model_type == "llava_qwen2" else None
    if config is None:
        config = LlavaQwen2Config(**read_config(path).to_dict())
    kwargs = {k: v for k, v in kwargs.items() if v is not None and k != "torch_dtype"}
    is_float = _stored_float_flags(path) if os.path.isdir(path) else {}
    prefix = _wrapper_prefix(is_float, path)
    if prefix:
        kwargs["key_mapping"] = {"^" + re.escape(prefix): ""}
        is_float = {k[len(prefix):]: v for k, v in is_float.items()}
    try:
        # ignore_mismatched_sizes: the wrong shapes come back in `info`, and the error below
        # names them (transformers' own only points at a log table).
        model, info = LlavaQwen2ForCausalLM.from_pretrained(
            path, config=config, dtype=dtype, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
        )
    except CheckpointError:
        raise
    except (ValueError, OSError) as e:  # the host's builders ("Unknown projector type: x"), tower settings,
        # a deepencoder_config file the config names that is gone, a Hub tower (`mm_vision_tower`
        # openai/clip-...) that is neither cached nor reachable...
        raise CheckpointError(f"{path}: cannot build the model its config.json describes: {e}") from e
    older = [k for k in info.get("missing_keys", []) if k.endswith(NAMES_DIGEST)]
    info = {**info, "missing_keys": [k for k in info.get("missing_keys", []) if k not in older]}
    _check_loading_info(info, path)
    _check_head_names(model, bool(older), path)
    # The settings recorded in a saved config.json were checked by from_pretrained itself
    # (config_record.check_saved_settings), once the model was built and before its weights were read.
    _check_stored_dtypes(is_float, model, path)
    _check_finite(model, path)
    return model


def load_causal_lm_checked(path: str, dtype: Optional[torch.dtype] = None) -> torch.nn.Module:
    """Any `AutoModelForCausalLM` folder, held to `load_llm`'s rules: tensors its config.json
    has no place for, lacks or shapes otherwise, tensors stored twice or outside the shard its
    index names, float weights stored as integers, and NaN/inf weights are a CheckpointError
    naming them (transformers only printed a table: a 2-layer checkpoint under a config
    saying 3 layers got a random third layer, and the kflm2 run went on to exit 0)."""
    from transformers import AutoModelForCausalLM

    # the stored files as load_llm reads them: a tensor in two shards, or not in the one the
    # index names, and float weights stored as integers are refused (was: loaded without a word)
    is_float = _stored_float_flags(path) if os.path.isdir(path) else {}
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype or torch.float32, output_loading_info=True, ignore_mismatched_sizes=True)
    except (ValueError, OSError, RuntimeError) as e:  # no weight file, a config transformers cannot build
        raise CheckpointError(f"{path}: cannot load a causal LM from it: {first_line(e)}") from e
    _check_loading_info(info, path)
    _check_stored_dtypes(is_float, model, path)
    _check_finite(model, path)
    return model


def pick_device_and_dtype(device: str, dtype: "torch.dtype | str | None",
                          trained: Optional[torch.dtype] = None) -> Tuple[str, torch.dtype]:
    """The host defaults to device='cuda' and float16; on a machine without CUDA that
    cannot run, so fall back to CPU. dtype None or "auto": `deepmolm_plugin.dtypes`
    picks bf16 on CUDA and on CPUs with native bf16, float32 on other CPUs (float16 on
    GPUs without bf16), naming `trained` (the model's training dtype) when it differs; a
    name ("float32") or a torch.dtype is kept."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: loading on CPU")
        device = "cpu"
    return device, resolve_dtype(AUTO if dtype is None else dtype, device, trained)


# The launchers' --dtype choices: "auto" (deepmolm_plugin.dtypes) or a name, used as given.
DTYPE_CHOICES = (AUTO, *NAMES)
# What `load_pretrained_model` loads in when its caller passes no dtype: the host's chat CLI
# and model_vqa call it as load_pretrained_model(model_path, model_base, model_name, ...),
# with no way to pass one; `loading_in_dtype` sets it for the duration of their run.
_launcher_dtype: Optional[str] = None


@contextlib.contextmanager
def loading_in_dtype(dtype: Optional[str]) -> Iterator[None]:
    """While active, `load_pretrained_model` called without a dtype loads in `dtype` (a
    --dtype choice; None or "auto": `deepmolm_plugin.dtypes` picks). Was: always "auto",
    so a CPU with native bf16 ran an fp32-trained model in bf16, with no way to ask for fp32."""
    global _launcher_dtype
    if dtype is not None and dtype not in DTYPE_CHOICES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {list(DTYPE_CHOICES)}")
    before, _launcher_dtype = _launcher_dtype, dtype
    try:
        yield
    finally:
        _launcher_dtype = before


@contextlib.contextmanager
def torch_init_kept() -> Iterator[None]:
    """torch.nn.Linear's and LayerNorm's `reset_parameters` as they were, on leaving. The host's
    eval_model and chat CLI call llava.utils.disable_torch_init(), which makes both a no-op
    for the rest of the process (the weights are loaded anyway): a Python session that ran
    model_vqa's or the chat CLI's main and then built a model got uninitialised weights
    (NaN losses, in this project's own test workers)."""
    kept = {layer: layer.__dict__["reset_parameters"] for layer in (torch.nn.Linear, torch.nn.LayerNorm)}
    try:
        yield
    finally:
        for layer, method in kept.items():
            layer.reset_parameters = method


def load_dtype_name(dtype: Optional[str], device: str = "cuda", trained: Optional[torch.dtype] = None) -> str:
    """The dtype (its name: "bfloat16") `load_pretrained_model` will load in for a --dtype
    choice on `device` (the host's "cuda" falls back to the CPU without CUDA, as the loader
    does). "auto" is resolved, which says the choice once on stderr, with `trained` (the
    model's training dtype) where it differs: model_vqa records the name in its run
    settings, so answers made in bf16 are not kept by a --resume in fp32."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        device = "cpu"  # pick_device_and_dtype says so when the model loads
    return str(resolve_dtype(AUTO if dtype is None else dtype, device, trained)).replace("torch.", "")


def launcher_dtype(dtype: str, model_type: str, device: str = "cuda", config=None) -> Optional[str]:
    """A launcher's --dtype for a checkpoint of `model_type`: the name of the dtype our loader
    will load it in ("auto" resolved, and said once, naming the dtype `config` records the
    model was trained in where auto chose another; `load_dtype_name`), or None for a model
    the host's own loader takes (it picks float16 itself). An explicit dtype there is a
    usage.UsageError: it would be ignored."""
    if model_type in QWEN2_TYPES + QWEN2_VL_TYPES:
        return load_dtype_name(dtype, device, trained_dtype(config) if config is not None else None)
    if dtype not in (None, AUTO):
        raise usage.UsageError(f"--dtype {dtype}: only DeepMoLM / Qwen2-family checkpoints load in a chosen dtype; "
                               f"this {model_type!r} model is loaded by the host's loader, which picks its own "
                               "(leave --dtype out)")
    return None


def unsupported_load_options(model_base=None, load_8bit=False, load_4bit=False) -> Optional[str]:
    """Why `load_pretrained_model` cannot honour these host options, or None. The launchers
    ask before anything loads, so the option is refused in a line, not ignored or a traceback."""
    if load_8bit or load_4bit:
        return "8/4-bit loading of DeepMoLM checkpoints is not supported"
    if model_base is not None:
        return ("model_base (LoRA / projector-only checkpoints on a base LLM) is not supported for "
                "llava_qwen2; save a full checkpoint (train without --lora_enable) and load that")
    return None


def load_tokenizer(model_path: str):
    """The checkpoint's tokenizer; a folder without a usable one is an error naming it
    (transformers says it cannot convert a slow tokenizer, or that sentencepiece is missing)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as e:
        raise CheckpointError(  # first_line: some have no message (was an IndexError there)
            f"{model_path}: no usable tokenizer (tokenizer.json + tokenizer_config.json, as the "
            f"training run saved them): {first_line(e)}"
        ) from e
    check_tokenizer_vocabulary(tokenizer, model_path)
    # The model refuses a prompt past its context in its own words (check_prompt_fits, before
    # anything is indexed); transformers' "Token indices sequence length is longer than ...
    # will result in indexing errors", printed first when the chat tokenised a long prompt,
    # said the opposite. Marked as already said, as transformers does after the first time.
    tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    return tokenizer


# Text a tokenizer with a vocabulary turns into ordinary tokens: a SMILES and a word.
VOCABULARY_PROBE = "CC(=O)O water"


def check_tokenizer_vocabulary(tokenizer, path: str) -> None:
    """A tokenizer that makes no ordinary token of VOCABULARY_PROBE (nothing, or only
    special or unknown ids) has no vocabulary: its files (tokenizer.json, or vocab.json +
    merges.txt) are missing or empty, as after a copy that left them out. A CheckpointError
    naming the folder and, where they are missing, those files (was: a 3-token Qwen2
    tokenizer that made every prompt a few special ids; eval wrote empty answers and training
    ran on nothing, both exit 0; then every added token was taken for a special one, so a
    tokenizer whose vocabulary was registered with add_tokens was refused as having none).
    No rule on a tokenizer far smaller than the embedding table: Qwen2 pads its table, and a
    tokenizer from another model of similar size would pass one anyway."""
    ids = tokenizer.encode(VOCABULARY_PROBE, add_special_tokens=False)
    special = set(tokenizer.all_special_ids) | {tokenizer.unk_token_id}
    if any(i not in special for i in ids):
        return
    made = f"only special tokens or the unknown token (ids {ids})" if ids else "no token at all"
    specials = _special_token_count(tokenizer)
    # said only when so (was said of every added token, special or not)
    holds = f"; it holds only its {specials} special token{'s' if specials != 1 else ''}" if (
        specials == len(tokenizer)) else ""
    raise CheckpointError(
        f"{path}: no tokenizer vocabulary ({type(tokenizer).__name__}, {_vocabulary_files_state(tokenizer, path)}): "
        f"its tokenizer makes no tokens of a SMILES or any other text ({VOCABULARY_PROBE!r} gives {made}){holds}; "
        "copy tokenizer.json from the model this one was saved from")


def _special_token_count(tokenizer) -> int:
    """How many of the tokenizer's tokens are special ones (its named special tokens, and
    added tokens marked special; not those added with add_tokens, which are ordinary)."""
    marked = {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    special = marked | set(tokenizer.all_special_tokens)
    return sum(token in special for token in tokenizer.get_vocab())


def _vocabulary_files_state(tokenizer, path: str) -> str:
    """Which of the tokenizer's vocabulary files are missing from `path` or, when none is,
    which hold no vocabulary: a tokenizer.json present is the one the vocabulary is read from,
    so the slow tokenizer's files beside it are not named missing."""
    names = list(dict.fromkeys(getattr(type(tokenizer), "vocab_files_names", {}).values()))
    if "tokenizer.json" not in names:
        names.append("tokenizer.json")
    present = [f for f in names if os.path.isfile(os.path.join(path, f))]
    if "tokenizer.json" in present:
        return "its tokenizer.json holds no vocabulary"
    missing = [f for f in names if f not in present]
    if not present:
        return f"{' / '.join(missing)} missing"
    return f"{' / '.join(missing)} missing; {' / '.join(present)} hold no vocabulary"


def check_launcher_tokenizer(model_path: Optional[str], option: str) -> None:
    """A launcher's model folder (`option`: --model_name_or_path) must hold a tokenizer with a
    vocabulary (`check_tokenizer_vocabulary`): a usage.UsageError naming the option. A Hub
    name (no such folder) is left to the host."""
    if not model_path or not os.path.isdir(os.path.expanduser(model_path)):
        return
    try:
        load_tokenizer(os.path.expanduser(model_path))
    except CheckpointError as e:
        raise usage.UsageError(f"{option} {e}") from e


def check_tokenizer_fits(tokenizer, rows: Optional[int], path: str) -> None:
    """A tokenizer with more tokens than the model's embedding table has rows (tokenizer files
    copied from another model) is a CheckpointError: its extra ids were an IndexError at the
    first question using one (a device-side assert on CUDA), and model_vqa stopped the whole
    batch. Fewer tokens than rows is normal: Qwen2 pads its table (vocab_size 151936, more ids than its tokenizer has)."""
    if isinstance(rows, int) and len(tokenizer) > rows:
        raise CheckpointError(
            f"{path}: its tokenizer has {len(tokenizer)} tokens but the model's embedding table has {rows} rows "
            f"(vocab_size): ids {rows} and up have no embedding; use the tokenizer files the model was saved with")


def _config_vocab_size(config) -> Optional[int]:
    """The embedding rows a config builds (a Qwen2-VL config keeps them in its text config)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(text, "vocab_size", None)


def load_pretrained_model(
    model_path, model_base=None, model_name=None, load_8bit=False, load_4bit=False,
    device_map="auto", device="cuda", use_flash_attn=False, dtype=None, **kwargs,
):
    """The host's `load_pretrained_model` contract for a saved DeepMoLM (llava_qwen2) folder.

    Returns (tokenizer, model, image_processor, context_len). Unlike the host's, it does
    not force float16 and works on CPU; the tower comes from the checkpoint itself. On CPU
    the process keeps freed memory for reuse (`cpu_memory.keep_freed_memory`).
    """
    unsupported = unsupported_load_options(model_base, load_8bit, load_4bit)
    if unsupported:
        raise NotImplementedError(unsupported)
    config = loaded_config(model_path)
    # no dtype from the caller (the host's launchers pass none): the launcher's --dtype (loading_in_dtype);
    # "auto"'s line names the dtype the model was trained in where it differs (said once: the launcher's
    # own `launcher_dtype` line is the same)
    device, dtype = pick_device_and_dtype(device, _launcher_dtype if dtype is None else dtype, trained_dtype(config))
    if torch.device(device).type == "cpu":  # inference on CPU: freed activations reused, not re-faulted
        keep_freed_memory()
    try:  # the kinds of its fields, as the chat CLI, model_vqa and the GUI check them up front
        check_config_fields(config.to_dict(), resolve_llm_path(model_path))
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    tokenizer = load_tokenizer(resolve_llm_path(model_path))  # beside the model's config (was: the top folder's)
    check_tokenizer_fits(tokenizer, _config_vocab_size(config), model_path)  # before minutes of loading
    model = load_llm(model_path, dtype=dtype).to(device).eval()
    check_tokenizer_fits(tokenizer, model.get_input_embeddings().num_embeddings, model_path)  # the table itself
    if tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if im_end is not None and im_end != tokenizer.unk_token_id:
        # ChatML replies end with <|im_end|>: stop there, not only at <|endoftext|>.
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        model.generation_config.eos_token_id = sorted(set(eos + [im_end]))
    tower = model.get_vision_tower()
    # from_pretrained cast the tower to `dtype` on the CPU already, where the tower keeps float16 as
    # float32 (DeepEncoderVisionTower.to); on `device` float16 may apply now.
    if model.cast_vision_tower(dtype):
        # A tower weight finite in float32 can overflow to inf in float16: checked again once
        # cast (the rest was checked by load_llm, in `dtype`).
        where = next(name for name, module in model.named_modules() if module is tower)
        _check_finite(tower, model_path, prefix=f"{where}.")
    image_processor = tower.image_processor if tower is not None else None
    context_len = getattr(model.config, "max_sequence_length", None) or getattr(
        model.config, "max_position_embeddings", 2048
    )
    return tokenizer, model, image_processor, context_len
