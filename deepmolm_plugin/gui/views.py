"""What the encoder sees: one depiction -> the model's image inputs and their pixels.

The global view is made by the host's `process_images` (the CLI's call: with the models'
`image_aspect_ratio = pad`, the image is squared with the mean colour, then the image
processor resizes it to S x S); in tiles mode the tiles come from the image processor's
own `preprocess(mode="tiles")`, as the training dataset makes them. The pictures shown in
the page are these tensors turned back into pixels (x * std + mean), not a separate
rendering: exactly what the tower receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from PIL import Image

Grid = Tuple[int, int]  # (cols, rows)


@dataclass
class ModelViews:
    images: torch.Tensor  # (1, 3, S, S) float32 global view, as `generate(images=...)` takes it
    image_size: Tuple[int, int]  # the depiction's (width, height): the host's `image_sizes` entry
    tile_images: Optional[torch.Tensor]  # (T, 3, t, t) float32 in tiles mode, else None
    tile_grid: Optional[Grid]  # (cols, rows) when there are tiles
    view: Image.Image  # the global view's pixels (S x S)
    mosaic: Optional[Image.Image]  # the tiles placed in their grid, when there are tiles

    def generate_kwargs(self, device: torch.device, dtype: torch.dtype) -> dict:
        """The image arguments of `generate` / `encode_images`, on the model's device and dtype."""
        from ..cli import images_in_dtype

        kwargs = {"images": images_in_dtype(self.images.to(device), dtype), "image_sizes": [self.image_size]}
        if self.tile_images is not None:  # tiles mode: one entry per image, grid None without tiles
            kwargs["tile_images"] = [images_in_dtype(self.tile_images.to(device), dtype)]
            kwargs["tile_grids"] = [self.tile_grid]
        return kwargs


def to_pixels(view: torch.Tensor, mean, std) -> Image.Image:
    """A normalised (3, H, W) view -> the RGB image it was made from (x * std + mean)."""
    x = view.detach().float().cpu() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    array = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, 3)
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def mosaic_of(tiles: torch.Tensor, grid: Grid, mean, std) -> Image.Image:
    """(cols*rows, 3, t, t) tiles, row-major -> one image with the tiles in their grid."""
    cols, rows = grid
    side = tiles.shape[-1]
    out = Image.new("RGB", (cols * side, rows * side))
    for k in range(tiles.shape[0]):
        out.paste(to_pixels(tiles[k], mean, std), ((k % cols) * side, (k // cols) * side))
    return out


def model_views(image: Image.Image, image_processor, model_config) -> ModelViews:
    """The depiction (RGB) -> the model's image inputs and what they look like."""
    from llava.mm_utils import process_images

    images = process_images([image], image_processor, model_config)  # (1, 3, S, S)
    if isinstance(images, list):  # the host returns a list for images of different shapes
        images = torch.stack(images)
    mean, std = image_processor.image_mean, image_processor.image_std
    tile_images = grid = mosaic = None
    if getattr(image_processor, "mode", "base") == "tiles":
        tile_images, grid = image_processor.tile_inputs(image)  # (T, 3, t, t), (cols, rows)
        if grid is not None:
            mosaic = mosaic_of(tile_images, grid, mean, std)
    return ModelViews(images=images, image_size=image.size, tile_images=tile_images, tile_grid=grid,
                      view=to_pixels(images[0], mean, std), mosaic=mosaic)
