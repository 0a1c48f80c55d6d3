"""KFLM2 as DeepMoLM's auxiliary task: trained with the LM loss through the host launcher."""

import json
import statistics

import pytest
import torch
from rdkit import Chem
from rdkit.Chem import Descriptors
from safetensors.torch import load_file

from host_fixtures import MOLECULES, run_module, train_args
from deepmolm_plugin.property.aux_head import AuxPropertyHead, pool_unsupervised
from deepmolm_plugin.property.features import collate_graphs, mol_to_graph


@pytest.fixture(scope="module")
def aux_setup(tiny_setup, tmp_path_factory):
    """The tiny records with `properties`: MW for all, LogP for all but one (masked)."""
    root = tmp_path_factory.mktemp("aux")
    records = json.loads(tiny_setup["data"].read_text())
    for i, record in enumerate(records):
        mol = Chem.MolFromSmiles(record["smiles"])
        record["properties"] = {"MW": Descriptors.MolWt(mol)}
        if i != 2:
            record["properties"]["LogP"] = Descriptors.MolLogP(mol)
    data = root / "train.json"
    data.write_text(json.dumps(records))
    return {**tiny_setup, "data": data, "root": root}


@pytest.fixture(scope="module")
def aux_checkpoint(aux_setup):
    out = aux_setup["root"] / "checkpoint"
    # One batch of all four records, repeated: the auxiliary loss must fall on it.
    run_module("deepmolm_plugin.train", train_args(
        aux_setup, out, "--mm_projector", "fusion", "--aux_property_task", "kflm2", "--aux_properties", "MW,LogP",
        "--aux_property_weight", "1.0", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", steps=12),
        cwd=aux_setup["root"])
    return out


def test_aux_head_trains_through_the_launcher_and_is_saved(aux_checkpoint):
    state = json.loads((aux_checkpoint / "trainer_state.json").read_text())
    aux = [e["aux_property_loss"] for e in state["log_history"] if "aux_property_loss" in e]
    assert len(aux) == 12
    assert sum(aux[-3:]) / 3 < sum(aux[:3]) / 3  # falls on the repeated batch
    config = json.loads((aux_checkpoint / "config.json").read_text())
    assert config["aux_property_task"] == "kflm2" and config["aux_properties"] == ["MW", "LogP"]
    weights = load_file(str(aux_checkpoint / "model.safetensors"))
    assert any(k.startswith("model.aux_property_head.model.graph.") for k in weights)


def test_normalisation_is_the_training_sets_fixed_before_training_and_saved(aux_setup, aux_checkpoint):
    """The launcher's training forward refuses an unfitted head, so these were set before step 1;
    after 12 steps over the same 4 records they are still the 4 records' statistics (a running
    update would have counted 48 MW labels)."""
    records = json.loads(aux_setup["data"].read_text())
    weights = load_file(str(aux_checkpoint / "model.safetensors"))
    for j, name in enumerate(["MW", "LogP"]):
        values = [r["properties"][name] for r in records if name in r["properties"]]
        count = weights["model.aux_property_head.count"][j].item()
        mean = weights["model.aux_property_head.mean"][j].item()
        m2 = weights["model.aux_property_head.m2"][j].item()
        assert count == len(values) == (4 if name == "MW" else 3)
        assert mean == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert (m2 / (count - 1)) ** 0.5 == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert weights["model.aux_property_head.mean"].dtype == torch.float64


class _Records:
    """A stand-in for the host's dataset: the full record list, as every rank loads it."""

    def __init__(self, records):
        self.list_data_dict = records


def _props_records():
    return [{"id": "a", "properties": {"MW": 46.0, "LogP": -0.1}}, {"id": "b", "properties": {"MW": 78.0}},
            {"id": "c"}, {"id": "d", "properties": {"MW": 94.0, "LogP": 1.5}}]


def test_fitted_statistics_do_not_move_during_training():
    from deepmolm_plugin.patches.aux_property_stats import fit_aux_normalisation

    torch.manual_seed(0)
    head = AuxPropertyHead(16, ["MW", "LogP"], hidden=8, depth=2)
    with pytest.raises(RuntimeError, match="not fitted"):
        head.check_fitted()
    fit_aux_normalisation(torch.nn.Sequential(head), _Records(_props_records()))
    head.check_fitted()
    assert head.count.tolist() == [3.0, 2.0]
    assert head.mean.tolist() == pytest.approx([statistics.fmean([46.0, 78.0, 94.0]), 0.7])
    assert head.std.tolist() == pytest.approx([statistics.stdev([46.0, 78.0, 94.0]), statistics.stdev([-0.1, 1.5])])
    before = {k: v.clone() for k, v in head.state_dict().items() if k in ("count", "mean", "m2")}
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    graphs = collate_graphs([mol_to_graph(Chem.MolFromSmiles(s)) for s in ("CCO", "c1ccccc1", "c1ccccc1O")])
    records = [r for r in _props_records() if "properties" in r]
    for _ in range(3):
        values, mask = head.targets([r["properties"] for r in records], "cpu")
        loss = head.loss(head(torch.randn(3, 16), graphs), values, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(head.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "nan", "heavy"])
def test_a_non_finite_property_is_an_error_naming_the_record(bad):
    from deepmolm_plugin.patches.aux_property_stats import fit_aux_normalisation

    head = AuxPropertyHead(16, ["MW", "LogP"], hidden=8, depth=2)
    records = _props_records()
    records[3]["properties"]["LogP"] = bad
    with pytest.raises(ValueError, match=r"record 'd': property 'LogP' is .*not a"):
        fit_aux_normalisation(torch.nn.Sequential(head), _Records(records))
    assert not head.fitted and head.count.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="no value in any"):
        fit_aux_normalisation(torch.nn.Sequential(AuxPropertyHead(16, ["MW", "pKa"], hidden=8, depth=2)),
                              _Records(_props_records()))


def test_predictions_are_written_next_to_the_answers(aux_checkpoint, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question_id": f"q{i}", "smiles": s, "text": "What is it?"}) + "\n"
                                 for i, (s, _) in enumerate(MOLECULES[:2])))
    answers = tmp_path / "answers" / "0.jsonl"
    run_module("deepmolm_plugin.eval.model_vqa", [
        "--model-path", str(aux_checkpoint), "--question-file", str(questions), "--image-folder", str(tmp_path),
        "--answers-file", str(answers), "--temperature", "0", "--max-new-tokens", "4"], cwd=tmp_path)
    lines = [json.loads(x) for x in (answers.parent / "0.aux_properties.jsonl").read_text().splitlines()]
    assert [x["question_id"] for x in lines] == ["q0", "q1"]
    assert all(set(x["aux_properties"]) == {"MW", "LogP"} for x in lines)
    assert len(answers.read_text().splitlines()) == 2
    # --resume keeps both answers, and with them the predictions made for those questions
    run_module("deepmolm_plugin.eval.model_vqa", [
        "--model-path", str(aux_checkpoint), "--question-file", str(questions), "--image-folder", str(tmp_path),
        "--answers-file", str(answers), "--temperature", "0", "--max-new-tokens", "4", "--resume"], cwd=tmp_path)
    again = [json.loads(x) for x in (answers.parent / "0.aux_properties.jsonl").read_text().splitlines()]
    assert [x["aux_properties"] for x in again] == [x["aux_properties"] for x in lines]


def test_masked_labels_give_no_gradient():
    head = AuxPropertyHead(16, ["MW", "LogP"], hidden=8, depth=2)
    values, mask = head.targets([{"MW": 46.0}, {"MW": 78.0, "LogP": 1.7}], "cpu")
    assert mask.tolist() == [[True, False], [True, True]]
    prediction = torch.zeros(2, 2, requires_grad=True)
    head.loss(prediction, values, mask).backward()
    assert prediction.grad[0, 1] == 0 and prediction.grad[0, 0] != 0 and prediction.grad[1, 1] != 0


def _seeded_head_and_ethanol():
    """(a seeded one-property head, ethanol's graph batch, a pooled LLM state (1, 16))."""
    torch.manual_seed(0)
    head = AuxPropertyHead(16, ["MW"], hidden=8, depth=2).eval()
    return head, collate_graphs([mol_to_graph(Chem.MolFromSmiles("CCO"))]), torch.randn(1, 16)


def test_head_uses_both_the_llm_state_and_the_graph():
    head, graphs, pooled = _seeded_head_and_ethanol()
    base = head(pooled, graphs)
    assert not torch.allclose(head(pooled + 1.0, graphs), base)
    assert not torch.allclose(head(pooled, collate_graphs([mol_to_graph(Chem.MolFromSmiles("c1ccccc1O"))])), base)


def test_a_bfloat16_head_reads_the_graph_in_its_dtype():
    # was: "expected m1 and m2 to have the same dtype, but got: float != BFloat16" in eval of
    # a model loaded in bf16 (dtype "auto" on CUDA or on a CPU with native bf16)
    head, graphs, pooled = _seeded_head_and_ethanol()
    full = head(pooled, graphs)
    half = head.to(torch.bfloat16)(pooled, graphs)
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), full, atol=0.05, rtol=0.05)
    assert graphs.atoms.dtype == torch.float32  # the batch itself is not changed


def test_pooling_covers_only_unsupervised_attended_positions():
    hidden = torch.arange(8.0).view(1, 4, 2)  # positions 0..3
    attention = torch.tensor([[1, 1, 1, 0]])  # position 3 is padding
    labels = torch.tensor([[-100, -100, 7, -100]])  # position 2 is an answer token
    torch.testing.assert_close(pool_unsupervised(hidden, attention, labels), hidden[:, :2].mean(1))


def test_pooling_stops_at_the_first_answer_as_evaluation_does():
    # was: every unlabelled position: the line break after the answer and a second turn,
    # which had seen the answer (training pooled its label; evaluation has no such positions)
    hidden = torch.arange(16.0).view(1, 8, 2)
    labels = torch.tensor([[-100, -100, -100, 5, 6, -100, -100, 9]])  # answer 1 at 3-4, a second turn after
    torch.testing.assert_close(pool_unsupervised(hidden, None, labels), hidden[:, :3].mean(1))
    torch.testing.assert_close(pool_unsupervised(hidden[:, :3], None, None), hidden[:, :3].mean(1))  # evaluation


def test_a_tiny_spread_is_standardised_by_itself_and_one_label_is_refused():
    # was: std clamped to 1e-6 (labels of 1e-9 gave targets of 0.0015 and predictions 400x off),
    # and one label was taken with std 1 and target 0
    from deepmolm_plugin.property.aux_head import DataError

    head = AuxPropertyHead(16, ["IC50"], hidden=8, depth=2)
    labels = [1e-9, 2e-9, 3e-9, 4e-9]
    head.fit_normalisation([{"IC50": v} for v in labels], ["a", "b", "c", "d"])
    assert head.std.item() == pytest.approx(statistics.stdev(labels), rel=1e-9)
    assert head.denormalize(torch.ones(1, 1)).item() == pytest.approx(2.5e-9 + statistics.stdev(labels), rel=1e-9)
    with pytest.raises(DataError, match=r"nothing to learn: IC50 \(1 label, 5\)"):
        AuxPropertyHead(16, ["IC50", "MW"], hidden=8, depth=2).fit_normalisation(
            [{"IC50": 5.0, "MW": 1.0}, {"MW": 2.0}], ["a", "b"])


def test_a_batch_without_properties_still_runs_the_head():
    # was: skipped, so under ZeRO-3 the ranks whose batch had properties waited for the
    # others' gather of the head's weights (gloo "size mismatch"; NCCL would hang)
    head = AuxPropertyHead(16, ["MW"], hidden=8, depth=2)
    head.fit_normalisation([{"MW": 1.0}, {"MW": 2.0}], ["a", "b"])
    calls = []
    head.model.register_forward_hook(lambda *a: calls.append(1))
    hidden = torch.randn(2, 5, 16, requires_grad=True)
    loss = head.batch_loss(hidden, None, torch.full((2, 5), -100), {"properties": [None, None], "graphs": None})
    assert calls and loss.item() == 0.0
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in head.parameters())  # nothing learnt from it


def test_a_checkpoint_whose_property_names_were_reordered_is_refused(aux_checkpoint, tmp_path):
    # was: loaded, and every prediction went to the other property's name, exit 0
    import shutil

    from deepmolm_plugin.model.loading import load_pretrained_model
    from deepmolm_plugin.tensor_files import CheckpointError
    from safetensors.torch import save_file

    import deepmolm_plugin

    deepmolm_plugin.register()
    edited = tmp_path / "edited"
    shutil.copytree(aux_checkpoint, edited)
    config = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps({**config, "aux_properties": ["LogP", "MW"]}))
    with pytest.raises(CheckpointError, match=r"trained for other properties, or another order of them, than "
                                              r"config.json's aux_properties \['LogP', 'MW'\]"):
        load_pretrained_model(str(edited), device="cpu", dtype="float32")
    # a checkpoint saved before the names were recorded loads as before (unchecked)
    weights = load_file(str(edited / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.endswith("names_digest")}, str(edited / "model.safetensors"),
              metadata={"format": "pt"})
    (edited / "config.json").write_text(json.dumps(config))
    tokenizer, model, *_ = load_pretrained_model(str(edited), device="cpu", dtype="float32")
    head = model.get_model().optional_head
    assert not head.names_digest.any() and head.std_floor == 1e-6  # predicts as it was trained


@pytest.mark.parametrize("extra, message", [
    (["--aux_property_task", "kflm2"], "needs --aux_properties"),
    # was: an untrained head whose random predictions eval wrote; a traceback after loading
    (["--aux_property_task", "kflm2", "--aux_properties", "MW", "--aux_property_weight", "0"], "leaves the auxiliary"),
    (["--aux_property_task", "kflm2", "--aux_properties", " , "], "names no property"),
    (["--aux_property_task", "kflm2", "--aux_properties", "MW", "--tune_mm_mlp_adapter", "True"], "stage 2"),
])
def test_argument_errors(extra, message):
    import transformers

    import deepmolm_plugin

    deepmolm_plugin.register()
    import llava.train.train as host_train

    parser = transformers.HfArgumentParser((host_train.ModelArguments,))
    with pytest.raises(ValueError, match=message):
        parser.parse_args_into_dataclasses(extra)


def test_property_names_the_head_does_not_train_are_reported(caplog):
    head = AuxPropertyHead(16, ["MW"], hidden=8, depth=2)
    properties = [{"MW": 46.0}, {"MW": 78.0, "logS": -1.0}, {"logS": 0.5}, {"log S": 0.1}, None]
    with caplog.at_level("WARNING", logger="deepmolm_plugin.property.aux_head"):
        head.fit_normalisation(properties, [f"r{i}" for i in range(5)])
    (message,) = [r.getMessage() for r in caplog.records]
    assert "properties ['log S', 'logS'] are not in its names ['MW']" in message
    assert "{'logS': 2, 'log S': 1}" in message and "2 records with properties have none of its names" in message
    caplog.clear()
    with caplog.at_level("WARNING", logger="deepmolm_plugin.property.aux_head"):
        head.fit_normalisation(properties[:2] + [None], ["a", "b", "c"])
    assert "logS" in caplog.text  # one record's extra name is still worth a line
    caplog.clear()
    with caplog.at_level("WARNING", logger="deepmolm_plugin.property.aux_head"):
        head.fit_normalisation([{"MW": 1.0}, {"MW": 2.0}, None], ["a", "b", "c"])
    assert not caplog.records  # every name trained: nothing to say


def test_a_constant_auxiliary_property_is_refused():
    # was: its std clamped to 1e-6, every target 0: a head that learnt nothing, without a word
    from deepmolm_plugin.property.aux_head import DataError

    head = AuxPropertyHead(16, ["MW", "logS"], hidden=8, depth=2)
    with pytest.raises(DataError, match=r"nothing to learn: logS \(3 labels, all -1\)"):
        head.fit_normalisation([{"MW": 46.0, "logS": -1.0}, {"MW": 78.0, "logS": -1.0}, {"logS": -1.0}],
                               ["a", "b", "c"])
    with pytest.raises(DataError, match=r"logS \(3 labels, all 0.1\)"):  # m2 is 5.8e-34 there, not 0
        head.fit_normalisation([{"MW": 46.0, "logS": 0.1}, {"MW": 78.0, "logS": 0.1}, {"logS": 0.1}],
                               ["a", "b", "c"])
