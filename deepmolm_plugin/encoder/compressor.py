"""The 16x token compressor between SAM and CLIP.

Two bias-free 3x3 stride-2 convs with no norm or activation in between (DeepSeek-OCR's
`net_2` 256->512 and `net_3` 512->1024): the 64x64 SAM neck map at 1024 px becomes a
16x16 map of 1024-channel tokens. Parameter names match DeepSeek's checkpoint.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Compressor(nn.Module):
    """(B, in_chans, h, w) -> (B, channels[-1], h / 2^n, w / 2^n)."""

    def __init__(self, in_chans: int, channels: Sequence[int]):
        super().__init__()
        self.names = []
        for i, out in enumerate(channels):
            name = f"net_{i + 2}"  # DeepSeek numbers them from 2
            self.add_module(name, nn.Conv2d(in_chans, out, 3, stride=2, padding=1, bias=False))
            self.names.append(name)
            in_chans = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            x = getattr(self, name)(x)
        return x
