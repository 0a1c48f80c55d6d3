"""DeepEncoder, the DeepSeek-OCR vision tower: SAM-base -> 16x conv compressor -> CLIP-L.

Public API:
    DeepEncoderConfig          every size, in one dataclass
    DeepEncoder                the tower: (B, 3, S, S) -> (B, (S/64)^2, 2048)
    DeepEncoderImageProcessor  images -> normalised views (base or 640-tile mode)
    load_deepencoder           one loader for DeepSeek-OCR, SAM+CLIP and our own layouts
    encoder_config             a named size: deepseek-ocr, tiny, demo (ENCODER_PRESETS)
"""

from .checkpoint import LoadReport, to_deepseek_layout
from .config import DeepEncoderConfig
from .image_processor import DeepEncoderImageProcessor
from .model import DeepEncoder, load_deepencoder
from .presets import ENCODER_PRESETS, encoder_config

__all__ = [
    "DeepEncoderConfig",
    "DeepEncoder",
    "DeepEncoderImageProcessor",
    "load_deepencoder",
    "LoadReport",
    "to_deepseek_layout",
    "ENCODER_PRESETS",
    "encoder_config",
]

