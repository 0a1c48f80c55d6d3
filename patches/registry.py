"""Registry: `deepencoder` and our projectors become names in the host's builders.

`llava.model.llava_arch` imports `build_vision_tower` / `build_vision_projector` by
name (`from .multimodal_encoder.builder import build_vision_tower`), so rebinding them
only in the builder modules has no effect: both places are rebound. Resolution:

- vision tower `deepencoder` -> DeepEncoderVisionTower; any other name -> the host's
  builder, unchanged (so an unknown name still reaches the host's own error).
- projector `fusion` / `concat` -> ours; `linear` / `mlp2x_gelu` -> ours (with the
  DeepEncoder token layout) when the tower is `deepencoder`, else the host's own, so
  stock LLaVA models and checkpoints are untouched; any other name -> the host's.
"""

from __future__ import annotations

from . import _host

TOWER_NAME = "deepencoder"
MOLECULE_PROJECTORS = ("fusion", "concat")
LAYOUT_PROJECTORS = ("linear", "mlp2x_gelu")


def _tower_name(cfg):
    return getattr(cfg, "mm_vision_tower", getattr(cfg, "vision_tower", None))


def build_vision_tower(vision_tower_cfg, **kwargs):
    from llava.model.multimodal_encoder import builder

    if _tower_name(vision_tower_cfg) == TOWER_NAME:
        from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower

        return DeepEncoderVisionTower(TOWER_NAME, args=vision_tower_cfg, **kwargs)
    return _host.original(builder, "build_vision_tower")(vision_tower_cfg, **kwargs)


def build_vision_projector(config, delay_load=False, **kwargs):
    from llava.model.multimodal_projector import builder

    name = getattr(config, "mm_projector_type", "linear")
    if name in MOLECULE_PROJECTORS or (name in LAYOUT_PROJECTORS and _tower_name(config) == TOWER_NAME):
        from deepmolm_plugin.projector import ProjectorConfig, build_projector

        return build_projector(name, ProjectorConfig.from_host_config(config))
    return _host.original(builder, "build_vision_projector")(config, delay_load=delay_load, **kwargs)


def apply() -> None:
    _host.require_host("registry")
    import llava.model.llava_arch as arch
    from llava.model.multimodal_encoder import builder as encoder_builder
    from llava.model.multimodal_projector import builder as projector_builder

    def _apply():
        for module in (encoder_builder, arch):
            _host.replace(module, "build_vision_tower", build_vision_tower)
        for module in (projector_builder, arch):
            _host.replace(module, "build_vision_projector", build_vision_projector)

    _host.apply_once(arch, "registry", _apply)
