"""The host-facing vision tower `deepencoder`.

llava-torch's model code talks to a tower through the contract of its CLIPVisionTower:
`is_loaded`, `load_model(device_map=None)`, `image_processor`, `hidden_size`, `dtype`,
`device`, `config`, `num_patches_per_side`, and `forward(images) -> (B, N, hidden)`;
its builder constructs towers with `delay_load=True` when a saved model is reloaded.
This class fulfils that contract around DeepEncoder, reading its settings from the host
arguments / model config object (`args`):

- `vision_tower_weights`: checkpoint path(s) for `load_deepencoder`, or the word
  "random" for an explicitly untrained tower. No weights and no "random" is an error:
  the tower is never silently random.
- `deepencoder_config`: a DeepEncoderConfig, a dict of its fields, or a JSON path
  (default: DeepSeek-OCR's sizes).
- `image_mode`: "base" (one 1024 view) or "tiles" (plus 640 tiles).
- `unfreeze_mm_vision_tower`: train the tower (default: frozen, as the host's towers).

`delay_load=True` is how the host rebuilds a *saved* model (LlavaMetaModel.__init__):
the tower then only builds its module structure, and its weights come from the model
checkpoint being loaded, never from `vision_tower_weights` again (that path may be
relative, or gone). Loaders check that the checkpoint really held them
(deepmolm_plugin.model.loading).

As in the host, the encoder module lives at `.vision_tower`, so its weights are saved
under `model.vision_tower.vision_tower.*`.
"""

from __future__ import annotations

import os
from typing import List, Union

import torch
from torch import nn

from .config import DeepEncoderConfig, resolve_dtype
from .image_processor import DeepEncoderImageProcessor
from .model import DeepEncoder, load_deepencoder

RANDOM_WEIGHTS = "random"


def config_from_args(args) -> DeepEncoderConfig:
    value = getattr(args, "deepencoder_config", None)
    if value is None:
        return DeepEncoderConfig()
    if isinstance(value, DeepEncoderConfig):
        return value
    if isinstance(value, dict):
        return DeepEncoderConfig.from_dict(value)
    if isinstance(value, (str, os.PathLike)):
        return DeepEncoderConfig.load(value)
    raise TypeError(f"deepencoder_config must be a DeepEncoderConfig, dict or path, got {type(value)}")


class DeepEncoderVisionTower(nn.Module):
    def __init__(self, vision_tower: str, args=None, delay_load: bool = False):
        super().__init__()
        self.vision_tower_name = vision_tower
        self.encoder_config = config_from_args(args)
        self.weights = getattr(args, "vision_tower_weights", None)
        self.trainable = bool(getattr(args, "unfreeze_mm_vision_tower", False))
        self.image_processor = DeepEncoderImageProcessor.from_config(
            self.encoder_config, mode=getattr(args, "image_mode", None) or "base"
        )
        self.is_loaded = False
        if delay_load:
            self._build(weights_from="model checkpoint")
        else:
            self.load_model()

    def load_model(self, device_map=None) -> None:
        if self.is_loaded:
            return
        if self.weights is None:
            raise ValueError(
                "vision tower 'deepencoder' has no weights: pass --vision_tower_weights PATH "
                "(a DeepSeek-OCR checkpoint, [SAM ViT-B .pth, CLIP ViT-L/14] files, or a saved "
                f"DeepEncoder folder), or --vision_tower_weights {RANDOM_WEIGHTS} to train one "
                "from scratch"
            )
        if self.weights == RANDOM_WEIGHTS:
            self._build(weights_from="random initialisation")
        else:
            self._install(load_deepencoder(self.weights, config=self.encoder_config), str(self.weights))
        if device_map is not None and device_map != "auto":
            self.vision_tower.to(device=device_map)

    def _build(self, weights_from: str) -> None:
        encoder = DeepEncoder(self.encoder_config)
        self._install(encoder.to(dtype=resolve_dtype(self.encoder_config.dtype)), weights_from)

    def _install(self, encoder: DeepEncoder, weights_from: str) -> None:
        encoder.requires_grad_(self.trainable)
        self.vision_tower = encoder
        self.weights_from = weights_from
        self.is_loaded = True

    def to(self, *args, **kwargs):
        """As nn.Module.to, except that float16 on CPU becomes float32.

        llava's train.py casts every tower to float16 unless --bf16, also on CPU, where
        half precision is slow and loses accuracy for nothing; CUDA keeps float16.
        """
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        target = device or (self.device if self.is_loaded else torch.device("cpu"))
        if dtype == torch.float16 and torch.device(target).type == "cpu":
            kwargs = {"device": device, "dtype": torch.float32} if device else {"dtype": torch.float32}
            return super().to(**kwargs)
        return super().to(*args, **kwargs)

    # --- the host's contract -------------------------------------------------------------
    @property
    def config(self) -> DeepEncoderConfig:
        return self.encoder_config

    @property
    def hidden_size(self) -> int:
        return self.encoder_config.hidden_size  # 2048: CLIP 1024 + compressor 1024

    @property
    def num_patches_per_side(self) -> int:
        return self.encoder_config.tokens_per_side(self.encoder_config.image_size)

    @property
    def num_patches(self) -> int:
        return self.num_patches_per_side**2

    @property
    def dtype(self) -> torch.dtype:
        return self.vision_tower.dtype

    @property
    def device(self) -> torch.device:
        return self.vision_tower.device

    def forward(self, images: Union[torch.Tensor, List[torch.Tensor]]):
        """(B, 3, S, S) -> (B, (S/64)^2, 2048); a list of (3, S, S) / (n, 3, S, S) -> a list."""
        # Build a graph only when something in the tower trains: a frozen tower needs
        # none, a trainable one must get gradients (DeepSeek's code always used no_grad).
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.vision_tower.parameters())
        with torch.set_grad_enabled(needs_grad):
            if isinstance(images, (list, tuple)):
                return [self._encode(img if img.dim() == 4 else img.unsqueeze(0)) for img in images]
            return self._encode(images)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        features = self.vision_tower(images.to(device=self.device, dtype=self.dtype))
        return features.to(images.dtype) if images.is_floating_point() else features
