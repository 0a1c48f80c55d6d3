"""The settings a saved config.json records, compared with this command line's: the tables of
what a checkpoint's network, trainable set, template and data settings are
(MODEL_SETTINGS ...), the tower's configuration, tower weights, and the language model's
shape and tokenizer.

Separate because three checks compare with a saved config (a resumed checkpoint, a saved
model given as --model_name_or_path, a stage-1 adapter's folder), each against a part of
these tables."""

from __future__ import annotations

import os

from deepmolm_plugin import usage


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


# Runtime fields of a DeepEncoder configuration that a saved model's tower keeps as saved: it is
# built from its config.json, so a --deepencoder_config beside it changed none of them, without a
# word (dtype aside: the host loads the whole model in the run's dtype).
TOWER_RUNTIME_KEPT = ("tile_size", "sam_attention", "gradient_checkpointing")


def tower_differences(saved: dict, model_args) -> list:
    """The fields of --deepencoder_config that differ from those a checkpoint's config.json
    saved: the network's (heads, norm eps, windows: no tensor shape shows them) and the
    runtime ones its tower keeps (TOWER_RUNTIME_KEPT: the tiles, the attention kernel,
    checkpointing)."""
    from deepmolm_plugin.patches.registry import TOWER_NAME

    if not (saved.get("mm_vision_tower") == TOWER_NAME == getattr(model_args, "vision_tower", None)
            and isinstance(saved.get("deepencoder_config"), dict)):
        return []
    from deepmolm_plugin.encoder.checkpoint import architecture
    from deepmolm_plugin.encoder.config import DeepEncoderConfig
    from deepmolm_plugin.encoder.tower import config_from_args

    given, kept = config_from_args(model_args), DeepEncoderConfig.from_dict(saved["deepencoder_config"])
    ours, theirs = architecture(given), architecture(kept)
    differ = [f"--deepencoder_config {k}={ours[k]!r} (the checkpoint: {theirs[k]!r})"
              for k in ours if ours[k] != theirs[k]]
    return differ + [f"--deepencoder_config {k}={getattr(given, k)!r} (the checkpoint's tower runs with "
                     f"{getattr(kept, k)!r}; change it in its config.json's deepencoder_config)"
                     for k in TOWER_RUNTIME_KEPT if getattr(given, k) != getattr(kept, k)]


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
