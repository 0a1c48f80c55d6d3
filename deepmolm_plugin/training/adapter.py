"""--pretrain_mm_mlp_adapter, the stage-1 projector a run starts from: the file's tensors
and names against this run's projector, and the stage-1 run's config.json beside it (the
projector's settings, its tower, the LLM width, a random tower's --seed).

Separate because a stage-1 adapter is read twice, by its file before anything heavy loads
(check_inputs) and by its settings once the argument classes exist (checked_arguments)."""

from __future__ import annotations

import json
import os
import sys

from deepmolm_plugin import usage
from deepmolm_plugin.training.options import PROG, option_value
from deepmolm_plugin.training.run_record import RUN_RECORD
from deepmolm_plugin.training.saved_settings import (MODEL_SETTINGS, same_weights, settings_differences,
                                                     tower_differences)


def check_adapter_file(argv) -> None:
    """`--pretrain_mm_mlp_adapter`: what the host torch.loads into the projector once the LLM
    has loaded must be a stage-1 `mm_projector.bin`: a readable PyTorch file (a cut one was
    PytorchStreamReader's traceback), holding a dict of tensors (a pickled list was an
    AttributeError) named `...mm_projector.<name>` with the names of the projector this run
    builds (renamed or missing tensors were a ValueError traceback, after the LLM had loaded).
    Checked before its config.json is (check_adapter_settings), which a text file
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


# What a stage-1 projector (--pretrain_mm_mlp_adapter) was built with, where no tensor shape
# shows it (the heads) or the shapes would only fail later: the network settings a saved model
# is compared on (MODEL_SETTINGS) less the property head, which stage 1 does not train and
# stage 2 may add, the dropout (a training setting: stage 2 may raise it) and the image mode,
# which stage 2 may change (base -> tiles, as LLaVA-NeXT does: stage 2 trains the projector's
# newline and view-separator embeddings with it), said in a note (`ADAPTER_NOTED`).
ADAPTER_NOTED = {"image_mode": "image_mode"}
ADAPTER_SETTINGS = {name: key for name, key in MODEL_SETTINGS.items()
                    if not name.startswith("aux_") and name != "fusion_dropout" and name not in ADAPTER_NOTED}


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
