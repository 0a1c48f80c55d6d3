"""Property models: embedding MLP, directed message-passing graph network, and fusions.

- ``MLP``: the embedding branch alone (any featuriser of ``featurizers.py``).
- ``DMPNN``: a directed message-passing network (Chemprop's D-MPNN) over the graphs of
  ``features.py``: hidden states live on directed edges, a message u->v never comes
  straight back (v->u is subtracted), atom and bond features both enter, and the
  molecule vector is the mean (or sum / 100) of the atom states.
- Fusions of the graph vector ``g`` and the molecule embedding ``e``:
  ``concat`` ([g; e] -> FFN, Chemprop's "additional features"), ``gated`` (KFLM2's
  "weighted concatenation": both projected to d, a sigmoid gate computed from both,
  [gate * g'; (1 - gate) * e'] -> FFN), and ``attention``: a real cross-attention
  between the graph's atom states and the LLM's token states (atoms attend over the
  SMILES tokens and tokens over the atoms, multi-head, with padding masks; both sides
  are pooled and concatenated). KFLM2's "attention" attended over length-1 sequences,
  where softmax is 1 and the layer is a linear map; here both sequences are real, so
  ``attention`` needs token-level states and therefore an ``llm:`` featuriser
  (``tokens=``); descriptor / fingerprint featurisers have no tokens and are refused.
"""

from __future__ import annotations

import torch
from torch import nn

from .features import ATOM_DIM, BOND_DIM, GraphBatch

FUSIONS = ("none", "concat", "gated", "attention")


def ffn(in_dim: int, hidden: int, out_dim: int, layers: int = 2, dropout: float = 0.0) -> nn.Sequential:
    """Chemprop-style feed-forward head: [dropout, linear, relu] x (layers - 1), dropout, linear."""
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        mods += [nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU()]
        dim = hidden
    mods += [nn.Dropout(dropout), nn.Linear(dim, out_dim)]
    return nn.Sequential(*mods)


class MLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: int = 300, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.net = ffn(in_dim, hidden, out_dim, layers, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DMPNN(nn.Module):
    """Directed message passing (edge states), then atom states and a pooled molecule vector."""

    def __init__(self, atom_dim: int = ATOM_DIM, bond_dim: int = BOND_DIM, hidden: int = 300, depth: int = 3,
                 dropout: float = 0.0, aggregation: str = "mean"):
        super().__init__()
        if aggregation not in ("mean", "sum", "norm"):
            raise ValueError(f"aggregation must be mean, sum or norm, not {aggregation!r}")
        self.hidden, self.depth, self.aggregation = hidden, depth, aggregation
        self.W_i = nn.Linear(atom_dim + bond_dim, hidden, bias=False)
        self.W_h = nn.Linear(hidden, hidden, bias=False)
        self.W_o = nn.Linear(atom_dim + hidden, hidden)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)

    def atom_states(self, g: GraphBatch) -> torch.Tensor:
        n_atoms = g.atoms.shape[0]
        # index_select / index_add (not advanced indexing): much faster on CPU, forward and backward
        h0 = self.W_i(torch.cat([g.atoms.index_select(0, g.src), g.edges], dim=1))
        h = self.act(h0)
        for _ in range(self.depth - 1):
            incoming = h.new_zeros(n_atoms, h.shape[1]).index_add_(0, g.dst, h)
            message = incoming.index_select(0, g.src) - h.index_select(0, g.rev)  # into u, except from v
            h = self.drop(self.act(h0 + self.W_h(message)))
        incoming = h.new_zeros(n_atoms, h.shape[1]).index_add_(0, g.dst, h)
        return self.drop(self.act(self.W_o(torch.cat([g.atoms, incoming], dim=1))))

    def pool(self, atom_h: torch.Tensor, g: GraphBatch) -> torch.Tensor:
        out = atom_h.new_zeros(g.num_mols, atom_h.shape[1]).index_add_(0, g.atom_mol, atom_h)
        if self.aggregation == "mean":
            counts = torch.bincount(g.atom_mol, minlength=g.num_mols).clamp(min=1).to(out.dtype)
            out = out / counts[:, None]
        elif self.aggregation == "norm":
            out = out / 100.0
        return out

    def forward(self, g: GraphBatch) -> torch.Tensor:
        return self.pool(self.atom_states(g), g)


def pad_nodes(atom_h: torch.Tensor, g: GraphBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat atom states (N, H) -> padded (B, max_atoms, H) and a bool mask (True = real atom)."""
    counts = torch.bincount(g.atom_mol, minlength=g.num_mols)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(atom_h.shape[0], device=atom_h.device) - starts[g.atom_mol]
    width = int(counts.max()) if counts.numel() else 0
    padded = atom_h.new_zeros(g.num_mols, width, atom_h.shape[1])
    padded[g.atom_mol, position] = atom_h
    mask = torch.zeros(g.num_mols, width, dtype=torch.bool, device=atom_h.device)
    mask[g.atom_mol, position] = True
    return padded, mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class CrossAttention(nn.Module):
    """Atoms attend over SMILES tokens and tokens over atoms; returns [pooled atoms; pooled tokens]."""

    def __init__(self, node_dim: int, token_dim: int, dim: int = 128, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.nodes_in = nn.Linear(node_dim, dim)
        self.tokens_in = nn.Linear(token_dim, dim)
        self.node_to_token = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.token_to_node = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_nodes = nn.LayerNorm(dim)
        self.norm_tokens = nn.LayerNorm(dim)
        self.out_dim = 2 * dim

    def forward(self, nodes, node_mask, tokens, token_mask) -> torch.Tensor:
        q = self.nodes_in(nodes)
        k = self.tokens_in(tokens)
        n2t, _ = self.node_to_token(q, k, k, key_padding_mask=~token_mask, need_weights=False)
        t2n, _ = self.token_to_node(k, q, q, key_padding_mask=~node_mask, need_weights=False)
        nodes_out = self.norm_nodes(q + n2t)
        tokens_out = self.norm_tokens(k + t2n)
        return torch.cat([masked_mean(nodes_out, node_mask), masked_mean(tokens_out, token_mask)], dim=1)


class PropertyModel(nn.Module):
    """Graph branch and/or embedding branch, fused, then an FFN head (one output per task).

    ``graph``: use the D-MPNN; ``embed_dim``: size of the molecule embedding (None: no
    embedding branch); ``fusion``: how the two meet when both are present (``none`` when
    only one is); ``token_dim``: LLM token-state size, needed by ``attention``.
    """

    def __init__(self, n_tasks: int, graph: bool = True, embed_dim: int | None = None, fusion: str = "concat",
                 hidden: int = 300, depth: int = 3, ffn_hidden: int = 300, ffn_layers: int = 2,
                 dropout: float = 0.0, aggregation: str = "mean", token_dim: int | None = None,
                 fusion_dim: int = 128, heads: int = 4):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, not {fusion!r}")
        has_embed = embed_dim is not None and embed_dim > 0
        if not graph and not has_embed:
            raise ValueError("a model needs the graph branch, an embedding, or both")
        if graph and has_embed and fusion == "none":
            raise ValueError("graph + embedding need a fusion: concat, gated or attention")
        if not (graph and has_embed) and fusion != "none":
            raise ValueError(f"fusion {fusion!r} needs both the graph and an embedding")
        if fusion == "attention" and not token_dim:
            raise ValueError(
                "the attention fusion attends over LLM token states: it needs an llm:<folder> featuriser "
                "(descriptor and fingerprint featurisers have no tokens)"
            )
        self.fusion = fusion
        self.graph = DMPNN(hidden=hidden, depth=depth, dropout=dropout, aggregation=aggregation) if graph else None
        if fusion in ("none", "concat"):
            in_dim = (hidden if graph else 0) + (embed_dim if has_embed else 0)
        elif fusion == "gated":
            self.g_proj = nn.Linear(hidden, fusion_dim)
            self.e_proj = nn.Linear(embed_dim, fusion_dim)
            self.gate = nn.Linear(2 * fusion_dim, fusion_dim)
            in_dim = 2 * fusion_dim
        else:  # attention
            self.cross = CrossAttention(hidden, token_dim, fusion_dim, heads, dropout)
            in_dim = hidden + embed_dim + self.cross.out_dim
        self.head = ffn(in_dim, ffn_hidden, n_tasks, ffn_layers, dropout)

    def forward(self, graph: GraphBatch | None = None, embed: torch.Tensor | None = None,
                tokens: torch.Tensor | None = None, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        parts = []
        if self.graph is not None:
            atom_h = self.graph.atom_states(graph)
            g = self.graph.pool(atom_h, graph)
        if self.fusion == "gated":
            gp, ep = self.g_proj(g), self.e_proj(embed)
            w = torch.sigmoid(self.gate(torch.cat([gp, ep], dim=1)))
            z = torch.cat([w * gp, (1 - w) * ep], dim=1)
        elif self.fusion == "attention":
            if tokens is None or token_mask is None:
                raise ValueError("the attention fusion needs LLM token states (tokens, token_mask)")
            nodes, node_mask = pad_nodes(atom_h, graph)
            z = torch.cat([g, embed, self.cross(nodes, node_mask, tokens, token_mask)], dim=1)
        else:
            if self.graph is not None:
                parts.append(g)
            if embed is not None:
                parts.append(embed)
            z = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return self.head(z)
