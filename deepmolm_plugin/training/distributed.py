"""Where and on how many processes training runs: the process count (WORLD_SIZE), whether
an accelerator is there, the CPU and one-process DeepSpeed set-up before the host starts,
and how every rank leaves together at the end.

Separate because the checks and the resume rules only ask it questions (world_size,
has_accelerator), while main alone changes the environment and argv with it."""

from __future__ import annotations

import atexit
import os
import sys

from deepmolm_plugin.training.options import PROG, gives_option, option_value


def world_size() -> int:
    """The number of training processes: torchrun / deepspeed set WORLD_SIZE
    (single_process_environment too); one process otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def has_accelerator() -> bool:
    """Whether torch sees a GPU or other accelerator: the one test of the launcher's CPU rules
    (check_half_precision, cpu_bf16_argv, prepare_cpu_distributed; was: torch.cuda in the last,
    so the two could disagree on an XPU or MPS machine)."""
    import torch

    return torch.accelerator.is_available()


def single_process_environment(argv, environ=os.environ) -> None:
    """`--deepspeed` in a plain `python -m deepmolm_plugin.train` (no torchrun or deepspeed
    launcher): the rank variables of a one-process group, as Hugging Face's DeepSpeed notes
    set them in a notebook. Without them DeepSpeed looked for MPI and stopped with
    "No module named 'mpi4py'". A launcher's own variables are kept."""
    if not option_value(argv, "deepspeed") or any(k in environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        return
    import socket

    with socket.socket() as probe:  # a free port for the group's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": environ.get("MASTER_PORT", str(port))})


def cpu_bf16_argv(argv, options) -> list:
    """`--bf16 True` where training runs on the CPU: given `--use_cpu True`, or without a GPU
    or other accelerator. Adds `--use_cpu True` when --use_cpu is not given (was:
    transformers' "Your setup doesn't support bf16/gpu. You need to assign use_cpu", exit 2,
    where chat and eval pick bf16 on the same CPU and the README's stage-1 command gives
    --bf16 True), and rank 0 says whether this CPU computes bf16 natively (was: said only when
    the option was added in one process; under torchrun, or with --use_cpu True given, the
    emulated, several times slower bf16 ran without a word). Called before
    prepare_cpu_distributed, so `argv` holds only what the user gave; a --use_cpu False given
    is the user's choice, left to transformers."""
    argv = list(argv)
    if not getattr(options, "bf16", False):
        return argv
    if getattr(options, "use_cpu", False):
        how = "--bf16 True with --use_cpu True: training on the CPU in bfloat16"
    elif gives_option(argv, "use_cpu") or has_accelerator():
        return argv
    else:
        argv += ["--use_cpu", "True"]
        how = "--bf16 True without a GPU: training on the CPU in bfloat16 (--use_cpu True added)"
    from deepmolm_plugin.dtypes import cpu_has_native_bf16

    speed = ("this CPU computes bf16 natively" if cpu_has_native_bf16() else
             "this CPU has no native bf16 (AMX / AVX512-BF16), so bf16 is emulated and several times slower "
             "than float32: leave --bf16 out to train in float32")
    if os.environ.get("RANK", "0") == "0":
        print(f"{PROG}: note: {how}; {speed}", file=sys.stderr)
    return argv


def prepare_cpu_distributed(argv):
    """Several processes on a machine without a GPU or other accelerator (has_accelerator;
    was: without CUDA) (torchrun / deepspeed launcher, gloo). On a GPU, accelerate sets both of
    these up itself; without one:

    - `--use_cpu True` is added unless given. Otherwise accelerate finds no GPU backend and
      reports a single process: plain torchrun then trains each rank on its own (no DDP,
      ranks diverge and race to write the same output_dir), and DeepSpeed fails its batch
      check ("train_batch_size is not equal to ... 2 != 2 * 1 * 2").
    - with `--deepspeed`, DeepSpeed's process group is started now: otherwise the
      `deepspeed.zero.Init` that ZeRO-3 wraps around `from_pretrained` sees one process
      ("train_batch_size is not equal to ... 4 != 2 * 1 * 1").
    """
    argv = list(argv)
    if has_accelerator() or world_size() < 2:
        return argv
    if not gives_option(argv, "use_cpu"):
        argv += ["--use_cpu", "True"]
    if any(a == "--deepspeed" or a.startswith("--deepspeed=") for a in argv):
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    return argv


def finish_distributed() -> None:
    """All ranks leave together, take the process group down, and the process ends here.

    The host's train() just returns: a rank that exited while rank 0 still wrote the
    checkpoint could abort in the communication library's threads. And after train()
    returns, the DeepSpeed engine is still referenced from the hooks it put on the model
    (nothing calls `engine.destroy()`), so the process groups it holds, each with gloo or
    NCCL worker threads, live on into interpreter shutdown even after
    destroy_process_group: there a rank aborted after the model was saved ("terminate
    called without an active exception", SIGABRT) and torchrun reported the finished run
    as failed. So a distributed run leaves through `leave_process`: Python's exit handlers
    run, the streams are flushed, and only the C++ teardown of those leftovers is skipped."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        leave_process()


def leave_process(status: int = 0) -> None:
    """End the process with `status` after running the atexit handlers (logging, experiment
    trackers) and flushing stdout/stderr, without interpreter finalization."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)
