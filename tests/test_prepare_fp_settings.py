"""deepmolm-prepare makes tokens for a model with other fingerprint settings
(--fp-bits / --fp-levels, as deepmolm-fingerprint takes): it had no such option, while
training refused its DeepMoLM tokens for such a model with "prepare the data again with
this run's settings"."""

from __future__ import annotations

import json

import pytest

from deepmolm_plugin.molecule import fingerprint_record, molecule_from_smiles
from deepmolm_plugin.molecule.inputs import InputResolver
from deepmolm_plugin.molecule_fp import FingerprintSettings
from test_hostile_prepare_third import small_run
from test_prepare import prepare, records


def test_prepare_makes_tokens_with_the_models_settings(tmp_path):
    (tmp_path / "t.csv").write_text("smiles,y\nCCO,1\nc1ccccc1O,2\n")
    out = tmp_path / "out"
    code, _ = prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", out,
                      "--fp-bits", "8192", "--fp-levels", "3", *small_run())
    assert code == 0
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert (settings["fp_bits"], settings["fp_levels"]) == (8192, 3)
    wanted = FingerprintSettings(8192, 3)
    resolver = InputResolver(wanted, record_folder=str(out))
    for record in records(out / "train.json"):
        tokens = resolver.molecule_fp(record, record["id"])
        expected = fingerprint_record(molecule_from_smiles(record["smiles"], id="x"), wanted)
        assert tokens.shape == (expected.shape[0], 3) and tokens.tolist() == expected.tolist()


@pytest.mark.parametrize("bits, levels", [("1", "4"), ("4096", "0")])
def test_bad_fingerprint_settings_are_usage_errors(tmp_path, bits, levels, capsys):
    (tmp_path / "t.csv").write_text("smiles,y\nCCO,1\n")
    with pytest.raises(SystemExit) as info:
        prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", tmp_path / "out",
                "--fp-bits", bits, "--fp-levels", levels, *small_run())
    assert info.value.code == 2 and "--fp-bits / --fp-levels" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
