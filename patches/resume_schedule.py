"""A resumed run takes its first step at the learning rate of its own (new) schedule.

The launcher lets a resumed run change its epochs, steps and schedule: that is how a
finished run is trained for longer (train.RUN_RECORD). The Trainer builds the new schedule,
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
"""

from __future__ import annotations

import functools

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


def apply() -> None:
    _host.require_host("resume_schedule")
    from transformers import Trainer

    from llava.train import llava_trainer

    if not hasattr(Trainer, "_load_optimizer_and_scheduler"):
        raise RuntimeError("patch 'resume_schedule' needs transformers' Trainer._load_optimizer_and_scheduler "
                           "(transformers >= 5.x as pinned in requirements/constraints.txt); check the patch against "
                           "this version")
    cls = llava_trainer.LLaVATrainer

    def _apply():
        host_load = cls._load_optimizer_and_scheduler

        @functools.wraps(host_load)
        def _load_optimizer_and_scheduler(self, checkpoint):
            host_load(self, checkpoint)
            if checkpoint is not None and getattr(self, "lr_scheduler", None) is not None:
                apply_current_schedule(self.lr_scheduler)

        cls._load_optimizer_and_scheduler = _load_optimizer_and_scheduler

    _host.apply_once(llava_trainer, "resume_schedule", _apply)
