"""The README's stage-1 command gives `--bf16 True`; on a machine without a GPU the launcher
stopped with transformers' "Your setup doesn't support bf16/gpu. You need to assign use_cpu"
(exit 2), although chat and eval pick bf16 on the same CPU. It adds `--use_cpu True` with a
note saying whether the CPU computes bf16 natively (README walk-through, thirteenth round)."""
import json
from types import SimpleNamespace

import pytest
import torch

from deepmolm_plugin.training.distributed import cpu_bf16_argv
from host_fixtures import run_module, train_args


def test_bf16_without_a_gpu_adds_use_cpu_with_a_note(monkeypatch, capsys):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    argv = ["--bf16", "True", "--output_dir", "o"]
    assert cpu_bf16_argv(argv, SimpleNamespace(bf16=True)) == argv + ["--use_cpu", "True"]
    note = capsys.readouterr().err
    assert "--bf16 True without a GPU: training on the CPU in bfloat16 (--use_cpu True added)" in note
    assert ("natively" in note) or ("leave --bf16 out" in note)


@pytest.mark.parametrize("argv, bf16", [
    (["--bf16", "True", "--use-cpu=False"], True),  # the user's choice, in another spelling: transformers decides
    (["--output_dir", "o"], False),  # no bf16
])
def test_argv_is_left_alone_otherwise(monkeypatch, capsys, argv, bf16):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    assert cpu_bf16_argv(argv, SimpleNamespace(bf16=bf16)) == argv
    assert capsys.readouterr().err == ""


def test_the_launcher_trains_in_bf16_on_the_cpu(tiny_setup, tmp_path):
    # CUDA hidden, so a GPU machine runs the CPU path too (was: skipped there)
    out = tmp_path / "out"
    proc = run_module("deepmolm_plugin.train", train_args(tiny_setup, out, "--mm_projector", "fusion", "--bf16",
                                                          "True", steps=1), cwd=tmp_path, check=False,
                      env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]  # was 2: "Your setup doesn't support bf16/gpu"
    assert "(--use_cpu True added)" in proc.stderr
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
