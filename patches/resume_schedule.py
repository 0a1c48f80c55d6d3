"""A resumed run takes its first step at the learning rate of its own (new) schedule.

The launcher lets a resumed run change its epochs, steps and schedule: that is how a
finished run is trained for longer (training.run_record.RUN_RECORD). The Trainer builds the new schedule,
then loads the checkpoint's optimizer.pt and scheduler.pt. The loaded optimizer's param
groups hold the learning rate the OLD schedule had set for the next step, and the scheduler
sets a new one only after that step. Was: the first resumed step of a finished cosine or
linear run trained at learning rate 0 (it changed no weight but still moved Adam's moments,
and was logged as 'learning_rate': 0); only the step after it followed the new schedule.

This wraps `Trainer._load_optimizer_and_scheduler`: once the host has loaded both, each
param group's learning rate is set to what the run's scheduler gives at the loaded step.
Transformers' schedules are LambdaLR (all but reduce_lr_on_plateau): their learning rate is
`base_lr * lr_lambda(last_epoch)`, and the loaded state keeps the new run's lambdas (a
`functools.partial` carries its step counts as arguments, which LambdaLR does not save) and
restores `base_lrs` and `last_epoch`. When the schedule did not change this is the loaded
learning rate bit for bit (the same product the scheduler computed when it stepped). Other
schedulers (ReduceLROnPlateau, DeepSpeed's own from its config) are left as loaded.

A resumed run's `train_loss` (printed at the end and kept in trainer_state.json) is the mean
loss of all its steps. Transformers' `_finalize_training` divides the loss summed in this call
by the steps of this call only: was the mean of the resumed steps, so a run resumed at step 2
of 4 reported another train_loss than the same run uninterrupted, with identical step losses.
This wraps `Trainer._finalize_training` to add the steps before the resume from the resumed
checkpoint's log_history. Each `loss` entry is the mean over the steps since the Trainer last
logged, which after a resume is the resume, not the entry before (`_globalstep_last_logged`):
so the wrapped `Trainer.log` writes into each `loss` entry of log_history how many steps it
covers (LOSS_STEPS). Was: every entry was taken to cover the steps since the entry before, and a
second resume of a run first resumed between two --logging_steps reported a wrong train_loss
without a word. Where the counted entries do not cover every step up to the checkpoint, no
sum can be had: the train_loss of this call is kept and one line says which steps it covers
and which steps the log lacks (loss_log_gap).
"""

from __future__ import annotations

import functools
import sys

import torch

from . import _host


def apply_current_schedule(scheduler) -> bool:
    """Set the learning rate of each of `scheduler`'s optimizer param groups (and the rate
    `get_last_lr()` reports, which the Trainer logs) to the scheduler's own value at its
    `last_epoch`. Returns whether it did (LambdaLR only)."""
    if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        return False
    rates = [base_lr * lmbda(scheduler.last_epoch) for lmbda, base_lr in zip(scheduler.lr_lambdas, scheduler.base_lrs)]
    for group, rate in zip(scheduler.optimizer.param_groups, rates):
        if isinstance(group["lr"], torch.Tensor):  # a tensor learning rate is filled in place, as torch's step does
            group["lr"].fill_(float(rate))
        else:
            group["lr"] = rate
    scheduler._last_lr = [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
                          for g in scheduler.optimizer.param_groups]
    return True


# The key the wrapped Trainer.log adds to each `loss` entry of log_history: how many steps
# that entry's mean covers (the Trainer's own divisor, global_step - _globalstep_last_logged).
LOSS_STEPS = "loss_steps"


def loss_entries(log_history: list, last_step: int) -> list:
    """The `loss` entries of a Trainer's log_history at steps 1..`last_step`, in log order."""
    return [entry for entry in log_history if isinstance(entry, dict) and "loss" in entry
            and isinstance(entry.get("step"), int) and entry["step"] <= last_step]


def steps_named(first: int, last: int) -> str:
    return f"step {first}" if first == last else f"steps {first}-{last}"


def loss_log_gap(log_history: list, last_step: int) -> "str | None":
    """Why the `loss` entries of `log_history` do not give the loss of each of steps
    1..`last_step` exactly once (each entry covering its LOSS_STEPS steps up to its own), or
    None when they do."""
    covered = 0
    for entry in loss_entries(log_history, last_step):
        step, count = entry["step"], entry.get(LOSS_STEPS)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            return (f"its loss entry at step {step} does not say how many steps it covers (logged before "
                    f"deepmolm_plugin recorded '{LOSS_STEPS}')")
        first = step - count + 1
        if first <= covered:  # out of order or repeated: not the log of one run
            return f"its loss entries overlap at {steps_named(first, min(step, covered))}"
        if first > covered + 1:  # a resume between two logging steps: those steps are in no entry
            return f"the log has no loss for {steps_named(covered + 1, first - 1)}"
        covered = step
    if covered < last_step:
        return f"the log has no loss for {steps_named(covered + 1, last_step)}"
    return None


def logged_loss_sum(log_history: list, last_step: int) -> "tuple[float, int] | None":
    """(the summed per-step loss, the steps) of steps 1..`last_step` from a Trainer's
    log_history, whose `loss` entries are each the mean over their LOSS_STEPS steps; None when
    they do not cover every step up to `last_step` once (loss_log_gap says why)."""
    if loss_log_gap(log_history, last_step) is not None:
        return None
    entries = loss_entries(log_history, last_step)
    return sum(float(e["loss"]) * e[LOSS_STEPS] for e in entries), last_step


def last_logged_step(trainer) -> int:
    """The step up to which the Trainer's next `loss` entry is NOT its mean: the later of the
    step this train() call started from (the Trainer logs no loss of steps before a resume) and
    the last `loss` entry of log_history. This is the Trainer's own _globalstep_last_logged at
    the time it computed the entry, read before it moved on."""
    earlier = [e["step"] for e in loss_entries(trainer.state.log_history, trainer.state.global_step)]
    return max([training_attribute(trainer, "_initial_global_step"), *earlier])


def _log_wrapper(host_log):
    @functools.wraps(host_log)
    def log(self, logs, *args, **kwargs):
        if "loss" not in logs:
            return host_log(self, logs, *args, **kwargs)
        count = self.state.global_step - last_logged_step(self)
        before = len(self.state.log_history)
        output = host_log(self, logs, *args, **kwargs)
        # in log_history only (what the checkpoint's trainer_state.json keeps), not in what the
        # callbacks (console, tensorboard) receive
        if len(self.state.log_history) == before + 1 and count > 0:
            self.state.log_history[-1][LOSS_STEPS] = count
        return output

    return log


def whole_run_loss(this_call: float, steps: int, earlier: "tuple[float, int]") -> float:
    """The mean loss over every step: `this_call` (the mean of the `steps` steps since the resume)
    and `earlier`, logged_loss_sum's sum and steps before it."""
    return (earlier[0] + this_call * steps) / (earlier[1] + steps)


def _finalize_training_wrapper(host_finalize):
    @functools.wraps(host_finalize)
    def _finalize_training(self, *args, **kwargs):
        resumed_at = training_attribute(self, "_initial_global_step")
        if not resumed_at:  # a fresh run: the host's mean is over every step
            return host_finalize(self, *args, **kwargs)
        gap = loss_log_gap(self.state.log_history, resumed_at)
        earlier = logged_loss_sum(self.state.log_history, resumed_at)
        steps = self.state.global_step - resumed_at
        host_log = self.log
        fixed = {}

        def log(logs, *log_args, **log_kwargs):  # the end-of-training log, where train_loss is said
            if "train_loss" in logs and earlier is not None and steps > 0:
                fixed["train_loss"] = whole_run_loss(logs["train_loss"], steps, earlier)
                logs = {**logs, "train_loss": fixed["train_loss"]}
            return host_log(logs, *log_args, **log_kwargs)

        self.log = log  # for this call only: an instance attribute over the class's method
        try:
            output = host_finalize(self, *args, **kwargs)
        finally:
            del self.log
        if fixed:
            output.metrics["train_loss"] = fixed["train_loss"]
            return output._replace(training_loss=fixed["train_loss"])
        if steps > 0 and self.is_world_process_zero():
            print(f"deepmolm_plugin: note: train_loss {output.training_loss:.6g} is the mean of steps {resumed_at + 1}-"
                  f"{self.state.global_step} only: this run resumed at step {resumed_at}, and the checkpoint's "
                  f"log_history cannot give the loss of every step before it: {gap}", file=sys.stderr)
        return output

    return _finalize_training


# The methods of transformers' Trainer the wrappers wrap, checked before anything is patched.
TRAINER_METHODS = ("_load_optimizer_and_scheduler", "_finalize_training", "log")


def check_trainer(trainer_class) -> None:
    """Raise, before anything is patched, when this transformers' Trainer lacks a method the
    wrappers wrap. Was: the learning-rate half was patched and recorded before the train_loss
    half was checked, so a failed check left half the patch applied."""
    missing = [name for name in TRAINER_METHODS if not hasattr(trainer_class, name)]
    if missing:
        raise RuntimeError(f"patch 'resume_schedule' needs transformers' Trainer.{', Trainer.'.join(missing)} "
                           "(transformers 5.x as pinned in requirements/constraints.txt); check the patch against "
                           "this version")


def training_attribute(trainer, name: str):
    """`trainer.<name>`, an attribute transformers' train() sets (_initial_global_step), read
    without a default: was getattr(..., 0), with which a transformers that renamed it left the
    patch doing nothing without a word."""
    try:
        return getattr(trainer, name)
    except AttributeError as e:
        raise RuntimeError(f"patch 'resume_schedule' (train_loss) needs transformers' Trainer.{name}, which this "
                           "version's train() does not set; check the patch against this version") from e


def apply() -> None:
    _host.require_host("resume_schedule")
    from transformers import Trainer

    from llava.train import llava_trainer

    check_trainer(Trainer)
    cls = llava_trainer.LLaVATrainer

    def _apply():
        host_load = cls._load_optimizer_and_scheduler

        @functools.wraps(host_load)
        def _load_optimizer_and_scheduler(self, checkpoint):
            host_load(self, checkpoint)
            if checkpoint is not None and getattr(self, "lr_scheduler", None) is not None:
                apply_current_schedule(self.lr_scheduler)

        cls._load_optimizer_and_scheduler = _load_optimizer_and_scheduler

    def _apply_train_loss():
        cls._finalize_training = _finalize_training_wrapper(cls._finalize_training)
        cls.log = _log_wrapper(cls.log)

    _host.apply_once(llava_trainer, "resume_schedule", _apply)
    _host.apply_once(llava_trainer, "resume_train_loss", _apply_train_loss)
