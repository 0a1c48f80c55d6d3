"""Hostile checkpoints and configs, third sweep: each case below crashed with an unrelated
traceback, or loaded silently wrong, before (the "was:" comments). Now each is a clear
error naming the file / field / tensor, or (training-wrapper prefixes) a correct load."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import tiny_encoder_config
from test_hostile_checkpoints import _variant
from deepmolm_plugin.encoder import DeepEncoder, load_deepencoder, to_deepseek_layout
from deepmolm_plugin.projector import ProjectorConfig, build_projector
from deepmolm_plugin.tensor_files import CheckpointError

QKV = "model.sam_model.blocks.0.attn.qkv.weight"


def _save(state, path):
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


# --- DeepEncoderConfig fields ------------------------------------------------------------------
@pytest.mark.parametrize("field,value,message", [
    ("image_size", "1024", r"image_size must be a positive int .*got '1024'"),  # was: TypeError "not all arguments converted"
    ("image_size", [1024, 768], r"image_size must be a positive int \(views are square"),  # was: TypeError list % int
    ("image_size", 128.0, r"image_size must be a positive int"),  # was: TypeError deep in torch.zeros
    ("image_size", 0, r"image_size must be a positive int"),  # was: RuntimeError "Dimension size must be non-negative"
    ("patch_size", 0, r"patch_size must be a positive int"),  # was: ZeroDivisionError
    ("sam_heads", 3, r"sam_heads \(3\) must divide sam_width \(32\)"),  # was: a reshape error at the first forward
    ("compressor_channels", [], r"compressor_channels must be positive ints"),  # was: IndexError
    ("sam_layer_norm_eps", "1e-6", r"sam_layer_norm_eps must be a positive number"),  # was: TypeError in layer_norm
    ("sam_mlp_ratio", 0, r"sam_mlp_ratio must be a positive number"),  # was: built an MLP of width 0
    ("sam_global_attn_indexes", [-1], r"must be block indexes in \[0, sam_depth=2\)"),  # was: accepted
    ("sam_depth", True, r"sam_depth must be a positive int, got True"),  # was: "exceed sam_depth True"
])
def test_encoder_config_field_of_the_wrong_kind_is_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        tiny_encoder_config(**{field: value})


def test_encoder_config_file_with_a_non_square_view_names_the_file(tmp_path, tiny_config):
    DeepEncoder(tiny_config).save_pretrained(tmp_path / "tower")
    path = tmp_path / "tower" / "deepencoder_config.json"
    path.write_text(json.dumps({**tiny_config.to_dict(), "image_size": [128, 96]}))
    with pytest.raises(CheckpointError, match=r"deepencoder_config\.json is not a usable .*image_size must be"):
        load_deepencoder(tmp_path / "tower")  # was: TypeError, escaping the CheckpointError wrapper


# --- encoder weights that overflow once cast ---------------------------------------------------
@pytest.mark.parametrize("stored,value,dtype,target", [
    (torch.float64, 1e300, "float32", "torch.float32"),  # finite float64, inf as the tower's float32
    (torch.float32, 1e6, "float16", "torch.float16"),  # finite float32, inf once cast to config.dtype
])
def test_encoder_weight_that_overflows_the_tower_dtype_is_an_error(tmp_path, stored, value, dtype, target):
    state = to_deepseek_layout(DeepEncoder(tiny_encoder_config()))
    state[QKV] = state[QKV].to(stored).clone()
    state[QKV][0, 0] = value
    path = _save(state, tmp_path / "tower.safetensors")
    # was: loaded, with an inf weight (every output NaN)
    with pytest.raises(CheckpointError, match=rf"tower\.safetensors.*qkv\.weight: values up to .* overflow {target}"):
        load_deepencoder(path, config=tiny_encoder_config(dtype=dtype))


# --- training-wrapper prefixes (DDP `module.`, torch.compile `_orig_mod.`) -----------------------
@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
@pytest.mark.parametrize("layout", ["deepseek-ocr", "deepmolm"])
def test_encoder_weights_under_a_wrapper_prefix_load(tmp_path, tiny_config, prefix, layout):
    source = DeepEncoder(tiny_config).eval()
    if layout == "deepseek-ocr":
        path = _save({prefix + k: v for k, v in to_deepseek_layout(source).items()}, tmp_path / "tower.safetensors")
    else:
        source.save_pretrained(tmp_path / "tower")
        path = tmp_path / "tower"
        weights = path / "deepencoder.safetensors"
        _save({prefix + k: v for k, v in load_file(str(weights)).items()}, weights)
    # was: "unrecognised checkpoint layout" (deepseek-ocr) / every tensor missing and unexpected (deepmolm)
    model = load_deepencoder(path, config=tiny_config).eval()
    x = torch.randn(1, 3, 128, 128)
    torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)
    assert list(model.load_report.stripped_prefixes.values()) == [prefix]
    assert f"wrapper prefix {prefix!r}" in model.load_report.summary()


def test_same_tensor_with_and_without_a_wrapper_prefix_is_an_error(tmp_path, tiny_config):
    state = to_deepseek_layout(DeepEncoder(tiny_config))
    _save(state, tmp_path / "a.safetensors")
    _save({"module." + QKV: state[QKV]}, tmp_path / "b.safetensors")
    # was: the second copy counted as "outside the tower" and ignored
    with pytest.raises(CheckpointError, match=rf"{QKV}' appears in both .*a\.safetensors.*b\.safetensors"):
        load_deepencoder([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], config=tiny_config)


# --- projector weights loaded by name (the host's --pretrain_mm_mlp_adapter) ---------------------
def _projector(name="fusion", **overrides):
    return build_projector(name, ProjectorConfig(**{**dict(hidden_size=16, mm_hidden_size=8, fp_bits=32,
                                                           num_heads=2), **overrides}))


@pytest.mark.parametrize("source,words", [
    ("linear", "a 'linear' projector"), ("mlp2x_gelu", "an 'mlp2x_gelu' projector"), ("concat", "a 'concat' projector"),
])
def test_adapter_from_another_projector_type_says_so(source, words):
    fusion = _projector()
    # was: torch's "Error(s) in loading state_dict for FusionProjector", naming no projector type
    with pytest.raises(ValueError, match=rf"this 'fusion' projector come from {words}: missing .*unexpected"):
        fusion.load_state_dict(_projector(source).state_dict())


@pytest.mark.parametrize("edit,message", [
    (lambda s: {**s, "image_proj.weight": s["image_proj.weight"].long()}, r"image_proj\.weight: dtype torch\.int64"),
    (lambda s: {**s, "ffn.0.bias": torch.full_like(s["ffn.0.bias"], float("nan"))}, r"ffn\.0\.bias: 64 NaN/inf"),
    (lambda s: {**s, "image_proj.weight": s["image_proj.weight"].double() * 1e300}, r"values up to .* overflow"),
    (lambda s: _projector(fp_bits=64).state_dict(), r"molecule_embed\.weight: shape \[65, 16\] vs projector \[33, 16\] "
                                                    r"\(sized by fp_bits\)"),
])
def test_adapter_with_unusable_tensors_is_an_error(edit, message):
    fusion = _projector()
    before = {k: v.clone() for k, v in fusion.state_dict().items()}
    # was: integer, NaN and overflowing weights copied in silently; a size error naming no setting
    with pytest.raises(ValueError, match=message):
        fusion.load_state_dict(edit(_projector().state_dict()))
    assert all(torch.equal(before[k], v) for k, v in fusion.state_dict().items())  # nothing half-loaded


# --- saved DeepMoLM checkpoints --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A saved llava_qwen2 folder (tiny Qwen2 + tiny tower + fusion), built directly: no training."""
    import deepmolm_plugin
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2Config, LlavaQwen2ForCausalLM
    from tiny_models import make_tiny_tokenizer

    deepmolm_plugin.register()
    tokenizer = make_tiny_tokenizer()
    config = LlavaQwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, max_position_embeddings=512, mm_vision_tower="deepencoder",
        deepencoder_config=tiny_encoder_config().to_dict(), vision_tower_weights="random", mm_projector_type="fusion",
        mm_hidden_size=64, fp_bits=64, fp_levels=4, fusion_heads=2)
    path = tmp_path_factory.mktemp("ckpt") / "model"
    torch.manual_seed(0)
    LlavaQwen2ForCausalLM(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def _load(path, dtype="float32"):
    from deepmolm_plugin.model.loading import load_pretrained_model

    return load_pretrained_model(str(path), device="cpu", dtype=dtype)[1]


PROJ = "model.mm_projector.image_proj.weight"
UP = "model.layers.0.mlp.up_proj.weight"
TOWER = "model.vision_tower.vision_tower.sam.blocks.0.attn.qkv.weight"


@pytest.mark.parametrize("key,dtype", [(PROJ, torch.int64), (UP, torch.int32), (UP, torch.bool)])
def test_saved_checkpoint_with_integer_weights_is_an_error(tiny_checkpoint, tmp_path, key, dtype):
    path = _variant(tiny_checkpoint, tmp_path / "int", state=lambda s: {**s, key: torch.ones_like(s[key], dtype=dtype)})
    # was: loaded, the weight silently cast to a float tensor of ones
    with pytest.raises(CheckpointError, match=rf"{path} stores 1 floating-point weights as integers or booleans: {key}"):
        _load(path)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod."])
def test_saved_checkpoint_under_a_wrapper_prefix_loads(tiny_checkpoint, tmp_path, prefix):
    path = _variant(tiny_checkpoint, tmp_path / "wrapped", state=lambda s: {prefix + k: v for k, v in s.items()})
    model = _load(path)  # was: "lacks 99 tensors the model needs"
    reference = _load(tiny_checkpoint)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())


def test_saved_checkpoint_whose_projector_width_disagrees_with_its_tower(tiny_checkpoint, tmp_path):
    """config.json and the projector weights say mm_hidden_size 128; the saved tower gives 64."""
    path = _variant(tiny_checkpoint, tmp_path / "width", config=lambda c: c.update(mm_hidden_size=128),
                    state=lambda s: {**s, PROJ: torch.randn(32, 128)})
    # was: loaded; the first image failed in the projector ("image_features width is 64")
    with pytest.raises(CheckpointError, match=rf"{path}: cannot build .*mm_hidden_size=128, but the vision tower "
                                              r"'deepencoder' gives 64"):
        _load(path)


def test_saved_checkpoint_with_a_non_square_view_names_the_checkpoint(tiny_checkpoint, tmp_path):
    path = _variant(tiny_checkpoint, tmp_path / "square",
                    config=lambda c: c["deepencoder_config"].update(image_size=[128, 96]))
    # was: TypeError "unsupported operand type(s) for %: 'list' and 'int'"
    with pytest.raises(CheckpointError, match=rf"{path}: cannot build .*image_size must be a positive int"):
        _load(path)


def test_tower_weight_that_overflows_the_requested_dtype_is_an_error(tiny_checkpoint, tmp_path):
    """3.4e38 is a finite float32 but rounds to inf in bfloat16 (max 3.39e38)."""
    path = _variant(tiny_checkpoint, tmp_path / "big",
                    state=lambda s: {**s, TOWER: s[TOWER].clone().index_fill_(0, torch.tensor([0]), 3.4e38)})
    # was: the float32 tower was checked, then cast to bfloat16 with inf weights
    with pytest.raises(CheckpointError, match=rf"{path} has NaN/inf values in 1 tensors: {TOWER}"):
        _load(path, dtype="bfloat16")


def test_saved_checkpoint_naming_a_tower_config_file_that_is_gone_names_the_checkpoint(tiny_checkpoint, tmp_path):
    gone = tmp_path / "moved" / "deepencoder_config.json"
    path = _variant(tiny_checkpoint, tmp_path / "gone", config=lambda c: c.update(deepencoder_config=str(gone)))
    # was: a bare FileNotFoundError naming the config file, not the checkpoint that points at it
    with pytest.raises(CheckpointError, match=rf"{path}: cannot build the model its config.json describes: .*moved"):
        _load(path)


def test_a_cut_safetensors_file_is_named_when_its_dtypes_are_read(tmp_path):
    # was: a bare "SafetensorError: Error while deserializing header" traceback from model_vqa,
    # the chat CLI and the GUI, naming neither folder nor file
    from safetensors.torch import save_file

    from deepmolm_plugin.model.loading import _stored_float_flags
    from deepmolm_plugin.tensor_files import CheckpointError

    save_file({"w": torch.zeros(64)}, str(tmp_path / "model.safetensors"))
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model.safetensors cannot be read as safetensors \(cut short"):
        _stored_float_flags(str(tmp_path))


@pytest.mark.parametrize("legacy", [True, False])
def test_a_damaged_pytorch_file_is_named_at_every_cut(tmp_path, legacy):
    # was: a legacy (non-zip) .bin cut short gave a bare struct.error / IndexError traceback,
    # and a damaged one torch's advice to load it with weights_only=False (code execution)
    from deepmolm_plugin.tensor_files import open_checkpoint

    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.ones(100)}, path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    for cut in range(2, len(data), 7):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"pytorch_model.bin is not a (readable|plain) PyTorch tensor file") \
                as refused:
            dict(open_checkpoint(path))
        assert "weights_only=False" not in str(refused.value)
    from deepmolm_plugin.model.loading import _stored_float_flags

    if not legacy:
        path.write_bytes(data[:40] + b"\xff" * 60 + data[100:])
        with pytest.raises(CheckpointError, match=r"pytorch_model.bin is not a (readable|plain) PyTorch tensor file"):
            _stored_float_flags(str(tmp_path))


class _Weights:  # an object torch.load would have to import and build
    pass


def test_a_pytorch_file_holding_objects_says_so_without_advising_code_execution(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": _Weights()}, path)
    with pytest.raises(CheckpointError, match=r"w.pt is not a plain PyTorch tensor file \(damaged, or it holds objects "
                                              r"that need code to load, which is never run here\): Unsupported global"):
        dict(__import__("deepmolm_plugin.tensor_files", fromlist=["x"]).open_checkpoint(path))


def test_one_clip_tensor_given_in_two_layouts_is_an_error(tmp_path, tiny_config):
    # was: CLIP files in open_clip's (visual.*) and Hugging Face's (vision_model.*) layouts,
    # both given: the file read last won, tensor by tensor, without a word
    state = DeepEncoder(tiny_config).state_dict()
    torch.save({"image_encoder." + k[4:]: v for k, v in state.items() if k.startswith("sam.")}, tmp_path / "sam.pth")
    _save({"visual." + k[5:]: v for k, v in state.items() if k.startswith("clip.")}, tmp_path / "open_clip.safetensors")
    _save({"vision_model.embeddings.class_embedding": state["clip.class_embedding"] + 7}, tmp_path / "hf.safetensors")
    files = [tmp_path / "sam.pth", tmp_path / "open_clip.safetensors"]
    load_deepencoder(files, config=tiny_config)  # one layout each: loads
    for given in (files + [tmp_path / "hf.safetensors"], [tmp_path / "hf.safetensors"] + files):  # either order
        with pytest.raises(CheckpointError, match=r"given twice, under two names \(1\): "
                                                  r"(visual|vision_model)\.\S*class_embedding and (visual|vision_model)"
                                                  r"\.\S*class_embedding \(both clip\.class_embedding\)"):
            load_deepencoder(given, config=tiny_config)
