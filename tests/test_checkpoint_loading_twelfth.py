"""LLM checkpoint loading (sweep 12, area C): every loader reads the stored files one way.

- a model folder without its tokenizer vocabulary (tokenizer.json) gave a 3-token tokenizer:
  eval wrote empty answers and training ran on nothing, both exit 0;
- two shards holding one tensor, or a tensor outside the shard its index names: load_llm and
  the KFLM2 loader took the copy read last, without a word;
- the LLM's settings no tensor shape shows (heads, eps, RoPE, activation) could be edited in a
  saved config.json;
- a pytorch_model.bin checkpoint (or one whose model.safetensors was lost) was refused as if
  training_args.bin were damaged weights;
- the KFLM2 loader took float weights stored as integers; a Qwen2-VL tensor under its old and
  new names loaded one copy;
- shard-index messages: a stale index, an empty weight_map, shard names with a path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from deepmolm_plugin.model import config_record
from deepmolm_plugin.model.loading import load_causal_lm_checked, load_llm, load_tokenizer
from deepmolm_plugin.tensor_files import CheckpointError, find_tensor_files, open_checkpoint
from tiny_models import make_tiny_qwen2

LOADERS = {"load_llm": lambda p: load_llm(str(p), dtype=torch.float32),
           "load_causal_lm_checked (KFLM2)": lambda p: load_causal_lm_checked(str(p))}
NORM = "model.norm.weight"


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory) -> Path:
    """A tiny plain Qwen2 folder (weights, config.json, tokenizer)."""
    return Path(make_tiny_qwen2(tmp_path_factory.mktemp("qwen2") / "qwen2"))


def _copy(src: Path, dst: Path, weights: bool = True) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if weights or f.name != "model.safetensors":
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _two_shards(src: Path, dst: Path, extra_in_second=None, index_of=None) -> dict:
    """`src`'s weights split over two shards with an index; `extra_in_second` adds tensors to
    shard 2; `index_of` overrides index entries."""
    _copy(src, dst, weights=False)
    state = load_file(str(src / "model.safetensors"))
    names = sorted(state)
    first, second = names[: len(names) // 2], names[len(names) // 2:]
    shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    save_file({k: state[k] for k in first}, str(dst / shard1))
    save_file({**{k: state[k] for k in second}, **(extra_in_second or {})}, str(dst / shard2))
    weight_map = {**{k: shard1 for k in first}, **{k: shard2 for k in second}, **(index_of or {})}
    (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return state


# --- 1. a tokenizer without its vocabulary -----------------------------------------------------

def test_a_model_folder_without_tokenizer_json_is_refused_naming_the_files(qwen2, tmp_path):
    assert len(load_tokenizer(str(qwen2))) > 100  # the intact folder
    folder = _copy(qwen2, tmp_path / "copy")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError) as error:
        load_tokenizer(str(folder))
    message = str(error.value)
    assert message.startswith(f"{folder}: no tokenizer vocabulary")
    assert "tokenizer.json" in message and "special tokens" in message and "\n" not in message


def test_the_training_launcher_refuses_such_a_base_model_in_one_line(tmp_path):
    from host_fixtures import run_module, train_args, write_tiny_setup

    setup = write_tiny_setup(tmp_path / "setup")
    (setup["llm"] / "tokenizer.json").unlink()
    proc = run_module("deepmolm_plugin.train", train_args(setup, tmp_path / "out", steps=1), cwd=tmp_path,
                      check=False, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]  # was 0: it trained on special tokens only
    assert f"--model_name_or_path {setup['llm']}: no tokenizer vocabulary" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- 2. a tensor in two shards, or not where the index says -------------------------------------

@pytest.mark.parametrize("loader", LOADERS)
def test_a_tensor_in_two_shards_is_refused_naming_both_files(qwen2, tmp_path, loader):
    state = load_file(str(qwen2 / "model.safetensors"))
    folder = tmp_path / "dup"
    names = sorted(state)
    key = names[0]  # in shard 1 (and its index entry); a stale copy in shard 2
    _two_shards(qwen2, folder, extra_in_second={key: torch.full_like(state[key], 7.0)})
    with pytest.raises(CheckpointError) as error:
        LOADERS[loader](folder)
    message = str(error.value)
    assert repr(key) in message
    assert "model-00001-of-00002.safetensors" in message and "model-00002-of-00002.safetensors" in message


@pytest.mark.parametrize("loader", LOADERS)
def test_a_tensor_outside_the_shard_its_index_names_is_refused(qwen2, tmp_path, loader):
    state = load_file(str(qwen2 / "model.safetensors"))
    key = sorted(state)[0]  # stored in shard 1; the index says shard 2
    folder = tmp_path / "moved"
    _two_shards(qwen2, folder, index_of={key: "model-00002-of-00002.safetensors"})
    with pytest.raises(CheckpointError, match=rf"{key} \(index: model-00002-of-00002.safetensors, stored in "
                                              r"model-00001-of-00002.safetensors\)"):
        LOADERS[loader](folder)


def test_an_intact_sharded_folder_still_loads(qwen2, tmp_path):
    state = _two_shards(qwen2, tmp_path / "ok")
    model = load_llm(str(tmp_path / "ok"), dtype=torch.float32)
    assert torch.equal(model.state_dict()[NORM], state[NORM])


# --- 4. the LLM's settings no tensor shape shows ------------------------------------------------

@pytest.fixture(scope="module")
def saved_deepmolm_llm(qwen2, tmp_path_factory) -> Path:
    """A DeepMoLM (llava_qwen2) save of the tiny Qwen2, without tower: its config.json carries the record."""
    from deepmolm_plugin.model.llava_qwen2 import register_auto_classes

    register_auto_classes()  # llava_qwen2 known to transformers, as every launcher has it
    folder = tmp_path_factory.mktemp("saved") / "llava"
    load_llm(str(qwen2), dtype=torch.float32).save_pretrained(str(folder))
    return folder


LLM_EDITS = [({"num_attention_heads": 8, "num_key_value_heads": 4}, "num_attention_heads 8 (saved with 4)"),
             ({"rms_norm_eps": 0.01}, "rms_norm_eps 0.01 (saved with 1e-06)"),
             ({"rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}}, "rope_parameters"),
             ({"hidden_act": "gelu"}, "hidden_act 'gelu' (saved with 'silu')")]


@pytest.mark.parametrize("edit,shown", LLM_EDITS, ids=["heads", "eps", "rope", "act"])
def test_llm_settings_edited_after_saving_are_refused(saved_deepmolm_llm, tmp_path, edit, shown):
    folder = _copy(saved_deepmolm_llm, tmp_path / "edited")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(CheckpointError, match="config.json was edited after the model was saved") as error:
        load_llm(str(folder), dtype=torch.float32)
    assert shown in str(error.value)


def test_the_unedited_save_loads_and_one_saved_before_the_llm_record_is_not_checked(saved_deepmolm_llm, tmp_path):
    load_llm(str(saved_deepmolm_llm), dtype=torch.float32)  # its own record matches
    folder = _copy(saved_deepmolm_llm, tmp_path / "older")
    config = json.loads((folder / "config.json").read_text())
    for name in config_record.LLM_FIELDS:  # as a model saved before these were recorded
        config[config_record.RECORD].pop(name, None)
    config["rms_norm_eps"] = 0.01
    (folder / "config.json").write_text(json.dumps(config))
    load_llm(str(folder), dtype=torch.float32)


# --- 5. pytorch_model.bin folders, and the Trainer's own files ----------------------------------

def _bin_folder(qwen2: Path, folder: Path, sharded: bool) -> dict:
    _copy(qwen2, folder, weights=False)
    state = load_file(str(qwen2 / "model.safetensors"))
    (folder / "training_args.bin").write_bytes(b"\x80\x04 not weights: the Trainer's arguments")
    (folder / "rng_state.pth").write_bytes(b"\x80\x04 rng")
    if not sharded:
        torch.save(state, folder / "pytorch_model.bin")
        return state
    names = sorted(state)
    parts = {"pytorch_model-00001-of-00002.bin": names[:5], "pytorch_model-00002-of-00002.bin": names[5:]}
    for name, keys in parts.items():
        torch.save({k: state[k] for k in keys}, folder / name)
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: name for name, keys in parts.items() for k in keys}}))
    return state


@pytest.mark.parametrize("sharded", [False, True], ids=["single", "sharded"])
def test_a_pytorch_model_bin_checkpoint_loads_and_the_trainer_files_are_not_weights(qwen2, tmp_path, sharded):
    state = _bin_folder(qwen2, tmp_path / "bin", sharded)
    assert all(p.name.startswith("pytorch_model") for p in find_tensor_files(tmp_path / "bin"))
    model = load_llm(str(tmp_path / "bin"), dtype=torch.float32)
    assert torch.equal(model.state_dict()[NORM], state[NORM])


def test_a_folder_holding_only_the_trainer_files_says_it_has_no_weights(qwen2, tmp_path):
    folder = tmp_path / "lost"
    _bin_folder(qwen2, folder, sharded=False)
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(CheckpointError) as error:
        load_llm(str(folder), dtype=torch.float32)
    assert str(error.value).startswith(f"{folder}: no model weights (model.safetensors / pytorch_model.bin); it "
                                       "holds only the Trainer's files")


# --- 6. KFLM2's loader: float weights stored as integers ----------------------------------------

def test_the_kflm2_loader_refuses_float_weights_stored_as_integers(qwen2, tmp_path):
    folder = _copy(qwen2, tmp_path / "ints", weights=False)
    state = load_file(str(qwen2 / "model.safetensors"))
    key = "model.layers.0.mlp.up_proj.weight"
    state[key] = (state[key] * 100).round().to(torch.int64)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=rf"stores 1 floating-point weights as integers or booleans: {key}$"):
        load_causal_lm_checked(str(folder))


# --- 7. Qwen2-VL: one LM tensor under its old and new names ------------------------------------

def test_a_qwen2_vl_tensor_under_both_names_is_refused_naming_both(qwen2, tmp_path):
    folder = tmp_path / "vl"
    folder.mkdir()
    config = json.loads((qwen2 / "config.json").read_text())
    theta = (config.pop("rope_parameters", None) or {}).get("rope_theta", 10000.0)
    config.update({"model_type": "qwen2_vl", "architectures": ["Qwen2VLForConditionalGeneration"],
                   "vision_config": {"depth": 1, "embed_dim": 16, "hidden_size": 64, "num_heads": 2},
                   "rope_theta": theta, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}})
    (folder / "config.json").write_text(json.dumps(config))
    state = load_file(str(qwen2 / "model.safetensors"))
    key = "model.layers.0.mlp.up_proj.weight"
    state["model.language_model.layers.0.mlp.up_proj.weight"] = torch.zeros_like(state[key])
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError) as error:
        load_llm(str(folder), dtype=torch.float32)
    assert f"as model.language_model.layers.0.mlp.up_proj.weight and as {key}" in str(error.value)


# --- 9. shard-index messages ---------------------------------------------------------------------

def _index(folder: Path, weight_map: dict) -> None:
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def test_a_stale_index_names_the_shards_it_leaves_out(tmp_path):
    save_file({"a": torch.zeros(2)}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"b": torch.zeros(2)}, str(tmp_path / "model-00002-of-00002.safetensors"))
    _index(tmp_path, {"a": "model-00001-of-00002.safetensors"})
    with pytest.raises(CheckpointError, match=r"does not name model-00002-of-00002\.safetensors, which is in the "
                                              r"folder .*: a stale index"):
        open_checkpoint(tmp_path)


@pytest.mark.parametrize("weight_map,reason", [
    ({}, "its 'weight_map' is empty"),
    ({"a": "../ok.safetensors"}, r"names shards outside its folder .*\['\.\./ok\.safetensors'\]"),
    ({"a": "sub/model.safetensors"}, r"names shards outside its folder .*\['sub/model\.safetensors'\]"),
])
def test_an_empty_or_escaping_weight_map_is_refused(tmp_path, weight_map, reason):
    folder = tmp_path / "sharded"
    (folder / "sub").mkdir(parents=True)
    save_file({"a": torch.zeros(2)}, str(tmp_path / "ok.safetensors"))  # what ../ok.safetensors reached
    save_file({"a": torch.zeros(2)}, str(folder / "sub" / "model.safetensors"))
    _index(folder, weight_map)
    with pytest.raises(CheckpointError, match=reason):
        find_tensor_files(folder)


def test_the_unread_note_says_no_file_was_read_and_does_not_call_safetensors_bin(tmp_path):
    from deepmolm_plugin.encoder.checkpoint import _unread_note

    save_file({"a": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    torch.save({"b": torch.zeros(2)}, tmp_path / "extra.pth")
    note = _unread_note([tmp_path], [])
    assert "read no file, not extra.pth" in note  # was "read , not extra.pth"
    assert ".bin/.pth/.pt beside them" not in note
