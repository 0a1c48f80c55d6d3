"""Two-process DeepSpeed training of the tiny model through the real launcher, on CPU.

`python -m torch.distributed.run --standalone --nproc_per_node 2` runs
`python -m deepmolm_plugin.train` (via the small probe below) with `--deepspeed
scripts/zero2.json` / `scripts/zero3.json` and `--use_cpu True`: DeepSpeed's CPU
accelerator, gloo, no GPU. Four records and a per-device batch of 2, so each step every
rank trains on a different half of the data.

The probe wraps the launcher without changing it: it adds a TrainerCallback that writes,
for its own rank, the engine DeepSpeed built, the world size, the rank's own loss each
step (returned by `training_step`, before any all-reduce), the loss the Trainer logged,
and after each ZeRO-2 step a SHA-256 over every parameter. Rank 0 also keeps the
parameters that exist unpartitioned when the Trainer is built (the vision tower and
projector; under ZeRO-3 the LLM is already partitioned by `zero.Init`).

ZeRO-2 check, "both ranks see the same loss": the ranks' own losses differ (different
data), yet both log the same loss, equal to the mean of the two, and both hold the same
parameters after every step while those parameters change. If the gradients were not
averaged, or each rank trained on its own (what plain torchrun on CPU does without
`--use_cpu`: accelerate then sees one process), the digests would diverge; if logging
were per rank, the logged losses would differ.

ZeRO-3 check, "saving gathers the full weights": during training every parameter is
partitioned (carries `ds_id`), yet the saved model.safetensors has every parameter at its
full shape, the LLM's at the shapes of the source checkpoint, the frozen vision tower
bit-identical to its initial weights (a gathered tensor, not a shard or zeros) and the
projector trained.

The first run on a machine JIT-compiles DeepSpeed's `deepspeed_shm_comm` op (needs a C++
compiler; about a minute on 2 cores; cached in ~/.cache/torch_extensions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from host_fixtures import ROOT, losses, train_args

from safetensors.torch import load_file  # noqa: E402

STEPS = 4

PROBE = r'''
import hashlib, json, os, sys
from pathlib import Path

import torch

out = Path(os.environ["PROBE_OUT"])
rank = int(os.environ["RANK"])

import deepmolm_plugin

deepmolm_plugin.register()
from llava.train import llava_trainer
from transformers import TrainerCallback

record = {"rank": rank, "local_losses": [], "digests": []}
cls = llava_trainer.LLaVATrainer


def digest(model):
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class Probe(TrainerCallback):
    def __init__(self, trainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, model=None, **kwargs):
        engine = self.trainer.model_wrapped
        record["engine"] = type(engine).__name__
        record["zero_stage"] = engine.zero_optimization_stage() if hasattr(engine, "zero_optimization_stage") else None
        record["world_size"] = torch.distributed.get_world_size()
        if record["zero_stage"] != 3:
            record["digests"].append(digest(model))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        record["logged_losses"] = [e["loss"] for e in state.log_history if "loss" in e]
        record["shapes"] = {n: list(getattr(p, "ds_shape", p.shape)) for n, p in model.named_parameters()}
        record["partitioned"] = sorted(n for n, p in model.named_parameters() if hasattr(p, "ds_id"))
        (out / f"rank{rank}.json").write_text(json.dumps(record))


host_step = cls.training_step


def training_step(self, *args, **kwargs):
    loss = host_step(self, *args, **kwargs)
    record["local_losses"].append(float(loss))
    return loss


host_init = cls.__init__


def __init__(self, *args, **kwargs):
    host_init(self, *args, **kwargs)
    self.add_callback(Probe(self))
    if rank == 0:
        initial = {n: p.detach().clone() for n, p in self.model.named_parameters() if not hasattr(p, "ds_id")}
        torch.save(initial, out / "initial.pt")


cls.training_step = training_step
cls.__init__ = __init__

import atexit

atexit.register(lambda: (out / f"rank{rank}.exited").write_text("atexit ran"))  # train.leave_process runs them

from deepmolm_plugin.train import main

main()
'''


def run_two_ranks(setup: dict, out: Path, config: str) -> list:
    out.mkdir(parents=True)
    probe = out.parent / f"probe_{out.name}.py"
    probe.write_text(PROBE)
    args = train_args(setup, out, "--mm_projector", "fusion", "--deepspeed", str(ROOT / "scripts" / config),
                      "--use_cpu", "True", steps=STEPS)
    env = {**os.environ, "PROBE_OUT": str(out), "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(probe), *args]
    proc = subprocess.run(cmd, cwd=out.parent, env=env, text=True, capture_output=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"torchrun exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                             f"\n--- stderr\n{proc.stderr[-8000:]}")
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def zero2(tiny_setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("zero2") / "out"
    return out, run_two_ranks(tiny_setup, out, "zero2.json")


@pytest.fixture(scope="module")
def zero3(tiny_setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("zero3") / "out"
    return out, run_two_ranks(tiny_setup, out, "zero3.json")


def test_zero2_two_ranks_see_the_same_loss(zero2):
    out, ranks = zero2
    for r in ranks:
        assert (r["engine"], r["zero_stage"], r["world_size"]) == ("DeepSpeedEngine", 2, 2)
        assert len(r["local_losses"]) == len(r["logged_losses"]) == len(r["digests"]) == STEPS
    r0, r1 = ranks
    # each rank trains on its own half of the data ...
    assert all(abs(a - b) > 1e-3 for a, b in zip(r0["local_losses"], r1["local_losses"]))
    # ... yet both log the same loss, the mean over the two ranks
    assert r0["logged_losses"] == r1["logged_losses"]
    for a, b, logged in zip(r0["local_losses"], r1["local_losses"], r0["logged_losses"]):
        assert logged == pytest.approx((a + b) / 2, rel=1e-4)
    assert losses(out) == pytest.approx(r0["logged_losses"])  # trainer_state.json, written by rank 0
    # ... and hold bit-identical parameters after every step, which do change
    assert r0["digests"] == r1["digests"]
    assert len(set(r0["digests"])) == STEPS
    assert r0["logged_losses"][-1] < r0["logged_losses"][0]
    assert (out / "model.safetensors").is_file()
    assert all((out / f"rank{r}.exited").read_text() == "atexit ran" for r in (0, 1))


def test_zero3_save_gathers_full_weights(zero3, tiny_setup):
    out, ranks = zero3
    for r in ranks:
        assert (r["engine"], r["zero_stage"], r["world_size"]) == ("DeepSpeedEngine", 3, 2)
        assert r["logged_losses"] == ranks[0]["logged_losses"]
    shapes = ranks[0]["shapes"]
    assert ranks[0]["partitioned"] == sorted(shapes)  # every parameter was sharded during training

    saved = load_file(out / "model.safetensors")
    assert sorted(saved) == sorted(shapes)
    for name, shape in shapes.items():
        assert list(saved[name].shape) == shape and saved[name].numel() > 0, name
        assert torch.isfinite(saved[name]).all(), name
    assert any(".vision_tower." in n for n in saved) and any(".mm_projector." in n for n in saved)

    source = load_file(tiny_setup["llm"] / "model.safetensors")
    assert set(source) <= set(saved)  # the tiny Qwen2 does not tie lm_head to the embeddings
    for name, tensor in source.items():
        assert saved[name].shape == tensor.shape, name

    initial = torch.load(out / "initial.pt")
    tower = [n for n in initial if ".vision_tower." in n]
    projector = [n for n in initial if ".mm_projector." in n]
    assert tower and projector
    for name in tower:  # frozen: saved weights are the full initial tensors
        assert torch.equal(saved[name], initial[name].to(saved[name].dtype)), name
    assert any(not torch.equal(saved[n], initial[n].to(saved[n].dtype)) for n in projector)


LEAVE = r"""
import atexit, os, sys, tempfile
import torch.distributed as dist
from deepmolm_plugin.training.distributed import finish_distributed

done = sys.argv[1]
atexit.register(lambda: open(done, "w").write("atexit ran"))
store = dist.FileStore(os.path.join(tempfile.mkdtemp(), "store"), 1)
dist.init_process_group("gloo", store=store, rank=0, world_size=1)
kept = dist.new_group([0])  # a group still referenced at the end, as the DeepSpeed engine keeps its own
threads = lambda: sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
import time, torch
dist.all_reduce(torch.zeros(1), group=kept)  # the group at work: its threads exist now
gloo_threads = lambda: sum(n.startswith(("gloo", "pt_gloo")) for n in threads())
deadline = time.monotonic() + 20  # under load a started thread can take a moment to be named
while not gloo_threads() and time.monotonic() < deadline:
    time.sleep(0.05)
sys.stdout.write(f"gloo threads before: {gloo_threads()}")  # no newline
finish_distributed()
print("after finish_distributed")
"""


def test_a_distributed_run_leaves_with_exit_handlers_run_and_output_flushed(tmp_path):
    """finish_distributed ends the process (status 0) without interpreter shutdown, where
    process groups still referenced (gloo worker threads running) once aborted a rank
    after its model was saved; the atexit handlers still run and buffered output is kept."""
    script = tmp_path / "leave.py"
    script.write_text(LEAVE)
    done = tmp_path / "atexit.txt"
    proc = subprocess.run([sys.executable, str(script), str(done)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    before = int(proc.stdout.split("gloo threads before: ")[1].split()[0])
    assert before > 0  # the leftover group's threads were running when it left
    assert "after finish_distributed" not in proc.stdout
    assert done.read_text() == "atexit ran"
