"""`fusion`: DeepMoLM's projector, image tokens cross-attending to E3FP atom tokens.

One post-norm transformer decoder layer without self-attention (the original DeepMoLM
projector's structure):

    q   = image_proj(x)                                   (B, N, H)   queries
    kv  = molecule_embed(hash + 1), -1 -> 0               (B, A*L, H) keys = values
    x   = cross_attn_norm(q + cross_attn(q, kv, kv))      padding keys masked
    out = ffn_norm(x + ffn(x)),  ffn = Linear H->4H, GELU, Linear 4H->H

Parameter names and shapes are the original's, so a released DeepMoLM projector loads
strictly: image_proj, molecule_embed [fp_bits + 1, H], cross_attn (packed in_proj),
cross_attn_norm, ffn.0, ffn.2, ffn_norm, image_newline, view_seperator.

Dropout (config.dropout) acts on the attention probabilities (inside cross_attn) and on
both residual branches, functionally, so `ffn` keeps its indices 0 and 2 at any setting
(the original inserted nn.Dropout into `ffn`, which renamed ffn.2 to ffn.3).

No all-padding guard: the original unmasked the first key of an all-padding molecule to
avoid NaN; here such a molecule is rejected by the input check, so every query always has
at least one valid key and the guard would be dead code.

Looking inside (the GUI's attention maps): `recording_attention()` is an opt-in context in
which every call also keeps its cross-attention weights per head. Outside it the layer
asks `nn.MultiheadAttention` for no weights at all (its fused kernel runs), so recording
costs nothing and changes nothing when off.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import ProjectorConfig
from .layout import ProjectorBase, full_parameters
from .validation import fingerprint_indices


class FusionProjector(ProjectorBase):
    projector_type = "fusion"
    uses_molecule = True
    has_attention = True

    def __init__(self, config: ProjectorConfig):
        super().__init__(config)
        hidden = config.hidden_size
        if hidden % config.num_heads:
            raise ValueError(f"fusion: num_heads={config.num_heads} does not divide hidden_size={hidden}")
        self.image_proj = nn.Linear(config.mm_hidden_size, hidden)
        self.molecule_embed = nn.Embedding(config.fp_bits + 1, hidden, padding_idx=0)
        self.cross_attn = nn.MultiheadAttention(
            hidden, config.num_heads, dropout=config.dropout, batch_first=True
        )
        self.cross_attn_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.ffn_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self._init_weights()
        self._attention_log: Optional[List[torch.Tensor]] = None  # a list only inside recording_attention()

    @contextlib.contextmanager
    def recording_attention(self) -> Iterator[List[torch.Tensor]]:
        """Within the block, each forward call appends its softmax cross-attention weights,
        detached, as one (B, heads, N, atoms, levels) tensor to the list yielded, in call
        order (`embed_images` projects the batch's global views first, then all its tiles
        in one call). Padding keys (-1 tokens) have weight 0; over (atoms, levels) each
        head's weights of one image token sum to 1. Run the model in eval() mode: in
        training mode these are the dropped-out weights the layer used."""
        if self._attention_log is not None:
            raise RuntimeError("the fusion projector is already recording its attention")
        log: List[torch.Tensor] = []
        self._attention_log = log
        try:
            yield log
        finally:
            self._attention_log = None

    @torch.no_grad()
    def _init_weights(self) -> None:
        """The original's initialisation (its global torch.manual_seed(42) is not copied), on
        whole tensors under ZeRO-3 too (`full_parameters`)."""
        with full_parameters(self.image_proj, self.molecule_embed, self.cross_attn.out_proj, self.ffn):
            # nn.MultiheadAttention zeroes this in its own __init__, after building out_proj:
            # under zero.Init that met the partitioned (empty) bias and left Linear's random one
            nn.init.zeros_(self.cross_attn.out_proj.bias)
            nn.init.xavier_uniform_(self.image_proj.weight)
            nn.init.zeros_(self.image_proj.bias)
            nn.init.normal_(self.molecule_embed.weight, std=self.config.hidden_size**-0.5)
            self.molecule_embed.weight[0].zero_()  # padding row
            for linear in (self.ffn[0], self.ffn[2]):
                nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(linear.bias)

    def project(
        self, image_features: torch.Tensor, molecule_fp: Optional[torch.Tensor], return_attention: bool
    ):
        """(B, N, C) features, (B, A, L) hashes -> (B, N, H) [, (B, N, A) attention per atom].

        Attention per atom = the head-averaged attention of each image token over the
        molecule's A*L tokens, summed over the L levels of each atom: it sums to 1 over
        atoms and is 0 on padding atoms. In training mode it is the dropped-out matrix the
        layer used; call in eval() mode for interpretation.
        """
        batch, atoms, levels = molecule_fp.shape
        recording = self._attention_log is not None
        query = self.image_proj(image_features)  # (B, N, H)
        indices, valid = fingerprint_indices(molecule_fp)  # (B, A*L), (B, A*L)
        keys = self.molecule_embed(indices)  # (B, A*L, H)
        attended, weights = self.cross_attn(
            query, keys, keys,
            key_padding_mask=~valid,  # True = ignore
            need_weights=return_attention or recording,
            average_attn_weights=not recording,
        )  # (B, N, H); weights (B, N, A*L), (B, heads, N, A*L) when recording, or None
        if recording:
            heads = weights.shape[1]
            self._attention_log.append(weights.detach().reshape(batch, heads, -1, atoms, levels))
            weights = weights.mean(dim=1)  # (B, N, A*L): what average_attn_weights=True returns
        x = self.cross_attn_norm(query + F.dropout(attended, self.config.dropout, self.training))
        x = self.ffn_norm(x + F.dropout(self.ffn(x), self.config.dropout, self.training))  # (B, N, H)
        if not return_attention:
            return x
        per_atom = weights.reshape(batch, -1, atoms, levels).sum(dim=-1)  # (B, N, A)
        return x, per_atom
