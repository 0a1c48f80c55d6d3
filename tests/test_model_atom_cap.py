"""The atom cap a dataset was prepared under (deepmolm-prepare --max-atoms, `none` for
none) is the cap training, and then the trained model's chat, eval and GUI, use: data
prepared with --max-atoms none was refused by training ("too large: 300 heavy atoms >
max_atoms=256 ... raise it with --max-atoms", an option training does not have)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from deepmolm_plugin.data.records import RecordError
from deepmolm_plugin.molecule.inputs import InputError, model_limits
from test_hostile_training import dataset, qwen2_template, tokenizer, turns, white_png  # noqa: F401

BIG = "C" * 300  # 300 heavy atoms: past the default cap of 256


def _data(tmp_path, settings):
    (tmp_path / "manifest.json").write_text(json.dumps({"settings": settings}))
    return [{"id": "big", "image": white_png(tmp_path), "smiles": BIG, "conversations": turns()}]


def test_training_takes_the_prepared_datas_atom_cap(tmp_path, tokenizer):
    from patches.molecule_data import use_model_molecule_settings

    ds = dataset(tmp_path, tokenizer, _data(tmp_path, {"max_atoms": None}))
    assert ds.molecules.limits == {"max_atoms": None} and ds.graph_molecules.limits == {"max_atoms": None}
    config = SimpleNamespace(fp_bits=4096, fp_levels=4)
    use_model_molecule_settings(ds, config)
    assert config.max_atoms is None  # the saved model says so: chat, eval and the GUI use it


def test_data_without_a_stated_cap_keeps_the_default(tmp_path, tokenizer):
    with pytest.raises((InputError, RecordError), match=r"too large: 300 heavy atoms > max_atoms=256"):
        dataset(tmp_path, tokenizer, _data(tmp_path, {}))


def test_a_manifests_bad_cap_names_the_manifest(tmp_path, tokenizer):
    with pytest.raises(ValueError, match=r"manifest.json: max_atoms is 'many'"):
        dataset(tmp_path, tokenizer, _data(tmp_path, {"max_atoms": "many"}))


@pytest.mark.parametrize("config, limits", [
    ({}, {}), ({"max_atoms": None}, {"max_atoms": None}), ({"max_atoms": 500}, {"max_atoms": 500}),
    (SimpleNamespace(max_atoms=None), {"max_atoms": None}), (SimpleNamespace(), {}),
])
def test_model_limits(config, limits):
    assert model_limits(config) == limits


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "300"])
def test_a_bad_model_cap_is_refused(value):
    with pytest.raises(ValueError, match="max_atoms is"):
        model_limits({"max_atoms": value})


def test_the_chat_clis_molecule_takes_the_models_cap(tmp_path):
    from deepmolm_plugin.cli import model_depiction_settings, molecule_resolver
    from deepmolm_plugin.usage import UsageError

    (tmp_path / "config.json").write_text(json.dumps({"max_atoms": None}))
    molecule_resolver("auto", str(tmp_path)).check_sources({"smiles": BIG}, "m")  # was: too large
    (tmp_path / "config.json").write_text(json.dumps({}))
    with pytest.raises(InputError, match="too large"):
        molecule_resolver("auto", str(tmp_path)).check_sources({"smiles": BIG}, "m")
    (tmp_path / "config.json").write_text(json.dumps({"max_atoms": -1}))
    with pytest.raises(UsageError, match="max_atoms is -1"):
        model_depiction_settings(str(tmp_path), None)
