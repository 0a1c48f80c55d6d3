"""Saving without DeepSpeed: the host's `maybe_zero_3` imports deepspeed unconditionally.

Projector-only saving (stage 1) and LoRA saving call `maybe_zero_3` on every parameter,
and it starts with `from deepspeed import zero`, so a run without DeepSpeed installed
(CPU, a plain torchrun) crashes at save time. Ours imports DeepSpeed only for a
parameter that ZeRO-3 actually partitioned (it carries `ds_id`) and otherwise returns
the same detached CPU copy as the host.
"""

from __future__ import annotations

import logging

from . import _host


def maybe_zero_3(param, ignore_status=False, name=None):
    if hasattr(param, "ds_id"):
        from deepspeed import zero
        from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

        if param.ds_status == ZeroParamStatus.NOT_AVAILABLE and not ignore_status:
            logging.warning(f"{name}: param.ds_status != ZeroParamStatus.NOT_AVAILABLE: {param.ds_status}")
        with zero.GatheredParameters([param]):
            return param.data.detach().cpu().clone()
    return param.detach().cpu().clone()


def safe_save_model_for_hf_trainer(trainer, output_dir):
    """The host's final save, without the `torch.cuda.synchronize()` it runs before a
    DeepSpeed save: on a machine without CUDA (DeepSpeed's CPU accelerator, gloo) that call
    raises "Found no NVIDIA driver on your system" after training has finished."""
    import torch
    import llava.train.train as host_train

    if trainer.deepspeed and not torch.cuda.is_available() and not getattr(trainer.args, "tune_mm_mlp_adapter", False):
        trainer.save_model(output_dir)  # ZeRO-3: gathers the full weights (stage3_gather_16bit_weights_on_model_save)
        return
    return _host.original(host_train, "safe_save_model_for_hf_trainer")(trainer, output_dir)


def apply() -> None:
    _host.require_host("deepspeed_optional")
    import llava.train.llava_trainer as llava_trainer
    import llava.train.train as host_train

    def _apply():
        for module in (host_train, llava_trainer):
            _host.replace(module, "maybe_zero_3", maybe_zero_3)
        _host.replace(host_train, "safe_save_model_for_hf_trainer", safe_save_model_for_hf_trainer)

    _host.apply_once(host_train, "deepspeed_optional", _apply)
