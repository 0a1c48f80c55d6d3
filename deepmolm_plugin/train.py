"""`python -m deepmolm_plugin.train ...`: the host's llava/train/train.py with DeepMoLM.

Registers the plugin, then runs the host's `train()` with the host's own arguments plus
ours (see `--help`), e.g.

    python -m deepmolm_plugin.train --model_name_or_path Qwen2-0.5B --version qwen2 \\
        --vision_tower deepencoder --vision_tower_weights DeepSeek-OCR/ --mm_projector fusion \\
        --data_path train.json --image_folder images/ --output_dir out/ ...

Works under `torchrun` and `deepspeed` (they set the rank variables; the host reads them).
A VILA-style `--model_name_or_path` folder (LLM in `llm/`) is resolved to its `llm/`
folder here, so the host's tokenizer loading finds the tokenizer too.
"""

from __future__ import annotations

import sys


def resolve_model_path_argument(argv):
    from deepmolm_plugin.model.loading import resolve_llm_path

    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--model_name_or_path" and i + 1 < len(argv):
            argv[i + 1] = resolve_llm_path(argv[i + 1])
        elif arg.startswith("--model_name_or_path="):
            argv[i] = "--model_name_or_path=" + resolve_llm_path(arg.split("=", 1)[1])
    return argv


def prepare_cpu_distributed(argv):
    """Several processes on a machine without CUDA (torchrun / deepspeed launcher, gloo).
    On a GPU, accelerate sets both of these up itself; without CUDA:

    - `--use_cpu True` is added unless given. Otherwise accelerate finds no GPU backend and
      reports a single process: plain torchrun then trains each rank on its own (no DDP,
      ranks diverge and race to write the same output_dir), and DeepSpeed fails its batch
      check ("train_batch_size is not equal to ... 2 != 2 * 1 * 2").
    - with `--deepspeed`, DeepSpeed's process group is started now: otherwise the
      `deepspeed.zero.Init` that ZeRO-3 wraps around `from_pretrained` sees one process
      ("train_batch_size is not equal to ... 4 != 2 * 1 * 1").
    """
    import os

    import torch

    argv = list(argv)
    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return argv
    if not any(a == "--use_cpu" or a.startswith("--use_cpu=") for a in argv):
        argv += ["--use_cpu", "True"]
    if any(a == "--deepspeed" or a.startswith("--deepspeed=") for a in argv):
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    return argv


def main(argv=None) -> None:
    import deepmolm_plugin

    deepmolm_plugin.register()
    from llava.train import train as host_train

    argv = resolve_model_path_argument(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0]] + prepare_cpu_distributed(argv)
    host_train.train(attn_implementation="sdpa")


if __name__ == "__main__":
    main()
