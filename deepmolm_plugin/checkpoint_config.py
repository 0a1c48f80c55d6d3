"""The kinds of a saved model's config.json fields, checked before the model loads.

config.json is a text file people edit. A value of the wrong kind was taken as it was and
failed as a traceback, most often after the model had loaded, at the first question (model_vqa
then stopped the whole batch): tokenizer_model_max_length "256" (the prompt-length check
compared an int with a str) or 256.0 (the host slices prompts with it), fp_bits "4096",
image_aspect_ratio "anyres" (the host's process_images needs image_grid_pinpoints, which
DeepMoLM configs lack), mm_projector_type 5 and mm_vision_tower 5 (the host's builders match
them as strings), model_type 5; aux_property_task "kflm2" without aux_properties (an
AttributeError traceback while the model was built) or with "MW,LogP" (split into 7 names).

`check_config_fields` is the one rule: the chat CLI, model_vqa and the GUI call it through
`cli.checkpoint_depiction` before anything heavy loads, and the checkpoint loader
(`model.loading.load_pretrained_model`) calls it too, for every other way in. Its error is
one line naming `<folder>/config.json`, the field and its value.

(Its own module: `usage` holds option and path checks for every launcher, `cli` is the chat's
entry point, which the loader must not import, and importing `deepmolm_plugin.model` loads
torch and the host, which this check runs before.)
"""

from __future__ import annotations

import os
from typing import Mapping

# Host and DeepMoLM fields read as integers (the host slices prompts with
# tokenizer_model_max_length; the builders size layers with the others). Absent or null: the
# reader's default.
INTEGER_FIELDS = ("tokenizer_model_max_length", "vocab_size", "hidden_size", "intermediate_size",
                  "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                  "mm_hidden_size", "fusion_heads")
# Read as strings (matched, compared, or `.startswith` by the host's builders).
STRING_FIELDS = ("mm_projector_type", "mm_vision_tower", "image_mode", "mm_patch_merge_type",
                 "mm_vision_select_feature")
# Read as flags: the string "false" is true to the host's `if`.
BOOLEAN_FIELDS = ("mm_use_im_start_end", "mm_use_im_patch_token")
# The optional head a model carries (`model.heads.build_head`: a name, or absent/null for none),
# and the property names its outputs are, in training's order (`--aux_properties`, saved as a list).
HEAD_TASK_FIELD, HEAD_NAMES_FIELD = "aux_property_task", "aux_properties"
# The host's process_images: 'pad' squares the image on its mean colour, 'anyres' tiles it on
# image_grid_pinpoints, anything else (its own default, None, and 'square') hands the image to
# the processor as it is.
ANYRES = "anyres"


class ConfigFieldError(ValueError):
    """A config.json field of the wrong kind: "<folder>/config.json: <field> is <value>, ..."."""


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def property_names_problem(names) -> "str | None":
    """Why `names` (config.json's aux_properties) cannot be the property head's outputs, or
    None: training saves `--aux_properties` as a list of distinct names, one output each, in
    order. A string was split into its characters ("MW,LogP": 7 outputs), and the refusal
    then spoke of "checkpoint [2] vs model [7]"."""
    if not isinstance(names, (list, tuple)):  # (JSON gives lists; a config built in Python may hold a tuple)
        return "not a list of property names (training saves --aux_properties as one, e.g. [\"MW\", \"LogP\"])"
    if not names:
        return "an empty list: the property head predicts at least one property"
    bad = [name for name in names if not isinstance(name, str) or not name.strip()]
    if bad:
        return f"not a list of property names: {bad[0]!r} is not a non-empty string"
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        return f"names {', '.join(map(repr, twice))} more than once: each name is one of the property head's outputs"
    return None


def check_config_fields(config: Mapping, folder: "str | os.PathLike") -> None:
    """ConfigFieldError for the first field of `config` (the dict in `folder`'s config.json)
    that the host or DeepMoLM cannot read as it is."""
    from .molecule_fp import FingerprintSettings
    from .patches.arguments import ASPECT_RATIOS
    from .patches.registry import TOWER_NAME

    where = os.path.join(os.fspath(folder), "config.json")

    def refuse(name: str, why: str):
        raise ConfigFieldError(f"{where}: {name} is {config.get(name)!r} ({_kind(config.get(name))}), {why}")

    # (A config.json without model_type is transformers' to refuse: `model.loading.read_config`
    # says so in one line before the model loads.)
    if "model_type" in config and not (isinstance(config["model_type"], str) and config["model_type"]):
        refuse("model_type", "not a model type name (a saved DeepMoLM model has \"llava_qwen2\")")
    for name in INTEGER_FIELDS:
        value = config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            refuse(name, "not a whole number >= 1")
    for name in STRING_FIELDS:
        if name in config and not isinstance(config[name], str):
            refuse(name, "not a string")
    for name in BOOLEAN_FIELDS:
        value = config.get(name)
        if value is not None and not isinstance(value, bool):
            refuse(name, "not true or false")
    task = config.get(HEAD_TASK_FIELD)
    if task is not None and not isinstance(task, str):
        refuse(HEAD_TASK_FIELD, "not a string (the optional head's name, e.g. \"kflm2\", or null for none)")
    if task:  # `build_head` builds the head it names, one output per name: checked before torch loads (a
        # missing list was an AttributeError traceback there, a string one output per character)
        if HEAD_NAMES_FIELD not in config:
            raise ConfigFieldError(f"{where}: {HEAD_TASK_FIELD} is {task!r}, but {HEAD_NAMES_FIELD} is missing: the "
                                   "head needs the property names it predicts, in training's order (e.g. "
                                   "[\"MW\", \"LogP\"])")
        problem = property_names_problem(config[HEAD_NAMES_FIELD])
        if problem:
            refuse(HEAD_NAMES_FIELD, problem)
    aspect = config.get("image_aspect_ratio")
    if aspect is not None and aspect not in ASPECT_RATIOS:
        # anyres needs the grid the host tiles on; a DeepEncoder tower serves no anyres grid
        anyres_ok = (aspect == ANYRES and config.get("mm_vision_tower") != TOWER_NAME
                     and isinstance(config.get("image_grid_pinpoints"), list) and config["image_grid_pinpoints"])
        if not anyres_ok:
            refuse("image_aspect_ratio", f"not one of {', '.join(map(repr, ASPECT_RATIOS))} or null (the values a "
                   f"{TOWER_NAME} model is trained with; 'anyres' needs image_grid_pinpoints and another tower)")
    try:  # the fingerprint settings' own rule (kinds and ranges); its message names the field
        FingerprintSettings.from_config(dict(config))
    except ValueError as e:
        raise ConfigFieldError(f"{where}: {e}") from e
    run = config.get("deepmolm_run")
    if run is not None and not (isinstance(run, dict) and isinstance(run.get("version", ""), (str, type(None)))):
        raise ConfigFieldError(f"{where}: deepmolm_run is {run!r}, not training's record "
                               "{\"version\": template name, ...}")
    check_tower_tiles(config, folder)


def check_tower_tiles(config: Mapping, folder: "str | os.PathLike") -> None:
    """A DeepEncoder model in tiles mode (`config`: the dict in `folder`'s config.json): its
    tower's tiles against its global view, as the tower checks them when it is built
    (`encoder.tower.tower_image_processor`), so before the model loads. A ConfigFieldError
    naming `<folder>/config.json`, as are the tower configuration's own problems there (the
    image checks made before the model loads build the same processor: each eval question
    with its own image failed, "image q0.png: DeepEncoderConfig.image_size must be ...").
    Was: the tiles not checked, and the model ran them (192 px tiles of a 128 px view: none
    at all for an image up to 192 px)."""
    from .patches.registry import TOWER_NAME

    if config.get("mm_vision_tower") != TOWER_NAME or config.get("image_mode") != "tiles":
        return
    from types import SimpleNamespace

    from .encoder.tower import tower_image_processor  # loads torch, not the host: only for such a model

    # the folder is named here, not through the name_or_path a loaded config carries
    fields = {name: value for name, value in config.items() if name not in ("_name_or_path", "name_or_path")}
    try:
        tower_image_processor(SimpleNamespace(**fields))
    except (ValueError, TypeError, OSError) as e:  # what reading the tower configuration raises, and the tiles
        raise ConfigFieldError(f"{os.path.join(os.fspath(folder), 'config.json')}: {e}") from e
