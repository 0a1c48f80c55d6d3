"""dtype="auto": bf16 on CUDA and on CPUs with native bf16, fp32 on other CPUs; logged once."""

import logging

import pytest
import torch

from deepmolm_plugin import dtypes
from deepmolm_plugin.model.loading import pick_device_and_dtype


@pytest.fixture
def cpu_flags(monkeypatch):
    """Pretend the CPU reports the given capability flags (torch's own dict)."""
    dtypes._logged.clear()

    def set_flags(**flags):
        report = {"avx2": True, "amx_bf16": False, "avx512_bf16": False, **flags}
        monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: report)

    yield set_flags
    dtypes._logged.clear()


@pytest.mark.parametrize("flags, expected", [
    ({}, torch.float32),  # AVX2 only: bf16 is emulated
    ({"avx512_bf16": True}, torch.bfloat16),
    ({"amx_bf16": True}, torch.bfloat16),
])
def test_auto_on_cpu_follows_native_bf16(cpu_flags, flags, expected):
    cpu_flags(**flags)
    assert dtypes.resolve_dtype("auto", "cpu") == expected
    assert pick_device_and_dtype("cpu", None) == ("cpu", expected)  # the loaders' default
    assert pick_device_and_dtype("cpu", "auto") == ("cpu", expected)


def test_real_cpu_capability_is_readable():
    assert isinstance(dtypes.cpu_has_native_bf16(), bool)


@pytest.mark.parametrize("bf16, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_on_cuda(monkeypatch, bf16, expected):
    dtypes._logged.clear()
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Fake GPU")
    assert dtypes.auto_dtype(torch.device("cuda", 0)) == expected
    dtypes._logged.clear()


def test_logged_once_per_outcome(cpu_flags, caplog):
    cpu_flags()
    with caplog.at_level(logging.INFO, logger="deepmolm_plugin.dtypes"):
        for _ in range(3):
            dtypes.resolve_dtype("auto", "cpu")
    lines = [r.getMessage() for r in caplog.records if r.name == "deepmolm_plugin.dtypes"]
    assert len(lines) == 1 and "float32" in lines[0] and "emulated" in lines[0]


def test_explicit_dtypes_pass_and_unknown_names_fail():
    assert dtypes.resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert dtypes.resolve_dtype(torch.float16, "cpu") == torch.float16
    assert dtypes.resolve_dtype(None, "cpu") is None
    assert pick_device_and_dtype("cpu", torch.bfloat16) == ("cpu", torch.bfloat16)
    with pytest.raises(ValueError, match="unknown dtype 'half'.*'auto'"):
        dtypes.resolve_dtype("half", "cpu")
    with pytest.raises(ValueError, match="not 'meta'"):
        dtypes.resolve_dtype("auto", "meta")


def test_cuda_request_without_cuda_loads_on_cpu(cpu_flags, monkeypatch):
    cpu_flags()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device_and_dtype("cuda", None) == ("cpu", torch.float32)
