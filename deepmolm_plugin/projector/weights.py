"""Checks on projector weights loaded by name (the host's `--pretrain_mm_mlp_adapter`).

The host loads a stage-1 `mm_projector.bin` with `mm_projector.load_state_dict(...)`.
torch's own checks stop at key names and shapes, in a message that names neither the
projector type the file came from nor the setting that sized it; and they copy integer,
NaN/inf or out-of-range tensors into the weights without a word. `check_projector_state`
runs first and says what is wrong, as a ``ProjectorWeightsError`` (a ValueError), which the
training launcher reports in one line.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Tuple

import torch

from ..tensor_files import value_problem

# A tensor name only one projector type has -> where such weights come from (ours, then
# the host's own projectors, which have no newline / separator vectors).
_SIGNATURES = (
    ("cross_attn.in_proj_weight", "fusion", "a 'fusion' projector"),
    ("molecule_embed.weight", "concat", "a 'concat' projector"),
    ("layers.2.weight", "mlp2x_gelu", "an 'mlp2x_gelu' projector"),
    ("layers.weight", "linear", "a 'linear' projector"),
    ("2.weight", "host", "stock LLaVA's 'mlp2x_gelu' projector"),
    ("weight", "host", "stock LLaVA's 'linear' projector"),
)

# Which setting sizes a tensor, for the shape message.
_SIZED_BY = {"molecule_embed.weight": "fp_bits", "image_proj.weight": "mm_hidden_size",
             "layers.weight": "mm_hidden_size", "layers.0.weight": "mm_hidden_size (+ concat_embed_dim for concat)"}


class ProjectorWeightsError(ValueError):
    """Weights that cannot load into this projector: the message names the tensors and why."""


def projector_source(names) -> Tuple[Optional[str], Optional[str]]:
    """Which projector a set of tensor names comes from: (type, in words), or Nones."""
    names = set(names)
    return next(((kind, words) for key, kind, words in _SIGNATURES if key in names), (None, None))


def names_problem(projector: torch.nn.Module, names) -> Optional[str]:
    """Why weights of these tensor `names` cannot load into `projector` by name, or None.
    Names depend on the projector type only, so a projector built at any size (on the meta
    device) tells them: the training launcher checks a stage-1 adapter this way before the
    model loads."""
    expected, names = set(projector.state_dict()), set(names)
    if names == expected:
        return None
    kind = projector.projector_type
    source, words = projector_source(names)
    origin = f"come from {words}" if source not in (None, kind) else "do not match it"
    missing, unexpected = sorted(expected - names), sorted(names - expected)
    return f"projector weights for this {kind!r} projector {origin}: missing {missing}, unexpected {unexpected}"


def check_projector_state(projector: torch.nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True) -> None:
    """Names (if strict), shapes, dtypes and values of `state` against `projector`."""
    expected = projector.state_dict()
    problem = names_problem(projector, state) if strict else None
    if problem:
        raise ProjectorWeightsError(problem)
    kind = projector.projector_type
    problems = [p for name, t in state.items() if name in expected for p in _problems(name, t, expected[name])]
    if problems:
        raise ProjectorWeightsError(f"projector weights for this {kind!r} projector are unusable: " + "; ".join(problems))


def _problems(name: str, t: torch.Tensor, ours: torch.Tensor) -> List[str]:
    if tuple(t.shape) != tuple(ours.shape):
        setting = f" (sized by {_SIZED_BY[name]})" if name in _SIZED_BY else ""
        return [f"{name}: shape {list(t.shape)} vs projector {list(ours.shape)}{setting}"]
    problem = value_problem(t, ours, [ours.dtype])
    return [f"{name}: {problem}"] if problem else []
