"""A 3D-MoIT atom-list record (atoms, coordinates, SMILES, no charge) of an ion: the
source's MoleculeSpec stated a total charge of 0 where none was given, and deepmolm-prepare
failed every cation and anion ("its total charge is +0 but its SMILES' is +1 ... or leave
the charge out") that training and eval accept from the same fields."""

from __future__ import annotations

import pytest

from deepmolm_plugin.data.prepare.items import ItemMaker, WorkSettings
from deepmolm_plugin.data.sources.base import SourceItem
from deepmolm_plugin.data.sources.moit import _spec
from deepmolm_plugin.molecule import molecule_from_smiles
from deepmolm_plugin.molecule.inputs import InputResolver


@pytest.mark.parametrize("smiles", ["C[N+](C)(C)C", "CC(=O)[O-]"])
def test_prepare_takes_an_ion_given_as_atoms_as_training_does(tmp_path, smiles):
    made3d = molecule_from_smiles(smiles, id="x")  # a 3D geometry with every hydrogen
    atoms = [a.GetSymbol() for a in made3d.mol.GetAtoms()]
    coords = made3d.mol.GetConformer().GetPositions().tolist()
    spec = _spec({"atoms": atoms, "coordinates": [coords], "smiles": smiles}, "coordinates", "smiles")
    assert spec.charge is None  # not stated by the source
    out = str(tmp_path / "out")
    maker = ItemMaker(WorkSettings(out=out, tmp=out + "/tmp", input_root=out, policy="auto", image_size=128))
    made = maker.make(SourceItem(id="moit-1", split="train", task="description", answer="An ion.", molecule=spec))
    assert made.failure is None, made.failure  # was: "its total charge is +0 but its SMILES' is ..."
    resolved = InputResolver(render_folder=str(tmp_path / "r")).resolve(
        {"atoms": atoms, "coordinates": coords, "smiles": smiles}, "rec")
    assert made.record["id"] == "moit-1" and resolved.molecule_fp.shape[0] == made3d.mol.GetNumHeavyAtoms()
