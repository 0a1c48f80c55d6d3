"""Loading DeepEncoder weights from every public layout, with one function.

`load_weights(model, path)` (behind `DeepEncoder.from_pretrained` / `load_deepencoder`)
detects the layout from the tensor names:

- ``deepseek-ocr``: DeepSeek-OCR / DeepMoLM's `sam_clip_ckpt` (`model.sam_model.*`, 179
  tensors; `model.vision_model.*`, 293 tensors). DeepSeek's trained tower. Everything
  else in the file (projector, `image_newline`, LM) is not the tower's and is ignored.
- ``sam+clip``: Meta's SAM ViT-B (`image_encoder.*`) plus OpenAI CLIP ViT-L/14 in
  open_clip (`visual.*`) or Hugging Face (`vision_model.*` or bare `encoder.layers.*`)
  layout. This is an *initialisation*: the two compressor convs are new, random
  weights, and the loader says so.
- ``deepmolm``: our own `DeepEncoder.save_pretrained` folder.
- ``deepmolm-model``: a trained DeepMoLM checkpoint (the whole model, as the trainer saves
  it): the tower is the tensors under `model.vision_tower.vision_tower.*`, its sizes the
  `deepencoder_config` of the folder's config.json; the LLM and projector are ignored.

Within the tower's own prefixes, a missing, unexpected or mis-shaped tensor is an error
that lists all of them: there is no silently random tower. So is a NaN/inf or integer
tensor, or one that overflows the tower's dtype once cast, and a tower configuration that differs from the one saved with
the weights in a field no tensor shape shows (heads, norm eps, ...): a folder's or a .safetensors file's
deepencoder_config.json beside it, a DeepMoLM config.json's `deepencoder_config` (its fields or a file's path),
and the configuration DeepEncoder.save_pretrained records in the weights file's metadata. A file whose every
name carries a training wrapper's prefix (`module.`, `_orig_mod.`) is read without it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..tensor_files import (TRAINER_STATE_FILES, CheckpointError, PathLike, TensorStore, checkpoint_path,
                            find_tensor_files, headers_cheap, open_checkpoint, unread_tensor_files, value_problem)
from ..tensor_files import sniff as sniff_tensor_file  # the one content test of a file's kind
from ..usage import RepeatedKeyError, json_loads_unique
from .config import ARCHITECTURE_FIELDS, CONFIG_NAME, WEIGHTS_NAME, DeepEncoderConfig, resolve_dtype

logger = logging.getLogger(__name__)

# Where a whole DeepMoLM model (LlavaQwen2ForCausalLM: model.vision_tower is the host's
# tower wrapper, its .vision_tower our DeepEncoder) keeps the tower's tensors.
DEEPMOLM_MODEL_PREFIX = "model.vision_tower.vision_tower."
MODEL_CONFIG_NAME = "config.json"  # the host's model config; a DeepMoLM one holds `deepencoder_config`

_SLOTS = {"i": r"\d+", "p": r"weight|bias", "n": r"net_\d+\.weight", "rest": r".+"}


class KeyRule:
    """A two-way name rule, e.g. 'clip.ln_pre.{p}' <-> 'visual.ln_pre.{p}'."""

    def __init__(self, ours: str, theirs: str):
        self.ours, self.theirs = ours, theirs
        self._ours_re, self._theirs_re = self._compile(ours), self._compile(theirs)

    @staticmethod
    def _compile(template: str) -> "re.Pattern[str]":
        pattern = re.escape(template)
        for slot, rx in _SLOTS.items():
            pattern = pattern.replace(re.escape("{" + slot + "}"), f"(?P<{slot}>{rx})")
        return re.compile(pattern + "$")

    def to_ours(self, key: str) -> Optional[str]:
        m = self._theirs_re.match(key)
        return self.ours.format(**m.groupdict()) if m else None

    def to_theirs(self, key: str) -> Optional[str]:
        m = self._ours_re.match(key)
        return self.theirs.format(**m.groupdict()) if m else None


def _clip_rules(prefix: str, layers: str) -> List[KeyRule]:
    """DeepSeek's / Hugging Face's CLIP names (packed qkv) <-> open_clip's."""
    blk = "clip.transformer.resblocks.{i}"
    their = f"{prefix}{layers}.{{i}}"
    return [
        KeyRule("clip.class_embedding", f"{prefix}embeddings.class_embedding"),
        KeyRule("clip.positional_embedding", f"{prefix}embeddings.position_embedding.weight"),
        KeyRule("clip.ln_pre.{p}", f"{prefix}pre_layrnorm.{{p}}"),
        KeyRule(f"{blk}.ln_1.{{p}}", f"{their}.layer_norm1.{{p}}"),
        KeyRule(f"{blk}.ln_2.{{p}}", f"{their}.layer_norm2.{{p}}"),
        KeyRule(f"{blk}.attn.in_proj_weight", f"{their}.self_attn.qkv_proj.weight"),
        KeyRule(f"{blk}.attn.in_proj_bias", f"{their}.self_attn.qkv_proj.bias"),
        KeyRule(f"{blk}.attn.out_proj.{{p}}", f"{their}.self_attn.out_proj.{{p}}"),
        KeyRule(f"{blk}.mlp.c_fc.{{p}}", f"{their}.mlp.fc1.{{p}}"),
        KeyRule(f"{blk}.mlp.c_proj.{{p}}", f"{their}.mlp.fc2.{{p}}"),
    ]


DEEPSEEK_RULES = [
    KeyRule("compressor.{n}", "model.sam_model.{n}"),
    KeyRule("sam.{rest}", "model.sam_model.{rest}"),
    *_clip_rules("model.vision_model.", "transformer.layers"),
]
META_SAM_RULES = [KeyRule("sam.{rest}", "image_encoder.{rest}")]
OPEN_CLIP_RULES = [
    KeyRule("clip.class_embedding", "visual.class_embedding"),
    KeyRule("clip.positional_embedding", "visual.positional_embedding"),
    KeyRule("clip.ln_pre.{p}", "visual.ln_pre.{p}"),
    KeyRule("clip.transformer.{rest}", "visual.transformer.{rest}"),
]

# Tensors a layout carries that the tower deliberately does not use.
_CLIP_UNUSED = r"(embeddings\.patch_embedding\.weight|embeddings\.position_ids|post_layernorm\..*)"
IGNORED = {
    # CLIP's patch conv is bypassed: the compressor map is the patch embedding.
    "deepseek-ocr": re.compile(r"model\.vision_model\." + _CLIP_UNUSED + "$"),
    "sam+clip": re.compile(
        r"(visual\.(conv1\.weight|ln_post\..*|proj)|(vision_model\.)?" + _CLIP_UNUSED + ")$"
    ),
    "deepmolm": re.compile(r"(?!)"),
    "deepmolm-model": re.compile(r"(?!)"),
}
# The name spaces a layout owns: inside them, every tensor must be used or ignored above.
OWNED = {
    "deepseek-ocr": re.compile(r"model\.(sam_model|vision_model)\."),
    "sam+clip": re.compile(r"(image_encoder|visual|vision_model|embeddings|pre_layrnorm|encoder|post_layernorm)\."),
    "deepmolm": re.compile(r""),
    "deepmolm-model": re.compile(re.escape(DEEPMOLM_MODEL_PREFIX)),
}


@dataclass
class LoadReport:
    """What a load did: the layout, the files, and what was new or left out."""

    format: str
    files: List[str]
    loaded: int
    newly_initialized: List[str] = field(default_factory=list)
    ignored_in_tower_namespace: List[str] = field(default_factory=list)
    ignored_other: int = 0  # tensors outside the tower (LLM, projector, text tower...)
    stripped_prefixes: Dict[str, str] = field(default_factory=dict)  # file -> 'module.' / '_orig_mod.' removed

    @property
    def is_initialisation(self) -> bool:
        return bool(self.newly_initialized)

    def summary(self) -> str:
        s = f"DeepEncoder: {self.loaded} tensors from {self.format} checkpoint ({', '.join(self.files)})"
        if self.newly_initialized:
            s += (
                f"; INITIALISATION ONLY, not DeepSeek's trained tower: {len(self.newly_initialized)} "
                f"tensors newly initialised ({', '.join(self.newly_initialized)}) — train them"
            )
        if self.ignored_in_tower_namespace:
            s += f"; unused by design: {', '.join(self.ignored_in_tower_namespace)}"
        if self.ignored_other:
            s += f"; {self.ignored_other} tensors outside the tower ignored"
        for path, prefix in self.stripped_prefixes.items():
            s += f"; names in {path} read without their wrapper prefix {prefix!r}"
        return s


def detect_format(keys: Sequence[str], paths: Sequence[Path], files: Sequence[Path] = ()) -> str:
    """The layout of a checkpoint with tensor names `keys`, read from `files` of the
    user's `paths`; a layout it cannot complete is a CheckpointError naming them."""
    by_names = _layout_by_names(keys)
    if by_names in ("deepmolm-model", "deepseek-ocr"):
        return by_names
    if by_names == "deepmolm" or any(_is_own_format_path(p) for p in paths):
        return "deepmolm"
    has_sam = any(k.startswith("image_encoder.") for k in keys)
    has_clip = any(
        k.startswith(("visual.transformer.", "vision_model.encoder.", "encoder.layers.")) for k in keys
    )
    if has_sam and has_clip:
        return "sam+clip"
    if has_sam or has_clip:
        found, lacking = ("SAM", "CLIP ViT-L/14") if has_sam else ("CLIP", "SAM ViT-B (image_encoder.*)")
        raise CheckpointError(
            f"found {found} weights but no {lacking} weights in {[str(p) for p in paths]}"
            f"{_unread_note(paths, files)}; an initialisation from public weights needs both files: "
            "load_deepencoder([sam_vit_b.pth, clip_vit_l14_file])"
        )
    raise CheckpointError(
        f"unrecognised checkpoint layout in {[str(p) for p in paths]}{_unread_note(paths, files)}: expected "
        "DeepSeek-OCR (model.sam_model.*, model.vision_model.*), Meta SAM (image_encoder.*) + CLIP "
        f"(visual.* / vision_model.*), a DeepEncoder.save_pretrained folder, or a trained DeepMoLM checkpoint "
        f"({DEEPMOLM_MODEL_PREFIX}*); first keys: {list(keys)[:5]}"
    )


def _layout_by_names(keys: Sequence[str]) -> Optional[str]:
    """The layout tensor names alone show, in detect_format's order: a whole DeepMoLM model,
    DeepSeek-OCR, or our own tower (`compressor.*`); None for any other (SAM, CLIP)."""
    if any(k.startswith(DEEPMOLM_MODEL_PREFIX) for k in keys):
        # was "unrecognised checkpoint layout", with advice to add training_args.bin as weights
        return "deepmolm-model"
    if any(k.startswith(("model.sam_model.", "model.vision_model.")) for k in keys):
        return "deepseek-ocr"
    if any(k.startswith("compressor.") for k in keys):
        return "deepmolm"
    return None


def _unread_note(paths: Sequence[Path], files: Sequence[Path]) -> str:
    """For a folder whose .bin/.pth files were left unread beside its .safetensors
    (tensor_files.unread_tensor_files says why): which files were read and which not, and
    how to give them together. A folder holding sam_vit_b_01ec64.pth beside a CLIP
    model.safetensors was "no SAM weights in [folder]", which holds them."""
    unread = [f for p in paths for f in unread_tensor_files(p) if not TRAINER_STATE_FILES.match(f.name)]
    if not unread:
        return ""
    names = lambda fs: ", ".join(f.name for f in fs) or "no file"  # noqa: E731 - in the folder(s) named just before
    # was "read , not ..." for no file read, and ".bin/.pth/.pt beside them" for unread .safetensors too
    return (f" (read {names(files)}, not {names(unread)}: a folder is read as transformers reads it "
            "(model.safetensors, its shard index, pytorch_model.bin, its shard index), else through its shard "
            "index, else its .safetensors; other tensor files beside them usually repeat its weights; to use them "
            f"together give the files themselves: {','.join(str(f) for f in [*unread, *files])})")


Source = Tuple[Tuple[int, ...], Callable[[], torch.Tensor]]  # (shape, lazy loader)


def _pack_hf_qkv(sources: Dict[str, Source]) -> None:
    """Hugging Face CLIP has separate q/k/v; replace them by DeepSeek-style packed qkv."""
    for key in list(sources):
        m = re.match(r"((?:vision_model\.)?encoder\.layers\.\d+\.self_attn\.)q_proj\.(weight|bias)$", key)
        if not m:
            continue
        parts = [f"{m.group(1)}{x}_proj.{m.group(2)}" for x in "qkv"]
        absent = [p for p in parts if p not in sources]
        if absent:
            raise CheckpointError(f"Hugging Face CLIP checkpoint lacks {absent} next to {key}")
        shapes = [sources[p][0] for p in parts]
        loaders = [sources.pop(p)[1] for p in parts]
        packed_shape = (sum(s[0] for s in shapes), *shapes[0][1:])
        sources[f"{m.group(1)}qkv_proj.{m.group(2)}"] = (
            packed_shape,
            lambda loaders=loaders: torch.cat([load() for load in loaders], dim=0),
        )


def _rules_for(fmt: str, keys: Sequence[str]) -> List[KeyRule]:
    if fmt == "deepseek-ocr":
        return DEEPSEEK_RULES
    if fmt == "deepmolm":
        return [KeyRule("{rest}", "{rest}")]
    if fmt == "deepmolm-model":
        return [KeyRule("{rest}", DEEPMOLM_MODEL_PREFIX + "{rest}")]
    hf_prefix = "vision_model." if any(k.startswith("vision_model.") for k in keys) else ""
    return META_SAM_RULES + OPEN_CLIP_RULES + _clip_rules(hf_prefix, "encoder.layers")


def plan_load(
    sources: Dict[str, Source],
    fmt: str,
    expected: Dict[str, Tuple[int, ...]],
) -> Tuple[Dict[str, Callable[[], torch.Tensor]], LoadReport]:
    """Match checkpoint tensors (name -> (shape, loader)) to the tower's expected shapes.

    Works on shapes alone, so full-size layouts can be checked without reading weights.
    Raises CheckpointError listing every missing, unexpected, mis-shaped and doubly given tensor.
    """
    rules = _rules_for(fmt, list(sources))
    plan: Dict[str, Callable[[], torch.Tensor]] = {}
    given_by: Dict[str, str] = {}  # tower name -> the checkpoint name that gives it
    unexpected, mismatched, twice, ignored, other = [], [], [], [], 0
    mismatched_ours = set()
    for key, (shape, load) in sources.items():
        ours = next((o for o in (r.to_ours(key) for r in rules) if o is not None), None)
        if ours is None or ours not in expected:
            if IGNORED[fmt].match(key):
                ignored.append(key)
            elif OWNED[fmt].match(key):
                unexpected.append(key)
            else:
                other += 1
            continue
        if tuple(shape) != tuple(expected[ours]):
            mismatched.append(f"{key}: checkpoint {list(shape)} vs tower {list(expected[ours])}")
            mismatched_ours.add(ours)
            continue
        if ours in plan:
            # two names for one tower tensor (CLIP files in open_clip's and Hugging Face's
            # layouts, both given): the one read last won without a word
            twice.append(f"{given_by[ours]} and {key} (both {ours})")
            continue
        plan[ours], given_by[ours] = load, key
    missing = sorted(set(expected) - set(plan) - mismatched_ours)
    new = [k for k in missing if fmt == "sam+clip" and k.startswith("compressor.")]
    missing = [k for k in missing if k not in new]
    if missing or unexpected or mismatched or twice:
        # one line, as every user-facing error (it was one line per kind)
        parts = [f"{title} ({len(items)}): " + ", ".join(items)
                 for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched),
                                      ("given twice, under two names", twice)) if items]
        raise CheckpointError(f"DeepEncoder checkpoint ({fmt}) does not match the tower configuration: "
                              + "; ".join(parts))
    report = LoadReport(fmt, [], len(plan), new, ignored, other)
    return plan, report


def checkpoint_config(path: Union[PathLike, Sequence[PathLike]]) -> DeepEncoderConfig:
    """The tower sizes a checkpoint implies: its folder's deepencoder_config.json (our own
    format), a DeepMoLM model's config.json, or the configuration our weights file records
    in its metadata (saved_config), else DeepSeek-OCR's sizes."""
    saved = saved_config(path)
    return saved if saved is not None else DeepEncoderConfig()


def _config_file(path: Path) -> Optional[Path]:
    """The deepencoder_config.json that belongs to `path` in our own format: inside it (a
    folder), or beside it for a .safetensors file given directly that is the tower's own
    (`_is_own_tower_file`: a deepencoder_step500.safetensors beside it loaded unchecked when
    only deepencoder.safetensors was; then a CLIP file kept in that folder for a sam+clip
    initialisation was given the tower's sizes, and refused)."""
    if path.is_dir():
        file = path / CONFIG_NAME
        return file if file.is_file() else None
    file = path.parent / CONFIG_NAME
    if path.suffix != ".safetensors" or not file.is_file():
        return None
    return file if _is_own_tower_file(path) else None


def _is_own_tower_file(file: Path) -> bool:
    """Whether a weights `file` is our own tower's: named deepencoder.safetensors (what
    save_pretrained writes), or whose header says so (`_header_layout`)."""
    return file.name == WEIGHTS_NAME or _header_layout(file) == "deepmolm"


def _may_be_model_file(file: Path) -> bool:
    """Whether a weights `file` may be a whole DeepMoLM model's: a safetensors file whose
    names say so; a file of another kind, whose names cannot be read cheaply, is taken to be."""
    return sniff_tensor_file(file) != "safetensors" or _header_layout(file) == "deepmolm-model"


def _header_layout(file: Path) -> Optional[str]:
    """The layout a safetensors `file`'s header shows: "deepmolm" when its metadata records
    a tower configuration (config_metadata), else what its tensor names show as
    detect_format judges them (`_layout_by_names`, wrapper prefixes removed); None for
    another layout or another kind of file."""
    header = _safetensors_header(file)
    if header is None:
        return None
    names, metadata = header
    if CONFIG_METADATA_KEY in metadata:
        return "deepmolm"
    prefix = common_wrapper_prefix(names)
    return _layout_by_names([n[len(prefix):] for n in names])


def _safetensors_header(file: Path) -> Optional[Tuple[List[str], Dict[str, str]]]:
    """(tensor names, metadata) from a safetensors `file`'s header (no tensor data read),
    or None for a file of another kind or one that is not there."""
    from safetensors import SafetensorError, safe_open

    if not file.is_file() or sniff_tensor_file(file) != "safetensors":
        return None
    try:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            return list(handle.keys()), dict(handle.metadata() or {})
    except SafetensorError as e:
        raise CheckpointError(f"{file} is not a readable safetensors file: {e}") from e


def _is_own_format_path(path: Path) -> bool:
    """Whether `path` is our own format's folder or its deepencoder.safetensors, which name
    the layout `deepmolm` whatever tensors they hold (missing ones are then listed as such).
    Narrower than _config_file: a CLIP .safetensors kept beside a deepencoder_config.json
    is still read as CLIP."""
    return (path.is_dir() or path.name == WEIGHTS_NAME) and _config_file(path) is not None


def _model_config_file(path: Path) -> Optional[Path]:
    """A DeepMoLM model's config.json inside `path` (a checkpoint folder) or beside it (one
    of its weights files): one whose `deepencoder_config` gives the tower's sizes, as the
    fields themselves or as the path of a DeepEncoder configuration file, both of which
    the host builds from (was: the path form was ignored, and the tower loader fell back to
    DeepSeek-OCR's sizes or, given a configuration, checked nothing). Another model's
    config.json (a Hugging Face CLIP folder's) is not the tower's: None. Nor is it the tower
    config of a .safetensors file given directly whose names are not a DeepMoLM model's (a
    CLIP file kept in the model's folder), as for `_config_file`."""
    file = (path if path.is_dir() else path.parent) / MODEL_CONFIG_NAME
    if not file.is_file() or not (path.is_dir() or _may_be_model_file(path)):
        return None
    try:
        with open(file) as f:
            return file if isinstance(json.load(f).get("deepencoder_config"), (dict, str)) else None
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object: not a DeepMoLM config
        return None


def _saved_config_file(paths: Sequence[Path]) -> Optional[Path]:
    """The configuration file saved with the weights at `paths` (saved_config), or None."""
    for finder in (_config_file, _model_config_file):
        files = [f for f in map(finder, paths) if f is not None]
        if files:
            return files[0]
    return None


def saved_config(path: Union[PathLike, Sequence[PathLike]]) -> Optional[DeepEncoderConfig]:
    """The DeepEncoder configuration saved with the weights: our own format's
    deepencoder_config.json, or a DeepMoLM model's config.json (`deepencoder_config`), else
    the one our weights file records in its metadata (a file copied alone), or None; a
    file that cannot be read as a DeepEncoderConfig is a CheckpointError naming it."""
    paths = _paths(path)
    file = _saved_config_file(paths)
    if file is None:
        recorded = _recorded_configs(paths)
        return recorded[0][1] if recorded else None
    try:
        if file.name == MODEL_CONFIG_NAME:
            # a key given twice (the tower's sizes edited by hand) is refused, not the last taken
            return _model_config_value(file, json_loads_unique(file.read_text(encoding="utf-8"))["deepencoder_config"])
        return DeepEncoderConfig.load(file, saved=True)
    except RepeatedKeyError as e:
        raise CheckpointError(f"{file} is not a usable DeepEncoder configuration: {e.reason()}") from e
    except (ValueError, TypeError) as e:  # bad JSON (JSONDecodeError is a ValueError), fields or values
        raise CheckpointError(f"{file} is not a usable DeepEncoder configuration: {e}") from e


def _model_config_value(file: Path, value: Union[dict, str]) -> DeepEncoderConfig:
    """A DeepMoLM config.json's `deepencoder_config`: its fields, or the path of a
    configuration file, read as the host's tower reads it (DeepEncoderConfig.load: a
    relative path from the working directory, a folder's deepencoder_config.json)."""
    if isinstance(value, dict):
        return DeepEncoderConfig.from_dict(value, saved=True)
    try:
        return DeepEncoderConfig.load(value)
    except OSError as e:  # gone, unreadable, or no deepencoder_config.json in the folder it names
        raise CheckpointError(f"{file}: its deepencoder_config names {value!r}, which cannot be read "
                              f"({e.strerror or e})") from e


# The safetensors metadata key under which DeepEncoder.save_pretrained records the tower's
# configuration (JSON, as deepencoder_config.json holds it), so that a weights file copied
# without its folder still says what network it is (files saved before have none).
CONFIG_METADATA_KEY = "deepencoder_config"


def config_metadata(config: DeepEncoderConfig) -> Dict[str, str]:
    """The safetensors metadata save_pretrained writes with the tower's weights."""
    return {"format": "pt", CONFIG_METADATA_KEY: json.dumps(config.to_dict(), sort_keys=True)}


def _recorded_config(file: Path) -> Optional[DeepEncoderConfig]:
    """The configuration a safetensors `file` records in its metadata (config_metadata), or
    None: another kind of file, or one saved without it."""
    header = _safetensors_header(file)
    text = header[1].get(CONFIG_METADATA_KEY) if header is not None else None
    if text is None:
        return None
    try:
        return DeepEncoderConfig.from_dict(json_loads_unique(text), saved=True)
    except RepeatedKeyError as e:
        raise CheckpointError(f"{file}: the DeepEncoder configuration in its metadata is unusable: {e.reason()}") from e
    except (ValueError, TypeError) as e:  # not JSON, unknown fields, bad values
        raise CheckpointError(f"{file}: the DeepEncoder configuration in its metadata is unusable: {e}") from e


def _recorded_configs(paths: Sequence[Path]) -> List[Tuple[Path, DeepEncoderConfig]]:
    """(file, configuration) for each tensor file of `paths` that records one."""
    found = [(f, _recorded_config(f)) for p in paths for f in find_tensor_files(p)]
    return [(f, c) for f, c in found if c is not None]


def architecture(config: DeepEncoderConfig) -> Dict[str, object]:
    """The fields of `config` that define the network (not runtime choices: dtype,
    attention kernel, checkpointing, tile size)."""
    return {name: getattr(config, name) for name in ARCHITECTURE_FIELDS}


def check_config_matches(config: DeepEncoderConfig, path: Union[PathLike, Sequence[PathLike]],
                         source: Optional[str] = None) -> None:
    """A tower config given for our own format's folder must describe the saved network.
    source: where `config` came from, for the message (the launcher: `--deepencoder_config
    X`; a user who gave no configuration was told of one "given")."""
    paths = _paths(path)
    file = _saved_config_file(paths)
    saved = [(f"saved with the weights ({file.parent})", saved_config(paths))] if file is not None else []
    # the configuration a weights file records in its metadata too (save_pretrained writes it):
    # was: a file copied without its folder, or renamed, loaded under any heads and eps
    saved += [(f"recorded in {f} (its metadata)", c) for f, c in _recorded_configs(paths)]
    word = "" if source else "given "
    what = f"{source} does not match the DeepEncoder configuration" if source else (
        "the DeepEncoder configuration given does not match the one")
    ours = architecture(config)
    for where, theirs in ((w, architecture(c)) for w, c in saved):
        differ = [f"{k}: {word}{ours[k]!r} vs saved {theirs[k]!r}" for k in ARCHITECTURE_FIELDS if ours[k] != theirs[k]]
        if differ:
            raise CheckpointError(f"{what} {where}: " + "; ".join(differ))


def _target_dtypes(model: torch.nn.Module, expected: torch.Tensor) -> List[torch.dtype]:
    """The dtypes tensor `name` will live in: the weight's now, and the config's (the tower
    is cast to config.dtype after loading)."""
    dtypes = [expected.dtype]
    config = getattr(model, "config", None)
    if isinstance(config, DeepEncoderConfig) and expected.is_floating_point() and config.dtype is not None:
        # dtype None: the weights keep their own dtype (weights_own_dtype), no cast to check
        dtypes.append(resolve_dtype(config.dtype))
    return dtypes


def _check_values(state: Dict[str, torch.Tensor], model: torch.nn.Module, files: Sequence[Path]) -> None:
    """Every loaded tensor must be finite, also once cast to the tower's dtype, and, for a
    floating-point weight, floating point: load_state_dict would copy integer tensors into
    float weights without a word, and NaN/inf weights give a tower whose every output is NaN."""
    expected = model.state_dict()
    bad = []
    for name, t in state.items():
        problem = value_problem(t, expected[name], _target_dtypes(model, expected[name]))
        if problem:
            bad.append(f"{name}: {problem}")
    if bad:
        raise CheckpointError(
            f"DeepEncoder checkpoint {', '.join(str(f) for f in files)} has unusable tensors ({len(bad)}): "
            + ", ".join(bad)
        )


def _match(model: torch.nn.Module, paths: List[Path], headers_only: bool,
           config_source: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], LoadReport]:
    """The tower state `model` would load from `paths`, value-checked, and the report.
    headers_only: the state is meta tensors of the files' shapes and dtypes (no tensor data
    read), so everything but the values (NaN/inf, overflow) is checked."""
    if isinstance(getattr(model, "config", None), DeepEncoderConfig):
        check_config_matches(model.config, paths, source=config_source)
    store = open_checkpoint(paths, headers_only=headers_only)
    names, stripped = unwrapped_names(store)
    fmt = detect_format(list(names), paths, store.files)
    if headers_only:
        # a dtype torch has no name for is left to the load (float32 here passes the check)
        read = lambda o: torch.empty(store.shape(o), dtype=store.dtype(o) or torch.float32, device="meta")  # noqa: E731
    else:
        read = store.__getitem__
    sources: Dict[str, Source] = {k: (store.shape(o), (lambda o=o: read(o))) for k, o in names.items()}
    if fmt == "sam+clip":
        _pack_hf_qkv(sources)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    plan, report = plan_load(sources, fmt, expected)
    report.files = [str(f) for f in store.files]
    report.stripped_prefixes = stripped
    state = {k: load() for k, load in plan.items()}
    _check_values(state, model, store.files)
    return state, report


def load_weights(model: torch.nn.Module, path: Union[PathLike, Sequence[PathLike]]) -> LoadReport:
    """Load a built DeepEncoder's weights from any supported checkpoint layout.

    path: a file, a folder (sharded safetensors with an index are followed), or a list of
      them (e.g. ``[sam_vit_b_01ec64.pth, clip_vit_l14.safetensors]``).
    Every tensor is matched by shape before any is read; returns the LoadReport.
    """
    state, report = _match(model, _paths(path), headers_only=False)
    if getattr(getattr(model, "config", None), "dtype", "") is None:
        # was: an AttributeError inside the value check, for a config save_pretrained writes
        model.to(dtype=weights_own_dtype(state, report.files))
    model.load_state_dict(state, strict=not report.newly_initialized)
    (logger.warning if report.is_initialisation else logger.info)(report.summary())
    return report


def weights_own_dtype(state: Dict[str, torch.Tensor], files: Sequence[str]) -> torch.dtype:
    """The one floating dtype of the loaded tensors, for a tower whose config.dtype is None
    ("the weights' own"); tensors of several dtypes, or of one the tower does not run in
    (float64), are a CheckpointError: which one to use is the user's choice (dtype=...)."""
    found = sorted({str(t.dtype).replace("torch.", "") for t in state.values() if t.is_floating_point()})
    if len(found) == 1 and found[0] in ("float32", "bfloat16", "float16"):
        return resolve_dtype(found[0])
    raise CheckpointError(f"DeepEncoder checkpoint {', '.join(map(str, files))}: the configuration's dtype is null "
                          f"(the weights' own), but its tensors are {', '.join(found) or 'not floating point'}; "
                          "give dtype='float32', 'bfloat16' or 'float16'")


def check_weights(model: torch.nn.Module, path: Union[PathLike, Sequence[PathLike]],
                  config_source: Optional[str] = None) -> Optional[LoadReport]:
    """What `load_weights(model, path)` would refuse, found from the files' headers alone:
    paths, file kinds, layout, names, shapes, integer dtypes, and the configuration saved
    with our own folder (config_source names where the model's config came from). Not the
    values (NaN/inf), which need every tensor read: the load itself refuses those.

    Cheap by construction, for the train launcher to run before the LLM loads (`model` is
    built on the meta device: `model.check_deepencoder_weights`): safetensors give their
    headers, zip-format .pth/.bin are memory-mapped. A big legacy-format pickle would be
    read in full (then again by the load), so with one among the files only the
    configuration is checked: returns None. Otherwise the LoadReport the load would give."""
    paths = _paths(path)
    if not all(headers_cheap(f) for p in paths for f in find_tensor_files(p)):
        check_config_matches(model.config, paths, source=config_source)
        return None
    return _match(model, paths, headers_only=True, config_source=config_source)[1]


# What wrappers put in front of every name: DistributedDataParallel / DataParallel
# (`module.`) and torch.compile (`_orig_mod.`), possibly both.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def unwrapped_names(store: TensorStore) -> Tuple[Dict[str, str], Dict[str, str]]:
    """{name without wrapper prefix: name in the file}, and {file: prefix removed}.

    A prefix is removed only where every tensor of a file carries it (a training wrapper
    saved the file), so a name that merely starts so inside a real layout is kept.
    """
    by_file: Dict[Path, List[str]] = {}
    for key in store:
        by_file.setdefault(store.file_of(key), []).append(key)
    names: Dict[str, str] = {}
    stripped: Dict[str, str] = {}
    for path, keys in by_file.items():
        prefix = common_wrapper_prefix(keys)
        if prefix:
            stripped[str(path)] = prefix
        for key in keys:
            name = key[len(prefix):]
            if name in names:
                raise CheckpointError(
                    f"tensor {name!r} appears in both {store.file_of(names[name])} ({names[name]!r}) and {path} ({key!r})"
                )
            names[name] = key
    return names, stripped


def common_wrapper_prefix(keys: Sequence[str]) -> str:
    """The wrapper prefixes every key starts with ('', 'module.', 'module._orig_mod.', ...)."""
    prefix = ""
    while True:
        rest = [k[len(prefix):] for k in keys]
        step = next((w for w in WRAPPER_PREFIXES if rest and all(r.startswith(w) for r in rest)), None)
        if step is None:
            return prefix
        prefix += step


def split_weights_option(text: str) -> List[str]:
    """`--vision_tower_weights "sam.pth, clip.safetensors"` -> ['sam.pth', 'clip.safetensors']:
    the one way the option's text becomes paths (the arguments class, the train launcher's
    check before the model loads). Spaces around a path are dropped (`_paths` says why), so
    are blank entries ("a,,b")."""
    return [p.strip() for p in text.split(",") if p.strip()]


def _paths(path: Union[PathLike, Sequence[PathLike]]) -> List[Path]:
    """The checkpoint paths of `path` (one, or a list), as every loader here reads them:
    `~` expanded (tensor_files.checkpoint_path) and spaces around a typed path removed.
    `--vision_tower_weights "sam.pth, clip.safetensors"` is how lists are written; its
    second path " clip.safetensors" was "no such file" with the space unseen. Stripped
    rather than quoted in the message: a weights file whose name starts or ends with a
    space is made by accident, never on purpose, and the list now just works. A list's
    blank entries are dropped, as the arguments class drops empty ones ("a,,b")."""
    items = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    paths = []
    for item in items:
        text = item.strip() if isinstance(item, str) else os.fspath(item)
        if text:
            paths.append(checkpoint_path(text))
        elif len(items) == 1:
            raise CheckpointError(f"an empty checkpoint path ({item!r})")
    if not paths:
        raise CheckpointError(f"no checkpoint path in {items!r}")
    for folder in paths:
        _refuse_two_towers(folder)
    return paths


def _refuse_two_towers(folder: Path) -> None:
    """A folder holding our own deepencoder.safetensors + deepencoder_config.json and other
    weights that a folder read picks first (a DeepMoLM model's model.safetensors: a tower
    saved into a checkpoint folder) is refused, naming both. Which one the user means cannot
    be told: the folder is also a whole model the host loads with its own tower, so neither
    choice is safe without a word. Was: the model's tower loaded, the file just saved skipped
    silently. Every loader and check (from_pretrained, --vision_tower_weights,
    check_deepencoder_weights) comes through _paths, so they all choose here."""
    own = folder / WEIGHTS_NAME
    if not (folder.is_dir() and own.is_file() and (folder / CONFIG_NAME).is_file()):
        return
    others = [f for f in find_tensor_files(folder) if f != own]
    if others:
        raise CheckpointError(
            f"{folder} holds two kinds of weights: the DeepEncoder folder's own {WEIGHTS_NAME} (with {CONFIG_NAME}) "
            f"and {', '.join(f.name for f in others)}, which a folder read would load instead; give the file you "
            f"mean: {own} or {others[0]}")


def to_deepseek_layout(model_or_state: "torch.nn.Module | Dict[str, torch.Tensor]") -> Dict[str, torch.Tensor]:
    """Our tower's tensors under DeepSeek-OCR's names (the inverse of its loader).

    CLIP's unused patch conv is not part of our tower and is not produced.
    """
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    out = {}
    for key, value in state.items():
        theirs = next((t for t in (r.to_theirs(key) for r in DEEPSEEK_RULES) if t), None)
        if theirs is None:
            raise KeyError(f"no DeepSeek-OCR name for tower tensor {key!r}")
        out[theirs] = value
    return out
