"""LlavaQwen2ForCausalLM: the host's LLaVA architecture on a Qwen2 LLM, with molecule_fp.

llava-torch ships Llava classes for Llama, Mistral and MPT only; a Qwen2 checkpoint
loaded through them is silently built as Llama. This class is the host's own recipe
(LlavaMetaModel + LlavaMetaForCausalLM mixed into the HF model, as llava_llama.py)
on Qwen2, registered with the Auto classes as model type `llava_qwen2`.

molecule_fp is an explicit argument all the way down: `forward` and `generate` take
`molecule_fp` (B, atoms, levels) and, in tiles mode, `tile_images` (per sample
(T_i, 3, 640, 640)) and `tile_grids`, and hand them to `encode_images(images,
molecule_fp, tile_images, tile_grids)`. The host's `prepare_inputs_labels_for_multimodal
(..., images, image_sizes)` has no slot for them, and it calls `self.encode_images(images)`
itself before splicing image positions into the text. The one seam: our override of
`prepare_inputs_labels_for_multimodal` encodes the images first, with their molecules,
and hands the host an `EncodedImages` in place of the pixel batch; the host passes it to
`encode_images`, which returns the features it carries. The projector returns each image's
LLM positions in DeepEncoder's layout (rows + `image_newline`, one `view_seperator`): a
list of (P_i, H) tensors, which the host's splicing code indexes per image.

Optional heads (the KFLM2 property head) come from `deepmolm_plugin.model.heads`, as the
config asks; this class only calls their `batch_loss` / `predict`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, List, Optional, Sequence

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen2Model

from llava.model.llava_arch import LlavaMetaForCausalLM, LlavaMetaModel

from ..encoder.tower import partitioned_across_ranks
from . import config_record
from .heads import ATTRIBUTE as HEAD_ATTRIBUTE
from .heads import build_head


class EncodedImages:
    """Image features already encoded with their molecules (one (P_i, H) tensor per image),
    passed to the host's splicing code where it expects the pixel batch. `ndim` = 4 sends
    the host down its one-tensor-per-image path, which hands this to `encode_images`."""

    ndim = 4

    def __init__(self, features: List[torch.Tensor]):
        self.features = features


class LlavaQwen2Config(Qwen2Config):
    model_type = "llava_qwen2"

    def to_dict(self) -> dict:
        """Qwen2's fields plus the record of the settings no tensor shape shows
        (config_record.py), taken from the values being written."""
        values = super().to_dict()
        values[config_record.RECORD] = config_record.settings_of(values)
        return values


class PromptTooLong(ValueError):
    """A generation prompt longer than the model's context (`check_prompt_fits`): `positions`
    the prompt's (text tokens + image positions), `limit` the context; `at_least`: `positions`
    is only the fewest its text can take, the prompt refused before it was tokenised
    (`prompt_length.text_past_context`)."""

    def __init__(self, message: str, positions: int = 0, limit: int = 0, at_least: bool = False):
        super().__init__(message)
        self.positions, self.limit, self.at_least = positions, limit, at_least


class LlavaQwen2Model(LlavaMetaModel, Qwen2Model):
    config_class = LlavaQwen2Config

    def __init__(self, config: Qwen2Config):
        super().__init__(config)
        self.check_tower_feeds_projector()
        self.ensure_optional_head()

    def check_tower_feeds_projector(self) -> None:
        """The projector's input width must be the tower's output width. A config.json whose
        mm_hidden_size (with projector weights of that width) disagrees with its
        deepencoder_config built a model that loaded and failed at its first image."""
        tower, projector = self.get_vision_tower(), getattr(self, "mm_projector", None)
        expects = getattr(getattr(projector, "config", None), "mm_hidden_size", None)
        gives = getattr(tower, "hidden_size", None)
        if expects is not None and gives is not None and expects != gives:
            raise ValueError(
                f"the projector takes features of width mm_hidden_size={expects}, but the vision tower "
                f"{getattr(self.config, 'mm_vision_tower', '?')!r} gives {gives} (its configuration disagrees)"
            )

    def ensure_optional_head(self) -> None:
        """Build the optional head the config asks for (`aux_property_task`), once."""
        if getattr(self, HEAD_ATTRIBUTE, None) is None:
            head = build_head(self.config)
            if head is not None:
                setattr(self, HEAD_ATTRIBUTE, head)

    @property
    def optional_head(self) -> Optional[nn.Module]:
        return getattr(self, HEAD_ATTRIBUTE, None)


class LlavaQwen2ForCausalLM(Qwen2ForCausalLM, LlavaMetaForCausalLM):
    config_class = LlavaQwen2Config

    def __init__(self, config: LlavaQwen2Config, *, check_saved_settings_of: Optional[str] = None):
        """`check_saved_settings_of`: the checkpoint `config` was read from (from_pretrained
        passes it); its recorded settings are then checked (config_record.check_saved_settings)."""
        super(Qwen2ForCausalLM, self).__init__(config)  # PreTrainedModel only: we build the parts
        self.model = LlavaQwen2Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.aux_property_losses: List[float] = []  # logged by patches.aux_property_logging
        self.post_init()
        if check_saved_settings_of is not None:
            # Here, on the config transformers builds with (config.json, or the config object given,
            # with from_pretrained's keyword overrides applied), and before any weight is read. After
            # the build: a config that cannot be built at all gets the build's own error, naming the
            # field (an image_size that is a list), rather than the list of edits.
            config_record.check_saved_settings(Qwen2Config.to_dict(config), check_saved_settings_of)

    def get_model(self) -> LlavaQwen2Model:
        return self.model

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As transformers' (AutoModelForCausalLM's too: it calls this one), and:

        - the settings recorded in a saved config.json (config_record.py) must be the config's:
          an edit (a fusion_heads or a tower's clip_heads changed in the file, or by a keyword
          override such as `fusion_heads=1`) is a CheckpointError listing each one, as every
          loader of ours says it (was: only load_llm checked; this loaded another model without
          a word). A config object given as `config=` is checked alike: its record is what the
          weights were saved with (AutoModelForCausalLM and load_llm pass one, read from the
          folder). To run the weights with other such settings on purpose, delete the record
          from the config first (`del config.deepmolm_saved_settings`): a config without one,
          as a plain Qwen2 checkpoint's, is not checked, and a later save records the new values.
        - a requested `dtype` / `torch_dtype` (a torch.dtype, its name, or "auto": what
          transformers resolved it to) reaches the vision tower too (`cast_vision_tower`): it
          is built in its own config's dtype and stayed float32 next to a bf16 LLM. Not
          requested, the tower keeps that dtype.
        - a loaded vision tower is frozen again (unless it is set to train): transformers puts
          new parameters, all with requires_grad=True, in place of the ones the tower froze when
          it was built, so a stage-2 run trained the tower it was never asked to, and the
          feature cache refused it.
        """
        path = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        config = kwargs.get("config")
        source = config if isinstance(config, (str, os.PathLike)) else path  # where config.json was read
        requested = kwargs.get("dtype") if kwargs.get("dtype") is not None else kwargs.get("torch_dtype")
        # transformers hands keywords no config field takes to __init__ (documented for from_pretrained)
        kwargs["check_saved_settings_of"] = os.fspath(source) if source is not None else "the config given"
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True
        if requested is not None:
            model.cast_vision_tower(model.config.dtype)  # transformers' choice for `requested` ("auto" too)
        tower = model.get_vision_tower()
        if hasattr(tower, "set_trainable") and getattr(tower, "is_loaded", False):
            tower.set_trainable(tower.trainable)
        return loaded

    def cast_vision_tower(self, dtype: torch.dtype) -> bool:
        """Cast the vision tower (if any) to `dtype` with its own `to` (a DeepEncoder tower on
        the CPU keeps float16 as float32); whether its dtype changed. The tower is built in its
        saved config's dtype (float32 for a tower trained in mixed precision), whatever the
        LLM was loaded in: without this, "auto" ran the LLM in bf16 on a GPU and the encoder,
        most of the compute, in fp32."""
        tower = self.get_vision_tower()
        if tower is None or not getattr(tower, "is_loaded", True) or tower.dtype == dtype:
            return False
        before = tower.dtype
        tower.to(dtype=dtype)
        return tower.dtype != before

    def initialize_vision_tokenizer(self, model_args, tokenizer):
        """llava's train.py sets `pad_token = unk_token` for every template but v0; Qwen2
        tokenizers have no unk token, so that leaves no pad token at all. Qwen's own pad
        token is <|endoftext|>."""
        if tokenizer.pad_token is None:
            if "<|endoftext|>" not in tokenizer.get_vocab():
                raise ValueError("Qwen2 tokenizer has neither a pad token nor <|endoftext|>")
            tokenizer.pad_token = "<|endoftext|>"
        return super().initialize_vision_tokenizer(model_args, tokenizer)

    # --- molecule-aware image encoding -------------------------------------------------
    def encode_images(self, images, molecule_fp: Optional[torch.Tensor] = None,
                      tile_images: Optional[Sequence[Optional[torch.Tensor]]] = None,
                      tile_grids=None) -> List[torch.Tensor]:
        """(B, 3, S, S) global views + molecule_fp (B, atoms, levels) [+ tiles] -> B tensors
        (P_i, H). Given an `EncodedImages` (the host calling back from the seam), its features."""
        if isinstance(images, EncodedImages):
            return images.features
        tower, projector = self.get_model().get_vision_tower(), self.get_model().mm_projector
        self.check_tile_arguments(tile_images, tile_grids)
        global_features = tower(images)  # (B, (S/64)^2, 2048)
        blank = self._blank_tile(tile_images, images)
        tile_features = blank_features = None
        if blank is not None:  # the other ranks' tile calls, joined (see _blank_tile)
            blank_features = tower(blank)  # (1, 100, 2048)
        elif tile_images is not None:  # every sample's tiles in one batched call; None where a sample has none
            tile_features = tower(list(tile_images))  # per sample (T_i, 100, 2048) or None
        # Grids go on whenever one is given, so that the projector's "given together" check sees
        # them (was: dropped when there were no tile features, and the image was laid out as its
        # global view alone); a list of None grids only is no tile at all.
        grids = tile_grids if tile_features is not None or _any_given(tile_grids) else None
        return projector.embed_images(global_features, molecule_fp, tile_features, grids, blank_tiles=blank_features)

    def image_mode(self) -> str:
        """The vision tower's image mode: "base" (one global view) or "tiles" (plus tiles)."""
        return getattr(getattr(self.get_model().get_vision_tower(), "image_processor", None), "mode", "base")

    def check_tile_arguments(self, tile_images, tile_grids) -> None:
        """ValueError for tile arguments the model cannot use as given: any tile or grid for a
        tower that is not in tiles mode (was: laid out as a mosaic the model never trained
        on), or grids without tile_images (was: silently laid out as the global view alone)."""
        mode = self.image_mode()
        tiles_given = tile_images is not None and any(t is not None and len(t) for t in tile_images)
        if mode != "tiles" and (tiles_given or _any_given(tile_grids)):
            raise ValueError(f"tile_images / tile_grids were given, but this model's vision tower is in {mode!r} "
                             "image mode: it sees the global view only (only a 'tiles' mode model takes tiles)")
        if tile_images is None and _any_given(tile_grids):
            raise ValueError("tile_grids were given without tile_images: in tiles mode they come together "
                             "(one entry per image each, None where an image has no tiles)")

    def _blank_tile(self, tile_images, images: torch.Tensor) -> Optional[torch.Tensor]:
        """A (1, 3, T, T) blank tile when, under DeepSpeed ZeRO-3 in tiles mode, this rank's
        batch has no tiles and another rank's has; else None. Every forward and backward
        of the partitioned tower and projector gathers their weights from all ranks
        together, in the same order: a rank that skipped the tile calls while another made
        them aborted the run at its first such step (2 CPU ranks, gloo: "collective
        mismatch"; NCCL waits for ever). The ranks agree on it with one all-reduce a step."""
        tower, projector = self.get_model().get_vision_tower(), self.get_model().mm_projector
        if self.image_mode() != "tiles":
            return None
        if not partitioned_across_ranks(tower, projector):
            return None
        has_tiles = tile_images is not None and any(t is not None and len(t) for t in tile_images)
        anyone = torch.tensor([int(has_tiles)], device=images.device)
        torch.distributed.all_reduce(anyone, op=torch.distributed.ReduceOp.MAX)
        if has_tiles or not anyone.item():
            return None
        side = tower.encoder_config.tile_size
        return images.new_zeros((1, 3, side, side))

    def prepare_inputs_labels_for_multimodal(self, input_ids, position_ids, attention_mask, past_key_values, labels,
                                             images, image_sizes=None, molecule_fp=None, tile_images=None,
                                             tile_grids=None):
        """The host's splicing of image positions into the text, with images encoded here,
        together with their molecules (the seam described at the top of this module)."""
        host = super().prepare_inputs_labels_for_multimodal
        # The host skips the splice for every one-token input, its shortcut for a cached
        # generation step; a one-token prompt of its own (just "<image>") is spliced here like
        # any other (was: its prompt, image and molecule_fp were dropped without a word, and
        # [[<image>]] was an IndexError in the embedding).
        cached_step = input_ids is not None and input_ids.shape[1] == 1 and _continues_cache(past_key_values)
        if self.get_vision_tower() is None or images is None or cached_step:
            if molecule_fp is not None and images is None:
                raise ValueError("molecule_fp was given without images: the projector needs both")
            return host(input_ids, position_ids, attention_mask, past_key_values, labels, images, image_sizes)
        if input_ids is None:
            raise ValueError("images were given without input_ids: the prompt's <image> slots say where they go")
        if isinstance(images, (list, tuple)) or images.ndim == 5:
            raise ValueError("DeepMoLM takes one (B, 3, S, S) batch of global views; tiles come as tile_images")
        given_mask = attention_mask
        if attention_mask is None:
            # The host hands back the spliced (padded) mask only for a mask it was given: rows
            # whose images give different position counts (tiles) were padded, and forward and
            # predict_properties then attended to and pooled the padding.
            attention_mask = torch.ones_like(input_ids, dtype=torch.long)
        if input_ids.shape[1] == 1:  # one masked pad column: the host then splices it (see above)
            input_ids, attention_mask, labels = _widen_one_token(input_ids, attention_mask, labels)
        self.check_image_slots(input_ids, attention_mask, images.shape[0], inference=labels is None)
        # The image tokens join the text embeddings in the embeddings' dtype. The projector
        # is built after the LLM is loaded (in bf16 under `--bf16 True`) and stays in fp32
        # where nothing casts it (DeepSpeed ZeRO-3 casts only weights created under its
        # zero.Init): the host's torch.cat then promoted the whole sequence to fp32, and the
        # LLM's bf16 linears refused it ("expected m1 and m2 to have the same dtype").
        dtype = self.get_model().embed_tokens.weight.dtype
        features = [f.to(dtype) for f in self.encode_images(images, molecule_fp, tile_images, tile_grids)]
        if labels is None:  # generating: a cut prompt would be answered as if whole
            self.check_prompt_fits(input_ids, attention_mask, features)
        spliced = host(input_ids, position_ids, attention_mask, past_key_values, labels, EncodedImages(features),
                       image_sizes)
        if given_mask is None and bool(spliced[2].all()):  # nothing padded: no mask, as the host gives
            spliced = spliced[:2] + (None,) + spliced[3:]
        return spliced

    @staticmethod
    def check_image_slots(input_ids, attention_mask, n_images: int, inference: bool) -> None:
        """ValueError unless the images (and their molecules, one per image) match the prompts'
        <image> slots (IMAGE_TOKEN_INDEX where attention_mask is 1). Tiles belong to their
        image's one slot. The host's splice takes one image per slot and one placeholder image
        per prompt without a slot (train.py gives text-only records a blank image and our
        collator a blank molecule), so in training images = slots + text-only prompts.
        Generating or predicting (no labels), a prompt without a slot next to images is refused
        too: nothing hands it a placeholder there, so its image was the one meant for the
        question. Was: extra images and molecules were dropped without a word (a prompt without
        <image> ignored its image), and too few were an IndexError inside llava_arch."""
        from llava.constants import IMAGE_TOKEN_INDEX

        slots = []
        for b, ids in enumerate(input_ids):  # ids (L,)
            if attention_mask is not None:
                ids = ids[attention_mask[b].bool()]
            slots.append(int((ids == IMAGE_TOKEN_INDEX).sum()))
        text_only = [b for b, n in enumerate(slots) if n == 0]
        if inference and text_only:
            raise ValueError(f"{n_images} images (and molecules) were given, but prompt {text_only[0]} has no <image> "
                             f"slot (prompts without one: {text_only}): put <image> where its image goes")
        expected = sum(slots) + len(text_only)
        if n_images != expected:
            blanks = f" and {len(text_only)} prompts without one (a placeholder image each)" if text_only else ""
            raise ValueError(f"{n_images} images (and molecules) but {sum(slots)} <image> slots in the prompts{blanks} "
                             f"(per prompt: {slots}): give one image and one molecule per <image>")

    def check_prompt_fits(self, input_ids, attention_mask, features: List[torch.Tensor]) -> None:
        """PromptTooLong when a prompt (text tokens plus its images' positions) is longer
        than the context the model was trained with (`tokenizer_model_max_length`): the
        host cuts every sequence there, from the end, which holds the question and the
        assistant's turn, and the model answered the cut prompt without a word (model_vqa,
        the chat CLI). Training records are checked when they are read instead."""
        from llava.constants import IMAGE_TOKEN_INDEX

        limit = self.context_length()
        if limit is None:
            return
        k = 0  # the next image's features; the host gives a sample without images one too
        for b, ids in enumerate(input_ids):  # ids (L,)
            if attention_mask is not None:
                ids = ids[attention_mask[b].bool()]
            n_images = int((ids == IMAGE_TOKEN_INDEX).sum())
            image = sum(len(f) for f in features[k:k + n_images])
            k += max(n_images, 1)
            text = len(ids) - n_images
            if text + image > limit:
                raise PromptTooLong(f"the prompt is {text + image} positions long ({text} text tokens + {image} for "
                                    f"the image), more than this model's context of {limit}: the end, with the "
                                    "question, would be cut off; ask a shorter question (in a chat: start a new one)",
                                    text + image, limit)

    # --- the HF entry points ---------------------------------------------------------------
    @property
    def accepts_loss_kwargs(self) -> bool:
        """Whether transformers' Trainer may hand forward `num_items_in_batch` (the supervised
        tokens of the whole optimizer step) and then leave the loss undivided by the gradient
        accumulation steps (and multiply it by the processes, with
        average_tokens_across_devices): right for the LM loss, which the model normalises by
        that count. The auxiliary property loss is a mean over this micro-batch's rows, so with
        the head the Trainer does the usual division instead (was: the property term counted
        accumulation-steps x processes times: --aux_property_weight 100 at bs 1 x 2 steps
        gave twice the gradient of bs 2 x 1 step). The LM term is then the mean of the
        micro-batches' token means. Read once, when the Trainer is made."""
        return self.get_model().optional_head is None

    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        past_key_values=None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        labels: Optional[torch.LongTensor] = None,
        use_cache: Optional[bool] = None,
        images: Optional[torch.FloatTensor] = None,
        image_sizes=None,
        molecule_fp: Optional[torch.LongTensor] = None,
        tile_images: Optional[Sequence[torch.Tensor]] = None,
        tile_grids=None,
        properties: Optional[Sequence[dict]] = None,
        graphs=None,
        **kwargs,
    ):
        if inputs_embeds is None:
            (input_ids, position_ids, attention_mask, past_key_values, inputs_embeds, labels) = (
                self.prepare_inputs_labels_for_multimodal(
                    input_ids, position_ids, attention_mask, past_key_values, labels, images, image_sizes,
                    molecule_fp=molecule_fp, tile_images=tile_images, tile_grids=tile_grids,
                )
            )
        head = self.get_model().optional_head
        # with labels (training), the head runs on every batch, one without properties too
        # (see AuxPropertyHead.batch_loss: ZeRO-3 gathers its weights on every rank at once)
        aux = head is not None and labels is not None
        if aux:
            kwargs["output_hidden_states"] = True
        out = super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            **kwargs,
        )
        if aux:
            aux_loss = head.batch_loss(out.hidden_states[-1], attention_mask, labels,
                                       {"properties": properties, "graphs": graphs})
            if self.training and any(p is not None for p in properties or ()):  # a placeholder's 0 is no loss
                self.aux_property_losses.append(float(aux_loss.detach()))
            out.loss = out.loss + self.aux_property_weight() * aux_loss
        return out

    def aux_property_weight(self) -> float:
        """config.aux_property_weight, the property loss's weight in training. Set by the
        launcher (--aux_property_weight, 0.1 by default); a config built in code or a
        config.json without it was an AttributeError at the first step with labels."""
        weight = getattr(self.config, "aux_property_weight", None)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0 \
                or weight == float("inf"):
            raise ValueError(f"config.aux_property_weight is {weight!r}: training with the {self.config.aux_property_task!r} "
                             "head needs the property loss's weight, a number > 0 (the launcher's "
                             "--aux_property_weight, 0.1 by default)")
        return float(weight)

    @torch.no_grad()
    def predict_properties(self, input_ids, images, graphs, image_sizes=None, molecule_fp=None,
                           tile_images=None, tile_grids=None, attention_mask=None) -> List[dict]:
        """The optional head's predictions for prompts (no answers): one {name: value} per sample."""
        head = self.get_model().optional_head
        if head is None:
            raise ValueError("this model has no auxiliary property head (trained without --aux_property_task)")
        (_, position_ids, attention_mask, _, inputs_embeds, _) = self.prepare_inputs_labels_for_multimodal(
            input_ids, None, attention_mask, None, None, images, image_sizes,
            molecule_fp=molecule_fp, tile_images=tile_images, tile_grids=tile_grids)
        hidden = self.get_model()(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  position_ids=position_ids).last_hidden_state
        return head.predict(hidden, attention_mask, {"graphs": graphs})

    @torch.no_grad()
    def generate(
        self,
        inputs: Optional[torch.Tensor] = None,
        images: Optional[torch.Tensor] = None,
        image_sizes=None,
        molecule_fp: Optional[torch.LongTensor] = None,
        tile_images: Optional[Sequence[torch.Tensor]] = None,
        tile_grids=None,
        on_context_end: Optional[Callable[[int, int], None]] = None,
        **kwargs,
    ):
        """As the host's generate: the prompt is turned into embeddings first, so the
        returned ids are the new tokens only. The prompt comes as `inputs` or, as in
        transformers, `input_ids` (was: an AttributeError deep inside).

        The new-token limit, however the call sets it (max_new_tokens, max_length, a
        `generation_config=`, the model's or transformers' default), is at most the room the
        context leaves after the prompt (`new_tokens_within_context`); `on_context_end(new_tokens,
        context)` is called when the reply stopped there (`ran_into_context_end`), so callers
        can say it may be cut."""
        input_ids = kwargs.pop("input_ids", None)
        if input_ids is not None:
            if inputs is not None:
                raise ValueError("generate got the prompt twice, as inputs and as input_ids: give one")
            inputs = input_ids
        if inputs is None:
            raise ValueError("generate needs the prompt's token ids (inputs or input_ids)")
        position_ids = kwargs.pop("position_ids", None)
        attention_mask = kwargs.pop("attention_mask", None)
        if "inputs_embeds" in kwargs:
            raise NotImplementedError("`inputs_embeds` is not supported; pass input ids and images")
        if images is not None:
            # Generation continues after the last position of every row, so the spliced prompts
            # are padded on the left, whatever side training padded on (llava's train.py
            # writes "right" into every config: a shorter prompt's first new token was
            # predicted at a pad position, another answer than the same prompt alone).
            with self._splice_padding("left"):
                (inputs, position_ids, attention_mask, _, inputs_embeds, _) = (
                    self.prepare_inputs_labels_for_multimodal(
                        inputs, position_ids, attention_mask, None, None, images, image_sizes,
                        molecule_fp=molecule_fp, tile_images=tile_images, tile_grids=tile_grids))
            if inputs_embeds is None:  # was: generated from BOS, the prompt and images unused
                raise ValueError("images were given, but the prompt was not spliced with them (no embeddings "
                                 "came back): does this model have a vision tower?")
        else:
            if molecule_fp is not None:
                raise ValueError("molecule_fp was given without images: the projector needs both")
            inputs_embeds = self.get_model().embed_tokens(inputs)
        room = self.new_tokens_within_context(kwargs, inputs_embeds.shape[1])
        output = super().generate(
            position_ids=position_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
        )
        if room is not None and on_context_end is not None and self.ran_into_context_end(output, room, kwargs):
            on_context_end(room, self.context_length())
        return output

    def context_length(self) -> Optional[int]:
        """The context the model was trained with (`trained_context`), or None where the
        config states none usable."""
        return trained_context(self.config)

    def new_tokens_within_context(self, kwargs: dict, prompt_positions: int) -> Optional[int]:
        """Set the new-token limit of this generate call (`kwargs`) to the one transformers
        would use (`asked_new_tokens`), lowered to the positions the context leaves after a
        prompt of `prompt_positions` (text tokens + image positions; the longest row of a
        batch); returns that room where it was lowered, else None. PromptTooLong when no
        position is left. Was: only the prompt was checked (`check_prompt_fits`), and a prompt
        of 250 of 256 positions was answered with 78 more tokens, in positions the model never
        trained on, without a word; and then only a max_new_tokens given to generate or set on
        model.generation_config was lowered: one set by a `generation_config=` argument, a
        `max_length`, or transformers' default (20 new tokens) ran past the room unsaid."""
        limit = self.context_length()
        if limit is None:
            return None
        room = limit - prompt_positions
        if room < 1:
            raise PromptTooLong(f"the prompt is {prompt_positions} positions long, which fills this model's context of "
                                f"{limit}: no position is left for the answer; ask a shorter question (in a chat: "
                                "start a new one)", prompt_positions, limit)
        asked = self.asked_new_tokens(kwargs, prompt_positions)
        _set_new_tokens(kwargs, min(asked, room))  # always: what generate makes is then this number, whatever its rule
        return room if asked > room else None

    def asked_new_tokens(self, kwargs: dict, prompt_positions: int) -> int:
        """The new tokens transformers' generate allows a call with `kwargs` after a prompt
        given as `prompt_positions` embeddings, by its rule (transformers 5): each setting
        from generate's own arguments, else from its `generation_config=`, else from
        model.generation_config; max_new_tokens, else max_length less the prompt, else the
        default max_length (20) as new tokens. (transformers 4 counted a max_length not passed
        to generate itself as new tokens; the limit set is within the room either way.)"""
        new_tokens = self._generation_setting(kwargs, "max_new_tokens")
        if new_tokens is not None:
            return new_tokens
        max_length = self._generation_setting(kwargs, "max_length")
        if max_length is None:
            return DEFAULT_NEW_TOKENS
        if max_length <= prompt_positions:  # transformers: an error about its own internals, or no reply
            raise ValueError(f"max_length={max_length} leaves no new token after this prompt of {prompt_positions} "
                             "positions (text tokens + image positions): give max_new_tokens instead, or a larger "
                             "max_length")
        return max_length - prompt_positions

    def _generation_setting(self, kwargs: dict, name: str):
        """`name` as generate reads it: the first set of `_generation_values`."""
        return next((value for value in self._generation_values(kwargs, name) if value is not None), None)

    def _generation_values(self, kwargs: dict, name: str) -> tuple:
        """`name` from generate's argument, its `generation_config=` and model.generation_config."""
        return (kwargs.get(name), getattr(kwargs.get("generation_config"), name, None),
                getattr(self.generation_config, name, None))

    def ran_into_context_end(self, output, room: int, kwargs: dict) -> bool:
        """Whether generation made the `room` new tokens the context left (`output` holds
        the new tokens only) and a row's last one is no end: the reply was cut there, not
        ended. Finished rows of a batch are padded with the pad id, an end here too. The end
        and pad ids of generate's arguments, its generation_config (was: not read) and the
        model's all count."""
        output = getattr(output, "sequences", output)  # return_dict_in_generate: the ids
        if output.shape[1] < room:
            return False
        ends = set()
        for found in self._generation_values(kwargs, "eos_token_id") + self._generation_values(kwargs, "pad_token_id"):
            ends.update(found if isinstance(found, (list, tuple, set)) else [] if found is None else [found])
        return any(int(row[-1]) not in ends for row in output)

    @contextlib.contextmanager
    def _splice_padding(self, side: str):
        """config.tokenizer_padding_side, which the host's splice pads by, set to `side` for
        the block and put back after (training's own value stays in the saved config). One
        splice at a time (`_SPLICE_LOCK`): two threads generating on one model interleaved
        their swaps and could leave "left" in the config for good."""
        missing = object()
        with _SPLICE_LOCK:
            before = self.config.__dict__.get("tokenizer_padding_side", missing)
            self.config.tokenizer_padding_side = side
            try:
                yield
            finally:
                if before is missing:
                    del self.config.tokenizer_padding_side
                else:
                    self.config.tokenizer_padding_side = before

    def save_pretrained(self, save_directory, *args, **kwargs):
        """As transformers', after checking that the config being saved rebuilds the projector
        and the vision tower that were built: a reloaded model is made from the config alone
        (was: a config edited after construction, fusion_heads 4 -> 2, or the tower's
        deepencoder_config clip_heads 2 -> 1, saved and reloaded as another model, and the
        record of its settings was written from the edited values, so no loader could tell)."""
        self.check_config_matches_modules()
        return super().save_pretrained(save_directory, *args, **kwargs)

    def check_config_matches_modules(self) -> None:
        """ValueError naming each setting of model.config that differs from the module built:
        the projector's ProjectorConfig, the DeepEncoder tower's configuration (less
        config_record.RUNTIME_ENCODER_FIELDS, which may change at run time: the tower is cast to
        the dtype asked at load) and its image mode."""
        differ = {"projector": self._projector_differences(), "vision tower": self._tower_differences()}
        parts = [name for name, found in differ.items() if found]
        if parts:
            raise ValueError(f"model.config has {', '.join(sum(differ.values(), []))}: the saved model would reload "
                             f"as another {' and '.join(parts)}; set these back, or rebuild the model from the "
                             "edited config")

    def _projector_differences(self) -> List[str]:
        """'name=value (the projector was built with built)' for each projector setting of
        model.config that differs from the projector module's own ProjectorConfig."""
        from ..projector import ProjectorConfig

        built = getattr(getattr(self.get_model(), "mm_projector", None), "config", None)
        if not isinstance(built, ProjectorConfig):
            return []  # no projector of ours (text-only model, the host's own projector)
        saved = ProjectorConfig.from_host_config(self.config).to_host_attributes()
        return [f"{name}={saved[name]!r} (the projector was built with {value!r})"
                for name, value in built.to_host_attributes().items() if saved[name] != value]

    def _tower_differences(self) -> List[str]:
        """The same for the DeepEncoder tower: the configuration a reload builds it from
        (config_from_args, as DeepEncoderVisionTower does) against the one it was built with,
        and model.config.image_mode against its image processor's mode."""
        from ..encoder.config import DeepEncoderConfig
        from ..encoder.tower import config_from_args

        tower = self.get_model().get_vision_tower()
        built = getattr(tower, "encoder_config", None)
        if not isinstance(built, DeepEncoderConfig):
            return []  # no tower, or the host's own
        now, then = (config_record.encoder_settings(c.to_dict()) for c in (config_from_args(self.config), built))
        differ = [f"deepencoder_config.{k}={now.get(k)!r} (the vision tower was built with {then.get(k)!r})"
                  for k in sorted(set(now) | set(then)) if now.get(k) != then.get(k)]
        mode = getattr(self.config, "image_mode", None) or "base"  # the tower's default for none
        if mode != self.image_mode():
            differ.append(f"image_mode={mode!r} (the vision tower was built with {self.image_mode()!r})")
        return differ


def trained_context(config) -> Optional[int]:
    """The context in tokens a model was trained with (`tokenizer_model_max_length` of its
    `config`), or None where the config states none usable: the one reader of it (the
    generate limit here, the chat's and eval's limits, the llm: featuriser's SMILES limit),
    which disagreed on 256.0 (a number in three, None in one) and on true (a context of 1).
    A finite number of at least 1 counts (a float as its whole part); a bool, text, NaN or
    inf does not."""
    import math

    context = getattr(config, "tokenizer_model_max_length", None)
    if isinstance(context, bool) or not isinstance(context, (int, float)) or not math.isfinite(context) \
            or context < 1:
        return None
    return int(context)


def takes_context_end(generate) -> bool:
    """Whether `generate` (a model's, or a `functools.wraps` wrapper of one) takes
    `on_context_end`: this class's does, the host's own Llava models' do not (transformers
    refuses a keyword they do not use)."""
    import inspect

    return "on_context_end" in inspect.signature(generate).parameters


_SPLICE_LOCK = threading.Lock()  # `_splice_padding`: the host reads the padding side from the shared config


# transformers' GenerationConfig default max_length, which a generate call that sets no length
# gets as new tokens when the prompt comes as embeddings (as ours always does)
DEFAULT_NEW_TOKENS = 20


def _set_new_tokens(kwargs: dict, new_tokens: int) -> None:
    """Make `new_tokens` the new-token limit of a generate call: on its `generation_config=`
    (a copy: the caller's is left as it was) where that is where the call sets its lengths,
    else as its max_new_tokens argument; max_length dropped, as max_new_tokens overrides it
    (transformers warns where both are set)."""
    given = kwargs.get("generation_config")
    kwargs.pop("max_length", None)
    if given is not None and kwargs.get("max_new_tokens") is None:
        import copy

        given = copy.deepcopy(given)
        given.max_new_tokens, given.max_length = new_tokens, None
        kwargs["generation_config"] = given
        kwargs.pop("max_new_tokens", None)
    else:
        kwargs["max_new_tokens"] = new_tokens


def _any_given(tile_grids) -> bool:
    """Whether a tile_grids argument names any grid (None, or None for every image: none)."""
    return tile_grids is not None and any(g is not None for g in tile_grids)


def _continues_cache(past_key_values) -> bool:
    """Whether past_key_values holds earlier positions (a cached generation step)."""
    if past_key_values is None:
        return False
    if hasattr(past_key_values, "get_seq_length"):
        return past_key_values.get_seq_length() > 0
    return len(past_key_values) > 0


def _widen_one_token(input_ids, attention_mask, labels):
    """(B, 1) input_ids, mask [+ labels] -> (B, 2), the new column masked out (so the host
    drops it before embedding; its id 0 is never looked up) and ignored by the loss."""
    from llava.constants import IGNORE_INDEX

    input_ids = torch.cat([input_ids, torch.zeros_like(input_ids)], dim=1)
    attention_mask = torch.cat([attention_mask, torch.zeros_like(attention_mask)], dim=1)
    if labels is not None:
        labels = torch.cat([labels, torch.full_like(labels, IGNORE_INDEX)], dim=1)
    return input_ids, attention_mask, labels


def register_auto_classes() -> None:
    """Idempotent: AutoConfig / AutoModelForCausalLM know `llava_qwen2`."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if "llava_qwen2" not in CONFIG_MAPPING:
        AutoConfig.register("llava_qwen2", LlavaQwen2Config)
        AutoModelForCausalLM.register(LlavaQwen2Config, LlavaQwen2ForCausalLM)
