"""How a saved model's settings are read: one field of its config, from a config object
(a transformers PretrainedConfig) or config.json's dict alike.

Every reader of a saved model's settings that takes either kind comes here (its depiction
size, atom cap, 3D policy, projector settings, property-head graphs), so both kinds read one
way; was four copies of the same two lines. A leaf: it imports nothing of ours, so the
modules low in the tree (the projector's config, the molecule inputs) can use it without an
import cycle (`checkpoint_config`'s checks import the encoder and the host patches).
`molecule_fp` writes the rule out: that contract module imports nothing of ours at all.
"""

from __future__ import annotations

from typing import Mapping


def config_field(config, name: str, default=None):
    """`config`'s field `name` (an object or config.json's dict); `default` where it is absent."""
    return config.get(name, default) if isinstance(config, Mapping) else getattr(config, name, default)


def has_config_field(config, name: str) -> bool:
    """Whether `config` (an object or config.json's dict) records `name` at all, null or not:
    a checkpoint saved before a field existed lacks it, which is not the same as null."""
    return name in config if isinstance(config, Mapping) else hasattr(config, name)
