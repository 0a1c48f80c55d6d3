"""`dtype="auto"`: the fastest exact-enough dtype for the device a model runs on.

- CUDA: bfloat16 where the GPU has it (Ampere and later), else float16 (what the host
  runs on older GPUs);
- CPU with native bf16 arithmetic (AMX-BF16 or AVX512-BF16, as torch reports the CPU's
  capabilities): bfloat16, about twice the fp32 matmul rate on an AMD EPYC with AVX512-BF16.
  Not everywhere: on an Intel Xeon VM reporting AVX512-BF16 but no AMX, a bf16 matmul ran at
  0.58x the fp32 rate and the DeepEncoder took 9.0 s in bf16 against 5.8 s in fp32
  (`scripts/bench_encoder.py` measures both). The flags cannot tell these apart, and a
  choice measured at each start would change with the machine's load (and with it the
  answers, which model_vqa's --resume compares), so there the line says so, and how to
  choose float32;
- any other CPU: float32. There bf16 is emulated: on an AVX2-only EPYC the DeepEncoder took
  113 s in bf16 against 21 s in fp32.

The choice is said once per device type and outcome, as a WARNING on stderr (the level the
loaders' other notes reach the user at; was INFO, which no entry point shows, so a CPU with
native bf16 ran an fp32-trained model in bf16 without a word). A launcher that knows the dtype the
model was trained in (`trained_dtype`) has it named on the same line when auto chose another.
Explicit dtypes pass through.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Optional, Union

import torch

logger = logging.getLogger(__name__)

AUTO = "auto"
NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_logged: set = set()


def cpu_has_native_bf16() -> bool:
    """Whether torch reports AMX-BF16 or AVX512-BF16 on this CPU."""
    capability = torch._C._cpu._get_cpu_capability()  # {'amx_bf16': bool, 'avx512_bf16': bool, ...}
    return bool(capability.get("amx_bf16") or capability.get("avx512_bf16"))


def trained_dtype(config) -> Optional[torch.dtype]:
    """The dtype a saved model's weights were trained and saved in, as its config records it
    (`dtype`, or `torch_dtype` in older transformers; a config object or config.json's dict),
    or None where it records none that is one of NAMES."""
    from .config_fields import config_field

    # (transformers maps torch_dtype into a config object's dtype, and reading torch_dtype
    # there warns that it is deprecated; config.json's dict from older transformers has only it)
    value = config_field(config, "dtype") or (config.get("torch_dtype") if isinstance(config, Mapping) else None)
    if isinstance(value, torch.dtype):
        return value if value in NAMES.values() else None
    return NAMES.get(value.replace("torch.", "")) if isinstance(value, str) else None


def _native_bf16_reason() -> str:
    """Why "auto" took bf16 on this CPU; where only AVX512-BF16 is reported (no AMX), that it
    may be slower there (see the module docstring) and how to check and choose."""
    if torch._C._cpu._get_cpu_capability().get("amx_bf16"):
        return "CPU with native bf16 (AMX-BF16)"
    return ("CPU with native bf16 (AVX512-BF16, no AMX: on some such CPUs bf16 matmuls run slower than fp32; "
            "scripts/bench_encoder.py measures both, --dtype float32 chooses fp32)")


def trained_note(chosen: torch.dtype, trained: Optional[torch.dtype]) -> str:
    """What "auto"'s choice line adds when the model was trained in another dtype (was: the
    choice alone, so an fp32-trained model ran in bf16 without a word about training)."""
    if trained is None or trained == chosen:
        return ""
    name = str(trained).replace("torch.", "")
    return f"; the model was trained in {name}, so its results may differ slightly from training's (--dtype {name} " \
           "to match)"


def auto_dtype(device: Union[str, torch.device], trained: Optional[torch.dtype] = None) -> torch.dtype:
    """The dtype `"auto"` means on `device` (see the module docstring). `trained`: the dtype
    the model was trained in (`trained_dtype`), named on the same line when it differs."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        reason = f"CUDA device {torch.cuda.get_device_name(index)}"
    elif device.type == "cpu":
        native = cpu_has_native_bf16()
        dtype = torch.bfloat16 if native else torch.float32
        reason = _native_bf16_reason() if native else (
            f"CPU without native bf16 (torch reports {torch.backends.cpu.get_cpu_capability()}), "
            "where bf16 is emulated and slower than fp32")
    else:
        raise ValueError(f'dtype "auto" knows CPU and CUDA devices, not {device.type!r}: give a dtype')
    if (device.type, dtype, trained) not in _logged:
        _logged.add((device.type, dtype, trained))
        # rank 0 of a distributed run says it (the ranks choose alike); the others at INFO
        level = logging.WARNING if os.environ.get("RANK", "0") == "0" else logging.INFO
        logger.log(level, 'dtype "auto" -> %s: %s%s', str(dtype).replace("torch.", ""), reason,
                   trained_note(dtype, trained))
    return dtype


def resolve_dtype(value: Union[str, torch.dtype, None], device: Union[str, torch.device],
                  trained: Optional[torch.dtype] = None) -> Optional[torch.dtype]:
    """"auto" / a name ("bfloat16") / a torch.dtype / None -> torch.dtype or None.
    `trained`: the model's training dtype, for "auto"'s line (`auto_dtype`).

    Any other value is a ValueError listing the accepted names.
    """
    if value is None or isinstance(value, torch.dtype):
        return value
    if value == AUTO:
        return auto_dtype(device, trained)
    if value not in NAMES:
        raise ValueError(f"unknown dtype {value!r}; expected {AUTO!r} or one of {sorted(NAMES)}")
    return NAMES[value]
