"""Training launcher, fifth sweep: a resumed run that switched its data settings, a damaged
stage-1 adapter, feature-cache entries and model weights only their writer could read, and
a feature cache opened twice.

Before, the first resumed without a word, the second was a traceback after the LLM had
loaded, the third served nothing to the rest of a group, and the fourth said its read-only
warning twice.
"""

import json
import logging
import os
import stat
from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_encoder_config
from host_fixtures import train_args
from test_hostile_training_third import DEEPMOLM, checked, resumable

from deepmolm_plugin import result_files, usage
from deepmolm_plugin.training.inputs import check_inputs


@pytest.fixture
def umask_022():
    """A group-readable umask for the test (and result_files' cached copy of it)."""
    result_files._umask.cache_clear()
    old = os.umask(0o022)
    yield 0o644
    os.umask(old)
    result_files._umask.cache_clear()


# --- bug 1: a resumed run with other data settings ------------------------------------------

def test_resuming_with_another_aspect_ratio_or_conformer_policy_is_refused(tmp_path):
    # was: resumed, the rest of the run trained on stretched views or other molecule tokens,
    # and the final config named only the new setting
    resumable(tmp_path / "out" / "checkpoint-2", {"mm_vision_tower": "deepencoder", "image_aspect_ratio": "pad",
                                                   "conformer_policy": "auto"})
    checked(tmp_path, *DEEPMOLM, "--image_aspect_ratio", "pad")  # its own settings resume
    with pytest.raises(usage.UsageError, match=r"holds checkpoint-2, .*--image_aspect_ratio 'square' \(the "
                                               r"checkpoint: 'pad'\); give its settings"):
        checked(tmp_path, *DEEPMOLM, "--image_aspect_ratio", "square")
    with pytest.raises(usage.UsageError, match=r"holds checkpoint-2, .*--conformer_policy 'generate' \(the "
                                               r"checkpoint: 'auto'\)"):
        checked(tmp_path, *DEEPMOLM, "--image_aspect_ratio", "pad", "--conformer_policy", "generate")


# --- bug 2: a damaged stage-1 adapter -------------------------------------------------------

def _stage1(folder, state, config=True):
    """A stage-1 output folder: mm_projector.bin holding `state` (or bytes), and its config.json."""
    folder.mkdir(parents=True)
    if isinstance(state, bytes):
        (folder / "mm_projector.bin").write_bytes(state)
    else:
        torch.save(state, folder / "mm_projector.bin")
    if config:
        (folder / "config.json").write_text(json.dumps({
            "mm_vision_tower": "deepencoder", "mm_projector_type": "fusion", "fp_bits": 4096, "fp_levels": 4,
            "fusion_heads": 2, "vision_tower_weights": "random"}))
    return folder / "mm_projector.bin"


def _projector_state(kind):
    from deepmolm_plugin.projector import ProjectorConfig, build_projector

    projector = build_projector(kind, ProjectorConfig(hidden_size=8, mm_hidden_size=8, fp_bits=16, num_heads=2))
    return {f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()}


def test_a_damaged_stage1_adapter_is_one_line_before_the_model_loads(tiny_setup, tmp_path):
    # was: PytorchStreamReader's RuntimeError (cut), a ValueError (renamed or missing tensors)
    # or an AttributeError (a list) from the host's llava_arch, after the LLM had loaded; and a
    # text file with no config.json beside it was refused for the missing config.json
    good = _projector_state("fusion")
    whole = _stage1(tmp_path / "good", good)
    cases = {
        "cut": (whole.read_bytes()[:3000], r"is not a readable PyTorch tensor file \(cut short or damaged\?\)"),
        "renamed": ({k.replace("model.mm_projector.", "foo."): v for k, v in good.items()},
                    r"holds no mm_projector.<name> tensors \(its names: \['foo."),
        "half": (dict(list(good.items())[: len(good) // 2]),
                 r"projector weights for this 'fusion' projector do not match it: missing \["),
        "a_list": ([1, 2], r"holds a list, not the tensors of a projector by name"),
        "mlp": (_projector_state("mlp2x_gelu"),
                r"projector weights for this 'fusion' projector come from an 'mlp2x_gelu' projector"),
    }
    for name, (state, message) in cases.items():
        adapter = _stage1(tmp_path / name, state)
        with pytest.raises(usage.UsageError, match=rf"--pretrain_mm_mlp_adapter .*{name}/mm_projector.bin:? {message}"):
            check_inputs(train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion",
                                    "--pretrain_mm_mlp_adapter", str(adapter)))
    # a text file alone: its content is what is wrong, not the missing config.json
    text = _stage1(tmp_path / "text", b"hello", config=False)
    with pytest.raises(usage.UsageError, match=r"text/mm_projector.bin is not a readable PyTorch tensor file"):
        check_inputs(train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion",
                                "--pretrain_mm_mlp_adapter", str(text)))
    check_inputs(train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion",
                            "--pretrain_mm_mlp_adapter", str(whole)))  # a whole one passes


# --- bug 3: files only their writer could read ----------------------------------------------

def test_feature_cache_entries_get_the_users_file_mode(tmp_path, umask_022):
    # was: 0600 (safetensors' save_file), so a cache shared by a group served none of its
    # entries to the other users
    from deepmolm_plugin.encoder.feature_cache import FeatureCache

    cache = FeatureCache(tmp_path / "cache")
    cache.put("ab" * 32, torch.randn(4, 8))
    (entry,) = (tmp_path / "cache").rglob("*.safetensors")
    assert oct(stat.S_IMODE(entry.stat().st_mode)) == oct(umask_022)
    assert cache.get("ab" * 32) is not None


def test_the_saved_model_weights_get_the_users_file_mode(trained_checkpoint):
    # was: model.safetensors 0600 beside a 0644 config.json and tokenizer: a run folder shared
    # with a group held weights it could not read
    mask = os.umask(0o022)
    os.umask(mask)  # the training subprocess ran under this process's umask
    weights = trained_checkpoint / "model.safetensors"
    assert oct(stat.S_IMODE(weights.stat().st_mode)) == oct(0o666 & ~mask)


def test_tiny_llm_and_kflm2_lora_model_folders_get_the_users_modes(tmp_path, umask_022):
    # was: transformers' save_pretrained wrote model.safetensors 0600 (the demo's and tests'
    # tiny LLM), and deepmolm-kflm2's merged LoRA model folder came from mkdtemp, 0700, with
    # 0600 weights: a group sharing the folder could not load the model
    from deepmolm_plugin.property.lora import _save_whole
    from deepmolm_plugin.tiny_llm import build_qwen2, train_chatml_tokenizer

    tokenizer = train_chatml_tokenizer(["CCO is ethanol", "c1ccccc1 is benzene"] * 20, vocab_size=300)
    tiny = build_qwen2(tmp_path / "tiny", tokenizer, hidden_size=32, layers=1, heads=2, kv_heads=1)
    assert oct(stat.S_IMODE((tiny / "model.safetensors").stat().st_mode)) == oct(umask_022)
    from transformers import AutoModelForCausalLM

    _save_whole(AutoModelForCausalLM.from_pretrained(tiny), tokenizer, tmp_path / "merged")
    assert oct(stat.S_IMODE((tmp_path / "merged").stat().st_mode)) == oct(0o755)
    assert oct(stat.S_IMODE((tmp_path / "merged" / "model.safetensors").stat().st_mode)) == oct(umask_022)


# --- bug 4: the cache opened twice ------------------------------------------------------------

def test_the_feature_cache_is_opened_once_per_run(tmp_path, monkeypatch, caplog):
    # was: the tower the host built opened the cache, and initialize_vision_modules opened it
    # again: a read-only cache's warning was printed twice per run
    from deepmolm_plugin.encoder import tower as tower_module
    from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower
    from deepmolm_plugin.patches.arguments import _wrap_initialize_vision_modules

    opened = []

    class Counted(tower_module.FeatureCache):
        def __init__(self, root):
            opened.append(root)
            super().__init__(root)

    monkeypatch.setattr(tower_module, "FeatureCache", Counted)
    cache = tmp_path / "cache"
    cache.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: (False if str(p) == str(cache) and mode & os.W_OK
                                                       else real_access(p, mode)))

    class Model:  # what the wrapper reads of the host's LlavaMetaModel
        config = SimpleNamespace()

        def get_vision_tower(self):
            return self.vision_tower

    def build_tower(with_cache):
        def initialize(self, model_args, fsdp=None):  # the host's: builds the tower from the arguments
            args = model_args if with_cache else SimpleNamespace(**{**vars(model_args), "vision_feature_cache": None})
            self.vision_tower = DeepEncoderVisionTower("deepencoder", args)
        return _wrap_initialize_vision_modules(initialize)

    args = SimpleNamespace(deepencoder_config=tiny_encoder_config().to_dict(), vision_tower_weights="random",
                           vision_feature_cache=str(cache), version="qwen2", unfreeze_mm_vision_tower=False)
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
        model = Model()
        build_tower(with_cache=True)(model, args)
    assert len(opened) == 1 and model.vision_tower.feature_cache is not None
    assert caplog.text.count("is read-only") == 1
    # a tower that came with a saved model (built without the option) still gets it
    model = Model()
    build_tower(with_cache=False)(model, args)
    assert len(opened) == 2 and model.vision_tower.feature_cache is not None
