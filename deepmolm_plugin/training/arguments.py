"""The host's argument classes built from argv (checked_arguments) and the values they hold
checked together: training modes this launcher cannot serve, fp16 on the CPU, an option
given twice, output and cache folders, the projector a deepencoder tower takes and the fusion
heads against the LLM width, batches, a saved model's or resumed checkpoint's settings, a
stage-1 adapter's.

Separate because it needs the host's classes (after register) and so runs after the
argv checks of inputs.py; it calls the resume and adapter checks with what it parsed."""

from __future__ import annotations

import dataclasses
import os
import sys

from deepmolm_plugin import usage
from deepmolm_plugin.training.adapter import check_adapter_settings
from deepmolm_plugin.training.deepspeed_config import check_deepspeed_values
from deepmolm_plugin.training.distributed import has_accelerator, world_size
from deepmolm_plugin.training.options import PROG
from deepmolm_plugin.training.resume import check_resumed_settings, say_start_lines
from deepmolm_plugin.training.run_record import check_resumed_run
from deepmolm_plugin.training.saved_settings import MODEL_SETTINGS, settings_differences, tower_differences


def check_argument_values(host_train, argv) -> tuple:
    """checked_arguments, then what a start says once its checks have passed (say_start_lines):
    for callers that run these checks alone. `main` says those lines only after its later
    checks and the output lock. Returns (options, data_args)."""
    options, model_args, data_args = checked_arguments(host_train, argv)
    say_start_lines(options, model_args)
    return options, data_args


def checked_arguments(host_train, argv) -> tuple:
    """Builds the host's model and data argument classes (ours, after register) from argv,
    so that a value they refuse (their ValueError) is a UsageError now, not a traceback from
    inside the host's train(). Training arguments are only parsed into a namespace here
    (building TrainingArguments would start the distributed state before
    prepare_cpu_distributed) and their values checked (patches.arguments.check_training_values).
    Then: no option given twice with different values, and no resumed checkpoint made
    with other settings. Says nothing (say_start_lines does, once every check has passed).
    Returns (options, model_args, data_args)."""
    from transformers import HfArgumentParser

    from deepmolm_plugin.patches.arguments import check_training_values, ignored_projector_options

    model_parser = HfArgumentParser((host_train.ModelArguments, host_train.DataArguments), prog=PROG,
                                    allow_abbrev=False)
    check_repeated_options(model_parser, argv)
    try:
        model_args, data_args, remaining = model_parser.parse_args_into_dataclasses(
            args=list(argv), return_remaining_strings=True, look_for_args_file=False)
        parser = HfArgumentParser(host_train.TrainingArguments, prog=PROG, allow_abbrev=False)
        options, unknown = parser.parse_known_args(remaining)
        # the folder the Trainer writes when none is given (TrainingArguments.__post_init__,
        # not run on this namespace): the checks below and the resume record are about it.
        # Only for None: "" (an unset "$OUT") is refused by check_output_folders (it was
        # taken for "not given" here, then a FileNotFoundError traceback in the Trainer)
        if options.output_dir is None:
            options.output_dir = "trainer_output"
        check_training_values(options)
    except ValueError as e:
        raise usage.UsageError(str(e)) from e
    check_training_modes(options, model_args)
    check_half_precision(options)
    if options.deepspeed:
        check_deepspeed_values(options)
    if unknown:  # a misspelt option: the host's parser stopped with a traceback after the imports
        raise usage.UsageError(f"unrecognized arguments: {' '.join(unknown)} (python -m deepmolm_plugin.train "
                               "--help lists the options)")
    check_output_folders(options, model_args, data_args)
    from deepmolm_plugin.patches.arguments import ASPECT_RATIOS
    from deepmolm_plugin.patches.registry import TOWER_NAME

    if model_args.vision_tower == TOWER_NAME and data_args.image_aspect_ratio not in ASPECT_RATIOS:
        raise usage.UsageError(f"--image_aspect_ratio {data_args.image_aspect_ratio} is not served by --vision_tower "
                               f"{TOWER_NAME} (it trained as 'pad', and the saved model failed in eval): use "
                               f"{' or '.join(ASPECT_RATIOS)}; --image_mode tiles gives it more resolution")
    check_projector_choice(model_args)
    check_fusion_heads(model_args)
    if getattr(options, "resume_from_checkpoint", None):  # accepted, and a fresh run trained from step 1
        raise usage.UsageError(f"--resume_from_checkpoint {options.resume_from_checkpoint}: the host's train.py does "
                               "not read it; it resumes by itself from the last checkpoint-<step> of --output_dir: "
                               "give that run's --output_dir and leave this option out")
    check_resumed_settings(options, model_args, data_args)
    check_resumed_run(options, data_args)
    check_model_checkpoint(model_args)
    check_adapter_settings(model_args, options)
    defaults = {f.name: f.default for f in dataclasses.fields(model_args)}
    ignored = ignored_projector_options(model_args, defaults)
    if ignored:  # accepted, saved in the config and never read: the run is not what the line says
        raise usage.UsageError("; ".join(ignored) + ": leave them out or use a projector that reads them")
    return options, model_args, data_args


def check_projector_choice(model_args) -> None:
    """--mm_projector (or --mm_projector_type) with --vision_tower deepencoder must name one of
    the projectors the plugin's registry builds for that tower (patches.registry: the molecule
    projectors and the image-only ones with the DeepEncoder token layout). Any other name went
    to the host's builder once the LLM had loaded: an unknown one (`Fusion`) was its
    "Unknown projector type" traceback, and one of its own (`mlp3x_gelu`, `identity`) built a
    module without the layout, and the run failed at its first step ("'Sequential' object has
    no attribute 'embed_images'"). Other towers keep the host's projectors (and its errors)."""
    from deepmolm_plugin.patches.registry import LAYOUT_PROJECTORS, MOLECULE_PROJECTORS, TOWER_NAME

    name = model_args.mm_projector_type
    served = MOLECULE_PROJECTORS + LAYOUT_PROJECTORS
    if model_args.vision_tower != TOWER_NAME or name in served:
        return
    option = "--mm_projector" if model_args.mm_projector is not None else "--mm_projector_type"
    hint = f" (names are lower case: {name.lower()})" if name.lower() in served else ""
    raise usage.UsageError(f"{option} {name} is not a projector of --vision_tower {TOWER_NAME}: use one of "
                           f"{', '.join(served)}{hint}; the host's other projectors (e.g. mlp3x_gelu, identity) do "
                           "not lay out its image tokens")


def check_fusion_heads(model_args) -> None:
    """--fusion_heads must divide the LLM width (its cross-attention splits hidden_size among
    the heads), read from --model_name_or_path's config.json as check_adapter_settings reads
    it. Was: found by the projector's build once the LLM had loaded (fusion.py's ValueError,
    a traceback). A config.json without the width (another tool's copy, a Hub id) leaves the
    check to that build."""
    if model_args.vision_tower is None or model_args.mm_projector_type != "fusion":
        return  # no tower: the host builds no projector; another projector does not read the heads
    llm = os.path.expanduser(model_args.model_name_or_path or "")
    width = (usage.model_config(llm, "--model_name_or_path") or {}).get("hidden_size") if os.path.isdir(llm) else None
    heads = model_args.fusion_heads
    if not isinstance(width, int) or isinstance(width, bool) or width < 1 or width % heads == 0:
        return
    below = max(d for d in range(1, heads) if width % d == 0)
    above = next((d for d in range(heads + 1, width + 1) if width % d == 0), None)
    nearest = f"{below} or {above}" if above is not None else f"{below}"
    raise usage.UsageError(f"--fusion_heads {heads} does not divide the LLM width: --model_name_or_path "
                           f"{model_args.model_name_or_path} has hidden_size {width}, which the fusion projector's "
                           f"cross-attention splits among its heads; give a divisor of {width} (the nearest: "
                           f"{nearest})")


def check_training_modes(options, model_args) -> None:
    """The host's training modes whose result this launcher cannot serve, refused before any
    work: `--bits 4/8` (the model loads unquantised here, yet the host still calls peft's
    prepare_model_for_kbit_training, which froze every LLM weight: the run trained only the
    projector, exit 0), `--lora_enable` (the host saves the adapter alone, which chat,
    eval and later training here cannot load) and a stage 1 with start/end tokens (the
    host's splice raises a bare NotImplementedError for it at the first step)."""
    if getattr(model_args, "tune_mm_mlp_adapter", False) and getattr(model_args, "mm_use_im_start_end", False):
        raise usage.UsageError("--tune_mm_mlp_adapter True with --mm_use_im_start_end True: the host cannot train the "
                               "projector alone with image start/end tokens (its NotImplementedError at the first "
                               "step); leave --mm_use_im_start_end out in stage 1")
    bits = getattr(options, "bits", 16)
    if bits in (4, 8):
        raise usage.UsageError(f"--bits {bits}: quantised training is not supported (the model would load unquantised "
                               "and every LLM weight be frozen, training only the projector); leave --bits out")
    if getattr(model_args, "tune_mm_mlp_adapter", False) and getattr(options, "freeze_mm_mlp_adapter", False):
        # the host freezes all but the projector, then the projector: "element 0 of tensors
        # does not require grad" at the first step
        raise usage.UsageError("--tune_mm_mlp_adapter True with --freeze_mm_mlp_adapter True leaves nothing to train "
                               "(the first trains only the projector, the second freezes it); give one of them")
    if getattr(options, "lora_enable", False):
        raise usage.UsageError("--lora_enable: the run would save only its LoRA adapter, which chat, eval and further "
                               "training here cannot load; train without --lora_enable")


def check_half_precision(options) -> None:
    """`--fp16 True` where training runs on the CPU (no accelerator, or --use_cpu True):
    accelerate makes no loss scaler there and trains in float32 (losses bit-identical,
    config.json saying float32), so the option did nothing. Was: accepted without a word, and
    the NaN guard (patches.nonfinite_training) stood down for it: a diverged run saved NaN
    weights, exit 0. As transformers refuses --bf16 without a bf16 GPU or --use_cpu. Any
    accelerator torch sees counts (accelerate makes an fp16 GradScaler for CUDA, XPU, MPS,
    NPU, HPU, MLU; the refusal first named CUDA alone)."""
    if not getattr(options, "fp16", False):
        return
    on_cpu = "--use_cpu True" if getattr(options, "use_cpu", False) else None
    if on_cpu or not has_accelerator():
        raise usage.UsageError(f"--fp16 True needs a GPU, and this run trains on the CPU "
                               f"({on_cpu or 'no GPU or other accelerator here'}), where no fp16 loss scaler exists "
                               "and the run would train in float32 anyway; leave --fp16 out (--bf16 True --use_cpu "
                               "True trains in bfloat16 on the CPU)")


def check_repeated_options(parser, argv) -> None:
    """A model or data option given twice (in any spelling: --fp_bits, --fp-bits,
    --fp_bits=) with two values: argparse silently keeps the last, so `... --fp_bits 2048
    ... --fp_bits 4096` trained with 4096 whichever the user meant. The same value twice is
    harmless, and training options (hyper-parameters) keep argparse's last-wins, which
    scripts use to override a base command line."""
    seen = {}  # dest -> (spelling, value)
    for i, arg in enumerate(argv):
        option, sep, inline = arg.partition("=")
        action = parser._option_string_actions.get(option) if arg.startswith("--") else None
        if action is None:
            continue
        value = inline if sep else (argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None)
        if action.dest in seen and seen[action.dest][1] != value:
            first, before = seen[action.dest]
            raise usage.UsageError(f"{first} is given twice, with {before!r} and then {option} {value!r}: give it once")
        seen[action.dest] = (option, value)


def check_output_folders(options, model_args, data_args) -> None:
    """Folders the run writes into must be folders (or creatable): a --render_folder that is a
    file failed when the dataset drew its first depiction, after the model had loaded."""
    for name, value in (("output_dir", options.output_dir), ("render_folder", data_args.render_folder)):
        if value is not None:
            usage.output_folder(value, f"--{name}")
    if model_args.vision_feature_cache is not None:  # a read-only one serves what it holds
        usage.cache_folder(model_args.vision_feature_cache, "--vision_feature_cache")
        check_cache_outside_output(model_args.vision_feature_cache, options.output_dir)


def check_cache_outside_output(cache: str, output_dir: "str | None") -> None:
    """The feature cache may be neither --output_dir nor a folder inside it. --output_dir
    becomes the model folder that is copied, uploaded and evaluated: a cache there (one
    file per view, millions at real scale) would ship with it, and go when the run's
    folder is moved or deleted, while a cache is meant to outlive runs and be shared by
    them. Was: accepted, and the entry folders were written among the checkpoints. A cache
    folder above --output_dir is allowed, unless --output_dir sits in a folder the cache
    writes: its entries go to `<two hex digits>/` and `.tmp/` (review: `--output_dir runs/01`
    under a cache `runs` got 1/256 of the entries among its checkpoints)."""
    import re

    if output_dir is None:
        return
    where = usage.placed_in(cache, output_dir)
    if where:
        where = "is --output_dir" if where == "is" else f"is inside --output_dir {output_dir}"
        raise usage.UsageError(f"--vision_feature_cache {cache}: {where}, which becomes the saved model's folder; "
                               "give the cache a folder outside it (it is meant to be shared by later runs)")
    given, output = usage.real_path(cache), usage.real_path(output_dir)
    if given in output.parents:
        first = output.relative_to(given).parts[0]
        if re.fullmatch(r"[0-9a-f]{2}", first) or first == ".tmp":
            raise usage.UsageError(f"--output_dir {output_dir} is in {given / first}, a folder the feature cache "
                                   f"--vision_feature_cache {cache} writes its entries into (`<two hex digits>/`, "
                                   "`.tmp/`): give the run or the cache another folder")


def check_batches(options, records: int) -> None:
    """--dataloader_drop_last with fewer records than one batch on every process (per-device
    batch x processes, which accelerate's sharded sampler needs for one step): the epoch had
    no batch, the run took 0 steps and saved the untrained model, exit 0 (as --max_steps 0
    did, refused in patches.arguments)."""
    batch, processes = options.per_device_train_batch_size, world_size()
    if getattr(options, "dataloader_drop_last", False) and records < batch * processes:
        raise usage.UsageError(f"--dataloader_drop_last True drops every batch: --data_path has {records} records, "
                               f"fewer than one batch of --per_device_train_batch_size {batch} on each of {processes} "
                               "process(es), so the run would take no step and save the untrained model; give more "
                               "records, a smaller batch, or --dataloader_drop_last False")


def batch_fill_note(options, records: int) -> "str | None":
    """The note for several processes whose step (per-device batch x processes) does not divide
    the records: accelerate shards the host's DataLoader so that every process takes the same
    number of steps (DDP needs each rank in every collective), and so fills the epoch's last,
    incomplete step with records from the epoch's start (its even_batches), or drops it with
    --dataloader_drop_last. Was: said nowhere, so a 2-process run trained 3 of 5 records twice
    an epoch where one process with --gradient_accumulation_steps 2 (the same global batch)
    trained each once, and their losses parted after step 1. The stream itself is kept: a
    shorter last step on one rank would leave the others waiting in its collective.
    None where nothing is repeated or dropped."""
    batch, processes = options.per_device_train_batch_size, world_size()
    step = batch * processes
    if processes < 2 or records % step == 0:
        return None
    shape = (f"--data_path has {records} records, not a multiple of the {step} one step takes over all processes "
             f"(--per_device_train_batch_size {batch} x {processes} processes)")
    if getattr(options, "dataloader_drop_last", False):
        what = (f"each epoch leaves out its last {records % step} record(s) (--dataloader_drop_last True drops the "
                "incomplete last step over all processes, not only a process's incomplete batch)")
    else:
        what = (f"each epoch's last step is filled with {step - records % step} record(s) repeated from the "
                "epoch's start (so every process takes the same number of steps), and trains those records again")
    return (f"{PROG}: note: {shape}: {what}; a run with another process count trains on another stream of records; "
            f"give a multiple of {step} records to train each record once an epoch")


def say_batch_fill(options, records: int) -> None:
    """Rank 0 says batch_fill_note at the start (once every check has passed)."""
    note = batch_fill_note(options, records)
    if note and os.environ.get("RANK", "0") == "0":
        print(note, file=sys.stderr)


def check_model_checkpoint(model_args) -> None:
    """--model_name_or_path a saved DeepMoLM model (its config names a vision tower): the host
    keeps its tower and projector, so other network settings on the command line were
    ignored by the run yet written into its new config (--fusion_heads 4 for a 2-head
    projector reloaded to other outputs; --mm_projector linear, --fp_bits 1024 saved a model
    that could not be loaded). Refused, naming them; --vision_tower_weights too (the
    checkpoint's tower weights are the ones used)."""
    path = os.path.expanduser(model_args.model_name_or_path or "")
    saved = usage.model_config(path, "--model_name_or_path") if os.path.isdir(path) else None
    if not saved or not saved.get("mm_vision_tower"):
        return
    differ = settings_differences(saved, model_args, MODEL_SETTINGS)
    if getattr(model_args, "deepencoder_config", None) is not None:  # left out, the saved tower's own is kept and saved
        differ += tower_differences(saved, model_args)
    weights = getattr(model_args, "vision_tower_weights", None)
    if weights not in (None, saved.get("vision_tower_weights")):
        differ.append(f"--vision_tower_weights {weights!r} (the checkpoint's own tower weights are loaded)")
    if differ:
        raise usage.UsageError(f"--model_name_or_path {model_args.model_name_or_path} is a saved multimodal model "
                               f"whose tower and projector the run keeps, but the command line says otherwise: "
                               f"{'; '.join(differ)}; give its settings (they would only have been written into "
                               "the new config)")
