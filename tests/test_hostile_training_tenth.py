"""Training launcher, tenth hostile sweep (sweep K): half precision on a CPU, the learning rate
of a resumed run's first step, the stage-1 adapter's image mode, a resume's data folders, and
the NaN-weights refusal.

Before: `--fp16 True` on a CPU trained in float32 with no loss scaler, yet the NaN guard stood
down for it (a diverged run saved NaN weights, exit 0); a finished run trained for longer took
its first resumed step at the old schedule's last learning rate (0 for cosine); a base-mode
stage-1 adapter went into a tiles stage 2 without a word; a resume with another --image_folder
said nothing; the NaN-weights error listed every tensor on one line.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from host_fixtures import run_module, train_args
from test_hostile_training_sixth import _stage1_of_width
from test_hostile_training_third import DEEPMOLM, check_argument_values, checked, host_train, resumable

from deepmolm_plugin import usage
from deepmolm_plugin.tensor_files import CheckpointError
from deepmolm_plugin.training.run_record import RUN_RECORD, write_run_record


# --- finding 1: --fp16 on a CPU, and the NaN guard under fp16 ----------------------------------

def test_fp16_where_training_runs_on_the_cpu_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    # was: accepted; accelerate trains in float32 without a loss scaler there, and the NaN
    # guard stood down for --fp16: a diverged run saved NaN weights, exit 0
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    with pytest.raises(usage.UsageError, match=r"^--fp16 True needs a GPU, and this run trains on the CPU "
                                               r"\(no GPU or other accelerator here\).*leave --fp16 out"):
        checked(tmp_path, *DEEPMOLM, "--fp16", "True")
    # a GPU (CUDA, or XPU / MPS / ...: review, the refusal named CUDA alone): its loss scaler serves it
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    with pytest.raises(usage.UsageError, match=r"trains on the CPU \(--use_cpu True\)"):
        checked(tmp_path, *DEEPMOLM, "--fp16", "True", "--use_cpu", "True")
    checked(tmp_path, *DEEPMOLM, "--fp16", "True")
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    checked(tmp_path, *DEEPMOLM, "--fp16", "False")


def _trainer_after_a_nan_step(scaler, fp16=True, deepspeed=False):
    """What the guard reads on the trainer after one micro-batch whose loss was NaN."""
    from accelerate.utils import DistributedType

    trainer = SimpleNamespace(
        args=SimpleNamespace(fp16=fp16), is_deepspeed_enabled=deepspeed,
        accelerator=SimpleNamespace(scaler=scaler, distributed_type=DistributedType.NO),
        state=SimpleNamespace(global_step=1, max_steps=6), model=None, model_wrapped=None)
    trainer._deepmolm_step_losses = [torch.tensor(float("nan"))]
    return trainer


def test_the_nan_guard_stays_on_under_fp16_when_no_loss_scaler_is_active():
    from llava.train.llava_trainer import LLaVATrainer

    from deepmolm_plugin.patches.nonfinite_training import NonFiniteTraining

    model = torch.nn.Linear(2, 2)
    # was: `if self.args.fp16: return` whatever the device: no scaler on a CPU, NaN weights saved
    with pytest.raises(NonFiniteTraining, match="training stopped at optimizer step 2 of 6: the loss and the gradient "
                                                "norm is not finite"):
        LLaVATrainer._get_grad_norm(_trainer_after_a_nan_step(scaler=None), model, grad_norm=float("nan"))
    with pytest.raises(NonFiniteTraining):  # a scaler made but disabled skips nothing
        LLaVATrainer._get_grad_norm(_trainer_after_a_nan_step(scaler=torch.amp.GradScaler("cpu", enabled=False)),
                                    model, grad_norm=float("nan"))
    # an active GradScaler (fp16 on a GPU) skips overflowing steps itself: an inf norm is routine there
    active = torch.amp.GradScaler("cpu", enabled=True)
    assert math.isinf(LLaVATrainer._get_grad_norm(_trainer_after_a_nan_step(scaler=active), model,
                                                  grad_norm=float("inf")))
    # DeepSpeed keeps its own fp16 scaler (accelerate holds none): its engine says so
    engine = SimpleNamespace(fp16_enabled=lambda: True, parameters=model.parameters)
    assert math.isinf(LLaVATrainer._get_grad_norm(_trainer_after_a_nan_step(scaler=None, deepspeed=True), engine,
                                                  grad_norm=float("inf")))
    engine = SimpleNamespace(fp16_enabled=lambda: False, parameters=model.parameters)
    with pytest.raises(NonFiniteTraining):  # DeepSpeed in bf16 / fp32: no scaler
        LLaVATrainer._get_grad_norm(_trainer_after_a_nan_step(scaler=None, deepspeed=True), engine,
                                    grad_norm=float("nan"))


# --- finding 2: the first resumed step follows the new schedule --------------------------------

def _scheduler_after(steps: int, total: int, lr: float = 2e-3, warmup: int = 0):
    """An AdamW optimizer and transformers' cosine schedule over `total` steps, stepped `steps` times."""
    from transformers import get_scheduler

    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight], lr=lr)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=warmup, num_training_steps=total)
    for _ in range(steps):
        weight.grad = torch.ones(3)
        optimizer.step()
        scheduler.step()
    return optimizer, scheduler


def _resumed(saved_optimizer, saved_scheduler, total: int, lr: float = 2e-3, warmup: int = 0):
    """A new run's optimizer and schedule (over `total` steps) with the saved states loaded, as the Trainer does."""
    optimizer, scheduler = _scheduler_after(0, total, lr=lr, warmup=warmup)
    optimizer.load_state_dict(saved_optimizer.state_dict())
    scheduler.load_state_dict(saved_scheduler.state_dict())
    return optimizer, scheduler


def test_a_loaded_schedule_gives_the_new_schedules_learning_rate_and_the_same_one_when_unchanged():
    from deepmolm_plugin.patches.resume_schedule import apply_current_schedule

    old_optimizer, old_scheduler = _scheduler_after(2, total=2)  # a finished cosine run: lr 0
    optimizer, scheduler = _resumed(old_optimizer, old_scheduler, total=4)
    assert optimizer.param_groups[0]["lr"] == 0.0  # what the Trainer left for the first resumed step
    assert apply_current_schedule(scheduler)
    expected = 2e-3 * 0.5 * (1 + math.cos(math.pi * 2 / 4))  # the new schedule at step 2 of 4
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
    assert scheduler.get_last_lr() == [optimizer.param_groups[0]["lr"]]  # what the Trainer logs
    assert apply_current_schedule(scheduler)  # again: the same rate
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)
    # the schedule unchanged (a run resumed mid-way): the loaded rate, bit for bit
    for steps in range(0, 7):
        old_optimizer, old_scheduler = _scheduler_after(steps, total=7, warmup=2, lr=3.7e-4)
        optimizer, scheduler = _resumed(old_optimizer, old_scheduler, total=7, warmup=2, lr=3.7e-4)
        loaded = optimizer.param_groups[0]["lr"]
        apply_current_schedule(scheduler)
        assert optimizer.param_groups[0]["lr"] == loaded == old_optimizer.param_groups[0]["lr"], steps


def test_a_finished_run_trained_for_longer_takes_its_first_resumed_step_at_the_new_schedules_rate(tiny_setup,
                                                                                                  tmp_path):
    # was: the first resumed step at learning rate 0 (the old cosine's end), logged as 0
    out = tmp_path / "out"
    common = ("--lr_scheduler_type", "cosine", "--save_strategy", "steps", "--save_steps", "2")
    run_module("deepmolm_plugin.train", train_args(tiny_setup, out, *common, steps=2), cwd=tmp_path)
    proc = run_module("deepmolm_plugin.train", train_args(tiny_setup, out, *common, steps=4), cwd=tmp_path)
    assert "resuming" in proc.stderr
    state = json.loads((out / "trainer_state.json").read_text())
    rates = {e["step"]: e["learning_rate"] for e in state["log_history"] if "learning_rate" in e}
    # each step logs the rate it trained at: the first run's two steps, then the new schedule's steps 3 and 4
    cosine = [2e-3 * 0.5 * (1 + math.cos(math.pi * step / total)) for step, total in ((0, 2), (1, 2), (2, 4), (3, 4))]
    assert [rates[step] for step in (1, 2, 3, 4)] == pytest.approx(cosine, rel=1e-6)  # was: step 3 at 0


# --- finding 3: the stage-1 adapter's image mode and dropout ------------------------------------

def test_a_stage1_adapter_of_another_image_mode_is_noted_and_of_another_tower_refused(tmp_path, capsys):
    # was: a base-mode adapter went into a --image_mode tiles stage 2 without a word (a saved model was refused);
    # review: refusing it (and another --fusion_dropout) refused LLaVA-NeXT's recipe and ordinary fine-tuning
    adapter = _stage1_of_width(tmp_path / "s1", 64, None)
    config = json.loads((tmp_path / "s1" / "config.json").read_text())
    config.update(image_mode="base", fusion_dropout=0.0)
    (tmp_path / "s1" / "config.json").write_text(json.dumps(config))
    stage2 = (*DEEPMOLM, "--pretrain_mm_mlp_adapter", str(adapter), "--fusion_heads", "2", "--fp_bits", "4096")
    checked(tmp_path, *stage2)  # its own settings pass
    assert "note:" not in capsys.readouterr().err
    checked(tmp_path, *stage2, "--image_mode", "tiles")
    assert ("note: this run's --image_mode 'tiles' (the checkpoint: 'base') differs from the stage-1 run of "
            "--pretrain_mm_mlp_adapter " in capsys.readouterr().err)
    checked(tmp_path, *stage2, "--fusion_dropout", "0.1")  # a training setting
    config["mm_vision_tower"] = "openai/clip-vit-large-patch14"  # another tower's features
    (tmp_path / "s1" / "config.json").write_text(json.dumps(config))
    with pytest.raises(usage.UsageError, match=r"--vision_tower 'deepencoder' \(the checkpoint: 'openai/clip"):
        checked(tmp_path, *stage2)


# --- finding 4: a resume's data folders -----------------------------------------------------------

def test_a_resume_reading_other_data_folders_says_so_in_one_line(tmp_path, capsys):
    # was: another --image_folder (other pictures under the same names) trained on without a word
    data = tmp_path / "train.json"
    data.write_text('[{"id": "a"}]')
    for name in ("imgA", "imgB", "sdf"):
        (tmp_path / name).mkdir()

    def launch(images, structures=("--structure_folder", str(tmp_path / "sdf"))):
        return check_argument_values(host_train, ["--output_dir", str(tmp_path / "out"), "--data_path", str(data),
                                                  *DEEPMOLM, "--image_folder", str(tmp_path / images), *structures])

    write_run_record(*launch("imgA"))
    record = json.loads((tmp_path / "out" / RUN_RECORD).read_text())
    assert record["folders"] == {"image_folder": str(tmp_path / "imgA"), "structure_folder": str(tmp_path / "sdf"),
                                 "render_folder": f"{data}.renders"}
    resumable(tmp_path / "out" / "checkpoint-3", {"mm_vision_tower": "deepencoder"})
    capsys.readouterr()
    launch("imgA")
    assert "note" not in capsys.readouterr().err  # the same folders: nothing to say
    launch("imgB")  # a note, not a refusal: data moved to another disk is legitimate
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert notes == [f"python -m deepmolm_plugin.train: note: this resumed run reads its data from other folders "
                     f"than it started with: --image_folder {tmp_path / 'imgB'} (the run started with "
                     f"{tmp_path / 'imgA'}). Fine if the data only moved; if those folders hold other files under "
                     "the same names, the rest of the run trains on other inputs than its first part"]
    launch("imgA", structures=())
    assert f"--structure_folder not given (the run started with {tmp_path / 'sdf'})" in capsys.readouterr().err


# --- finding 5: the NaN-weights refusal -------------------------------------------------------------

def test_nan_weights_are_refused_naming_a_few_tensors_and_the_likely_cause():
    from deepmolm_plugin.model.loading import _check_finite

    model = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(20)])
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(CheckpointError) as caught:
        _check_finite(model, "out_nan")
    message = str(caught.value)
    # was: all 40 tensors named, thousands of characters on one line
    assert message.startswith("out_nan has NaN/inf values in 40 tensors: 0.weight (16 NaN/inf values), 0.bias "
                              "(4 NaN/inf values), 1.weight (16 NaN/inf values) and 37 more (the usual cause: a "
                              "training run that diverged"), message
    assert "19.bias" not in message and "\n" not in message and len(message) < 400
