"""The LLM side: LlavaQwen2ForCausalLM and the loaders for every Qwen2-family checkpoint."""

from .llava_qwen2 import LlavaQwen2Config, LlavaQwen2ForCausalLM, LlavaQwen2Model, register_auto_classes

__all__ = ["LlavaQwen2Config", "LlavaQwen2ForCausalLM", "LlavaQwen2Model", "register_auto_classes"]
