"""The settings a saved model was trained with, recorded inside its config.json.

Some settings change what the weights compute but no tensor's shape: the fusion
projector's heads (one width split into 8 or 4 heads), its layer-norm eps, the E3FP levels
of `molecule_fp`, the image mode, the tower's architecture fields (SAM / CLIP heads, norm
eps, windows; its widths do show, as tensor shapes). An edit of one of them in a saved
config.json, taken for a run-time option, loaded without a word and computed something
else with the trained weights. So every config this package writes carries, under
RECORD, those settings' values when it was written; `edited_settings` lists what differs
at load time, and the loader refuses it.
Run-time fields of the tower config (its dtype, gradient checkpointing, attention
implementation) may change freely, and so may `mm_vision_tower` (a hub name repointed to a
local copy of the same tower). A config.json without the record (written before it
existed, or by other code) is not checked.
The prompt and image settings (LATER_FIELDS: the `<im_start>`/`<im_end>` and patch tokens
around the image, the host's `image_aspect_ratio`) joined the record later: an edit of one of
them loaded without a word and changed what the model sees (a prompt with tokens the tokenizer
lacks, another view of a non-square image). They are recorded even when null (absent), and
compared only when the record holds them, so a config.json saved before loads as it did.
The language model's own such settings (LLM_FIELDS: attention and key/value heads, head_dim,
RMS-norm eps, RoPE parameters, activation, sliding window) joined the record after those, in
the same way: 8/4 heads for 4/2 give the same q/k/v shapes, and a config.json merged from the
base Qwen2 release (another rope_theta or eps) loaded without a word and answered otherwise.
They are recorded and compared in one form whatever transformers version wrote the config
(`llm_settings`), so a model saved under transformers 4 loads under 5 and the reverse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from ..tensor_files import CheckpointError

RECORD = "deepmolm_saved_settings"
FIELDS = ("fusion_heads", "fusion_layer_norm_eps", "fp_levels", "image_mode", "deepencoder_config")
# DeepEncoderConfig fields that do not change what the tower computes (beyond rounding).
RUNTIME_ENCODER_FIELDS = ("dtype", "gradient_checkpointing", "sam_attention", "extra")
# Recorded since after FIELDS (see the module docstring): null values kept, compared only when recorded.
LATER_FIELDS = ("mm_use_im_start_end", "mm_use_im_patch_token", "image_aspect_ratio")
# The LLM's settings no tensor shape shows, recorded later still, as LATER_FIELDS are. Recorded
# normalised (`llm_settings`), not as transformers serialises them: transformers 4.x writes
# `rope_theta` / `rope_scaling` and (before 4.53) no `layer_types`, 5.x `rope_parameters` with
# `rope_theta: null`, so a raw record made under one version was "edited" under the other
# (was: those raw fields recorded and compared).
LLM_FIELDS = ("num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_parameters",
              "hidden_act", "sliding_window", "layer_types")
# Every LLM field a record may hold: LLM_FIELDS and the raw ones records saved before held.
RAW_LLM_FIELDS = LLM_FIELDS + ("rope_theta", "rope_scaling", "use_sliding_window", "max_window_layers")
# RoPE types whose parameters include the pretraining length (transformers fills it in from
# max_position_embeddings when absent: standardize_rope_params)
ROPE_TYPES_WITH_LENGTH = ("llama3", "yarn", "longrope")


def settings_of(values: dict) -> dict:
    """The recorded settings among a config's `values` (its to_dict()), as JSON values."""
    record = {name: values[name] for name in FIELDS if values.get(name) is not None}
    record.update({name: values.get(name) for name in LATER_FIELDS})
    record.update(llm_settings(values))
    encoder = record.get("deepencoder_config")
    if isinstance(encoder, dict):
        record["deepencoder_config"] = encoder_settings(encoder)
    return json.loads(json.dumps(record))  # tuples as lists, as config.json holds them


def llm_settings(values: dict, shapes: Optional[dict] = None) -> dict:
    """The LLM_FIELDS of `values` (a Qwen2 config's to_dict(), or a record in the raw form
    of any transformers version, or normalised) in one form whatever wrote them: the
    effective head_dim, RoPE (`rope_parameters`: type, theta and scaling, from
    rope_parameters or else rope_theta / rope_scaling), and per-layer attention types
    (`layer_types`, derived from use_sliding_window / sliding_window / max_window_layers as
    transformers derives them when absent); `sliding_window` only when a layer uses it.
    shapes: the config whose hidden_size, num_hidden_layers and max_position_embeddings
    complete a record (tensor shapes show them; a record does not hold them)."""
    shapes = values if shapes is None else shapes
    heads = values.get("num_attention_heads")
    hidden = shapes.get("hidden_size")
    head_dim = values.get("head_dim") or (hidden // heads if isinstance(hidden, int) and heads else None)
    layer_types = values.get("layer_types") or _derived_layer_types(values, shapes.get("num_hidden_layers"))
    return {"num_attention_heads": heads,
            "num_key_value_heads": values.get("num_key_value_heads") or heads,  # None: as many as heads
            "head_dim": head_dim, "rms_norm_eps": values.get("rms_norm_eps"),
            "rope_parameters": _rope(values, shapes.get("max_position_embeddings")),
            "hidden_act": values.get("hidden_act"),
            "sliding_window": values.get("sliding_window") if "sliding_attention" in (layer_types or ()) else None,
            "layer_types": layer_types}


def _derived_layer_types(values: dict, layers: Optional[int]) -> Optional[list]:
    """transformers' layer_types for a config without them (Qwen2Config: layers from
    max_window_layers on use sliding attention when use_sliding_window is set)."""
    if not isinstance(layers, int):
        return None
    sliding = bool(values.get("use_sliding_window")) and values.get("sliding_window") is not None
    start = values.get("max_window_layers") or 0
    return ["sliding_attention" if sliding and i >= start else "full_attention" for i in range(layers)]


def _rope(values: dict, length: Optional[int]) -> Optional[dict]:
    """The effective RoPE parameters: `rope_parameters` (5.x), else `rope_scaling` (4.x)
    with `rope_theta` beside it; "type" read as "rope_type" (its older name), "default"
    when none is given, and the pretraining length filled in as transformers fills it."""
    given = values.get("rope_parameters") or values.get("rope_scaling") or {}
    if not isinstance(given, dict):
        return given  # not a RoPE dict: compared as it is
    rope = {k: v for k, v in given.items() if k != "type"}
    rope["rope_type"] = given.get("rope_type", given.get("type", "default"))
    if rope.get("rope_theta") is None:
        rope["rope_theta"] = values.get("rope_theta")
    if rope["rope_type"] in ROPE_TYPES_WITH_LENGTH and length is not None:
        rope.setdefault("original_max_position_embeddings", length)
    return rope


def encoder_settings(encoder: dict) -> dict:
    """The fields of a tower config (a DeepEncoderConfig's to_dict()) that define what the tower
    computes: all but RUNTIME_ENCODER_FIELDS, as JSON values."""
    return json.loads(json.dumps({k: v for k, v in encoder.items() if k not in RUNTIME_ENCODER_FIELDS}))


def edited_settings(values: dict) -> List[str]:
    """'name now (saved with then)' for each recorded setting that differs from the record
    in a config's `values`; [] when there is no record. LATER_FIELDS the record lacks, and
    the LLM's fields when it holds none of them (saved before they were recorded), are not
    compared."""
    saved = values.get(RECORD)
    if not isinstance(saved, dict):
        return []
    now = settings_of(values)
    edits = []
    unrecorded = {name for name in LATER_FIELDS if name not in saved}
    if any(name in saved for name in RAW_LLM_FIELDS):
        # both sides normalised: a record saved by another transformers version, or in the
        # raw form recorded before, holds the same settings under other names
        saved = {**{k: v for k, v in saved.items() if k not in RAW_LLM_FIELDS},
                 **json.loads(json.dumps(llm_settings(saved, shapes=values)))}
    else:
        unrecorded |= set(LLM_FIELDS)
    for name in sorted((set(saved) | set(now)) - unrecorded):
        before, after = saved.get(name), now.get(name)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):  # name the tower fields themselves
            edits += [f"{name}.{k} {after.get(k)!r} (saved with {before.get(k)!r})"
                      for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
        else:
            edits.append(f"{name} {after!r} (saved with {before!r})")
    return edits


def check_saved_settings(values: dict, path: str) -> None:
    """CheckpointError naming `path` and each of `edited_settings(values)`: settings no tensor
    shape shows (fusion heads, E3FP levels, the tower's architecture, the LLM's heads, eps, RoPE)
    must be those the
    checkpoint was saved with."""
    edits = edited_settings(values)
    if edits:
        raise CheckpointError(
            f"{path}: {_edited_where(path)}: {'; '.join(edits)}. These settings "
            "define what the trained weights compute (no tensor shape shows the change): restore the saved "
            "values, or train a model with the new ones")


def _edited_where(path: str) -> str:
    """Where the edit is: config.json itself, or, when the file still holds the saved values,
    what was given to from_pretrained (`fusion_heads=1`, a `config=` object): "config.json was
    edited" sent the user to a file that holds the saved values."""
    try:
        on_disk = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a Hub id, a subfolder, an unreadable file: which one cannot be told
        return ("its settings are not those the model was saved with (config.json edited after saving, or other "
                "values given to from_pretrained)")
    if isinstance(on_disk, dict) and not edited_settings(on_disk):
        return "the config or keyword arguments given to from_pretrained change settings the model was saved with"
    return "config.json was edited after the model was saved"
