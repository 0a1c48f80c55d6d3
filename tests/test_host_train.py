"""DeepMoLM inside llava-torch: the host's train.py, builder, loader and registry, for real.

Training runs go through `python -m deepmolm_plugin.train` as subprocesses (tiny Qwen2,
tiny DeepEncoder, fusion projector); loading and registry checks run in-process.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import deepmolm_plugin
from host_fixtures import MOLECULES, QUESTION, losses, run_module, train_args

deepmolm_plugin.register()

import llava.model.llava_arch as llava_arch  # noqa: E402  (after register: patched host)
import llava.train.train as host_train  # noqa: E402
from llava.constants import IMAGE_TOKEN_INDEX  # noqa: E402
from llava.conversation import conv_templates  # noqa: E402
from llava.mm_utils import process_images, tokenizer_image_token  # noqa: E402
from llava.model.builder import load_pretrained_model  # noqa: E402
from llava.model.multimodal_encoder import builder as encoder_builder  # noqa: E402
from llava.model.multimodal_projector import builder as projector_builder  # noqa: E402

from deepmolm_plugin.molecule_fp import FingerprintSettings
from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower  # noqa: E402
from deepmolm_plugin.model import LlavaQwen2ForCausalLM  # noqa: E402
from deepmolm_plugin.molecule import fingerprint_record, molecule_from_smiles, render_molecule  # noqa: E402
from deepmolm_plugin.molecule_fp import collate as collate_molecule_fp  # noqa: E402
from deepmolm_plugin.projector import FusionProjector, ProjectorConfig  # noqa: E402
from deepmolm_plugin.tensor_files import CheckpointError  # noqa: E402


# --- training through the launcher ---------------------------------------------------------

def test_training_loss_falls_and_config_is_self_describing(trained_checkpoint):
    history = losses(trained_checkpoint)
    assert len(history) == 6 and history[-1] < history[0]
    config = json.loads((trained_checkpoint / "config.json").read_text())
    assert config["model_type"] == "llava_qwen2"
    assert config["mm_vision_tower"] == "deepencoder" and config["mm_projector_type"] == "fusion"
    assert config["fusion_heads"] == 2 and config["fp_bits"] == 4096 and config["fp_levels"] == 4
    assert config["deepencoder_config"]["image_size"] == 128 and config["mm_hidden_size"] == 64
    weights = load_file(str(trained_checkpoint / "model.safetensors"))
    assert any(k.startswith("model.vision_tower.vision_tower.sam.") for k in weights)
    assert "model.mm_projector.view_seperator" in weights


def _generate(tokenizer, model, processor, smiles, max_new_tokens=6):
    conv = conv_templates["qwen2"].copy()
    conv.append_message(conv.roles[0], QUESTION)
    conv.append_message(conv.roles[1], None)
    ids = tokenizer_image_token(conv.get_prompt(), tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt").unsqueeze(0)
    images = process_images([render_molecule(smiles)], processor, model.config)
    fp = collate_molecule_fp([fingerprint_record(molecule_from_smiles(smiles))])
    return model.generate(ids, images=images, image_sizes=[(1024, 1024)], molecule_fp=fp,
                          max_new_tokens=max_new_tokens, do_sample=False)


def test_full_checkpoint_reloads_with_the_host_loader_from_the_folder_alone(trained_checkpoint, tmp_path):
    # Move the folder: nothing may be re-read from a path recorded at training time.
    moved = tmp_path / "moved"
    trained_checkpoint.rename(moved)
    try:
        tokenizer, model, processor, context_len = load_pretrained_model(str(moved), None, "anything", device="cpu")
        from deepmolm_plugin.dtypes import auto_dtype

        # the loader's dtype is "auto": float32 on most CPUs, bfloat16 on one with native bf16
        assert isinstance(model, LlavaQwen2ForCausalLM) and model.dtype == auto_dtype("cpu")
        from deepmolm_plugin import cpu_memory
        assert cpu_memory._state == {"applied": True}  # CPU inference keeps freed memory (glibc here)
        saved = load_file(str(moved / "model.safetensors"))
        tower_key = "model.vision_tower.vision_tower.sam.blocks.0.attn.qkv.weight"
        assert torch.equal(model.state_dict()[tower_key], saved[tower_key].to(model.dtype))
        assert isinstance(model.get_model().mm_projector, FusionProjector)
        assert processor.crop_size == {"height": 128, "width": 128}
        out = _generate(tokenizer, model, processor, "CCO")
        assert out.shape[0] == 1 and 0 < out.shape[1] <= 6  # new tokens only
        # The molecule changes what the model sees: logits differ between two molecules.
        a, b = (_generate(tokenizer, model, processor, s, max_new_tokens=1) for s in ("CCO", "c1ccccc1"))
        assert a.shape == b.shape
    finally:
        moved.rename(trained_checkpoint)


def test_checkpoint_missing_tower_weights_is_an_error(trained_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in trained_checkpoint.iterdir():
        if f.name != "model.safetensors":
            (broken / f.name).write_bytes(f.read_bytes())
    weights = load_file(str(trained_checkpoint / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if ".vision_tower." not in k}, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match="vision_tower"):
        load_pretrained_model(str(broken), None, "x", device="cpu")


def test_a_reloaded_tower_is_frozen_unless_the_run_trains_it(trained_checkpoint):
    # transformers' from_pretrained replaced the frozen parameters with trainable ones
    model = LlavaQwen2ForCausalLM.from_pretrained(str(trained_checkpoint))
    tower = model.get_vision_tower()
    assert not any(p.requires_grad for p in tower.parameters()) and not tower.trainable
    tower.enable_feature_cache(trained_checkpoint.parent / "reload-cache")
    view = torch.zeros(1, 3, 128, 128)
    assert tower(view).shape[0] == 1 and tower.feature_cache.stats()["misses"] == 1  # no "needs a frozen tower"
    tower.enable_feature_cache(None)
    # a stage-2 run's --unfreeze_mm_vision_tower reaches the reloaded tower (the host only
    # calls its load_model() again)
    args = host_train.ModelArguments(vision_tower="deepencoder", mm_projector_type="fusion", fusion_heads=2,
                                     unfreeze_mm_vision_tower=True, mm_use_im_patch_token=False)
    model.get_model().initialize_vision_modules(model_args=args)
    assert tower.trainable and all(p.requires_grad for p in tower.parameters())


def test_training_from_a_full_checkpoint_leaves_the_tower_frozen(trained_checkpoint, tiny_setup, tmp_path):
    # Stage 2 from a saved model without --unfreeze_mm_vision_tower: the tower trained anyway,
    # and --vision_feature_cache refused it, naming an option never given.
    args = train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion",
                      "--vision_feature_cache", str(tmp_path / "cache"), steps=2)
    args[args.index("--model_name_or_path") + 1] = str(trained_checkpoint)
    run_module("deepmolm_plugin.train", args, cwd=tmp_path)
    before = load_file(str(trained_checkpoint / "model.safetensors"))
    after = load_file(str(tmp_path / "out" / "model.safetensors"))
    tower = [k for k in before if k.startswith("model.vision_tower.")]
    assert tower and all(before[k].equal(after[k]) for k in tower)
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 4
    assert any(not before[k].equal(after[k]) for k in before if k.startswith("model.mm_projector."))


def test_stage1_adapter_then_stage2_from_it(tiny_setup, tmp_path):
    stage1 = tmp_path / "stage1"
    run_module("deepmolm_plugin.train",
               train_args(tiny_setup, stage1, "--mm_projector", "fusion", "--tune_mm_mlp_adapter", "True", steps=3),
               cwd=tmp_path)
    adapter = torch.load(stage1 / "mm_projector.bin", weights_only=True)
    projector = FusionProjector(ProjectorConfig(hidden_size=64, mm_hidden_size=64, num_heads=2))
    expected = {f"model.mm_projector.{k}" for k in projector.state_dict()}
    assert set(adapter) == expected  # every fusion parameter, newline and separator included

    # Stage 2 with learning rate 0: the projector it saves is exactly stage 1's.
    stage2 = tmp_path / "stage2"
    run_module("deepmolm_plugin.train",
               train_args(tiny_setup, stage2, "--mm_projector", "fusion",
                          "--pretrain_mm_mlp_adapter", str(stage1 / "mm_projector.bin"),
                          "--learning_rate", "0", steps=1),
               cwd=tmp_path)
    saved = load_file(str(stage2 / "model.safetensors"))
    for key, value in adapter.items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=0, msg=key)


def test_mm_projector_type_spelling_and_conflict(tiny_setup, tmp_path):
    out = tmp_path / "concat"
    run_module("deepmolm_plugin.train",
               train_args(tiny_setup, out, "--mm_projector_type", "concat", steps=1), cwd=tmp_path)
    assert json.loads((out / "config.json").read_text())["mm_projector_type"] == "concat"
    bad = run_module("deepmolm_plugin.train",
                     train_args(tiny_setup, tmp_path / "bad", "--mm_projector", "fusion",
                                "--mm_projector_type", "concat", steps=1),
                     cwd=tmp_path, check=False)
    assert bad.returncode != 0 and "contradicts --mm_projector_type" in bad.stderr


# --- in-process: arguments, registry, dispatch --------------------------------------------

def _parse(argv):
    import transformers

    parser = transformers.HfArgumentParser((host_train.ModelArguments, host_train.DataArguments))
    return parser.parse_args_into_dataclasses(argv)


def test_both_projector_spellings_parse_and_our_settings_are_host_arguments():
    model_args, data_args = _parse(["--mm_projector", "fusion", "--fusion_heads", "4", "--image_mode", "tiles",
                                    "--conformer_policy", "generate", "--structure_folder", "/s"])
    assert model_args.mm_projector_type == "fusion" and model_args.fusion_heads == 4
    assert model_args.image_mode == "tiles"
    assert data_args.conformer_policy == "generate" and data_args.structure_folder == "/s"
    model_args, _ = _parse(["--mm_projector_type", "fusion"])
    assert model_args.mm_projector_type == "fusion"
    assert _parse([])[0].mm_projector_type == "linear"  # the host's default
    # was accepted (an explicit `linear` read as "not given"), and a fusion model trained
    with pytest.raises(ValueError, match="--mm_projector fusion contradicts --mm_projector_type linear"):
        _parse(["--mm_projector", "fusion", "--mm_projector_type", "linear"])


def test_registry_resolves_ours_in_both_places_and_falls_through():
    assert llava_arch.build_vision_tower is encoder_builder.build_vision_tower  # rebound in llava_arch too
    assert llava_arch.build_vision_projector is projector_builder.build_vision_projector
    from conftest import tiny_encoder_config

    cfg = SimpleNamespace(mm_vision_tower="deepencoder", vision_tower_weights="random",
                          deepencoder_config=tiny_encoder_config().to_dict())
    assert isinstance(llava_arch.build_vision_tower(cfg), DeepEncoderVisionTower)
    with pytest.raises(ValueError, match="Unknown vision tower: no-such-tower"):
        llava_arch.build_vision_tower(SimpleNamespace(mm_vision_tower="no-such-tower"))
    # `linear` with a non-DeepEncoder tower stays the host's plain nn.Linear (stock LLaVA keeps loading).
    host_linear = llava_arch.build_vision_projector(
        SimpleNamespace(mm_projector_type="linear", mm_hidden_size=8, hidden_size=4, mm_vision_tower="openai/clip"))
    assert type(host_linear) is torch.nn.Linear
    ours = llava_arch.build_vision_projector(
        SimpleNamespace(mm_projector_type="linear", mm_hidden_size=8, hidden_size=4, mm_vision_tower="deepencoder"))
    assert hasattr(ours, "view_seperator")
    with pytest.raises(ValueError, match="Unknown projector type"):
        llava_arch.build_vision_projector(SimpleNamespace(mm_projector_type="nope", mm_hidden_size=8, hidden_size=4))


def test_register_is_idempotent():
    before = (host_train.ModelArguments, llava_arch.build_vision_tower, host_train.LazySupervisedDataset.__getitem__)
    deepmolm_plugin.register()
    assert (host_train.ModelArguments, llava_arch.build_vision_tower, host_train.LazySupervisedDataset.__getitem__) == before


def test_qwen2_checkpoint_is_built_as_qwen2_in_every_layout(tiny_setup, tmp_path):
    dispatch = host_train.LlavaLlamaForCausalLM  # what the host's train() calls
    plain = dispatch.from_pretrained(str(tiny_setup["llm"]))
    assert isinstance(plain, LlavaQwen2ForCausalLM)
    reference = {k: v.clone() for k, v in plain.state_dict().items()}

    # VILA-style: the LLM in llm/ (as DeepMoLM / VILA release it)
    vila = tmp_path / "vila"
    (vila / "llm").mkdir(parents=True)
    for f in tiny_setup["llm"].iterdir():
        (vila / "llm" / f.name).write_bytes(f.read_bytes())
    (vila / "mm_projector").mkdir()
    assert isinstance(dispatch.from_pretrained(str(vila)), LlavaQwen2ForCausalLM)
    # VILA's releases also carry a top-level config.json (llava_llama with llm_cfg): it was
    # refused as "not Qwen2-family"
    (vila / "config.json").write_text(json.dumps({"model_type": "llava_llama", "llm_cfg": {"architectures": []},
                                                   "vision_tower_cfg": {}, "mm_projector_cfg": {}}))
    assert isinstance(dispatch.from_pretrained(str(vila)), LlavaQwen2ForCausalLM)

    # Official Qwen2-VL: language-model weights taken out of the VL checkpoint.
    vl = tmp_path / "qwen2vl"
    vl.mkdir()
    qwen_config = json.loads((tiny_setup["llm"] / "config.json").read_text())
    theta = qwen_config.pop("rope_parameters")["rope_theta"]
    # The official Qwen2-VL config.json layout: flat text fields, rope_theta, M-RoPE scaling.
    vl_config = {**qwen_config, "model_type": "qwen2_vl", "architectures": ["Qwen2VLForConditionalGeneration"],
                 "vision_config": {"depth": 1, "embed_dim": 16, "hidden_size": 64, "num_heads": 2},
                 "rope_theta": theta, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}}
    (vl / "config.json").write_text(json.dumps(vl_config))
    weights = {k: v for k, v in reference.items()}
    weights["visual.patch_embed.proj.weight"] = torch.zeros(16, 3, 2, 14, 14)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(vl / "model.safetensors"))
    from_vl = dispatch.from_pretrained(str(vl))
    assert isinstance(from_vl, LlavaQwen2ForCausalLM)
    for key, value in reference.items():
        torch.testing.assert_close(from_vl.state_dict()[key], value, rtol=0, atol=0, msg=key)
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(from_vl(input_ids=ids).logits, plain(input_ids=ids).logits)

    # The Qwen2-VL path checks as the Qwen2 path does (it loaded NaN weights, kept a
    # `module.` prefix as "missing", refused a dtype name, gave torch's bare shape error).
    from deepmolm_plugin.model.loading import load_llm

    assert load_llm(str(vl), dtype="bfloat16").dtype == torch.bfloat16
    save_file({f"module.{k}": v.contiguous() for k, v in weights.items()}, str(vl / "model.safetensors"))
    assert isinstance(load_llm(str(vl)), LlavaQwen2ForCausalLM)
    for edit, message in ((lambda w: w.__setitem__(key, torch.full_like(w[key], float("nan"))), "NaN/inf values"),
                          (lambda w: w.__setitem__(key, w[key][:3]), "of the wrong shape")):
        broken = dict(weights)
        key = "model.layers.0.mlp.up_proj.weight"
        edit(broken)
        save_file({k: v.contiguous() for k, v in broken.items()}, str(vl / "model.safetensors"))
        with pytest.raises(CheckpointError, match=message):
            load_llm(str(vl))


def test_a_qwen2_folder_whose_config_has_no_place_for_a_tensor_is_refused(tiny_setup, tmp_path):
    # was: a 2-layer checkpoint under a config.json saying 1 layer loaded as 1 layer (the
    # second dropped; transformers only printed a table)
    from deepmolm_plugin.model.loading import load_llm

    folder = tmp_path / "qwen2"
    folder.mkdir()
    for f in tiny_setup["llm"].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] -= 1
    config.pop("layer_types", None)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"holds \d+ tensors its config.json builds no place for .*"
                                              r"model\.layers\.1\."):
        load_llm(str(folder))
    # a pytorch_model.bin whose float weight is stored as integers was cast without a word
    config["num_hidden_layers"] += 1
    (folder / "config.json").write_text(json.dumps(config))
    state = load_file(str(folder / "model.safetensors"))
    state["model.norm.weight"] = torch.full_like(state["model.norm.weight"], 3, dtype=torch.int64)
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="stores 1 floating-point weights as integers or booleans: model.norm"):
        load_llm(str(folder))


def test_record_molecule_errors_name_the_record(tmp_path):
    from deepmolm_plugin.data.records import RecordError
    from deepmolm_plugin.molecule.inputs import InputResolver

    inputs = InputResolver(render_folder=str(tmp_path))
    with pytest.raises(RecordError, match="record 'r1'.*"):
        inputs.molecule_fp({"smiles": "C1CC"}, "r1")  # unclosed ring
    with pytest.raises(RecordError, match="record 'r2': molecule_fp has no valid token"):
        inputs.molecule_fp({"molecule_fp": [[-1, -1, -1, -1]]}, "r2")
    with pytest.raises(RecordError, match="record 'r3': .*outside"):
        inputs.molecule_fp({"molecule_fp": [[5000, 1, 2, 3]]}, "r3")
    with pytest.raises(RecordError, match="record 'r4': structure .* --structure_folder"):
        inputs.molecule_fp({"structure": "x.sdf"}, "r4")
    image = inputs.draw({"smiles": MOLECULES[0][0]}, "r/5")
    assert Path(image).parent == tmp_path and Path(image).is_file()


def test_rendered_depictions_are_keyed_by_molecule_not_record_id(tmp_path):
    from deepmolm_plugin.molecule.inputs import InputResolver

    inputs = InputResolver(render_folder=str(tmp_path))
    a = inputs.draw({"smiles": "CCO"}, "q1")
    b = inputs.draw({"smiles": "CCO"}, "q2")  # another question about the same molecule: the same file
    assert a == b and len(list(tmp_path.iterdir())) == 1
    c = inputs.draw({"smiles": "c1ccccc1"}, "q1")  # the same id about another molecule never reuses the first picture
    assert c != a
    assert Image.open(c).tobytes() == render_molecule("c1ccccc1").tobytes()


def test_tiles_mode_trains_and_saves_its_mode(tiny_setup, tmp_path):
    # Depictions are 1024 px, the tiny tiles 64 px: every image gets a 2x2 grid of local
    # tiles next to its global view, and the projector lays both out for the LLM.
    out = tmp_path / "tiles"
    run_module("deepmolm_plugin.train",
               train_args(tiny_setup, out, "--mm_projector", "fusion", "--image_mode", "tiles", steps=2), cwd=tmp_path)
    assert json.loads((out / "config.json").read_text())["image_mode"] == "tiles"
    assert len(losses(out)) == 2
    tokenizer, model, processor, _ = load_pretrained_model(str(out), None, "x", device="cpu")
    assert processor.mode == "tiles"
    # 2x2 tiles of 1x1 tokens -> mosaic 2 rows of (2 + newline), global 2 rows of (2 + newline), separator
    assert processor.num_llm_positions((1024, 1024)) == 2 * 3 + 2 * 3 + 1


def test_host_dataset_and_collator_carry_molecule_fp_and_tiles(tiny_setup, tmp_path):
    from llava import conversation as conversation_lib
    from transformers import AutoTokenizer

    from conftest import tiny_encoder_config
    from deepmolm_plugin.encoder import DeepEncoderImageProcessor

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_setup["llm"]))
    previous = conversation_lib.default_conversation
    conversation_lib.default_conversation = conv_templates["qwen2"]
    try:
        data_args = host_train.DataArguments(
            data_path=str(tiny_setup["data"]), lazy_preprocess=True, is_multimodal=True, image_aspect_ratio="pad",
            structure_folder=str(tiny_setup["structures"]), render_folder=str(tmp_path / "renders"))
        data_args.image_processor = DeepEncoderImageProcessor.from_config(tiny_encoder_config(), mode="tiles")
        data_args.mm_use_im_start_end = False
        dataset = host_train.LazySupervisedDataset(str(tiny_setup["data"]), tokenizer, data_args)
        items = [dataset[0], dataset[1]]  # ethanol (smiles), benzene (structure file)
        expected = [fingerprint_record(molecule_from_smiles("CCO"))]
        assert torch.equal(items[0]["molecule_fp"], expected[0])
        assert items[0]["tile_images"].shape == (4, 3, 64, 64) and items[0]["tile_grid"] == (2, 2)
        batch = host_train.DataCollatorForSupervisedDataset(tokenizer=tokenizer)(items)
        fp = batch["molecule_fp"]
        assert fp.shape == (2, 6, 4)  # benzene has 6 heavy atoms, ethanol 3
        assert (fp[0, 3:] == -1).all() and torch.equal(fp[0, :3], expected[0])
        assert batch["images"].shape == (2, 3, 128, 128) and len(batch["tile_images"]) == 2
        assert batch["tile_grids"] == [(2, 2), (2, 2)]
    finally:
        conversation_lib.default_conversation = previous


def test_periodic_checkpoints_save_and_reload(tiny_setup, tmp_path):
    # transformers 5 dropped `metrics` from Trainer._save_checkpoint; the host passed it on,
    # so the first periodic save of a full model raised TypeError (patches.trainer_api).
    out = tmp_path / "periodic"
    args = train_args(tiny_setup, out, "--mm_projector", "fusion", steps=4)
    args[args.index("--save_strategy") + 1] = "steps"
    run_module("deepmolm_plugin.train", args + ["--save_steps", "2", "--save_only_model", "True"], cwd=tmp_path)
    first, last = out / "checkpoint-2", out / "checkpoint-4"
    assert (first / "model.safetensors").is_file() and (last / "model.safetensors").is_file()
    tokenizer, model, processor, _ = load_pretrained_model(str(first), None, "x", device="cpu")
    assert isinstance(model, LlavaQwen2ForCausalLM)
    key = "model.mm_projector.image_proj.weight"
    assert torch.equal(model.state_dict()[key], load_file(str(first / "model.safetensors"))[key].to(model.dtype))
    assert not torch.equal(load_file(str(first / "model.safetensors"))[key], load_file(str(last / "model.safetensors"))[key])

    # A run killed after its first checkpoint resumes with the same command: the launcher's
    # checks (language model, tokenizer as the host saved it, files) refuse nothing legitimate.
    resumed = tmp_path / "resumed"
    args = train_args(tiny_setup, resumed, "--mm_projector", "fusion", steps=2)
    args[args.index("--save_strategy") + 1] = "steps"
    run_module("deepmolm_plugin.train", args + ["--save_steps", "2"], cwd=tmp_path)
    for name in ("model.safetensors", "config.json"):  # as if killed before the final save
        (resumed / name).unlink()
    args[args.index("--max_steps") + 1] = "3"
    done = run_module("deepmolm_plugin.train", args + ["--save_steps", "2"], cwd=tmp_path)
    assert f"resuming {resumed / 'checkpoint-2'}" in done.stderr
    assert json.loads((resumed / "trainer_state.json").read_text())["global_step"] == 3
    # ... and only with the settings it started with (its optimizer.pt would replace a new rate)
    assert json.loads((resumed / "deepmolm_resume.json").read_text())["settings"]["learning_rate"] == 2e-3
    args[args.index("--learning_rate") + 1] = "1e-4"
    (resumed / "model.safetensors").unlink()
    refused = run_module("deepmolm_plugin.train", args + ["--save_steps", "2"], cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "--learning_rate 0.0001 (the run: 0.002)" in refused.stderr

    # Stage 1 (adapter only) keeps the host's own periodic save: mm_projector.bin per checkpoint.
    stage1 = tmp_path / "stage1-periodic"
    args = train_args(tiny_setup, stage1, "--mm_projector", "fusion", "--tune_mm_mlp_adapter", "True", steps=2)
    args[args.index("--save_strategy") + 1] = "steps"
    run_module("deepmolm_plugin.train", args + ["--save_steps", "2"], cwd=tmp_path)
    assert (stage1 / "checkpoint-2" / "mm_projector.bin").is_file()


def _host_dataset(data_path, tmp_path, tiny_setup):
    from llava import conversation as conversation_lib
    from transformers import AutoTokenizer

    from conftest import tiny_encoder_config
    from deepmolm_plugin.encoder import DeepEncoderImageProcessor

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_setup["llm"]))
    data_args = host_train.DataArguments(
        data_path=str(data_path), lazy_preprocess=True, is_multimodal=True, image_aspect_ratio="pad",
        structure_folder=str(tiny_setup["structures"]), render_folder=str(tmp_path / "renders"))
    data_args.image_processor = DeepEncoderImageProcessor.from_config(tiny_encoder_config())
    data_args.mm_use_im_start_end = False
    previous = conversation_lib.default_conversation
    conversation_lib.default_conversation = conv_templates["qwen2"]
    try:
        return host_train.LazySupervisedDataset(str(data_path), tokenizer, data_args)
    finally:
        conversation_lib.default_conversation = previous


def test_duplicate_record_ids_are_an_error_naming_them(tiny_setup, tmp_path):
    records = [dict(r) for r in tiny_setup["records"]]
    records[2]["id"] = records[0]["id"]
    data = tmp_path / "dup.json"
    data.write_text(json.dumps(records))
    with pytest.raises(ValueError, match="used more than once: 'mol0'"):
        _host_dataset(data, tmp_path, tiny_setup)


def test_training_data_takes_fp_settings_from_the_model_config(tiny_setup, tmp_path):
    from patches.molecule_data import use_model_molecule_settings

    dataset = _host_dataset(tiny_setup["data"], tmp_path, tiny_setup)
    config = SimpleNamespace(fp_bits=1024, fp_levels=3)
    use_model_molecule_settings(dataset, config)
    assert (config.conformer_policy, config.render_size) == ("auto", 1024)  # saved with the model
    tokens = dataset[0]["molecule_fp"]
    expected = fingerprint_record(molecule_from_smiles("CCO"), FingerprintSettings(bits=1024, levels=3))
    assert tokens.shape[1] == 3 and torch.equal(tokens, expected)

    # A prepared dataset records its settings; other settings in the model are an error at start.
    (tmp_path / "prepared").mkdir()
    data = tmp_path / "prepared" / "train.json"
    data.write_text(json.dumps(tiny_setup["records"]))
    (tmp_path / "prepared" / "manifest.json").write_text(json.dumps({"settings": {"fp_bits": 4096, "fp_levels": 4}}))
    prepared = _host_dataset(data, tmp_path, tiny_setup)
    with pytest.raises(ValueError, match="prepared with fp_bits=4096, fp_levels=4 but the model uses fp_bits=1024"):
        use_model_molecule_settings(prepared, SimpleNamespace(fp_bits=1024, fp_levels=4))
    use_model_molecule_settings(prepared, SimpleNamespace(fp_bits=4096, fp_levels=4))  # agreeing settings: fine


def test_prepared_data_gives_training_and_the_model_its_policy_and_depiction_size(tiny_setup, tmp_path):
    """Was: a dataset prepared with another conformer policy trained beside tokens made with
    --conformer_policy, its records without an image were drawn at 1024 beside 512 px
    prepared images, and the saved model said neither: chat, eval and the GUI used auto and
    1024 whatever training saw."""
    from PIL import Image

    from patches.molecule_data import use_model_molecule_settings

    (tmp_path / "prepared").mkdir()
    data = tmp_path / "prepared" / "train.json"
    records = [dict(r) for r in tiny_setup["records"]]
    for r in records:
        r.pop("image", None)  # every record drawn at start-up
    data.write_text(json.dumps(records))
    manifest = tmp_path / "prepared" / "manifest.json"
    manifest.write_text(json.dumps({"settings": {"conformer_policy": "generate", "image_size": 512}}))
    with pytest.raises(ValueError, match="prepared with conformer_policy=generate but this run uses "
                                         "--conformer_policy auto"):
        _host_dataset(data, tmp_path, tiny_setup)
    manifest.write_text(json.dumps({"settings": {"conformer_policy": "auto", "image_size": 512}}))
    dataset = _host_dataset(data, tmp_path, tiny_setup)
    drawn = {r["image"] for r in dataset.list_data_dict if r.get("image")}
    assert drawn and all(Image.open(path).size == (512, 512) for path in drawn)
    config = SimpleNamespace(fp_bits=4096, fp_levels=4)
    use_model_molecule_settings(dataset, config)
    assert (config.conformer_policy, config.render_size) == ("auto", 512)


def test_training_with_other_fp_bits_hashes_with_them(tiny_setup, tmp_path):
    # Before: the dataset hashed with 4096 bits whatever --fp_bits said, and the projector
    # (built with the model's 1024) refused the tokens.
    out = tmp_path / "bits1024"
    run_module("deepmolm_plugin.train", train_args(tiny_setup, out, "--mm_projector", "fusion", "--fp_bits", "1024",
                                                   steps=1), cwd=tmp_path)
    assert json.loads((out / "config.json").read_text())["fp_bits"] == 1024
