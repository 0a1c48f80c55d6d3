"""Named DeepEncoder sizes (deepmolm_plugin.encoder.presets) and `--deepencoder_config NAME`."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from deepmolm_plugin.encoder import ENCODER_PRESETS, DeepEncoderConfig, encoder_config
from deepmolm_plugin.encoder.presets import config_argument
from deepmolm_plugin.encoder.tower import config_from_args
from deepmolm_plugin.training.inputs import check_inputs
from deepmolm_plugin.usage import UsageError

# The hand-written configs the presets replace, as they were: tests/conftest.py's
# tiny_encoder_config and deepmolm_plugin/demo.py's DEMO_ENCODER.
OLD_TINY = dict(
    image_size=128, tile_size=64, sam_width=32, sam_depth=2, sam_heads=2, sam_window_size=4,
    sam_global_attn_indexes=(1,), sam_out_chans=16, compressor_channels=(24, 32),
    clip_width=32, clip_layers=2, clip_heads=2, clip_position_grid=2,
)
OLD_DEMO = dict(
    image_size=256, tile_size=128, sam_width=64, sam_depth=2, sam_heads=4, sam_window_size=8,
    sam_global_attn_indexes=(1,), sam_out_chans=32, compressor_channels=(48, 64), clip_width=64,
    clip_layers=2, clip_heads=4, clip_position_grid=4,
)


def test_every_preset_is_a_valid_config():
    assert list(ENCODER_PRESETS) == ["deepseek-ocr", "tiny", "demo"]
    for name in ENCODER_PRESETS:
        config = encoder_config(name)
        assert isinstance(config, DeepEncoderConfig)
        assert DeepEncoderConfig.from_dict(config.to_dict()) == config  # survives the JSON round trip


def test_presets_equal_the_configs_they_replace():
    assert encoder_config("deepseek-ocr") == DeepEncoderConfig()
    assert encoder_config("deepseek-ocr").hidden_size == 2048 and encoder_config("deepseek-ocr").image_size == 1024
    assert encoder_config("tiny") == DeepEncoderConfig(**OLD_TINY)
    assert encoder_config("demo") == DeepEncoderConfig(**OLD_DEMO)
    from conftest import tiny_encoder_config
    from deepmolm_plugin.demo import DEMO_ENCODER

    assert tiny_encoder_config() == DeepEncoderConfig(**OLD_TINY)
    assert DEMO_ENCODER == DeepEncoderConfig(**OLD_DEMO)


def test_overrides_apply_on_top_and_leave_the_preset_alone():
    config = encoder_config("tiny", image_size=256, dtype="bfloat16")
    assert config.image_size == 256 and config.dtype == "bfloat16" and config.sam_width == 32
    assert encoder_config("tiny").image_size == 128
    with pytest.raises(TypeError):
        encoder_config("tiny", no_such_field=1)


def test_unknown_preset_names_the_presets():
    with pytest.raises(ValueError, match=r"unknown DeepEncoder preset 'huge': use one of deepseek-ocr, tiny, demo"):
        encoder_config("huge")


def test_config_argument_takes_a_file_or_a_preset_name(tmp_path, monkeypatch):
    assert config_argument("tiny") == encoder_config("tiny").to_dict()
    assert config_from_args(SimpleNamespace(deepencoder_config=config_argument("demo"))) == encoder_config("demo")
    path = tmp_path / "encoder.json"
    path.write_text(json.dumps(encoder_config("tiny", image_size=256).to_dict()))
    assert config_argument(path) == str(path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text(json.dumps(encoder_config("tiny").to_dict()))
    assert config_argument("demo") == "demo"  # an existing file wins over the preset of that name
    with pytest.raises(ValueError, match=r"--deepencoder_config nope: no such file, and not a preset name "
                                         r"\(presets: deepseek-ocr, tiny, demo\)"):
        config_argument("nope")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="folder: is a folder, not a file, and not a preset name"):
        config_argument("folder")


def _launcher_argv(tmp_path, encoder):
    data = tmp_path / "train.json"
    turns = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "Ethanol."}]
    data.write_text(json.dumps([{"id": "x", "smiles": "CCO", "conversations": turns}]))
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return ["--data_path", str(data), "--model_name_or_path", str(model), "--deepencoder_config", encoder]


def test_launcher_accepts_a_preset_name_and_refuses_anything_else(tmp_path):
    check_inputs(_launcher_argv(tmp_path, "demo"))
    path = tmp_path / "encoder.json"
    path.write_text(json.dumps(encoder_config("tiny").to_dict()))
    check_inputs(_launcher_argv(tmp_path, str(path)))
    with pytest.raises(UsageError, match=r"--deepencoder_config big: no such file, and not a preset name "
                                         r"\(presets: deepseek-ocr, tiny, demo\)"):
        check_inputs(_launcher_argv(tmp_path, "big"))


def test_host_model_arguments_turn_a_preset_name_into_its_fields(tmp_path):
    """The host's ModelArguments (ours, after register) as train.py parses them: the tower
    then builds the preset (tower.config_from_args takes the fields)."""
    import transformers

    import deepmolm_plugin

    deepmolm_plugin.register()
    import llava.train.train as host_train

    parser = transformers.HfArgumentParser((host_train.ModelArguments,))
    (model_args,) = parser.parse_args_into_dataclasses(["--deepencoder_config", "tiny"])
    assert config_from_args(model_args) == encoder_config("tiny")
    path = tmp_path / "encoder.json"
    path.write_text(json.dumps(encoder_config("demo").to_dict()))
    (model_args,) = parser.parse_args_into_dataclasses(["--deepencoder_config", str(path)])
    assert model_args.deepencoder_config == str(path) and config_from_args(model_args) == encoder_config("demo")
    with pytest.raises(ValueError, match="not a preset name"):
        parser.parse_args_into_dataclasses(["--deepencoder_config", "nope"])
