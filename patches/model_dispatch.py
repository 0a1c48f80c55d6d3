"""Model classes by checkpoint type: a Qwen2 checkpoint is never built as Llama.

The host hard-codes its LLM class: `train()` calls `LlavaLlamaForCausalLM.from_pretrained`
for every non-MPT path, and `load_pretrained_model` picks the multimodal path only if
'llava' is in the model *name* and then builds Llama too. Both now dispatch on the
checkpoint's `model_type`: qwen2 / llava_qwen2 / qwen2_vl / qwen2_5_vl (and VILA-style
folders with `llm/`) go to LlavaQwen2ForCausalLM through deepmolm_plugin.model.loading;
everything else goes to the host's code unchanged.

`load_pretrained_model` is imported by name into the host's CLI and eval modules, so it
is rebound in every loaded `llava.*` module that holds the host's function.
"""

from __future__ import annotations

import sys

from . import _host


def _is_ours(path) -> bool:
    from deepmolm_plugin.model.loading import QWEN2_TYPES, QWEN2_VL_TYPES, model_type_of

    return model_type_of(str(path)) in QWEN2_TYPES + QWEN2_VL_TYPES


class LlavaForCausalLMByType:
    """Stands in for `llava.train.train.LlavaLlamaForCausalLM` (only from_pretrained is used)."""

    @classmethod
    def from_pretrained(cls, path, *args, **kwargs):
        if _is_ours(path):
            from deepmolm_plugin.model.loading import load_llm

            dtype = kwargs.get("torch_dtype", kwargs.get("dtype"))
            return load_llm(str(path), dtype=dtype, attn_implementation=kwargs.get("attn_implementation"))
        import llava.train.train as host_train

        return _host.original(host_train, "LlavaLlamaForCausalLM").from_pretrained(path, *args, **kwargs)


def load_pretrained_model(model_path, model_base=None, model_name=None, *args, **kwargs):
    if _is_ours(model_path):
        from deepmolm_plugin.model import loading

        return loading.load_pretrained_model(model_path, model_base, model_name, *args, **kwargs)
    from llava.model import builder

    return _host.original(builder, "load_pretrained_model")(model_path, model_base, model_name, *args, **kwargs)


def rebind_loaders() -> None:
    """Point every loaded llava module's `load_pretrained_model` name at ours."""
    from llava.model import builder

    host_fn = _host.original(builder, "load_pretrained_model")
    for name, module in list(sys.modules.items()):
        if name.startswith("llava.") and module is not None and getattr(module, "load_pretrained_model", None) is host_fn:
            _host.replace(module, "load_pretrained_model", load_pretrained_model)


def apply() -> None:
    _host.require_host("model_dispatch")
    import llava.train.train as host_train

    from deepmolm_plugin.model.llava_qwen2 import register_auto_classes

    register_auto_classes()

    def _apply():
        _host.replace(host_train, "LlavaLlamaForCausalLM", LlavaForCausalLMByType)

    _host.apply_once(host_train, "model_dispatch", _apply)
    rebind_loaders()  # cheap and idempotent: also catches modules imported since
