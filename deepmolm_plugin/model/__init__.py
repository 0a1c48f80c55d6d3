"""The LLM side: LlavaQwen2ForCausalLM and the loaders for every Qwen2-family checkpoint.

The model classes load on first use (`__getattr__`): `model.stopping` and `model.loading`'s
light helpers are imported by the chat CLI and model_vqa before their arguments are checked,
and importing this package used to load torch and transformers with them (a typo in
`--model-path` took 7 s to be told, where it takes a fraction of a second).
"""

__all__ = ["LlavaQwen2Config", "LlavaQwen2ForCausalLM", "LlavaQwen2Model", "register_auto_classes"]


def __getattr__(name: str):
    if name in __all__:
        from . import llava_qwen2

        return getattr(llava_qwen2, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
