"""Stop training at the first optimizer step whose loss or gradient norm is not finite.

Transformers' Trainer logs a NaN or inf loss as the mean of the losses logged before it
(`logging_nan_inf_filter`, on by default), and gradient clipping scales gradients whose
norm is inf by max_grad_norm / inf = 0: a run whose loss overflowed (say a huge
`--aux_property_weight`) kept stepping without learning anything, or wrote NaN weights,
logged plausible losses, saved the model and exited 0.

This wraps the host trainer's `training_step` to keep the losses of the micro-batches since
the last optimizer step, and `Trainer._get_grad_norm` (called once per optimizer step,
after the gradients of all micro-batches and all ranks are reduced) to raise
`NonFiniteTraining` (a FloatingPointError) naming the step, its losses (with the auxiliary
property loss, when the model has the KFLM2 head) and the gradient norm. The check sits at
the reduced gradient norm because every rank sees the same value there (a rank's NaN loss
gives NaN gradients, which the reduction spreads), so every rank stops at the same step.
Outside DeepSpeed it runs before `optimizer.step()`, so the weights are those of the step
before; under DeepSpeed the engine has stepped inside the backward already.
Either way nothing more is saved: the last periodic checkpoint is the one to resume from.

Not while a loss scaler is active (fp16 on a GPU: accelerate's GradScaler, or DeepSpeed's
own under its fp16): it skips steps whose scaled gradients overflow by design, and lowers
the scale (an inf gradient norm there is routine, not a fault). Was: skipped whenever
`--fp16` was given, but where no scaler exists (on a CPU accelerate makes none and trains in
float32) a diverged run logged its NaN loss as 0, saved NaN weights and exited 0.
"""

from __future__ import annotations

import functools
import math

from . import _host


class NonFiniteTraining(FloatingPointError):
    """The launcher prints it as one error line and exits 1."""


def _finite(value) -> bool:
    """A Python number or 0-d tensor; None (no norm computed) counts as finite."""
    if value is None:
        return True
    return math.isfinite(float(value))


def loss_scaler_active(trainer, model) -> bool:
    """Whether a loss scaler skips this run's overflowing steps: accelerate's GradScaler (made
    only for fp16 on a GPU-like device; None on a CPU, whatever `--fp16` says) or, under
    DeepSpeed, its engine's fp16 (DeepSpeed keeps its own scaler, accelerate holds none)."""
    scaler = getattr(getattr(trainer, "accelerator", None), "scaler", None)
    if scaler is not None and getattr(scaler, "is_enabled", lambda: True)():
        return True
    if not getattr(trainer, "is_deepspeed_enabled", False):
        return False
    engines = (model, getattr(trainer, "model_wrapped", None))  # the DeepSpeedEngine the loop steps
    return any(callable(getattr(e, "fp16_enabled", None)) and e.fp16_enabled() for e in engines)


def _message(trainer, grad_norm, losses: list, aux: list, bad_loss: bool, bad_norm: bool) -> str:
    step = trainer.state.global_step + 1
    total = trainer.state.max_steps
    shown = ", ".join(f"{x:.6g}" for x in losses) or "none recorded"
    what = " and ".join(name for name, bad in (("the loss", bad_loss), ("the gradient norm", bad_norm)) if bad)
    text = (f"training stopped at optimizer step {step}" + (f" of {total}" if total and total > 0 else "")
            + f": {what} is not finite (loss per micro-batch: {shown}; gradient norm: "
            f"{float(grad_norm) if grad_norm is not None else 'not computed'}")
    if aux:
        weight = getattr(getattr(trainer.model, "config", None), "aux_property_weight", None)
        text += f"; auxiliary property loss: {', '.join(f'{x:.6g}' for x in aux)} x --aux_property_weight {weight}"
    return text + ("). Lower --learning_rate or --aux_property_weight, or check the batch's labels; "
                   "nothing from this step was saved, resume from the last checkpoint.")


def apply() -> None:
    _host.require_host("nonfinite_training")
    from transformers import Trainer

    from llava.train import llava_trainer

    cls = llava_trainer.LLaVATrainer
    if not hasattr(Trainer, "_get_grad_norm"):
        raise RuntimeError("patch 'nonfinite_training' needs transformers' Trainer._get_grad_norm (transformers "
                           ">= 5.x as pinned in requirements/constraints.txt); check the patch against this version")

    def _apply():
        host_step, host_norm = cls.training_step, cls._get_grad_norm

        @functools.wraps(host_step)
        def training_step(self, model, inputs, *args, **kwargs):
            loss = host_step(self, model, inputs, *args, **kwargs)
            # kept as the tensor: read once per optimizer step (below), not a device sync per micro-batch
            self.__dict__.setdefault("_deepmolm_step_losses", []).append(loss.detach() if hasattr(loss, "detach")
                                                                         else loss)
            return loss

        @functools.wraps(host_norm)
        def _get_grad_norm(self, model, grad_norm=None):
            grad_norm = host_norm(self, model, grad_norm=grad_norm)
            losses = [float(x) for x in self.__dict__.pop("_deepmolm_step_losses", [])]
            if loss_scaler_active(self, model):  # was: `if self.args.fp16` (no scaler on a CPU)
                return grad_norm
            bad_loss, bad_norm = not all(map(math.isfinite, losses)), not _finite(grad_norm)
            if bad_loss or bad_norm:
                unwrapped = model.module if hasattr(model, "module") else model
                recent = list(getattr(unwrapped, "aux_property_losses", None) or [])  # since the last log
                aux = recent[-len(losses):] if losses else []  # this step's micro-batches
                raise NonFiniteTraining(_message(self, grad_norm, losses, aux, bad_loss, bad_norm))
            return grad_norm

        cls.training_step = training_step
        cls._get_grad_norm = _get_grad_norm

    _host.apply_once(llava_trainer, "nonfinite_training", _apply)
