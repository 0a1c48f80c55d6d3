"""deepmolm-kflm2, mending the eleventh sweep: far labels judged on log10 too for a target of
one sign (IC50 / Ki in nM were "placeholders"), --sizes with --test-file fingerprinted by
TRAIN:VALID only (a typed default was refused, and the suggested `0` was another run), and
rmse_scaled leaving out a target without a training spread (it was divided by 1.0)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from deepmolm_plugin import usage
from deepmolm_plugin.property import cli as kcli
from deepmolm_plugin.property.report import markdown, summarise
from deepmolm_plugin.property.train import Inputs, TrainConfig, regression_metrics, run_seed

from test_hostile_kflm2 import FORTY, _run
from test_hostile_property_images import _csv
from test_property import SMALL, _graphs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _table(values):
    return SimpleNamespace(task_names=["y"], y=np.asarray(values, float)[:, None], rows=np.arange(len(values)))


# ---------------------------------------------------------------------------- far labels
@pytest.mark.parametrize("log10_sd", [1.2, 1.5, 2.0])
def test_log_normal_ic50_labels_are_not_far(log10_sd):
    # was: 19-137 of 2000 real IC50s (nM, ChEMBL-like spread) named "a placeholder ... or a unit slip?"
    values = 10 ** np.random.default_rng(0).normal(3, log10_sd, 2000)
    assert kcli.far_labels(_table(values)) == []


@pytest.mark.parametrize("bulk, placeholder", [
    ("ic50", 1e30), ("ic50", 9.99e99),
    ("order1_positive", 1e30), ("order1_positive", 9.99e99), ("order1_positive", -999999),
    ("order1_negative", -999999), ("order1_negative", 1e30), ("order1_mixed", 9.99e99), ("order1_mixed", -999999),
])
def test_placeholders_are_far_on_both_scales_and_only_they(bulk, placeholder):
    rng = np.random.default_rng(1)
    values = {"ic50": 10 ** rng.normal(3, 1.5, 500), "order1_positive": rng.uniform(0.5, 5, 500),
              "order1_negative": rng.normal(-3, 1.0, 500) - 3, "order1_mixed": rng.normal(0, 1, 500)}[bulk]
    values[[7, 300]] = placeholder  # twice: a repeated placeholder is not "near another label"
    assert [f["row"] for f in kcli.far_labels(_table(values))] == [7, 300]


def test_ic50_file_runs_without_a_far_label_warning(tmp_path, capsys):
    # 40 IC50s evenly over 1e-1..1e7 nM: 1e7 was ~1e4 raw MADs out, now 2 MADs of log10
    rows = [(s, float(f"{v:.4g}")) for s, v in zip(FORTY, 10 ** np.linspace(-1, 7, 40))]
    data = _csv(tmp_path / "ic50.csv", ["smiles", "y"], rows)
    assert kcli.main(_run(data, tmp_path / "o")) == 0
    assert "label(s) more than" not in capsys.readouterr().err
    far = json.loads((tmp_path / "o" / "data_report.json").read_text())["far_labels"]
    assert far["count"] == 0 and "log10|label|" in far["rule"]


# ------------------------------------------------------------------- --sizes, --test-file
def _args(data, test, sizes=()):
    argv = _run(data, "o", extra=("--test-file", str(test)) + (("--sizes", *sizes) if sizes else ()))
    return kcli.build_parser().parse_args(argv)


def test_with_a_test_file_the_default_typed_default_and_zero_test_share_are_one_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    test = _csv(tmp_path / "t.csv", ["smiles", "y"], [("CCCl", 1), ("CCBr", 2)])
    fingerprints = set()
    for sizes in [(), ("0.8", "0.1", "0.1"), ("0.8", "0.1", "0"), ("8", "1", "0")]:
        args = _args(data, test, sizes)
        kcli.check_arguments(args)  # was: a typed 0.8 0.1 0.1 refused (the default is not "unused")
        fingerprints.add(kcli._fingerprint(kcli._config(args)[0]))
    assert len(fingerprints) == 1
    other = _args(data, test, ("0.7", "0.2", "0"))
    assert kcli._fingerprint(kcli._config(other)[0]) not in fingerprints  # another TRAIN:VALID: another run
    with pytest.raises(usage.UsageError, match=r"--sizes 0.6 0.2 0.2: the TEST share is unused .* give --sizes "
                                               r"0.6 0.2 0$"):
        kcli.check_arguments(_args(data, test, ("0.6", "0.2", "0.2")))  # a share meant to be used: still refused


def _as_recorded_before(out, sizes, **train):
    """The folder as a version before `run_sizes` made it: `sizes` as typed in config.json and
    the fingerprint of that config in it and in every seed file."""
    config = json.loads((out / "config.json").read_text())
    config["sizes"] = sizes
    config["train"].update(train)
    run = {k: v for k, v in config.items() if k not in ("fingerprint", "argv")}
    fp = kcli._fingerprint(run)
    (out / "config.json").write_text(json.dumps({**run, "fingerprint": fp, "argv": []}))
    for path in (out / "seeds").glob("seed_*.json"):
        path.write_text(json.dumps(json.loads(path.read_text()) | {"fingerprint": fp}))
    return fp


def test_a_folder_recorded_with_test_share_zero_resumes_its_seeds(tmp_path, monkeypatch, capsys):
    # was: "holds results of a different configuration (changed: sizes)" for the very same split
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)])
    test = _csv(tmp_path / "t.csv", ["smiles", "y"], [("CCCl", 1), ("CCBr", 2)])
    out = tmp_path / "o"
    argv = _run(data, out, extra=("--test-file", str(test)))
    assert kcli.main(argv) == 0
    now = json.loads((out / "config.json").read_text())["fingerprint"]
    old = _as_recorded_before(out, [0.8, 0.1, 0.0])
    assert old != now
    monkeypatch.setattr(kcli, "run_seed", lambda *a, **k: pytest.fail("a finished seed was trained again"))
    assert kcli.main(argv + ["--sizes", "0.8", "0.1", "0.1"]) == 0
    assert json.loads((out / "seeds" / "seed_0.json").read_text())["fingerprint"] == now  # found by later runs too
    assert json.loads((out / "config.json").read_text())["sizes"] == [0.8, 0.1, 0.1]
    assert kcli.main(argv) == 0
    # a real change beside sizes in the older form: only the real change is named
    _as_recorded_before(out, [0.8, 0.1, 0.0], epochs=2)
    with pytest.raises(SystemExit, match=r"different configuration \(changed: train\.epochs: 2 -> 1\);"):
        kcli.main(argv)


# --------------------------------------------------------------------------- rmse_scaled
@pytest.mark.parametrize("spread", [float("nan"), 0.0])
def test_rmse_scaled_leaves_out_a_target_without_a_training_spread(spread):
    # was: that target's raw RMSE (g/mol) divided by 1.0 and averaged in as "unit-free"
    y = np.array([[0.0, 300.0], [1.0, 400.0], [2.0, 500.0]])
    pred = y + np.array([[0.5, 50.0], [-0.5, -50.0], [0.5, 50.0]])
    m = regression_metrics(y, pred, ["logS", "MW"], np.array([2.0, spread]))
    assert m["rmse_scaled"] == pytest.approx(0.5 / 2.0) and m["unscaled_tasks"] == ["MW"]
    assert m["per_task"]["MW"]["rmse"] == pytest.approx(50.0)  # still reported in its unit


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # numpy, for the unlabelled target's training mean
def test_run_seed_reports_a_target_unlabelled_in_training_as_unscaled():
    y = np.random.default_rng(0).normal(size=(len(SMALL), 2))
    y[:, 1] = y[:, 1] * 100 + 300
    split = {"train": np.arange(14), "valid": np.arange(14, 17), "test": np.arange(17, 20)}
    y[split["train"], 1] = np.nan  # MW measured only for the valid and test molecules
    cfg = TrainConfig(task="regression", hidden=8, ffn_hidden=8, epochs=2, patience=5, batch_size=8)
    r = run_seed(Inputs(graphs=_graphs(SMALL)), y, split, cfg, 0, ["logS", "MW"])
    test = r["metrics"]["test"]
    assert test["unscaled_tasks"] == ["MW"]
    assert test["rmse_scaled"] == pytest.approx(test["per_task"]["logS"]["rmse"] / np.std(y[split["train"], 0]))
    assert all("valid_rmse_scaled" in p and np.isfinite(p["valid_rmse_scaled"]) for p in r["members"][0]["curve"])
    summary = summarise("regression", [r])
    assert summary["test"]["unscaled_tasks_seed_counts"] == {"MW": 1}
    doc = {"dataset": "d", "data_file": "d.csv", "split": "random", "targets": ["logS", "MW"], "seeds": [0],
           "config": cfg.to_dict(), "featurisers": "graph", "summary": summary, "per_seed": [r],
           "data": {"rows": 20, "invalid_smiles": 0, "unlabelled_rows": 0, "molecules": 20, "missing_labels": 14}}
    # (train: MW has no label there at all, so it is in skipped_tasks, not here)
    assert ("Targets without a spread in the seed's training subset (no label there, or one value), left out of "
            "rmse_scaled (their RMSE has no unit-free scale; in the per-target table), as {task: number of seeds}: "
            '{"valid": {"MW": 1}, "test": {"MW": 1}}') in markdown(doc)
