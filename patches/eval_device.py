"""The host's eval scripts hard-code `.cuda()` and `.half()`: make them run without CUDA.

`llava.eval.model_vqa` (and model_vqa_science, model_vqa_mmbench, run_llava) move every
input with `tensor.cuda()` and cast images with `tensor.half()`. Without CUDA the first
call raises, and float16 images are not what a CPU (float32) model was loaded in.

`cuda_calls_follow_model(model_of)` is a context manager for launchers only: while it is
active, and only when CUDA is unavailable, `torch.Tensor.cuda()` moves the tensor to the
model's device and `torch.Tensor.half()` casts to the model's dtype; both are restored on
exit. With CUDA available it changes nothing (the host's calls work as written, and our
tower casts images to its own dtype). `model_of()` returns the loaded model, or None
before loading (a `.cuda()` then is an error: there is no device to follow yet).

Not covered: `.to(device='cuda')` (model_vqa_loader) and `model.cuda()` on modules.
A patch for the duration of one call rather than `apply()`: it swaps methods of
`torch.Tensor` itself, so it must never outlive the host function it serves. Nested use
is a no-op (the outermost one restores).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Optional

import torch

from . import _host

_active = False


@contextlib.contextmanager
def cuda_calls_follow_model(model_of: Callable[[], Optional[torch.nn.Module]]):
    global _active
    _host.require_host("eval_device")
    if _active or torch.cuda.is_available():
        yield
        return

    def target():
        model = model_of()
        if model is None:
            raise RuntimeError("tensor.cuda()/.half() was called before the model was loaded; "
                               "without CUDA there is no device to map it to")
        return model

    def cuda(self, device=None, non_blocking=False, **kwargs):
        return self.to(device=target().device, non_blocking=non_blocking)

    def half(self, **kwargs):
        return self.to(dtype=target().dtype)

    # Both are inherited from torch._C.TensorBase: restore by deleting ours (or putting
    # back whatever torch.Tensor itself held), so the class is left exactly as found.
    saved = {name: torch.Tensor.__dict__.get(name) for name in ("cuda", "half")}
    torch.Tensor.cuda, torch.Tensor.half = cuda, half
    _active = True
    try:
        yield
    finally:
        for name, method in saved.items():
            if method is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, method)
        _active = False
