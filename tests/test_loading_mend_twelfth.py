"""Mend of the twelfth round's checkpoint loading (review rv12C, six findings).

1. a folder holding model.safetensors and an older pytorch_model.bin shard set read the .bin
   shards (transformers loads model.safetensors): load_llm refused a good model, and the tower
   loader took the stale tower without a word;
2. the LLM settings record held transformers' raw serialization (rope_theta vs rope_parameters,
   layer_types), so a model saved under transformers 4 was "edited" under 5;
3. a sharded folder given with another file was refused, the index blamed for the file's tensors;
4. a tokenizer whose vocabulary was added with add_tokens was refused as having none, with
   files named missing that never existed;
5. a CLIP .safetensors beside a deepencoder_config.json was given the tower's sizes;
6. optimizer.bin / scheduler.bin / pytorch_model_fsdp.bin were read as weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import tiny_encoder_config
from deepmolm_plugin.model import config_record
from deepmolm_plugin.model.loading import load_causal_lm_checked, load_llm, load_tokenizer
from deepmolm_plugin.tensor_files import CheckpointError, find_tensor_files, open_checkpoint
from tiny_models import make_tiny_qwen2

NORM = "model.norm.weight"
BIN_SHARDS = ("pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin")


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory) -> Path:
    return Path(make_tiny_qwen2(tmp_path_factory.mktemp("qwen2") / "qwen2"))


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _stale_bin_shards(folder: Path, state: dict) -> None:
    """An older sharded pytorch_model.bin save of `state` left in `folder`, with its index."""
    names = sorted(state)
    parts = dict(zip(BIN_SHARDS, (names[: len(names) // 2], names[len(names) // 2:])))
    for name, keys in parts.items():
        torch.save({k: state[k] for k in keys}, folder / name)
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: name for name, keys in parts.items() for k in keys}}))


# --- 1. transformers' order: model.safetensors before a .bin shard set ---------------------------

def test_model_safetensors_is_read_before_a_bin_shard_set_as_transformers_does(qwen2, tmp_path):
    folder = _copy(qwen2, tmp_path / "both")
    state = load_file(str(qwen2 / "model.safetensors"))
    stale = {k: v.clone() for k, v in state.items()}
    stale[NORM] = stale[NORM].to(torch.int64)  # a damaged stale copy: refused if it were read
    _stale_bin_shards(folder, stale)
    assert [p.name for p in find_tensor_files(folder)] == ["model.safetensors"]
    model = load_llm(str(folder), dtype=torch.float32)  # was: "stores 1 floating-point weights as integers"
    assert torch.equal(model.state_dict()[NORM], state[NORM])
    load_causal_lm_checked(str(folder))


def test_the_tower_loader_reads_model_safetensors_not_stale_bin_shards(tmp_path):
    from deepmolm_plugin.encoder.model import DeepEncoder, load_deepencoder

    prefix = "model.vision_tower.vision_tower."
    torch.manual_seed(0)
    new = DeepEncoder(tiny_encoder_config()).eval()
    torch.manual_seed(1)
    old = DeepEncoder(tiny_encoder_config()).eval()
    save_file({prefix + k: v.contiguous() for k, v in new.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "llava_qwen2", "deepencoder_config": tiny_encoder_config().to_dict()}))
    _stale_bin_shards(tmp_path, {prefix + k: v.clone() for k, v in old.state_dict().items()})
    key = "sam.patch_embed.proj.weight"
    assert not torch.equal(new.state_dict()[key], old.state_dict()[key])
    tower = load_deepencoder(tmp_path)
    assert torch.equal(tower.state_dict()[key], new.state_dict()[key])  # was: the stale .bin copy


def test_pytorch_model_bin_is_read_before_other_files_and_beside_its_own_index_refused(qwen2, tmp_path):
    state = load_file(str(qwen2 / "model.safetensors"))
    torch.save(state, tmp_path / "pytorch_model.bin")
    save_file({"lora_A.weight": torch.zeros(2)}, str(tmp_path / "adapter_model.safetensors"))
    assert [p.name for p in find_tensor_files(tmp_path)] == ["pytorch_model.bin"]  # was: the adapter
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {}}))  # never read
    (tmp_path / "model.safetensors.index.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="is not a readable JSON shard index"):
        find_tensor_files(tmp_path)  # the safetensors index comes before pytorch_model.bin
    (tmp_path / "model.safetensors.index.json").unlink()
    with pytest.raises(CheckpointError, match="holds both pytorch_model.bin and the shard index "
                                              "pytorch_model.bin.index.json"):
        find_tensor_files(tmp_path)


# --- 6. the Trainer's and accelerate's .bin state files are no weights ---------------------------

def test_optimizer_scheduler_and_fsdp_bin_files_are_never_read_as_weights(qwen2, tmp_path):
    state = load_file(str(qwen2 / "model.safetensors"))
    for name in ("optimizer.bin", "scheduler.bin", "pytorch_model_fsdp.bin", "pytorch_model_fsdp_1.bin"):
        torch.save({"state": {}, "param_groups": []}, tmp_path / name)
    torch.save(state, tmp_path / "weights.bin")  # a folder without pytorch_model.bin
    assert [p.name for p in find_tensor_files(tmp_path)] == ["weights.bin"]
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "weights.bin").unlink()
    assert [p.name for p in find_tensor_files(tmp_path)] == ["pytorch_model.bin"]


# --- 3. a sharded folder and another file, given together ----------------------------------------

def test_a_sharded_folder_given_with_another_file_loads(tmp_path):
    folder = tmp_path / "sharded"
    folder.mkdir()
    save_file({"a.weight": torch.zeros(2)}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({"b.weight": torch.zeros(2)}, str(folder / "model-00002-of-00002.safetensors"))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}))
    save_file({"c.weight": torch.zeros(2)}, str(tmp_path / "extra.safetensors"))
    # was: "1 tensors the index does not name: c.weight (stored in extra.safetensors)"
    assert sorted(open_checkpoint([folder, tmp_path / "extra.safetensors"])) == ["a.weight", "b.weight", "c.weight"]
    # the folder's own shards are still held to its index
    save_file({"b.weight": torch.zeros(2), "d.weight": torch.zeros(2)}, str(folder / "model-00002-of-00002.safetensors"))
    with pytest.raises(CheckpointError, match=r"1 tensors the index does not name: d\.weight \(stored in "
                                              r"model-00002-of-00002\.safetensors\) \(a stale"):
        open_checkpoint([folder, tmp_path / "extra.safetensors"])


# --- 2. the LLM settings record, whatever transformers version wrote it --------------------------

@pytest.fixture(scope="module")
def saved_llava(qwen2, tmp_path_factory) -> Path:
    from deepmolm_plugin.model.llava_qwen2 import register_auto_classes

    register_auto_classes()
    folder = tmp_path_factory.mktemp("saved") / "llava"
    load_llm(str(qwen2), dtype=torch.float32).save_pretrained(str(folder))
    return folder


def _as_transformers_4(config: dict, theta: float) -> dict:
    """What a transformers 4.x (before 4.53) save writes, in config.json and in the raw record:
    rope_theta at top level, no rope_parameters, no layer_types, sliding_window kept."""
    out = json.loads(json.dumps(config))
    for d in (out, out[config_record.RECORD]):
        d.pop("rope_parameters", None)
        d.pop("layer_types", None)
        d.update({"rope_theta": theta, "rope_scaling": None, "use_sliding_window": False,
                  "sliding_window": 4096, "max_window_layers": 28})
    out["transformers_version"] = "4.51.3"
    return out


def _write_config(src: Path, dst: Path, config: dict) -> Path:
    folder = _copy(src, dst)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_the_record_holds_normalised_llm_settings_with_no_version_only_nulls(saved_llava):
    record = json.loads((saved_llava / "config.json").read_text())[config_record.RECORD]
    for raw in ("rope_theta", "rope_scaling", "use_sliding_window", "max_window_layers"):
        assert raw not in record  # was: rope_theta null under transformers 5, rope_parameters null under 4
    assert record["rope_parameters"]["rope_theta"] == 10000.0 and record["rope_parameters"]["rope_type"] == "default"
    assert record["head_dim"] == 16 and record["layer_types"] == ["full_attention", "full_attention"]


def test_a_model_saved_under_transformers_4_loads_and_an_edit_in_its_spelling_is_refused(saved_llava, tmp_path):
    config = json.loads((saved_llava / "config.json").read_text())
    v4 = _write_config(saved_llava, tmp_path / "v4", _as_transformers_4(config, 10000.0))
    load_llm(str(v4), dtype=torch.float32)  # was: "rope_theta None (saved with 10000.0)"
    edited = _as_transformers_4(config, 10000.0)
    edited["rope_theta"] = 1e6
    folder = _write_config(saved_llava, tmp_path / "v4_edited", edited)
    with pytest.raises(CheckpointError, match=r"config.json was edited after the model was saved: "
                                              r"rope_parameters.rope_theta 1000000.0 \(saved with 10000.0\)"):
        load_llm(str(folder), dtype=torch.float32)


def test_a_record_in_the_raw_form_saved_earlier_today_still_loads(saved_llava, tmp_path):
    config = json.loads((saved_llava / "config.json").read_text())
    record = config[config_record.RECORD]
    # as 69ace91 recorded under transformers 5: raw fields, rope_theta null, head_dim null
    record.update({"rope_theta": None, "rope_scaling": None, "head_dim": None, "use_sliding_window": False,
                   "sliding_window": None, "max_window_layers": 28,
                   "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}})
    load_llm(str(_write_config(saved_llava, tmp_path / "raw", config)), dtype=torch.float32)


def test_normalised_settings_agree_across_spellings_of_rope_scaling_and_sliding_layers():
    v5 = {"num_attention_heads": 4, "hidden_size": 64, "num_hidden_layers": 4, "max_position_embeddings": 512,
          "rope_theta": None, "rope_scaling": None,
          "rope_parameters": {"type": "yarn", "factor": 4.0, "rope_theta": 5e5, "rope_type": "yarn",
                              "original_max_position_embeddings": 512},
          "use_sliding_window": True, "sliding_window": 8, "max_window_layers": 2,
          "layer_types": ["full_attention", "full_attention", "sliding_attention", "sliding_attention"]}
    v4 = {**v5, "rope_parameters": None, "rope_theta": 5e5, "rope_scaling": {"type": "yarn", "factor": 4.0}}
    v4.pop("layer_types")
    assert config_record.llm_settings(v4) == config_record.llm_settings(v5)
    assert config_record.llm_settings({**v4, "max_window_layers": 3}) != config_record.llm_settings(v5)


# --- 4. a tokenizer whose vocabulary was added with add_tokens -----------------------------------

def _word_level_tokenizer(folder: Path, added=()):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
                                  unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    tok.add_tokens(list(added))
    tok.save_pretrained(str(folder))


def test_a_tokenizer_whose_vocabulary_was_added_with_add_tokens_loads(tmp_path):
    _word_level_tokenizer(tmp_path, "CNOScno()[]=#@+-123456789")
    assert len(load_tokenizer(str(tmp_path))) > 20  # was: "no tokenizer vocabulary ... only its 29 special tokens"


def test_a_tokenizer_json_without_vocabulary_is_refused_without_calling_it_missing(tmp_path):
    _word_level_tokenizer(tmp_path)
    with pytest.raises(CheckpointError) as error:
        load_tokenizer(str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"{tmp_path}: no tokenizer vocabulary")
    assert "its tokenizer.json holds no vocabulary" in message and "missing" not in message
    assert "'CC(=O)O water'" in message and "\n" not in message


# --- 5. a CLIP file kept beside a deepencoder_config.json ----------------------------------------

def test_a_clip_file_beside_a_tower_config_gets_no_saved_config(tmp_path):
    from deepmolm_plugin.encoder.checkpoint import check_config_matches, checkpoint_config
    from deepmolm_plugin.encoder.config import DeepEncoderConfig

    tiny_encoder_config().save(tmp_path)  # deepencoder_config.json, left by an earlier save_pretrained
    clip = tmp_path / "clip_vit_l.safetensors"
    save_file({"vision_model.embeddings.class_embedding": torch.zeros(8)}, str(clip))
    assert checkpoint_config(clip).clip_heads == DeepEncoderConfig().clip_heads  # was: the tiny tower's 2
    check_config_matches(DeepEncoderConfig(), clip)  # was: "does not match ... clip_heads: given 16 vs saved 2"
    # a file of the tower's own layout under another name is still held to the config beside it
    tower = tmp_path / "tower_step9.safetensors"
    save_file({"compressor.net_0.weight": torch.zeros(2)}, str(tower))
    with pytest.raises(CheckpointError, match="clip_heads: given 16 vs saved"):
        check_config_matches(DeepEncoderConfig(), tower)
