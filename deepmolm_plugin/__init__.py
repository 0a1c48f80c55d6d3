"""DeepMoLM as a plugin for the llava-torch host framework.

The package tree mirrors the architecture:

- ``deepmolm_plugin.encoder``: the DeepEncoder vision tower (SAM-base -> 16x conv
  compressor -> CLIP-L), its image processor and its checkpoint loaders.
- ``deepmolm_plugin.molecule``: structures, E3FP ``molecule_fp`` tokens, depictions.
- ``deepmolm_plugin.projector``: ``fusion`` and the ablation projectors, token layout.
- ``deepmolm_plugin.model``: LlavaQwen2ForCausalLM and the Qwen2-family loaders.
- ``deepmolm_plugin.patches``: small runtime patches to the host (top-level ``patches/``).

``register()`` applies the patches; every launcher (``python -m deepmolm_plugin.train``,
``.cli``, ``.eval.model_vqa``) calls it before running the host's own module.
"""

__version__ = "0.2.0"

# Order matters: trainer_imports must run before anything imports llava.train.*.
_PATCHES = (
    "trainer_imports",
    "registry",
    "arguments",
    "model_dispatch",
    "conversation_qwen2",
    "trainer_api",
    "weights_file_mode",
    "deepspeed_optional",
    "llama_forward_kwargs",
    "molecule_data",
    "cli_reply",
    "aux_property_logging",
    "aux_property_stats",
    "nonfinite_training",
    "resume_schedule",
)

_HEADS = ("deepmolm_plugin.property.aux_head",)


def register() -> None:
    """Install DeepMoLM into the llava-torch host. Idempotent: safe to call again."""
    import importlib

    for name in _PATCHES:
        importlib.import_module(f"deepmolm_plugin.patches.{name}").apply()
    for module in _HEADS:  # each registers its optional head (deepmolm_plugin.model.heads)
        importlib.import_module(module)
