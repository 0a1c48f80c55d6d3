"""Checks when the host would resume a checkpoint of --output_dir, and what rank 0 says
then: the checkpoint must be whole and saved with this command's settings, language model
and kind of trainer; "resuming <checkpoint>" and the notes on what the resumed run will not
repeat are said once every check has passed.

Separate from the checks of a fresh start (inputs.py, arguments.py): these read what an
earlier run left in --output_dir."""

from __future__ import annotations

import os
import sys

from deepmolm_plugin import usage
from deepmolm_plugin.training.checkpoint_problems import (checkpoint_files_problem, checkpoint_kind_problem,
                                                         deepspeed_processes_problem, model_only)
from deepmolm_plugin.training.checkpoints import (ADAPTER_ONLY_WHY, adapter_only, host_checkpoints,
                                                 resumed_checkpoint, resumes, unfinished_save)
from deepmolm_plugin.training.distributed import world_size
from deepmolm_plugin.training.finished import check_finished_run, finished_final_save, reached_end, saved_state
from deepmolm_plugin.training.options import PROG
from deepmolm_plugin.training.saved_settings import (DATA_SETTINGS, RESUMED_SETTINGS, TRAINING_SETTINGS,
                                                     llm_differences, run_differences, settings_differences,
                                                     tower_differences)


def check_resumed_settings(options, model_args, data_args=None) -> None:
    """The host resumes from the last `checkpoint-N` of --output_dir whenever there is one.
    A checkpoint saved with other model settings resumed silently when no tensor shape
    changed (--image_mode, --fp_levels, --fusion_heads, the tower's heads or norm eps in
    --deepencoder_config: the run went on computing something else than its first part) or
    failed after the model had loaded (a size mismatch for --fp_bits, unexpected keys for
    another projector). Refused now, naming the settings; so is a `checkpoint-*` the host
    would try to resume and cannot (transformers' traceback after the model had loaded),
    except a last checkpoint whose save was cut short (unfinished_save): main sets that one
    aside once these checks pass, so they check the checkpoint before it, or a fresh start.
    Also its trainable set, start/end tokens and template (RESUMED_SETTINGS, `deepmolm_run`):
    an optimizer-state or embedding size traceback, or a silent switch of template; and the
    data settings the config records (DATA_SETTINGS), switched silently partway through the
    run. And a checkpoint of the other kind than --deepspeed says (checkpoint_kind_problem)."""
    output_dir = options.output_dir
    output = os.path.expanduser(output_dir or "")
    # a last save that was cut short is set aside before the host starts
    # (set_aside_unfinished_save, after these checks): the checks are about what it leaves
    unfinished = unfinished_save(output)
    if not resumes(output):
        check_finished_run(output, output_dir, unfinished)
        return
    checkpoint = resumed_checkpoint(output)
    if checkpoint is None:  # transformers takes only checkpoint-<number> folders
        found = [p.name for p in host_checkpoints(output)]
        raise usage.UsageError(f"--output_dir {output_dir} holds {', '.join(found[:3])}, so the host resumes, but "
                               "no checkpoint-<step> folder to resume from: move it away, or use another --output_dir")
    name = os.path.basename(checkpoint)
    missing = [f for f in ("trainer_state.json", "config.json") if not os.path.isfile(os.path.join(checkpoint, f))]
    if missing:
        # a save cut short was set aside above when it was the last; what is left here is
        # no such save (unfinished_save), or one before a set-aside one
        if all(adapter_only(p) for p in host_checkpoints(output)):
            if finished_final_save(options):  # the rerun of a finished stage 1: main says so and exits 0
                return
            # was: "move it away to resume from an earlier one", which exposed another alike
            raise usage.UsageError(f"--output_dir {output_dir}: the host would resume {name}, which has no "
                                   f"{' or '.join(missing)} (a --tune_mm_mlp_adapter checkpoint, {ADAPTER_ONLY_WHY}), "
                                   "and neither has any other checkpoint of the run, so this run cannot resume; "
                                   "start afresh in another --output_dir, or go on from its "
                                   "projector in a new run with --pretrain_mm_mlp_adapter "
                                   f"{os.path.join(checkpoint, 'mm_projector.bin')} (a fresh optimizer and schedule)")
        why = ("a --tune_mm_mlp_adapter checkpoint, which holds only the projector" if adapter_only(checkpoint) else
               "a save that did not finish, or a damaged copy")
        raise usage.UsageError(f"--output_dir {output_dir}: the host would resume {name}, which has no "
                               f"{' or '.join(missing)} ({why}): move it away to resume from an earlier one, or "
                               "use another --output_dir")
    saved = usage.model_config(checkpoint, f"--output_dir {output_dir} (the checkpoint it resumes)")
    differ = settings_differences(saved, model_args, RESUMED_SETTINGS) + run_differences(saved, model_args)
    differ += settings_differences(saved, options, TRAINING_SETTINGS)
    differ += tower_differences(saved, model_args)
    if data_args is not None:
        differ += settings_differences(saved, data_args, DATA_SETTINGS)
    if differ:
        raise usage.UsageError(f"--output_dir {output_dir} holds {name}, which the host "
                               f"resumes, but it was trained with other settings: {'; '.join(differ)}; give its "
                               "settings, or another --output_dir to start afresh")
    differ = llm_differences(model_args, checkpoint)
    if differ:
        raise usage.UsageError(f"--output_dir {output_dir} holds {name}, which the host resumes, but "
                               f"--model_name_or_path {model_args.model_name_or_path} is another language model: "
                               f"{'; '.join(differ)}; give the run's own, or another --output_dir to start afresh")
    if model_only(output):
        raise usage.UsageError(f"--output_dir {output_dir}: its checkpoints were saved without the optimizer and "
                               "schedule (--save_only_model), so none can resume the run; start afresh in another "
                               "--output_dir (--save_only_model False keeps what resuming needs)")
    problem = checkpoint_kind_problem(checkpoint, options.deepspeed) or deepspeed_processes_problem(checkpoint)
    if problem:
        raise usage.UsageError(f"--output_dir {output_dir}: the host would resume {name}, {problem}")
    problem = checkpoint_files_problem(checkpoint)
    if problem:
        raise usage.UsageError(f"--output_dir {output_dir}: the host would resume {name}, whose {problem} (a save "
                               "that did not finish, or a damaged copy): move it away to resume from an earlier "
                               "one, or use another --output_dir")


def stage1_checkpoints_note(options, model_args) -> "str | None":
    """At the start of a --tune_mm_mlp_adapter run that saves checkpoints: the line saying they
    cannot resume it (ADAPTER_ONLY_WHY). Was: nothing, and an interrupted stage 1 was promised
    a resume the rerun then refused."""
    strategy = getattr(options.save_strategy, "value", options.save_strategy)
    if not getattr(model_args, "tune_mm_mlp_adapter", False) or strategy == "no":
        return None
    return (f"{PROG}: note: --tune_mm_mlp_adapter with --save_strategy {strategy}: each checkpoint-<step> holds only "
            "the projector (the host saves no optimizer, schedule or trainer state in stage 1), so an interrupted run "
            "cannot resume from it; it can start a new run with --pretrain_mm_mlp_adapter "
            "<checkpoint>/mm_projector.bin (a fresh optimizer and schedule)")


def missing_rng_note(checkpoint: str) -> "str | None":
    """One line when `checkpoint` holds no rng_state*.pth for some process of this run (the
    Trainer reads rng_state.pth on one process, rng_state_<rank>.pth on several): the resumed
    run's random draws (dropout, ...) start fresh, so its losses leave those of the run it
    continues. Was: said nowhere (transformers logs it at INFO level). A note, not a refusal:
    a run resumed on another number of processes (allowed when the global batch is kept)
    lacks them by design, and its weights, optimizer and data order are still the run's."""
    processes = world_size()
    wanted = ["rng_state.pth"] if processes == 1 else [f"rng_state_{rank}.pth" for rank in range(processes)]
    missing = [name for name in wanted if not os.path.isfile(os.path.join(checkpoint, name))]
    if not missing:
        return None
    from pathlib import Path

    held = sorted(p.name for p in Path(checkpoint).glob("rng_state*.pth"))
    return (f"{PROG}: note: {os.path.basename(checkpoint)} holds no {', '.join(missing)} for this run's {processes} "
            f"process(es) (it holds {', '.join(held) if held else 'none'}): the resumed run's random draws "
            "(dropout and the like) start fresh, so from here on its losses differ from those of an uninterrupted run")


def say_start_lines(options, model_args, set_aside: "str | None" = None) -> None:
    """What rank 0 says at the start of a run whose every up-front check passed: "resuming
    <checkpoint>" (say_resuming; not after a cut save set aside, `set_aside`, whose own line
    says it) and, at the fresh start of a stage 1 that saves checkpoints, that they cannot
    resume it (stage1_checkpoints_note). Was: said at the end of check_argument_values, before
    main's own checks (batches, template, tokenizer) and the output lock, so a refusal could
    follow "resuming"."""
    if set_aside is None:
        say_resuming(options)
    note = stage1_checkpoints_note(options, model_args)
    # at the start of a fresh run (a resumed stage 1 was refused by check_resumed_settings), said once
    if note and not resumes(os.path.expanduser(options.output_dir)) and os.environ.get("RANK", "0") == "0":
        print(note, file=sys.stderr)


def say_resuming(options) -> None:
    """Rank 0's "resuming <checkpoint>" line, said by say_start_lines once every check has
    passed (was: by check_resumed_settings, before check_resumed_run and the others, so a
    refusal followed it). Not for a cut save to set aside (set_aside_unfinished_save says it in
    its own line, once the folder is renamed), nor for a checkpoint at or past the end this
    command sets (main says the run is finished, or finished_run_line refuses it)."""
    output = os.path.expanduser(options.output_dir or "")
    checkpoint = resumed_checkpoint(output) if resumes(output) else None
    if checkpoint is None or os.environ.get("RANK", "0") != "0" or unfinished_save(output) is not None:
        return
    state = saved_state(checkpoint)
    if finished_final_save(options) or (state is not None and reached_end(state, options)):
        return
    print(f"{PROG}: resuming {checkpoint} (the host resumes the last checkpoint of --output_dir)", file=sys.stderr)


def say_resume_notes(options) -> None:
    """Rank 0's notes for a run that resumes, once a cut save is set aside: what the resumed
    run will not repeat of the run it continues: the checkpoint's random state
    (missing_rng_note) and, under --ignore_data_skip, the resumed epoch's batches already
    trained."""
    output = os.path.expanduser(options.output_dir or "")
    checkpoint = resumed_checkpoint(output) if resumes(output) else None
    if checkpoint is None or os.environ.get("RANK", "0") != "0":
        return
    lines = [missing_rng_note(checkpoint)]
    if getattr(options, "ignore_data_skip", False):
        lines.append(f"{PROG}: note: --ignore_data_skip True: the resumed epoch is read again from its first batch "
                     f"(transformers skips none), so the records its steps up to {os.path.basename(checkpoint)} "
                     "trained on are trained on again")
    for line in lines:
        if line:
            print(line, file=sys.stderr)
