"""Multimodal projectors: DeepEncoder features (+ E3FP atom tokens) -> LLM tokens.

Public API:
    ProjectorConfig       every size, in one dataclass (`from_host_config` for the host)
    build_projector       name -> module, LLaVA builder style; PROJECTORS is the registry
    FusionProjector       `fusion`: image tokens cross-attend to atom tokens (DeepMoLM)
    ConcatProjector       `concat`: mean molecule embedding concatenated to image tokens
    LinearProjector       `linear`: image-only ablation
    MLP2xGeluProjector    `mlp2x_gelu`: image-only ablation (LLaVA-1.5's projector)
    assemble_tokens       one image's projected views -> LLM positions (newlines, separator)

Every projector: forward(image_features (B, N, C), molecule_fp (B, atoms, levels) or None,
return_attention=False) -> (B, N, H), and embed_images(...) -> per-sample (P_i, H).
"""

from typing import Any, Dict, Type, Union

from .ablations import ConcatProjector, LinearProjector, MLP2xGeluProjector
from .config import HOST_ATTRIBUTES, ProjectorConfig
from .fusion import FusionProjector
from .layout import ProjectorBase, assemble_tokens

PROJECTORS: Dict[str, Type[ProjectorBase]] = {
    "fusion": FusionProjector,
    "concat": ConcatProjector,
    "linear": LinearProjector,
    "mlp2x_gelu": MLP2xGeluProjector,
}


def build_projector(name: str, config: Union[ProjectorConfig, Any]) -> ProjectorBase:
    """Projector `name` built from a ProjectorConfig, or from a host config object read by
    `ProjectorConfig.from_host_config`. An unknown name is a ValueError listing the names."""
    if name not in PROJECTORS:
        raise ValueError(f"unknown projector {name!r}; known projectors: {sorted(PROJECTORS)}")
    if not isinstance(config, ProjectorConfig):
        config = ProjectorConfig.from_host_config(config)
    return PROJECTORS[name](config)


__all__ = [
    "ProjectorConfig",
    "HOST_ATTRIBUTES",
    "PROJECTORS",
    "build_projector",
    "ProjectorBase",
    "FusionProjector",
    "ConcatProjector",
    "LinearProjector",
    "MLP2xGeluProjector",
    "assemble_tokens",
]
