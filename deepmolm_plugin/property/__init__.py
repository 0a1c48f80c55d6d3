"""KFLM2-style molecular property prediction, standalone (command ``deepmolm-kflm2``).

An LLM embedding of the SMILES (mean-pooled last hidden state of any local causal LM
folder, ``featurizers.LLMEmbedding``; optional LoRA fine-tuning on SMILES, ``lora``) and/or
descriptor / fingerprint embeddings, a directed message-passing graph network over full
atom + bond features (``features``, ``models.DMPNN``), and their fusions (concat, gated,
cross-attention over token and atom states), trained and evaluated under an honest
protocol (``splits``, ``train``, ``report``, ``cli``): seeded 8:1:1 random / scaffold
splits saved to disk, early stopping and selection on validation only, masked missing
labels, ROC-AUC from probabilities, mean ± std over every seed.
"""

from .features import ATOM_DIM, BOND_DIM, MolGraph, collate_graphs, mol_to_graph, parse_smiles
from .models import DMPNN, MLP, CrossAttention, PropertyModel
from .splits import make_split, murcko_scaffold, random_split, scaffold_split
from .train import TrainConfig, roc_auc, run_seed

__all__ = [
    "ATOM_DIM", "BOND_DIM", "MolGraph", "collate_graphs", "mol_to_graph", "parse_smiles",
    "DMPNN", "MLP", "CrossAttention", "PropertyModel",
    "make_split", "murcko_scaffold", "random_split", "scaffold_split",
    "TrainConfig", "roc_auc", "run_seed",
]
