"""A --deepencoder_config beside a saved multimodal model: its tower is built from the saved
config.json, so runtime fields given on the command line (the tiles, the attention kernel,
checkpointing) were silently not used; only the network's fields were compared."""

from __future__ import annotations

import json

import pytest

from test_hostile_training_third import DEEPMOLM, checked, saved_model  # noqa: F401

from deepmolm_plugin import usage
from deepmolm_plugin.encoder.presets import encoder_config


@pytest.mark.parametrize("field, value", [("tile_size", 128), ("sam_attention", "pieces"),
                                          ("gradient_checkpointing", True)])
def test_a_runtime_field_the_saved_tower_keeps_is_refused_naming_it(tmp_path, field, value):
    tiny = encoder_config("tiny").to_dict()
    model = saved_model(tmp_path / "model", deepencoder_config=tiny)
    same = tmp_path / "same.json"
    same.write_text(json.dumps(tiny))
    args = [*DEEPMOLM, "--model_name_or_path", str(model), "--fusion_heads", "2", "--deepencoder_config"]
    checked(tmp_path, *args, str(same))  # the saved configuration itself: fine
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**tiny, field: value}))
    with pytest.raises(usage.UsageError, match=rf"--deepencoder_config {field}={value!r} \(the checkpoint's tower "
                                               rf"runs with {tiny[field]!r}; change it in its config.json"):
        checked(tmp_path, *args, str(other))
