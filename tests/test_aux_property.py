"""KFLM2 as DeepMoLM's auxiliary task: trained with the LM loss through the host launcher."""

import json

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
    assert torch.equal(weights["model.aux_property_head.count"], torch.tensor([48.0, 36.0], dtype=torch.float64))
    assert any(k.startswith("model.aux_property_head.model.graph.") for k in weights)


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


def test_masked_labels_give_no_gradient():
    head = AuxPropertyHead(16, ["MW", "LogP"], hidden=8, depth=2)
    values, mask = head.targets([{"MW": 46.0}, {"MW": 78.0, "LogP": 1.7}], "cpu")
    assert mask.tolist() == [[True, False], [True, True]]
    prediction = torch.zeros(2, 2, requires_grad=True)
    head.loss(prediction, values, mask).backward()
    assert prediction.grad[0, 1] == 0 and prediction.grad[0, 0] != 0 and prediction.grad[1, 1] != 0


def test_head_uses_both_the_llm_state_and_the_graph():
    torch.manual_seed(0)
    head = AuxPropertyHead(16, ["MW"], hidden=8, depth=2).eval()
    graphs = collate_graphs([mol_to_graph(Chem.MolFromSmiles("CCO"))])
    pooled = torch.randn(1, 16)
    base = head(pooled, graphs)
    assert not torch.allclose(head(pooled + 1.0, graphs), base)
    assert not torch.allclose(head(pooled, collate_graphs([mol_to_graph(Chem.MolFromSmiles("c1ccccc1O"))])), base)


def test_pooling_covers_only_unsupervised_attended_positions():
    hidden = torch.arange(8.0).view(1, 4, 2)  # positions 0..3
    attention = torch.tensor([[1, 1, 1, 0]])  # position 3 is padding
    labels = torch.tensor([[-100, -100, 7, -100]])  # position 2 is an answer token
    torch.testing.assert_close(pool_unsupervised(hidden, attention, labels), hidden[:, :2].mean(1))


@pytest.mark.parametrize("extra, message", [
    (["--aux_property_task", "kflm2"], "needs --aux_properties"),
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
