"""The 2D molecular graph of a training record, for the KFLM2 auxiliary head.

Only the graph is needed, so no conformer is generated: the record's molecule is read by
the input resolver under the `keep` 3D policy (its SMILES parsed, its structure file or
atom list read as is). The graph is that of ``molecule.standard.standard_molecule``, as in
deepmolm-kflm2: hydrogens removed (each atom keeps its H count as a feature), atom maps
cleared, canonical order, CIP stereo; one graph for every spelling of the molecule.
"""

from __future__ import annotations

from typing import Optional

from ..molecule.inputs import InputResolver
from ..property.features import GRAPH_FEATURES, MolGraph, mol_to_graph


def graph_resolver(structure_folder: Optional[str], kind: str = "record", **options) -> InputResolver:
    """The resolver that reads records' molecules for their graphs (3D policy `keep`)."""
    return InputResolver(structure_folder=structure_folder, policy="keep", kind=kind, **options)


def record_graph(record: dict, rid: str, resolver: InputResolver) -> Optional[MolGraph]:
    """The record's molecular graph; None when it only carries inline tokens."""
    if not any(record.get(name) for name in ("smiles", "structure", "atoms")):
        return None
    return mol_to_graph(resolver.molecule(record, rid).mol)


def graph_features_note(config) -> Optional[str]:
    """What to tell the user of a model whose property head was trained on graph features
    other than these (`features.GRAPH_FEATURES`; a config without the record predates it):
    its stereocentres' and double bonds' slots meant other things; None when they agree."""
    made = getattr(config, "graph_features", None)
    if made == GRAPH_FEATURES:
        return None
    what = " (its stereo slots: the written CW/CCW tags)" if made in (None, 1) else ""
    return (f"the model's property head was trained on graph features {made or 1}{what}, this code computes "
            f"{GRAPH_FEATURES} (CIP descriptors): its predictions for molecules with stereocentres or E/Z bonds are "
            "not what it learned; retrain it (or use the code it was trained with) for trustworthy predictions")
