"""LlavaQwen2ForCausalLM, sixth hostile sweep: batched and one-token generation, images
against <image> slots, generate(input_ids=...), tile arguments, molecule_fp dtypes,
ProjectorConfig numbers, and a config edited after the projector was built."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_encoder_config

import deepmolm_plugin
from deepmolm_plugin.molecule_fp import FingerprintSettings, MoleculeFpError, collate, validate, validate_batch
from deepmolm_plugin.projector import ProjectorConfig
from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX

deepmolm_plugin.register()

WITH_SLOT = [5, 6, IMAGE_TOKEN_INDEX, 7, 8]
NO_SLOT = [5, 6, 7, 8]


def _model(image_mode="base", heads=2, fp_bits=64):
    """A tiny llava_qwen2 (1-layer Qwen2, tiny DeepEncoder, fusion projector), seeded, eval mode."""
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2Config, LlavaQwen2ForCausalLM

    config = LlavaQwen2Config(
        vocab_size=900, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, max_position_embeddings=512, mm_vision_tower="deepencoder",
        deepencoder_config=tiny_encoder_config().to_dict(), vision_tower_weights="random", mm_projector_type="fusion",
        mm_hidden_size=64, fp_bits=fp_bits, fp_levels=4, fusion_heads=heads, image_mode=image_mode)
    torch.manual_seed(0)
    model = LlavaQwen2ForCausalLM(config).eval()
    model.generation_config.pad_token_id = 0
    return model


@pytest.fixture(scope="module")
def model():
    return _model()


def _fp(atoms, seed):
    return torch.randint(0, 64, (atoms, 4), generator=torch.Generator().manual_seed(seed))


def _image(seed):
    return torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(seed))


GREEDY = dict(max_new_tokens=3, do_sample=False, output_scores=True, return_dict_in_generate=True)


# --- 1. batched generation -------------------------------------------------------------------------
def test_batched_generate_answers_each_prompt_as_it_would_alone(model):
    model.config.tokenizer_padding_side = "right"  # what llava's train.py writes into every trained config
    short, long_ = WITH_SLOT, [5, 6, IMAGE_TOKEN_INDEX, 9, 9, 9, 9, 9, 9]
    mols, images = [_fp(3, 1), _fp(40, 2)], [_image(1), _image(2)]
    alone = [model.generate(inputs=torch.tensor([ids]), images=im, molecule_fp=m[None], **GREEDY)
             for ids, im, m in zip((short, long_), images, mols)]
    both = model.generate(inputs=torch.tensor([[0] * 4 + short, long_]), attention_mask=torch.tensor(
        [[0] * 4 + [1] * 5, [1] * 9]), images=torch.cat(images), molecule_fp=collate(mols), **GREEDY)
    # was: the shorter prompt's first new token was predicted at a right-pad position (logits off by 0.49)
    for i in range(2):
        assert both.sequences[i].tolist() == alone[i].sequences[0].tolist()
        assert torch.allclose(both.scores[0][i], alone[i].scores[0][0], atol=1e-5, rtol=0)
    assert model.config.tokenizer_padding_side == "right"  # training's own side is kept


# --- 2. one-token prompts --------------------------------------------------------------------------
def test_a_one_token_image_prompt_is_spliced_with_its_image_and_molecule(model):
    ids = torch.tensor([[IMAGE_TOKEN_INDEX]])
    # was: forward was an IndexError; generate ignored prompt, image and molecule (the same tokens from BOS)
    out1 = model(input_ids=ids, images=_image(1), molecule_fp=_fp(3, 1)[None]).logits
    out2 = model(input_ids=ids, images=_image(2), molecule_fp=_fp(40, 2)[None]).logits
    assert out1.shape[1] == out2.shape[1] > 1  # the image's positions, not one token
    assert (out1 - out2).abs().max() > 1e-3
    gen1 = model.generate(inputs=ids, images=_image(1), molecule_fp=_fp(3, 1)[None], **GREEDY)
    gen2 = model.generate(inputs=ids, images=_image(2), molecule_fp=_fp(40, 2)[None], **GREEDY)
    assert torch.allclose(gen1.scores[0][0], out1[0, -1], atol=1e-5, rtol=0)
    assert (gen1.scores[0] - gen2.scores[0]).abs().max() > 1e-4


def test_a_one_token_image_prompt_trains_like_a_longer_one(model):
    one = model(input_ids=torch.tensor([[IMAGE_TOKEN_INDEX]]), labels=torch.tensor([[IGNORE_INDEX]]),
                images=_image(1), molecule_fp=_fp(3, 1)[None])
    assert one.logits.shape[1] > 1  # was: the image dropped, the loss over one text token


def test_a_one_token_prompt_without_image_slot_given_an_image_is_refused(model):
    # was: logits of token 5 alone, the image and molecule unused without a word
    with pytest.raises(ValueError, match=r"prompt 0 has no <image> slot"):
        model(input_ids=torch.tensor([[5]]), images=_image(1), molecule_fp=_fp(3, 1)[None])


def test_generate_with_images_but_no_spliced_prompt_is_an_error(model, monkeypatch):
    monkeypatch.setattr(model, "get_vision_tower", lambda: None)  # the splice then hands back no embeddings
    with pytest.raises(ValueError, match=r"images were given, but the prompt was not spliced with them"):
        model.generate(inputs=torch.tensor([WITH_SLOT]), images=_image(1), max_new_tokens=1, do_sample=False)


# --- 3. images against <image> slots ---------------------------------------------------------------
@pytest.mark.parametrize("prompts,n_images,message", [
    ([NO_SLOT], 1, r"1 images \(and molecules\) were given, but prompt 0 has no <image> slot"),
    ([WITH_SLOT], 2, r"2 images \(and molecules\) but 1 <image> slots in the prompts \(per prompt: \[1\]\)"),
    ([WITH_SLOT, WITH_SLOT], 1, r"1 images \(and molecules\) but 2 <image> slots in the prompts"),
])
def test_images_that_do_not_match_the_image_slots_are_refused(model, prompts, n_images, message):
    images = torch.cat([_image(i) for i in range(n_images)])
    mols = collate([_fp(3 + i, i) for i in range(n_images)])
    # was: extra images and molecules dropped without a word; too few an IndexError inside llava_arch
    with pytest.raises(ValueError, match=message):
        model(input_ids=torch.tensor(prompts), images=images, molecule_fp=mols)


def test_a_masked_image_token_is_no_slot(model):
    ids, mask = torch.tensor([[IMAGE_TOKEN_INDEX] + WITH_SLOT]), torch.tensor([[0] + [1] * 5])
    with pytest.raises(ValueError, match=r"2 images \(and molecules\) but 1 <image> slots"):
        model(input_ids=ids, attention_mask=mask, images=torch.cat([_image(1), _image(2)]),
              molecule_fp=collate([_fp(3, 1), _fp(4, 2)]))


def test_training_keeps_the_hosts_placeholder_image_for_text_only_samples(model):
    # the host's train.py gives a text-only record a blank image; its splice takes one per such prompt
    ids = torch.tensor([WITH_SLOT, NO_SLOT + [0]])
    mask = torch.tensor([[1] * 5, [1] * 4 + [0]])
    out = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(ids < 0, IGNORE_INDEX),
                images=torch.cat([_image(1), torch.zeros(1, 3, 128, 128)]), molecule_fp=collate([_fp(3, 1), _fp(2, 2)]))
    assert math.isfinite(out.loss.item())
    with pytest.raises(ValueError, match=r"1 images \(and molecules\) but 1 <image> slots in the prompts and 1 "
                                         r"prompts without one"):
        model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(ids < 0, IGNORE_INDEX),
              images=_image(1), molecule_fp=_fp(3, 1)[None])


# --- 4. molecule_fp dtypes -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int16, torch.uint16, torch.uint32, torch.uint64])
def test_validate_batch_judges_any_integer_dtype_by_its_values_as_validate_does(dtype):
    settings = FingerprintSettings(4096, 4)
    tokens = torch.tensor([[[10, 20, 30, 40], [11, 21, 31, 41]]])
    assert validate(tokens[0].to(dtype), settings).tolist() == tokens[0].tolist()
    # was: int8/uint8 "hash 10 must be in [0, 4096)"; uint16/32/64 torch's NotImplementedError
    checked = validate_batch(tokens.to(dtype), 1, settings)
    assert checked.dtype == torch.int64 and torch.equal(checked, tokens)


def test_validate_batch_refuses_an_unsigned_value_that_int64_would_wrap_to_padding():
    tokens = torch.tensor([[[10, 20, 30, 40], [2**64 - 1, 21, 31, 41]]], dtype=torch.uint64)
    with pytest.raises(MoleculeFpError, match=r"outside \[-1, 4096\).*molecule_fp\[0, 1, 0\]"):
        validate_batch(tokens, 1, FingerprintSettings(4096, 4))


def test_the_model_takes_uint16_molecule_tokens(model):
    tokens = _fp(3, 1)[None]
    ids = torch.tensor([WITH_SLOT])
    expected = model(input_ids=ids, images=_image(1), molecule_fp=tokens).logits
    got = model(input_ids=ids, images=_image(1), molecule_fp=tokens.to(torch.uint16)).logits
    assert torch.equal(got, expected)


# --- 5. generate(input_ids=...) --------------------------------------------------------------------
def test_generate_takes_the_prompt_as_input_ids(model):
    kw = dict(images=_image(1), molecule_fp=_fp(3, 1)[None], max_new_tokens=2, do_sample=False)
    ids = torch.tensor([WITH_SLOT])
    # was: AttributeError 'NoneType' object has no attribute 'shape' (text only: an embedding TypeError)
    assert model.generate(input_ids=ids, **kw).tolist() == model.generate(ids, **kw).tolist()
    assert (model.generate(input_ids=ids[:, :2], max_new_tokens=2, do_sample=False).tolist()
            == model.generate(ids[:, :2], max_new_tokens=2, do_sample=False).tolist())
    with pytest.raises(ValueError, match=r"generate got the prompt twice, as inputs and as input_ids"):
        model.generate(ids, input_ids=ids, **kw)


# --- 6. tile arguments -----------------------------------------------------------------------------
def test_tile_grids_without_tile_images_are_refused_in_tiles_mode():
    tiles_model = _model(image_mode="tiles")
    ids, mol = torch.tensor([WITH_SLOT]), _fp(3, 1)[None]
    with_tiles = tiles_model(input_ids=ids, images=_image(1), molecule_fp=mol,
                             tile_images=[torch.randn(4, 3, 64, 64)], tile_grids=[(2, 2)]).logits
    assert with_tiles.shape[1] > len(WITH_SLOT)
    # was: the grid dropped, the image laid out as its global view alone
    with pytest.raises(ValueError, match=r"tile_grids were given without tile_images"):
        tiles_model(input_ids=ids, images=_image(1), molecule_fp=mol, tile_grids=[(2, 2)])


def test_tiles_for_a_base_mode_model_are_refused(model):
    # was: laid out as a mosaic the model never trained on
    with pytest.raises(ValueError, match=r"vision tower is in 'base' image mode"):
        model(input_ids=torch.tensor([WITH_SLOT]), images=_image(1), molecule_fp=_fp(3, 1)[None],
              tile_images=[torch.randn(4, 3, 64, 64)], tile_grids=[(2, 2)])


# --- 7. ProjectorConfig numbers --------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [
    ("dropout", "0.1"), ("dropout", float("nan")), ("dropout", True),
    ("layer_norm_eps", "1e-5"), ("layer_norm_eps", float("inf")), ("layer_norm_eps", float("nan")),
])
def test_projector_config_numbers_must_be_finite_numbers(field, value):
    # was: a bare TypeError naming no field ("0.1"); inf taken (every output token identical)
    with pytest.raises(ValueError, match=rf"ProjectorConfig\.{field} must be a finite number, got"):
        ProjectorConfig(hidden_size=16, mm_hidden_size=8, **{field: value})


# --- 8. the saved config against the built projector -----------------------------------------------
def test_saving_a_config_edited_after_the_projector_was_built_is_refused(tmp_path):
    edited = _model(heads=4)
    edited.config.fusion_heads = 2
    # was: saved, and reloaded as a 2-head projector computing other logits
    with pytest.raises(ValueError, match=r"fusion_heads=2 \(the projector was built with 4\)"):
        edited.save_pretrained(str(tmp_path / "edited"))
    assert not (tmp_path / "edited" / "config.json").exists()
    edited.config.fusion_heads = 4
    edited.save_pretrained(str(tmp_path / "kept"))
    assert (tmp_path / "kept" / "config.json").exists()
