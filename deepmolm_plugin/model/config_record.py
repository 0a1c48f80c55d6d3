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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

from ..tensor_files import CheckpointError

RECORD = "deepmolm_saved_settings"
FIELDS = ("fusion_heads", "fusion_layer_norm_eps", "fp_levels", "image_mode", "deepencoder_config")
# DeepEncoderConfig fields that do not change what the tower computes (beyond rounding).
RUNTIME_ENCODER_FIELDS = ("dtype", "gradient_checkpointing", "sam_attention", "extra")
# Recorded since after FIELDS (see the module docstring): null values kept, compared only when recorded.
LATER_FIELDS = ("mm_use_im_start_end", "mm_use_im_patch_token", "image_aspect_ratio")
# The LLM's settings no tensor shape shows (Qwen2Config fields; rope_theta / rope_scaling are
# older transformers' names for rope_parameters): recorded later still, as LATER_FIELDS are.
LLM_FIELDS = ("num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_parameters",
              "rope_theta", "rope_scaling", "hidden_act", "use_sliding_window", "sliding_window",
              "max_window_layers", "layer_types")
RECORDED_LATER = LATER_FIELDS + LLM_FIELDS  # compared only when the record holds them


def settings_of(values: dict) -> dict:
    """The recorded settings among a config's `values` (its to_dict()), as JSON values."""
    record = {name: values[name] for name in FIELDS if values.get(name) is not None}
    record.update({name: values.get(name) for name in RECORDED_LATER})
    encoder = record.get("deepencoder_config")
    if isinstance(encoder, dict):
        record["deepencoder_config"] = encoder_settings(encoder)
    return json.loads(json.dumps(record))  # tuples as lists, as config.json holds them


def encoder_settings(encoder: dict) -> dict:
    """The fields of a tower config (a DeepEncoderConfig's to_dict()) that define what the tower
    computes: all but RUNTIME_ENCODER_FIELDS, as JSON values."""
    return json.loads(json.dumps({k: v for k, v in encoder.items() if k not in RUNTIME_ENCODER_FIELDS}))


def edited_settings(values: dict) -> List[str]:
    """'name now (saved with then)' for each recorded setting that differs from the record
    in a config's `values`; [] when there is no record. RECORDED_LATER fields the record lacks
    (saved before they were recorded) are not compared."""
    saved = values.get(RECORD)
    if not isinstance(saved, dict):
        return []
    now = settings_of(values)
    edits = []
    unrecorded = {name for name in RECORDED_LATER if name not in saved}
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
