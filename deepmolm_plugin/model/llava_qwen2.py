"""LlavaQwen2ForCausalLM: the host's LLaVA architecture on a Qwen2 LLM, with molecule_fp.

llava-torch ships Llava classes for Llama, Mistral and MPT only; a Qwen2 checkpoint
loaded through them is silently built as Llama. This class is the host's own recipe
(LlavaMetaModel + LlavaMetaForCausalLM mixed into the HF model, as llava_llama.py)
on Qwen2, registered with the Auto classes as model type `llava_qwen2`.

molecule_fp: the host's `prepare_inputs_labels_for_multimodal(..., images, image_sizes)`
has no slot for extra per-sample inputs (design.md section 1). `forward` and `generate`
therefore take `molecule_fp` (B, atoms, levels) and, in tiles mode, `tile_images`
(per sample (T_i, 3, 640, 640)) and `tile_grids`, bind them for the duration of the call,
and our `encode_images` hands them to the projector. The projector returns each image's
LLM positions in DeepEncoder's layout (rows + `image_newline`, one `view_seperator`):
a list of (P_i, H) tensors, which the host's splicing code indexes per image.
"""

from __future__ import annotations

import contextlib
from typing import List, Optional, Sequence

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen2Model

from llava.model.llava_arch import LlavaMetaForCausalLM, LlavaMetaModel


class LlavaQwen2Config(Qwen2Config):
    model_type = "llava_qwen2"


class LlavaQwen2Model(LlavaMetaModel, Qwen2Model):
    config_class = LlavaQwen2Config

    def __init__(self, config: Qwen2Config):
        super().__init__(config)
        self.ensure_aux_property_head()

    def ensure_aux_property_head(self) -> None:
        """The KFLM2 auxiliary head (`--aux_property_task kflm2`), as the config asks."""
        if getattr(self.config, "aux_property_task", None) and getattr(self, "aux_property_head", None) is None:
            from deepmolm_plugin.property.aux_head import AuxPropertyHead

            self.aux_property_head = AuxPropertyHead(self.config.hidden_size, self.config.aux_properties)


class LlavaQwen2ForCausalLM(Qwen2ForCausalLM, LlavaMetaForCausalLM):
    config_class = LlavaQwen2Config

    def __init__(self, config: LlavaQwen2Config):
        super(Qwen2ForCausalLM, self).__init__(config)  # PreTrainedModel only: we build the parts
        self.model = LlavaQwen2Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self._mm_extra: Optional[dict] = None
        self.aux_property_losses: List[float] = []  # logged by patches.aux_property_logging
        self.post_init()

    def get_model(self) -> LlavaQwen2Model:
        return self.model

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
    @contextlib.contextmanager
    def _multimodal_inputs(self, molecule_fp, tile_images, tile_grids):
        self._mm_extra = {"molecule_fp": molecule_fp, "tile_images": tile_images, "tile_grids": tile_grids}
        try:
            yield
        finally:
            self._mm_extra = None

    def encode_images(self, images: torch.Tensor) -> List[torch.Tensor]:
        """(B, 3, S, S) global views (+ bound molecule_fp / tiles) -> B tensors (P_i, H)."""
        extra = self._mm_extra or {}
        tower, projector = self.get_model().get_vision_tower(), self.get_model().mm_projector
        global_features = tower(images)  # (B, (S/64)^2, 2048)
        tile_features = None
        if extra.get("tile_images") is not None:
            tile_features = [
                tower(t) if t is not None and len(t) else None for t in extra["tile_images"]
            ]  # per sample (T_i, 100, 2048) or None
        return projector.embed_images(
            global_features, extra.get("molecule_fp"), tile_features, extra.get("tile_grids")
        )

    # --- the HF entry points ---------------------------------------------------------------
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
            with self._multimodal_inputs(molecule_fp, tile_images, tile_grids):
                (input_ids, position_ids, attention_mask, past_key_values, inputs_embeds, labels) = (
                    self.prepare_inputs_labels_for_multimodal(
                        input_ids, position_ids, attention_mask, past_key_values, labels, images, image_sizes
                    )
                )
        head = getattr(self.get_model(), "aux_property_head", None)
        aux = head is not None and properties is not None and labels is not None
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
            aux_loss = self._aux_loss(head, out.hidden_states[-1], attention_mask, labels, properties, graphs)
            if self.training:
                self.aux_property_losses.append(float(aux_loss.detach()))
            out.loss = out.loss + self.config.aux_property_weight * aux_loss
        return out

    def _aux_loss(self, head, hidden, attention_mask, labels, properties, graphs) -> torch.Tensor:
        """KFLM2 auxiliary loss: pooled unsupervised positions + molecular graph -> properties."""
        from deepmolm_plugin.property.aux_head import pool_unsupervised
        from deepmolm_plugin.property.features import collate_graphs

        # Records without `properties` carry no labels (and no graph): the head sees the rest.
        rows = [i for i, p in enumerate(properties) if p is not None]
        if not rows:
            return hidden.sum() * 0.0
        if self.training:
            head.check_fitted()  # standardised by the training set's statistics, fixed before step 1
        values, mask = head.targets([properties[i] for i in rows], hidden.device)
        pooled = pool_unsupervised(hidden, attention_mask, labels)[rows]  # (R, H)
        prediction = head(pooled, collate_graphs([graphs[i] for i in rows]))
        return head.loss(prediction, values, mask)

    @torch.no_grad()
    def predict_properties(self, input_ids, images, graphs, image_sizes=None, molecule_fp=None,
                           tile_images=None, tile_grids=None, attention_mask=None) -> List[dict]:
        """The auxiliary head's predictions for prompts (no answers): one {name: value} per sample."""
        from deepmolm_plugin.property.aux_head import pool_unsupervised
        from deepmolm_plugin.property.features import collate_graphs

        head = getattr(self.get_model(), "aux_property_head", None)
        if head is None:
            raise ValueError("this model has no auxiliary property head (trained without --aux_property_task)")
        with self._multimodal_inputs(molecule_fp, tile_images, tile_grids):
            (_, position_ids, attention_mask, _, inputs_embeds, _) = self.prepare_inputs_labels_for_multimodal(
                input_ids, None, attention_mask, None, None, images, image_sizes)
        hidden = self.get_model()(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  position_ids=position_ids).last_hidden_state
        return head.predict_dicts(head(pool_unsupervised(hidden, attention_mask, None), collate_graphs(graphs)))

    @torch.no_grad()
    def generate(
        self,
        inputs: Optional[torch.Tensor] = None,
        images: Optional[torch.Tensor] = None,
        image_sizes=None,
        molecule_fp: Optional[torch.LongTensor] = None,
        tile_images: Optional[Sequence[torch.Tensor]] = None,
        tile_grids=None,
        **kwargs,
    ):
        """As the host's generate: the prompt is turned into embeddings first, so the
        returned ids are the new tokens only."""
        position_ids = kwargs.pop("position_ids", None)
        attention_mask = kwargs.pop("attention_mask", None)
        if "inputs_embeds" in kwargs:
            raise NotImplementedError("`inputs_embeds` is not supported; pass input ids and images")
        if images is not None:
            with self._multimodal_inputs(molecule_fp, tile_images, tile_grids):
                (inputs, position_ids, attention_mask, _, inputs_embeds, _) = (
                    self.prepare_inputs_labels_for_multimodal(
                        inputs, position_ids, attention_mask, None, None, images, image_sizes=image_sizes
                    )
                )
        else:
            if molecule_fp is not None:
                raise ValueError("molecule_fp was given without images: the projector needs both")
            inputs_embeds = self.get_model().embed_tokens(inputs)
        return super().generate(
            position_ids=position_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
        )


def register_auto_classes() -> None:
    """Idempotent: AutoConfig / AutoModelForCausalLM know `llava_qwen2`."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if "llava_qwen2" not in CONFIG_MAPPING:
        AutoConfig.register("llava_qwen2", LlavaQwen2Config)
        AutoModelForCausalLM.register(LlavaQwen2Config, LlavaQwen2ForCausalLM)
