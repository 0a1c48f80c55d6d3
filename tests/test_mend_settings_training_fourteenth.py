"""Mending the fourteenth round's settings and training changes after review: NCCL's own
failures keep their traceback (only a gone peer is a lost peer), a peer lost after training
says the model was saved, the checkpoint-defaults note only for DeepMoLM checkpoints, the
training dtype read without transformers' torch_dtype deprecation, the batch-fill note's
wording, and the start's Ctrl-C handler surviving a flush interrupted mid-write."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import torch
import torch.distributed as dist

from deepmolm_plugin.training.interrupts import lost_peer_line, process_group_failure


def test_only_a_gone_peer_is_a_lost_peer_under_nccl():
    own = dist.DistBackendError("NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled system error, "
                                "NCCL version 2.21.5; ncclSystemError: System call failed (/dev/shm too small)")
    gone = dist.DistBackendError("NCCL error: remote process exited or there was a network error, ncclRemoteError")
    assert process_group_failure(own) is None  # was: "another training process ended", no traceback
    assert "remote process exited" in process_group_failure(gone)
    assert process_group_failure(RuntimeError("CUDA out of memory")) is None


def test_a_peer_lost_after_training_says_the_model_was_saved(tmp_path):
    line = lost_peer_line("Connection closed by peer", str(tmp_path), trained=True)
    assert "after the training finished" in line and str(tmp_path) in line and "interrupted" not in line
    assert "stopped too" in lost_peer_line("Connection closed by peer", str(tmp_path))


def test_the_defaults_note_is_for_deepmolm_checkpoints_only():
    from deepmolm_plugin.molecule.inputs import model_depiction

    assert model_depiction({}).notes == ()  # no config.json (a hub name): nothing training recorded
    assert model_depiction({"model_type": "llava"}).notes == ()  # a text LLM: its own refusal follows
    noted = model_depiction({"model_type": "llava_qwen2", "mm_vision_tower": "deepencoder"}).notes
    assert len(noted) == 1 and "does not record" in noted[0]


def test_the_training_dtype_is_read_from_dtype_on_config_objects():
    from deepmolm_plugin.dtypes import trained_dtype

    class Config(SimpleNamespace):
        @property
        def torch_dtype(self):  # transformers 5 warns here that torch_dtype is deprecated
            raise AssertionError("torch_dtype read")

    assert trained_dtype(Config(dtype=None)) is None
    assert trained_dtype(Config(dtype=torch.float32)) == torch.float32
    assert trained_dtype({"torch_dtype": "bfloat16"}) == torch.bfloat16  # config.json of older transformers


def test_the_batch_fill_note_does_not_say_twice(monkeypatch):
    """3 records, batch 4, 2 processes: 5 filled, so a record is trained 2-3 times, not "twice"."""
    from deepmolm_plugin.training.arguments import batch_fill_note

    monkeypatch.setenv("WORLD_SIZE", "2")
    note = batch_fill_note(SimpleNamespace(per_device_train_batch_size=4, dataloader_drop_last=False), 3)
    assert "filled with 5 record(s)" in note and "twice" not in note and "again" in note


def test_the_start_handler_ends_the_process_when_a_flush_is_interrupted_mid_write():
    script = textwrap.dedent("""
        import sys
        from deepmolm_plugin.start_interrupts import _end_the_start

        class Busy:
            def flush(self):
                raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stdout>'>")

        sys.stdout = Busy()
        _end_the_start("tool: interrupted while starting\\n")
        print("not reached", file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (130, "tool: interrupted while starting\n")
