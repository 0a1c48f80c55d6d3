"""transformers >= 4.5x dropped `ALL_LAYERNORM_LAYERS` from `transformers.trainer`.

`llava.train.llava_trainer` imports it from there at import time, so without this
patch `import llava.train.train` fails. It is put back before the host is imported,
as the norm classes the host's optimizer exempts from weight decay: LayerNorm plus
the RMSNorms of the LLMs we support (transformers 4.x appended LlamaRMSNorm to the same
list; Qwen2's norm is an RMSNorm too). A no-op where transformers still has it.
"""

from __future__ import annotations

import torch.nn as nn


def norm_layers():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

    return [nn.LayerNorm, nn.RMSNorm, LlamaRMSNorm, Qwen2RMSNorm]


def apply() -> None:
    import transformers.trainer as trainer

    if not hasattr(trainer, "ALL_LAYERNORM_LAYERS"):
        trainer.ALL_LAYERNORM_LAYERS = norm_layers()
