"""Our DeepEncoder vs an independent transformers-only build of the same network.

The reference (deepmolm_plugin.encoder.hf_reference) is loaded from our weights in
DeepSeek-OCR's layout, so these tests check the architecture, the DeepSeek name mapping
and the loader together: equal outputs from equal weights, at the base size, at other
view sizes (position tables resized) and at the real full size.
"""

import gc
import time

import pytest
import torch
from safetensors.torch import save_file

from deepmolm_plugin.encoder import DeepEncoder, DeepEncoderConfig, load_deepencoder, to_deepseek_layout
from deepmolm_plugin.encoder.hf_reference import DeepEncoderReference
from conftest import tiny_encoder_config

ATOL = 1e-4


def _random_positions(model: DeepEncoder, std: float) -> DeepEncoder:
    """SAM's rel-pos tables and pos_embed start at zero; make them count in the comparison."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "rel_pos" in name or name == "sam.pos_embed":
                p.normal_(0.0, std)
    return model


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


# HF's SAM encoder resizes its absolute pos_embed (bicubic, antialias, fp32) and
# interpolates rel-pos tables like segment-anything, so every view size is comparable:
# 64 px (1 token, CLIP table 2x2 -> 1x1), 128 (base), 192 (3x3 grid, windows padded).
@pytest.mark.parametrize("side", [128, 64, 192])
def test_tiny_matches_reference(tiny_config, side):
    ours = _random_positions(DeepEncoder(tiny_config), std=0.5).eval()
    ref = DeepEncoderReference.from_deepseek_state(to_deepseek_layout(ours), tiny_config)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        out, expected = ours(x), ref(x)
    assert out.shape == (2, (side // 64) ** 2, 64)
    assert _max_diff(out, expected) <= ATOL


def test_reference_eager_attention_matches_sdpa(tiny_config):
    ours = _random_positions(DeepEncoder(tiny_config), std=0.5).eval()
    state = to_deepseek_layout(ours)
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        sdpa = DeepEncoderReference.from_deepseek_state(state, tiny_config)(x)
        eager = DeepEncoderReference.from_deepseek_state(state, tiny_config, attn_implementation="eager")(x)
    assert _max_diff(sdpa, eager) <= 1e-5


def test_sam_eager_and_sdpa_agree_with_gradients():
    cfg_sdpa = tiny_encoder_config(sam_attention="sdpa")
    cfg_eager = tiny_encoder_config(sam_attention="eager")
    sdpa = _random_positions(DeepEncoder(cfg_sdpa), std=0.5)
    eager = DeepEncoder(cfg_eager)
    eager.load_state_dict(sdpa.state_dict())
    x = torch.randn(2, 3, 192, 192)  # 12x12 SAM grid: padded windows and a resized global rel-pos
    grads = {}
    for name, model in (("sdpa", sdpa), ("eager", eager)):
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        out.square().mean().backward()
        grads[name] = (out.detach(), xi.grad, model.sam.blocks[0].attn.rel_pos_h.grad,
                       model.sam.blocks[1].attn.rel_pos_w.grad)
    for a, b in zip(grads["sdpa"], grads["eager"]):
        assert b.abs().sum() > 0
        assert _max_diff(a, b) <= 1e-5


def test_loaded_deepseek_file_matches_reference(tmp_path, tiny_config):
    source = _random_positions(DeepEncoder(tiny_config), std=0.5)
    state = {k: v.detach().clone().contiguous() for k, v in to_deepseek_layout(source).items()}
    # The real file also carries CLIP's patch conv, which neither tower uses.
    state["model.vision_model.embeddings.patch_embedding.weight"] = torch.randn(32, 3, 14, 14)
    save_file(state, str(tmp_path / "model-00001-of-000001.safetensors"))
    del source

    loaded = load_deepencoder(tmp_path, config=tiny_config).eval()
    assert loaded.load_report.format == "deepseek-ocr"
    ref = DeepEncoderReference.from_deepseek_state(state, tiny_config)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert _max_diff(loaded(x), ref(x)) <= ATOL


def test_full_size_1024px_fp32_matches_reference():
    """The real DeepSeek-OCR sizes (398.7 M parameters), one 1024 px view, random weights."""
    start = time.perf_counter()
    config = DeepEncoderConfig()
    x = torch.randn(1, 3, 1024, 1024)
    ours = _random_positions(DeepEncoder(config), std=0.02).eval()
    with torch.no_grad():
        out = ours(x)  # (1, 256, 2048)
        ref = DeepEncoderReference.from_deepseek_state(to_deepseek_layout(ours), config)
        del ours
        gc.collect()
        expected = ref(x)
    del ref
    gc.collect()
    assert out.shape == (1, 256, 2048)
    diff = _max_diff(out, expected)
    print(f"full size max |diff| {diff:.2e}, output max |{out.abs().max().item():.2f}|, "
          f"{time.perf_counter() - start:.1f} s")
    assert diff <= ATOL


# --- the fast paths (sam_attention.py, ClipBlock): same numbers as upstream's modules ---------


@pytest.mark.parametrize("attention, mask_elements", [("sdpa", None), ("sdpa", 1), ("pieces", 1), ("folded", None)])
def test_padded_windows_and_banded_global_attention_match_upstream(monkeypatch, attention, mask_elements):
    """Window 5 on a 12x12 grid pads the last window row and column (qkv on real tokens, the
    padding filled with qkv's bias); bands of one query row build the rel-pos bias piecewise
    (mask_elements None: one shot; on the CPU "sdpa" is "pieces"); "folded" puts the
    rel-pos terms into q and k instead.
    Forward and every gradient equal upstream's eager modules and the transformers reference."""
    from deepmolm_plugin.encoder import sam_attention

    if mask_elements is not None:
        monkeypatch.setattr(sam_attention, "MASK_ELEMENTS", mask_elements)
    fast = _random_positions(DeepEncoder(tiny_encoder_config(sam_window_size=5, sam_attention=attention)), std=0.5)
    assert all(b.attn.way == attention for b in fast.sam.blocks)
    eager = DeepEncoder(tiny_encoder_config(sam_window_size=5, sam_attention="eager"))
    eager.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, 192, 192)
    grads = {}
    for name, model in (("fast", fast), ("eager", eager)):
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        out.square().mean().backward()
        grads[name] = [out.detach(), xi.grad] + [p.grad for p in model.parameters()]
    for a, b in zip(grads["fast"], grads["eager"]):
        assert _max_diff(a, b) <= 1e-5
    ref = DeepEncoderReference.from_deepseek_state(to_deepseek_layout(fast), fast.config)
    with torch.no_grad():
        assert _max_diff(fast.eval()(x), ref(x)) <= ATOL


def test_a_forward_under_inference_mode_leaves_training_possible(monkeypatch):
    """The rel-pos index is cached per grid size: first built under inference_mode (chat,
    eval, a benchmark), it was an inference tensor, and every later forward with autograd
    in the same process failed ("Inference tensors cannot be saved for backward")."""
    from deepmolm_plugin.encoder import sam_attention

    monkeypatch.setattr(sam_attention, "_REL_INDEX", {})
    model = DeepEncoder(tiny_encoder_config(sam_window_size=5))
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        model(x)
    model(x).square().mean().backward()
    assert model.sam.blocks[0].attn.rel_pos_h.grad is not None


@pytest.mark.parametrize("pieces", ["4 pairs: 4+2", "one pair, 2 rows: 2+2+1"])
def test_rel_pos_pieces_match_the_whole_bias(monkeypatch, pieces):
    """The bias built a piece at a time (groups of (batch, head) pairs, or bands of one
    pair's query rows) gives the whole-bias result, in the reused buffer without autograd
    and as joined graph nodes with it (gradients too)."""
    from deepmolm_plugin.encoder import sam_attention

    B, heads, h, w, d = 2, 3, 5, 4, 8
    q, k, v = (torch.randn(B, heads, h * w, d) for _ in range(3))
    rel_h, rel_w = torch.randn(B, heads, h, w, h), torch.randn(B, heads, h, w, w)
    budget = 4 * h * w * h * w if pieces.startswith("4 pairs") else 2 * w * h * w
    monkeypatch.setattr(sam_attention, "MASK_ELEMENTS", budget)
    expected = torch.softmax(q @ k.transpose(-1, -2) / d**0.5
                             + (rel_h[..., :, None] + rel_w[..., None, :]).reshape(B, heads, h * w, h * w), -1) @ v
    with torch.no_grad():
        assert _max_diff(sam_attention.rel_pos_attention(q, k, v, rel_h, rel_w), expected) <= 1e-5
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v, rel_h, rel_w)]
    out = sam_attention.rel_pos_attention(*leaves)
    assert _max_diff(out, expected) <= 1e-5
    out.square().sum().backward()
    grads = [t.grad for t in leaves]
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v, rel_h, rel_w)]
    qq, kk, vv, rh, rw = leaves
    bias = (rh[..., :, None] + rw[..., None, :]).reshape(B, heads, h * w, h * w)
    (torch.softmax(qq @ kk.transpose(-1, -2) / d**0.5 + bias, -1) @ vv).square().sum().backward()
    for a, b in zip(grads, (t.grad for t in leaves)):
        assert _max_diff(a, b) <= 1e-4


@pytest.mark.parametrize("h, w, d, pad_value", [(5, 4, 8, True), (5, 4, 8, False), (4, 4, 8, True)])  # 17 -> 24; 16
def test_folded_rel_pos_attention_matches_the_whole_bias(h, w, d, pad_value):
    """The rel-pos terms as extra q/k channels ([q/sqrt(d), rel_h, rel_w] . [k, onehot(row),
    onehot(column)], zero padding, v padded to the same width or not, one unmasked SDPA
    call) give the whole-bias result, forward and gradients, under autograd and without it."""
    import functools
    from deepmolm_plugin.encoder import sam_attention

    B, heads = 2, 3
    q, k, v = (torch.randn(B, heads, h * w, d) for _ in range(3))
    rel_h, rel_w = torch.randn(B, heads, h, w, h), torch.randn(B, heads, h, w, w)

    def whole_bias(q, k, v, rel_h, rel_w):
        bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(B, heads, h * w, h * w)
        return torch.softmax(q @ k.transpose(-1, -2) / d**0.5 + bias, -1) @ v

    with torch.no_grad():
        folded = functools.partial(sam_attention.folded_rel_pos_attention, pad_value=pad_value)
        out = folded(q, k, v, rel_h, rel_w)
        assert out.shape == q.shape
        assert _max_diff(out, whole_bias(q, k, v, rel_h, rel_w)) <= 1e-5
    grads = []
    for attend in (folded, whole_bias):
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v, rel_h, rel_w)]
        attend(*leaves).square().sum().backward()
        grads.append([t.grad for t in leaves])
    for a, b in zip(*grads):
        assert _max_diff(a, b) <= 1e-4


def test_sdpa_folds_the_global_blocks_off_the_cpu_only():
    """sam_attention "sdpa" takes the way measured faster per device and block kind: global
    blocks folded on a GPU (2.4x faster than the pieces on an H200), everything else in
    pieces (folding doubled a global block's time on a CPU; windows: 1.3x slower on the
    H200); "pieces" and "folded" force theirs."""
    from deepmolm_plugin.encoder.sam_attention import folds

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert [folds("sdpa", d, w) for d in (cpu, cuda) for w in (False, True)] == [False, False, True, False]
    assert all(folds("folded", d, w) and not folds("pieces", d, w) for d in (cpu, cuda) for w in (False, True))


def test_bfloat16_fast_path_tracks_the_reference():
    """bf16 (the dtype "auto" picks on AMX / AVX512-BF16 CPUs and on CUDA): both towers round
    alike, so they stay close; each is within bf16 rounding of the fp32 result."""
    config = tiny_encoder_config(sam_window_size=5)
    ours = _random_positions(DeepEncoder(config), std=0.5).eval()
    ref = DeepEncoderReference.from_deepseek_state(to_deepseek_layout(ours), config)
    x = torch.randn(2, 3, 192, 192)
    with torch.no_grad():
        fp32 = ours(x)
        a, b = ours.to(torch.bfloat16)(x), ref.to(torch.bfloat16)(x)
    scale = fp32.abs().max().item()
    assert _max_diff(a, fp32) <= 0.05 * scale and _max_diff(b, fp32) <= 0.05 * scale
    assert _max_diff(a, b) <= 0.05 * scale


@pytest.mark.parametrize("H, W", [(10, 10), (12, 7), (3, 4), (5, 11)])  # exact, partial, one partial window, mixed
def test_windowed_attention_matches_upstream_partition(H, W):
    """SdpaAttention.windowed (qkv on real tokens, one copy into windows and one back) equals
    segment-anything's window_partition -> Attention -> window_unpartition, window 5."""
    from segment_anything.modeling.image_encoder import Attention, window_partition, window_unpartition

    from deepmolm_plugin.encoder.sam_attention import SdpaAttention

    torch.manual_seed(0)
    upstream = Attention(32, num_heads=4, qkv_bias=True, use_rel_pos=True, input_size=(5, 5))
    with torch.no_grad():
        for p in upstream.parameters():
            p.normal_(0.0, 0.5)
    x = torch.randn(2, H, W, 32)
    with torch.no_grad():
        windows, padded = window_partition(x, 5)
        expected = window_unpartition(upstream(windows), 5, padded, (H, W))
        upstream.__class__ = SdpaAttention
        assert _max_diff(upstream.windowed(x, 5), expected) <= 1e-6 * expected.abs().max().item()  # fp32 rounding


def test_bias_pieces_fit_the_device():
    """CPU: cache-sized pieces (a head's band of 16 rows at 1024 px); GPU: few, large launches."""
    from deepmolm_plugin.encoder.sam_attention import _pieces, mask_budget

    def calls(device: str, batch: int) -> int:  # global block at 1024 px: 12 heads, 64 x 64 tokens
        return sum(len(bands) for _, bands in _pieces(batch * 12, 64, 64 * 4096, mask_budget(torch.device(device))))

    assert calls("cpu", 1) == 12 * 4 and calls("cuda", 1) == 2 and calls("cuda", 32) == 48
    groups = _pieces(300, 14, 14 * 196, mask_budget(torch.device("cpu")))  # windowed block: 25 windows x 12 heads
    assert [g.stop - g.start for g, _ in groups] == [109, 109, 82]
