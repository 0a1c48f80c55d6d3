"""Training, sixth hostile sweep: a stage-1 adapter for another LLM width."""

from __future__ import annotations

import json

import pytest
import torch

from host_fixtures import run_module, train_args

from deepmolm_plugin import usage
from deepmolm_plugin.projector import ProjectorConfig, build_projector
from test_hostile_training_third import DEEPMOLM, checked


def _stage1_of_width(folder, width, config_width):
    """A fusion stage-1 folder whose projector outputs `width` (its config.json says `config_width`)."""
    folder.mkdir(parents=True)
    projector = build_projector("fusion", ProjectorConfig(hidden_size=width, mm_hidden_size=8, fp_bits=4096,
                                                          num_heads=2))
    torch.save({f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()}, folder / "mm_projector.bin")
    config = {"mm_vision_tower": "deepencoder", "mm_projector_type": "fusion", "fp_bits": 4096, "fp_levels": 4,
              "fusion_heads": 2, "vision_tower_weights": "random"}
    if config_width is not None:
        config["hidden_size"] = config_width
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "mm_projector.bin"


def test_a_stage1_adapter_for_another_llm_width_is_refused_before_the_model_loads(tiny_setup, tmp_path):
    # was: the host's load_state_dict raised our shape ValueError as a traceback, after the LLM had loaded
    llm_width = json.loads((tiny_setup["llm"] / "config.json").read_text())["hidden_size"]
    adapter = _stage1_of_width(tmp_path / "stage1", 8, 8)
    with pytest.raises(usage.UsageError, match=rf"--model_name_or_path .*, an LLM of hidden_size {llm_width} \(stage "
                                               r"1: 8, the width its projector outputs\)"):
        checked(tmp_path, *DEEPMOLM, "--fusion_heads", "2", "--model_name_or_path", str(tiny_setup["llm"]),
                "--vision_tower_weights", "random", "--pretrain_mm_mlp_adapter", str(adapter))


def test_adapter_shapes_found_at_load_are_one_line(tiny_setup, tmp_path):
    # a config.json without the LLM width (another tool's copy): the shapes are found when the
    # host loads the adapter; was a traceback, now the launcher's one line
    adapter = _stage1_of_width(tmp_path / "stage1", 8, None)
    proc = run_module("deepmolm_plugin.train", train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion",
                                                          "--pretrain_mm_mlp_adapter", str(adapter), steps=1),
                      cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert (f"error: --pretrain_mm_mlp_adapter {adapter}: projector weights for this 'fusion' projector are unusable: "
            "image_newline: shape [8] vs projector [64]") in proc.stderr


def test_the_auxiliary_loss_means_the_same_at_any_gradient_accumulation(tiny_setup, tmp_path):
    # was: transformers hands a model whose forward takes **kwargs the step's token count and
    # then leaves its loss undivided by the accumulation steps; the property term, a mean
    # over the micro-batch, counted once per step: bs 1 x 2 steps had twice bs 2 x 1's gradient
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    records = [{"id": f"m{i}", "smiles": smiles, "properties": {"MW": Descriptors.MolWt(Chem.MolFromSmiles(smiles))},
                "conversations": [{"from": "human", "value": "<image>\nWhat is this molecule?"},
                                  {"from": "gpt", "value": "It is a molecule."}]}
               for i, smiles in enumerate(["CCO", "CC(=O)O"])]
    data = tmp_path / "train.json"
    data.write_text(json.dumps(records))
    norms = []
    for batch, steps in ((2, 1), (1, 2)):
        out = tmp_path / f"out_{batch}x{steps}"
        args = train_args({**tiny_setup, "data": data}, out, "--mm_projector", "fusion",
                          "--gradient_accumulation_steps", str(steps), "--aux_property_task", "kflm2",
                          "--aux_properties", "MW", "--aux_property_weight", "100", steps=1)
        args[args.index("--per_device_train_batch_size") + 1] = str(batch)
        run_module("deepmolm_plugin.train", args, cwd=tmp_path)
        history = json.loads((out / "trainer_state.json").read_text())["log_history"]
        norms.append(next(entry["grad_norm"] for entry in history if "grad_norm" in entry))
    assert norms[1] == pytest.approx(norms[0], rel=1e-3), norms


def test_properties_need_the_image_in_the_first_question():
    # was: the property head pooled the prompt before the first answer, which for an image in a
    # later turn held neither the picture nor the molecule: it trained on unrelated text
    from types import SimpleNamespace

    from deepmolm_plugin.patches.molecule_data import require_graphs
    from deepmolm_plugin.usage import DataError

    def turns(*values):
        return [{"from": ("human", "gpt")[i % 2], "value": v} for i, v in enumerate(values)]

    records = [{"id": "first", "smiles": "CCO", "properties": {"MW": 46.07},
                "conversations": turns("<image>\nWhat is this?", "Ethanol.")},
               {"id": "later", "smiles": "CCO", "properties": {"MW": 46.07},
                "conversations": turns("Hello?", "Hi.", "<image>\nWhat is this?", "Ethanol.")},
               {"id": "plain", "smiles": "CCO", "conversations": turns("Hello?", "Hi.", "<image>\nAnd this?", "Ethanol.")}]
    model = SimpleNamespace(get_model=lambda: SimpleNamespace(optional_head=object()))
    dataset = SimpleNamespace(list_data_dict=records, needs_graphs=True)
    with pytest.raises(DataError, match=r"records 'later' have `properties` but their <image> is not in the first "
                                        "question"):
        require_graphs(dataset, model)
    require_graphs(SimpleNamespace(list_data_dict=[records[0], records[2]], needs_graphs=True), model)
    no_head = SimpleNamespace(get_model=lambda: SimpleNamespace(optional_head=None))
    require_graphs(SimpleNamespace(list_data_dict=records, needs_graphs=True), no_head)  # properties unread: no rule


def test_stage1_with_image_start_end_tokens_is_refused_before_the_model_loads(tmp_path):
    # was: the host's splice raised a bare NotImplementedError at the first step
    with pytest.raises(usage.UsageError, match=r"--tune_mm_mlp_adapter True with --mm_use_im_start_end True"):
        checked(tmp_path, *DEEPMOLM, "--tune_mm_mlp_adapter", "True", "--mm_use_im_start_end", "True")


@pytest.mark.parametrize("fields, reason", [
    ({"smiles": "C1CC"}, r"unparseable SMILES 'C1CC'"),
    ({"structure": "nope.sdf"}, r"structure file .*nope.sdf does not exist"),
])
def test_records_with_their_own_image_are_checked_when_the_dataset_is_built(tmp_path, fields, reason):
    # was: their molecule was first built at their step: the run stopped there, hours in
    from PIL import Image
    from test_hostile_training import dataset
    from tiny_models import make_tiny_tokenizer

    from deepmolm_plugin.data.records import RecordError

    Image.new("RGB", (64, 64), "white").save(tmp_path / "pic.png")
    turns = [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "A molecule."}]
    fields = {k: str(tmp_path / v) if k == "structure" else v for k, v in fields.items()}
    records = [{"id": "good", "image": "pic.png", "smiles": "CCO", "conversations": turns},
               {"id": "bad", "image": "pic.png", "conversations": turns, **fields}]
    with pytest.raises(RecordError, match=rf"record 'bad': {reason}"):
        dataset(tmp_path, make_tiny_tokenizer(), records)


@pytest.mark.parametrize("reply", ["\nEthane.", " \nEthane.", "\t\r\nEthane."])
def test_a_reply_starting_with_a_line_break_is_refused_for_chat_templates_only(tmp_path, reply):
    # was: the qwen2 preprocess found it at the record's step (it merges with the template's
    # "assistant\n"); the plain template puts the reply right after the image: no merge there
    from deepmolm_plugin.training.inputs import check_records

    turns = [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": reply}]
    records = [{"id": "merged", "smiles": "CC", "conversations": turns}]
    with pytest.raises(usage.UsageError, match=r"record 'merged': conversation turn 1 \(gpt\) starts with a line "
                                               "break, which merges with the chat template's own: strip it"):
        check_records(records, str(tmp_path / "train.json"))
    check_records(records, str(tmp_path / "train.json"), plain=True)
    check_records([{**records[0], "conversations": [turns[0], {"from": "gpt", "value": "Ethane.\n"}]}],
                  str(tmp_path / "train.json"))  # a trailing one is the reply's own
