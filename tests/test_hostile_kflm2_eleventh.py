"""deepmolm-kflm2, eleventh sweep: several regression targets selected and reported unit-free,
--sizes with --test-file, repeated / empty featurisers, placeholder-sized labels, --quiet and
the LLM loading bar, the Morgan settings in the reports, every bad classification label in
one error, and the minimum-size wording with --test-file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deepmolm_plugin.property import cli as kcli

from test_hostile_kflm2 import FORTY, _run
from test_hostile_property_images import SMALL, _csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from deepmolm_plugin.tiny_llm import build_qwen2, train_chatml_tokenizer

    tokenizer = train_chatml_tokenizer(FORTY, vocab_size=300)
    path = tmp_path_factory.mktemp("llm") / "qwen2-smiles"
    build_qwen2(path, tokenizer, hidden_size=16, layers=1, heads=2, kv_heads=1, intermediate=32, seed=0)
    return path


def _two_unit_table(tmp_path):
    """Log-solubility-like `a` (order 1) beside a molecular-weight-like `b` (order 100)."""
    rows = [(s, round(0.1 * i - 2, 3), 100 + 7.5 * ((i * 7) % 40)) for i, s in enumerate(FORTY)]
    return _csv(tmp_path / "two.csv", ["smiles", "a", "b"], rows)


# ---------------------------------------------------------- several regression targets
def test_several_regression_targets_are_selected_and_reported_unit_free(tmp_path):
    # was: results.md / results.json headlined the mean of the raw RMSEs (g/mol beside log
    # mol/L) and early stopping chose the epoch by it; per-target numbers only in seed files
    out = tmp_path / "run"
    assert kcli.main(_run(_two_unit_table(tmp_path), out, targets=("a", "b"), extra=("--epochs", "4"))) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["headline"]["metric"] == "rmse_scaled"
    seed = json.loads((out / "seeds" / "seed_0.json").read_text())
    split = json.loads((out / "splits" / "seed_0.json").read_text())
    y = np.array([[0.1 * i - 2, 100 + 7.5 * ((i * 7) % 40)] for i in range(40)])
    train_std = y[split["train"]].std(axis=0)
    test = seed["metrics"]["test"]
    expected = np.mean([test["per_task"][t]["rmse"] / train_std[k] for k, t in enumerate("ab")])
    assert test["rmse_scaled"] == pytest.approx(expected, rel=1e-9)
    curve = seed["members"][0]["curve"]  # the epoch chosen is the one of the least scaled RMSE
    best = min(curve, key=lambda c: c["valid_rmse_scaled"])["epoch"]
    assert seed["members"][0]["best_epoch"] == best
    summary = doc["summary"]["test"]
    assert summary["rmse_scaled"]["mean"] == pytest.approx(expected, rel=1e-9)
    assert summary["per_task"]["b"]["rmse"]["mean"] == pytest.approx(test["per_task"]["b"]["rmse"])
    md = (out / "results.md").read_text()
    assert "| subset | rmse_scaled | r2 |" in md
    assert "RMSE / the target's training-split std (unit-free)" in md
    assert "| subset | target | rmse | mae | r2 |" in md and "| test | b | " in md and "| test | a | " in md
    assert "Per seed (rmse_scaled, lower is better" in md


def test_one_regression_target_reports_as_before(tmp_path):
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    assert kcli.main(_run(data, tmp_path / "run")) == 0
    md = (tmp_path / "run" / "results.md").read_text()
    assert "| subset | rmse | mae | r2 |" in md and "Per target" not in md and "rmse_scaled" not in md
    assert "selection" not in json.loads((tmp_path / "run" / "config.json").read_text())
    assert "rmse_scaled" not in json.loads((tmp_path / "run" / "seeds" / "seed_0.json").read_text())["metrics"]["test"]


def test_a_multi_target_folder_of_the_old_selection_rule_is_not_resumed(tmp_path):
    # was: the same fingerprint, so seeds selected by the raw mean RMSE were resumed and mixed in
    data, out = _two_unit_table(tmp_path), tmp_path / "run"
    argv = _run(data, out, targets=("a", "b"))
    assert kcli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    old = {k: v for k, v in config.items() if k not in ("fingerprint", "argv", "selection")}
    (out / "config.json").write_text(json.dumps({"fingerprint": kcli._fingerprint(old), **old, "argv": []}))
    with pytest.raises(SystemExit, match=r"different configuration \(changed: selection\)"):
        kcli.main(argv)


# ----------------------------------------------------------------------------- arguments
def test_a_test_share_beside_a_test_file_is_refused(tmp_path, capsys):
    # was: the 0.25 TEST share dropped without a word, TRAIN:VALID rescaled to 2:1
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    test = _csv(tmp_path / "t.csv", ["smiles", "y"], [("CCCl", 1), ("CCBr", 2)])
    with pytest.raises(SystemExit) as exit_:
        kcli.main(_run(data, tmp_path / "o", extra=("--sizes", "0.5", "0.25", "0.25", "--test-file", str(test))))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--sizes 0.5 0.25 0.25: the TEST share is unused with --test-file" in err
    assert "give --sizes 0.5 0.25 0" in err and not (tmp_path / "o").exists()
    args = kcli.build_parser().parse_args(_run(data, tmp_path / "o", extra=("--test-file", str(test))))
    kcli.check_arguments(args)  # the default sizes with --test-file: train:valid 8:1, as documented


@pytest.mark.parametrize("spec, named", [
    ("rdkit2d+rdkit2d", "the featuriser 'rdkit2d' is given twice"),
    ("morgan+morgan:2:2048", "the featuriser 'morgan:2:2048' is given twice (the same as 'morgan')"),
    ("rdkit2d+", "an empty featuriser"), ("+morgan", "an empty featuriser"), ("rdkit2d++morgan", "an empty featuriser"),
])
def test_a_repeated_or_empty_featuriser_is_a_usage_error(tmp_path, capsys, spec, named):
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    argv = _run(data, tmp_path / "o")
    argv[argv.index("--features") + 1] = spec
    with pytest.raises(SystemExit) as exit_:
        kcli.main(argv)
    assert exit_.value.code == 2
    assert f"--features {spec!r}: {named}" in capsys.readouterr().err


def test_one_llm_folder_by_two_paths_is_a_repeat(tmp_path, tiny_llm, capsys):
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    other = tiny_llm.parent / ".." / tiny_llm.parent.name / tiny_llm.name
    argv = _run(data, tmp_path / "o", extra=("--cache-dir", str(tmp_path / "cache")))
    argv[argv.index("--features") + 1] = f"llm:{tiny_llm}+llm:{other}"
    with pytest.raises(SystemExit) as exit_:
        kcli.main(argv)
    assert exit_.value.code == 2
    assert f"the featuriser 'llm:{other}' is given twice (the same as 'llm:{tiny_llm}')" in capsys.readouterr().err


# -------------------------------------------------------------------------------- labels
def test_placeholder_sized_labels_are_named_in_a_warning_and_the_data_report(tmp_path, capsys):
    # was: 1e30 and -999999 among labels of order 1 trained silently; every metric was noise
    rows = [(s, 1e30 if i == 3 else -999999 if i == 17 else round(0.1 * i - 2, 2)) for i, s in enumerate(FORTY)]
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], rows)
    assert kcli.main(_run(data, tmp_path / "o")) == 0  # a warning, not a refusal
    err = capsys.readouterr().err
    assert "deepmolm-kflm2: warning: " in err and "2 label(s) more than 1000 x the median absolute deviation" in err
    assert "row 3 (y=1e+30), row 17 (y=-999999)" in err
    far = json.loads((tmp_path / "o" / "data_report.json").read_text())["far_labels"]
    assert far["count"] == 2 and [f["row"] for f in far["labels"]] == [3, 17]
    # a target mostly of one value (over half zeros) is judged by the values that differ
    rows = [(s, 0 if i % 3 else 1 + i % 5) for i, s in enumerate(FORTY)]
    table = kcli.load_table(_csv(tmp_path / "z.csv", ["smiles", "y"], rows), ["y"])
    assert kcli.far_labels(table) == []


# -------------------------------------------------------------------- classification labels
def test_every_bad_classification_label_is_one_error_in_the_cli_form(tmp_path, capsys):
    # was: `True` named alone (no line, no prefix, exit 1), `-1` only in the next run
    rows = [(s, "True" if i == 1 else -1 if i == 2 else "nan" if i == 5 else i % 2) for i, s in enumerate(FORTY)]
    data = _csv(tmp_path / "c.csv", ["smiles", "y"], rows)
    argv = _run(data, tmp_path / "o")
    argv[argv.index("--task") + 1] = "classification"
    with pytest.raises(SystemExit) as exit_:
        kcli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert (f"deepmolm-kflm2: error: {data}: 3 classification label(s) that are not 0/1: row 1 (y='True', line 3), "
            "row 2 (y=-1, line 4), row 5 (y='nan', line 7)") in err
    many = [(s, 5) for s in FORTY[:12]]
    with pytest.raises(SystemExit, match=r"12 classification label\(s\) .* row 9 \(y=5, line 11\) and 2 more\."):
        kcli.load_table(_csv(tmp_path / "m.csv", ["smiles", "y"], many), ["y"], task="classification")


def test_the_minimum_size_with_a_test_file_names_train_and_validation(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(SMALL[:9])])
    test = _csv(tmp_path / "t.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY[-15:])])
    with pytest.raises(SystemExit) as exit_:
        kcli.main(_run(data, tmp_path / "o", extra=("--test-file", str(test))))
    message = str(exit_.value)
    assert "only 9 usable molecules" in message and "removing" not in message
    assert "(train and validation splits; the test sets are the --test-file(s))" in message


# ------------------------------------------------------------------------ featuriser names
def test_the_reports_name_the_morgan_settings(tmp_path):
    from deepmolm_plugin.property.featurizers import make_featurizer

    assert make_featurizer("morgan:3:512", tmp_path).name == "morgan[radius 3, 512 bits, counts]"
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    argv = _run(data, tmp_path / "o", extra=("--cache-dir", str(tmp_path / "cache")))
    argv[argv.index("--features") + 1] = "morgan"
    assert kcli.main(argv) == 0
    assert "graph D-MPNN + morgan[radius 2, 2048 bits, counts] (concat fusion)" in (tmp_path / "o" / "results.md").read_text()


def test_quiet_silences_the_llm_loading_bar(tmp_path, tiny_llm, capfd):
    # was: transformers' "Loading weights" bar printed under --quiet
    from transformers.utils import logging as hf_logging

    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    argv = _run(data, tmp_path / "o", extra=("--cache-dir", str(tmp_path / "cache")))
    argv[argv.index("--features") + 1] = f"llm:{tiny_llm}"
    assert kcli.main(argv) == 0
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored for whatever runs next in the process
    assert not math.isnan(json.loads((tmp_path / "o" / "results.json").read_text())["summary"]["test"]["rmse"]["mean"])
