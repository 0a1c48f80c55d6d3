"""An independent DeepEncoder built only from transformers classes, to check ours against.

Our tower (model.py) is assembled from segment-anything's SAM and open_clip's Transformer,
with our own SDPA attention and position resizing. This module rebuilds the same network
from different code — transformers' ``DeepseekOcr2SamVisionEncoder`` (SAM + neck + the two
stride-2 convs) and ``CLIPVisionModel`` (QuickGELU CLIP body) — and loads it from a
DeepSeek-OCR layout state dict (``to_deepseek_layout(our_model)`` or the real checkpoint).
If both give the same numbers from the same weights, neither has a wiring mistake that
the other lacks. Used by tests/test_reference_equivalence.py and scripts/bench_encoder.py;
not used at training or inference time. Needs transformers >= 5.23 (deepseek_ocr2).
"""

from __future__ import annotations

import math
import re
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.initialization import no_init_weights
from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2SamVisionConfig
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import DeepseekOcr2SamVisionEncoder

from .config import DeepEncoderConfig

SAM_PREFIX = "model.sam_model."
CLIP_PREFIX = "model.vision_model."

# DeepSeek-OCR name (after its prefix) -> transformers name, one rule per tensor family.
# SAM side: Meta's segment-anything names + DeepSeek's net_2/net_3.
SAM_RULES: List[Tuple[str, str]] = [
    (r"pos_embed", r"pos_embed"),
    (r"patch_embed\.proj\.(weight|bias)", r"patch_embed.projection.\1"),
    (r"blocks\.(\d+)\.norm1\.(weight|bias)", r"layers.\1.layer_norm1.\2"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", r"layers.\1.layer_norm2.\2"),
    (r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", r"layers.\1.attn.qkv.\2"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"layers.\1.attn.proj.\2"),
    (r"blocks\.(\d+)\.attn\.rel_pos_(h|w)", r"layers.\1.attn.rel_pos_\2"),
    (r"blocks\.(\d+)\.mlp\.(lin1|lin2)\.(weight|bias)", r"layers.\1.mlp.\2.\3"),
    (r"neck\.0\.weight", r"neck.conv1.weight"),  # conv1x1, no bias
    (r"neck\.1\.(weight|bias)", r"neck.layer_norm1.\1"),  # LayerNorm2d
    (r"neck\.2\.weight", r"neck.conv2.weight"),  # conv3x3, no bias
    (r"neck\.3\.(weight|bias)", r"neck.layer_norm2.\1"),
    (r"net_2\.weight", r"proj.conv1.weight"),  # compressor 256 -> 512
    (r"net_3\.weight", r"proj.conv2.weight"),  # compressor 512 -> 1024
]
# CLIP side: DeepSeek's names; packed qkv_proj is split separately (see _split_qkv).
CLIP_RULES: List[Tuple[str, str]] = [
    (r"embeddings\.(class_embedding|patch_embedding\.weight|position_embedding\.weight)", r"embeddings.\1"),
    (r"(pre_layrnorm|post_layernorm)\.(weight|bias)", r"\1.\2"),
    (r"transformer\.layers\.(\d+)\.(layer_norm1|layer_norm2)\.(weight|bias)", r"encoder.layers.\1.\2.\3"),
    (r"transformer\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)", r"encoder.layers.\1.self_attn.out_proj.\2"),
    (r"transformer\.layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"encoder.layers.\1.mlp.\2.\3"),
]
QKV = re.compile(r"transformer\.layers\.(\d+)\.self_attn\.qkv_proj\.(weight|bias)")
# Parts of CLIPVisionModel the tower never runs: its patch conv (the compressor map is the
# patch embedding) and the post-LN (DeepSeek takes the last hidden state before it).
CLIP_UNUSED = {"embeddings.patch_embedding.weight", "post_layernorm.weight", "post_layernorm.bias"}


def _rename(name: str, rules: List[Tuple[str, str]]) -> Optional[str]:
    for pattern, template in rules:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, template, name)
    return None


def deepseek_to_hf(state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """DeepSeek-OCR layout -> (SAM encoder state, CLIPVisionModel state), transformers names.

    Tensors outside ``model.sam_model.`` / ``model.vision_model.`` (projector, LM...) are
    ignored; an unknown name inside them is an error.
    """
    sam, clip, unknown = {}, {}, []
    for key, value in state.items():
        if key.startswith(SAM_PREFIX):
            name = _rename(key[len(SAM_PREFIX):], SAM_RULES)
            if name is None:
                unknown.append(key)
            else:
                sam[name] = value
        elif key.startswith(CLIP_PREFIX):
            short = key[len(CLIP_PREFIX):]
            qkv = QKV.fullmatch(short)
            if qkv:  # packed rows q;k;v -> three tensors
                layer, kind = qkv.groups()
                for part, chunk in zip("qkv", value.chunk(3, dim=0)):
                    clip[f"encoder.layers.{layer}.self_attn.{part}_proj.{kind}"] = chunk
                continue
            name = _rename(short, CLIP_RULES)
            if name is None:
                unknown.append(key)
            else:
                clip[name] = value
    if unknown:
        raise KeyError(f"no transformers name for DeepSeek-OCR tensors: {unknown}")
    return sam, clip


def clip_positions(table: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(1 + G*G, C) position table -> (1 + num_tokens, C), as DeepSeek-OCR's get_abs_pos.

    CLS position kept; the G x G grid resized bicubic with antialias in fp32, cast back.
    """
    src, tgt = int(math.sqrt(table.shape[0] - 1)), int(math.sqrt(num_tokens))
    if src == tgt:
        return table
    cls_pos, grid = table[:1], table[1:]
    grid = grid.view(1, src, src, -1).permute(0, 3, 1, 2).to(torch.float32)  # (1, C, G, G)
    grid = F.interpolate(grid, size=(tgt, tgt), mode="bicubic", antialias=True, align_corners=False)
    grid = grid.to(table.dtype).permute(0, 2, 3, 1).reshape(tgt * tgt, -1)  # (tgt^2, C)
    return torch.cat([cls_pos, grid], dim=0)


def sam_config(config: DeepEncoderConfig, attn_implementation: str = "sdpa") -> DeepseekOcr2SamVisionConfig:
    if len(config.compressor_channels) != 2:
        raise ValueError("the transformers SAM encoder has exactly two compressor convs")
    return DeepseekOcr2SamVisionConfig(
        hidden_size=config.sam_width,
        num_hidden_layers=config.sam_depth,
        num_attention_heads=config.sam_heads,
        mlp_dim=int(config.sam_width * config.sam_mlp_ratio),
        window_size=config.sam_window_size,
        global_attn_indexes=list(config.sam_global_attn_indexes),
        output_channels=config.sam_out_chans,
        patch_size=config.patch_size,
        image_size=config.image_size,
        layer_norm_eps=config.sam_layer_norm_eps,
        hidden_act="gelu",  # exact (erf) GELU, as segment-anything's nn.GELU
        downsample_channels=list(config.compressor_channels),
        attn_implementation=attn_implementation,
    )


def clip_config(config: DeepEncoderConfig, attn_implementation: str = "sdpa") -> CLIPVisionConfig:
    # patch 14 on a 14*G image gives G*G + 1 positions; the patch conv itself is unused.
    return CLIPVisionConfig(
        hidden_act="quick_gelu",
        hidden_size=config.clip_width,
        intermediate_size=int(config.clip_width * config.clip_mlp_ratio),
        num_hidden_layers=config.clip_layers,
        num_attention_heads=config.clip_heads,
        layer_norm_eps=config.clip_layer_norm_eps,
        patch_size=14,
        image_size=14 * config.clip_position_grid,
        attn_implementation=attn_implementation,
    )


class DeepEncoderReference(nn.Module):
    """(B, 3, S, S) -> (B, (S/64)^2, 2048) = concat[CLIP without CLS, compressor tokens].

    Build it with `from_deepseek_state`: the constructor skips weight initialisation.
    """

    def __init__(self, config: DeepEncoderConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.config = config
        with no_init_weights():  # every used tensor is loaded right after
            self.sam = DeepseekOcr2SamVisionEncoder(sam_config(config, attn_implementation))
            self.clip = CLIPVisionModel(clip_config(config, attn_implementation))

    @classmethod
    def from_deepseek_state(
        cls,
        state: Dict[str, torch.Tensor],
        config: DeepEncoderConfig,
        attn_implementation: str = "sdpa",
        dtype: Optional[torch.dtype] = None,
    ) -> "DeepEncoderReference":
        """Strict load from DeepSeek-OCR names; dtype default: the state's own."""
        model = cls(config, attn_implementation)
        sam_state, clip_state = deepseek_to_hf(state)
        for part, part_state in (("SAM", sam_state), ("CLIP", clip_state)):
            module = model.sam if part == "SAM" else model.clip
            result = module.load_state_dict(part_state, strict=False)
            missing = set(result.missing_keys) - (CLIP_UNUSED if part == "CLIP" else set())
            if missing or result.unexpected_keys:
                raise KeyError(
                    f"reference {part}: missing {sorted(missing)}, unexpected {sorted(result.unexpected_keys)}"
                )
        with torch.no_grad():  # never run, but make them defined rather than uninitialised memory
            for name in CLIP_UNUSED - set(clip_state):
                model.clip.get_parameter(name).zero_()
        return model.to(dtype or sam_state["pos_embed"].dtype).eval()

    @property
    def dtype(self) -> torch.dtype:
        return self.sam.pos_embed.dtype

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixel_values = pixel_values.to(device=self.sam.pos_embed.device, dtype=self.dtype)
        feats = self.sam(pixel_values).last_hidden_state  # (B, 1024, S/64, S/64)
        tokens = feats.flatten(2).transpose(1, 2)  # (B, N, 1024)
        B, N, _ = tokens.shape
        emb = self.clip.embeddings
        cls = emb.class_embedding.expand(B, 1, -1)  # (B, 1, 1024)
        x = torch.cat([cls, tokens], dim=1)  # (B, 1 + N, 1024)
        x = x + clip_positions(emb.position_embedding.weight, N)
        x = self.clip.pre_layrnorm(x)
        hidden = self.clip.encoder(inputs_embeds=x).last_hidden_state  # (B, 1 + N, 1024), no post-LN
        return torch.cat([hidden[:, 1:], tokens], dim=-1)  # (B, N, 2048)
