"""Arguments: DeepMoLM's settings become real host arguments, saved in the model config.

- `--mm_projector fusion` (VILA/DeepMoLM spelling) is rejected by stock argparse as an
  ambiguous prefix of `--mm_projector_type` / `--mm_projector_lr`. An exact
  `mm_projector` field removes the ambiguity; it sets `mm_projector_type`, and giving
  both spellings with different values is an error.
- Our settings are fields of subclasses of the host's `ModelArguments` /
  `DataArguments`, which `llava.train.train.train()` looks up as module globals when
  it builds its HfArgumentParser, so `--help` lists them.
- `--warmup_ratio` (every LLaVA/DeepMoLM recipe uses it) is gone from transformers 5's
  TrainingArguments, where `--warmup_steps` takes a ratio in [0, 1) instead. A
  TrainingArguments subclass accepts `--warmup_ratio` and passes it on as that ratio
  (only where transformers lacks the field; giving both is an error).
- `initialize_vision_modules` is wrapped to copy the model-side settings into the model
  config before the projector is built (the projector reads them there) and the tower's
  full configuration after, so a saved checkpoint is self-describing; and to give a tower
  that came with a saved model this run's --unfreeze_mm_vision_tower and
  --vision_feature_cache (the host passes them only to a tower it builds).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

from . import _host

# ModelArguments fields that are copied into the model config (same names there).
CONFIG_FIELDS = ("fusion_heads", "fusion_dropout", "fp_bits", "fp_levels", "image_mode", "vision_tower_weights",
                 "aux_property_task", "aux_property_weight", "aux_properties")

# The host's tower options DeepEncoder never reads (no layer or CLS feature to select, no
# anyres grid to merge): other values were saved in the config and ignored.
HOST_OPTIONS_NOT_READ = ("mm_vision_select_layer", "mm_vision_select_feature", "mm_patch_merge_type")
# The host's --image_aspect_ratio values a DeepEncoder tower serves (`anyres` trained as `pad`,
# then eval failed: the config had no image_grid_pinpoints).
ASPECT_RATIOS = ("square", "pad")

# Run settings saved in the config under `deepmolm_run` (ModelArguments fields). The
# trainable set is among them: a resume with another --freeze_backbone failed in the
# optimizer's state after the model had loaded (--freeze_mm_mlp_adapter, a training option,
# is in the host's own config keys).
RUN_FIELDS = ("version", "unfreeze_mm_vision_tower", "freeze_backbone")

# Our options that only one tower or projector reads (registry: TOWER_NAME, MOLECULE_PROJECTORS):
# with another, a value other than the default was accepted, saved in the config and ignored
# (`--image_mode tiles` with a CLIP tower trained without tiles; the config then said tiles).
TOWER_OPTIONS = ("vision_tower_weights", "deepencoder_config", "unfreeze_mm_vision_tower", "image_mode",
                 "vision_feature_cache")
PROJECTOR_OPTIONS = {"fusion_heads": ("fusion",), "fusion_dropout": ("fusion",),
                     "fp_bits": ("fusion", "concat"), "fp_levels": ("fusion", "concat")}

# TrainingArguments values transformers takes without a check, and what each must be: NaN
# passes every comparison, so `--learning_rate nan` trained to NaN weights; 0 accumulation
# steps, epochs or batch size, or a --model_max_length below 2, failed deep in the Trainer
# or trained nothing, after the model had loaded. A seed outside numpy's range (--seed -1) was
# numpy's traceback before any check, and --dataloader_num_workers -1 torch's ValueError after
# the model had loaded. (name, smallest value, whether it may equal it, largest value)
# (A learning rate of 0 is allowed: it keeps weights as they are, which a check may want.)
SEED_MAX = 2**32 - 1  # numpy's seed range, which transformers' set_seed uses
TRAINING_LIMITS = (("learning_rate", 0, True, math.inf), ("weight_decay", 0, True, math.inf),
                   ("max_grad_norm", 0, True, math.inf), ("num_train_epochs", 0, False, math.inf),
                   ("gradient_accumulation_steps", 1, True, math.inf),
                   ("per_device_train_batch_size", 1, True, math.inf), ("model_max_length", 2, True, math.inf),
                   ("mm_projector_lr", 0, True, math.inf), ("adam_epsilon", 0, False, math.inf),
                   ("seed", 0, True, SEED_MAX), ("data_seed", 0, True, SEED_MAX),
                   ("dataloader_num_workers", 0, True, math.inf))


def check_number(option: str, value, minimum: float, inclusive: bool = True, maximum: float = math.inf) -> None:
    """`value` (None: not given) is a finite number >= minimum (> minimum unless inclusive)
    and <= maximum; NaN and inf are refused by name (they pass or break every comparison)."""
    if value is None:
        return
    if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive) or value > maximum:
        relation = f"{'>=' if inclusive else '>'} {minimum}" + (f" and <= {maximum}" if maximum < math.inf else "")
        from deepmolm_plugin.usage import number_kind

        raise ValueError(f"--{option} must be {number_kind(value)} {relation}, got {value}")


def check_training_values(args) -> None:
    """The TRAINING_LIMITS of `args` (a TrainingArguments, or the parsed option namespace the
    launcher checks before anything is built). `--max_steps N > 0` overrides the epochs;
    -1 (transformers' default) leaves them in charge, and any other value is an error: 0
    ran one step at learning rate 0 and saved the untrained model, exit 0, and -5 trained
    the epochs without a word."""
    max_steps = getattr(args, "max_steps", None)
    if max_steps is not None and max_steps != -1 and not max_steps >= 1:
        raise ValueError(f"--max_steps must be >= 1 (or -1: train --num_train_epochs), got {max_steps}")
    for name, minimum, inclusive, maximum in TRAINING_LIMITS:
        if name == "num_train_epochs" and (getattr(args, "max_steps", -1) or -1) > 0:
            continue
        check_number(name, getattr(args, name, None), minimum, inclusive, maximum)


def check_tower_options(args, defaults) -> None:
    """TOWER_OPTIONS given (not their default) with another tower, which never reads them,
    are an error naming both. Without any tower the host builds no vision modules and ignores
    every vision option, its own too (`--mm_projector_type`): that case is left to it."""
    from .registry import TOWER_NAME

    tower = getattr(args, "vision_tower", None)
    for name in HOST_OPTIONS_NOT_READ:
        if tower == TOWER_NAME and getattr(args, name, defaults.get(name)) != defaults.get(name):
            raise ValueError(f"--{name} {getattr(args, name)!r} is a setting of the host's CLIP towers, which "
                             f"--vision_tower {TOWER_NAME} does not read (it gives its own compressed image tokens): "
                             "it would be saved in the config and ignored; leave it out")
    for name in TOWER_OPTIONS:
        if tower not in (None, TOWER_NAME) and getattr(args, name) != defaults[name]:
            raise ValueError(f"--{name} is a setting of --vision_tower {TOWER_NAME}, but the tower is {tower}: it "
                             "would be ignored; leave it out or use the deepencoder tower")


def ignored_projector_options(args, defaults) -> list:
    """PROJECTOR_OPTIONS given (not their default) with a projector that never reads them:
    one sentence each, which the launcher refuses (they were accepted, saved in the config
    and ignored). Without a vision tower the host builds no projector and ignores every
    vision option: that case is left to it, as for the tower's options."""
    if getattr(args, "vision_tower", None) is None:
        return []
    projector = getattr(args, "mm_projector_type", None)
    return [f"--{name} {getattr(args, name)} is ignored: only the {' and '.join(projectors)} projector(s) read it, "
            f"and the projector is {projector}"
            for name, projectors in PROJECTOR_OPTIONS.items()
            if projector not in projectors and getattr(args, name) != defaults[name]]


def _model_arguments(host_cls):
    from deepmolm_plugin.encoder.checkpoint import split_weights_option
    from deepmolm_plugin.encoder.presets import ENCODER_PRESETS, config_argument
    from deepmolm_plugin.molecule_fp import DEEPMOLM, FingerprintSettings

    @dataclass
    class ModelArguments(host_cls):
        mm_projector: Optional[str] = field(
            default=None, metadata={"help": "alias of --mm_projector_type (VILA/DeepMoLM spelling)"}
        )
        # None until __post_init__ (then the host's default, linear): an explicit
        # `--mm_projector_type linear` next to `--mm_projector fusion` was taken for "not
        # given", and the contradiction trained a fusion model without a word
        mm_projector_type: Optional[str] = field(
            default=None, metadata={"help": "projector: linear (the host's default), mlp2x_gelu, fusion, ..."}
        )
        vision_tower_weights: Optional[str] = field(
            default=None,
            metadata={"help": "deepencoder weights: DeepSeek-OCR checkpoint, 'SAM.pth,CLIP_FILE', a saved "
                              "DeepEncoder folder, or 'random' to train from scratch"},
        )
        deepencoder_config: Optional[str] = field(
            default=None, metadata={"help": "JSON file of DeepEncoderConfig fields, or a preset name: "
                                            f"{', '.join(ENCODER_PRESETS)}; not given: DeepSeek-OCR's sizes"}
        )
        unfreeze_mm_vision_tower: bool = field(default=False, metadata={"help": "train the vision tower"})
        vision_feature_cache: Optional[str] = field(
            default=None,
            metadata={"help": "folder where the frozen deepencoder keeps each view's features, so a view is "
                              "encoded once across epochs, ranks and runs (not with --unfreeze_mm_vision_tower)"},
        )
        image_mode: str = field(default="base", metadata={"help": "deepencoder views: base (1024) or tiles (+640 tiles)"})
        # Saved in the model config (CONFIG_FIELDS): the molecule_fp settings every later caller reads.
        fp_bits: int = field(default=DEEPMOLM.bits, metadata={"help": "E3FP fingerprint bits (hash range)"})
        fp_levels: int = field(default=DEEPMOLM.levels, metadata={"help": "E3FP levels per atom (iterations 0..3)"})
        fusion_heads: int = field(default=8, metadata={"help": "fusion projector cross-attention heads"})
        fusion_dropout: float = field(default=0.0, metadata={"help": "fusion projector dropout"})
        aux_property_task: Optional[str] = field(
            default=None, metadata={"help": "auxiliary property head trained with the LM loss: 'kflm2'"}
        )
        aux_property_weight: float = field(default=0.1, metadata={"help": "weight of the auxiliary property loss"})
        aux_properties: Optional[str] = field(
            default=None, metadata={"help": "comma-separated property names (records' `properties` keys) the head predicts"}
        )

        def __post_init__(self):
            if self.mm_projector is not None:
                if self.mm_projector_type not in (None, self.mm_projector):
                    raise ValueError(
                        f"--mm_projector {self.mm_projector} contradicts --mm_projector_type "
                        f"{self.mm_projector_type}; give one of them"
                    )
                self.mm_projector_type = self.mm_projector
            elif self.mm_projector_type is None:
                self.mm_projector_type = next(f.default for f in dataclasses.fields(host_cls)
                                              if f.name == "mm_projector_type")
            if self.fusion_heads < 1:
                raise ValueError(f"--fusion_heads must be >= 1, got {self.fusion_heads}")
            try:  # the settings' own bounds (--fp_bits 2**40 filled memory)
                FingerprintSettings(self.fp_bits, self.fp_levels)
            except ValueError as e:
                raise ValueError(f"--fp_bits {self.fp_bits} / --fp_levels {self.fp_levels}: {e}") from e
            if not 0 <= self.fusion_dropout < 1:
                raise ValueError(f"--fusion_dropout must be in [0, 1), got {self.fusion_dropout}")
            check_number("aux_property_weight", self.aux_property_weight, 0)  # NaN passed `< 0`
            if self.image_mode not in ("base", "tiles"):
                raise ValueError(f"--image_mode must be 'base' or 'tiles', got {self.image_mode!r}")
            if self.aux_property_task not in (None, "kflm2"):
                raise ValueError(f"--aux_property_task must be 'kflm2', got {self.aux_property_task!r}")
            if self.aux_property_task and not self.aux_properties:
                raise ValueError("--aux_property_task needs --aux_properties (the property names to predict)")
            if self.aux_property_task and self.aux_property_weight == 0:  # the head stayed random, its predictions written
                raise ValueError("--aux_property_weight 0 leaves the auxiliary property head untrained, and eval would "
                                 "write its random predictions; give a weight > 0, or leave out --aux_property_task")
            if self.aux_property_task and self.tune_mm_mlp_adapter:
                raise ValueError(
                    "--aux_property_task trains its head together with the LLM (stage 2); with "
                    "--tune_mm_mlp_adapter only the projector trains and the head would stay random"
                )
            weight_default = next(f.default for f in dataclasses.fields(self) if f.name == "aux_property_weight")
            given = [f"--{n}" for n, v in (("aux_properties", self.aux_properties),
                                           ("aux_property_weight", self.aux_property_weight != weight_default)) if v]
            if given and not self.aux_property_task:  # were saved in the config and never read
                raise ValueError(f"{' and '.join(given)}: settings of --aux_property_task kflm2, which is not given; "
                                 "give it, or leave them out")
            if self.aux_properties:
                names = [p.strip() for p in self.aux_properties.split(",") if p.strip()]
                if not names:  # " , " was a ValueError traceback once the model loaded
                    raise ValueError(f"--aux_properties {self.aux_properties!r} names no property")
                if len(set(names)) != len(names):
                    raise ValueError(f"--aux_properties names a property twice: {self.aux_properties!r}")
                self.aux_properties = names
            if self.vision_tower_weights and "," in self.vision_tower_weights:
                self.vision_tower_weights = split_weights_option(self.vision_tower_weights)
            if isinstance(self.deepencoder_config, str):  # a JSON file stays a path, a preset name becomes its fields
                self.deepencoder_config = config_argument(self.deepencoder_config)
            if self.vision_feature_cache is not None and self.unfreeze_mm_vision_tower:
                raise ValueError("--vision_feature_cache keeps features of a frozen tower; with "
                                 "--unfreeze_mm_vision_tower they change every step: give one of them")
            check_tower_options(self, {f.name: f.default for f in dataclasses.fields(self)})

    ModelArguments.__qualname__ = ModelArguments.__name__ = "ModelArguments"
    return ModelArguments


def _data_arguments(host_cls):
    @dataclass
    class DataArguments(host_cls):
        structure_folder: Optional[str] = field(
            default=None, metadata={"help": "folder of structure files named by records' `structure` field"}
        )
        conformer_policy: str = field(
            default="auto", metadata={"help": "3D policy for molecule_fp: auto, from-file, generate or keep"}
        )
        render_folder: Optional[str] = field(
            default=None,
            metadata={"help": "where depictions of records without `image` are written; not given: "
                              "<data_path>.renders"},
        )

        def __post_init__(self):
            from deepmolm_plugin.molecule import POLICIES

            # An unknown policy was accepted here and failed at the first record read, after the model loaded.
            if self.conformer_policy not in POLICIES:
                raise ValueError(f"--conformer_policy must be one of {', '.join(POLICIES)}, got {self.conformer_policy!r}")

    DataArguments.__qualname__ = DataArguments.__name__ = "DataArguments"
    return DataArguments


def render_folder_for(data_path: str, given: Optional[str]) -> str:
    """Where records without `image` get their depiction drawn: --render_folder, else
    `<data_path>.renders` (the dataset draws there; the launcher checks it up front)."""
    return given or f"{data_path}.renders"


def _training_arguments(host_cls):
    """A subclass that checks TRAINING_LIMITS and, on transformers 5 (which lacks the field),
    accepts `--warmup_ratio` as the ratio `--warmup_steps` now takes."""
    import transformers

    adds_ratio = not any(f.name == "warmup_ratio" for f in dataclasses.fields(transformers.TrainingArguments))

    def __post_init__(self):
        from deepmolm_plugin.usage import UsageError

        try:
            check_training_values(self)
            if adds_ratio and self.warmup_ratio is not None:
                if self.warmup_steps:
                    raise ValueError("give --warmup_ratio or --warmup_steps, not both")
                if not 0 <= self.warmup_ratio < 1:
                    raise ValueError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
                self.warmup_steps = self.warmup_ratio
            host_cls.__post_init__(self)
        except UsageError:
            raise
        except ValueError as e:
            # transformers' own checks of the values (`--bf16 True` without a bf16 GPU or
            # --use_cpu, ...): a usage error the launcher prints as one line, not a traceback
            # from inside the host's train().
            raise UsageError(str(e)) from e

    ratio = field(default=None, metadata={"help": "linear warmup over this fraction of the steps (transformers 4.x spelling)"})
    fields = [("warmup_ratio", Optional[float], ratio)] if adds_ratio else []
    return dataclasses.make_dataclass("TrainingArguments", fields, bases=(host_cls,),
                                      namespace={"__post_init__": __post_init__})


def _wrap_initialize_vision_modules(original):
    def initialize_vision_modules(self, model_args, fsdp=None):
        for name in CONFIG_FIELDS:
            if hasattr(model_args, name):
                value = getattr(model_args, name)
                setattr(self.config, name, list(value) if isinstance(value, (list, tuple)) else value)
        result = original(self, model_args, fsdp=fsdp)
        if hasattr(self, "ensure_optional_head"):  # our LlavaQwen2Model: e.g. the KFLM2 head
            self.ensure_optional_head()
        tower = self.get_vision_tower()
        if hasattr(tower, "set_trainable"):
            # A tower reloaded with a saved model was built from its config, which does not
            # say whether this run trains it; the host only calls its load_model() again.
            tower.set_trainable(getattr(model_args, "unfreeze_mm_vision_tower", False))
        if getattr(tower, "encoder_config", None) is not None:
            self.config.deepencoder_config = tower.encoder_config.to_dict()
        # How this run trains (read by the launcher's resume check, never by a loaded model: a
        # config key `unfreeze_mm_vision_tower` would make an inference tower trainable). A
        # resumed run with another template or trainable set went on silently or failed in
        # the optimizer's state after the model had loaded.
        self.config.deepmolm_run = {name: getattr(model_args, name, None) for name in RUN_FIELDS}
        folder = getattr(model_args, "vision_feature_cache", None)
        if folder is not None:  # also for a tower that existed before (a saved model's)
            if not hasattr(tower, "enable_feature_cache"):
                raise ValueError(f"--vision_feature_cache needs --vision_tower deepencoder, not {type(tower).__name__}")
            # A tower the host built just now opened this cache already (its args carry the
            # option): opening it again said the read-only warning twice and counted twice.
            if not _opened(tower.feature_cache, folder):
                tower.enable_feature_cache(folder)
        return result

    return initialize_vision_modules


def _opened(cache, folder) -> bool:
    """Whether `cache` (a tower's FeatureCache, or None) is the one in `folder`."""
    import os

    return cache is not None and os.path.abspath(cache.root) == os.path.abspath(os.path.expanduser(os.fspath(folder)))


def _publish(cls):
    """Make a subclass importable as `deepmolm_plugin.patches.arguments.<Name>`: the
    Trainer pickles its arguments (training_args.bin), and pickle finds classes by name."""
    cls.__module__ = __name__
    globals()[cls.__name__] = cls
    return cls


def apply() -> None:
    _host.require_host("arguments")
    import llava.model.llava_arch as arch
    import llava.train.train as host_train

    def _apply():
        for name, make in (("ModelArguments", _model_arguments), ("DataArguments", _data_arguments),
                           ("TrainingArguments", _training_arguments)):
            host_cls = _host.original(host_train, name)
            _host.replace(host_train, name, _publish(make(host_cls)))
        meta = arch.LlavaMetaModel
        meta.initialize_vision_modules = _wrap_initialize_vision_modules(meta.initialize_vision_modules)

    _host.apply_once(host_train, "arguments", _apply)
