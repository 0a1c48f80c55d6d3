"""Saved model weights get the user's file mode.

safetensors' `save_file` writes `model.safetensors` (and its shards) private, 0600, while
every other file of the same save (config, tokenizer, optimizer state) gets 0666 less the
umask, as open() gives it: a run folder shared with a group held weights the group could not
read (the chat, eval and the GUI refused them). The host trainer's `_save` (every model save:
periodic checkpoints, the final one, under DeepSpeed too) is wrapped to give the weights
files it wrote the mode open() would have. Idempotent; the same on every transformers.
"""

from __future__ import annotations

import functools

from . import _host


def apply() -> None:
    _host.require_host("weights_file_mode")
    from llava.train import llava_trainer

    cls = llava_trainer.LLaVATrainer

    def _apply():
        host_save = cls._save

        @functools.wraps(host_save)
        def _save(self, output_dir=None, state_dict=None):
            host_save(self, output_dir, state_dict)
            if self.args.should_save:  # the rank that wrote them
                from deepmolm_plugin.tensor_files import share_weights_files

                share_weights_files(output_dir if output_dir is not None else self.args.output_dir)

        cls._save = _save

    _host.apply_once(llava_trainer, "weights_file_mode", _apply)
