"""deepmolm-kflm2 and the eval report, sixth hostile sweep: labels whose squares underflow,
a diverged training run explained as a classification problem, an --lr below the schedule's
ends, and atom-map numbers in SMILES answers."""

from __future__ import annotations

import pytest

from deepmolm_plugin.data.records import properties_problem
from deepmolm_plugin.eval.metrics.molecules import smiles_metrics
from deepmolm_plugin.property import cli as kcli
from deepmolm_plugin.property.train import TrainConfig, _lr_at

from test_hostile_kflm2 import FORTY, _run
from test_hostile_property_images import _csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_labels_whose_squares_underflow_are_refused(tmp_path):
    # was: labels of 1e-200 x (1..40) ran with exit 0: their std underflowed to 0, the target
    # was not standardised, the test RMSE was 3.5 (1e199 x the label scale), R^2 "constant"
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, f"{i + 1}e-200") for i, s in enumerate(FORTY)])
    with pytest.raises(SystemExit, match=r"40 non-finite label\(s\) \(nan/inf\), beyond \+-1e\+100 or nonzero within "
                                         r"\+-1e-100 \(change the unit\): row 0 \(y='1e-200'\)"):
        kcli.main(_run(data, tmp_path / "run"))
    assert not (tmp_path / "run" / "seeds").exists()
    # zero stays a label; so does a small but ordinary one
    ok = _csv(tmp_path / "ok.csv", ["smiles", "y"], [(s, 0 if i % 2 else f"{i + 1}e-30") for i, s in enumerate(FORTY)])
    assert kcli.main(_run(ok, tmp_path / "ok")) == 0
    # the auxiliary property head's training records: the same rule
    assert "nonzero within +-1e-100" in properties_problem({"LogP": 1e-200})
    assert properties_problem({"LogP": 0}) is None and properties_problem({"LogP": -1e-30}) is None


def test_a_diverged_run_says_it_diverged(tmp_path, capsys):
    # was: exit 1 with "no seed's test subset has both classes of any target" (a regression
    # run), the seed's result written with null losses and a null RMSE
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i * 0.1) for i, s in enumerate(FORTY)])
    assert kcli.main(_run(data, tmp_path / "run", extra=["--lr", "1e6", "--epochs", "5", "--batch-size", "8"])) == 1
    err = capsys.readouterr().err
    assert "deepmolm-kflm2: error: seed 0: training diverged at epoch 1" in err and "lower --lr (now 1e+06)" in err
    assert "both classes" not in err
    assert not (tmp_path / "run" / "seeds" / "seed_0.json").exists()


@pytest.mark.parametrize("lr", [1e-6, 1e-5, 1e-4, 1e-3])
def test_lr_is_the_peak_of_the_schedule(lr):
    # was: with --lr 1e-5 the rate fell to 1e-5 at the end of the warm-up, then grew back to
    # the schedule's final_lr, 1e-4 (up to 100x the asked rate with --lr 1e-6)
    cfg = TrainConfig(lr=lr, epochs=10)
    rates = [_lr_at(step, 10, cfg) for step in range(100)]
    assert max(rates) == pytest.approx(lr)
    if lr > 1e-4:  # Chemprop's schedule as before: up from 1e-4, down to 1e-4
        assert rates[0] == pytest.approx(1e-4) and rates[-1] == pytest.approx(1e-4, rel=0.05)


@pytest.mark.parametrize("pred, ref", [("[CH3:1][CH2:2][OH:3]", "CCO"), ("CCO", "The SMILES is [CH3:1][CH2:2][OH:3]."),
                                       ("[CH3:7][CH2:2]O", "[CH3:1]C[OH:2]")])
def test_atom_map_numbers_do_not_change_the_molecule(pred, ref):
    # was: exact match 0 (MACCS / Morgan 100): the canonical SMILES kept the map numbers
    assert smiles_metrics([pred], [ref])["exact_match"] == 100.0
    assert smiles_metrics(["CCO"], ["[CH3:1][CH2:2][NH2:3]"])["exact_match"] == 0.0


def test_meteor_leaves_out_a_pair_of_two_texts_without_a_token(wordnet):
    # was: nltk's 0 for it, a miss pulling the mean down (ROUGE leaves such pairs out)
    from deepmolm_plugin.eval.metrics import text

    one = text.text_metrics(["ethanol is an alcohol"], ["ethanol is an alcohol"], wordnet=wordnet)
    both = text.text_metrics(["ethanol is an alcohol", "   "], ["ethanol is an alcohol", "\t"], wordnet=wordnet)
    assert both["meteor"] == pytest.approx(one["meteor"]) and one["meteor"] > 99
    assert (both["n_undefined_meteor"], one["n_undefined_meteor"]) == (1, 0)
    assert both["undefined"]["meteor"] == "leaves out 1 of 2 answer(s): neither it nor its reference has a token"
    none = text.text_metrics([" "], [""], wordnet=wordnet)
    assert none["meteor"] is None and none["n_undefined_meteor"] == 1
    missed = text.text_metrics([""], ["ethanol"], wordnet=wordnet)  # an empty answer to a text is still a miss
    assert missed["meteor"] == 0.0 and missed["n_undefined_meteor"] == 0


def test_answers_named_after_a_model_file_do_not_hide_it_from_the_resume_digest(tmp_path):
    # was: files starting with the answers' stem and a dot were left out as the run's own, so
    # answers `model.jsonl` left out `model.safetensors`: a model retrained in place kept the
    # old weights' answers on --resume
    import os

    from deepmolm_plugin.eval.resume import settings_digest

    (tmp_path / "model.safetensors").write_bytes(b"old weights")
    (tmp_path / "config.json").write_text("{}")
    answers = tmp_path / "model.jsonl"
    before = settings_digest({"model": str(tmp_path)}, answers)
    (tmp_path / "model.jsonl").write_text('{"question_id": 1}\n')  # the run's own files do not count
    (tmp_path / "model.failures.jsonl").write_text("")
    assert settings_digest({"model": str(tmp_path)}, answers) == before
    (tmp_path / "model.safetensors").write_bytes(b"new weights!")
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))
    assert settings_digest({"model": str(tmp_path)}, answers) != before


def test_the_resume_settings_name_the_model_as_the_host_names_it(tmp_path):
    # was: a resume through a `latest` link kept the answers made under the folder's own name,
    # and the report refused the file as answers of two models
    from types import SimpleNamespace

    from deepmolm_plugin.eval.resume import run_settings

    (tmp_path / "stage2").mkdir()
    (tmp_path / "latest").symlink_to(tmp_path / "stage2")
    given = dict(model_base=None, conv_mode="qwen2", temperature=0, top_p=None, num_beams=1, max_new_tokens=8,
                 conformer_policy="auto")
    own, linked = (run_settings(SimpleNamespace(model_path=str(tmp_path / name), **given))
                   for name in ("stage2", "latest"))
    assert own["model"] == linked["model"] and (own["model_id"], linked["model_id"]) == ("stage2", "latest")


@pytest.mark.parametrize("task", [7, ["LogP"], {"name": "caption"}])
def test_a_reference_task_that_is_not_a_name_is_refused(task):
    # was: scored under the task "7", "['LogP']", ... (eval.questions refuses the same record)
    from collections import OrderedDict

    from deepmolm_plugin.eval.scoring import ReportError, group_by_task

    refs = OrderedDict(q1={"question_id": "q1", "task": task, "answer": "CCO"})
    with pytest.raises(ReportError, match=rf"question 'q1': `task` is {type(task).__name__} .*, not a task name"):
        group_by_task(refs)


def test_task_spellings_are_still_compared():
    from collections import OrderedDict

    from deepmolm_plugin.eval.scoring import ReportError, group_by_task

    refs = OrderedDict((f"q{i}", {"question_id": f"q{i}", "task": task, "answer": "a caption"})
                       for i, task in enumerate(["caption", "LogP", "log p"]))
    with pytest.raises(ReportError, match=r"tasks 'LogP' and 'log p' differ only in case"):
        group_by_task(refs)
