"""Building and loading DeepMoLM under DeepSpeed ZeRO-3's `zero.Init`, seventeenth sweep.

transformers builds a model inside `deepspeed.zero.Init` when a ZeRO-3 config is alive
(train.py with `--deepspeed zero3.json`: stage 2 starting from the stage-1 output, KFLM2 on a
DeepMoLM checkpoint). zero.Init partitions each submodule's parameters as soon as that
submodule is built, so the projectors' own initialisation afterwards met empty tensors:
`from_pretrained` of a saved fusion or concat model stopped at
`molecule_embed.weight[0].zero_()` (IndexError: index 0 is out of bounds for dimension 0 with
size 0), and a fusion projector built in zero.Init outside from_pretrained (where transformers
does not stub out torch's init functions) already at `xavier_uniform_` ("Fan in and fan out
can not be computed for tensor with fewer than 2 dimensions"). Past those, the fusion
projector's attention kept a random out_proj bias where torch's MultiheadAttention zeroes it
(its zeroing, in its own __init__, met the already partitioned bias).

The checks run in one child process (a gloo process group of one, DeepSpeed's CPU
accelerator), so that no process group, zero.Init patch or HfDeepSpeedConfig outlives them:
- every projector builds in zero.Init, partitioned, and gathered it holds exactly the weights
  the same seed gives without DeepSpeed (on one rank a partition is the whole tensor);
- a tiny DeepMoLM checkpoint (fusion with the KFLM2 head; concat) loads with
  `LlavaQwen2ForCausalLM.from_pretrained` while an HfDeepSpeedConfig with ZeRO-3 is alive:
  every parameter partitioned, and gathered, every one equal to the checkpoint's tensor
  (name, dtype, shape and value).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r'''
import json, os, traceback
os.environ.update(LOCAL_RANK="0", RANK="0", WORLD_SIZE="1")  # zero.Init reads LOCAL_RANK

import torch
import torch.distributed as dist

import deepmolm_plugin
from deepmolm_plugin.encoder import encoder_config
from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2Config, LlavaQwen2ForCausalLM
from deepmolm_plugin.projector import PROJECTORS, ProjectorConfig, build_projector

deepmolm_plugin.register()
out = {}
ZERO3 = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3}}


def run_check(name, fn, *args):
    """out[name] = fn(*args), or its traceback when it raises: each check reports on its own."""
    try:
        out[name] = fn(*args)
    except Exception:
        out[name] = {"error": traceback.format_exc()}


def state(module):
    return {n: t.detach().clone() for n, t in module.state_dict().items()}


def differing(got, want):
    """Names whose tensors differ in dtype, shape or value, or are missing on either side."""
    names = sorted(set(got) | set(want))
    return [n for n in names if n not in got or n not in want or got[n].dtype != want[n].dtype
            or got[n].shape != want[n].shape or not torch.equal(got[n], want[n])]


store = dist.FileStore(os.path.abspath("store"), 1)  # the working folder is the test's own
dist.init_process_group("gloo", store=store, rank=0, world_size=1)
import deepspeed


def built_in_zero_init(name):
    config = ProjectorConfig(mm_hidden_size=16, hidden_size=8, fp_bits=32, num_heads=2)
    torch.manual_seed(7)
    plain = state(build_projector(name, config))
    torch.manual_seed(7)
    with deepspeed.zero.Init(config_dict_or_path=ZERO3):
        projector = build_projector(name, config)
    params = list(projector.parameters())
    with deepspeed.zero.GatheredParameters(params):
        gathered = state(projector)
    return {"partitioned": bool(params) and all(hasattr(p, "ds_id") for p in params),
            "differing": differing(gathered, plain)}


for name in PROJECTORS:
    run_check(f"build {name}", built_in_zero_init, name)


def tiny_model(projector, head):
    fields = dict(aux_property_task="kflm2", aux_properties=["MW", "logP"], aux_property_weight=0.1) if head else {}
    config = LlavaQwen2Config(
        vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, max_position_embeddings=256, mm_vision_tower="deepencoder",
        deepencoder_config=encoder_config("tiny").to_dict(), vision_tower_weights="random",
        mm_projector_type=projector, mm_hidden_size=64, fp_bits=64, fp_levels=4, fusion_heads=2,
        image_mode="base", **fields)
    torch.manual_seed(0)
    return LlavaQwen2ForCausalLM(config)


# saved before ZeRO-3 is switched on, as a finished stage-1 run left them
def head_stats(model):
    head = model.get_model().optional_head
    return {n: getattr(head, n).detach().clone() for n in ("count", "mean", "m2")}


saved, saved_stats = {}, {}
for projector, head in (("fusion", True), ("concat", False)):
    folder = os.path.abspath(f"saved_{projector}")
    model = tiny_model(projector, head)
    if head:  # statistics bf16 cannot hold (301.5 is 302.0 in bf16)
        model.get_model().optional_head.fit_normalisation(
            [{"MW": 300.0 + i, "logP": 0.1 * i} for i in range(4)], [f"r{i}" for i in range(4)])
        saved_stats[projector] = head_stats(model)
    model.save_pretrained(folder)
    saved[projector] = (folder, {n: p.detach().clone() for n, p in model.named_parameters()})

from transformers.integrations.deepspeed import HfDeepSpeedConfig, is_deepspeed_zero3_enabled


def load(folder, want):
    assert is_deepspeed_zero3_enabled()
    loaded = LlavaQwen2ForCausalLM.from_pretrained(folder)
    params = dict(loaded.named_parameters())
    with deepspeed.zero.GatheredParameters(list(params.values())):
        got = {n: p.detach().clone() for n, p in params.items()}
    return {"parameters": len(params), "partitioned": sum(hasattr(p, "ds_id") for p in params.values()),
            "differing": differing(got, want)}


zero3 = HfDeepSpeedConfig(ZERO3)  # transformers keeps a weak reference: held while loading
for projector, (folder, want) in saved.items():
    run_check(f"load {projector}", load, folder, want)



def load_head_stats_bf16(folder, want):
    """A bf16 ZeRO-3 run loading the checkpoint: its head's statistics as saved, float64."""
    global zero3
    zero3 = HfDeepSpeedConfig({**ZERO3, "bf16": {"enabled": True}})
    got = head_stats(LlavaQwen2ForCausalLM.from_pretrained(folder))
    return {"dtypes": sorted({str(t.dtype) for t in got.values()}), "differing": differing(got, want),
            "mean": got["mean"].tolist()}


run_check("head stats bf16", load_head_stats_bf16, saved["fusion"][0], saved_stats["fusion"])

print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    script = tmp_path_factory.mktemp("zero3") / "probe.py"
    script.write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(script)], cwd=script.parent, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"probe exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _checked(results: dict, name: str) -> dict:
    result = results[name]
    assert "error" not in result, result.get("error")
    return result


@pytest.mark.parametrize("projector", ["fusion", "concat", "linear", "mlp2x_gelu"])
def test_a_projector_built_in_zero_init_has_the_weights_a_plain_build_has(results, projector):
    result = _checked(results, f"build {projector}")
    assert result["partitioned"]
    # xavier / kaiming / normal drawn on the whole tensors, the padding row and the attention's
    # out_proj bias zeroed: bit-identical to the same seed without DeepSpeed
    assert result["differing"] == []


@pytest.mark.parametrize("projector", ["fusion", "concat"])
def test_a_deepmolm_checkpoint_loads_under_zero3_with_the_checkpoints_weights(results, projector):
    result = _checked(results, f"load {projector}")
    assert result["parameters"] > 0 and result["partitioned"] == result["parameters"]  # zero.Init built it
    assert result["differing"] == []  # tower, projector, LLM (and KFLM2 head): every tensor the saved one


def test_kflm2_statistics_load_exact_under_bf16_zero3(results):
    """zero.Init wraps torch.zeros to return its training dtype whatever dtype is asked, so the
    head's statistics were built bf16 and the checkpoint's mean of 301.5 loaded as 302.0;
    built float64 now (`aux_head._float64_zeros`), they load as saved."""
    result = _checked(results, "head stats bf16")
    assert result["dtypes"] == ["torch.float64"] and result["differing"] == [], result
    assert result["mean"][0] == 301.5
