"""The host chat CLI stores every reply as '': multi-turn chats lose all history.

`llava.serve.cli.main` decodes the reply as `output_ids[0, input_ids.shape[1]:]`, i.e. it
expects `generate` to return the prompt followed by the new tokens (plain HF generate
from input ids). The host's own Llava models, and ours, generate from `inputs_embeds`
(the image is spliced in first), so `generate` returns the new tokens only and the slice
is empty: the reply printed by the streamer is never stored, and every later turn is
prompted with an empty assistant message.

Fix: the CLI's `load_pretrained_model` name is wrapped so that the model it returns has
a `generate` (an instance attribute, this process's CLI model only) that returns the
prompt ids followed by the new ids, exactly what the host's slicing expects. Output that
already starts with the prompt (a model generating from input ids) is kept as is.
The trailing end-of-sequence ids (the model's `generation_config.eos_token_id`, e.g.
`<|im_end|>`) are dropped from what is returned: the host decodes with special tokens,
and the template appends its own separator when it renders the history, so a kept stop
token would be doubled (`...<|im_end|><|im_end|>`) and later turns would be prompted
differently from training. Nothing else in the CLI changes; the streamer still prints
the new tokens as they come.

The loader is looked up in `llava.model.builder` at call time, so the fix composes with
`model_dispatch` (which rebinds that name) in either order. Generic: it fixes the CLI
for the host's own models too.
"""

from __future__ import annotations

import functools

import torch

from . import _host


def _stop_ids(model) -> list:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))


def prompt_then_new(generate, stop_ids=()):
    """Wrap a `generate` that returns new ids only so it returns prompt ids + the new ids,
    without the trailing `stop_ids`."""
    stop = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)

    @functools.wraps(generate)
    def wrapper(inputs=None, *args, **kwargs):
        output = generate(inputs, *args, **kwargs)
        if inputs is None or not torch.is_tensor(output) or output.dim() != 2:
            return output
        prompt = inputs.to(output.device)
        if not (output.shape[1] >= prompt.shape[1] and torch.equal(output[:, : prompt.shape[1]], prompt)):
            output = torch.cat([prompt, output], dim=1)  # new ids only: put the prompt back
        end = output.shape[1]
        is_stop = torch.isin(output, stop.to(output.device)).all(dim=0)  # per column, every row
        while end > prompt.shape[1] and is_stop[end - 1]:
            end -= 1
        return output[:, :end]

    wrapper._deepmolm_prompt_then_new = True
    return wrapper


def _loader_with_full_sequences(*args, **kwargs):
    from llava.model import builder

    tokenizer, model, image_processor, context_len = builder.load_pretrained_model(*args, **kwargs)
    if not getattr(model.generate, "_deepmolm_prompt_then_new", False):
        model.generate = prompt_then_new(model.generate, _stop_ids(model))
    return tokenizer, model, image_processor, context_len


def apply() -> None:
    _host.require_host("cli_reply")
    import llava.serve.cli as host_cli

    def _apply():
        _host.replace(host_cli, "load_pretrained_model", _loader_with_full_sequences)

    _host.apply_once(host_cli, "cli_reply", _apply)
