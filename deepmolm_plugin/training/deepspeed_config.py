"""--deepspeed: the config file read as DeepSpeed and transformers will read it (a JSON
object, a ZeRO stage 0-3, weights gathered at a ZeRO-3 save) and its explicit values
against the command line's.

Separate because it is one file with its own rules, checked from argv (check_inputs) and
again against the parsed options (checked_arguments)."""

from __future__ import annotations

import argparse
import json

from deepmolm_plugin import usage
from deepmolm_plugin.training.distributed import world_size


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
