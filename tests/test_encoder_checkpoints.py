"""load_deepencoder: every public layout, fabricated with the real key names, and the errors."""

import dataclasses
import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from deepmolm_plugin.encoder import DeepEncoder, DeepEncoderConfig, load_deepencoder, to_deepseek_layout
from deepmolm_plugin.encoder.checkpoint import plan_load
from deepmolm_plugin.tensor_files import CheckpointError


def _save_st(state, path):
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def _by_hand(config, state):
    """A second model with `state` (already in our names) loaded by hand."""
    model = DeepEncoder(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _deepseek_by_hand(ds):
    """DeepSeek names -> ours, written out independently of the loader's rule table."""
    out = {}
    for key, value in ds.items():
        if key.startswith("model.sam_model.net_"):
            out["compressor." + key[len("model.sam_model."):]] = value
        elif key.startswith("model.sam_model."):
            out["sam." + key[len("model.sam_model."):]] = value
        elif key == "model.vision_model.embeddings.class_embedding":
            out["clip.class_embedding"] = value
        elif key == "model.vision_model.embeddings.position_embedding.weight":
            out["clip.positional_embedding"] = value
        elif key.startswith("model.vision_model.pre_layrnorm."):
            out["clip.ln_pre." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("model.vision_model.transformer.layers."):
            rest = key[len("model.vision_model.transformer.layers."):]
            for a, b in (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("self_attn.qkv_proj.weight", "attn.in_proj_weight"),
                         ("self_attn.qkv_proj.bias", "attn.in_proj_bias"), ("self_attn.out_proj", "attn.out_proj"),
                         ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                rest = rest.replace(a, b)
            out["clip.transformer.resblocks." + rest] = value
    return out


@pytest.fixture
def source(tiny_config):
    return DeepEncoder(tiny_config).eval()


@pytest.fixture
def x():
    return torch.randn(2, 3, 128, 128)


def _deepseek_file_state(model):
    """What a DeepSeek-OCR file holds: the tower, CLIP's unused patch conv, and non-tower tensors."""
    ds = to_deepseek_layout(model)
    width = model.config.clip_width
    ds["model.vision_model.embeddings.patch_embedding.weight"] = torch.randn(width, 3, 14, 14)
    ds["model.projector.layers.weight"] = torch.randn(4, 4)
    ds["model.image_newline"] = torch.randn(4)
    ds["model.layers.0.mlp.up_proj.weight"] = torch.randn(4, 4)
    return ds


def test_deepseek_single_file(tmp_path, tiny_config, source, x):
    ds = _deepseek_file_state(source)
    _save_st(ds, tmp_path / "model-00001-of-000001.safetensors")
    model = load_deepencoder(tmp_path / "model-00001-of-000001.safetensors", config=tiny_config).eval()
    hand = _by_hand(tiny_config, _deepseek_by_hand(ds))
    torch.testing.assert_close(model(x), hand(x), rtol=0, atol=0)
    rep = model.load_report
    assert rep.format == "deepseek-ocr" and not rep.is_initialisation
    assert rep.ignored_in_tower_namespace == ["model.vision_model.embeddings.patch_embedding.weight"]
    assert rep.ignored_other == 3


def test_deepseek_folder_and_sharded_index(tmp_path, tiny_config, source, x):
    ds = _deepseek_file_state(source)
    keys = sorted(ds)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, part in shards.items():
        _save_st({k: ds[k] for k in part}, tmp_path / name)
    index = {"metadata": {}, "weight_map": {k: n for n, part in shards.items() for k in part}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    model = load_deepencoder(tmp_path, config=tiny_config).eval()
    torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)
    assert len(model.load_report.files) == 2


def test_sharded_index_naming_a_missing_shard(tmp_path, tiny_config, source):
    _save_st(to_deepseek_layout(source), tmp_path / "a.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"k": "b.safetensors"}}))
    with pytest.raises(CheckpointError, match="b.safetensors"):
        load_deepencoder(tmp_path, config=tiny_config)


def _meta_sam_file(model):
    state = {"image_encoder." + k[4:]: v for k, v in model.state_dict().items() if k.startswith("sam.")}
    state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, 128)
    state["mask_decoder.iou_token.weight"] = torch.randn(1, 256)
    return state


def _open_clip_file(model):
    state = {"visual." + k[5:]: v for k, v in model.state_dict().items() if k.startswith("clip.")}
    width = model.config.clip_width
    state.update({"visual.conv1.weight": torch.randn(width, 3, 14, 14), "visual.ln_post.weight": torch.ones(width),
                  "visual.ln_post.bias": torch.zeros(width), "visual.proj": torch.randn(width, 16),
                  "token_embedding.weight": torch.randn(10, 16), "logit_scale": torch.tensor(1.0)})
    return state


def _hf_clip_file(model, prefix):
    """OpenAI CLIP in Hugging Face names: separate q/k/v, encoder.layers, post_layernorm."""
    state = {}
    for k, v in model.state_dict().items():
        if not k.startswith("clip."):
            continue
        k = k[5:]
        if k == "class_embedding":
            state[prefix + "embeddings.class_embedding"] = v
        elif k == "positional_embedding":
            state[prefix + "embeddings.position_embedding.weight"] = v
        elif k.startswith("ln_pre."):
            state[prefix + "pre_layrnorm." + k.split(".")[1]] = v
        else:
            i, rest = k.split(".")[2], ".".join(k.split(".")[3:])
            layer = f"{prefix}encoder.layers.{i}."
            if rest.startswith("attn.in_proj_"):
                kind = rest.rsplit("_", 1)[1]
                for name, chunk in zip("qkv", v.chunk(3, dim=0)):
                    state[f"{layer}self_attn.{name}_proj.{kind}"] = chunk
            else:
                for a, b in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("attn.out_proj", "self_attn.out_proj"),
                             ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                    rest = rest.replace(a, b)
                state[layer + rest] = v
    width = model.config.clip_width
    state[prefix + "embeddings.patch_embedding.weight"] = torch.randn(width, 3, 14, 14)
    state[prefix + "post_layernorm.weight"] = torch.ones(width)
    if prefix:
        state["text_model.embeddings.token_embedding.weight"] = torch.randn(10, width)
        state["visual_projection.weight"] = torch.randn(8, width)
    return state


@pytest.mark.parametrize("clip_layout", ["open_clip", "hf", "hf-bare"])
def test_sam_plus_clip_is_an_initialisation(tmp_path, tiny_config, source, x, clip_layout, caplog):
    torch.save(_meta_sam_file(source), tmp_path / "sam_vit_b_01ec64.pth")
    if clip_layout == "open_clip":
        torch.save(_open_clip_file(source), tmp_path / "open_clip_pytorch_model.bin")
        clip_path = tmp_path / "open_clip_pytorch_model.bin"
    else:
        clip_path = tmp_path / "model.safetensors"
        _save_st(_hf_clip_file(source, "vision_model." if clip_layout == "hf" else ""), clip_path)
    with caplog.at_level("WARNING"):
        model = load_deepencoder([tmp_path / "sam_vit_b_01ec64.pth", clip_path], config=tiny_config).eval()
    rep = model.load_report
    assert rep.format == "sam+clip" and rep.is_initialisation
    assert rep.newly_initialized == ["compressor.net_2.weight", "compressor.net_3.weight"]
    assert "INITIALISATION ONLY" in caplog.text
    # Everything but the new convs equals the source; with the convs copied, outputs match.
    assert not torch.equal(model.compressor.net_2.weight, source.compressor.net_2.weight)
    model.compressor.load_state_dict(source.compressor.state_dict())
    torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)


def test_sam_without_clip_says_what_is_missing(tmp_path, tiny_config, source):
    torch.save(_meta_sam_file(source), tmp_path / "sam.pth")
    with pytest.raises(CheckpointError, match="no CLIP ViT-L/14 weights"):
        load_deepencoder(tmp_path / "sam.pth", config=tiny_config)


def test_own_format_round_trip_with_dtype(tmp_path, tiny_config, source, x):
    source.save_pretrained(tmp_path)
    model = load_deepencoder(tmp_path, dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and model.load_report.format == "deepmolm"
    # read from deepencoder_config.json, with the dtype the weights now live in
    assert model.config == dataclasses.replace(tiny_config, dtype="bfloat16")
    ref = _by_hand(tiny_config, source.state_dict()).to(torch.bfloat16)
    torch.testing.assert_close(model.eval()(x), ref(x), rtol=0, atol=0)


def test_broken_checkpoint_lists_every_problem(tmp_path, tiny_config, source):
    ds = to_deepseek_layout(source)
    del ds["model.sam_model.blocks.0.norm1.weight"]
    ds["model.sam_model.blocks.0.attn.extra"] = torch.zeros(3)
    ds["model.vision_model.transformer.layers.1.mlp.fc1.weight"] = torch.zeros(5, 5)
    _save_st(ds, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_deepencoder(tmp_path / "bad.safetensors", config=tiny_config)
    msg = str(err.value)
    assert "missing (1): sam.blocks.0.norm1.weight" in msg
    assert "unexpected (1): model.sam_model.blocks.0.attn.extra" in msg
    assert "wrong shape (1): model.vision_model.transformer.layers.1.mlp.fc1.weight: checkpoint [5, 5]" in msg


def test_config_mismatch_is_a_shape_error(tmp_path, tiny_config, source):
    _save_st(to_deepseek_layout(source), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_deepencoder(tmp_path / "m.safetensors", config=DeepEncoderConfig(**{**tiny_config.to_dict(), "sam_width": 48}))


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".bin", ".ckpt"])
def test_text_file_is_not_a_tensor_file(tmp_path, tiny_config, suffix):
    path = tmp_path / f"weights{suffix}"
    path.write_text("this is a README, not weights\n")
    with pytest.raises(CheckpointError, match="is not a tensor file"):
        load_deepencoder(path, config=tiny_config)


def test_pickled_code_is_refused(tmp_path, tiny_config, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"image_encoder.x": _Evil()}, f)
    with pytest.raises(CheckpointError, match="not a plain PyTorch tensor file .*never run here"):
        load_deepencoder(path, config=tiny_config)
    assert "this must never run" not in capsys.readouterr().out


def test_unknown_layout_and_missing_path(tmp_path, tiny_config):
    _save_st({"foo.weight": torch.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        load_deepencoder(tmp_path / "x.safetensors", config=tiny_config)
    with pytest.raises(FileNotFoundError):
        load_deepencoder(tmp_path / "nope.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no tensor files"):
        load_deepencoder(tmp_path / "empty")


def _published_deepseek_shapes():
    """The full-size DeepSeek-OCR tower tensors (names and shapes of its released checkpoint), written out by hand."""
    shapes = {"model.sam_model.patch_embed.proj.weight": (768, 3, 16, 16), "model.sam_model.patch_embed.proj.bias": (768,),
              "model.sam_model.pos_embed": (1, 64, 64, 768)}
    for i in range(12):
        b = f"model.sam_model.blocks.{i}."
        rel = 127 if i in (2, 5, 8, 11) else 27  # global blocks see 64x64, windows 14x14
        shapes.update({b + "norm1.weight": (768,), b + "norm1.bias": (768,), b + "attn.qkv.weight": (2304, 768),
                       b + "attn.qkv.bias": (2304,), b + "attn.proj.weight": (768, 768), b + "attn.proj.bias": (768,),
                       b + "attn.rel_pos_h": (rel, 64), b + "attn.rel_pos_w": (rel, 64), b + "norm2.weight": (768,),
                       b + "norm2.bias": (768,), b + "mlp.lin1.weight": (3072, 768), b + "mlp.lin1.bias": (3072,),
                       b + "mlp.lin2.weight": (768, 3072), b + "mlp.lin2.bias": (768,)})
    shapes.update({"model.sam_model.neck.0.weight": (256, 768, 1, 1), "model.sam_model.neck.1.weight": (256,),
                   "model.sam_model.neck.1.bias": (256,), "model.sam_model.neck.2.weight": (256, 256, 3, 3),
                   "model.sam_model.neck.3.weight": (256,), "model.sam_model.neck.3.bias": (256,),
                   "model.sam_model.net_2.weight": (512, 256, 3, 3), "model.sam_model.net_3.weight": (1024, 512, 3, 3)})
    v = "model.vision_model."
    shapes.update({v + "embeddings.class_embedding": (1024,), v + "embeddings.patch_embedding.weight": (1024, 3, 14, 14),
                   v + "embeddings.position_embedding.weight": (257, 1024), v + "pre_layrnorm.weight": (1024,),
                   v + "pre_layrnorm.bias": (1024,)})
    for i in range(24):
        b = f"{v}transformer.layers.{i}."
        shapes.update({b + "layer_norm1.weight": (1024,), b + "layer_norm1.bias": (1024,),
                       b + "self_attn.qkv_proj.weight": (3072, 1024), b + "self_attn.qkv_proj.bias": (3072,),
                       b + "self_attn.out_proj.weight": (1024, 1024), b + "self_attn.out_proj.bias": (1024,),
                       b + "mlp.fc1.weight": (4096, 1024), b + "mlp.fc1.bias": (4096,), b + "mlp.fc2.weight": (1024, 4096),
                       b + "mlp.fc2.bias": (1024,), b + "layer_norm2.weight": (1024,), b + "layer_norm2.bias": (1024,)})
    return shapes


def test_full_size_deepseek_key_list_and_shapes_without_running():
    shapes = _published_deepseek_shapes()
    assert sum(k.startswith("model.sam_model.") for k in shapes) == 179
    assert sum(k.startswith("model.vision_model.") for k in shapes) == 293
    with torch.device("meta"):
        model = DeepEncoder(DeepEncoderConfig())
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    plan, report = plan_load({k: (s, None) for k, s in shapes.items()}, "deepseek-ocr", expected)
    assert set(plan) == set(expected) and report.loaded == 471
    assert report.ignored_in_tower_namespace == ["model.vision_model.embeddings.patch_embedding.weight"]
    # ... and our exporter produces exactly the published names and shapes, minus the patch conv.
    exported = {k: tuple(v.shape) for k, v in to_deepseek_layout(model).items()}
    del shapes["model.vision_model.embeddings.patch_embedding.weight"]
    assert exported == shapes
