"""deepmolm-kflm2, second hostile sweep: inputs that used to give numbers that were wrong
without a word (copies of a molecule on both sides of a split, a fixed test set whose salt
forms stayed in training, a test file named like a subset, a constant target, labels
whose squares overflow, metrics printed as 0.000) now give a clear error or a grouped,
reported result."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from rdkit import Chem

from deepmolm_plugin.property import cli as kcli
from deepmolm_plugin.property.report import fmt
from deepmolm_plugin.molecule.standard import molecule_keys
from deepmolm_plugin.property.splits import join_groups, key_groups, random_split

from test_hostile_property_images import _csv
from test_property import tiny_llm  # noqa: F401 (a fixture)

SMALL = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCCCC1N", "O=C(O)c1ccccc1", "CCN(CC)CC", "Clc1ccc(Cl)cc1",
         "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "C#N", "OCC(O)CO", "c1ccncc1", "CCCCCCCC", "CS(C)=O", "c1ccc2ccccc2c1",
         "FC(F)(F)c1ccccc1", "CCOC(=O)C", "NC(=O)N", "C1=CC=CN1", "CCCl", "CCBr"]
FORTY = SMALL + ["C" * k + "O" for k in range(2, 22)]

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads cost more than they give


def _run(data, out, targets=("y",), extra=()):
    return ["--data", str(data), "--targets", *targets, "--task", "regression", "--seeds", "1", "--epochs", "1",
            "--hidden", "8", "--ffn-hidden", "8", "--features", "none", "--out", str(out), "--quiet", "--no-plots",
            *extra]


# ------------------------------------------------------------------- copies of a molecule
def _copies_csv(path):
    """Each SMALL molecule three times: as written, written another way, as its HCl salt;
    row 1 (a copy of row 0) gets a label that disagrees."""
    rows = []
    for i, s in enumerate(SMALL):
        mol = Chem.MolFromSmiles(s)
        other = Chem.MolToSmiles(mol, canonical=False, rootedAtAtom=mol.GetNumAtoms() - 1)
        rows += [(s, i), (other, i), (f"{s}.Cl", i)]
    rows[1] = (rows[1][0], 99)
    return _csv(path, ["smiles", "y"], rows)


def test_copies_of_a_molecule_stay_in_one_subset_and_are_reported(tmp_path):
    # was: the random split put copies in train and test (BBBP: 12 of 205 test rows, DataWarrior
    # pKa: 220 of 792, had a copy in train) and nothing said the file had copies or conflicts
    data, out = _copies_csv(tmp_path / "copies.csv"), tmp_path / "run"
    assert kcli.main(_run(data, out, extra=["--seeds", "3"])) == 0
    keys = molecule_keys([Chem.MolFromSmiles(r[0]) for r in csv.reader(open(data)) if r[0] != "smiles"])
    assert len(set(keys)) == len(SMALL)
    for seed in range(3):
        split = json.loads((out / "splits" / f"seed_{seed}.json").read_text())
        subsets = [{keys[r] for r in split[f"{s}_csv_rows"]} for s in ("train", "valid", "test")]
        assert not (subsets[0] & subsets[1] or subsets[0] & subsets[2] or subsets[1] & subsets[2]), seed
    dups = json.loads((out / "data_report.json").read_text())["duplicates"]
    assert (dups["molecules_with_copies"], dups["rows_in_copies"], dups["conflicting"]) == (20, 60, 1)
    assert dups["conflicts"][0]["csv_rows"] == [0, 1, 2] and dups["conflicts"][0]["labels"] == [[0.0], [99.0], [0.0]]
    assert "molecules in several rows (same parent, salts and charges aside): 20 (60 rows), 1 of them" in \
        (out / "results.md").read_text()


def test_grouping_changes_no_split_without_copies():
    n = 57
    singles = [[i] for i in range(n)]
    for seed in range(4):  # the split every earlier run used: a permutation cut at 80 % and 90 %
        order = np.random.default_rng(seed).permutation(n)
        split = random_split(n, seed, groups=singles)
        assert split["train"].tolist() == sorted(order[:45]) and split["test"].tolist() == sorted(order[50:])
    sets = {"a": [0, 2], "b": [1], "c": [3], "d": [4]}
    assert join_groups(sets, key_groups("vwxyz")) == sets
    assert join_groups(sets, [[0], [1, 3], [2], [4]]) == {"a": [0, 2], "b": [1, 3], "d": [4]}  # a salt's ring


def test_a_fixed_test_set_removes_the_training_rows_of_its_molecules_in_any_form(tmp_path):
    train = _csv(tmp_path / "train.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    test = _csv(tmp_path / "ext.csv", ["smiles", "y"],
                [("OCC", 0), ("[O-]C(=O)c1ccccc1.[Na+]", 1), ("NC1CCCCC1.Cl", 2), ("CCCCCCCCCCCCCCCCCCCCCCCCO", 3)])
    out = tmp_path / "run"
    assert kcli.main(_run(train, out, extra=["--test-file", str(test)])) == 0
    report = json.loads((out / "data_report.json").read_text())
    # was 2: CCO (twice in FORTY) only; benzoic acid and cyclohexylamine stayed in training
    assert report["test_files"]["ext"]["removed_from_train"] == 4 and report["molecules"] == 36


@pytest.mark.parametrize("names", [("valid",), ("a/ext", "b/ext")])
def test_test_files_named_like_a_subset_or_each_other_are_refused(tmp_path, capsys, names):
    # was: valid.csv's metrics replaced the validation metrics, and of two ext.csv files one vanished
    train = _csv(tmp_path / "train.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    extra = []
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        extra += ["--test-file", str(_csv(tmp_path / f"{name}.csv", ["smiles", "y"], [("CCCl", 1), ("CCBr", 2)]))]
    with pytest.raises(SystemExit) as exit_:
        kcli.main(_run(train, tmp_path / "run", extra=extra))
    assert exit_.value.code == 2
    assert f"--test-file: the name(s) ['{names[-1].split('/')[-1]}']" in capsys.readouterr().err


# --------------------------------------------------------------------------------- labels
def test_a_constant_regression_target_is_refused(tmp_path):
    # was: trained, an RMSE of the model's noise reported, R² n/a, and with a second target
    # the averaged R² silently that target's alone
    data = _csv(tmp_path / "d.csv", ["smiles", "y", "z"], [(s, 3.0, i) for i, s in enumerate(FORTY)])
    with pytest.raises(SystemExit, match="regression target 'y' has only the value 3 in its 40 labelled molecules"):
        kcli.main(_run(data, tmp_path / "run", targets=("z", "y")))
    assert not (tmp_path / "run" / "config.json").exists()


def test_labels_whose_squares_overflow_are_refused(tmp_path):
    # was: 1e200 overflowed the standard deviation, which fell back to 1: every metric NaN
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, f"{1 + i}e200" if i % 2 else i) for i, s in enumerate(FORTY)])
    with pytest.raises(SystemExit, match=r"20 non-finite label\(s\) \(nan/inf\), beyond \+-1e\+100 or nonzero within \+-1e-100 \(change the unit\): row 1 "
                                         r"\(y='2e200'\)"):
        kcli.main(_run(data, tmp_path / "run"))


def test_tiny_and_huge_labels_give_the_same_fit_and_readable_numbers(tmp_path):
    r2 = {}
    for scale in (1.0, 1e-12, 1e12):
        data = _csv(tmp_path / f"{scale}.csv", ["smiles", "y"], [(s, repr(scale * i)) for i, s in enumerate(FORTY)])
        assert kcli.main(_run(data, tmp_path / f"run{scale}")) == 0
        results = json.loads((tmp_path / f"run{scale}" / "results.json").read_text())
        r2[scale] = results["summary"]["test"]["r2"]["mean"]
        rmse = results["summary"]["test"]["rmse"]
        assert np.isclose(rmse["mean"] / scale, json.loads((tmp_path / "run1.0" / "results.json").read_text())[
            "summary"]["test"]["rmse"]["mean"], rtol=1e-4)  # standardised targets: the same model up to scale
        assert fmt(rmse) in (tmp_path / f"run{scale}" / "results.md").read_text()
    assert np.allclose(list(r2.values()), r2[1.0], rtol=1e-4)
    assert fmt({"mean": 3.9e-13, "std": 0.0, "n": 2, "values": [3.9e-13] * 2}) == "3.900e-13 ± 0.000e+00"  # was 0.000 ± 0.000
    assert fmt({"mean": 3.9e11, "std": 1e10, "n": 2, "values": [3.8e11, 4e11]}) == "3.900e+11 ± 1.000e+10"
    assert fmt({"mean": 0.652, "std": 0.031, "n": 2, "values": [0.63, 0.674]}) == "0.652 ± 0.031"  # ordinary metrics: as before


# -------------------------------------------------------------------------- resume, graphs
def test_a_folder_from_the_ungrouped_split_is_not_resumed(tmp_path):
    data, out = _copies_csv(tmp_path / "copies.csv"), tmp_path / "run"
    assert kcli.main(_run(data, out)) == 0
    config = json.loads((out / "config.json").read_text())
    del config["split_groups"]  # as written before splits grouped copies: its seeds split copies apart
    config["fingerprint"] = "0123456789abcdef"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match=r"different configuration \(changed: split_groups\)"):
        kcli.main(_run(data, out))


def test_molecules_without_bonds_or_with_odd_atoms_train(tmp_path):
    odd = ["C", "O", "[Na+].[Cl-]", "[13CH4]", "[2H]O[2H]", "[NH3]->[Cu+2]", "*C", "[He]", "[Og]", "C.C.C",
           "F[P-](F)(F)(F)(F)F.[Li+]", "[Ti+4]", "[CH3]", "S"]
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i % 7) for i, s in enumerate(odd * 3)])
    # batches of 2 include batches with no bond at all
    assert kcli.main(_run(data, tmp_path / "run", extra=["--batch-size", "2"])) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert np.isfinite(results["summary"]["test"]["rmse"]["mean"]) and results["data"]["invalid_smiles"] == 0


@pytest.mark.parametrize("option, value", [("--lr", "inf"), ("--lr", "nan"), ("--weight-decay", "inf")])
def test_non_finite_training_numbers_are_refused(tmp_path, capsys, option, value):
    # argparse's float takes them; --lr inf trained to NaN weights
    train = _csv(tmp_path / "train.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    with pytest.raises(SystemExit) as exit_:
        kcli.main(_run(train, tmp_path / "run", extra=[option, value]))
    assert exit_.value.code == 2 and f"{option} must be a finite number, got {value}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_seed_count_beyond_any_experiment_is_refused_before_splitting(tmp_path, capsys):
    train = _csv(tmp_path / "train.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    with pytest.raises(SystemExit) as exit_:  # was: splits built until memory ran out
        kcli.main(_run(train, tmp_path / "run", extra=["--seeds", "1000000000"]))
    assert exit_.value.code == 2 and "--seeds 1000000000: at most 1000" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------- SMILES and RDKit's log
def test_smiles_rdkit_would_misread_are_invalid_rows_with_rdkit_words(tmp_path):
    rows = [("CCO", 1.0), ("CC O", 2.0), ("C(C)(C)(C)(C)C", 3.0), ("CCé", 4.0), ("c1ccccc1O", 5.0)]
    table = kcli.load_table(_csv(tmp_path / "d.csv", ["smiles", "y"], rows), ["y"])
    assert table.smiles == ["CCO", "c1ccccc1O"]  # 'CC O' was read as ethane, 'CCé' as ethane
    reasons = {r["smiles"]: r["reason"] for r in table.invalid}
    assert "text after a space" in reasons["CC O"]
    assert "Explicit valence for atom C1, 5" in reasons["C(C)(C)(C)(C)C"]  # was "RDKit could not parse"
    assert "non-ASCII character" in reasons["CCé"]


def test_kflm2_leaves_rdkit_logging_as_it_found_it():
    from rdkit import RDLogger, rdBase

    from deepmolm_plugin.property.features import parse_smiles
    from deepmolm_plugin.property.featurizers import RDKit2D

    RDLogger.DisableLog("rdApp.warning")  # a user's own setting
    try:
        quiet = rdBase.LogStatus()
        parse_smiles("C(C)(C)(C)(C)C")
        mols = [Chem.MolFromSmiles(s) for s in ("CCO", "[Na+].CC(=O)[O-]")]
        molecule_keys(mols)
        RDKit2D().compute(mols, ["CCO", "[Na+].CC(=O)[O-]"])
        assert rdBase.LogStatus() == quiet  # EnableLog("rdApp.*") turned warnings and debug/info on
    finally:
        RDLogger.EnableLog("rdApp.warning")


def test_a_row_the_csv_module_cannot_parse_is_an_error_naming_it(tmp_path):
    # was: a csv.Error traceback; a blank line before the header made it empty
    path = tmp_path / "t.csv"
    path.write_text("\n\nsmiles,y\nCCO,1.0\nCCN," + "9" * 140_000 + "\nCCC,2.0\n")
    with pytest.raises(SystemExit, match=r"t.csv row 1 \(line 5\): cannot be parsed as CSV: field larger"):
        kcli.load_table(path, ["y"])
    path.write_text("\nsmiles,y\nCCO,1.0\nCCN,2.0\n")
    assert kcli.load_table(path, ["y"]).smiles == ["CCO", "CCN"]


def test_a_fixed_test_set_without_usable_labels_is_refused(tmp_path):
    # was: exit 0 with "0 molecules" and a test metric "n/a"
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY[:30])])
    blank = _csv(tmp_path / "blank.csv", ["smiles", "y"], [(s, "") for s in FORTY[30:]])
    with pytest.raises(SystemExit, match=r"--test-file .*blank.csv: target 'y' has no label in the 0 usable "
                                         r"molecules; nothing to test it on$"):
        kcli.main(_run(data, tmp_path / "o", extra=("--test-file", str(blank))))
    constant = _csv(tmp_path / "constant.csv", ["smiles", "y"], [(s, 1.0) for s in FORTY[30:]])
    # was: the training data's advice ("drop it from --targets", "nothing to learn")
    with pytest.raises(SystemExit, match=r"--test-file .*constant.csv: regression target 'y' has only the value 1 in "
                                         r"its 10 labelled molecules: no R² can be computed on it$"):
        kcli.main(_run(data, tmp_path / "o", extra=("--test-file", str(constant))))


def test_a_target_without_a_label_in_a_subset_is_refused(tmp_path):
    # was: the sparse target's two labels fell in valid/test; trained on nothing, its test
    # error was averaged into the seed's
    rows = [(s, i, {0: 7.0, 1: 8.0}.get(i, "")) for i, s in enumerate(FORTY)]
    data = _csv(tmp_path / "d.csv", ["smiles", "y", "sparse"], rows)
    with pytest.raises(SystemExit, match=r"seed \d+: the (train|valid|test) subset \(\d+ molecules\) has no label of "
                                         r"target\(s\) 'sparse' \(2 labels in all\)"):
        kcli.main(_run(data, tmp_path / "o", targets=("y", "sparse"), extra=("--seeds", "4")))


def test_labels_not_in_plain_decimals_are_refused_and_overwrite_clears_old_reports(tmp_path):
    # was: "1_000" read as 1000, "١٢" as 12; and --overwrite left the old run's plots
    rows = [(s, i) for i, s in enumerate(FORTY)]
    odd = _csv(tmp_path / "odd.csv", ["smiles", "y"], [(FORTY[0], "1_000"), (FORTY[1], "١٢"), (FORTY[2], "1e-400"),
                                                       *rows[3:]])
    with pytest.raises(SystemExit) as refused:
        kcli.load_table(odd, ["y"])
    for text in ("1_000", "١٢", "1e-400"):  # 1e-400 was read as the label 0.0
        assert text in str(refused.value), str(refused.value)
    out = tmp_path / "o2"
    two = _csv(tmp_path / "two.csv", ["smiles", "y", "z"], [(s, i, i % 7) for i, s in enumerate(FORTY)])
    plotted = [a for a in _run(two, out, targets=("y", "z")) if a != "--no-plots"]
    kcli.main(plotted)
    assert (out / "plots" / "parity_test_1.png").is_file()
    kcli.main([a for a in _run(two, out) if a != "--no-plots"] + ["--overwrite"])
    assert not (out / "plots" / "parity_test_1.png").exists() and (out / "plots" / "parity_test_0.png").is_file()


# --------------------------------------------------------------------- files as users bring them
def test_a_non_utf8_byte_anywhere_is_one_line_naming_its_line(tmp_path, capsys):
    # was: a UnicodeDecodeError traceback when the byte lay after the first 8 KB read
    rows = "".join(f"{s},{i}\n" for i, s in enumerate(FORTY * 8))
    data = tmp_path / "latin1.csv"
    data.write_bytes(b"smiles,y,name\n" + rows.replace("\n", ",x\n").encode() + b"CCO,1,Caf\xe9\n")
    line = 2 + len(FORTY) * 8
    with pytest.raises(SystemExit) as exit_:
        kcli.main(_run(data, tmp_path / "run"))
    assert exit_.value.code == 2
    assert f"not a UTF-8 CSV file (invalid continuation byte: byte 0xe9 on line {line}); save it as UTF-8" in \
        capsys.readouterr().err


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    # was: "no SMILES column ... in the header []" (the README says every CSV reader skips them)
    data = tmp_path / "blank.csv"
    data.write_text("\n\n" + _csv(tmp_path / "t.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)]).read_text())
    kcli.check_arguments(kcli.build_parser().parse_args(_run(data, tmp_path / "run")))


def test_two_smiles_columns_are_refused_unless_one_is_named(tmp_path, capsys):
    # was: kflm2 read `smiles`, deepmolm-prepare `SMILES`: one label went with two molecules
    data = _csv(tmp_path / "two.csv", ["SMILES", "smiles", "y"], [(s, t, i) for i, (s, t) in
                                                                 enumerate(zip(FORTY, FORTY[::-1]))])
    with pytest.raises(SystemExit) as exit_:
        kcli.main(_run(data, tmp_path / "run"))
    assert exit_.value.code == 2
    assert "several SMILES columns (SMILES, smiles): name the one to read with --smiles-column" in \
        capsys.readouterr().err
    kcli.check_arguments(kcli.build_parser().parse_args(_run(data, tmp_path / "run", extra=["--smiles-column",
                                                                                            "smiles"])))
    # a canonical_smiles column next to smiles is no second spelling (prepare's rule too): smiles is read
    canonical = _csv(tmp_path / "canon.csv", ["smiles", "canonical_smiles", "y"],
                     [(s, s, i) for i, s in enumerate(FORTY)])
    kcli.check_arguments(kcli.build_parser().parse_args(_run(canonical, tmp_path / "run")))


def test_one_seeds_metric_has_no_spread_and_fewer_seeds_are_counted():
    # was "0.333 ± 0.000" for a metric defined in 1 of 5 seeds (one class in the others' test sets)
    from deepmolm_plugin.property.report import mean_std

    nan = float("nan")
    assert fmt(mean_std([0.333, nan, nan, nan, nan])) == "0.333 (1 of 5 seeds)"
    assert fmt(mean_std([0.5])) == "0.500 (1 seed)"
    assert fmt(mean_std([0.5, 0.7, nan])) == "0.600 ± 0.141 (2 of 3 seeds)"
    assert fmt(mean_std([nan, nan])) == "n/a"


def test_a_validation_loss_is_not_stored_or_shown_as_the_metric(tmp_path):
    # With one class in the validation subset ROC-AUC is undefined and selection uses the loss:
    # -BCE was stored as "valid_roc_auc" (drawn on the ROC-AUC axis, printed "valid roc_auc -0.664")
    data = _csv(tmp_path / "c.csv", ["smiles", "y"], [(s, int(i in (3, 17))) for i, s in enumerate(FORTY)])
    kcli.main(_run(data, tmp_path / "run", extra=["--task", "classification", "--sizes", "0.8", "0.1", "0.1"]))
    curve = json.loads((tmp_path / "run" / "seeds" / "seed_0.json").read_text())["members"][0]["curve"]
    assert all(p["valid_roc_auc"] is None and p["valid_loss"] > 0 for p in curve), curve  # null: strict JSON


def test_test_file_predictions_name_their_csv_rows_and_molecules(tmp_path):
    # was: `index` 0, 1, ... counted usable molecules: with an invalid and an unlabelled row
    # first, index 0 was CSV row 2, and nothing said so
    train = _csv(tmp_path / "train.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    ext = _csv(tmp_path / "ext.csv", ["smiles", "y"], [("C1CC", 1.0), ("CCCCCCO", ""), ("CCCl", 1), ("CCBr", 2)])
    kcli.main(_run(train, tmp_path / "run", extra=["--test-file", str(ext), "--sizes", "0.8", "0.2", "0"]))
    predictions = json.loads((tmp_path / "run" / "seeds" / "seed_0.json").read_text())["predictions"]
    assert predictions["ext"]["csv_rows"] == [2, 3] and predictions["ext"]["smiles"] == ["CCCl", "CCBr"]
    valid = predictions["valid"]
    assert [FORTY[r] for r in valid["csv_rows"]] == valid["smiles"]
    # test.csv, the usual name of a fixed test file, is its own subset: the split makes only train and valid
    kcli.main(_run(train, tmp_path / "run2", extra=["--test-file", str(_csv(tmp_path / "test.csv", ["smiles", "y"],
                                                                          [("CCCl", 1), ("CCBr", 2)]))]))
    tested = json.loads((tmp_path / "run2" / "seeds" / "seed_0.json").read_text())
    assert tested["predictions"]["test"]["smiles"] == ["CCCl", "CCBr"] and set(tested["split_sizes"]) == {"train", "valid"}


@pytest.mark.parametrize("config, message", [
    ('{"model_type": ', "config.json is unreadable (Expecting value"),
    ("[1]", "config.json holds a JSON list, not an object"),
    (b"\xff\xfe{}", "config.json is not UTF-8 text"),
])
def test_an_llm_folder_with_a_broken_config_is_one_line(tmp_path, capsys, config, message):
    # was: a JSONDecodeError / AttributeError traceback from causal_lm.llm_config after the data were read
    folder = tmp_path / "llm"
    folder.mkdir()
    (folder / "config.json").write_bytes(config if isinstance(config, bytes) else config.encode())
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    argv = _run(data, tmp_path / "out")
    argv[argv.index("--features") + 1] = f"llm:{folder}"
    with pytest.raises(SystemExit) as exit_:
        kcli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and str(folder / "config.json") in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_llm_config_names_the_folder_of_a_broken_config(tmp_path):
    """The featuriser's own reader (reached from Python, not only through the CLI's checks)."""
    from deepmolm_plugin import usage
    from deepmolm_plugin.property.causal_lm import llm_config

    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(usage.UsageError, match="holds a JSON list, not an object"):
        llm_config(str(tmp_path))
    (tmp_path / "config.json").unlink()
    with pytest.raises(usage.UsageError, match="holds no config.json"):
        llm_config(str(tmp_path))


# ------------------------------------------------------------------- the featurisers' cache
def _morgan_run(tmp_path, out, monkeypatch, cache):
    monkeypatch.setenv("DEEPMOLM_PROPERTY_CACHE", str(cache))
    data = tmp_path / "d.csv"
    if not data.exists():
        _csv(data, ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    argv = _run(data, out)
    argv[argv.index("--features") + 1] = "morgan"
    return kcli.main(argv)


def test_a_damaged_or_half_written_cache_shard_is_set_aside_and_recomputed(tmp_path, monkeypatch, caplog):
    # was: a shard cut short (BadZipFile) or a killed writer's ".<uuid>.tmp.npz" (EOFError) stopped every later run
    cache = tmp_path / "cache"
    assert _morgan_run(tmp_path, tmp_path / "a", monkeypatch, cache) == 0
    shard = next(cache.rglob("[!.]*.npz"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    (shard.parent / ".deadbeef.tmp.npz").write_bytes(b"")
    with caplog.at_level("WARNING"):
        assert _morgan_run(tmp_path, tmp_path / "b", monkeypatch, cache) == 0
    assert f"embedding cache shard {shard} is damaged" in caplog.text
    assert (shard.parent / (shard.name + ".damaged")).is_file() and not shard.exists()
    a, b = (json.loads((tmp_path / r / "seeds" / "seed_0.json").read_text()) for r in ("a", "b"))
    assert a["metrics"] == b["metrics"] and a["predictions"] == b["predictions"]  # recomputed: the same model
    caplog.clear()
    with caplog.at_level("WARNING"):  # set aside once: the next run reads only good shards
        assert _morgan_run(tmp_path, tmp_path / "c", monkeypatch, cache) == 0
    assert "damaged" not in caplog.text


def test_a_cache_folder_from_the_environment_is_checked_first(tmp_path, monkeypatch, capsys):
    # was: NotADirectoryError after --out had been written (--cache-dir itself was checked)
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_:
        _morgan_run(tmp_path, tmp_path / "out", monkeypatch, tmp_path / "file")
    assert exit_.value.code == 2
    assert f"$DEEPMOLM_PROPERTY_CACHE {tmp_path / 'file'}: is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_classification_labels_that_are_not_binary_are_listed_after_the_field_counts(tmp_path):
    """was: `CCN,1,07,0` (an unquoted comma) failed as "classification label 7.0 is not 0/1",
    at the first such row, without its file line; regression named the row's field count."""
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("smiles,mw,y\nCCO,46,1\nCCN,1,07,0\nCCC,44,1\n")
    with pytest.raises(SystemExit, match=r"1 row\(s\) whose number of fields differs from the header's 3: row 1 "
                                         r"\(4 fields, line 3\)"):
        kcli.load_table(ragged, ["y"], task="classification")
    labels = tmp_path / "labels.csv"
    labels.write_text("smiles,y\nCCO,1\nCCN,2\nCCC,0\nCCCC,0.5\n")
    with pytest.raises(SystemExit, match=r"2 classification label\(s\) that are not 0/1: row 1 \(y=2, line 3\), "
                                         r"row 3 \(y=0.5, line 5\)"):
        kcli.load_table(labels, ["y"], task="classification")


# ------------------------------------------------------------------- llm: folders (fourth sweep)
def _llm_copy(tiny_llm, path, **config_changes):
    import shutil

    shutil.copytree(tiny_llm, path)
    if config_changes:
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**config, **config_changes}))
    return path


def _llm_run(data, out, folder):
    return _run(data, out, extra=["--features", f"llm:{folder}", "--cache-dir", str(out.parent / "cache")])


@pytest.mark.parametrize("changes, message", [
    ({"num_hidden_layers": 3, "layer_types": ["full_attention"] * 3},  # was: a random third layer
     "tensors the model needs (they would be random)"),
    ({"num_hidden_layers": 1, "layer_types": ["full_attention"]},  # was: the second layer dropped
     "tensors its config.json builds no place for"),
    ({"hidden_size": 64}, "tensors of the wrong shape"),  # was a RuntimeError traceback
])
def test_an_llm_folder_that_loads_wrong_is_refused(tiny_llm, tmp_path, capsys, changes, message):
    """was: transformers printed a table of missing / unexpected keys and the run exited 0."""
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    folder = _llm_copy(tiny_llm, tmp_path / "llm", **changes)
    assert kcli.main(_llm_run(data, tmp_path / "run", folder)) == 2
    err = capsys.readouterr().err
    assert "deepmolm-kflm2: error: " in err and message in err and "Traceback" not in err


def test_an_llm_with_nan_weights_is_refused_not_imputed(tiny_llm, tmp_path, capsys):
    # was: every embedding NaN, cached, imputed as zeros: a graph-only model labelled llm
    from safetensors.torch import load_file, save_file

    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    folder = _llm_copy(tiny_llm, tmp_path / "llm")
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    name = next(k for k in tensors if k.endswith("norm.weight"))
    tensors[name][:] = float("nan")
    save_file(tensors, str(weights), metadata={"format": "pt"})
    assert kcli.main(_llm_run(data, tmp_path / "run", folder)) == 2
    assert f"has NaN/inf values in 1 tensors: {name}" in capsys.readouterr().err


@pytest.mark.parametrize("remove, message", [
    (("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"),
     "its tokenizer makes no tokens of a SMILES"),
    (("model.safetensors",), "no tensor files"),
])
def test_an_llm_folder_missing_its_tokenizer_or_weights_is_refused_before_out(tiny_llm, tmp_path, capsys, remove,
                                                                                message):
    # was: a traceback (an empty tokenizer's reshape error; "no file named model.safetensors")
    # after --out had been written
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    folder = _llm_copy(tiny_llm, tmp_path / "llm")
    for name in remove:
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(SystemExit) as exit_:
        kcli.main(_llm_run(data, tmp_path / "run", folder))
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_smiles_longer_than_the_context_is_named_not_cut(tiny_llm, tmp_path):
    """was: cut at 512 tokens without a word: a 300-mer acid and its amide had one embedding."""
    from deepmolm_plugin.property.featurizers import FeaturizerError, LLMEmbedding
    from deepmolm_plugin.property.features import parse_smiles

    feat = LLMEmbedding(tiny_llm, cache_dir=tmp_path / "cache", max_length=12)
    long = "CC(=O)Nc1ccc(O)cc1" + "C(O)" * 12
    with pytest.raises(FeaturizerError, match=r"SMILES 'CC\(=O\)Nc1ccc.*' is \d+ tokens, more than the model's 12"):
        feat([parse_smiles(s)[0] for s in ("CCO", long)], ["CCO", long])
    assert LLMEmbedding(tiny_llm, cache_dir=tmp_path / "cache").max_length == 2048  # the model's context


def test_a_linked_llm_folder_is_part_of_the_fingerprint(tiny_llm, tmp_path):
    """was: the walk did not enter a linked llm/ (a VILA layout), so pointing it at another
    model kept the fingerprint and the old model's embeddings were served."""
    from deepmolm_plugin.property.featurizers import LLMEmbedding

    other = _llm_copy(tiny_llm, tmp_path / "other")
    (other / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    vila = tmp_path / "vila"
    vila.mkdir()
    (vila / "config.json").write_text(json.dumps({"llm_cfg": {}}))
    (vila / "llm").symlink_to(tiny_llm)
    before = LLMEmbedding(vila, cache_dir=tmp_path / "cache").fingerprint
    (vila / "llm").unlink()
    (vila / "llm").symlink_to(other)
    assert LLMEmbedding(vila, cache_dir=tmp_path / "cache").fingerprint != before
    (vila / "config.json").unlink()  # llm/config.json alone: a folder the checks accept (was FileNotFoundError)
    assert LLMEmbedding(vila, cache_dir=tmp_path / "cache").dim == 32


@pytest.mark.parametrize("spec", ["morgan:99999999999", "morgan:2:4294967297", "morgan:2:100000000"])
def test_morgan_settings_beyond_bounds_are_refused_before_out(tmp_path, capsys, spec):
    # was: an OverflowError traceback after --out was written, or 400 MB per molecule
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    with pytest.raises(SystemExit) as exit_:
        kcli.main(_run(data, tmp_path / "run", extra=["--features", spec]))
    assert exit_.value.code == 2 and "the radius must be 0..32 and the bits 1..1048576" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_imputed_descriptors_are_reported(tmp_path, capsys):
    """was: RDKit descriptors that fail on salts, metals and dummy atoms (NaN) were imputed by
    the training median without a word in data_report.json or on screen."""
    rows = [(s, i) for i, s in enumerate(FORTY)] + [("[Na+].[Cl-]", 1), ("C[Hg]C", 2)]
    data, out = _csv(tmp_path / "d.csv", ["smiles", "y"], rows), tmp_path / "run"
    args = _run(data, out, extra=["--features", "rdkit2d", "--cache-dir", str(tmp_path / "cache")])
    args.remove("--quiet")
    assert kcli.main(args) == 0
    imputed = json.loads((out / "data_report.json").read_text())["imputed_features"]["rdkit2d"]
    assert imputed["molecules"] >= 2 and imputed["values"] >= imputed["molecules"]
    assert any(name.startswith("BCUT2D") for name in imputed["columns"])
    assert "feature values RDKit could not compute, imputed by the training median" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--no-graph", "--features", "none"], "nothing to train: --no-graph with --features none"),
    (["--fusion", "attention", "--features", "rdkit2d"], "--fusion attention needs the graph and an llm:<folder>"),
])
def test_option_combinations_without_a_model_are_usage_errors(tmp_path, capsys, extra, message):
    # was: a bare message and exit 1, after the data had been read
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    with pytest.raises(SystemExit) as exit_:
        kcli.main(_run(data, tmp_path / "run", extra=extra))
    assert exit_.value.code == 2 and f"deepmolm-kflm2: error: {message}" in capsys.readouterr().err


def test_reruns_name_what_changed_restore_splits_and_count_the_rows_trained_on(tmp_path):
    # was: `--targets y --targets z` trained on z alone; a changed --epochs was "changed:
    # train"; a deleted split file of a resumed seed stayed deleted; a seed file that is a
    # folder an IsADirectoryError traceback; with --test-file, the missing-label counts were
    # of the table before its test molecules were removed
    rows = [(s, i if i % 2 else "", i % 7) for i, s in enumerate(FORTY)]
    data = _csv(tmp_path / "d.csv", ["smiles", "y", "z"], rows)
    test = _csv(tmp_path / "t.csv", ["smiles", "y", "z"], [(s, i, 2 * i) for i, s in enumerate(FORTY[:6])])
    out = tmp_path / "o"
    extra = ("--seeds", "2", "--test-file", str(test))
    assert kcli.main(_run(data, out, targets=("y",), extra=("--targets", "z", *extra))) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["targets"] == ["y", "z"]
    report = json.loads((out / "data_report.json").read_text())
    # 7 rows removed (the six test molecules and a salt form of one); 16 of the 33 kept lack y, not 20
    assert report["removed_as_in_test_files"] == 7 and report["molecules"] == 33
    assert report["missing_labels_per_task"] == {"y": 16, "z": 0} and report["missing_labels"] == 16
    (out / "splits" / "seed_1.json").unlink()
    (out / "seeds" / "seed_0.json").unlink()
    (out / "seeds" / "seed_0.json").mkdir()
    with pytest.raises(SystemExit, match=r"seed_0.json is a folder, not a seed result: move it away"):
        kcli.main(_run(data, out, targets=("y", "z"), extra=extra))
    (out / "seeds" / "seed_0.json").rmdir()
    assert kcli.main(_run(data, out, targets=("y", "z"), extra=extra)) == 0  # seed 0 trained again, seed 1 kept
    assert (out / "splits" / "seed_1.json").is_file() and (out / "seeds" / "seed_0.json").is_file()
    with pytest.raises(SystemExit, match=r"different configuration \(changed: train.epochs: 1 -> 2\)"):
        kcli.main(_run(data, out, targets=("y", "z"), extra=(*extra, "--epochs", "2")))


def test_an_empty_split_of_copies_names_them_not_the_split_already_used(tmp_path):
    # was: 30 rows of one molecule were told to "use more data, other --sizes or --split random"
    # while the run already used --split random; the copies, kept together, were not named
    data = _csv(tmp_path / "same.csv", ["smiles", "y"], [("CCO", i) for i in range(30)])
    with pytest.raises(SystemExit) as refused:
        kcli.main(_run(data, tmp_path / "o"))
    message = str(refused.value)
    assert "of 30 molecules; they are 1 distinct molecules (copies stay in one subset)" in message
    assert message.endswith("use more data, other --sizes")


def test_torchs_one_time_optimizer_setup_is_not_counted_in_the_first_seed(tmp_path, monkeypatch):
    # was: the first torch.optim.Adam imported torch._dynamo (2-4 s) inside the first trained
    # seed's timer: per-seed seconds 2.6 / 0.0 / 0.0, and the resumed seed's after a rerun
    order = []
    monkeypatch.setattr(kcli, "warm_up", lambda: order.append("warm up"))
    real = kcli.run_seed
    monkeypatch.setattr(kcli, "run_seed", lambda *a, **k: order.append("seed") or real(*a, **k))
    rows = [(s, i) for i, s in enumerate(FORTY)]
    assert kcli.main(_run(_csv(tmp_path / "d.csv", ["smiles", "y"], rows), tmp_path / "o")) == 0
    assert order[:2] == ["warm up", "seed"]
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["featurise_seconds"] > 0


def test_the_printed_summary_counts_the_seeds_once(tmp_path, monkeypatch, capsys):
    # was: "test rmse 0.250 (1 of 2 seeds) over 1 seeds" when a seed lacked the metric
    import math

    from deepmolm_plugin.property import report

    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    argv = [a for a in _run(data, tmp_path / "o", extra=("--seeds", "2")) if a != "--quiet"]
    kcli.main(argv)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert " over 2 seeds -> " in line and line.count("seed") == 1, line
    real = report.summarise

    def one_seed_lacks_it(task, results):
        summary = real(task, results)
        entry = summary["test"]["rmse"]
        summary["test"]["rmse"] = {**entry, "n": 1, "values": [entry["values"][0], math.nan]}
        return summary

    monkeypatch.setattr(report, "summarise", one_seed_lacks_it)
    kcli.main(argv)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "(1 of 2 seeds) -> " in line and "over" not in line, line


def test_the_printed_summary_shows_every_test_file(tmp_path, capsys):
    # was: only the split's test subset (or the first --test-file) was printed
    train = _csv(tmp_path / "train.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    extra = []
    for name in ("ext1", "ext2"):
        extra += ["--test-file", str(_csv(tmp_path / f"{name}.csv", ["smiles", "y"], [("CCCl", 1), ("CCBr", 2)]))]
    argv = [a for a in _run(train, tmp_path / "o", extra=extra) if a != "--quiet"]
    assert kcli.main(argv) == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    shown = [part.split(" rmse ")[0] for part in line.split(": ", 1)[1].split(" -> ")[0].split("; ")]
    assert shown == [k for k in json.loads((tmp_path / "o" / "results.json").read_text())["summary"]
                     if k not in ("train", "valid")] and {"ext1", "ext2"} <= set(shown), line
