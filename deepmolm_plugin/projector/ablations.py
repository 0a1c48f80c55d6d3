"""Ablation projectors for the fusion study: what DeepMoLM's projector is compared with.

All share `ProjectorBase` (forward signature, checks, image_newline / view_seperator,
embed_images); parameter names are those of the original DeepMoLM code (`layers`,
`molecule_embed`), so its ablation checkpoints load too.

- `linear`:     layers = Linear(C -> H).                          Image only.
- `mlp2x_gelu`: layers = Linear(C -> H), GELU, Linear(H -> H)      Image only
                (LLaVA-1.5's projector).
- `concat`:     m = mean of molecule_embed(hash + 1) over the molecule's valid
                (non -1) tokens, molecule_embed [fp_bits + 1, E] with E =
                config.molecule_embed_dim (default H // 4);
                layers = Linear(C + E -> H), GELU, Linear(H -> H) applied to
                concat([x, m]) for every image token x.

Image-only ablations accept molecule_fp so that every projector takes the same batch: it
is checked by the same rules (shape, range, batch size) and then ignored. concat and
fusion require it.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .config import ProjectorConfig
from .layout import ProjectorBase, full_parameters
from .validation import fingerprint_indices


class LinearProjector(ProjectorBase):
    projector_type = "linear"
    uses_molecule = False

    def __init__(self, config: ProjectorConfig):
        super().__init__(config)
        self.layers = nn.Linear(config.mm_hidden_size, config.hidden_size)

    def project(self, image_features, molecule_fp, return_attention):
        return self.layers(image_features)  # (B, N, C) -> (B, N, H)


class MLP2xGeluProjector(ProjectorBase):
    projector_type = "mlp2x_gelu"
    uses_molecule = False

    def __init__(self, config: ProjectorConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.layers = nn.Sequential(nn.Linear(config.mm_hidden_size, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def project(self, image_features, molecule_fp, return_attention):
        return self.layers(image_features)  # (B, N, C) -> (B, N, H)


class ConcatProjector(ProjectorBase):
    projector_type = "concat"
    uses_molecule = True

    def __init__(self, config: ProjectorConfig):
        super().__init__(config)
        hidden, embed = config.hidden_size, config.molecule_embed_dim
        self.molecule_embed = nn.Embedding(config.fp_bits + 1, embed, padding_idx=0)
        self.layers = nn.Sequential(
            nn.Linear(config.mm_hidden_size + embed, hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )
        with torch.no_grad(), full_parameters(self.molecule_embed):  # partitioned by now under ZeRO-3
            nn.init.normal_(self.molecule_embed.weight, std=embed**-0.5)
            self.molecule_embed.weight[0].zero_()  # padding row

    def molecule_vector(self, molecule_fp: torch.Tensor) -> torch.Tensor:
        """(B, A, L) hashes -> (B, E): mean embedding over each molecule's valid tokens."""
        indices, valid = fingerprint_indices(molecule_fp)  # (B, A*L), (B, A*L)
        embeds = self.molecule_embed(indices)  # (B, A*L, E)
        mask = valid.unsqueeze(-1).float()  # (B, A*L, 1)
        # Summed in fp32 (bf16 sums drift); the input check guarantees >= 1 valid token.
        mean = (embeds.float() * mask).sum(dim=1) / mask.sum(dim=1)  # (B, E)
        return mean.to(embeds.dtype)

    def project(self, image_features, molecule_fp: Optional[torch.Tensor], return_attention):
        tokens = image_features.shape[1]
        mol = self.molecule_vector(molecule_fp)  # (B, E)
        mol = mol.unsqueeze(1).expand(-1, tokens, -1)  # (B, N, E)
        return self.layers(torch.cat([image_features, mol], dim=-1))  # (B, N, C + E) -> (B, N, H)
