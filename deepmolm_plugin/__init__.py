"""DeepMoLM as a plugin for the llava-torch host framework.

The package tree mirrors the architecture:

- ``deepmolm_plugin.encoder``: the DeepEncoder vision tower (SAM-base -> 16x conv
  compressor -> CLIP-L), its image processor and its checkpoint loaders.
- ``deepmolm_plugin.patches``: small runtime patches to the host (top-level ``patches/``).
"""

__version__ = "0.1.0"
