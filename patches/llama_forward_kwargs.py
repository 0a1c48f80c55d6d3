"""The host's Llava{Llama,Mistral}ForCausalLM.forward against transformers 5.x generate.

Generation in transformers >= 4.38 passes `cache_position` (and newer versions
`logits_to_keep`) to `forward`; the host's forward has a fixed signature and raises
TypeError. Only these named generation-internal kwargs are dropped; anything else,
molecule_fp included, still reaches the signature and fails loudly. (Our own
LlavaQwen2ForCausalLM takes them natively.)
"""

from __future__ import annotations

import functools

from . import _host

GENERATION_KWARGS = ("cache_position", "logits_to_keep", "num_logits_to_keep")


def _tolerant(forward):
    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        for name in GENERATION_KWARGS:
            kwargs.pop(name, None)
        return forward(self, *args, **kwargs)

    return wrapper


def apply() -> None:
    _host.require_host("llama_forward_kwargs")
    from llava.model.language_model import llava_llama, llava_mistral

    def _apply():
        for cls in (llava_llama.LlavaLlamaForCausalLM, llava_mistral.LlavaMistralForCausalLM):
            cls.forward = _tolerant(cls.forward)

    _host.apply_once(llava_llama, "llama_forward_kwargs", _apply)
