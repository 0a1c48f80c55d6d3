"""DeepEncoder architecture: shapes per view size, gradients, checkpointing, dtypes."""

import pytest
import torch

from deepmolm_plugin.encoder import DeepEncoder, DeepEncoderConfig
from conftest import tiny_encoder_config


@pytest.mark.parametrize("side, tokens", [(128, 4), (64, 1), (192, 9), (256, 16)])
def test_output_shape_per_view_size(tiny_config, side, tokens):
    model = DeepEncoder(tiny_config).eval()
    out = model(torch.randn(2, 3, side, side))
    assert out.shape == (2, tokens, tiny_config.hidden_size)
    assert tiny_config.hidden_size == 64  # CLIP width + compressor width


def test_output_is_clip_tokens_then_compressor_tokens(tiny_config):
    model = DeepEncoder(tiny_config).eval()
    x = torch.randn(1, 3, 128, 128)
    out = model(x)
    tokens = model.compressor(model.sam(x)).flatten(2).transpose(1, 2)  # (1, 4, 32)
    clip = model.clip(tokens)  # (1, 5, 32), CLS first
    torch.testing.assert_close(out[..., 32:], tokens)
    torch.testing.assert_close(out[..., :32], clip[:, 1:])


def test_full_size_token_counts_without_running():
    cfg = DeepEncoderConfig()
    assert cfg.hidden_size == 2048
    assert [cfg.tokens_per_side(s) ** 2 for s in (1024, 640, 512, 1280)] == [256, 100, 64, 400]


def test_full_size_parameter_counts():
    with torch.device("meta"):
        model = DeepEncoder()
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(model.sam) == 89_670_912  # SAM ViT-B image encoder: 89.67 M
    assert count(model.compressor) == 5_898_240  # 5.90 M
    # CLIP-L/14's 303.18 M include its patch conv (1024*3*14*14), which we bypass.
    assert count(model.clip) + 1024 * 3 * 14 * 14 == 303_177_728


@pytest.mark.parametrize("bad", [(1, 3, 128, 64), (1, 1, 128, 128), (3, 128, 128), (1, 3, 100, 100)])
def test_rejects_bad_view_shapes(tiny_config, bad):
    with pytest.raises(ValueError, match="square RGB views"):
        DeepEncoder(tiny_config)(torch.randn(*bad))


def _grads(model):
    return {n: p.grad for n, p in model.named_parameters()}


def test_gradients_reach_sam_and_clip_when_unfrozen(tiny_config):
    model = DeepEncoder(tiny_config).train()
    model(torch.randn(2, 3, 128, 128)).square().mean().backward()
    grads = _grads(model)
    for name in ("sam.patch_embed.proj.weight", "sam.blocks.0.attn.rel_pos_h", "compressor.net_2.weight",
                 "clip.transformer.resblocks.0.attn.in_proj_weight", "clip.class_embedding"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name


def test_no_gradients_when_frozen(tiny_config):
    model = DeepEncoder(tiny_config).train().requires_grad_(False)
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    model(x).sum().backward()
    assert all(p.grad is None for p in model.parameters())
    assert x.grad is not None  # the graph itself still flows to the input


def test_gradient_checkpointing_gives_same_gradients(tiny_config):
    x = torch.randn(2, 3, 128, 128)
    plain = DeepEncoder(tiny_config).train()
    ckpt = DeepEncoder(tiny_encoder_config(gradient_checkpointing=True)).train()
    ckpt.load_state_dict(plain.state_dict())
    for model in (plain, ckpt):
        model(x).square().mean().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    plain.set_gradient_checkpointing(True)
    assert plain.sam.gradient_checkpointing and plain.clip.transformer.grad_checkpointing


def test_bfloat16_close_to_float32(tiny_config):
    model = DeepEncoder(tiny_config).eval()
    x = torch.randn(1, 3, 128, 128)
    ref = model(x)
    out = model.to(torch.bfloat16)(x)  # input is cast to the weights' dtype
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_save_pretrained_round_trip(tmp_path, tiny_config):
    model = DeepEncoder(tiny_config).eval()
    model.save_pretrained(tmp_path)
    again = DeepEncoder.from_pretrained(tmp_path).eval()
    assert again.config == tiny_config
    x = torch.randn(1, 3, 128, 128)
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
