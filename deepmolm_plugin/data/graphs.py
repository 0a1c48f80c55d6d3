"""The 2D molecular graph of a training record, for the KFLM2 auxiliary head.

Only the graph is needed, so no conformer is generated: the record's molecule is read by
the input resolver under the `keep` 3D policy (its SMILES parsed, its structure file or
atom list read as is). The graph is that of ``molecule.standard.standard_molecule``, as in
deepmolm-kflm2: hydrogens removed (each atom keeps its H count as a feature), atom maps
cleared, canonical order, CIP stereo; one graph for every spelling of the molecule.
"""

from __future__ import annotations

from typing import Optional

from ..config_fields import config_field
from ..molecule.inputs import InputResolver
from ..molecule.standard import STANDARD_RULES
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
    """What to tell the user of a model whose property head was trained on other graphs than
    this code makes (a config without a record predates it): other graph features
    (`features.GRAPH_FEATURES`: its stereocentres' and double bonds' slots meant other things)
    or another standard molecule (`molecule.standard.STANDARD_RULES`: a charge-separated
    hypervalent bond, `C[S+](C)[O-]`, was a graph of its own before rules 2 wrote it neutral);
    None when both agree."""
    made = config_field(config, "graph_features")
    rules = config_field(config, "standard_molecule")
    differ = []  # (what the head was trained on, this code's, the molecules whose predictions it changes)
    if made != GRAPH_FEATURES:
        what = " (its stereo slots: the written CW/CCW tags)" if made in (None, 1) else ""
        differ.append((f"graph features {made or 1}{what}", f"{GRAPH_FEATURES}, CIP descriptors",
                       "molecules with stereocentres or E/Z bonds"))
    if rules is None:  # saved before the rules were recorded: 1, or 2 (they came a few versions before the record)
        differ.append(("standard molecules of rules it does not record (1 or 2)", f"{STANDARD_RULES}",
                       "molecules written with charge-separated hypervalent bonds (if its rules were 1)"))
    elif rules != STANDARD_RULES:
        differ.append((f"standard-molecule rules {rules}", f"{STANDARD_RULES}",
                       "molecules written with charge-separated hypervalent bonds"
                       if rules < 2 <= STANDARD_RULES else "molecules the rules changed"))
    if not differ:
        return None
    trained = " and on ".join(f"{made_} (this code: {ours})" for made_, ours, _ in differ)
    which = " and for ".join(item[2] for item in differ)
    return (f"the model's property head was trained on {trained}: its predictions for {which} are not what it "
            "learned; retrain it (or use the code it was trained with) for trustworthy predictions")
