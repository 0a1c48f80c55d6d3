"""The host-facing vision tower `deepencoder`.

llava-torch's model code talks to a tower through the contract of its CLIPVisionTower:
`is_loaded`, `load_model(device_map=None)`, `image_processor`, `hidden_size`, `dtype`,
`device`, `config`, `num_patches_per_side`, and `forward(images) -> (B, N, hidden)`;
its builder constructs towers with `delay_load=True` when a saved model is reloaded.
This class fulfils that contract around DeepEncoder, reading its settings from the host
arguments / model config object (`args`):

- `vision_tower_weights`: checkpoint path(s) for `load_deepencoder`, or the word
  "random" for an explicitly untrained tower. No weights and no "random" is an error:
  the tower is never silently random.
- `deepencoder_config`: a DeepEncoderConfig, a dict of its fields, or a JSON path
  (default: the deepencoder_config.json saved with `vision_tower_weights` when they are a
  saved DeepEncoder folder, else DeepSeek-OCR's sizes: as `load_deepencoder`).
- `image_mode`: "base" (one 1024 view) or "tiles" (plus 640 tiles; its tile size checked
  against the global view: `tower_image_processor`).
- `unfreeze_mm_vision_tower`: train the tower (default: frozen, as the host's towers).
- `vision_feature_cache`: a folder where a frozen tower keeps each view's features
  (feature_cache.py), so a view is encoded once across epochs, ranks and runs; also
  `enable_feature_cache(folder)`. A tower with trainable weights refuses to use it.

A list of views (the host's per-image list, tiles) is encoded with one batched call per
view size rather than one call per element.

`delay_load=True` is how the host rebuilds a *saved* model (LlavaMetaModel.__init__):
the tower then only builds its module structure, and its weights come from the model
checkpoint being loaded, never from `vision_tower_weights` again (that path may be
relative, or gone). Loaders check that the checkpoint really held them
(deepmolm_plugin.model.loading).

As in the host, the encoder module lives at `.vision_tower`, so its weights are saved
under `model.vision_tower.vision_tower.*`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..tensor_files import CheckpointError
from .config import DeepEncoderConfig, resolve_dtype
from .feature_cache import FeatureCache, compute_dtype, module_structure, weights_digest, weights_signature
from .image_processor import DeepEncoderImageProcessor
from .model import DeepEncoder, NonFiniteValues, load_deepencoder

RANDOM_WEIGHTS = "random"


class TowerWeightsError(CheckpointError):
    """`vision_tower_weights` the tower cannot load (the loader's CheckpointError, or a path
    gone since it was checked): the train launcher reports it as one line naming the option,
    apart from the CheckpointErrors of other files."""


def config_from_args(args) -> DeepEncoderConfig:
    """The tower configuration of host arguments / a model config. Without
    `deepencoder_config`, the one `load_deepencoder(vision_tower_weights)` takes: a saved
    DeepEncoder folder's own, else DeepSeek-OCR's sizes. (It was DeepSeek-OCR's sizes
    always, so a saved tiny folder was refused as "given" 1024 px by a user who gave no
    configuration; the host writes this configuration into the model's config.json
    (patches.arguments), which now records the sizes the tower has.)"""
    value = getattr(args, "deepencoder_config", None)
    if value is None:
        weights = getattr(args, "vision_tower_weights", None)
        if weights is None or weights == RANDOM_WEIGHTS:
            return DeepEncoderConfig()
        from .checkpoint import checkpoint_config

        try:
            return checkpoint_config(weights)
        except CheckpointError as e:  # its deepencoder_config.json is unreadable
            raise TowerWeightsError(str(e)) from e
    if isinstance(value, DeepEncoderConfig):
        return value
    if isinstance(value, dict):
        return DeepEncoderConfig.from_dict(value)
    if isinstance(value, (str, os.PathLike)):
        return DeepEncoderConfig.load(value)
    raise TypeError(f"deepencoder_config must be a DeepEncoderConfig, dict or path, got {type(value)}")


def config_source(args) -> str:
    """Where `config_from_args(args)` reads the tower's configuration, as messages name it:
    the file `deepencoder_config` names; the config.json of a saved model (transformers sets
    a loaded config's name_or_path to its folder before the model, and so the tower, is
    built); the configuration saved with `vision_tower_weights`; else DeepEncoderConfig's
    defaults (DeepSeek-OCR's sizes)."""
    value = getattr(args, "deepencoder_config", None)
    if isinstance(value, (str, os.PathLike)):
        return f"deepencoder_config {os.fspath(value)}"
    if value is not None:  # its fields (a dict, a DeepEncoderConfig)
        folder = getattr(args, "name_or_path", None)
        file = os.path.join(folder, "config.json") if isinstance(folder, str) and folder else ""
        return f"the deepencoder_config of {file}" if os.path.isfile(file) else "deepencoder_config"
    weights = getattr(args, "vision_tower_weights", None)
    if weights is None or weights == RANDOM_WEIGHTS:
        return "DeepEncoderConfig's defaults (DeepSeek-OCR's sizes)"
    if not isinstance(weights, (str, os.PathLike)):  # several files (SAM + CLIP)
        weights = ", ".join(map(os.fspath, weights))
    return f"the DeepEncoder configuration saved with vision_tower_weights {os.fspath(weights)}"


def tower_image_processor(args, config: Optional[DeepEncoderConfig] = None) -> DeepEncoderImageProcessor:
    """The image processor of the tower `args` (host arguments / a model config) builds: its
    configuration (`config` where the caller has read it already, else config_from_args) in
    its image_mode. DeepEncoderImageProcessor.from_config checks a tiles mode's tiles against
    the global view; a refusal here names where the configuration came from (`config_source`).
    The tower itself (training however started, and every loader: chat, eval, GUI) and the
    checks of a model config made before one is built (check_model_views, checkpoint_config)
    make their processor here."""
    config = config_from_args(args) if config is None else config
    mode = getattr(args, "image_mode", None) or "base"
    try:
        return DeepEncoderImageProcessor.from_config(config, mode=mode)
    except ValueError as e:
        raise ValueError(f"{config_source(args)} in image_mode {mode!r}: {e}") from e


def check_model_views(image: str, config) -> None:
    """ValueError when the image processor of the model with `config` would refuse `image`
    (a path): in tiles mode, or without the host's `pad` squaring, an image whose aspect
    ratio leaves nothing of it in the view (1 x 3000 px). From the header, no decoding: what
    the chat CLI and eval check before the model loads (it was a traceback after)."""
    mode = getattr(config, "image_mode", None) or "base"
    # The host's process_images pads only when the config says "pad"; a config without the
    # field (written by hand, not by the host's train.py) gets no padding there either.
    if mode == "base" and getattr(config, "image_aspect_ratio", None) == "pad":
        return  # the host pads every image to a square first: any aspect ratio fits
    tower_image_processor(config).num_llm_positions(image)  # raises what preprocess would


def _checked_views(views, name: str) -> torch.Tensor:
    """`views` if it is a floating-point tensor, else a TypeError / ValueError naming it.
    Integer views were encoded as they were: raw 0..255 pixels (or 0/1 booleans) cast to
    float, where the encoder expects the processor's normalised values; a list or an array
    was an AttributeError ("'list' object has no attribute 'dim'")."""
    if not isinstance(views, torch.Tensor):
        raise TypeError(f"vision tower {name} is a {type(views).__name__}; expected a float tensor of views "
                        "(B, 3, S, S) / (3, S, S) from the image processor, or a list of them")
    if not views.is_floating_point():
        raise ValueError(f"vision tower {name} has dtype {views.dtype}; views are the image processor's "
                         "normalised float tensors (image_processor.preprocess(...)['pixel_values']), not pixels")
    # NaN/inf: checked once on the batch by DeepEncoder.forward, named here after it fails
    # (`_named`; was: a scan and a host sync per image here, and the batch again there)
    return views


@contextlib.contextmanager
def _named(label):
    """NaN/inf views found by the encoder's one check on the batch re-raised naming each view
    as the caller gave it (``label(row)``: ``vision tower images[2]``), not by its row in the
    batch the tower made."""
    try:
        yield
    except NonFiniteValues as error:
        raise error.relabelled(label) from None


def partitioned_across_ranks(*modules: nn.Module) -> bool:
    """Whether DeepSpeed ZeRO-3 partitions the modules' weights (it marks each with `ds_id`)
    across running ranks: then each of their forwards gathers the weights from every rank
    together, and the ranks must call them alike."""
    partitioned = any(hasattr(p, "ds_id") for m in modules for p in m.parameters())
    return partitioned and torch.distributed.is_available() and torch.distributed.is_initialized()


class DeepEncoderVisionTower(nn.Module):
    def __init__(self, vision_tower: str, args=None, delay_load: bool = False):
        super().__init__()
        self.vision_tower_name = vision_tower
        self.encoder_config = config_from_args(args)
        self.weights = getattr(args, "vision_tower_weights", None)
        self.trainable = bool(getattr(args, "unfreeze_mm_vision_tower", False))
        self.image_processor = tower_image_processor(args, self.encoder_config)  # tiles mode: its tiles checked
        self.is_loaded = False
        self.feature_cache: Optional[FeatureCache] = None
        self._weights_digest: Tuple[tuple, str] = ((), "")  # (weights_signature, digest)
        self.enable_feature_cache(getattr(args, "vision_feature_cache", None))
        if delay_load:
            self._build(weights_from="model checkpoint")
        else:
            self.load_model()

    def load_model(self, device_map=None) -> None:
        if self.is_loaded:
            return
        if self.weights is None:
            raise ValueError(
                "vision tower 'deepencoder' has no weights: pass --vision_tower_weights PATH "
                "(a DeepSeek-OCR checkpoint, [SAM ViT-B .pth, CLIP ViT-L/14] files, or a saved "
                f"DeepEncoder folder), or --vision_tower_weights {RANDOM_WEIGHTS} to train one "
                "from scratch"
            )
        if self.weights == RANDOM_WEIGHTS:
            self._build(weights_from="random initialisation")
        else:
            try:
                encoder = load_deepencoder(self.weights, config=self.encoder_config)
            except (CheckpointError, OSError) as e:
                raise TowerWeightsError(str(e)) from e
            self._install(encoder, str(self.weights))
        if device_map is not None and device_map != "auto":
            self.vision_tower.to(device=device_map)

    def _build(self, weights_from: str) -> None:
        encoder = DeepEncoder(self.encoder_config)
        self._install(encoder.to(dtype=resolve_dtype(self.encoder_config.dtype)), weights_from)

    def _install(self, encoder: DeepEncoder, weights_from: str) -> None:
        self.vision_tower = encoder
        self.set_trainable(self.trainable)
        self.weights_from = weights_from
        self.is_loaded = True

    def set_trainable(self, trainable: bool) -> None:
        """Train the encoder's weights or freeze them (requires_grad), and remember which.
        Called again after anything that replaces the parameters: transformers'
        from_pretrained puts new ones (requires_grad=True) in place of those built here,
        and a stage-2 run gets its --unfreeze_mm_vision_tower only after the tower exists."""
        self.trainable = bool(trainable)
        self.vision_tower.requires_grad_(self.trainable)

    def to(self, *args, **kwargs):
        """As nn.Module.to, except that float16 on CPU becomes float32.

        llava's train.py casts every tower to float16 unless --bf16, also on CPU, where
        half precision is slow and loses accuracy for nothing; CUDA keeps float16.
        """
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        target = device or (self.device if self.is_loaded else torch.device("cpu"))
        if dtype == torch.float16 and torch.device(target).type == "cpu":
            kwargs = {"device": device, "dtype": torch.float32} if device else {"dtype": torch.float32}
            return super().to(**kwargs)
        return super().to(*args, **kwargs)

    # --- the host's contract -------------------------------------------------------------
    @property
    def config(self) -> DeepEncoderConfig:
        return self.encoder_config

    @property
    def hidden_size(self) -> int:
        return self.encoder_config.hidden_size  # 2048: CLIP 1024 + compressor 1024

    @property
    def num_patches_per_side(self) -> int:
        return self.encoder_config.tokens_per_side(self.encoder_config.image_size)

    @property
    def num_patches(self) -> int:
        return self.num_patches_per_side**2

    @property
    def dtype(self) -> torch.dtype:
        return self.vision_tower.dtype

    @property
    def device(self) -> torch.device:
        return self.vision_tower.device

    def forward(self, images: Union[torch.Tensor, Sequence[Optional[torch.Tensor]]]):
        """(B, 3, S, S) -> (B, (S/64)^2, 2048).

        A list of (3, S, S) / (n, 3, S, S) views (or None) -> a list of (n, N, 2048) (or
        None, also for an empty entry); views of one size go through one batched call.
        Views are the image processor's float tensors: integer pixels are refused.
        """
        # Build a graph only when something in the tower trains: a frozen tower needs
        # none, a trainable one must get gradients (DeepSeek's code always used no_grad).
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.vision_tower.parameters())
        with torch.set_grad_enabled(needs_grad):
            if isinstance(images, (list, tuple)):
                return self._encode_list(images)
            with _named(lambda row: f"vision tower images[{row}]"):
                return self._encode(_checked_views(images, "images"))

    def _encode_list(self, images: Sequence[Optional[torch.Tensor]]) -> List[Optional[torch.Tensor]]:
        views = [None if img is None else _checked_views(img, f"images[{k}]") for k, img in enumerate(images)]
        # what each view of the batch is called in the caller's list: images[k] for one (3, S, S)
        # view, images[k][j] for the views of a (n, 3, S, S) entry
        names = [[] if v is None else [f"images[{k}]"] if v.dim() == 3 else [f"images[{k}][{j}]" for j in range(len(v))]
                 for k, v in enumerate(views)]
        views = [v if v is None or v.dim() == 4 else v.unsqueeze(0) for v in views]
        groups: Dict[tuple, List[int]] = {}  # (view shape, dtype, device) -> positions in `views`
        for i, v in enumerate(views):
            if v is not None and len(v):
                groups.setdefault((tuple(v.shape[1:]), v.dtype, v.device), []).append(i)
        out: List[Optional[torch.Tensor]] = [None] * len(views)
        for positions in groups.values():
            batch = torch.cat([views[i] for i in positions]) if len(positions) > 1 else views[positions[0]]
            in_batch = [name for i in positions for name in names[i]]  # row -> the caller's name
            with _named(lambda row: f"vision tower {in_batch[row]}"):
                features = self._encode(batch)  # (sum n, N, 2048)
            for i, part in zip(positions, features.split([len(views[i]) for i in positions])):
                out[i] = part
        return out

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 4 and not images.shape[0]:  # (0, 3, S, S): the encoder's reshapes fail on it
            self.vision_tower._check_input(images)  # still a clear error for a wrong shape
            side = self.encoder_config.tokens_per_side(images.shape[-1])
            return images.new_zeros((0, side * side, self.hidden_size))
        if self.feature_cache is None:
            features = self.vision_tower(images.to(device=self.device, dtype=self.dtype))
        else:
            features = self._encode_cached(images)
        return features.to(images.dtype) if images.is_floating_point() else features

    # --- the feature cache -----------------------------------------------------------------
    def enable_feature_cache(self, folder: "str | os.PathLike | None") -> Optional[FeatureCache]:
        """Look views up in (and add them to) the cache in `folder`; None turns it off."""
        self.feature_cache = None if folder is None else FeatureCache(folder)
        return self.feature_cache

    def _encode_cached(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, N, 2048) in the tower's dtype: stored views are read, the
        others encoded together in one call and stored."""
        if self.trainable or any(p.requires_grad for p in self.vision_tower.parameters()):
            why = ("it is set to train (--unfreeze_mm_vision_tower)" if self.trainable else
                   "some of its weights have requires_grad=True, set from outside the tower "
                   "(e.g. model.requires_grad_(True))")
            raise RuntimeError(
                f"the vision feature cache needs a frozen tower, but {why}: its features would "
                "change every step. Drop the feature cache, or keep the tower frozen"
            )
        cache, tower = self.feature_cache, self.tower_digest()
        dtype, expected = compute_dtype(self.dtype, self.device)
        keys = [cache.key(view, tower, self.image_processor.mode, dtype) for view in images]
        side = self.encoder_config.tokens_per_side(images.shape[-1])
        shape = (side * side, self.encoder_config.hidden_size)  # what the encoder gives for one view
        found = [cache.get(key, shape, expected) for key in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if self._any_rank_encodes(bool(missing)):
            # A rank with nothing to encode still runs one view (its output unused) so
            # that ZeRO-3's weight gathers happen on every rank together.
            batch = images[missing] if missing else images[:1]
            try:
                computed = self.vision_tower(batch.to(device=self.device, dtype=self.dtype))
            except NonFiniteValues as error:  # its rows are those of `batch`: name them in `images`
                raise error.moved(missing, len(images), lambda row: f"images[{row}]") from None
            for i, features in zip(missing, computed):
                cache.put(keys[i], features)
                found[i] = features
        return torch.stack([f.to(device=self.device, dtype=self.dtype) for f in found])

    def _any_rank_encodes(self, encodes: bool) -> bool:
        """Whether this rank must run the encoder. Under DeepSpeed ZeRO-3 every forward of
        the (partitioned) tower gathers its weights from all ranks, so a rank that found
        all its views in the cache while another did not would leave that one waiting
        forever: there the ranks agree (one all-reduce) and all encode if any must."""
        if not partitioned_across_ranks(self.vision_tower):
            return encodes
        flag = torch.tensor([int(encodes)], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def tower_digest(self) -> str:
        """What the cache keys the tower by: its weights' digest, the architecture fields of
        the running encoder's configuration (heads, norm eps... change the output but not
        the weights; the encoder's own, as one put in `vision_tower`'s place may differ from
        the tower's `encoder_config`) and its module structure (a swapped activation)."""
        from .checkpoint import architecture

        config = getattr(self.vision_tower, "config", None) or self.encoder_config
        spec = json.dumps(architecture(config), sort_keys=True, default=list)
        structure = module_structure(self.vision_tower)
        return hashlib.sha256(f"{self.weights_digest()}|{spec}|{structure}".encode()).hexdigest()

    def weights_digest(self) -> str:
        """sha256 of the encoder's weights, redone only when they were written or replaced."""
        signature = weights_signature(self.vision_tower)
        if signature != self._weights_digest[0]:
            self._weights_digest = (signature, weights_digest(self.vision_tower))
        return self._weights_digest[1]
