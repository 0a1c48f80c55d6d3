"""The files and folders the command line names, checked from argv before anything heavy is
imported: --data_path's records, the folders they are read from and drawn into, the tower
weights, the encoder config, the adapter and DeepSpeed files; and, before the model loads,
the template against the model's tokenizer and records whose molecules the projector
does not read.

Separate from arguments.py: these need no argument class, so a bad path or record is one
line in seconds."""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence

from deepmolm_plugin import usage
from deepmolm_plugin.training.adapter import check_adapter_file
from deepmolm_plugin.training.deepspeed_config import check_deepspeed_config
from deepmolm_plugin.training.options import PROG, option_value


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
    check_saved_model_tiles(argv)
    for name in ("image_folder", "structure_folder"):
        if option_value(argv, name):
            usage.existing_folder(option_value(argv, name), f"--{name}")
    if not option_value(argv, "structure_folder"):
        check_relative_structures(records, data)
    if option_value(argv, "deepencoder_config"):
        check_encoder_config(option_value(argv, "deepencoder_config"), option_value(argv, "image_mode"))
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
    them, which main() reports as one line too. With --image_mode tiles and no
    --deepencoder_config, the tiles of the configuration saved with them (`check_tiles`)."""
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
    if not encoder and option_value(argv, "image_mode") == "tiles":  # a given one: check_encoder_config
        check_tiles(config, f"--vision_tower_weights {weights} (the DeepEncoder configuration saved with them)")


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


def check_encoder_config(value: str, image_mode: "str | None" = None) -> None:
    """`--deepencoder_config`: a JSON file of DeepEncoderConfig fields, or a preset name
    (deepmolm_plugin.encoder.presets; the arguments class turns it into the preset's
    fields). A file is read as the tower will read it (was: only its existence was checked, and
    a key given twice, or a field the configuration refuses, was a traceback from inside the
    host's model build). With `--image_mode tiles`, its tile size against its global view too
    (DeepEncoderConfig.check_tiles; was: accepted, 2048 px tiles on a 1024 px view added
    nothing to most images, 64 px ones a token each)."""
    config = given_encoder_config(value)
    if image_mode == "tiles":
        check_tiles(config, f"--deepencoder_config {value}", _unset_sizes(value))


def _unset_sizes(value: str) -> list:
    """Which of image_size and tile_size a --deepencoder_config file leaves to their
    defaults (a preset sets both): a refusal of their sizes says so, where it named the
    default tile_size 640 as if the file had written it."""
    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        fields = json.load(f)  # read before, by given_encoder_config: a mapping
    return [name for name in ("image_size", "tile_size") if name not in fields]


def check_tiles(config, source: str, unset: Sequence[str] = ()) -> None:
    """With --image_mode tiles: the tower's image processor for `config` (a DeepEncoderConfig),
    made as the tower makes it (DeepEncoderImageProcessor.from_config, which checks its tiles
    against its global view), before the LLM loads; a UsageError naming `source`, the option
    that gave `config`; `unset`: the sizes that option leaves to their defaults, named so in
    the refusal. The tower checks them again when the host builds it: not said twice,
    as this refusal ends the run first."""
    from deepmolm_plugin.encoder.image_processor import DeepEncoderImageProcessor

    try:
        DeepEncoderImageProcessor.from_config(config, mode="tiles")
    except ValueError as e:
        defaults = "".join(f"; {name} {getattr(config, name)} is the default, which {source} does not set"
                           for name in unset)
        raise usage.UsageError(f"{source} with --image_mode tiles: {e}{defaults}") from e


def check_saved_model_tiles(argv) -> None:
    """--model_name_or_path a saved DeepEncoder model in tiles mode: the host builds the run's
    tower from its config.json (a saved model keeps its tower), so its tiles are checked as
    the chat, eval and the GUI check them (checkpoint_config.check_tower_tiles), before the
    LLM loads (a --deepencoder_config beside it is not what that tower is built from). Was:
    unchecked, and the run trained on its tiles (192 px tiles of a 128 px view)."""
    model = os.path.expanduser(option_value(argv, "model_name_or_path") or "")
    saved = usage.model_config(model, "--model_name_or_path") if os.path.isdir(model) else None
    if not saved:
        return
    from deepmolm_plugin.checkpoint_config import check_tower_tiles

    try:
        check_tower_tiles(saved, model)
    except ValueError as e:  # names <model>/config.json
        raise usage.UsageError(f"--model_name_or_path: {e}") from e


def given_encoder_config(value: str):
    """The DeepEncoderConfig `--deepencoder_config VALUE` names (a file, else a preset); a
    UsageError naming the option when it is neither, or when the file is unusable."""
    from deepmolm_plugin.encoder import DeepEncoderConfig

    if os.path.isfile(os.path.expanduser(value)):
        try:
            return DeepEncoderConfig.load(os.path.expanduser(value))
        except (ValueError, TypeError) as e:  # bad JSON, a repeated key, fields or values
            raise usage.UsageError(f"--deepencoder_config {value}: not a usable DeepEncoder configuration: "
                                   f"{e}") from e
    from deepmolm_plugin.encoder.presets import config_argument

    try:
        return DeepEncoderConfig(**config_argument(value))
    except ValueError as e:
        raise usage.UsageError(str(e)) from e


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
