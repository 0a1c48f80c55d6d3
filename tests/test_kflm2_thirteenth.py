"""deepmolm-kflm2, thirteenth sweep: copies inside a --test-file reported like --data's (they
were scored as separate molecules without a word), evaluation in float32 under --bf16 (the
outputs were bf16-rounded), the run fingerprint by resolved settings (the default SMILES
column or Morgan settings spelled out was "a different configuration"), plots kept by a
--no-plots rerun of the same results (deleted without a word), and data / split refusals in
the ``deepmolm-kflm2: error:`` form with exit status 2 (bare, exit status 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from deepmolm_plugin.property import cli as kcli
from deepmolm_plugin.property.train import Inputs, TrainConfig, _Prepared, build_model, predict

from test_hostile_kflm2 import FORTY, _run
from test_hostile_property_images import _csv
from test_property import _graphs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# molecules in no row of FORTY: a test file of them removes nothing from training
OTHERS = ["Cc1ccccc1", "Nc1ccccc1", "CC(C)O", "CCOCC", "c1ccsc1", "CC#N", "OC1CCCC1", "CC(C)(C)O", "ClCCl", "CNC"]


def _data(tmp_path):
    return _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i % 9) for i, s in enumerate(FORTY)])


# ------------------------------------------------------------------ copies in a --test-file
def test_copies_inside_a_test_file_are_counted_listed_and_warned_of(tmp_path, capsys):
    # rows 10-12: row 0's molecule written another way (label +3), as its HCl salt (same label),
    # and row 1's molecule again with the same label
    rows = [(s, 0.5 * i) for i, s in enumerate(OTHERS)]
    rows += [("c1ccccc1C", 3.0), ("Cc1ccccc1.Cl", 0.0), ("Nc1ccccc1", 0.5)]
    test = _csv(tmp_path / "bench.csv", ["smiles", "y"], rows)
    out = tmp_path / "o"
    assert kcli.main(_run(_data(tmp_path), out, extra=("--test-file", str(test), "--sizes", "0.8", "0.2", "0"))) == 0
    dups = json.loads((out / "data_report.json").read_text())["test_files"]["bench"]["duplicates"]
    assert (dups["distinct_molecules"], dups["molecules_with_copies"], dups["rows_in_copies"],
            dups["conflicting"]) == (10, 2, 5, 1)
    assert dups["conflicts"] == [{"csv_rows": [0, 10, 11], "smiles": ["Cc1ccccc1", "c1ccccc1C", "Cc1ccccc1.Cl"],
                                  "labels": [[0.0], [3.0], [0.0]]}]
    err = capsys.readouterr().err  # with --quiet too: the conflicting labels move the benchmark's numbers
    assert ("deepmolm-kflm2: warning: --test-file " + str(test) + ": 2 molecule(s) occur in several rows (5 rows; 10 "
            "distinct molecules), 1 of them with labels that disagree, in rows (0, 10, 11); every row is scored as "
            "given") in err
    md = (out / "results.md").read_text()
    assert "`bench`: 13 rows scored (0 unparseable excluded), 10 distinct molecules: 2 in several rows" in md
    seed = json.loads((out / "seeds" / "seed_0.json").read_text())
    assert seed["metrics"]["bench"]["n"] == 13  # scored as given, as numbers published on the file are


# ---------------------------------------------------------------------------------- --bf16
def test_bf16_training_evaluates_in_float32():
    smiles = OTHERS * 3
    inputs = Inputs(graphs=_graphs(smiles), embed=None)
    torch.manual_seed(0)
    cfg = TrainConfig(task="classification", hidden=16, ffn_hidden=16, depth=2)
    model = build_model(cfg, 1, inputs)
    idx, zeros, ones = np.arange(len(smiles)), np.zeros(1), np.ones(1)
    fp32 = predict(model, _Prepared(inputs, None), idx, cfg, zeros, ones)
    cfg.bf16 = True
    bf16 = predict(model, _Prepared(inputs, None), idx, cfg, zeros, ones)
    np.testing.assert_array_equal(bf16, fp32)  # was: bf16-rounded probabilities (ties, another ROC-AUC)
    bf16_help = next(a.help for a in kcli.build_parser()._actions if "--bf16" in a.option_strings)
    assert "float32" in bf16_help


def test_an_older_bf16_folder_is_not_resumed_with_float32_evaluation(tmp_path):
    # its seeds were evaluated under bf16 autocast: not mixed with new ones
    data, out = _data(tmp_path), tmp_path / "o"
    argv = _run(data, out, extra=("--bf16",))
    assert kcli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["evaluation"] == "float32"
    del config["evaluation"]  # as the older version wrote it
    config["fingerprint"] = kcli._fingerprint(kcli.comparable_config(config, {}))
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match=r"different configuration \(changed: evaluation\)"):
        kcli.main(argv)


# ------------------------------------------------------------------- resolved fingerprint
def _seed_file(out):
    return (out / "seeds" / "seed_0.json").read_text()


def test_the_default_smiles_column_spelled_out_resumes_the_same_run(tmp_path):
    data, out = _data(tmp_path), tmp_path / "o"
    assert kcli.main(_run(data, out)) == 0
    before = _seed_file(out)
    assert kcli.main(_run(data, out, extra=("--smiles-column", "smiles"))) == 0  # was: "changed: smiles_column"
    assert _seed_file(out) == before  # resumed, not trained again
    assert json.loads((out / "config.json").read_text())["smiles_column"] == "smiles"


def test_a_folder_recording_settings_as_typed_resumes_where_they_resolve_alike(tmp_path, monkeypatch):
    # a folder of the previous version: --smiles-column None, --features "morgan", the data path as typed
    monkeypatch.chdir(tmp_path)
    data, out = _data(tmp_path), tmp_path / "o"
    argv = _run("d.csv", out, extra=("--features", "morgan:2:2048", "--cache-dir", str(tmp_path / "cache")))
    assert kcli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    old = config | {"smiles_column": None, "features": "morgan", "data_file": os.path.abspath("./x/../d.csv")}
    old.pop("fingerprint"), old.pop("argv")
    old_fp = kcli._fingerprint(old)
    (out / "config.json").write_text(json.dumps(old | {"fingerprint": old_fp, "argv": []}))
    seed = json.loads(_seed_file(out))
    (out / "seeds" / "seed_0.json").write_text(json.dumps(seed | {"fingerprint": old_fp}))
    argv[argv.index("morgan:2:2048")] = "morgan"
    assert kcli.main(argv) == 0
    assert json.loads(_seed_file(out)) == seed  # carried over to this run's fingerprint, not trained again


@pytest.mark.parametrize("typed, same_as", [("morgan", "morgan:2:2048"), ("morgan:3", "morgan:3:2048"),
                                            ("rdkit2d + morgan", "rdkit2d+morgan:2:2048"),
                                            ("llm:./m/../m", "llm:" + os.path.realpath("m"))])
def test_features_are_fingerprinted_in_one_spelling(typed, same_as):
    assert kcli.canonical_features(typed) == kcli.canonical_features(same_as)


def test_another_feature_order_or_morgan_setting_is_still_another_run():
    assert kcli.canonical_features("morgan+rdkit2d") != kcli.canonical_features("rdkit2d+morgan")
    assert kcli.canonical_features("morgan:3") != kcli.canonical_features("morgan")


# ------------------------------------------------------------------------------ --no-plots
def _plots(out):
    return sorted(p.name for p in (out / "plots").glob("*.png"))


def test_a_no_plots_rerun_of_the_same_results_keeps_their_plots(tmp_path, capsys):
    data, out = _data(tmp_path), tmp_path / "o"
    drawn = [a for a in _run(data, out) if a != "--no-plots"]
    assert kcli.main(drawn) == 0
    assert _plots(out) == ["learning_curves.png", "parity_test_0.png"]
    assert kcli.main(drawn + ["--no-plots"]) == 0
    assert _plots(out) == ["learning_curves.png", "parity_test_0.png"]  # was: plots/ emptied
    results = json.loads((out / "results.json").read_text())
    assert results["per_seed"][0]["seed"] == 0 and "deleted" not in capsys.readouterr().err
    assert kcli.main(drawn + ["--no-plots", "--seeds", "2"]) == 0  # other results: their plots go, said so
    assert _plots(out) == [] and "note: deleted 2 plot(s)" in capsys.readouterr().err


def test_overwrite_still_removes_the_plots(tmp_path, capsys):
    data, out = _data(tmp_path), tmp_path / "o"
    drawn = [a for a in _run(data, out) if a != "--no-plots"]
    assert kcli.main(drawn) == 0
    assert kcli.main(drawn + ["--no-plots", "--overwrite"]) == 0
    assert _plots(out) == [] and "as --overwrite asks" in capsys.readouterr().err


# --------------------------------------------------------------------- refusals: exit 2
def _refusals(tmp_path):
    """{case: (argv, message)} of data and split refusals, each before anything is trained."""
    data = _data(tmp_path)
    one_class = _csv(tmp_path / "c.csv", ["smiles", "y"], [(s, 1) for s in FORTY])
    few = _csv(tmp_path / "few.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY[:5])])
    blank = _csv(tmp_path / "b.csv", ["smiles", "y", "z"], [(s, i, "") for i, s in enumerate(FORTY)])
    same = _csv(tmp_path / "same.csv", ["smiles", "y"], [("CCO", i) for i in range(30)])
    return {
        "one class": (_run(one_class, tmp_path / "o1", extra=("--task", "classification")), "has only class 1"),
        "few molecules": (_run(few, tmp_path / "o2"), "only 5 usable molecules"),
        "no label": (_run(blank, tmp_path / "o3", targets=("y", "z")), "target 'z' has no label"),
        "empty subset": (_run(same, tmp_path / "o4"), "subset(s) would be empty"),
        "other configuration": (_run(data, tmp_path / "o5", extra=("--epochs", "2")), "different configuration"),
    }


@pytest.mark.parametrize("case", ["one class", "few molecules", "no label", "empty subset", "other configuration"])
def test_data_and_split_refusals_are_errors_with_exit_status_2(tmp_path, capsys, case):
    if case == "other configuration":
        assert kcli.main(_run(_data(tmp_path), tmp_path / "o5")) == 0
        capsys.readouterr()
    argv, message = _refusals(tmp_path)[case]
    with pytest.raises(SystemExit) as exit_:
        kcli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2, exit_.value.code  # was: the message as the code, exit status 1
    assert err[-1].startswith("deepmolm-kflm2: error: ") and message in err[-1]


def test_the_command_exits_2_on_a_data_refusal(tmp_path):
    argv, message = _refusals(tmp_path)["few molecules"]
    proc = subprocess.run([sys.executable, "-m", "deepmolm_plugin.property.cli", *argv], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("deepmolm-kflm2: error: only 5 usable"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
