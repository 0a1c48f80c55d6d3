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
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.train", "python -m deepmolm_plugin.train")

import argparse
import atexit
import dataclasses
import json
import math
import os
import re
import signal
import sys

from deepmolm_plugin import usage

PROG = "python -m deepmolm_plugin.train"


def option_value(argv, name):
    """The last value given to `--name` (also spelled `--name=V`, `--na-me V`), else None:
    as the host's HfArgumentParser reads it (the last occurrence wins)."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    value = None
    for i, arg in enumerate(argv):
        option, sep, inline = arg.partition("=")
        if option in spellings:
            if sep:
                value = inline
            elif i + 1 < len(argv):
                value = argv[i + 1]
    return value


def check_inputs(argv) -> list:
    """The user-given files and folders, checked before anything heavy is imported; the
    first problem is a UsageError naming the option and the path. Returns the records."""
    data = option_value(argv, "data_path")
    if data is None:
        raise usage.UsageError("--data_path is required (the JSON list of training records)")
    records = usage.json_list_file(data, "--data_path", "records")
    check_records(records, data, plain=option_value(argv, "version") == "plain")
    check_property_records(records, data, argv)
    if option_value(argv, "render_folder") is None:
        check_default_render_folder(records, data)
    usage.model_folder(option_value(argv, "model_name_or_path") or "facebook/opt-125m", "--model_name_or_path")
    for name in ("image_folder", "structure_folder"):
        if option_value(argv, name):
            usage.existing_folder(option_value(argv, name), f"--{name}")
    if not option_value(argv, "structure_folder"):
        check_relative_structures(records, data)
    if option_value(argv, "deepencoder_config"):
        check_encoder_config(option_value(argv, "deepencoder_config"))
    if option_value(argv, "pretrain_mm_mlp_adapter"):
        check_adapter_file(argv)
    if option_value(argv, "deepspeed"):
        check_deepspeed_config(option_value(argv, "deepspeed"))
    check_tower_weights(argv)
    return records


def check_tower_weights(argv) -> None:
    """`--vision_tower_weights`: the tower's load planned now from the files' headers
    (encoder.model.check_deepencoder_weights: paths, file kinds, layout, names, shapes, integer
    dtypes, a saved folder's configuration against --deepencoder_config), with the
    configuration the tower will be built with (tower.config_from_args). Weights the loader
    refuses were a traceback after the LLM had loaded; the existence check here expanded
    `~` and the loader did not. NaN/inf values need every tensor read: the load refuses
    them, which main() reports as one line too."""
    weights = option_value(argv, "vision_tower_weights")
    if not weights or weights == "random":  # deepmolm_plugin.encoder.tower.RANDOM_WEIGHTS
        return
    from deepmolm_plugin.encoder.checkpoint import split_weights_option

    paths = split_weights_option(weights)  # as the arguments class splits them
    for path in paths:
        if not os.path.lexists(os.path.expanduser(path)):  # a link that leads nowhere: the loader says which way
            raise usage.UsageError(f"--vision_tower_weights {path}: no such file or folder")
    from deepmolm_plugin.patches.registry import TOWER_NAME

    if option_value(argv, "vision_tower") != TOWER_NAME:
        return  # another tower does not read it (the arguments class refuses it there)
    model = os.path.expanduser(option_value(argv, "model_name_or_path") or "")
    saved = usage.model_config(model, "--model_name_or_path") if os.path.isdir(model) else None
    if saved and saved.get("mm_vision_tower"):  # a saved multimodal model: the host keeps its tower and
        return  # loads none of these weights (check_model_checkpoint compares them with its own)
    from types import SimpleNamespace

    from deepmolm_plugin.encoder.model import check_deepencoder_weights
    from deepmolm_plugin.encoder.presets import config_argument
    from deepmolm_plugin.encoder.tower import config_from_args
    from deepmolm_plugin.tensor_files import CheckpointError

    encoder = option_value(argv, "deepencoder_config")
    given = SimpleNamespace(vision_tower_weights=paths, deepencoder_config=config_argument(encoder) if encoder else None)
    try:
        config = config_from_args(given)
        check_deepencoder_weights(paths, config, config_source=f"--deepencoder_config {encoder}" if encoder else None)
    except (CheckpointError, OSError) as e:  # the loader's messages name the file
        raise usage.UsageError(f"--vision_tower_weights {weights}: {e}") from e
    except (ValueError, TypeError) as e:  # --deepencoder_config's file: bad JSON, fields or values
        raise usage.UsageError(f"--deepencoder_config {encoder}: not a usable DeepEncoder configuration: {e}") from e


def check_default_render_folder(records: list, data: str) -> None:
    """The folder depictions are drawn into when --render_folder is not given, checked as an
    explicit one is (check_output_folders) where a record will be drawn (no `image`, a
    molecule): in a read-only data folder, or where a file has its name, it was a
    PermissionError / FileExistsError traceback after the model had loaded."""
    from deepmolm_plugin.data.records import has_molecule
    from deepmolm_plugin.patches.arguments import render_folder_for

    if any(not r.get("image") and has_molecule(r) for r in records):
        try:
            usage.output_folder(render_folder_for(data, None), "--render_folder")
        except usage.UsageError as e:
            raise usage.UsageError(f"{e} (not given: <data_path>.renders, where records without `image` get their "
                                   "depiction drawn); give --render_folder a writable folder") from e


def check_adapter_file(argv) -> None:
    """`--pretrain_mm_mlp_adapter`: what the host torch.loads into the projector once the LLM
    has loaded must be a stage-1 `mm_projector.bin`: a readable PyTorch file (a cut one was
    PytorchStreamReader's traceback), holding a dict of tensors (a pickled list was an
    AttributeError) named `...mm_projector.<name>` with the names of the projector this run
    builds (renamed or missing tensors were a ValueError traceback, after the LLM had loaded).
    Checked before its config.json is (train.check_adapter_settings), which a text file
    with none beside it was refused for."""
    import zipfile

    import torch

    from deepmolm_plugin.tensor_files import CheckpointError, load_torch_file

    value = option_value(argv, "pretrain_mm_mlp_adapter")
    path = usage.existing_file(value, "--pretrain_mm_mlp_adapter", allow_empty=False)
    try:  # weights only, as the host's torch.load (torch >= 2.6); mapped, not read, where the format allows
        state = load_torch_file(path, mmap=zipfile.is_zipfile(path))
    except CheckpointError as e:  # names the file
        raise usage.UsageError(f"--pretrain_mm_mlp_adapter {e}; give a stage-1 run's mm_projector.bin") from e
    tensors = isinstance(state, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in state.items())
    if not tensors:
        raise usage.UsageError(f"--pretrain_mm_mlp_adapter {value}: holds a {type(state).__name__}, not the tensors of "
                               "a projector by name (a stage-1 run's mm_projector.bin)")
    # the host keeps the tensors whose name holds "mm_projector" and loads each by its part after "mm_projector."
    ours = [k for k in state if "mm_projector" in k]
    if not ours or any("mm_projector." not in k for k in ours):
        raise usage.UsageError(f"--pretrain_mm_mlp_adapter {value}: holds no mm_projector.<name> tensors "
                               f"(its names: {sorted(state)[:5]}{' ...' if len(state) > 5 else ''}): not a stage-1 "
                               "run's mm_projector.bin")
    # the projector the arguments build: --mm_projector wins (patches.arguments), linear is the host's default
    kind = option_value(argv, "mm_projector") or option_value(argv, "mm_projector_type") or "linear"
    from deepmolm_plugin.patches.registry import TOWER_NAME
    from deepmolm_plugin.projector import PROJECTORS, ProjectorConfig, build_projector
    from deepmolm_plugin.projector.weights import names_problem

    names = adapter_tensor_names(ours, value)  # any projector: the host's own reads the file the same way
    if option_value(argv, "vision_tower") != TOWER_NAME or kind not in PROJECTORS:
        return  # the host's own projector (or none) takes it
    with torch.device("meta"):  # only the names are compared: they depend on the type alone
        projector = build_projector(kind, ProjectorConfig(hidden_size=8, mm_hidden_size=8, num_heads=1))
    problem = names_problem(projector, names)
    if problem:
        raise usage.UsageError(f"--pretrain_mm_mlp_adapter {value}: {problem}; give a stage-1 adapter of this run's "
                               f"projector (--mm_projector {kind})")


def adapter_tensor_names(keys, value: str) -> dict:
    """{projector tensor name: stored key} of an adapter file's `...mm_projector.<name>` keys,
    named as the host loads them (llava_arch's get_w: the part after the first
    "mm_projector."). A name given by two keys is a UsageError naming both: the host keeps
    the one read last (was: accepted, as a set of names hides the repeat; a file holding a
    LoRA-wrapped `base_model.model.model.mm_projector.*` copy beside `model.mm_projector.*`
    loaded whichever came last)."""
    names, repeats = {}, []
    for key in keys:
        name = key.split("mm_projector.")[1]
        if name in names:
            repeats.append(f"{names[name]!r} and {key!r}")
        else:
            names[name] = key
    if repeats:
        shown = ", ".join(repeats[:5]) + (f" (and {len(repeats) - 5} more)" if len(repeats) > 5 else "")
        raise usage.UsageError(f"--pretrain_mm_mlp_adapter {value}: holds {len(repeats)} projector tensor(s) under two "
                               f"names each, which the host loads as one (the copy read last wins): {shown}; "
                               "keep one copy of each")
    return names


def check_deepspeed_config(value: str) -> dict:
    """`--deepspeed`: a JSON file holding an object (DeepSpeed's config), returned. A folder,
    a JSON list or a syntax error came back as a traceback from accelerate (IsADirectoryError,
    "'list' object has no attribute 'get'") or as a bare JSON message naming no file.
    Its ZeRO stage must be a JSON integer 0-3: DeepSpeed reads "3" as stage 3 and partitions
    the weights, while transformers and accelerate test `stage == 3` and so did not gather
    them at save (a model of empty tensors, exit 0). Under stage 3,
    stage3_gather_16bit_weights_on_model_save must be true: left out (DeepSpeed's default is
    false) the run saved no model weights, only global_step*/ shards that chat, eval and the
    GUI cannot load, exit 0. Refused rather than set here: the file is the user's record
    of the run (scripts/zero3.json sets it)."""
    path = usage.existing_file(value, "--deepspeed", allow_empty=False)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise usage.UsageError(f"--deepspeed {value}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except ValueError as e:
        raise usage.UsageError(f"--deepspeed {value}: not JSON ({e})") from e
    if not isinstance(config, dict):
        raise usage.UsageError(f"--deepspeed {value}: holds a JSON {type(config).__name__}, not DeepSpeed's "
                               "config object")
    zero = config.get("zero_optimization", {})
    if not isinstance(zero, dict):
        raise usage.UsageError(f"--deepspeed {value}: zero_optimization holds a JSON {type(zero).__name__}, not an "
                               "object")
    stage = zero.get("stage", 0)
    if isinstance(stage, bool) or stage not in (0, 1, 2, 3):
        raise usage.UsageError(f"--deepspeed {value}: zero_optimization.stage is {json.dumps(stage)}, not a JSON "
                               "integer 0-3 (a string stage is read as a number by DeepSpeed but not by transformers, "
                               "which then saved empty tensors)")
    # DeepSpeed's spellings of the one setting: its field name and the deprecated fp16 one
    # (LLaVA-era configs) count (they were refused though their runs save weights); two of
    # them in one file DeepSpeed refuses itself, after the model loaded
    spellings = ("stage3_gather_16bit_weights_on_model_save", "gather_16bit_weights_on_model_save",
                 "stage3_gather_fp16_weights_on_model_save")
    given = [k for k in spellings if k in zero]
    if len(given) > 1:
        raise usage.UsageError(f"--deepspeed {value}: zero_optimization gives {' and '.join(given)}, spellings of "
                               "one setting, which DeepSpeed refuses together: keep one")
    gather = given[0] if given else spellings[0]
    if stage == 3 and zero.get(gather) is not True:
        raise usage.UsageError(f"--deepspeed {value}: zero_optimization.{gather} is "
                               f"{json.dumps(zero[gather]) if given else 'not given (false)'}: under ZeRO-3 "
                               "the run would save no model weights in --output_dir, only DeepSpeed's global_step*/ "
                               "shards, which chat, eval and the GUI cannot load; set it to true (as "
                               "scripts/zero3.json does)")
    return config


def check_deepspeed_values(options) -> None:
    """The --deepspeed config's explicit (not "auto") values against the command line's, by
    transformers' own comparison (HfTrainerDeepSpeedConfig.trainer_config_process): fp16 and
    bf16 enabled while the options say otherwise, train_micro_batch_size_per_gpu,
    gradient_accumulation_steps, gradient_clipping, the optimizer's lr, betas, eps and
    weight decay. Transformers raises its mismatch ValueError only once the model has loaded,
    as a traceback."""
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    config = check_deepspeed_config(options.deepspeed)
    # the processes count of DeepSpeed's train_batch_size, as TrainingArguments.world_size
    args = argparse.Namespace(**vars(options), world_size=world_size())
    ds = HfTrainerDeepSpeedConfig(config)  # kept by transformers as a weak reference only
    ds.trainer_config_process(args)
    if ds.mismatches:  # "- ds <key>=<value> vs hf <option>=<value>"
        raise usage.UsageError(f"--deepspeed {options.deepspeed}: values that contradict the command line (ds: the "
                               f"file, hf: the option): {'; '.join(m.lstrip('- ') for m in ds.mismatches)}; set them "
                               "to \"auto\" (the options then fill them in) or give matching options")


def world_size() -> int:
    """The number of training processes: torchrun / deepspeed set WORLD_SIZE
    (single_process_environment too); one process otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


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


def check_records(records: list, data_path: str, plain: bool = False) -> None:
    """The records' fields, ids and sidecar references (data.records.check_records), and
    their shape under the plain template: a bad record is one line now, not a traceback
    after the model has loaded."""
    from deepmolm_plugin.data.records import check_chat_records, check_plain_records, check_records as check

    from deepmolm_plugin.eval.record_labels import check_answer_labels

    try:
        check(records, data_path)
        check_answer_labels(records, data_path)  # a label its own reply contradicts (the report's reading)
        if plain:
            check_plain_records(records)
        else:
            check_chat_records(records)
    except ValueError as e:
        raise usage.UsageError(f"--data_path {e}") from e


def check_property_records(records: list, data_path: str, argv) -> None:
    """With --aux_property_task, records whose `properties` the head cannot train on (no
    graph source, or the image after the first answer: patches.molecule_data's
    property_records_problem) are refused now (was: when the trainer started, after the
    model had loaded, exit 1)."""
    if not option_value(argv, "aux_property_task"):
        return
    from deepmolm_plugin.patches.molecule_data import property_records_problem

    problem = property_records_problem(records)
    if problem:
        raise usage.UsageError(f"--data_path {data_path}: {problem}")


def note_unread_molecules(records: list, argv, host_train) -> None:
    """A projector that reads no molecule (linear, the host's default, or another image-only
    one) with records that carry one: a note with their count, said once before the model
    loads (was: nothing when every record had one; the saved config still named fp_bits).
    A note, not a refusal: the image-only ablation trains `linear` on these very records on
    purpose (scripts/experiment_fusion.py's image_only arm, the README's "Projectors")."""
    from types import SimpleNamespace

    from deepmolm_plugin.cli import projector_uses_molecules
    from deepmolm_plugin.data.records import has_molecule
    from deepmolm_plugin.projector import PROJECTORS

    # resolved as the arguments class does (the host's default, linear, when neither is given)
    projector = host_train.ModelArguments(mm_projector=option_value(argv, "mm_projector"),
                                          mm_projector_type=option_value(argv, "mm_projector_type")).mm_projector_type
    if not option_value(argv, "vision_tower") or projector_uses_molecules(SimpleNamespace(mm_projector_type=projector)):
        return
    carrying = sum(1 for record in records if has_molecule(record))
    if carrying and os.environ.get("RANK", "0") == "0":
        readers = " or ".join(f"--mm_projector {name}" for name, cls in PROJECTORS.items() if cls.uses_molecule)
        print(f"{PROG}: note: {carrying} of {len(records)} records carry a molecule (molecule_fp, structure, atoms or "
              f"smiles), but --mm_projector {projector} reads none: their molecule_fp is not trained on (records "
              f"without an image are still drawn); {readers} reads them (fine for an image-only ablation)",
              file=sys.stderr)


def check_relative_structures(records: list, data_path: str) -> None:
    """A record's relative `structure` is read from --structure_folder: without the option it
    failed when the record was first read, after the model had loaded (the README's own
    stage-2 command left the option out: minutes of loading, then exit 1)."""
    from deepmolm_plugin.data.records import record_id

    for i, record in enumerate(records):
        structure = record.get("structure")
        if isinstance(structure, str) and structure.strip() and not os.path.isabs(structure):  # as the resolver reads it
            raise usage.UsageError(f"--data_path {data_path}: record {record_id(record, i)!r}: structure {structure} "
                                   "is relative but --structure_folder is not set (the folder it is read from)")


def check_encoder_config(value: str) -> None:
    """`--deepencoder_config`: a JSON file of DeepEncoderConfig fields, or a preset name
    (deepmolm_plugin.encoder.presets; the arguments class turns it into the preset's
    fields). A file is read as the tower will read it (was: only its existence was checked, and
    a key given twice, or a field the configuration refuses, was a traceback from inside the
    host's model build)."""
    if os.path.isfile(os.path.expanduser(value)):
        from deepmolm_plugin.encoder import DeepEncoderConfig

        try:
            DeepEncoderConfig.load(os.path.expanduser(value))
        except (ValueError, TypeError) as e:  # bad JSON, a repeated key, fields or values
            raise usage.UsageError(f"--deepencoder_config {value}: not a usable DeepEncoder configuration: "
                                   f"{e}") from e
        return
    from deepmolm_plugin.encoder.presets import config_argument

    try:
        config_argument(value)
    except ValueError as e:
        raise usage.UsageError(str(e)) from e


def check_argument_values(host_train, argv) -> tuple:
    """checked_arguments, then what a start says once its checks have passed (say_start_lines):
    for callers that run these checks alone. `main` says those lines only after its later
    checks and the output lock. Returns (options, data_args)."""
    options, model_args, data_args = checked_arguments(host_train, argv)
    say_start_lines(options, model_args)
    return options, data_args


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
    from pathlib import Path

    if output_dir is None:
        return
    given, output = (Path(os.path.expanduser(v)).resolve() for v in (cache, output_dir))
    if given == output or output in given.parents:
        where = "is --output_dir" if given == output else f"is inside --output_dir {output_dir}"
        raise usage.UsageError(f"--vision_feature_cache {cache}: {where}, which becomes the saved model's folder; "
                               "give the cache a folder outside it (it is meant to be shared by later runs)")
    if given in output.parents:
        first = output.relative_to(given).parts[0]
        if re.fullmatch(r"[0-9a-f]{2}", first) or first == ".tmp":
            raise usage.UsageError(f"--output_dir {output_dir} is in {given / first}, a folder the feature cache "
                                   f"--vision_feature_cache {cache} writes its entries into (`<two hex digits>/`, "
                                   "`.tmp/`): give the run or the cache another folder")


# Model settings the config of a saved checkpoint records (patches.arguments.CONFIG_FIELDS and
# the host's own), as ModelArguments field -> config key: the network a checkpoint holds.
MODEL_SETTINGS = {"vision_tower": "mm_vision_tower", "mm_projector_type": "mm_projector_type", "fp_bits": "fp_bits",
                  "fp_levels": "fp_levels", "image_mode": "image_mode", "fusion_heads": "fusion_heads",
                  "fusion_dropout": "fusion_dropout", "aux_property_task": "aux_property_task",
                  "aux_properties": "aux_properties"}
# What a resumed run must keep besides: its trainable set (the optimizer state is per parameter
# group: another set failed after the model had loaded) and its tokens (start/end tokens resize
# the embeddings); the template, the tower's training and --freeze_backbone are in
# `deepmolm_run` (patches.arguments.RUN_FIELDS); --freeze_mm_mlp_adapter, a training option, is
# in TRAINING_SETTINGS.
# The property loss's weight too: the objective, not the network (a saved model may be trained
# on with another one, so it is no MODEL_SETTINGS), and a ModelArguments field the config
# records, which RESUME_KEPT (TrainingArguments, in RUN_RECORD) does not hold (was: another
# weight changed the objective partway through the run, and the config named only the new one).
RESUMED_SETTINGS = {**MODEL_SETTINGS, "tune_mm_mlp_adapter": "tune_mm_mlp_adapter",
                    "mm_use_im_start_end": "mm_use_im_start_end", "mm_use_im_patch_token": "mm_use_im_patch_token",
                    "aux_property_weight": "aux_property_weight"}
TRAINING_SETTINGS = {"freeze_mm_mlp_adapter": "freeze_mm_mlp_adapter"}
# Data settings training writes into the config that change what the model sees: the host's
# `image_aspect_ratio` (padded or stretched views) and the conformer policy (patches.molecule_data:
# another policy gives a structure file's molecule other tokens). A resumed run that switched
# them went on without a word, and the final config named only the new one.
DATA_SETTINGS = {"image_aspect_ratio": "image_aspect_ratio", "conformer_policy": "conformer_policy"}
# What a stage-1 projector (--pretrain_mm_mlp_adapter) was built with, where no tensor shape
# shows it (the heads) or the shapes would only fail later: the network settings a saved model
# is compared on (MODEL_SETTINGS) less the property head, which stage 1 does not train and
# stage 2 may add, the dropout (a training setting: stage 2 may raise it) and the image mode,
# which stage 2 may change (base -> tiles, as LLaVA-NeXT does: stage 2 trains the projector's
# newline and view-separator embeddings with it), said in a note (`ADAPTER_NOTED`).
ADAPTER_NOTED = {"image_mode": "image_mode"}
ADAPTER_SETTINGS = {name: key for name, key in MODEL_SETTINGS.items()
                    if not name.startswith("aux_") and name != "fusion_dropout" and name not in ADAPTER_NOTED}


def settings_differences(saved: dict, model_args, settings: dict) -> list:
    """`--option value (the checkpoint: saved)` for each of `settings` (field of `model_args`,
    a ModelArguments or DataArguments -> config key) that the saved config records with
    another value."""
    return [f"--{name} {getattr(model_args, name)!r} (the checkpoint: {saved[key]!r})"
            for name, key in settings.items() if key in saved and saved[key] != getattr(model_args, name)]


def run_differences(saved: dict, model_args) -> list:
    from deepmolm_plugin.patches.arguments import RUN_FIELDS

    run = saved.get("deepmolm_run") if isinstance(saved.get("deepmolm_run"), dict) else {}
    return settings_differences(run, model_args, {name: name for name in RUN_FIELDS})


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


def check_adapter_settings(model_args, options=None) -> None:
    """--pretrain_mm_mlp_adapter: the stage-1 run's config.json beside it records how its
    projector was built. A fusion projector trained with 2 heads loaded into 8 without a word
    (no tensor shape shows the heads); refused, naming the settings (ADAPTER_SETTINGS). Another
    image mode is said in a note (ADAPTER_NOTED). With `options` (the training options), a
    random tower's --seed too (random_tower_differences)."""
    adapter = getattr(model_args, "pretrain_mm_mlp_adapter", None)
    if not adapter:
        return
    folder = os.path.dirname(os.path.abspath(os.path.expanduser(adapter)))
    saved = usage.model_config(folder, "--pretrain_mm_mlp_adapter")
    if not saved or "mm_projector_type" not in saved:
        if getattr(model_args, "mm_projector_type", None) == "fusion":
            # its heads show in no tensor shape: a 2-head stage 1 loaded into 4 heads, exit 0
            raise usage.UsageError(
                f"--pretrain_mm_mlp_adapter {adapter}: no stage-1 config.json beside it, so the fusion projector's "
                "head count (which no tensor shape shows) and fingerprint settings cannot be checked against "
                "this run's; copy the stage-1 run's config.json next to the .bin")
        return  # an adapter from elsewhere: only its tensor shapes can be checked (when it loads)
    from deepmolm_plugin.encoder.tower import RANDOM_WEIGHTS

    differ = settings_differences(saved, model_args, ADAPTER_SETTINGS)
    # the tower whose features the projector learnt to map: another one's (other heads, other
    # weights) was loaded without a word
    differ += tower_differences(saved, model_args)
    # the LLM width the projector outputs: another's failed in the host's load_state_dict, a
    # traceback after the LLM had loaded
    llm = os.path.expanduser(model_args.model_name_or_path or "")
    width = (usage.model_config(llm, "--model_name_or_path") or {}).get("hidden_size") if os.path.isdir(llm) else None
    if None not in (width, saved.get("hidden_size")) and width != saved["hidden_size"]:
        differ.append(f"--model_name_or_path {model_args.model_name_or_path}, an LLM of hidden_size {width} (stage 1: "
                      f"{saved['hidden_size']}, the width its projector outputs)")
    weights = getattr(model_args, "vision_tower_weights", None)
    if None not in (weights, saved.get("vision_tower_weights")) and not same_weights(weights, saved["vision_tower_weights"]):
        differ.append(f"--vision_tower_weights {weights!r} (stage 1: {saved['vision_tower_weights']!r})")
    elif options is not None and weights == saved.get("vision_tower_weights") == RANDOM_WEIGHTS:
        differ += random_tower_differences(folder, options)
    if differ:
        raise usage.UsageError(f"--pretrain_mm_mlp_adapter {adapter} was trained with other projector settings "
                               f"(its {os.path.join(folder, 'config.json')}): {'; '.join(differ)}; give its settings")
    noted = settings_differences(saved, model_args, ADAPTER_NOTED)
    if noted and os.environ.get("RANK", "0") == "0":
        print(f"{PROG}: note: this run's {'; '.join(noted)} differs from the stage-1 run of --pretrain_mm_mlp_adapter "
              f"{adapter}: this stage trains the projector's newline and view-separator embeddings for its own image "
              "mode from where stage 1 left them", file=sys.stderr)


def random_tower_differences(folder: str, options) -> list:
    """With --vision_tower_weights random in both stages, the tower is drawn from --seed
    (seed_model_init), so a stage-1 projector trained against seed 0's tower met another
    tower under --seed 1 (was: accepted, 'random' equals 'random'). Stage 1's seed is in the
    RUN_RECORD of its output folder; without one (a run older than it, or copied without it)
    the seed cannot be compared, which a note says."""
    from pathlib import Path

    record = Path(folder) / RUN_RECORD
    try:
        then = json.loads(record.read_text(encoding="utf-8"))["settings"]["seed"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        if os.environ.get("RANK", "0") == "0":
            print(f"{PROG}: note: --vision_tower_weights random: no readable {record} records the --seed of the "
                  "stage-1 run, whose random tower the projector was trained against; this run's tower is drawn "
                  f"from --seed {options.seed}, the same tower only with stage 1's seed", file=sys.stderr)
        return []
    if then == options.seed:
        return []
    return [f"--seed {options.seed} with --vision_tower_weights random (stage 1: --seed {then}, in its {RUN_RECORD}; "
            "the seed draws the random tower, and the projector was trained against stage 1's)"]


def check_finished_run(output: str, output_dir: str, unfinished: "str | None" = None) -> None:
    """An --output_dir holding a saved model (a finished run) and no checkpoint to resume:
    the run would write over it without a word (another projector's model replaced a
    finished one, exit 0). Refused. `unfinished`: its only checkpoint, a save that was cut
    short (unfinished_save), named so the message says why there is none to resume."""
    saved = [name for name in ("mm_projector.bin", *RESUMED_WEIGHTS) if os.path.isfile(os.path.join(output, name))]
    if saved:
        cut = (f" ({os.path.basename(unfinished)} was cut short while being saved: no trainer_state.json)"
               if unfinished else "")
        raise usage.UsageError(f"--output_dir {output_dir} holds a finished run ({saved[0]}) and no checkpoint to "
                               f"resume{cut}: this run would overwrite it; give another --output_dir, or move that "
                               "run away first")


def same_weights(given, saved) -> bool:
    """Whether two --vision_tower_weights values name the same weights: 'random' only itself;
    paths as the files they are (stage 1 saved the path as typed: `ocr/` and `/abs/ocr` are
    one), and a path that does not exist here (another machine's) cannot be told apart."""
    given, saved = ([v] if isinstance(v, str) else list(v) for v in (given, saved))
    if len(given) != len(saved):
        return False
    for a, b in zip(given, saved):
        if "random" in (a, b):
            if a != b:
                return False
            continue
        pa, pb = (os.path.expanduser(str(x)) for x in (a, b))
        if os.path.exists(pa) and os.path.exists(pb) and not os.path.samefile(pa, pb):
            return False
    return True


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
    # "resuming ..." is said by say_start_lines once every check has passed and the output is
    # locked (was: here, before check_resumed_run and the other checks, so a refusal followed it)


# What a --tune_mm_mlp_adapter checkpoint lacks: the host's LLaVATrainer._save_checkpoint writes
# only config.json and mm_projector.bin for stage 1, no trainer_state.json, optimizer.pt,
# scheduler.pt or rng_state.pth, so transformers cannot resume from it.
ADAPTER_ONLY_WHY = "which holds only the projector: the host saves no optimizer, schedule or trainer state in stage 1"


def adapter_only(checkpoint) -> bool:
    """Whether a checkpoint folder is a --tune_mm_mlp_adapter one (ADAPTER_ONLY_WHY):
    mm_projector.bin and no trainer_state.json."""
    return (not os.path.isfile(os.path.join(checkpoint, "trainer_state.json"))
            and os.path.isfile(os.path.join(checkpoint, "mm_projector.bin")))


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


# The optimizer-state partitions of a DeepSpeed checkpoint, one per data-parallel process
# (zero_pp_rank_<r>_mp_rank_<m>_optim_states.pt, bf16_ in front under its bf16 optimizer).
ZERO_PARTITION = re.compile(r"zero_pp_rank_(\d+)_mp_rank_\d+_optim_states\.pt$")


def deepspeed_processes_problem(checkpoint: str) -> "str | None":
    """Why a DeepSpeed checkpoint cannot resume on this run's number of processes, or None.
    ZeRO (and DeepSpeed's bf16 optimizer) splits the optimizer state across the processes
    that saved it, one file each (ZERO_PARTITION), and DeepSpeed cannot split it anew: another
    WORLD_SIZE was its ZeRORuntimeException traceback on every rank after the model had loaded,
    although the global batch (the product check of check_resumed_run) was kept. Counted
    from the files, so a run started before RUN_RECORD recorded its processes is checked too."""
    from pathlib import Path

    folder = Path(checkpoint)
    latest = folder / "latest"  # names the global_step* folder DeepSpeed loads
    try:
        tag = latest.read_text(encoding="utf-8").strip() if latest.is_file() else ""
    except (OSError, UnicodeDecodeError):
        tag = ""
    # without `latest`, the newest save: the highest step number (was: the last name in string
    # order, global_step9 after global_step10, counting another save's files)
    numbered = [p for p in folder.glob("global_step*") if re.fullmatch(r"global_step\d+", p.name) and p.is_dir()]
    newest = sorted(numbered, key=lambda p: int(p.name[len("global_step"):]))[-1:]
    steps = [folder / tag] if tag and (folder / tag).is_dir() else newest
    ranks = {int(m.group(1)) for step in steps for f in step.glob("*optim_states.pt")
             if (m := ZERO_PARTITION.search(f.name))}
    if not ranks or len(ranks) == world_size():
        return None
    return (f"a DeepSpeed checkpoint whose optimizer state is split across the {len(ranks)} process(es) that saved it, "
            f"but this run has {world_size()} (WORLD_SIZE): DeepSpeed cannot split it anew; resume on {len(ranks)} "
            f"process(es), or start afresh in another --output_dir with --model_name_or_path {checkpoint} (its "
            "weights, a fresh optimizer and schedule)")


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


# What a resumed run cannot change and still be the run it resumes, written to --output_dir
# (RUN_RECORD) when a run starts afresh and compared when it resumes. The Trainer loads the
# checkpoint's optimizer.pt and scheduler.pt, whose learning rates, betas, epsilon and weight
# decay replace the command line's without a word (another --learning_rate was ignored, exit 0),
# and the resumed epoch skips as many batches as were trained, counted in the order that
# --data_path's records and the seeds give now, in batches of the size it has now: other
# records, another seed, or another global batch (per-device batch x accumulation x
# processes) trained some records twice and others never (a run resumed at step 2 of 4 with
# twice the batch took the first epoch as done and skipped its other half, exit 0). The
# factors may change if their product stays: 8 GPUs resumed on 4 with twice the
# accumulation skip the same samples, except under --deepspeed (deepspeed_processes_problem:
# its optimizer state is split by process) and under the samplers of ORDER_BY_FACTORS.
# (Epochs, steps and schedule may change: the Trainer applies them, which is how a finished
# run is trained for longer; patches.resume_schedule gives the first resumed step the new
# schedule's learning rate, not the old one's last.)
RUN_RECORD = "deepmolm_resume.json"
RESUME_KEPT = ("learning_rate", "mm_projector_lr", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "optim",
               "seed", "data_seed", "group_by_modality_length", "per_device_train_batch_size",
               "gradient_accumulation_steps",
               # the batches of an epoch: another value skipped the wrong ones when the epoch resumed
               "dataloader_drop_last",
               # where every record is cut (the host's tokenizer truncates at it): the resumed part
               # trained on other text than the first without a word
               "model_max_length",
               # the sampler transformers builds (Trainer._get_train_sampler: random, sequential,
               # group_by_length, batch_rebalance): was not recorded, and a resume with another
               # sampler read the resumed epoch in another order, training some records twice and
               # others never. (Not --length_column_name: transformers reads it only from a
               # datasets.Dataset, and the host's LazySupervisedDataset is a torch Dataset; was
               # compared, refusing a resume whose data order it does not change.)
               "train_sampling_strategy")
PROCESSES = "processes"  # RUN_RECORD's number of training processes (WORLD_SIZE), next to RESUME_KEPT
# compared as their product, the global batch
BATCH_FACTORS = ("per_device_train_batch_size", "gradient_accumulation_steps", PROCESSES)
# Samplers whose order depends on the factors themselves, not only their product (transformers
# 5.x): group_by_length sorts megabatches of per-device batch x accumulation, batch_rebalance
# deals batches by process and accumulation step. Under them each factor must be kept.
ORDER_BY_FACTORS = ("group_by_length", "batch_rebalance")
FACTOR_OPTIONS = {"per_device_train_batch_size": "--per_device_train_batch_size",
                  "gradient_accumulation_steps": "--gradient_accumulation_steps", PROCESSES: "WORLD_SIZE"}
# The folders the records' files are read from (images, structures) and depictions drawn into,
# recorded in RUN_RECORD and named in a note when a resume gives others: moving the data to
# another disk is legitimate, but other pictures under the same names trained the rest of the
# run on other inputs without a word (was: not recorded). Only the folders: a digest of every
# referenced file (even of its size) costs a file-system call per record at every start
# (minutes for a million records on a network file system).
DATA_FOLDERS = ("image_folder", "structure_folder", "render_folder")


def run_record(options, data_args) -> dict:
    """What RUN_RECORD holds for this command line: RESUME_KEPT, the number of processes,
    --data_path's content and the DATA_FOLDERS."""
    from deepmolm_plugin.result_files import file_sha256

    kept = {name: getattr(getattr(options, name, None), "value", getattr(options, name, None)) for name in RESUME_KEPT}
    # transformers' default --optim is adamw_torch before torch 2.8 and adamw_torch_fused from
    # it: one AdamW, whose state either loads; a resume after a torch upgrade is no other run
    kept["optim"] = {"adamw_torch_fused": "adamw_torch"}.get(kept["optim"], kept["optim"])
    kept[PROCESSES] = world_size()
    data = os.path.abspath(os.path.expanduser(data_args.data_path))
    return {"settings": kept, "data_path": data, "data_sha256": file_sha256(data), "folders": data_folders(data_args)}


def data_folders(data_args) -> dict:
    """DATA_FOLDERS as absolute paths (None: not given); the render folder as the dataset
    uses it (<data_path>.renders when not given)."""
    from deepmolm_plugin.patches.arguments import render_folder_for

    given = {name: getattr(data_args, name, None) for name in DATA_FOLDERS}
    given["render_folder"] = render_folder_for(data_args.data_path, given["render_folder"])
    return {name: os.path.abspath(os.path.expanduser(value)) if value else None for name, value in given.items()}


def moved_folders_note(saved: dict, ours: dict) -> "str | None":
    """One line naming the DATA_FOLDERS a resumed run reads from other folders than it
    started with (its RUN_RECORD's `folders`; a record without them: None)."""
    then, now = saved.get("folders"), ours["folders"]
    if not isinstance(then, dict):
        return None
    moved = [f"--{name} {now[name] or 'not given'} (the run started with {then[name] or 'none'})"
             for name in DATA_FOLDERS if name in then and then[name] != now[name]]
    if not moved:
        return None
    return (f"{PROG}: note: this resumed run reads its data from other folders than it started with: "
            f"{'; '.join(moved)}. Fine if the data only moved; if those folders hold other files under the same "
            "names, the rest of the run trains on other inputs than its first part")


def check_resumed_run(options, data_args) -> None:
    """A run that resumes (a checkpoint-<step> in --output_dir) with RESUME_KEPT settings or a
    --data_path other than those it started with (its RUN_RECORD): refused, naming them. A
    run started before RUN_RECORD existed, or by the host's own train.py, has none and is not
    checked. Other DATA_FOLDERS than it started with are a note (moved_folders_note), not a
    refusal."""
    from pathlib import Path

    output = os.path.expanduser(options.output_dir or "")
    record_path = os.path.join(output, RUN_RECORD)
    if not (os.path.isfile(record_path) and resumes(output)):
        return
    unreadable = (f"--output_dir {options.output_dir}: its {RUN_RECORD} (the settings the run started with) cannot "
                  "be read ({}); move it away to resume without this check")
    try:
        saved = json.loads(Path(record_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise usage.UsageError(unreadable.format(e)) from e
    if not (isinstance(saved, dict) and isinstance(saved.get("settings"), dict)
            and all(isinstance(saved.get(k), str) for k in ("data_path", "data_sha256"))):
        raise usage.UsageError(unreadable.format("not the record this launcher writes"))
    ours = run_record(options, data_args)
    differ = [f"--{name} {value!r} (the run: {saved['settings'][name]!r})" for name, value in ours["settings"].items()
              if name not in BATCH_FACTORS and name in saved["settings"] and saved["settings"][name] != value]
    differ += batch_differences(ours["settings"], saved["settings"])
    if ours["data_sha256"] != saved["data_sha256"]:
        edited = ", since edited" if saved["data_path"] == ours["data_path"] else ""
        differ.append(f"--data_path {data_args.data_path} is not the file it started with ({saved['data_path']}{edited})")
    if differ:
        raise usage.UsageError(f"--output_dir {options.output_dir} holds a run that this command resumes, but with "
                               f"other settings than it started with: {'; '.join(differ)}. A resumed run keeps its "
                               "optimizer, schedule and data order: give the run's own, or start afresh in another "
                               "--output_dir (--model_name_or_path <a checkpoint> to go on from its weights)")
    for note in (unrecorded_settings_note(options.output_dir, saved, ours), moved_folders_note(saved, ours)):
        if note and os.environ.get("RANK", "0") == "0":  # said once, not by every rank
            print(note, file=sys.stderr)


def batch_differences(now: dict, then: dict) -> list:
    """How the batches of this command differ from those the run started with (RUN_RECORD
    settings): the global batch (BATCH_FACTORS' product), or, under a sampler of
    ORDER_BY_FACTORS, each factor (was: the product only, and group_by_length resumed with the
    factors swapped read other records than the run would have). A record without a factor
    (an older launcher's) is not compared."""
    if not all(name in then for name in BATCH_FACTORS):
        return []
    strategy = now.get("train_sampling_strategy")
    if strategy in ORDER_BY_FACTORS:
        return [f"{FACTOR_OPTIONS[name]} {now[name]} (the run: {then[name]}; --train_sampling_strategy {strategy} "
                "orders the records by each factor of the global batch, not only by their product)"
                for name in BATCH_FACTORS if now[name] != then[name]]
    ours, theirs = ([settings[name] for name in BATCH_FACTORS] for settings in (now, then))
    if math.prod(ours) == math.prod(theirs):
        return []
    shown = " x ".join(f"{FACTOR_OPTIONS[name]} {v}" for name, v in zip(BATCH_FACTORS, ours))
    return [f"a global batch of {math.prod(ours)} ({shown}; the run: {math.prod(theirs)}, "
            f"{' x '.join(map(str, theirs))})"]


def unrecorded_settings_note(output_dir: str, saved: dict, ours: dict) -> "str | None":
    """One line naming the RESUME_KEPT settings a RUN_RECORD written by an older launcher does
    not hold (--train_sampling_strategy before it was recorded):
    they cannot be compared, and the resume takes it that the run started with the values
    given now (refusing would stop every run started before them from resuming)."""
    missing = [name for name in RESUME_KEPT if name not in saved["settings"]]
    if not missing:
        return None
    shown = ", ".join(f"--{name} {ours['settings'][name]!r}" for name in missing)
    return (f"{PROG}: note: --output_dir {output_dir}: its {RUN_RECORD} was written before the launcher recorded "
            f"{', '.join('--' + name for name in missing)}, so {'they are' if len(missing) > 1 else 'it is'} not "
            "compared: this resume takes it that the "
            f"run started with the values given now ({shown}); if it did not, its records are read in another "
            "order from here on")


def saved_state(folder: str) -> "dict | None":
    """`folder`'s trainer_state.json as an object holding an integer global_step, else None
    (none there, or not such a file: a resumed checkpoint's is checked by
    checkpoint_files_problem)."""
    try:
        with open(os.path.join(folder, "trainer_state.json"), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(state, dict) or isinstance(state.get("global_step"), bool) or not isinstance(
            state.get("global_step"), int):
        return None
    return state


def run_end(options) -> str:
    """The end this command sets, in its options' words."""
    return (f"--max_steps {options.max_steps}" if options.max_steps > 0
            else f"--num_train_epochs {options.num_train_epochs:g}")


def reached_end(state: dict, options) -> bool:
    """Whether a Trainer state is at or past the end this command sets: its step against
    --max_steps when that is > 0 (the Trainer's rule), else its epoch (the Trainer's own
    count, fractions of an epoch included) against --num_train_epochs, so no step count per
    epoch is worked out here."""
    if options.max_steps > 0:
        return state["global_step"] >= options.max_steps
    epoch = state.get("epoch")
    return isinstance(epoch, (int, float)) and epoch >= options.num_train_epochs - 1e-6


def finished_final_save(options) -> "str | None":
    """finished_run_line's line when --output_dir holds the final save of a run at or past
    the end this command sets (its trainer_state.json and model), else None; never refuses."""
    output = os.path.expanduser(options.output_dir or "")
    final = saved_state(output)
    saved = ("mm_projector.bin", *RESUMED_WEIGHTS)  # as check_finished_run tells a saved model
    model = next((name for name in saved if os.path.isfile(os.path.join(output, name))), None)
    if final is None or model is None or not reached_end(final, options):
        return None
    return (f"{PROG}: --output_dir {options.output_dir} holds a finished run: its final model ({model}) was saved "
            f"at step {final['global_step']}, at or past the end this command sets ({run_end(options)}); nothing "
            "to train, nothing changed (a larger --max_steps or --num_train_epochs trains it on)")


def finished_run_line(options) -> "str | None":
    """For a command whose --output_dir already holds the end of its run (the rerun of a
    finished job from a queue): the line saying so, and main exits 0 changing nothing. Was:
    the host resumed the last checkpoint and trained one step past --max_steps at learning
    rate 0, wrote checkpoint-N+1 and replaced trainer_state.json's train_loss with that
    step's. Finished: the final model saved (the host writes trainer_state.json into
    --output_dir, then the model) at or past the end. A last checkpoint at or past the end
    without that final save (the run stopped while saving it) is refused: the step past the
    end would be trained again. Called once the resume checks have passed."""
    output = os.path.expanduser(options.output_dir or "")
    checkpoint = resumed_checkpoint(output) if resumes(output) else None
    if checkpoint is None:
        return None
    line = finished_final_save(options)
    if line:
        return line
    state = saved_state(checkpoint)
    if state is not None and reached_end(state, options):
        name = os.path.basename(checkpoint)
        raise usage.UsageError(f"--output_dir {options.output_dir}: {name} is at step {state['global_step']}, at or "
                               f"past the end this command sets ({run_end(options)}), but no final model was saved in "
                               "--output_dir (the run stopped during its last save): the host would train a step past "
                               f"the end; use {name} as the model, or give a larger --max_steps or --num_train_epochs "
                               "to train on")
    return None


def resumes(output: str) -> bool:
    """Whether the host resumes a run from `output` (it does when anything there matches
    `checkpoint-*`, llava/train/train.py) once the launcher has set aside a last checkpoint
    whose save was cut short (`unfinished_save`): that one is no checkpoint to resume. Every
    rank answers alike whether or not rank 0 has renamed it yet (set_aside_unfinished_save)."""
    return bool(host_checkpoints(output))


def host_checkpoints(output: str) -> list:
    """The `checkpoint-*` entries of `output` (the host's glob) less a last save that was cut
    short (`unfinished_save`, set aside before the host starts): what the host sees."""
    from pathlib import Path

    if not os.path.isdir(output):
        return []
    unfinished = unfinished_save(output)
    skipped = os.path.basename(unfinished) if unfinished else None
    return sorted(p for p in Path(output).glob("checkpoint-*") if p.name != skipped)


# transformers' rule for the folders Trainer.train(resume_from_checkpoint=True) chooses from
# (trainer_utils.get_last_checkpoint: the highest step wins).
STEP_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# What a save that was cut short is renamed to: a name neither the host's `checkpoint-*` glob
# nor STEP_CHECKPOINT matches, so the rerun resumes the checkpoint before it, and
# transformers' rotation (--save_total_limit, which globs `checkpoint-*`) never deletes it.
UNFINISHED_PREFIX = "unfinished-"


def last_step_checkpoint(output: str, skip: "str | None" = None) -> "str | None":
    """The `checkpoint-<step>` folder of `output` that transformers resumes (the highest
    step), leaving out the folder named `skip`; None when there is none."""
    try:
        names = os.listdir(output)
    except (FileNotFoundError, NotADirectoryError):
        return None
    found = [n for n in names if STEP_CHECKPOINT.match(n) and n != skip and os.path.isdir(os.path.join(output, n))]
    if not found:
        return None
    return os.path.join(output, max(found, key=lambda n: int(STEP_CHECKPOINT.match(n).group(1))))


def unfinished_save(output: str) -> "str | None":
    """The last `checkpoint-<step>` of `output` when the Trainer's save of it was cut short
    (Ctrl-C, SIGTERM from a scheduler, SIGKILL, a lost node), else None. The Trainer writes
    trainer_state.json last, after the weights, tokenizer, optimizer, schedule and RNG state
    (DeepSpeed's global_step*/ too), so a folder without it never finished saving and holds
    nothing the run can go on from. A folder with mm_projector.bin and no trainer_state.json
    is no cut save but a --tune_mm_mlp_adapter checkpoint (the host saves no Trainer state
    for those): setting it aside would only expose the next one alike, so it stays refused
    (check_resumed_settings). A trainer_state.json that is there but damaged is refused too:
    it cannot be told from a damaged copy of a finished save."""
    last = last_step_checkpoint(output)
    if last is None:
        return None
    # lexists: rank 0 may rename the folder while another rank looks (resumes); a folder
    # gone from under us reads as set aside, which is what it is then
    if any(os.path.lexists(os.path.join(last, name)) for name in ("trainer_state.json", "mm_projector.bin")):
        return None
    return last


def resumed_checkpoint(output: str) -> "str | None":
    """The `checkpoint-<step>` the host resumes once an unfinished last save is set aside
    (unfinished_save), None when no such folder is left (the run then starts afresh)."""
    unfinished = unfinished_save(output)
    return last_step_checkpoint(output, skip=os.path.basename(unfinished) if unfinished else None)


def aside_name(checkpoint: str) -> str:
    """A free name beside `checkpoint` to set it aside under: unfinished-checkpoint-N, or
    unfinished-checkpoint-N.2, .3, ... when an earlier cut save of the same step was set
    aside already (it is the user's to inspect, never overwritten)."""
    base = os.path.join(os.path.dirname(checkpoint), UNFINISHED_PREFIX + os.path.basename(checkpoint))
    target, n = base, 1
    while os.path.lexists(target):
        n += 1
        target = f"{base}.{n}"
    return target


# How long a rank other than 0 waits for rank 0 to set a cut save aside. Rank 0 runs the same
# checks on the same files and renames right after them, so the wait is short; the bound only
# turns a rank 0 that never gets there (and a launcher that did not stop the others) into a
# message instead of a hang.
SET_ASIDE_WAIT_S = 600


def set_aside_unfinished_save(output_dir: str) -> "str | None":
    """Rename a last checkpoint whose save was cut short (unfinished_save) out of the host's
    way, saying so in one line (and what is resumed instead), after every up-front check has
    passed (a refused command leaves --output_dir as it was). It could not resume (the rerun of an interrupted or
    requeued job was refused, "move it away"), and the checkpoint before it is what the run
    had finished; the folder is kept, under a name the host does not resume (aside_name).

    Under torchrun / deepspeed every rank runs the launcher's checks at once, before any
    process group exists, so only rank 0 renames: two ranks renaming one folder would race
    for the new name. The other ranks' checks already treat the folder as set aside
    (resumes, resumed_checkpoint), so they agree with rank 0 whether or not the rename has
    happened yet; and here they wait until it has, so that the host on every rank (its
    `checkpoint-*` glob, transformers' choice of the last checkpoint) sees the same folders:
    nothing else orders them before a rank resumes, which it may do before its first
    collective call.

    Returns the folder set aside (by this rank or rank 0), None when there was none (was:
    nothing; say_start_lines then leaves "resuming" to this function's own line)."""
    import time

    output = os.path.expanduser(output_dir or "")
    unfinished = unfinished_save(output)
    if unfinished is None:
        return None
    if os.environ.get("RANK", "0") != "0":
        deadline = time.monotonic() + SET_ASIDE_WAIT_S
        # until rank 0 has renamed it, or it is no cut save after all (a live run's save, which
        # finished: that run holds the lock, and this launch's rank 0 was refused)
        while os.path.lexists(unfinished) and unfinished_save(output) == unfinished:
            if time.monotonic() > deadline:
                raise usage.UsageError(f"--output_dir {output_dir}: rank 0 did not set aside {unfinished} (a save that "
                                       f"was cut short) within {SET_ASIDE_WAIT_S} s; did rank 0 stop?")
            time.sleep(0.2)
        return unfinished
    target = aside_name(unfinished)
    try:
        os.rename(unfinished, target)
    except OSError as e:
        raise usage.UsageError(f"--output_dir {output_dir}: {unfinished} was cut short while being saved (no "
                               f"trainer_state.json) and cannot be resumed, and setting it aside as {target} "
                               f"failed ({e}); move it away yourself") from e
    resumed = resumed_checkpoint(output)
    then = (f"resuming {resumed} (the host resumes the last checkpoint of --output_dir)" if resumed else
            "no finished checkpoint is left, so the run starts afresh")
    print(f"{PROG}: {unfinished} was cut short while being saved (no trainer_state.json, which the Trainer writes "
          f"last): set aside as {target}; {then}", file=sys.stderr)
    return unfinished


def write_run_record(options, data_args) -> None:
    """RUN_RECORD for a run that starts afresh (rank 0; a resumed run keeps the one it started
    with)."""
    from deepmolm_plugin.result_files import write_atomic

    output = os.path.expanduser(options.output_dir or "")
    if os.environ.get("RANK", "0") != "0" or resumes(output):
        return
    os.makedirs(output, exist_ok=True)
    write_atomic(os.path.join(output, RUN_RECORD), json.dumps(run_record(options, data_args), indent=1) + "\n")


# The language model's own shape, which a resumed checkpoint must share with
# --model_name_or_path: another size failed after loading ("parameter group that doesn't match
# the size of optimizer's group"), and another tokenizer of the same size resumed without a word.
# (Not vocab_size: the host resizes the embeddings for the tokens it adds, --mm_use_im_start_end;
# the tokenizer comparison covers the vocabulary.)
LLM_FIELDS = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "num_key_value_heads")


def llm_differences(model_args, checkpoint: str) -> list:
    """How the language model of --model_name_or_path differs from the one `checkpoint` was
    trained from: LLM_FIELDS of their config.json, and their tokenizer.json."""
    path = os.path.expanduser(model_args.model_name_or_path or "")
    if not os.path.isdir(path):
        return []
    ours = usage.model_config(path, "--model_name_or_path") or {}
    theirs = usage.model_config(checkpoint, "the resumed checkpoint") or {}
    differ = [f"{k} {ours[k]!r} (the checkpoint: {theirs[k]!r})" for k in LLM_FIELDS
              if k in ours and k in theirs and ours[k] != theirs[k]]
    moved = tokens_moved(os.path.join(path, "tokenizer.json"), os.path.join(checkpoint, "tokenizer.json"))
    if moved:
        differ.append(f"its tokenizer gives {moved} (the checkpoint's embeddings were learnt with the other one)")
    return differ


def tokens_moved(base: str, saved: str) -> "str | None":
    """How the tokenizer `base` (--model_name_or_path's) differs from `saved` (a checkpoint's),
    or None: every token of it must keep its id there. Compared by vocabulary, not bytes:
    the host saves the tokenizer with its added tokens and in another serialisation."""
    if not (os.path.isfile(base) and os.path.isfile(saved)):
        return None
    ours, theirs = (tokenizer_vocab(p) for p in (base, saved))
    moved = [token for token, index in ours.items() if theirs.get(token) != index]
    return f"{len(moved)} of its {len(ours)} tokens other ids (e.g. {moved[0]!r})" if moved else None


def tokenizer_vocab(path: str) -> dict:
    """The vocabulary (token -> id, added tokens too) of the tokenizer.json at `path`. One
    that cannot be read is a UsageError naming it: it was folded into "--model_name_or_path
    is another language model", also when the resumed checkpoint's copy was the damaged one."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(path).get_vocab(with_added_tokens=True)
    except Exception as e:  # noqa: BLE001 - the tokenizers library raises its own Exception type
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise usage.UsageError(f"{path}: not a readable tokenizer.json ({reason}), so the resumed checkpoint's "
                               "vocabulary cannot be compared with --model_name_or_path's; restore the file (a "
                               "damaged copy?)") from e


def model_only(output: str) -> bool:
    """Every checkpoint of `output` was saved without optimizer.pt and scheduler.pt
    (--save_only_model): "move the last one away" would not help."""
    checkpoints = [p for p in host_checkpoints(output) if p.is_dir() and not by_deepspeed(p)]
    return bool(checkpoints) and all(not (p / "optimizer.pt").exists() and not (p / "scheduler.pt").exists()
                                     and (p / "trainer_state.json").is_file() for p in checkpoints)


# What transformers' Trainer reads back when it resumes (without DeepSpeed, whose engine
# keeps and checks its own files under global_step*/): the model, the optimizer and its
# learning-rate schedule.
RESUMED_WEIGHTS = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                   "pytorch_model.bin")
RESUMED_STATE = ("optimizer.pt", "scheduler.pt")


def checkpoint_kind_problem(checkpoint: str, deepspeed) -> "str | None":
    """Why `checkpoint` cannot resume under this run's --deepspeed (None or its config file),
    or None. DeepSpeed's engine keeps the optimizer and schedule under global_step*/ (with
    `latest` naming the step), the Trainer alone in optimizer.pt: a DeepSpeed checkpoint
    resumed without --deepspeed went on with a fresh optimizer and schedule, exit 0, and a
    plain one with --deepspeed was "Can't find a valid checkpoint", a traceback after the
    model had loaded."""
    from pathlib import Path

    saved_by_deepspeed = by_deepspeed(Path(checkpoint))
    if saved_by_deepspeed and not deepspeed:
        return ("a DeepSpeed checkpoint (its optimizer and schedule under global_step*/), but this run has no "
                "--deepspeed: it would go on with a fresh optimizer and learning-rate schedule; give the run's "
                "--deepspeed config")
    if deepspeed and not saved_by_deepspeed:
        return (f"saved without DeepSpeed (no global_step*/ or latest), but this run gives --deepspeed {deepspeed}, "
                "whose engine cannot load it; leave --deepspeed out, as the run started")
    return None


def by_deepspeed(folder) -> bool:
    """Whether the checkpoint folder (a Path) was saved by DeepSpeed's engine: its state under
    global_step*/, `latest` naming the step."""
    return (folder / "latest").is_file() or any(p.is_dir() for p in folder.glob("global_step*"))


def checkpoint_files_problem(checkpoint: str) -> "str | None":
    """What keeps a `checkpoint-N` from resuming the run it was saved by, or None: a
    trainer_state.json that is not JSON or not the Trainer's state, model weights missing or unreadable, the optimizer
    or schedule missing or unreadable. Each was a traceback after the model had loaded
    (JSONDecodeError, SafetensorError, a zip error), or, for a missing optimizer.pt or
    scheduler.pt, a run that went on with a fresh optimizer and schedule, exit 0."""
    import json
    import zipfile
    from pathlib import Path

    from deepmolm_plugin.tensor_files import CheckpointError, open_checkpoint

    folder = Path(checkpoint)
    if by_deepspeed(folder):  # its engine loads its own files
        return None
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"trainer_state.json is not readable JSON ({e})"
    if not isinstance(state, dict):
        return "trainer_state.json is not a JSON object"
    problem = trainer_state_problem(state)
    if problem:
        return f"trainer_state.json {problem}"
    weights = next((folder / name for name in RESUMED_WEIGHTS if (folder / name).is_file()), None)
    if weights is None:
        return f"model weights are missing (none of {', '.join(RESUMED_WEIGHTS)})"
    if weights.name == "pytorch_model.bin" and not zipfile.is_zipfile(weights):
        return f"{weights.name} is not a readable PyTorch file (truncated?)"
    if weights.name.startswith("model.safetensors"):
        try:  # headers only (a file cut short fails here); the tensors are read when the host resumes
            open_checkpoint(folder if weights.name.endswith(".index.json") else weights)
        except (CheckpointError, OSError) as e:
            return f"model weights cannot be read: {e}"
    for name in RESUMED_STATE:
        if not (folder / name).is_file():
            return f"{name} is missing: the run would go on with a fresh optimizer and learning-rate schedule"
        if not zipfile.is_zipfile(folder / name):
            return f"{name} is not a readable PyTorch file (truncated?)"
    for path in sorted(folder.glob("rng_state*.pth")) + [p for p in [folder / "scaler.pt"] if p.is_file()]:
        if not zipfile.is_zipfile(path):  # read when the host resumes: a zip error after the model had loaded
            return f"{path.name} is not a readable PyTorch file (truncated?)"
    return None


def trainer_state_problem(state: dict) -> "str | None":
    """Why transformers cannot resume from this trainer_state.json object, or None. It
    builds a TrainerState of the fields (another key: a TypeError), then divides by
    `train_batch_size` and `global_step` (`{}` or a step of "x": a TypeError), all after the
    model had loaded."""
    from transformers import TrainerState

    try:
        TrainerState(**state)
    except TypeError as e:
        return f"is not the Trainer's state ({e})"
    for name in ("global_step", "train_batch_size"):
        value = state.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "global_step" else 1):
            return f"holds {name} {value!r}, not a {'step count' if name == 'global_step' else 'batch size'}"
    if not isinstance(state.get("log_history", []), list):
        return f"holds log_history {type(state['log_history']).__name__}, not a list"
    return None


def tower_differences(saved: dict, model_args) -> list:
    """The network fields of --deepencoder_config that differ from those a checkpoint's
    config.json saved (heads, norm eps, windows: no tensor shape shows them)."""
    from deepmolm_plugin.patches.registry import TOWER_NAME

    if not (saved.get("mm_vision_tower") == TOWER_NAME == getattr(model_args, "vision_tower", None)
            and isinstance(saved.get("deepencoder_config"), dict)):
        return []
    from deepmolm_plugin.encoder.checkpoint import architecture
    from deepmolm_plugin.encoder.config import DeepEncoderConfig
    from deepmolm_plugin.encoder.tower import config_from_args

    ours, theirs = architecture(config_from_args(model_args)), architecture(DeepEncoderConfig.from_dict(saved["deepencoder_config"]))
    return [f"--deepencoder_config {k}={ours[k]!r} (the checkpoint: {theirs[k]!r})" for k in ours if ours[k] != theirs[k]]


def check_template(argv) -> None:
    """A Qwen2-family model trains with `--version qwen2` (ChatML, what chat and eval use with
    --conv-mode auto) or `plain` (stage-1 captions). The host's other templates, among them
    `v0` (the default, which trains with vicuna_v1) and unknown names, miscount Qwen2 tokens:
    the host then masks every label of every record, printing only "WARNING: tokenization
    mismatch ... (ignored)", and the run learns nothing (loss 0)."""
    from deepmolm_plugin.model.loading import QWEN2_TYPES, QWEN2_VL_TYPES, model_type_of
    from deepmolm_plugin.patches.conversation_qwen2 import QWEN2_MODES  # the templates whose preprocess fits

    version = option_value(argv, "version") or "v0"  # the host's ModelArguments default
    model = option_value(argv, "model_name_or_path") or "facebook/opt-125m"
    if version in QWEN2_MODES:
        return
    try:
        model_type = model_type_of(model)
    except (OSError, ValueError) as e:
        raise usage.UsageError(f"--model_name_or_path {model}: {e}") from e
    if model_type in QWEN2_TYPES + QWEN2_VL_TYPES:
        raise usage.UsageError(f"--version {version} does not fit the {model_type!r} model's tokenizer (the host would "
                               "mask every label: 'tokenization mismatch', nothing learned); use --version qwen2, or "
                               "plain for stage-1 captions")


def resolve_model_path_argument(argv):
    from deepmolm_plugin.model.loading import resolve_llm_path

    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--model_name_or_path" and i + 1 < len(argv):
            argv[i + 1] = resolve_llm_path(argv[i + 1])
        elif arg.startswith("--model_name_or_path="):
            argv[i] = "--model_name_or_path=" + resolve_llm_path(arg.split("=", 1)[1])
    return argv


def gives_option(argv, name: str) -> bool:
    """Whether `--name` is on the command line in any spelling (`--na-me`, `--name=V`, or
    bare, as HfArgumentParser takes a boolean)."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    return any(arg.partition("=")[0] in spellings for arg in argv)


def has_accelerator() -> bool:
    """Whether torch sees a GPU or other accelerator: the one test of the launcher's CPU rules
    (check_half_precision, cpu_bf16_argv, prepare_cpu_distributed; was: torch.cuda in the last,
    so the two could disagree on an XPU or MPS machine)."""
    import torch

    return torch.accelerator.is_available()


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


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    asks_help = any(a in ("-h", "--help") for a in argv)
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
    output_dir = None if asks_help else options.output_dir
    from deepmolm_plugin.encoder.tower import TowerWeightsError
    from deepmolm_plugin.patches.nonfinite_training import NonFiniteTraining
    from deepmolm_plugin.projector.weights import ProjectorWeightsError

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
    previous_sigterm = stop_on_sigterm()
    try:
        if not asks_help:
            set_aside = set_aside_unfinished_save(output_dir)
            # every refusal is behind us (checks, lock, set-aside): "resuming" is now true
            say_start_lines(options, model_args, set_aside)
            say_resume_notes(options)
            write_run_record(options, data_args)
        # cpu_bf16_argv first: it reads the user's --use_cpu, not the one prepare_cpu_distributed adds
        argv = prepare_cpu_distributed(argv if asks_help else cpu_bf16_argv(argv, options))
        sys.argv = [sys.argv[0]] + argv
        seed_model_init(argv)
        from deepmolm_plugin.encoder.feature_cache import opened_caches

        with opened_caches() as caches:  # the host builds the tower (and opens its cache) inside train()
            host_train.train(attn_implementation="sdpa")
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
    finally:  # for in-process callers (tests); None: a handler not set from Python, which cannot be put back
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        if lock is not None:
            lock.release()
    finish_distributed()


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


def stop_on_sigterm():
    """From now on SIGTERM stops training as Ctrl-C does (the KeyboardInterrupt path of
    main: one line, exit 130); returns the handler it replaces. SIGTERM (a SLURM requeue or
    time limit, `kill`, torchrun / the deepspeed launcher passing theirs on to each rank,
    which each take this path) took the default action: exit 143 without a word, and a
    checkpoint cut short mid-save with nothing saying so. Not before the checks: a SIGTERM
    during them has changed nothing on disk.

    The host's DataLoader workers are other processes, with torch's own handlers. A SIGTERM
    to the whole process group (SLURM signals every process of the job step, torchrun its
    workers' groups) ends them too, and torch's SIGCHLD handler here then raised "DataLoader
    worker (pid N) is killed by signal: Terminated", a traceback after the one line. This
    process is stopping: their deaths are no news, so SIGCHLD gets a handler that does
    nothing first (Python runs the SIGTERM handler before a SIGCHLD that arrived with it:
    lower number first). A Python handler, not SIG_DFL: a SIGCHLD already pending when its
    handler became SIG_DFL was "OSError: Signal 17 ignored due to race condition", with a
    traceback."""
    return usage.sigterm_as_interrupt(before=lambda: signal.signal(signal.SIGCHLD, lambda signum, frame: None))


def interrupted_message(output_dir: "str | None") -> str:
    """What a stopped run (Ctrl-C, SIGTERM) left and what the same command does with it. When
    the stop cut a checkpoint's save short, "resumes from the last" was untrue: the rerun
    was refused for that half-written checkpoint; it now sets it aside
    (set_aside_unfinished_save), which this says."""
    kept = "interrupted; the checkpoint-<step> folders saved so far are kept: the same command resumes from the last"
    output = os.path.expanduser(output_dir or "")
    try:
        unfinished = unfinished_save(output)
        resumed = resumed_checkpoint(output)
    except OSError:  # the folder cannot be listed now: say what holds in general
        return kept
    if unfinished is None:
        if resumed is None:  # nothing saved yet (or --save_strategy no, as the demo trains): "kept ...
            # resumes from the last" was untrue, and the demo then said it starts over
            return "interrupted before any checkpoint-<step> was saved: the same command starts afresh"
        if adapter_only(resumed):  # stage 1: "resumes from the last" was untrue, the rerun was refused
            return ("interrupted; the checkpoint-<step> folders saved so far are kept, but they hold only the "
                    "projector (--tune_mm_mlp_adapter: the host saves no optimizer, schedule or trainer state in "
                    "stage 1), so "
                    "the same command cannot resume them: start afresh in another --output_dir, or go on from the "
                    f"last one's projector with --pretrain_mm_mlp_adapter {os.path.join(resumed, 'mm_projector.bin')}")
        return kept
    name = os.path.basename(unfinished)
    then = (f"resumes from {os.path.basename(resumed)}, the last checkpoint saved in full" if resumed else
            "starts afresh (no checkpoint was saved in full)")
    return (f"interrupted while {name} was being saved: it was cut short (no trainer_state.json); the checkpoints "
            f"saved before it are kept, and the same command sets {name} aside (as "
            f"{os.path.basename(aside_name(unfinished))}) and "
            f"{then}")


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


def seed_model_init(argv) -> None:
    """Seed every RNG with `--seed` before the host builds the model. The host's train()
    creates the vision tower and projector (random weights) before its Trainer calls
    `set_seed`, so without this two runs with one seed start from different weights."""
    from transformers import set_seed

    seed = option_value(argv, "seed")
    set_seed(int(seed) if seed is not None else 42)  # 42: TrainingArguments' default seed

