"""The host's LLaVATrainer against the transformers >= 4.52 / 5.x Trainer API.

- `Trainer._get_train_sampler` gained a `train_dataset` argument (>= 4.52); the host's
  override takes none, so Trainer's call raises TypeError. The wrapper accepts it; the
  host's method reads `self.train_dataset`, which is the same dataset.
- `Trainer(tokenizer=...)` became `Trainer(processing_class=...)` (5.x); the host's
  train.py passes `tokenizer=`. Renamed on the way in.
- `Trainer._save_checkpoint(model, trial, metrics)` lost `metrics` (5.x); the host's
  override passes it on positionally, so every periodic checkpoint (`--save_strategy
  steps|epoch`) of a full model raised TypeError at its first save. The wrapper keeps the
  host's adapter-only branch and calls Trainer's method with the arguments it takes.
All are no-ops on a transformers that still has the old API.
"""

from __future__ import annotations

import functools
import inspect

from . import _host


def apply() -> None:
    _host.require_host("trainer_api")
    from transformers import Trainer

    from llava.train import llava_trainer

    cls = llava_trainer.LLaVATrainer

    def _apply():
        if "train_dataset" in inspect.signature(Trainer._get_train_sampler).parameters:
            host_sampler = cls._get_train_sampler

            @functools.wraps(host_sampler)
            def _get_train_sampler(self, train_dataset=None):
                return host_sampler(self)

            cls._get_train_sampler = _get_train_sampler

        if "tokenizer" not in inspect.signature(Trainer.__init__).parameters:
            host_init = cls.__init__

            @functools.wraps(host_init)
            def __init__(self, *args, **kwargs):
                if "tokenizer" in kwargs:
                    kwargs["processing_class"] = kwargs.pop("tokenizer")
                host_init(self, *args, **kwargs)

            cls.__init__ = __init__

        if "metrics" not in inspect.signature(Trainer._save_checkpoint).parameters:
            host_save = cls._save_checkpoint

            @functools.wraps(host_save)
            def _save_checkpoint(self, model, trial, metrics=None):
                if getattr(self.args, "tune_mm_mlp_adapter", False):
                    return host_save(self, model, trial, metrics)  # never reaches Trainer's method
                return Trainer._save_checkpoint(self, model, trial)

            cls._save_checkpoint = _save_checkpoint

    _host.apply_once(llava_trainer, "trainer_api", _apply)
