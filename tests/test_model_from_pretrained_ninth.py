"""LlavaQwen2ForCausalLM's own from_pretrained and save_pretrained, ninth sweep (the notebook
way in: the class or AutoModelForCausalLM, not our loaders).

1. The record of saved settings (`deepmolm_saved_settings`, model/config_record.py) was checked
   by load_llm / load_pretrained_model only: a config.json edited after saving (fusion_heads,
   the tower's clip_heads) loaded through from_pretrained as another model without a word.
2. A tower configuration or image mode edited on a built model was saved without a word, and
   the record written from the edited values: it reloaded as another tower.
3. from_pretrained(dtype=bfloat16) left the DeepEncoder tower in float32 beside a bf16 LLM.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import tiny_encoder_config

import deepmolm_plugin
from deepmolm_plugin.model import config_record
from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2Config, LlavaQwen2ForCausalLM
from deepmolm_plugin.model.loading import load_llm
from deepmolm_plugin.tensor_files import CheckpointError

deepmolm_plugin.register()


def _model(**overrides):
    """A tiny llava_qwen2 (1-layer Qwen2, tiny DeepEncoder, 2-head fusion projector), seeded, eval mode."""
    fields = dict(vocab_size=900, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                  intermediate_size=64, max_position_embeddings=512, mm_vision_tower="deepencoder",
                  deepencoder_config=tiny_encoder_config().to_dict(), vision_tower_weights="random",
                  mm_projector_type="fusion", mm_hidden_size=64, fp_bits=64, fp_levels=4, fusion_heads=2,
                  image_mode="base")
    torch.manual_seed(0)
    return LlavaQwen2ForCausalLM(LlavaQwen2Config(**{**fields, **overrides})).eval()


IMAGE = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
FP = torch.randint(0, 64, (1, 5, 4), generator=torch.Generator().manual_seed(2))


def _features(model) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_images(IMAGE.to(model.dtype), FP)[0].float()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(folder of a saved tiny model, its image-token features)."""
    model = _model()
    path = tmp_path_factory.mktemp("saved") / "model"
    model.save_pretrained(str(path))
    return path, _features(model)


def _edited(saved, dst, edit):
    """A copy of the saved folder whose config.json `edit` changed (in place)."""
    shutil.copytree(saved[0], dst)
    config = json.loads((dst / "config.json").read_text())
    edit(config)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def _heads_and_clip(config):
    config["fusion_heads"] = 1
    config["deepencoder_config"]["clip_heads"] = 1


LOADERS = {
    "class": lambda path, **kw: LlavaQwen2ForCausalLM.from_pretrained(str(path), **kw),
    "auto": lambda path, **kw: AutoModelForCausalLM.from_pretrained(str(path), **kw),
    "load_llm": lambda path, **kw: load_llm(str(path), **kw),
}


# --- 1. the record, checked by from_pretrained itself ---------------------------------------------
@pytest.mark.parametrize("loader", LOADERS)
def test_every_way_in_refuses_a_config_json_edited_after_saving_in_the_same_words(saved, tmp_path, loader):
    path = _edited(saved, tmp_path / "edited", _heads_and_clip)
    # was: the class and AutoModelForCausalLM loaded a 1-head projector and a 1-head CLIP (features 0.04 off)
    expected = (f"{path}: config.json was edited after the model was saved: deepencoder_config.clip_heads 1 "
                "(saved with 2); fusion_heads 1 (saved with 2). These settings define what the trained weights "
                "compute (no tensor shape shows the change): restore the saved values, or train a model with the "
                "new ones")
    with pytest.raises(CheckpointError, match=f"^{re.escape(expected)}$"):
        LOADERS[loader](path)


def test_load_llm_checks_the_record_once(saved, monkeypatch):
    calls = []
    real = config_record.check_saved_settings
    monkeypatch.setattr(config_record, "check_saved_settings", lambda *a: calls.append(a[1]) or real(*a))
    torch.testing.assert_close(_features(load_llm(str(saved[0]))), saved[1], rtol=0, atol=0)
    assert calls == [str(saved[0])]  # from_pretrained's check; load_llm no longer has its own


def test_a_keyword_override_of_a_recorded_setting_is_an_edit(saved):
    # transformers sets config fields from keywords: fusion_heads=1 built a 1-head projector on 2-head weights
    # (the file holds the saved values: the message no longer sends the user to edit config.json back)
    with pytest.raises(CheckpointError, match=r"the config or keyword arguments given to from_pretrained change "
                                              r"settings the model was saved with: fusion_heads 1 \(saved with 2\)\."):
        LlavaQwen2ForCausalLM.from_pretrained(str(saved[0]), fusion_heads=1)


def test_a_config_object_given_is_checked_and_its_record_can_be_dropped_on_purpose(saved, tmp_path):
    config = LlavaQwen2Config.from_pretrained(str(saved[0]))
    torch.testing.assert_close(_features(LlavaQwen2ForCausalLM.from_pretrained(str(saved[0]), config=config)),
                               saved[1], rtol=0, atol=0)
    config.fusion_heads = 1
    with pytest.raises(CheckpointError, match=r"fusion_heads 1 \(saved with 2\)"):
        LlavaQwen2ForCausalLM.from_pretrained(str(saved[0]), config=config)
    # on purpose (an ablation): without the record the config is not checked, and a save records the new values
    del config.deepmolm_saved_settings
    ablation = LlavaQwen2ForCausalLM.from_pretrained(str(saved[0]), config=config)
    assert ablation.get_model().mm_projector.config.num_heads == 1
    ablation.save_pretrained(str(tmp_path / "ablation"))
    assert json.loads((tmp_path / "ablation" / "config.json").read_text())[config_record.RECORD]["fusion_heads"] == 1
    torch.testing.assert_close(_features(LlavaQwen2ForCausalLM.from_pretrained(str(tmp_path / "ablation"))),
                               _features(ablation), rtol=0, atol=0)


def test_run_time_tower_fields_and_the_training_ways_in_still_load(saved, tmp_path):
    runtime = _edited(saved, tmp_path / "runtime",
                      lambda c: c["deepencoder_config"].update(gradient_checkpointing=True, sam_attention="eager"))
    torch.testing.assert_close(_features(LlavaQwen2ForCausalLM.from_pretrained(str(runtime))), saved[1])
    # train.py's from_pretrained (patches.model_dispatch): a plain Qwen2 folder (no record), and a saved
    # DeepMoLM model as stage 2 loads a stage-1 output
    from tiny_models import make_tiny_qwen2

    from deepmolm_plugin.patches.model_dispatch import LlavaForCausalLMByType

    make_tiny_qwen2(tmp_path / "qwen2", hidden_size=32, layers=1, heads=2, kv_heads=1, intermediate=64)
    assert LlavaForCausalLMByType.from_pretrained(str(tmp_path / "qwen2"), torch_dtype=None).get_vision_tower() is None
    stage2 = LlavaForCausalLMByType.from_pretrained(str(saved[0]), torch_dtype=torch.bfloat16)
    assert stage2.get_vision_tower().dtype == torch.bfloat16


# --- 2. a built model's tower configuration against the tower built ---------------------------------
def test_saving_a_tower_config_edited_after_the_tower_was_built_is_refused(tmp_path):
    model = _model()
    built = dict(model.config.deepencoder_config)
    model.config.deepencoder_config = dict(built, clip_heads=1, clip_layer_norm_eps=1e-2)
    # was: saved; it reloaded (from_pretrained and load_llm alike) with a 1-head CLIP, features 0.048 off
    with pytest.raises(ValueError, match=re.escape(
            "model.config has deepencoder_config.clip_heads=1 (the vision tower was built with 2), "
            "deepencoder_config.clip_layer_norm_eps=0.01 (the vision tower was built with 1e-05): the saved model "
            "would reload as another vision tower; set these back, or rebuild the model from the edited config")):
        model.save_pretrained(str(tmp_path / "edited"))
    assert not (tmp_path / "edited").exists()
    model.config.deepencoder_config = built
    model.save_pretrained(str(tmp_path / "kept"))
    torch.testing.assert_close(_features(load_llm(str(tmp_path / "kept"))), _features(model), rtol=0, atol=0)


def test_saving_an_image_mode_edited_after_the_tower_was_built_is_refused(tmp_path):
    model = _model()
    model.config.image_mode = "tiles"
    with pytest.raises(ValueError, match=r"image_mode='tiles' \(the vision tower was built with 'base'\): the saved "
                                         r"model would reload as another vision tower"):
        model.save_pretrained(str(tmp_path / "edited"))
    model.config.image_mode = None  # the tower's default, "base": what it was built with
    model.save_pretrained(str(tmp_path / "kept"))


def test_projector_and_tower_edits_are_listed_together(tmp_path):
    model = _model()
    model.config.fusion_heads = 1
    model.config.deepencoder_config = dict(model.config.deepencoder_config, sam_heads=1)
    with pytest.raises(ValueError, match=r"fusion_heads=1 \(the projector was built with 2\), "
                                         r"deepencoder_config\.sam_heads=1 \(the vision tower was built with 2\): "
                                         r"the saved model would reload as another projector and vision tower;"):
        model.save_pretrained(str(tmp_path / "edited"))


def test_run_time_tower_fields_may_differ_at_save(tmp_path):
    model = _model()
    model.config.deepencoder_config = dict(model.config.deepencoder_config, gradient_checkpointing=True,
                                           sam_attention="eager", extra={"note": "ablation"})
    model.save_pretrained(str(tmp_path / "runtime"))  # they change no weight's meaning
    torch.testing.assert_close(_features(LlavaQwen2ForCausalLM.from_pretrained(str(tmp_path / "runtime"))),
                               _features(model))


# --- 3. the requested dtype reaches the tower ------------------------------------------------------
@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, "bfloat16"])
def test_from_pretrained_casts_the_tower_to_the_requested_dtype(saved, keyword, dtype):
    model = LlavaQwen2ForCausalLM.from_pretrained(str(saved[0]), **{keyword: dtype})
    tower = model.get_vision_tower()
    # was: LLM and projector bf16, the tower float32
    assert model.dtype == tower.dtype == next(model.get_model().mm_projector.parameters()).dtype == torch.bfloat16
    assert not any(p.requires_grad for p in tower.parameters())  # frozen again, as before


def test_auto_is_what_transformers_resolves_and_no_request_keeps_the_towers_own(tmp_path):
    model = _model().to(torch.bfloat16)
    model.save_pretrained(str(tmp_path / "bf16"))
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    auto = LlavaQwen2ForCausalLM.from_pretrained(str(tmp_path / "bf16"), dtype="auto")
    assert auto.dtype == auto.get_vision_tower().dtype == torch.bfloat16
    # nothing asked: the tower is built in its own config's dtype (float32), as before
    assert LlavaQwen2ForCausalLM.from_pretrained(str(tmp_path / "bf16")).get_vision_tower().dtype == torch.float32


def test_float16_on_the_cpu_leaves_the_tower_in_float32_and_load_llm_casts_too(saved):
    half = LlavaQwen2ForCausalLM.from_pretrained(str(saved[0]), dtype=torch.float16)
    # DeepEncoderVisionTower.to keeps float16 on the CPU as float32 (slow there, and less accurate)
    assert (half.dtype, half.get_vision_tower().dtype) == (torch.float16, torch.float32)
    assert load_llm(str(saved[0]), dtype=torch.bfloat16).get_vision_tower().dtype == torch.bfloat16
