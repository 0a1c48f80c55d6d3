"""The KFLM2 head's normalisation statistics under a cast of the model, seventeenth sweep.

`count`, `mean` and `m2` are float64 buffers. Loading in bf16 (`load_llm(dtype=...)`) kept
them so, but casting afterwards (`from_pretrained(p).to(torch.bfloat16)`, `.half()`) cast
them with the weights: an MW mean of 305.2 became 306.0 and every prediction was 0.8 Da off
without a word; float16 turned a statistic above 65504 into inf. They now stay float64
whatever dtype the head is cast to, and still follow a device move (AuxPropertyHead._apply).
"""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem

from conftest import tiny_encoder_config

import deepmolm_plugin
from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2Config, LlavaQwen2ForCausalLM
from deepmolm_plugin.model.loading import load_llm
from deepmolm_plugin.property.aux_head import AuxPropertyHead
from deepmolm_plugin.property.features import mol_to_graph

deepmolm_plugin.register()

STATS = ("count", "mean", "m2")
# MW near 305 (bf16 steps are 2 there: 305.2 -> 306.0); "big" above float16's largest value, 65504
PROPERTIES = [{"MW": 300.7 + i, "big": 70000.3 + 7 * i} for i in range(10)]


def _fitted_head() -> AuxPropertyHead:
    torch.manual_seed(0)
    head = AuxPropertyHead(16, ["MW", "big"], hidden=8, depth=2)
    head.fit_normalisation(PROPERTIES, [f"r{i}" for i in range(10)])
    return head


CASTS = {
    "to(bfloat16)": (lambda h: h.to(torch.bfloat16), torch.bfloat16),
    "half()": (lambda h: h.half(), torch.float16),
    "to(dtype=float16)": (lambda h: h.to(dtype=torch.float16), torch.float16),
    "bfloat16()": (lambda h: h.bfloat16(), torch.bfloat16),
}


@pytest.mark.parametrize("cast", list(CASTS))
def test_a_cast_keeps_the_statistics_float64_and_exact(cast):
    reference = _fitted_head()
    apply, weights_dtype = CASTS[cast]
    head = apply(_fitted_head())
    assert next(head.parameters()).dtype == weights_dtype  # the cast itself happened
    for name in STATS:
        assert getattr(head, name).dtype == torch.float64, name
        assert torch.equal(getattr(head, name), getattr(reference, name)), name
    # a prediction of 0 (normalised) is each property's training mean, unrounded and finite
    assert head.predict_dicts(torch.zeros(1, 2, dtype=weights_dtype)) == [{"MW": 305.2, "big": 70031.8}]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_a_device_move_moves_the_statistics_and_keeps_them_float64(device):
    reference = _fitted_head()
    head = _fitted_head().to("cpu")
    assert all(getattr(head, name).dtype == torch.float64 for name in STATS)
    head = head.to(device, torch.bfloat16)  # device and dtype in one call, as `.to(device, dtype)` is often written
    assert next(head.parameters()).device.type == device and next(head.parameters()).dtype == torch.bfloat16
    for name in STATS:
        stat = getattr(head, name)
        assert stat.device.type == device and stat.dtype == torch.float64, name
        if device == "cpu":
            assert torch.equal(stat, getattr(reference, name)), name
    assert head.names_digest.dtype == torch.uint8 and head.names_digest.device.type == device


def _model() -> LlavaQwen2ForCausalLM:
    """A tiny llava_qwen2 with a fitted two-property KFLM2 head, seeded, eval mode."""
    config = LlavaQwen2Config(
        vocab_size=800, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, max_position_embeddings=512, mm_vision_tower="deepencoder",
        deepencoder_config=tiny_encoder_config().to_dict(), vision_tower_weights="random", mm_projector_type="fusion",
        mm_hidden_size=64, fp_bits=64, fp_levels=4, fusion_heads=2, image_mode="base",
        aux_property_task="kflm2", aux_properties=["MW", "big"], aux_property_weight=0.1)
    torch.manual_seed(0)
    model = LlavaQwen2ForCausalLM(config).eval()
    model.get_model().optional_head.fit_normalisation(PROPERTIES, [f"r{i}" for i in range(10)])
    return model


def _predictions(model) -> list:
    """The head's predictions for one prompt of text tokens and ethanol's graph."""
    head = model.get_model().optional_head
    ids = torch.tensor([[5, 17, 42, 99, 3]])
    with torch.no_grad():
        hidden = model.get_model()(input_ids=ids).last_hidden_state
        return head.predict(hidden, None, {"graphs": [mol_to_graph(Chem.MolFromSmiles("CCO"))]})


def test_a_model_cast_to_bfloat16_predicts_as_one_loaded_in_bfloat16(tmp_path):
    _model().save_pretrained(str(tmp_path))
    loaded = _predictions(load_llm(str(tmp_path), dtype=torch.bfloat16))
    full = load_llm(str(tmp_path), dtype=torch.float32)
    exact = _predictions(full)
    cast = full.to(torch.bfloat16)
    assert cast.dtype == torch.bfloat16
    predicted = _predictions(cast)
    assert predicted == loaded
    head = cast.get_model().optional_head
    assert head.mean.dtype == torch.float64 and head.mean.tolist() == pytest.approx([305.2, 70031.8], abs=1e-9)
    # and near the float32 model's: the LLM's and head's own bf16 rounding (a small fraction
    # of a std), not a rounded mean's shift (MW: 0.8 Da, 0.26 std; big: 112, 5 std)
    for name, std in zip(["MW", "big"], head.std.tolist()):
        assert abs(predicted[0][name] - exact[0][name]) < 0.1 * std, name
