"""DeepEncoderVisionTower honours the host's vision-tower contract (CLIPVisionTower's)."""

from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from deepmolm_plugin.encoder import DeepEncoder
from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower


def _args(config, **kw):
    return SimpleNamespace(deepencoder_config=config.to_dict(), **kw)


def test_contract_attributes_and_forward(tiny_config):
    tower = DeepEncoderVisionTower("deepencoder", _args(tiny_config, vision_tower_weights="random"))
    assert tower.is_loaded and tower.hidden_size == 64 and tower.num_patches_per_side == 2
    assert tower.num_patches == 4 and tower.dtype == torch.float32 and tower.device.type == "cpu"
    assert tower.config == tiny_config
    proc = tower.image_processor
    assert tuple(int(m * 255) for m in proc.image_mean) == (127, 127, 127)  # host's pad colour
    assert proc.crop_size == {"height": 128, "width": 128}
    pixels = proc.preprocess(Image.new("RGB", (50, 80), "red"), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 128, 128)
    assert tower(pixels).shape == (1, 4, 64)
    # The host passes a list when images differ in size.
    outs = tower([pixels[0], torch.randn(3, 192, 192)])
    assert [o.shape for o in outs] == [(1, 4, 64), (1, 9, 64)]


def test_weights_from_a_checkpoint(tmp_path, tiny_config):
    source = DeepEncoder(tiny_config).eval()
    source.save_pretrained(tmp_path)
    tower = DeepEncoderVisionTower("deepencoder", _args(tiny_config, vision_tower_weights=str(tmp_path)))
    assert tower.is_loaded and tower.weights_from == str(tmp_path)
    x = torch.randn(1, 3, 128, 128)
    torch.testing.assert_close(tower(x), source(x))
    tower.load_model()  # idempotent
    torch.testing.assert_close(tower(x), source(x))


def test_delay_load_builds_structure_and_never_rereads_the_weights_path(tmp_path, tiny_config):
    # How the host rebuilds a saved model: the recorded path may be relative or gone.
    args = _args(tiny_config, vision_tower_weights=str(tmp_path / "gone"))
    tower = DeepEncoderVisionTower("deepencoder", args, delay_load=True)
    assert tower.is_loaded and tower.weights_from == "model checkpoint"
    assert [k for k in tower.state_dict()][0].startswith("vision_tower.sam.")  # saved as model.vision_tower.vision_tower.*
    tower.load_model()  # the host calls this; nothing is read


def test_float16_on_cpu_stays_float32(tiny_config):
    # llava's train.py: vision_tower.to(dtype=torch.bfloat16 if bf16 else torch.float16, device=...)
    tower = DeepEncoderVisionTower("deepencoder", _args(tiny_config, vision_tower_weights="random"))
    tower.to(dtype=torch.float16, device="cpu")
    assert tower.dtype == torch.float32
    tower.to(dtype=torch.bfloat16, device="cpu")
    assert tower.dtype == torch.bfloat16


def test_no_weights_is_an_error_not_a_random_tower(tiny_config):
    with pytest.raises(ValueError, match="--vision_tower_weights"):
        DeepEncoderVisionTower("deepencoder", _args(tiny_config))


def test_frozen_by_default_trainable_when_unfrozen(tiny_config):
    frozen = DeepEncoderVisionTower("deepencoder", _args(tiny_config, vision_tower_weights="random"))
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not frozen(torch.randn(1, 3, 128, 128)).requires_grad  # no graph is built

    trainable = DeepEncoderVisionTower(
        "deepencoder", _args(tiny_config, vision_tower_weights="random", unfreeze_mm_vision_tower=True)
    )
    trainable(torch.randn(1, 3, 128, 128)).sum().backward()
    assert trainable.vision_tower.sam.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_bf16_tower_returns_input_dtype(tiny_config):
    tower = DeepEncoderVisionTower("deepencoder", _args(tiny_config, vision_tower_weights="random"))
    tower.vision_tower.to(torch.bfloat16)
    out = tower(torch.randn(1, 3, 128, 128, dtype=torch.float32))
    assert out.dtype == torch.float32 and tower.dtype == torch.bfloat16


def test_tiles_mode_processor(tiny_config):
    tower = DeepEncoderVisionTower("deepencoder", _args(tiny_config, vision_tower_weights="random", image_mode="tiles"))
    assert tower.image_processor.mode == "tiles"
