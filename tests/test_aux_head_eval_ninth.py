"""The KFLM2 property head in eval, and its config, ninth sweep: what was wrong -> what happens now.

- Tiles-mode models: model_vqa's property prediction pooled the global view alone, while
  training and `generate` had the tiles too (MW 56.858 against 56.949, exit 0) -> the head
  gets exactly what `generate` gets.
- `--version plain` models: model_vqa asked in `plain` with the host's PLAIN prompt,
  `<image>\\n<question>\\n`, though the host's `preprocess_plain` trains on the image token
  alone and the answer right after it: the answer and the head's pooling followed tokens the
  model never saw -> the prompt is training's (the image alone), with a note, for the run only.
- config.json with `aux_property_task` but no `aux_properties`: an AttributeError traceback
  while the model was built; "MW,LogP" was split into 7 names -> one line naming the field,
  before anything loads (and a ValueError naming it from the head's builder).
- `predict_properties` with a graph count other than the prompts': torch's "Sizes of tensors
  must match" -> a ValueError naming both counts.

Two tiny trained checkpoints with the head (tiles mode; --version plain), built once.
"""

from __future__ import annotations

import copy
import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from host_fixtures import MOLECULES, run_module, train_args
from test_host_cli_eval import FUSION_CONFIG, _stub_args, _write_questions

HEAD = ("--aux_property_task", "kflm2", "--aux_properties", "MW,LogP", "--aux_property_weight", "1.0")
QUESTION = "What is it?"


@pytest.fixture(autouse=True)
def registered():
    import deepmolm_plugin

    deepmolm_plugin.register()


@pytest.fixture(scope="module")
def aux_records(tiny_setup, tmp_path_factory):
    """The tiny records with `properties` {MW, LogP}."""
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    root = tmp_path_factory.mktemp("aux_ninth")
    records = json.loads(tiny_setup["data"].read_text())
    for record in records:
        mol = Chem.MolFromSmiles(record["smiles"])
        record["properties"] = {"MW": Descriptors.MolWt(mol), "LogP": Descriptors.MolLogP(mol)}
    data = root / "train.json"
    data.write_text(json.dumps(records))
    return {**tiny_setup, "data": data, "root": root, "records": records}


def _train(setup, name, *extra, version="qwen2"):
    out = setup["root"] / name
    args = train_args(setup, out, "--mm_projector", "fusion", *HEAD, *extra, steps=3)
    args[args.index("--version") + 1] = version
    run_module("deepmolm_plugin.train", args, cwd=setup["root"])
    return out


@pytest.fixture(scope="module")
def tiles_checkpoint(aux_records):
    return _train(aux_records, "tiles", "--image_mode", "tiles")


@pytest.fixture(scope="module")
def plain_checkpoint(aux_records):
    return _train(aux_records, "plain", version="plain")


@pytest.fixture
def spied_model(monkeypatch):
    """Every `generate` call (the model, its prompt ids and keyword inputs) and every
    `predict_properties` call's graphs, as model_vqa makes them; the host's eval_model
    replaces two torch init methods for the process (restored after the test)."""
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2ForCausalLM

    calls = SimpleNamespace(generate=[], graphs=[])
    generate, predict = LlavaQwen2ForCausalLM.generate, LlavaQwen2ForCausalLM.predict_properties

    def spy_generate(self, inputs=None, **kwargs):
        calls.generate.append((self, inputs.clone(), dict(kwargs)))
        return generate(self, inputs, **kwargs)

    def spy_predict(self, input_ids, images, graphs, **kwargs):
        calls.graphs.append(graphs)
        return predict(self, input_ids, images, graphs, **kwargs)

    monkeypatch.setattr(LlavaQwen2ForCausalLM, "generate", spy_generate)
    monkeypatch.setattr(LlavaQwen2ForCausalLM, "predict_properties", spy_predict)
    for layer in (torch.nn.Linear, torch.nn.LayerNorm):
        monkeypatch.setattr(layer, "reset_parameters", layer.reset_parameters)
    calls.predict = predict
    return calls


def _eval(checkpoint, tmp_path, smiles=("CCO", "c1ccccc1")):
    """model_vqa (in this process) on one question per molecule; (answer lines, aux lines)."""
    from deepmolm_plugin.eval import model_vqa

    questions = tmp_path / "q.jsonl"
    _write_questions(questions, [{"question_id": f"q{i}", "smiles": s, "text": QUESTION} for i, s in enumerate(smiles)])
    answers = tmp_path / "answers" / "0.jsonl"
    model_vqa.main(["--model-path", str(checkpoint), "--question-file", str(questions), "--image-folder",
                    str(tmp_path), "--answers-file", str(answers), "--temperature", "0", "--max-new-tokens", "3",
                    "--conv-mode", "auto"])
    read = lambda path: [json.loads(line) for line in path.read_text().splitlines()]  # noqa: E731
    return read(answers), read(answers.parent / "0.aux_properties.jsonl")


# --- 1: tiles mode: the head sees the tiles generate sees --------------------------------------
def test_a_tiles_model_predicts_properties_from_the_tiles_generate_sees(tiles_checkpoint, tmp_path, spied_model):
    # was: predict_properties got the global view alone (MW 56.858), generate the tiles too (56.949)
    _, aux = _eval(tiles_checkpoint, tmp_path)
    assert [line["question_id"] for line in aux] == ["q0", "q1"] and len(spied_model.generate) == 2
    for line, (model, inputs, kwargs), graphs in zip(aux, spied_model.generate, spied_model.graphs):
        assert kwargs["tile_images"] is not None and kwargs["tile_grids"] is not None  # a tiles-mode run
        with torch.inference_mode():  # the host's own eval mode
            expected = spied_model.predict(
                model, inputs, kwargs["images"], graphs, image_sizes=kwargs["image_sizes"],
                molecule_fp=kwargs["molecule_fp"], tile_images=kwargs["tile_images"], tile_grids=kwargs["tile_grids"])
        assert line["aux_properties"] == pytest.approx(expected[0], rel=1e-12, abs=0)


# --- 2: --version plain: the prompt training fed ------------------------------------------------
def _preprocess_plain_prompt(tokenizer, question: str, answer: str, mm_use_im_start_end: bool) -> list:
    """The ids the host's training makes for a record under `plain` (preprocess_multimodal,
    then preprocess_plain), up to the answer: those its labels leave out."""
    from llava import conversation as conversation_lib
    from llava.constants import IGNORE_INDEX
    from llava.train import train as host_train

    sources = [[{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]]
    data_args = SimpleNamespace(is_multimodal=True, mm_use_im_start_end=mm_use_im_start_end)
    saved = conversation_lib.default_conversation
    conversation_lib.default_conversation = conversation_lib.conv_templates["plain"]  # as train() sets it
    try:
        sources = host_train.preprocess_multimodal(copy.deepcopy(sources), data_args)
        batch = host_train.preprocess_plain(sources, tokenizer)
    finally:
        conversation_lib.default_conversation = saved
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    prompt = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    assert ids[prompt:] != [] and labels[:prompt] == [IGNORE_INDEX] * prompt
    return ids[:prompt]


def test_a_plain_trained_model_is_asked_with_the_prompt_training_fed(plain_checkpoint, tmp_path, spied_model,
                                                                      capsys):
    # was: '<image>\nWhat is it?\n' (the host's PLAIN get_prompt), for the answer and the head
    import llava.eval.model_vqa as host
    from transformers import AutoTokenizer

    templates = host.conv_templates
    answers, aux = _eval(plain_checkpoint, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(str(plain_checkpoint))
    config = json.loads((plain_checkpoint / "config.json").read_text())
    trained = _preprocess_plain_prompt(tokenizer, QUESTION, f"This molecule is {MOLECULES[0][1]}.",
                                       config["mm_use_im_start_end"])
    assert [inputs[0].tolist() for _, inputs, _ in spied_model.generate] == [trained, trained]
    # the head pooled the same prompt: its prediction is the one on training's prompt ids
    model, _, kwargs = spied_model.generate[0]
    with torch.inference_mode():
        expected = spied_model.predict(model, torch.tensor([trained]), kwargs["images"], spied_model.graphs[0],
                                       image_sizes=kwargs["image_sizes"], molecule_fp=kwargs["molecule_fp"])
    assert aux[0]["aux_properties"] == pytest.approx(expected[0], rel=1e-12, abs=0)
    assert [line["prompt"] for line in answers] == [QUESTION, QUESTION]  # the answers file keeps the question
    assert all(line["metadata"]["settings"]["prompt"] for line in answers)  # not --resume's nor the report's to mix
    err = capsys.readouterr().err
    assert err.count("asks each question with the image alone") == 1, err
    assert host.conv_templates is templates  # bound for the run only


class _CharTokenizer:  # one id per character: any other text gives other ids
    bos_token_id = None

    def __call__(self, text):
        return SimpleNamespace(input_ids=[ord(c) for c in text])

    def decode(self, ids, skip_special_tokens=True):
        return "".join(map(chr, ids))

    def batch_decode(self, ids, skip_special_tokens=True):
        return [self.decode(row.tolist()) for row in ids]


def _stub_host(monkeypatch, start_end=False, reply="an answer"):
    """The host's model load replaced by a stub whose generate records its prompt ids and
    keyword arguments and answers `reply` (one id per character): (prompts, calls, tokenizer class)."""
    from llava.model import builder

    prompts, calls = [], []

    class StubModel:
        config = SimpleNamespace(mm_use_im_start_end=start_end, image_aspect_ratio=None)
        device, dtype = torch.device("cpu"), torch.float32

        def generate(self, inputs, **kwargs):
            prompts.append(inputs[0].tolist())
            calls.append(kwargs)
            return torch.tensor([[ord(c) for c in reply]])

    def processor(images, return_tensors):
        return {"pixel_values": torch.zeros(len(images), 3, 8, 8)}

    monkeypatch.setattr(builder, "load_pretrained_model", lambda *a, **k: (_CharTokenizer(), StubModel(), processor, 64))
    for layer in (torch.nn.Linear, torch.nn.LayerNorm):
        monkeypatch.setattr(layer, "reset_parameters", layer.reset_parameters)
    return prompts, calls, _CharTokenizer


@pytest.mark.parametrize("start_end", [False, True])
def test_the_plain_prompt_is_preprocess_plains_whatever_mm_use_im_start_end(tmp_path, monkeypatch, start_end):
    # The host's eval puts <im_start><image><im_end> before the question when mm_use_im_start_end;
    # preprocess_plain replaces the whole first turn by <image>: so does eval now
    import llava.eval.model_vqa as host

    from deepmolm_plugin.eval import model_vqa

    prompts, _, CharTokenizer = _stub_host(monkeypatch, start_end)
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": "q0", "smiles": "CCO", "text": QUESTION}])
    args = _stub_args(questions, tmp_path / "a.jsonl")
    args.conv_mode = "plain"
    templates = host.conv_templates
    model_vqa.run_host_eval(host, args, FUSION_CONFIG)
    assert prompts == [_preprocess_plain_prompt(CharTokenizer(), QUESTION, "ethanol", start_end)]
    assert host.conv_templates is templates
    # another template is the host's own, unchanged
    args.conv_mode = "llava_v1"
    model_vqa.run_host_eval(host, args, FUSION_CONFIG)
    assert "What is it?" in "".join(map(chr, (i for i in prompts[-1] if i >= 0)))


def test_a_plain_models_answer_ends_at_the_templates_separator(tmp_path, monkeypatch):
    # 2026-12-06: preprocess_plain trains `<image>` + answer + "\n" and no end token after it, so a plain model
    # wrote its answer, the "\n", then untrained text up to 1024 tokens, all stored and scored as the answer
    import llava.eval.model_vqa as host

    from deepmolm_plugin.eval import model_vqa

    _, calls, _ = _stub_host(monkeypatch, reply="ethanol\n .\n 9.")
    questions = tmp_path / "questions.jsonl"
    _write_questions(questions, [{"question_id": "q0", "smiles": "CCO", "text": QUESTION}])
    args = _stub_args(questions, tmp_path / "a.jsonl")
    args.conv_mode = "plain"
    model_vqa.run_host_eval(host, args, FUSION_CONFIG)
    (line,) = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert line["text"] == "ethanol"
    assert calls[-1]["stop_strings"] == ["\n"] and calls[-1]["tokenizer"] is not None  # generation ends there too
    assert "separator" in line["metadata"]["settings"]["prompt"]  # --resume keeps no answer that ran on
    args.conv_mode = "llava_v1"  # a template whose replies end with a trained token: answers as generated
    model_vqa.run_host_eval(host, args, FUSION_CONFIG)
    assert "stop_strings" not in calls[-1]
    assert json.loads((tmp_path / "a.jsonl").read_text())["text"] == "ethanol\n .\n 9."


# --- 3: aux_property_task without a usable aux_properties --------------------------------------
@pytest.mark.parametrize("fields, problem", [
    ({"aux_property_task": "kflm2"}, "aux_property_task is 'kflm2', but aux_properties is missing"),
    ({"aux_property_task": "kflm2", "aux_properties": "MW,LogP"}, "aux_properties is 'MW,LogP' (str), not a list"),
    ({"aux_property_task": "kflm2", "aux_properties": None}, "aux_properties is None (null), not a list"),
    ({"aux_property_task": "kflm2", "aux_properties": []}, "aux_properties is [] (list), an empty list"),
    ({"aux_property_task": "kflm2", "aux_properties": ["MW", "MW"]}, "names 'MW' more than once"),
    ({"aux_property_task": "kflm2", "aux_properties": ["MW", 5]}, "5 is not a non-empty string"),
    ({"aux_property_task": "kflm2", "aux_properties": ["MW", " "]}, "' ' is not a non-empty string"),
    ({"aux_property_task": 5, "aux_properties": ["MW"]}, "aux_property_task is 5 (int), not a string"),
])
def test_the_head_fields_are_checked_with_the_others(fields, problem, tmp_path):
    from deepmolm_plugin.checkpoint_config import ConfigFieldError, check_config_fields

    with pytest.raises(ConfigFieldError) as error:
        check_config_fields({"model_type": "llava_qwen2", **fields}, tmp_path)
    assert str(error.value).startswith(f"{tmp_path}/config.json: ") and problem in str(error.value)
    # a model without the head: its names are not read
    check_config_fields({"model_type": "llava_qwen2", "aux_property_task": None, "aux_properties": None}, tmp_path)
    check_config_fields({"model_type": "llava_qwen2", "aux_properties": ["MW", "LogP"]}, tmp_path)


DELETE = object()


def _edited(checkpoint, tmp_path, **fields):
    folder = tmp_path / "edited"
    shutil.copytree(checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    config = {k: v for k, v in config.items() if v is not DELETE}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


@pytest.mark.parametrize("names, says", [(DELETE, "but aux_properties is missing"),
                                         ("MW,LogP", "aux_properties is 'MW,LogP' (str), not a list")])
def test_model_vqa_refuses_such_a_config_in_one_line(plain_checkpoint, tmp_path, monkeypatch, capsys, names, says):
    # was: an AttributeError traceback while the model was built; "MW,LogP": "checkpoint [2] vs model [7]"
    from llava.model import builder

    from deepmolm_plugin.eval import model_vqa

    folder = _edited(plain_checkpoint, tmp_path, aux_properties=names)
    monkeypatch.setattr(builder, "load_pretrained_model", lambda *a, **k: pytest.fail("the model loaded"))
    questions = tmp_path / "q.jsonl"
    _write_questions(questions, [{"question_id": "q0", "smiles": "CCO", "text": QUESTION}])
    with pytest.raises(SystemExit) as exit_:
        model_vqa.main(["--model-path", str(folder), "--question-file", str(questions), "--answers-file",
                        str(tmp_path / "answers" / "a.jsonl")])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    prefix = f"python -m deepmolm_plugin.eval.model_vqa: error: --model-path: {folder}/config.json: "
    assert len(errors) == 1 and errors[0].startswith(prefix) and says in errors[0], errors


def test_the_head_builder_names_the_field_and_the_loader_says_it_in_one_line(plain_checkpoint, tmp_path,
                                                                               monkeypatch):
    # For API users who build the model without the config check
    from deepmolm_plugin.model import loading
    from deepmolm_plugin.property.aux_head import build_kflm2_head
    from deepmolm_plugin.tensor_files import CheckpointError

    with pytest.raises(ValueError, match="has aux_property_task 'kflm2' but no aux_properties"):
        build_kflm2_head(SimpleNamespace(hidden_size=16))
    with pytest.raises(ValueError, match=r"aux_properties is 'MW,LogP', not a list of property names"):
        build_kflm2_head(SimpleNamespace(hidden_size=16, aux_properties="MW,LogP"))  # was: a head of 7 outputs
    assert build_kflm2_head(SimpleNamespace(hidden_size=16, aux_properties=("MW", "LogP"))).names == ["MW", "LogP"]
    folder = _edited(plain_checkpoint, tmp_path, aux_properties=DELETE)
    monkeypatch.setattr(loading, "check_config_fields", lambda *a, **k: None)  # the check bypassed
    with pytest.raises(CheckpointError) as error:
        loading.load_pretrained_model(str(folder), device="cpu", dtype="float32")
    assert str(error.value).startswith(f"{folder}: cannot build the model its config.json describes: the model config "
                                       "has aux_property_task 'kflm2' but no aux_properties"), str(error.value)
    assert "\n" not in str(error.value)


# --- 4: predict_properties with a graph count other than the prompts' --------------------------
def test_predict_properties_needs_one_graph_per_prompt(plain_checkpoint, tmp_path):
    # was: RuntimeError "Sizes of tensors must match except in dimension 1" from inside the head
    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.mm_utils import process_images
    from PIL import Image

    from deepmolm_plugin.data.graphs import graph_resolver, record_graph
    from deepmolm_plugin.model.loading import load_pretrained_model
    from deepmolm_plugin.molecule.inputs import InputResolver, model_limits, model_render_size
    from deepmolm_plugin.molecule_fp import FingerprintSettings

    _, model, processor, _ = load_pretrained_model(str(plain_checkpoint), device="cpu", dtype="float32")
    config = model.config
    resolver = InputResolver(FingerprintSettings.from_config(config), policy="auto", render_folder=str(tmp_path),
                             render_size=model_render_size(config), kind="question", limits=model_limits(config))
    resolved = resolver.resolve({"smiles": "CCO"}, "CCO")
    with Image.open(tmp_path / resolved.image) as opened:
        image = opened.convert("RGB")
    graph = record_graph({"smiles": "CCO"}, "CCO", graph_resolver(None, kind="question"))
    ids = torch.tensor([[IMAGE_TOKEN_INDEX]])
    pixels = process_images([image], processor, config)
    one = dict(image_sizes=[image.size], molecule_fp=resolved.molecule_fp[None])
    two = dict(image_sizes=[image.size] * 2, molecule_fp=resolved.molecule_fp[None].repeat(2, 1, 1))
    with torch.inference_mode():
        assert len(model.predict_properties(ids, pixels, [graph], **one)) == 1
        with pytest.raises(ValueError, match=r"^predict_properties got 2 prompts but 1 graph\(s\): give one graph "
                                             r"per prompt, in order$"):
            model.predict_properties(ids.repeat(2, 1), pixels.repeat(2, 1, 1, 1), [graph], **two)
        with pytest.raises(ValueError, match=r"^predict_properties got 1 prompt but 2 graph\(s\)"):
            model.predict_properties(ids, pixels, [graph, graph], **one)
        with pytest.raises(ValueError, match="takes its graphs as a list, one per prompt"):
            model.predict_properties(ids, pixels, graph, **one)
