"""The DeepEncoder tiles check at every entry point, eighteenth sweep.

`DeepEncoderConfig.check_tiles` (tiles larger than the global view, or too small to add detail)
ran only in the train launcher, and only for `--deepencoder_config`. A tiles-mode configuration
from anywhere else was built and ran without a word: a saved model's config.json (chat, eval,
the GUI, LlavaQwen2ForCausalLM.from_pretrained, training on from it), the configuration saved
with `--vision_tower_weights`, a tower built in Python. With 192 px tiles on a 128 px global
view an image up to 192 px got no tile at all, and a larger one was enlarged into tiles of 9
tokens each beside a global view of 4. Now DeepEncoderImageProcessor.from_config, where every
tower's configuration meets its mode, checks them, and each way in names where the values are.
"""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_encoder_config
from host_fixtures import train_args

import deepmolm_plugin
from deepmolm_plugin import usage
from deepmolm_plugin.encoder import DeepEncoder
from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower
from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2Config, LlavaQwen2ForCausalLM
from deepmolm_plugin.tensor_files import CheckpointError

deepmolm_plugin.register()

# what check_tiles says of 192 px tiles on the tiny preset's 128 px global view
TOO_LARGE = ("DeepEncoderConfig.tile_size 192 is larger than image_size 128: an image up to 192 px a side would get "
             "no tile at all, and a larger one be enlarged into tiles of more tokens each than the global view; give "
             "tile_size <= image_size (DeepSeek-OCR: 640 with 1024)")


def _saved_model(path):
    """A tiny tiles-mode llava_qwen2 (1-layer Qwen2, tiny DeepEncoder with its 64 px tiles,
    fusion projector) saved in `path`."""
    fields = dict(vocab_size=900, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                  intermediate_size=64, max_position_embeddings=512, mm_vision_tower="deepencoder",
                  deepencoder_config=tiny_encoder_config().to_dict(), vision_tower_weights="random",
                  mm_projector_type="fusion", mm_hidden_size=64, fp_bits=64, fp_levels=4, fusion_heads=2,
                  image_mode="tiles", image_aspect_ratio="pad")
    torch.manual_seed(0)
    LlavaQwen2ForCausalLM(LlavaQwen2Config(**fields)).save_pretrained(str(path))
    return path


def _saved_with_tiles(path, tile_size: int):
    """The saved model in `path` with its tower's tile_size set to `tile_size` in config.json and
    in its record of saved settings alike: a model saved with that value (built in Python, or
    trained from a --vision_tower_weights folder, which nothing checked), not one edited since."""
    config = json.loads((path / "config.json").read_text())
    config["deepencoder_config"]["tile_size"] = tile_size
    config["deepmolm_saved_settings"]["deepencoder_config"]["tile_size"] = tile_size
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(a saved tiles model with the tiny preset's 64 px tiles, the same saved with 192 px tiles)."""
    root = tmp_path_factory.mktemp("saved")
    good = _saved_model(root / "good")
    shutil.copytree(good, root / "bad")
    return good, _saved_with_tiles(root / "bad", 192)


def _tower_folder(path, tile_size: int):
    """A saved DeepEncoder folder (weights + deepencoder_config.json) with `tile_size`."""
    torch.manual_seed(0)
    DeepEncoder(tiny_encoder_config(tile_size=tile_size)).save_pretrained(path)
    return path


def test_every_loader_refuses_a_saved_tiles_model_naming_its_config_json(saved):
    from deepmolm_plugin.model.loading import load_llm, load_pretrained_model

    good, bad = saved
    assert load_llm(str(good)).get_vision_tower().image_processor.tile_size == 64  # the preset's tiles load
    # was: loaded, and ran its 192 px tiles
    with pytest.raises(ValueError) as error:  # the notebook way in
        LlavaQwen2ForCausalLM.from_pretrained(str(bad))
    assert str(error.value) == f"the deepencoder_config of {bad}/config.json in image_mode 'tiles': {TOO_LARGE}"
    with pytest.raises(CheckpointError) as error:
        load_llm(str(bad))
    assert str(error.value) == (f"{bad}: cannot build the model its config.json describes: the deepencoder_config of "
                                f"{bad}/config.json in image_mode 'tiles': {TOO_LARGE}")
    # the chat CLI's, eval's and the GUI's loader: refused from config.json before the tokenizer or weights
    with pytest.raises(CheckpointError) as error:
        load_pretrained_model(str(bad), device="cpu", dtype="float32")
    assert str(error.value) == f"{bad}/config.json: deepencoder_config in image_mode 'tiles': {TOO_LARGE}"


def test_chat_eval_and_the_gui_refuse_it_before_anything_loads(saved):
    # their first check of --model-path (cli.checkpoint_depiction); was: passed, and so did every
    # image checked against the tiles before the model loaded
    from deepmolm_plugin.cli import checkpoint_depiction

    good, bad = saved
    assert checkpoint_depiction(str(good), "auto").policy == "auto"
    with pytest.raises(usage.UsageError) as error:
        checkpoint_depiction(str(bad), "auto")
    assert str(error.value) == f"--model-path: {bad}/config.json: deepencoder_config in image_mode 'tiles': {TOO_LARGE}"


def test_a_tower_checks_its_tiles_wherever_its_configuration_comes_from(tmp_path):
    weights = _tower_folder(tmp_path / "tower", 192)
    # was: built, in tiles mode, from the configuration saved with its weights
    with pytest.raises(ValueError) as error:
        DeepEncoderVisionTower("deepencoder", SimpleNamespace(vision_tower_weights=str(weights), image_mode="tiles"))
    assert str(error.value) == (f"the DeepEncoder configuration saved with vision_tower_weights {weights} in "
                                f"image_mode 'tiles': {TOO_LARGE}")
    base = DeepEncoderVisionTower("deepencoder", SimpleNamespace(vision_tower_weights=str(weights), image_mode="base"))
    assert base.encoder_config.tile_size == 192  # base mode cuts no tile: never read, still built
    # a configuration file, and tiles too small to add detail (the mosaic, at most 6 x 64 px a side,
    # is no larger than the 384 px global view)
    small = tmp_path / "small.json"
    small.write_text(json.dumps(tiny_encoder_config(image_size=384, tile_size=64).to_dict()))
    with pytest.raises(ValueError, match=rf"^deepencoder_config {small} in image_mode 'tiles': DeepEncoderConfig."
                                         r"tile_size 64 is too small for image_size 384: the tile mosaic is at most 6 "
                                         r"tiles a side, 384 px, .*give tile_size >= 128 "):
        DeepEncoderVisionTower("deepencoder", SimpleNamespace(deepencoder_config=str(small), image_mode="tiles",
                                                              vision_tower_weights="random"))


def test_the_image_check_made_before_the_model_loads_shares_the_tower_s_processor(tmp_path):
    # check_model_views (chat's --image-file, eval's question images, the GUI's upload): was
    # silent on the tiles, so an image passed against a configuration the tower then ran with
    from PIL import Image

    from deepmolm_plugin.encoder.tower import check_model_views

    image = tmp_path / "wide.png"
    Image.new("RGB", (300, 200), "white").save(image)
    config = SimpleNamespace(image_mode="tiles", image_aspect_ratio="pad",
                             deepencoder_config=tiny_encoder_config(tile_size=192).to_dict())
    with pytest.raises(ValueError) as error:
        check_model_views(str(image), config)
    assert str(error.value) == f"deepencoder_config in image_mode 'tiles': {TOO_LARGE}"
    config.deepencoder_config = tiny_encoder_config().to_dict()  # the preset's 64 px tiles
    check_model_views(str(image), config)


def test_the_train_launcher_refuses_a_saved_tiles_model_before_the_llm_loads(saved, tiny_setup, tmp_path):
    from deepmolm_plugin.training.inputs import check_inputs

    good, bad = saved
    argv = train_args({**tiny_setup, "llm": bad}, tmp_path / "out", "--mm_projector", "fusion", "--image_mode",
                      "tiles", steps=1)
    # was: accepted, and the run trained on the saved model's 192 px tiles (exit 0); its own
    # --deepencoder_config (the tiny preset's 64 px tiles) is not what the saved tower is built from
    with pytest.raises(usage.UsageError) as error:
        check_inputs(argv)
    assert str(error.value) == (f"--model_name_or_path: {bad}/config.json: deepencoder_config in image_mode 'tiles': "
                                f"{TOO_LARGE}")
    check_inputs([str(good) if arg == str(bad) else arg for arg in argv])


def test_the_train_launcher_refuses_the_tiles_saved_with_the_tower_weights(tiny_setup, tmp_path):
    from deepmolm_plugin.training.inputs import check_inputs

    weights = _tower_folder(tmp_path / "tower", 192)
    argv = train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion", steps=1)
    at = argv.index("--deepencoder_config")
    argv = argv[:at] + argv[at + 2:]  # the tower takes the configuration saved with its weights
    argv[argv.index("--vision_tower_weights") + 1] = str(weights)
    # was: accepted; the tower was built with 192 px tiles once the LLM had loaded
    with pytest.raises(usage.UsageError) as error:
        check_inputs([*argv, "--image_mode", "tiles"])
    assert str(error.value) == (f"--vision_tower_weights {weights} (the DeepEncoder configuration saved with them) "
                                f"with --image_mode tiles: {TOO_LARGE}")
    check_inputs(argv)  # base mode: no tile is cut
