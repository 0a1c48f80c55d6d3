"""Optional heads: extra modules a DeepMoLM model carries when its config asks for them.

A head is chosen by the config attribute `aux_property_task` (a name, e.g. `kflm2`) and
built by the builder registered under that name, LLaVA-builder style (a name in, a
module out). The model calls two methods on it, with the LLM's last hidden states:

- `batch_loss(hidden (B, T, H), attention_mask (B, T), labels (B, T), batch: dict) -> ()`
  during a training forward, `batch` holding the collator's extra keys (`properties`,
  `graphs`); the model adds `config.aux_property_weight` x this to the LM loss;
- `predict(hidden (B, T, H), attention_mask (B, T), batch: dict) -> list of {name: value}`.

Heads register themselves (`deepmolm_plugin.property.aux_head` registers `kflm2`), so the
model package imports none of them: dependencies run from the heads to the model.
`deepmolm_plugin.register()` imports every head module before any model is built.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

from torch import nn

HEADS: Dict[str, Callable[[object], nn.Module]] = {}
ATTRIBUTE = "aux_property_head"  # the module's name inside the model (checkpoint keys model.aux_property_head.*)


def register_head(task: str, builder: Callable[[object], nn.Module]) -> None:
    """`builder(config) -> module`; registering the same builder again is a no-op."""
    if HEADS.get(task, builder) is not builder:
        raise ValueError(f"an optional head named {task!r} is already registered")
    HEADS[task] = builder


def build_head(config) -> Optional[nn.Module]:
    """The head `config.aux_property_task` names, or None when it names none."""
    task = getattr(config, "aux_property_task", None)
    if not task:
        return None
    if task not in HEADS:
        raise ValueError(f"the model config asks for the optional head {task!r}, but no head of that name is "
                         f"registered (known: {sorted(HEADS)}); call deepmolm_plugin.register() first")
    return HEADS[task](config)
