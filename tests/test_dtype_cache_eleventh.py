"""Eleventh round: dtype "auto" said and choosable (--dtype), what the feature cache did said
at the end of a run, and a feature cache folder that is a model or --output_dir refused."""

import json
import logging
import os
import re
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

import deepmolm_plugin

deepmolm_plugin.register()

import llava.train.train as host_train  # noqa: E402  (after register: patched host)

from deepmolm_plugin import dtypes, usage  # noqa: E402
from deepmolm_plugin.encoder.feature_cache import FeatureCache  # noqa: E402
from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower  # noqa: E402
from deepmolm_plugin.training.arguments import check_argument_values  # noqa: E402
from deepmolm_plugin.training.options import PROG  # noqa: E402
from host_fixtures import run_module, train_args  # noqa: E402


@pytest.fixture
def native_bf16(monkeypatch):
    """A CPU that reports AVX512-BF16 (dtype "auto" -> bfloat16 there), whatever this one is."""
    dtypes._logged.clear()
    report = {"avx2": True, "amx_bf16": False, "avx512_bf16": True}
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: report)
    yield
    dtypes._logged.clear()


# --- 1. dtype "auto" is said; --dtype chooses -------------------------------------------------

def test_the_auto_choice_is_a_warning_once(native_bf16, caplog):
    # was logger.info: no entry point shows INFO, so the README's "logged once" never reached anyone
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.dtypes"):
        for _ in range(2):
            assert dtypes.resolve_dtype("auto", "cpu") == torch.bfloat16
    said = [r for r in caplog.records if r.name == "deepmolm_plugin.dtypes"]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert said[0].getMessage().startswith('dtype "auto" -> bfloat16: CPU with native bf16')


def test_launcher_dtype_resolves_auto_and_refuses_what_the_host_loader_ignores(native_bf16):
    from deepmolm_plugin import cli
    from deepmolm_plugin.model.loading import DTYPE_CHOICES, launcher_dtype, load_dtype_name, loading_in_dtype

    assert cli.DTYPE_CHOICES == DTYPE_CHOICES  # the light copy the parsers use
    assert launcher_dtype("auto", "llava_qwen2", "cpu") == "bfloat16"
    assert launcher_dtype("float32", "llava_qwen2", "cpu") == "float32"
    assert load_dtype_name("auto", "cpu") == "bfloat16"
    assert launcher_dtype("auto", "llava_llama") is None  # the host's loader picks its own
    with pytest.raises(usage.UsageError, match=r"--dtype float32: only DeepMoLM / Qwen2-family .* 'llava_llama'"):
        launcher_dtype("float32", "llava_llama")
    with pytest.raises(ValueError, match="unknown dtype 'half'"):
        with loading_in_dtype("half"):
            pass


def _chat_dtype(checkpoint, monkeypatch, *extra):
    """The dtype the chat CLI's model has when asked one question (generate stubbed)."""
    import builtins

    from deepmolm_plugin import cli
    from deepmolm_plugin.model import loading
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2ForCausalLM

    for layer in (torch.nn.Linear, torch.nn.LayerNorm):  # the host CLI's disable_torch_init(), undone after
        monkeypatch.setattr(layer, "reset_parameters", layer.reset_parameters)
    seen = []
    monkeypatch.setattr(LlavaQwen2ForCausalLM, "generate",
                        lambda self, inputs=None, **kw: seen.append(self.dtype) or inputs[:, -1:])
    questions = ["What is it?"]

    def ask(prompt=""):
        if not questions:
            raise EOFError
        return questions.pop(0)

    monkeypatch.setattr(builtins, "input", ask)
    cli.main(["--model-path", str(checkpoint), "--smiles", "CCO", "--device", "cpu", "--temperature", "0",
              "--max-new-tokens", "2", *extra])
    assert loading._launcher_dtype is None  # the choice ends with the chat
    return seen[0]


def test_chat_dtype_option_loads_the_model_in_that_dtype(trained_checkpoint, monkeypatch, native_bf16, caplog):
    # was: no --dtype; on a CPU with native bf16 the fp32-trained model always ran in bf16
    assert _chat_dtype(trained_checkpoint, monkeypatch, "--dtype", "float32") == torch.float32
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.dtypes"):
        assert _chat_dtype(trained_checkpoint, monkeypatch) == torch.bfloat16  # auto, and said
    assert 'dtype "auto" -> bfloat16' in caplog.text


def test_chat_says_the_auto_choice_on_stderr(trained_checkpoint, tmp_path):
    proc = run_module("deepmolm_plugin.cli", ["--model-path", str(trained_checkpoint), "--smiles", "CCO",
                                              "--device", "cpu", "--temperature", "0", "--max-new-tokens", "2"],
                      cwd=tmp_path, stdin="What is it?\n")
    expected = "bfloat16" if dtypes.cpu_has_native_bf16() else "float32"
    assert len(re.findall(rf'dtype "auto" -> {expected}: CPU', proc.stderr)) == 1, proc.stderr


def test_chat_refuses_a_bad_dtype_in_one_line(trained_checkpoint, tmp_path):
    proc = run_module("deepmolm_plugin.cli", ["--model-path", str(trained_checkpoint), "--smiles", "CCO",
                                              "--dtype", "half"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--dtype: invalid choice: 'half'" in proc.stderr


# --- 2. what the feature cache did, said at the end --------------------------------------------

def _tower(config, cache):
    args = SimpleNamespace(deepencoder_config=config.to_dict(), vision_tower_weights="random",
                           vision_feature_cache=str(cache))
    return DeepEncoderVisionTower("deepencoder", args)


def test_summary_counts_and_the_note_for_a_cache_that_served_nothing(tmp_path, tiny_config):
    from deepmolm_plugin.encoder.feature_cache import merged_stats, opened_caches, summary_lines

    x = torch.randn(2, 3, 128, 128)
    with opened_caches() as caches:
        fp32 = _tower(tiny_config, tmp_path)
        fp32(x)
    (root, totals), = merged_stats(caches).items()
    assert summary_lines(root, totals) == [f"feature cache {tmp_path}: 0 hits, 2 misses, 0 damaged, 0 unreadable, "
                                           "0 unstored"]  # an empty cache: no note
    with opened_caches() as caches:  # a later run in bf16: the fp32 entries are not its own
        bf16 = _tower(tiny_config, tmp_path)
        bf16.vision_tower.load_state_dict(fp32.vision_tower.state_dict())
        bf16.vision_tower.to(torch.bfloat16)
        bf16(x)
    (root, totals), = merged_stats(caches).items()
    line, note = summary_lines(root, totals)
    assert line.endswith(": 0 hits, 2 misses, 0 damaged, 0 unreadable, 0 unstored")
    # twelfth round: the cache's context records say which cause it is
    assert note.startswith(f"note: feature cache {tmp_path} held entries, but none matched this run's views "
                           "(looked up as bfloat16, image mode base): the cache holds no entries made with this run's "
                           "tower / dtype / image mode; it holds entries of: float32, image mode base")
    assert "another dtype (model_vqa's --dtype" in note
    with opened_caches() as caches:
        again = _tower(tiny_config, tmp_path)
        again.vision_tower.load_state_dict(fp32.vision_tower.state_dict())
        again(x)
    (root, totals), = merged_stats(caches).items()
    assert summary_lines(root, totals) == [f"feature cache {tmp_path}: 2 hits, 0 misses, 0 damaged, 0 unreadable, "
                                           "0 unstored"]


def _summed_on_two_ranks(rank, store_path, root, queue):
    import torch.distributed as dist

    from deepmolm_plugin.train import report_feature_cache

    os.environ["RANK"] = str(rank)
    dist.init_process_group("gloo", store=dist.FileStore(store_path, 2), rank=rank, world_size=2)
    cache = FeatureCache(root)
    cache.hits, cache.misses = rank + 1, 10 * (rank + 1)  # rank 0: 1, 10; rank 1: 2, 20
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        report_feature_cache([cache], root)
    dist.destroy_process_group()
    queue.put((rank, err.getvalue()))


def test_training_sums_the_counts_over_ranks_and_rank_0_says_them(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_summed_on_two_ranks, args=(rank, str(tmp_path / "store"),
                                                                  str(tmp_path / "cache"), queue)) for rank in (0, 1)]
    for worker in workers:
        worker.start()
    said = dict(queue.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert said[1] == ""
    assert said[0] == (f"{PROG}: feature cache {tmp_path / 'cache'} (summed over 2 ranks): 3 hits, "
                       "30 misses, 0 damaged, 0 unreadable, 0 unstored\n")


def test_training_ends_with_the_cache_summary(tiny_setup, tmp_path):
    out = tmp_path / "out"
    proc = run_module("deepmolm_plugin.train", train_args(
        tiny_setup, out, "--vision_feature_cache", str(tmp_path / "cache"), steps=1), cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if "feature cache" in line]
    # was: not a word about the cache
    assert len(lines) == 1 and re.fullmatch(
        rf"{re.escape(PROG)}: feature cache {re.escape(str(tmp_path / 'cache'))}: 0 hits, 2 misses, 0 damaged, 0 unreadable, "
        r"0 unstored", lines[0]), proc.stderr


# --- 3. a cache folder that is a model, or the run's own output --------------------------------

DEEPMOLM = ["--vision_tower", "deepencoder", "--mm_projector", "fusion"]


def _checked(output, *extra):
    check_argument_values(host_train, ["--output_dir", str(output), "--data_path", "x.json", *DEEPMOLM, *extra])


def _model_folder(folder, config="config.json", weights="model.safetensors"):
    folder.mkdir(parents=True)
    (folder / config).write_text(json.dumps({"model_type": "llava_qwen2"}))
    save_file({"w": torch.zeros(1)}, folder / weights)
    return folder


@pytest.mark.parametrize("config, weights", [("config.json", "model.safetensors"),  # a finished run / checkpoint
                                             ("config.json", "pytorch_model.bin"),
                                             ("deepencoder_config.json", "deepencoder.safetensors")])  # a tower
def test_a_cache_folder_holding_a_model_is_refused(tmp_path, config, weights):
    # was: accepted, and thousands of entry folders went into the checkpoint
    model = _model_folder(tmp_path / "ck_a", config, weights)
    message = rf"--vision_feature_cache {model}: holds a model \({config}, {weights}\); the cache would write"
    with pytest.raises(usage.UsageError, match=message):
        _checked(tmp_path / "out", "--vision_feature_cache", str(model))
    with pytest.raises(usage.UsageError, match=rf"--vision-feature-cache {model}: holds a model"):
        usage.cache_folder(model, "--vision-feature-cache")  # model_vqa's check
    with pytest.raises(ValueError, match="feature cache .*: holds a model"):
        FeatureCache(model)  # enable_feature_cache from code
    assert sorted(p.name for p in model.iterdir()) == sorted([config, weights])


def test_a_cache_folder_that_is_or_is_inside_output_dir_is_refused(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(usage.UsageError, match=rf"--vision_feature_cache {out}: is --output_dir, which becomes"):
        _checked(out, "--vision_feature_cache", str(out))
    with pytest.raises(usage.UsageError, match=rf"--vision_feature_cache {out}/cache: is inside --output_dir {out}"):
        _checked(out, "--vision_feature_cache", str(out / "cache"))
    with pytest.raises(usage.UsageError, match="is --output_dir"):  # the same folder spelled otherwise
        _checked(out, "--vision_feature_cache", str(tmp_path / "." / "out" / ".." / "out"))
    _checked(out, "--vision_feature_cache", str(tmp_path / "cache"))  # beside it
    _checked(tmp_path / "runs" / "stage2", "--vision_feature_cache", str(tmp_path / "runs"))  # above it: allowed
    _model_folder(tmp_path / "filled" / "ab")  # a model in a sub-folder is no model at the top
    _checked(out, "--vision_feature_cache", str(tmp_path / "filled"))
