"""Molecular graph featuriser: full atom and bond features, both edge directions.

KFLM2 cut its 70 atom features to 64 (losing aromaticity and H counts), kept one edge
direction and no bond features. Here every atom keeps all of its features and every bond
becomes two directed edges (u->v and v->u) carrying the bond's features, laid out so that
edge ``e`` and edge ``e ^ 1`` are the two directions of the same bond (what a directed
message-passing network needs to exclude the reverse message).

Atom features (one-hot blocks end with an "other" slot):

- element: atomic number 1..100 (slot 0: dummy/unknown, e.g. ``*``)
- heavy degree 0..5, formal charge -2..+2, chirality (none, R or r, S or s, other: a
  stereocentre without a CIP descriptor), total H count 0..4, hybridisation (S, SP, SP2,
  SP3, SP3D, SP3D2), radical electrons 0..2
- aromatic, in ring, ring sizes 3..8 (one flag each)
- mass / 100

Bond features: type (single, double, triple, aromatic), conjugated, in ring, stereo
(none, any, Z, E, seqCis, seqTrans). Molecules with several fragments (salts) keep them all.

Every graph, feature, copy key and scaffold is computed from ``molecule.standard.standard_molecule``: one
molecule for every spelling of it (atom order, explicit H, atom maps, Kekule or aromatic),
in canonical atom and bond order, stereo as CIP descriptors (RDKit's ``rdCIPLabeler``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from rdkit import Chem

from ..molecule import sanitize
from ..molecule.bonds import bonds
from ..molecule.checks import check_possible_atoms
from ..molecule.errors import MoleculeError, MoleculeTooLarge
from ..molecule.policy import MAX_ATOMS
from ..molecule.standard import standard_molecule

MAX_ATOMIC_NUM = 100
DEGREES = (0, 1, 2, 3, 4, 5)
FORMAL_CHARGES = (-2, -1, 0, 1, 2)
# A stereocentre by its CIP descriptor: the chiral tag (CW/CCW) is relative to the order the
# atom's bonds were written, so two spellings of L-alanine had opposite one-hots. The
# pseudo-asymmetric r / s (cis / trans 1,4-dimethylcyclohexane) share R's / S's slot, which
# keeps the block's width (4) for saved models.
CHIRALITY = ("", "R", "S")
TOTAL_HS = (0, 1, 2, 3, 4)
HYBRIDISATIONS = (
    Chem.HybridizationType.S,
    Chem.HybridizationType.SP,
    Chem.HybridizationType.SP2,
    Chem.HybridizationType.SP3,
    Chem.HybridizationType.SP3D,
    Chem.HybridizationType.SP3D2,
)
RADICALS = (0, 1, 2)
RING_SIZES = (3, 4, 5, 6, 7, 8)
BOND_TYPES = (
    Chem.BondType.SINGLE,
    Chem.BondType.DOUBLE,
    Chem.BondType.TRIPLE,
    Chem.BondType.AROMATIC,
)
# A double bond by its CIP descriptor: RDKit's STEREOCIS / STEREOTRANS are relative to
# reference atoms the input chose (a molfile's Z bond came out STEREOCIS), and a SMILES read
# by parse_smiles had no E/Z assigned at all (C/C=C/Cl and C/C=C\Cl were one graph).
BOND_STEREO = ("", "ANY", "Z", "E", "SEQCIS", "SEQTRANS")  # upper case: pseudo-asymmetric e / z as E / Z


def _one_hot(value, choices) -> list[float]:
    out = [0.0] * (len(choices) + 1)
    try:
        out[choices.index(value)] = 1.0
    except ValueError:
        out[-1] = 1.0
    return out


def _cip(item, stereo: bool) -> str:
    """The CIP descriptor ``standard_molecule`` gave an atom or bond with stereo ("?" when it
    gave none: ``_one_hot``'s "other" slot); "" without stereo."""
    return (item.GetProp("_CIPCode") if item.HasProp("_CIPCode") else "?") if stereo else ""


def atom_features(atom: Chem.Atom) -> list[float]:
    z = atom.GetAtomicNum()
    element = [0.0] * (MAX_ATOMIC_NUM + 1)
    element[z if 0 < z <= MAX_ATOMIC_NUM else 0] = 1.0
    ring = atom.GetOwningMol().GetRingInfo()
    idx = atom.GetIdx()
    return (
        element
        + _one_hot(atom.GetDegree(), DEGREES)
        + _one_hot(atom.GetFormalCharge(), FORMAL_CHARGES)
        + _one_hot(_cip(atom, atom.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED).upper(), CHIRALITY)
        + _one_hot(atom.GetTotalNumHs(), TOTAL_HS)
        + _one_hot(atom.GetHybridization(), HYBRIDISATIONS)
        + _one_hot(atom.GetNumRadicalElectrons(), RADICALS)
        + [float(atom.GetIsAromatic()), float(atom.IsInRing())]
        + [float(ring.IsAtomInRingOfSize(idx, k)) for k in RING_SIZES]
        + [atom.GetMass() / 100.0]
    )


def bond_features(bond: Chem.Bond) -> list[float]:
    return (
        _one_hot(bond.GetBondType(), BOND_TYPES)
        + [float(bond.GetIsConjugated()), float(bond.IsInRing())]
        + _one_hot(("any" if bond.GetStereo() == Chem.BondStereo.STEREOANY
                    else _cip(bond, bond.GetStereo() != Chem.BondStereo.STEREONONE)).upper(), BOND_STEREO)
    )


# What the graph's feature slots mean, recorded in a trained model's config (`graph_features`):
# 1 (no record): chirality as the written CW/CCW tag, no E/Z from a SMILES; 2: the
# standard molecule's CIP descriptors. The widths did not change, so a model of 1 loads and
# reads its stereo slots otherwise (`data.graphs.graph_features_note`).
GRAPH_FEATURES = 2
ATOM_DIM = len(atom_features(Chem.MolFromSmiles("C").GetAtomWithIdx(0)))
BOND_DIM = len(bond_features(Chem.MolFromSmiles("CC").GetBondWithIdx(0)))


@dataclass
class MolGraph:
    """One molecule: atoms (n, ATOM_DIM), directed edges (2, 2b) src->dst, edge features (2b, BOND_DIM).

    Edges 2i and 2i+1 are the two directions of bond i, so ``rev(e) = e ^ 1``.
    """

    atoms: np.ndarray
    edge_index: np.ndarray
    edges: np.ndarray

    @property
    def num_atoms(self) -> int:
        return int(self.atoms.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])


def mol_to_graph(mol: Chem.Mol) -> MolGraph:
    """The graph of ``standard_molecule(mol)``: the same arrays for every spelling of a molecule."""
    mol = standard_molecule(mol)
    atoms = np.asarray([atom_features(a) for a in mol.GetAtoms()], dtype=np.float32).reshape(-1, ATOM_DIM)
    src, dst, feats = [], [], []
    for bond in bonds(mol):
        u, v = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        f = bond_features(bond)
        src += [u, v]
        dst += [v, u]
        feats += [f, f]
    edge_index = np.asarray([src, dst], dtype=np.int64).reshape(2, -1)
    edges = np.asarray(feats, dtype=np.float32).reshape(-1, BOND_DIM)
    return MolGraph(atoms, edge_index, edges)


# Heavy atoms a SMILES may have here, counted before RDKit sanitises it: ring perception of a
# 20,000-atom macrocycle (a 20 KB CSV line) took 52 s and 12 GB, then a crash under a memory
# limit. Four times the molecule package's cap (MAX_ATOMS, 256): that cap bounds conformer work,
# which a graph does not need, and SIDER has 20 molecules of 257-492 heavy atoms; a 1,024-atom
# ring sanitises in 0.07 s.
MAX_HEAVY_ATOMS = 4 * MAX_ATOMS


def parse_smiles(smiles: str) -> tuple[Chem.Mol | None, str]:
    """RDKit molecule (sanitised, as written: graphs, features and keys are computed from its
    ``standard_molecule``) or None plus the reason, in RDKit's own words where it
    gave any: the molecule package's parser (`molecule.sanitize.parse_smiles`), which also
    refuses text RDKit would read as another molecule ('CC O' is ethane to RDKit), an atom
    no element can make (`molecule.checks.check_possible_atoms`: a charge or mass number that
    cannot exist), and a molecule of more than ``MAX_HEAVY_ATOMS`` heavy atoms."""
    try:
        mol, _ = sanitize.parse_smiles(smiles, smiles, MAX_HEAVY_ATOMS)
        # `[C+8]`, `[133CH3]` (a typo of `[13CH3]`): refused by every other tool, trained on here
        check_possible_atoms(mol, smiles)
    except MoleculeTooLarge as error:
        return None, (f"too large: {error.n_heavy} heavy atoms > {MAX_HEAVY_ATOMS}, the property models' cap "
                      f"(4 x max_atoms={MAX_ATOMS}, the molecule package's default cap)")
    except MoleculeError as error:
        return None, error.reason
    if mol.GetNumAtoms() == 0:
        return None, "no atoms"
    return mol, ""


@dataclass
class GraphBatch:
    """Several molecules as one disjoint graph (torch tensors)."""

    atoms: "torch.Tensor"  # (N, ATOM_DIM)
    edges: "torch.Tensor"  # (E, BOND_DIM)
    src: "torch.Tensor"  # (E,)
    dst: "torch.Tensor"  # (E,)
    rev: "torch.Tensor"  # (E,)
    atom_mol: "torch.Tensor"  # (N,) molecule index of each atom
    num_mols: int

    def to(self, device, dtype=None) -> "GraphBatch":
        """On `device`, the atom and bond features in `dtype` when given (the indices stay
        integers): a bf16 head met float32 features ("expected m1 and m2 to have the same
        dtype") wherever the model ran in bf16, e.g. dtype "auto" on CUDA or a bf16 CPU."""
        features = (t.to(device=device, dtype=dtype) for t in (self.atoms, self.edges))
        indices = (t.to(device) for t in (self.src, self.dst, self.rev, self.atom_mol))
        return GraphBatch(*features, *indices, self.num_mols)


def collate_graphs(graphs: Sequence[MolGraph]) -> GraphBatch:
    import torch

    n_atoms = np.fromiter((g.num_atoms for g in graphs), dtype=np.int64, count=len(graphs))
    n_edges = np.fromiter((g.num_edges for g in graphs), dtype=np.int64, count=len(graphs))
    atom_off = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
    edge_off = np.concatenate([[0], np.cumsum(n_edges)[:-1]])
    atoms = np.concatenate([g.atoms for g in graphs]) if graphs else np.zeros((0, ATOM_DIM), np.float32)
    edges = np.concatenate([g.edges for g in graphs]) if graphs else np.zeros((0, BOND_DIM), np.float32)
    index = np.concatenate([g.edge_index + o for g, o in zip(graphs, atom_off)], axis=1) if graphs else \
        np.zeros((2, 0), np.int64)
    rev = np.concatenate([np.arange(m, dtype=np.int64) ^ 1 if m else np.zeros(0, np.int64) for m in n_edges]
                         ) if graphs else np.zeros(0, np.int64)
    rev = rev + np.repeat(edge_off, n_edges)
    atom_mol = np.repeat(np.arange(len(graphs), dtype=np.int64), n_atoms)
    return GraphBatch(
        torch.from_numpy(atoms), torch.from_numpy(edges), torch.from_numpy(index[0].copy()),
        torch.from_numpy(index[1].copy()), torch.from_numpy(rev), torch.from_numpy(atom_mol), len(graphs),
    )
