"""`python -m deepmolm_plugin.train ...`: the host's llava/train/train.py with DeepMoLM.

Registers the plugin, then runs the host's `train()` with the host's own arguments plus
ours (see `--help`), e.g.

    python -m deepmolm_plugin.train --model_name_or_path Qwen2-0.5B --version qwen2 \\
        --vision_tower deepencoder --vision_tower_weights DeepSeek-OCR/ --mm_projector fusion \\
        --data_path train.json --image_folder images/ --output_dir out/ ...

Works under `torchrun` and `deepspeed` (they set the rank variables; the host reads them).
Runs are reproducible: `--seed` seeds the model's random initialisation too (the host
builds the model before its Trainer seeds anything).
A VILA-style `--model_name_or_path` folder (LLM in `llm/`) is resolved to its `llm/`
folder here, so the host's tokenizer loading finds the tokenizer too.

Bad input stops the launcher in seconds, before the host loads the model (which it does
before it reads the data): a missing or empty `--data_path`, one that is not a JSON list
of records, a record with malformed fields (conversation turns, `<image>` placeholders
that do not match its image, `image`, `properties`, `id`, overlapping sidecar rows:
`data.records.check_records`), records whose `properties` the --aux_property_task head
cannot train on (`check_property_records`), a `--model_name_or_path` that is no model folder (nor a
Hub id), a missing
`--image_folder` / `--structure_folder` / `--vision_tower_weights`, weights the tower's loader
refuses from their headers (`check_tower_weights`), a
`--pretrain_mm_mlp_adapter` that is missing or not this run's projector's tensors
(`check_adapter_file`), a `--deepencoder_config` that is neither a file nor a preset
name (`deepmolm_plugin.encoder.presets`: deepseek-ocr, tiny, demo), a `--deepspeed` config
whose ZeRO stage is no integer 0-3, whose ZeRO-3 save gathers no weights or whose explicit
values contradict the options (`check_deepspeed_config`, `check_deepspeed_values`), a value our
argument classes refuse, or a `--version` template that does not fit a Qwen2 model's
tokenizer (`check_template`), is one line on stderr (`python -m deepmolm_plugin.train: error:
...`) and exit status 2.

The checks, the resume rules and the process set-up are in `deepmolm_plugin.training`, one
concept a module; this module is the launch order (main) around the host's train().
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.train", "python -m deepmolm_plugin.train")

import os
import signal
import sys

from deepmolm_plugin import usage
from deepmolm_plugin.start_interrupts import ctrl_c_ends_the_start
from deepmolm_plugin.training.arguments import check_batches, checked_arguments, say_batch_fill
from deepmolm_plugin.training.checkpoints import set_aside_unfinished_save
from deepmolm_plugin.training.distributed import (cpu_bf16_argv, finish_distributed, leave_process,
                                                  prepare_cpu_distributed, single_process_environment)
from deepmolm_plugin.training.finished import finished_run_line
from deepmolm_plugin.training.inputs import check_inputs, check_template, note_unread_molecules
from deepmolm_plugin.training.interrupts import LostPeer, interrupted_message, lost_peer_turns_into, stop_on_sigterm
from deepmolm_plugin.training.options import PROG, option_value
from deepmolm_plugin.training.resume import say_resume_notes, say_start_lines
from deepmolm_plugin.training.run_record import write_run_record


def resolve_model_path_argument(argv):
    from deepmolm_plugin.model.loading import resolve_llm_path

    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--model_name_or_path" and i + 1 < len(argv):
            argv[i + 1] = resolve_llm_path(argv[i + 1])
        elif arg.startswith("--model_name_or_path="):
            argv[i] = "--model_name_or_path=" + resolve_llm_path(arg.split("=", 1)[1])
    return argv


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    asks_help = any(a in ("-h", "--help") for a in argv)
    with ctrl_c_ends_the_start(f"\n{PROG}: interrupted\n"):  # checks and heavy imports: one line at once
        argv, records, options, model_args, data_args, host_train = start(argv, asks_help)
        from deepmolm_plugin.encoder.tower import TowerWeightsError
        from deepmolm_plugin.patches.nonfinite_training import NonFiniteTraining
        from deepmolm_plugin.projector.weights import ProjectorWeightsError
    output_dir = None if asks_help else options.output_dir

    lock = None
    if not asks_help and os.environ.get("RANK", "0") == "0":
        # one run per --output_dir: a second one set aside the checkpoint the first was still
        # saving (as a save cut short), and both wrote one folder; the other ranks of this run
        # write it with rank 0
        from deepmolm_plugin import output_lock

        try:
            lock = output_lock.hold(output_lock.folder_lock(os.path.expanduser(output_dir), PROG))
        except usage.UsageError as e:
            usage.fail(PROG, e)
    previous_sigterm, lost_peer = stop_on_sigterm(), None
    try:
        if not asks_help:
            set_aside = set_aside_unfinished_save(output_dir)
            # every refusal is behind us (checks, lock, set-aside): "resuming" is now true
            say_start_lines(options, model_args, set_aside)
            say_resume_notes(options)
            say_batch_fill(options, len(records))
            write_run_record(options, data_args)
        # cpu_bf16_argv first: it reads the user's --use_cpu, not the one prepare_cpu_distributed adds
        argv = prepare_cpu_distributed(argv if asks_help else cpu_bf16_argv(argv, options))
        sys.argv = [sys.argv[0]] + argv
        seed_model_init(argv)
        from deepmolm_plugin.encoder.feature_cache import opened_caches

        with lost_peer_turns_into(output_dir):  # the training's collectives
            with opened_caches() as caches:  # the host builds the tower (and opens its cache) inside train()
                host_train.train(attn_implementation="sdpa")
        with lost_peer_turns_into(output_dir, trained=True):  # the cache report's all_gather: the model is saved
            if not asks_help:
                report_feature_cache(caches, option_value(argv, "vision_feature_cache"))
    except usage.UsageError as e:  # transformers' checks of the training values (patches.arguments)
        usage.fail(PROG, e)
    except ProjectorWeightsError as e:  # the stage-1 adapter's shapes, once the model has built the projector
        usage.fail(PROG, f"--pretrain_mm_mlp_adapter {option_value(argv, 'pretrain_mm_mlp_adapter')}: {e}")
    except TowerWeightsError as e:  # what check_tower_weights could not see from headers (NaN values, a big pickle)
        usage.fail(PROG, f"--vision_tower_weights {option_value(argv, 'vision_tower_weights')}: {e}")
    except usage.DataError as e:  # the data, found bad once the model is built: one line, exit 1
        sys.stderr.write(f"{PROG}: error: {usage.data_error_line(e)}\n")
        raise SystemExit(1) from None
    except NonFiniteTraining as e:  # every rank stops at the same step (the reduced gradient norm)
        sys.stderr.write(f"{PROG}: error: {e}\n")
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # Ctrl-C: a traceback from inside the training loop, before
        sys.stderr.write(f"\n{PROG}: {interrupted_message(output_dir)}\n")
        raise SystemExit(130) from None
    except LostPeer as lost:  # said now: torchrun's SIGTERM may end this rank once SIGTERM is put back
        sys.stderr.write(f"{lost}\n")
        lost_peer = lost
    finally:  # for in-process callers (tests); None: a handler not set from Python, which cannot be put back
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        if lock is not None:
            lock.release()
    if lost_peer is not None:
        leave_process(1)  # not interpreter shutdown: the broken group's threads can abort or hang there
    try:
        with lost_peer_turns_into(output_dir, trained=True):
            finish_distributed()  # its barrier: a rank ended after training
    except LostPeer as lost:
        sys.stderr.write(f"{lost}\n")
        leave_process(1)


def start(argv, asks_help: bool) -> tuple:
    """The start of main, before anything is written: the checks (each refusal one line, exit
    2; a finished run exit 0) and the imports of the plugin and the host. Returns (argv for
    the host, records, options, model_args, data_args, the host's train module); all but argv
    and the host None for --help."""
    records = options = model_args = data_args = None
    if not asks_help:
        try:
            records = check_inputs(argv)
        except usage.UsageError as e:
            usage.fail(PROG, e)
    import deepmolm_plugin

    deepmolm_plugin.register()
    from llava.train import train as host_train

    argv = resolve_model_path_argument(argv)
    single_process_environment(argv)
    if not asks_help:
        try:
            options, model_args, data_args = checked_arguments(host_train, argv)
            finished = finished_run_line(options)
            if finished:  # the rerun of a finished job: exit 0, nothing written (before the output lock)
                if os.environ.get("RANK", "0") == "0":
                    print(finished, file=sys.stderr)
                raise SystemExit(0)
            check_batches(options, len(records))
            note_unread_molecules(records, argv, host_train)
            check_template(argv)
            from deepmolm_plugin.model.loading import check_launcher_tokenizer  # no vocabulary: refused

            check_launcher_tokenizer(option_value(argv, "model_name_or_path"), "--model_name_or_path")
        except usage.UsageError as e:
            usage.fail(PROG, e)
    return argv, records, options, model_args, data_args, host_train


def report_feature_cache(caches: list, option: "str | None") -> None:
    """One line at the end of training with what the feature cache did (`summary_lines`),
    said by rank 0 with the counts summed over the ranks (every rank looks up its own
    batches). Was: never said, so a cache that served nothing looked like one that served
    everything. `option`: --vision_feature_cache as given; every rank of a distributed run
    has it alike, so all of them join the sum or none do."""
    if option is None:
        return
    import torch.distributed as dist

    from deepmolm_plugin.encoder.feature_cache import combine_totals, merged_stats, summary_lines

    merged = merged_stats(caches)
    totals = next(iter(merged.values()), None)  # one --vision_feature_cache: one folder; None: not opened here
    ranks_totals, scope = [totals], ""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        # Each rank's totals, not an all_reduce of its counts: whether the folder held entries
        # and which records it held before this run stored any are the first opener's
        # (combine_totals). Was: held entries if any rank saw some, records of rank 0, so a
        # rank that opened a fresh cache after another rank's first entry gave a false note.
        ranks_totals = [None] * dist.get_world_size()
        dist.all_gather_object(ranks_totals, totals)  # (under NCCL, through the rank's current CUDA device)
        scope = f" (summed over {dist.get_world_size()} ranks)"
    ranks_totals = [part for part in ranks_totals if part is not None]
    if os.environ.get("RANK", "0") != "0" or not ranks_totals:  # rank 0 says it; no rank opened the cache: nothing to say
        return
    root = next(iter(merged), option)
    for line in summary_lines(root, combine_totals(ranks_totals), scope):
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def seed_model_init(argv) -> None:
    """Seed every RNG with `--seed` before the host builds the model. The host's train()
    creates the vision tower and projector (random weights) before its Trainer calls
    `set_seed`, so without this two runs with one seed start from different weights."""
    from transformers import set_seed

    seed = option_value(argv, "seed")
    set_seed(int(seed) if seed is not None else 42)  # 42: TrainingArguments' default seed
