"""Log the KFLM2 auxiliary loss next to the total loss.

The Trainer logs only the total loss. Our model keeps the auxiliary property loss of each
training forward (`aux_property_losses`); this wraps the host trainer's `log` to add
their mean since the last log as `aux_property_loss`, so it lands in the progress output
and in trainer_state.json's log_history. A no-op for models without the head.
"""

from __future__ import annotations

import functools

from . import _host


def apply() -> None:
    _host.require_host("aux_property_logging")
    from llava.train import llava_trainer

    cls = llava_trainer.LLaVATrainer

    def _apply():
        host_log = cls.log

        @functools.wraps(host_log)
        def log(self, logs, *args, **kwargs):
            model = self.model.module if hasattr(self.model, "module") else self.model
            losses = getattr(model, "aux_property_losses", None)
            if losses and "loss" in logs:
                logs = {**logs, "aux_property_loss": round(sum(losses) / len(losses), 6)}
                losses.clear()
            return host_log(self, logs, *args, **kwargs)

        cls.log = log

    _host.apply_once(llava_trainer, "aux_property_logging", _apply)
