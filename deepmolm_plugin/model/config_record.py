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
"""

from __future__ import annotations

import json
from typing import List

RECORD = "deepmolm_saved_settings"
FIELDS = ("fusion_heads", "fusion_layer_norm_eps", "fp_levels", "image_mode", "deepencoder_config")
# DeepEncoderConfig fields that do not change what the tower computes (beyond rounding).
RUNTIME_ENCODER_FIELDS = ("dtype", "gradient_checkpointing", "sam_attention", "extra")


def settings_of(values: dict) -> dict:
    """The recorded settings among a config's `values` (its to_dict()), as JSON values."""
    record = {name: values[name] for name in FIELDS if values.get(name) is not None}
    encoder = record.get("deepencoder_config")
    if isinstance(encoder, dict):
        record["deepencoder_config"] = {k: v for k, v in encoder.items() if k not in RUNTIME_ENCODER_FIELDS}
    return json.loads(json.dumps(record))  # tuples as lists, as config.json holds them


def edited_settings(values: dict) -> List[str]:
    """'name now (saved with then)' for each recorded setting that differs from the record
    in a config's `values`; [] when there is no record."""
    saved = values.get(RECORD)
    if not isinstance(saved, dict):
        return []
    now = settings_of(values)
    edits = []
    for name in sorted(set(saved) | set(now)):
        before, after = saved.get(name), now.get(name)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):  # name the tower fields themselves
            edits += [f"{name}.{k} {after.get(k)!r} (saved with {before.get(k)!r})"
                      for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
        else:
            edits.append(f"{name} {after!r} (saved with {before!r})")
    return edits
