"""Training launcher, third hostile sweep: option values, repeated options, options for
another tower or projector, resuming with other settings, and records whose SMILES, structure
or property names disagree (in-process, no model is loaded).

Before, each case was accepted and ignored, trained on something else than it said, or failed
after the model had loaded, far from its cause.
"""

import json
import os

import pytest
import torch
from transformers import PretrainedConfig
from rdkit import Chem
from rdkit.Chem import AllChem

import deepmolm_plugin
from test_hostile_training import dataset, tokenizer, turns, white_png  # noqa: F401  (fixtures)

deepmolm_plugin.register()

import llava.train.train as host_train  # noqa: E402  (after register: patched host)

from deepmolm_plugin import usage  # noqa: E402
from deepmolm_plugin.data.records import RecordError  # noqa: E402
from deepmolm_plugin.train import main  # noqa: E402
from deepmolm_plugin.training.arguments import check_argument_values  # noqa: E402

DEEPMOLM = ["--vision_tower", "deepencoder", "--mm_projector", "fusion"]


def checked(tmp_path, *extra):
    check_argument_values(host_train, ["--output_dir", str(tmp_path / "out"), "--data_path", "x.json", *extra])


# --- option values -----------------------------------------------------------------------

@pytest.mark.parametrize("option, value, reason", [
    ("learning_rate", "nan", "finite number >= 0"),  # was: trained to NaN weights
    ("learning_rate", "inf", "finite number >= 0"),
    ("learning_rate", "-0.001", "finite number >= 0"),
    ("weight_decay", "nan", "finite number >= 0"),
    ("max_grad_norm", "nan", "finite number >= 0"),  # was: NaN gradients after clipping
    ("gradient_accumulation_steps", "0", ">= 1"),  # was: accepted, failed in the Trainer
    ("num_train_epochs", "0", "> 0"),  # was: 0 steps, an untrained model saved
    ("max_steps", "0", "must be >= 1"),  # was: one step at learning rate 0, the untrained model saved, exit 0
    ("max_steps", "-5", "must be >= 1"),  # was: the epochs trained without a word
    ("per_device_train_batch_size", "0", ">= 1"),
    ("model_max_length", "1", ">= 2"),  # was: every record refused at its step
    ("aux_property_weight", "nan", "finite number >= 0"),  # was: NaN passed `< 0`
    ("aux_property_weight", "inf", "finite number >= 0"),
    ("conformer_policy", "gen", "must be one of auto, from-file"),  # was: failed at the first record read
    ("fp_bits", "1099511627776", "bits <= 4294967296"),  # was: passed `>= 1`, failed allocating the table
    ("fp_levels", "99", "levels <= 64"),
])
def test_option_values_out_of_range_are_refused_before_the_model_loads(tmp_path, option, value, reason):
    with pytest.raises(usage.UsageError, match=f"--{option} .*{reason}.*|--{option} must be one of"):
        checked(tmp_path, *DEEPMOLM, f"--{option}", value)


@pytest.mark.parametrize("extra, reason", [
    # was: exit 0, the model loaded unquantised and every LLM weight frozen (only the projector trained)
    (["--bits", "4"], "--bits 4: quantised training is not supported"),
    (["--bits", "8"], "--bits 8: quantised training is not supported"),
    # was: trained, then saved an adapter that chat, eval and training here could not load
    (["--lora_enable", "True"], "--lora_enable: the run would save only its LoRA adapter"),
])
def test_training_modes_whose_output_cannot_be_served_are_refused(tmp_path, extra, reason):
    with pytest.raises(usage.UsageError, match=reason):
        checked(tmp_path, *DEEPMOLM, *extra)
    checked(tmp_path, *DEEPMOLM, "--bits", "16", "--lora_enable", "False")  # the defaults, spelled out


@pytest.mark.parametrize("content, reason", [
    (None, "is a folder, not a file"),  # was: IsADirectoryError from accelerate
    ("[1, 2]", "holds a JSON list, not DeepSpeed's config object"),  # was: 'list' object has no attribute 'get'
    ('{"a": 1,\n}', r"not JSON \(Expecting property name"),  # was: the JSON message alone, naming no file
    ("", "the file is empty"),
])
def test_a_deepspeed_config_that_is_no_json_object_is_refused(tmp_path, content, reason):
    from deepmolm_plugin.training.deepspeed_config import check_deepspeed_config

    path = tmp_path / "ds.json"
    if content is None:
        path.mkdir()
    else:
        path.write_text(content)
    with pytest.raises(usage.UsageError, match=f"--deepspeed {path}.*{reason}"):
        check_deepspeed_config(str(path))


def test_deepspeed_without_a_launcher_gets_a_one_process_group():
    """`python -m deepmolm_plugin.train --deepspeed ...` (no torchrun): DeepSpeed looked for
    MPI and stopped ("No module named 'mpi4py'"); a launcher's variables are kept."""
    from deepmolm_plugin.training.distributed import single_process_environment

    env = {}
    single_process_environment(["--deepspeed", "scripts/zero2.json"], env)
    assert {k: env[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR")} == {
        "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    assert 0 < int(env["MASTER_PORT"]) < 65536
    launched = {"RANK": "1", "WORLD_SIZE": "2"}
    single_process_environment(["--deepspeed", "scripts/zero2.json"], launched)
    assert launched == {"RANK": "1", "WORLD_SIZE": "2"}
    plain = {}
    single_process_environment(["--output_dir", "x"], plain)
    assert plain == {}


@pytest.mark.parametrize("files, reason", [
    (["adapter_config.json", "adapter_model.safetensors", "non_lora_trainables.bin"], "a LoRA adapter folder"),
    (["mm_projector.bin"], "a stage-1 projector folder"),  # was: "no usable tokenizer" in chat and eval
])
def test_a_training_output_that_is_only_part_of_a_model_is_named_as_such(tmp_path, files, reason):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    for name in files:
        (folder / name).write_bytes(b"x")
    with pytest.raises(usage.UsageError, match=f"--model-path {folder}: {reason}"):
        usage.model_folder(str(folder), "--model-path")
    (folder / "model.safetensors").write_bytes(b"x")  # a full model saved beside them: loaded as before
    usage.model_folder(str(folder), "--model-path")


def test_sane_values_and_max_steps_pass_and_the_arguments_class_checks_too(tmp_path):
    checked(tmp_path, *DEEPMOLM, "--learning_rate", "0", "--conformer_policy", "generate")  # 0: weights kept
    checked(tmp_path, *DEEPMOLM, "--num_train_epochs", "0", "--max_steps", "3")  # steps override epochs
    # the host's own parse (inside train()) refuses them as well
    with pytest.raises(ValueError, match="--learning_rate must be a finite number"):
        host_train.TrainingArguments(output_dir=str(tmp_path / "out"), learning_rate=float("nan"), report_to="none")


def test_launcher_prints_one_line_and_exits_2(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    data = tmp_path / "train.json"
    data.write_text(json.dumps([{"id": "a", "smiles": "CCO", "conversations": turns()}]))
    with pytest.raises(SystemExit) as exit_:
        main(["--data_path", str(data), "--model_name_or_path", str(model), "--version", "qwen2",
              "--output_dir", str(tmp_path / "out"), "--gradient_accumulation_steps", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "error: --gradient_accumulation_steps must be a whole number >= 1, got 0" in err


# --- options given twice, options for another tower or projector ----------------------------

def test_aux_property_settings_without_the_task_are_refused(tmp_path):
    # was: saved in the config and never read, no head built, without a word
    with pytest.raises(usage.UsageError, match="--aux_properties and --aux_property_weight: settings of "
                                               "--aux_property_task kflm2, which is not given"):
        checked(tmp_path, *DEEPMOLM, "--aux_properties", "LogP", "--aux_property_weight", "0.5")
    with pytest.raises(usage.UsageError, match="--aux_properties names a property twice"):
        checked(tmp_path, *DEEPMOLM, "--aux_property_task", "kflm2", "--aux_properties", "LogP,MW,LogP")
    checked(tmp_path, *DEEPMOLM, "--aux_property_task", "kflm2", "--aux_properties", "LogP,MW")


def test_a_model_option_given_twice_with_two_values_is_refused(tmp_path):
    # was: argparse kept the last value silently (--fp_bits 4096 trained after --fp_bits 2048)
    with pytest.raises(usage.UsageError, match="--fp_bits is given twice, with '2048' and then --fp-bits '4096'"):
        checked(tmp_path, *DEEPMOLM, "--fp_bits", "2048", "--fp-bits", "4096")
    with pytest.raises(usage.UsageError, match="--image_mode is given twice"):
        checked(tmp_path, *DEEPMOLM, "--image_mode=tiles", "--image_mode", "base")
    checked(tmp_path, *DEEPMOLM, "--fp_bits", "2048", "--fp_bits=2048")  # the same value twice is harmless
    checked(tmp_path, *DEEPMOLM, "--learning_rate", "1e-4", "--learning_rate", "0")  # a training override


@pytest.mark.parametrize("extra, reason", [
    # was: accepted, saved in the config and ignored (a CLIP tower trained without tiles)
    (["--image_mode", "tiles"], "--image_mode is a setting of --vision_tower deepencoder"),
    (["--vision_tower_weights", "random"], "--vision_tower_weights is a setting"),
    (["--unfreeze_mm_vision_tower", "True"], "--unfreeze_mm_vision_tower is a setting"),
])
def test_deepencoder_options_with_another_tower_are_refused(tmp_path, extra, reason):
    clip = ["--vision_tower", "openai/clip-vit-large-patch14", "--mm_projector", "mlp2x_gelu"]
    with pytest.raises(usage.UsageError, match=reason):
        checked(tmp_path, *clip, *extra)
    checked(tmp_path, *clip)  # defaults stay fine


def test_projector_options_another_projector_ignores_are_refused(tmp_path):
    # was: accepted without a word, saved in the config and ignored
    with pytest.raises(usage.UsageError) as error:
        checked(tmp_path, "--vision_tower", "deepencoder", "--mm_projector", "linear", "--fusion_heads", "4",
                "--fp_bits", "2048")
    assert "--fusion_heads 4 is ignored: only the fusion projector(s) read it, and the projector is linear" in str(
        error.value)
    assert "--fp_bits 2048 is ignored: only the fusion and concat projector(s)" in str(error.value)
    checked(tmp_path, "--vision_tower", "deepencoder", "--mm_projector", "concat", "--fp_bits", "2048")


# --- resuming an output_dir ---------------------------------------------------------------

def resumable(checkpoint, config: dict):
    """A checkpoint-N folder with the files the host reads back when it resumes: config,
    trainer state, model weights (a readable safetensors file), optimizer and schedule."""
    from safetensors.torch import save_file

    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text(json.dumps(config))
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 5, "train_batch_size": 8}))
    save_file({"w": torch.zeros(2)}, str(checkpoint / "model.safetensors"))
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({}, checkpoint / name)
    return checkpoint


def test_resuming_a_checkpoint_made_with_other_settings_is_refused(tmp_path):
    # was: the host resumed checkpoint-N whatever the settings: --image_mode / --fp_levels
    # silently, --fp_bits with a size-mismatch traceback after the model loaded
    saved = {"mm_vision_tower": "deepencoder", "mm_projector_type": "fusion", "fp_bits": 4096, "fp_levels": 4,
             "image_mode": "base", "fusion_heads": 8}
    resumable(tmp_path / "out" / "checkpoint-5", saved)
    checked(tmp_path, *DEEPMOLM)  # the same settings resume
    with pytest.raises(usage.UsageError, match=r"holds checkpoint-5, .*--fp_bits 2048 \(the checkpoint: 4096\); "
                                               r"--image_mode 'tiles' \(the checkpoint: 'base'\)"):
        checked(tmp_path, *DEEPMOLM, "--fp_bits", "2048", "--image_mode", "tiles")
    with pytest.raises(usage.UsageError, match="--mm_projector_type 'concat' .*'fusion'"):
        checked(tmp_path, "--vision_tower", "deepencoder", "--mm_projector", "concat")


def test_resuming_with_another_tower_network_is_refused(tmp_path):
    # was: resumed, the saved tower weights then ran with 4 CLIP heads instead of 2
    from deepmolm_plugin.encoder.presets import encoder_config

    tiny = encoder_config("tiny")
    resumable(tmp_path / "out" / "checkpoint-2", {"mm_vision_tower": "deepencoder",
                                                   "deepencoder_config": tiny.to_dict()})
    checked(tmp_path, *DEEPMOLM, "--deepencoder_config", "tiny")
    other = tmp_path / "enc.json"
    other.write_text(json.dumps({**tiny.to_dict(), "clip_heads": tiny.clip_heads * 2, "dtype": "bfloat16"}))
    with pytest.raises(usage.UsageError, match=rf"--deepencoder_config clip_heads={tiny.clip_heads * 2} \(the "
                                               rf"checkpoint: {tiny.clip_heads}\); give its settings"):
        checked(tmp_path, *DEEPMOLM, "--deepencoder_config", str(other))  # dtype is no network field


@pytest.mark.parametrize("layout, message", [
    ({"checkpoint-best": None}, r"holds checkpoint-best, so the host resumes, but no checkpoint-<step> folder"),
    # a stage-1 (--tune_mm_mlp_adapter) checkpoint holds no Trainer state; an empty checkpoint-4
    # or one with config.json alone is a save cut short, set aside now
    # (tests/test_training_interrupted_save.py)
    ({"checkpoint-4": "mm_projector.bin"},
     r"would resume checkpoint-4, which has no trainer_state.json or config.json \(a --tune_mm_mlp_adapter"),
    ({"checkpoint-4": "trainer_state.json"},
     r"would resume checkpoint-4, which has no config.json \(a save that did not finish, or a damaged copy\)"),
])
def test_a_checkpoint_the_host_cannot_resume_is_one_line_before_loading(tmp_path, layout, message):
    # was: transformers' "Can't find a valid checkpoint" traceback after the model had loaded
    for folder, file in layout.items():
        (tmp_path / "out" / folder).mkdir(parents=True)
        if file:
            (tmp_path / "out" / folder / file).write_text("{}")
    with pytest.raises(usage.UsageError, match=message):
        checked(tmp_path, *DEEPMOLM)


@pytest.mark.parametrize("damage, message", [
    (lambda c: (c / "model.safetensors").unlink(), r"model weights are missing \(none of model.safetensors.index"),
    (lambda c: (c / "trainer_state.json").write_text(""), "trainer_state.json is not readable JSON"),
    # valid JSON but not the Trainer's state: TypeErrors inside transformers after the model had loaded
    (lambda c: (c / "trainer_state.json").write_text("{}"), "trainer_state.json holds global_step None, not a step"),
    (lambda c: (c / "trainer_state.json").write_text('{"global_step": "x", "train_batch_size": 8}'),
     "trainer_state.json holds global_step 'x', not a step count"),
    (lambda c: (c / "trainer_state.json").write_text('{"foo": 1}'),
     r"trainer_state.json is not the Trainer's state \(.*unexpected keyword argument 'foo'"),
    (lambda c: (c / "trainer_state.json").write_text('{"global_step": 5, "train_batch_size": 0}'),
     "trainer_state.json holds train_batch_size 0, not a batch size"),
    (lambda c: os.truncate(c / "model.safetensors", 20), "model weights cannot be read: "),
    (lambda c: os.truncate(c / "optimizer.pt", 30), r"optimizer.pt is not a readable PyTorch file \(truncated"),
    (lambda c: (c / "scheduler.pt").unlink(), "scheduler.pt is missing: the run would go on with a fresh optimizer"),
])
def test_a_checkpoint_whose_files_are_missing_or_damaged_is_one_line_before_loading(tmp_path, damage, message):
    """was: tracebacks after the model had loaded (Can't find a valid checkpoint,
    JSONDecodeError, SafetensorError, a zip error), or, without optimizer.pt or scheduler.pt,
    a resumed run with a fresh optimizer and schedule, exit 0."""
    checkpoint = resumable(tmp_path / "out" / "checkpoint-2", {"mm_vision_tower": "deepencoder"})
    checked(tmp_path, *DEEPMOLM)  # whole: resumed
    damage(checkpoint)
    with pytest.raises(usage.UsageError, match=rf"the host would resume checkpoint-2, whose {message}"):
        checked(tmp_path, *DEEPMOLM)


@pytest.mark.parametrize("option", ["--vision_feature_cache", "--render_folder", "--output_dir"])
def test_a_folder_that_cannot_be_created_is_refused_before_loading(tmp_path, option):
    # was: access() said writable (root) and mkdir then failed in /proc: a traceback after the
    # model had loaded. (As another user /proc is "not writable", the earlier check.)
    args = ["--data_path", "x.json"] + ([] if option == "--output_dir" else ["--output_dir", str(tmp_path / "out")])
    with pytest.raises(usage.UsageError, match=rf"{option} /proc/deepmolm_x/y: (cannot be created|/proc is not "
                                               "writable)"):
        check_argument_values(host_train, [*args, *DEEPMOLM, option, "/proc/deepmolm_x/y"])
    assert not os.path.exists("/proc/deepmolm_x")


def test_a_render_folder_that_is_a_file_is_refused(tmp_path):
    # was: NotADirectoryError when the dataset drew its first depiction, after the model loaded
    (tmp_path / "renders").write_text("")
    with pytest.raises(usage.UsageError, match="--render_folder .*renders: is a file, not a folder"):
        checked(tmp_path, *DEEPMOLM, "--render_folder", str(tmp_path / "renders"))


def test_an_empty_or_read_only_feature_cache_folder_is_refused(tmp_path, monkeypatch):
    # was: "" trained without a cache, without a word; a read-only folder was a traceback
    # after the model loaded (the first store)
    with pytest.raises(usage.UsageError, match="--vision_feature_cache: the folder name is empty"):
        checked(tmp_path, *DEEPMOLM, "--vision_feature_cache", "")
    shared = tmp_path / "shared"
    shared.mkdir()
    real_access = usage.os.access
    monkeypatch.setattr(usage.os, "access", lambda p, mode: False if str(p) == str(shared) else real_access(p, mode))
    with pytest.raises(usage.UsageError, match=f"--vision_feature_cache {shared}/cache: {shared} is not writable"):
        checked(tmp_path, *DEEPMOLM, "--vision_feature_cache", str(shared / "cache"))


def test_a_feature_cache_link_to_nothing_is_refused_before_loading(tmp_path):
    # was accepted ("does not exist"), then the tower failed after the model had loaded,
    # with a traceback ending "cannot create the folder (File exists)"; a loop alike
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for name, inside in (("dangling", ""), ("loop", ""), ("dangling", "/sub")):
        value = f"{tmp_path / name}{inside}"
        where = f"{tmp_path / name} " if inside else ""
        with pytest.raises(usage.UsageError, match=f"--vision_feature_cache {value}: {where}is a symbolic link to "):
            checked(tmp_path, *DEEPMOLM, "--vision_feature_cache", value)
    from deepmolm_plugin.encoder.feature_cache import FeatureCache

    with pytest.raises(ValueError, match="feature cache .*dangling: is a symbolic link to .*gone, which does not exist"):
        FeatureCache(tmp_path / "dangling")
    (tmp_path / "gone").mkdir()  # a link to a real folder is a folder
    assert FeatureCache(tmp_path / "dangling").root == tmp_path / "dangling"


# --- records ------------------------------------------------------------------------------

def benzene_sdf(tmp_path):
    mol = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    path = tmp_path / "benzene.sdf"
    path.write_text(Chem.MolToMolBlock(mol) + "$$$$\n")
    return str(path)


def test_a_smiles_that_is_not_the_structure_is_refused(tmp_path, tokenizer):  # noqa: F811
    # was: benzene's tokens from the structure next to a depiction of ethanol drawn from the SMILES
    sdf = benzene_sdf(tmp_path)
    ds = dataset(tmp_path, tokenizer, [{"id": "mixed", "smiles": "CCO", "structure": sdf, "conversations": turns()},
                                       {"id": "same", "smiles": "C1=CC=CC=C1", "structure": sdf,
                                        "conversations": turns()}])
    with pytest.raises(RecordError, match="record 'mixed': its structure .*benzene.sdf#0.* is 'c1ccccc1' but its "
                                          "SMILES is 'CCO'"):
        ds[0]
    assert ds[1]["molecule_fp"].shape == (6, 4)  # a Kekulé spelling of the same molecule passes


def test_tokens_of_another_molecule_than_the_structure_are_refused(tmp_path, tokenizer):  # noqa: F811
    # was: without a SMILES, benzene's depiction (from the structure) next to ethanol's tokens
    from deepmolm_plugin.molecule.inputs import InputResolver

    sdf = benzene_sdf(tmp_path)
    benzene = InputResolver().molecule_fp({"structure": sdf}, "benzene").tolist()
    ethanol = InputResolver().molecule_fp({"smiles": "CCO"}, "ethanol").tolist()
    cyclohexane = InputResolver().molecule_fp({"smiles": "C1CCCCC1"}, "cyclohexane").tolist()
    ds = dataset(tmp_path, tokenizer, [{"id": "mixed", "structure": sdf, "molecule_fp": ethanol,
                                        "conversations": turns()},
                                       {"id": "same", "structure": sdf, "molecule_fp": benzene,
                                        "conversations": turns()},
                                       {"id": "as many atoms", "structure": sdf, "molecule_fp": cyclohexane,
                                        "conversations": turns()}])
    with pytest.raises(RecordError, match="record 'mixed': molecule_fp has 3 atom rows but its structure "
                                          r"\(.*benzene.sdf#0.*\) has 6 heavy atoms"):
        ds[0]
    assert ds[1]["molecule_fp"].tolist() == benzene
    # was: only the row count was compared, so another molecule of 6 heavy atoms passed
    with pytest.raises(RecordError, match="record 'as many atoms': molecule_fp's level-0 tokens .* are not those of "
                                          r"its structure \(.*benzene.sdf#0\): 6 of 6 rows differ"):
        ds[2]


def test_property_names_that_differ_only_in_case_are_refused(tmp_path, tokenizer):  # noqa: F811
    # was: two properties, so --aux_properties logP treated the LogP records as unmeasured
    records = [{"id": "a", "smiles": "CCO", "conversations": turns(), "properties": {"logP": 1.0}},
               {"id": "b", "smiles": "CC", "conversations": turns(), "properties": {"LogP ": 2.0}}]
    with pytest.raises(ValueError, match=r"property names 'logP' \(record 'a'\) and 'LogP ' \(record 'b'\) differ "
                                         "only in case or spaces"):
        dataset(tmp_path, tokenizer, records)
    records[1]["properties"] = {"logP": 2.0, "logS": 1.0}
    assert dataset(tmp_path, tokenizer, records)[1]["properties"] == {"logP": 2.0, "logS": 1.0}


def test_properties_are_read_only_for_a_model_with_the_property_head(tmp_path, tokenizer):  # noqa: F811
    # was: a record with properties and only inline tokens stopped the run at its step ("no
    # smiles or structure to build the molecular graph"), with no property head to read them
    from types import SimpleNamespace

    from deepmolm_plugin.patches.molecule_data import require_graphs
    from deepmolm_plugin.usage import DataError

    records = [{"id": "tokens-only", "image": white_png(tmp_path), "molecule_fp": [[1, 2, 3, 4]] * 3,
                "conversations": turns(), "properties": {"LogP": 1.0}},
               {"id": "ok", "smiles": "CCO", "conversations": turns(), "properties": {"LogP": 2.0}}]
    ds = dataset(tmp_path, tokenizer, records)
    without_head = SimpleNamespace(get_model=lambda: SimpleNamespace(optional_head=None))
    require_graphs(ds, without_head)
    assert "properties" not in ds[0] and "graph" not in ds[1]
    with_head = SimpleNamespace(get_model=lambda: SimpleNamespace(optional_head=object()))
    with pytest.raises(DataError, match=r"records 'tokens-only' have `properties` but no `smiles`, `structure` or "
                                        "`atoms`"):
        require_graphs(ds, with_head)  # before the first step, not at the record's
    require_graphs(dataset(tmp_path, tokenizer, records[1:]), with_head)


# --- a run's trainable set, tokens and template; saved models and stage-1 adapters -------------

def test_resuming_with_another_trainable_set_tokens_or_template_is_refused(tmp_path):
    # was: an optimizer-state traceback (--unfreeze_mm_vision_tower, --tune_mm_mlp_adapter), an
    # embedding size mismatch (--mm_use_im_start_end) after the model loaded, or a silent switch
    # of template (--version plain)
    resumable(tmp_path / "out" / "checkpoint-2", {
        "mm_vision_tower": "deepencoder", "tune_mm_mlp_adapter": False, "mm_use_im_start_end": False,
        "deepmolm_run": {"version": "qwen2", "unfreeze_mm_vision_tower": False}})
    checked(tmp_path, *DEEPMOLM, "--version", "qwen2")
    for extra, message in ((["--unfreeze_mm_vision_tower", "True"], r"--unfreeze_mm_vision_tower True \(the "
                                                                      r"checkpoint: False\)"),
                           (["--tune_mm_mlp_adapter", "True"], r"--tune_mm_mlp_adapter True \(the checkpoint: False\)"),
                           (["--mm_use_im_start_end", "True"], r"--mm_use_im_start_end True"),
                           ([], r"--version 'v0' \(the checkpoint: 'qwen2'\)")):
        with pytest.raises(usage.UsageError, match=r"holds checkpoint-2, .*" + message):
            checked(tmp_path, *DEEPMOLM, *([] if not extra else ["--version", "qwen2"]), *extra)


def saved_model(folder, **settings):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"mm_vision_tower": "deepencoder", "mm_projector_type": "fusion",
                                                    "fp_bits": 4096, "fp_levels": 4, "fusion_heads": 2,
                                                    "image_mode": "base", "vision_tower_weights": "random",
                                                    **settings}))
    return folder


def test_training_from_a_saved_model_with_other_network_settings_is_refused(tmp_path):
    # was: the host kept the checkpoint's projector and tower, and the new config said
    # --fusion_heads 4 (reloaded to other outputs), linear or --fp_bits 1024 (could not load)
    model = saved_model(tmp_path / "stage2")
    base = [*DEEPMOLM, "--model_name_or_path", str(model), "--fusion_heads", "2"]
    checked(tmp_path, *base)  # its own settings: fine
    with pytest.raises(usage.UsageError, match=r"stage2 is a saved multimodal model .*--fp_bits 1024 \(the "
                                               r"checkpoint: 4096\); --fusion_heads 4 \(the checkpoint: 2\)"):
        checked(tmp_path, *DEEPMOLM, "--model_name_or_path", str(model), "--fusion_heads", "4", "--fp_bits", "1024")
    with pytest.raises(usage.UsageError, match=r"--vision_tower_weights '.*enc' \(the checkpoint's own tower"):
        checked(tmp_path, *base, "--vision_tower_weights", str(tmp_path / "enc"))
    # its tower network: compared when --deepencoder_config is given; left out, the saved tower is kept as it is
    from deepmolm_plugin.encoder.presets import encoder_config

    tiny = saved_model(tmp_path / "tiny_model", deepencoder_config=encoder_config("tiny").to_dict())
    checked(tmp_path, *DEEPMOLM, "--model_name_or_path", str(tiny), "--fusion_heads", "2")
    with pytest.raises(usage.UsageError, match=r"--deepencoder_config image_size=1024 \(the checkpoint: "):
        checked(tmp_path, *DEEPMOLM, "--model_name_or_path", str(tiny), "--fusion_heads", "2",
                "--deepencoder_config", "deepseek-ocr")


def test_a_stage1_adapter_trained_with_other_projector_settings_is_refused(tmp_path):
    # was: a 2-head fusion projector loaded into the default 8 heads, without a word
    stage1 = saved_model(tmp_path / "stage1")
    (stage1 / "mm_projector.bin").write_bytes(b"")
    adapter = ["--pretrain_mm_mlp_adapter", str(stage1 / "mm_projector.bin")]
    checked(tmp_path, *DEEPMOLM, *adapter, "--fusion_heads", "2")
    with pytest.raises(usage.UsageError, match=r"mm_projector.bin was trained with other projector settings .*"
                                               r"--fusion_heads 8 \(the checkpoint: 2\)"):
        checked(tmp_path, *DEEPMOLM, *adapter)
    # the .bin alone (as LLaVA projectors are shared): was loaded into 4 heads without a word
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "mm_projector.bin").write_bytes(b"")
    with pytest.raises(usage.UsageError, match="no stage-1 config.json beside it, so the fusion projector's head count"):
        checked(tmp_path, *DEEPMOLM, "--pretrain_mm_mlp_adapter", str(alone / "mm_projector.bin"))
    checked(tmp_path, "--vision_tower", "deepencoder", "--mm_projector", "mlp2x_gelu",
            "--pretrain_mm_mlp_adapter", str(alone / "mm_projector.bin"))  # shapes tell an MLP's all


@pytest.mark.parametrize("option, value", [("mm_vision_select_layer", "-5"), ("mm_vision_select_feature", "cls_patch"),
                                           ("mm_patch_merge_type", "spatial_unpad")])
def test_host_tower_options_deepencoder_does_not_read_are_refused(tmp_path, option, value):
    # was: accepted, saved in config.json and ignored (the same loss as without them)
    with pytest.raises(usage.UsageError, match=f"--{option} '?{value}'? is a setting of the host's CLIP towers"):
        checked(tmp_path, *DEEPMOLM, f"--{option}", value)


def test_anyres_is_refused_for_deepencoder(tmp_path):
    # was: trained as 'pad', then the saved model's eval failed on the missing image_grid_pinpoints
    with pytest.raises(usage.UsageError, match="--image_aspect_ratio anyres is not served by --vision_tower deepencoder"):
        checked(tmp_path, *DEEPMOLM, "--image_aspect_ratio", "anyres")
    checked(tmp_path, *DEEPMOLM, "--image_aspect_ratio", "pad")


def test_plain_template_records_must_be_one_reply_to_the_image(tmp_path, capsys):
    # was: a bare AssertionError in the host's preprocess_plain at the first step, after the
    # model had loaded, naming no record
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    data = tmp_path / "train.json"
    for records, message in (
            ([{"id": "chat", "smiles": "CCO", "conversations": turns() + [{"from": "human", "value": "More?"},
                                                                          {"from": "gpt", "value": "No."}]}],
             "record 'chat': has 4 turns, but the plain template"),
            ([{"id": "text", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}],
             "record 'text': has no <image> in its human turn")):
        data.write_text(json.dumps(records))
        with pytest.raises(SystemExit) as exit_:
            main(["--data_path", str(data), "--model_name_or_path", str(model), "--version", "plain",
                  "--output_dir", str(tmp_path / "out")])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


# --- a loss or gradient that overflows ----------------------------------------------------------

class _Scaled(torch.nn.Module):
    """loss = scale * (w . x)^2: a huge scale overflows the gradient norm, a NaN the loss."""

    def __init__(self, scale):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(4))
        self.scale = scale
        self.config = PretrainedConfig()  # the patched trainer reads the model's config at start

    def forward(self, x, labels=None):
        return {"loss": self.scale * (x @ self.w).pow(2).mean()}


@pytest.mark.parametrize("scale, what", [(1e30, "the gradient norm is not finite"),
                                         (float("nan"), "the loss and the gradient norm is not finite")])
def test_a_step_whose_loss_or_gradient_norm_overflows_stops_training(tmp_path, scale, what):
    """Was: Trainer logged the mean of the earlier losses in place of the NaN one, and the clip
    scaled an inf-norm gradient by 0: the run stepped on learning nothing (or wrote NaN weights),
    saved and exited 0. Now the step's check stops it before optimizer.step(), weights as before."""
    from llava.train.llava_trainer import LLaVATrainer

    from deepmolm_plugin.patches.nonfinite_training import NonFiniteTraining

    model = _Scaled(scale)
    data = [{"x": torch.full((4,), 1.0 + i)} for i in range(4)]
    args = host_train.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=2,
                                        report_to="none", save_strategy="no", use_cpu=True, logging_steps=1)
    trainer = LLaVATrainer(model=model, args=args, train_dataset=data)
    with pytest.raises(NonFiniteTraining, match=f"optimizer step 1 of 3: {what}") as error:
        trainer.train()
    assert "gradient norm: " in str(error.value) and "loss per micro-batch: " in str(error.value)
    assert torch.equal(model.w.detach(), torch.ones(4))  # the step was not applied


def test_a_finite_run_is_not_stopped(tmp_path):
    from llava.train.llava_trainer import LLaVATrainer

    model = _Scaled(1.0)
    data = [{"x": torch.full((4,), 0.1 * i)} for i in range(4)]
    args = host_train.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2,
                                        gradient_accumulation_steps=2, report_to="none", save_strategy="no",
                                        use_cpu=True)
    trainer = LLaVATrainer(model=model, args=args, train_dataset=data)
    assert trainer.train().global_step == 2
    assert not torch.equal(model.w.detach(), torch.ones(4))


def test_the_launcher_prints_a_stopped_run_as_one_line_and_exits_1(tiny_setup, tmp_path, monkeypatch, capsys):
    from host_fixtures import train_args

    from deepmolm_plugin.patches.nonfinite_training import NonFiniteTraining

    def diverged(**kwargs):
        raise NonFiniteTraining("training stopped at optimizer step 3 of 6: the loss is not finite (...)")

    monkeypatch.setattr(host_train, "train", diverged)
    monkeypatch.setattr("sys.argv", ["train"])
    with pytest.raises(SystemExit) as exit_:
        main(train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion"))
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("error: training stopped at optimizer step 3 of 6: the loss is not finite (...)")


def test_the_launcher_prints_a_ctrl_c_as_one_line_and_exits_130(tiny_setup, tmp_path, monkeypatch, capsys):
    # was: a KeyboardInterrupt traceback from inside the training loop
    from host_fixtures import train_args

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(host_train, "train", interrupted)
    monkeypatch.setattr("sys.argv", ["train"])
    with pytest.raises(SystemExit) as exit_:
        main(train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion"))
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    # nothing was saved: (2026-12-06) it said "the checkpoint-<step> folders saved so far are kept: the same
    # command resumes from the last" (the demo, which saves none, then said it starts over)
    assert err.strip().splitlines()[-1].endswith("interrupted before any checkpoint-<step> was saved: the same "
                                                 "command starts afresh") and "Traceback" not in err


# --- restarting runs (fourth sweep) ----------------------------------------------------------

def test_resume_from_checkpoint_is_refused_not_ignored(tmp_path):
    # was: accepted, and a fresh run trained from step 1 (the host never reads it)
    with pytest.raises(usage.UsageError, match="--resume_from_checkpoint .*the host's train.py does not read it"):
        checked(tmp_path, *DEEPMOLM, "--resume_from_checkpoint", str(tmp_path / "old" / "checkpoint-2"))


def test_resuming_with_another_learning_rate_seed_or_data_is_refused(tmp_path, monkeypatch):
    # was: resumed; the checkpoint's optimizer.pt and scheduler.pt replaced the new learning
    # rate without a word, and another data file or seed skipped the wrong batches
    from deepmolm_plugin.training.run_record import RUN_RECORD, write_run_record

    data, other = tmp_path / "train.json", tmp_path / "other.json"
    data.write_text('[{"id": "a"}]')
    other.write_text('[{"id": "b"}]')

    def launch(*extra, path=data):
        return check_argument_values(host_train, ["--output_dir", str(tmp_path / "out"), "--data_path", str(path),
                                                  *DEEPMOLM, "--learning_rate", "2e-5", *extra])

    write_run_record(*launch())  # a fresh start records its settings
    record = json.loads((tmp_path / "out" / RUN_RECORD).read_text())
    assert record["settings"]["learning_rate"] == 2e-5 and record["data_path"] == str(data)
    resumable(tmp_path / "out" / "checkpoint-3", {"mm_vision_tower": "deepencoder"})
    options, data_args = launch()
    options.learning_rate = 1e-3
    write_run_record(options, data_args)  # resuming keeps the first record
    assert json.loads((tmp_path / "out" / RUN_RECORD).read_text()) == record
    launch()  # the same command resumes
    for extra, message in ((["--learning_rate", "1e-3"], r"--learning_rate 0.001 \(the run: 2e-05\)"),
                           (["--seed", "7"], r"--seed 7 \(the run: 42\)"),
                           (["--weight_decay", "0.1"], r"--weight_decay 0.1 \(the run: 0.0\)"),
                           # 2026-12-06: the resumed part cut every record at another length, without a word
                           (["--model_max_length", "64"], r"--model_max_length 64 \(the run: 512\)"),
                           # was: another global batch took half an epoch as a whole one and skipped the rest
                           (["--per_device_train_batch_size", "4"], r"a global batch of 4 \(--per_device_train_batch_"
                                                                    r"size 4 x --gradient_accumulation_steps 1 x "
                                                                    r"WORLD_SIZE 1; the run: 8, 8 x 1 x 1\)"),
                           (["--gradient_accumulation_steps", "2"], r"a global batch of 16 ")):
        with pytest.raises(usage.UsageError, match=r"holds a run that this command resumes, but with other settings "
                                                   r"than it started with: " + message):
            launch(*extra)
    monkeypatch.setenv("WORLD_SIZE", "2")  # another number of processes
    with pytest.raises(usage.UsageError, match=r"other settings than it started with: a global batch of 16 "):
        launch()
    launch("--per_device_train_batch_size", "4")  # the same global batch on twice the processes: resumes
    launch("--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2")
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(usage.UsageError, match=rf"--data_path {other} is not the file it started with \({data}\)"):
        launch(path=other)
    data.write_text('[{"id": "a"}, {"id": "c"}]')
    with pytest.raises(usage.UsageError, match=rf"is not the file it started with \({data}, since edited\)"):
        launch()
    (tmp_path / "out" / RUN_RECORD).write_text("[1]")
    with pytest.raises(usage.UsageError, match=rf"its {RUN_RECORD} .* cannot be read \(not the record this launcher"):
        launch()
    (tmp_path / "out" / RUN_RECORD).unlink()
    launch("--learning_rate", "1e-3")  # a run started without a record (the host's own) is not checked


def test_a_run_without_output_dir_records_its_settings_in_the_trainers_default_folder(tmp_path, monkeypatch):
    # was: os.makedirs("") FileNotFoundError when --output_dir was left out (transformers
    # trains into trainer_output/ then)
    from deepmolm_plugin.training.run_record import RUN_RECORD, write_run_record

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.json").write_text('[{"id": "a"}]')
    options, data_args = check_argument_values(host_train, ["--data_path", "train.json", *DEEPMOLM])
    write_run_record(options, data_args)
    assert json.loads((tmp_path / "trainer_output" / RUN_RECORD).read_text())["data_path"] == str(
        tmp_path / "train.json")


@pytest.mark.parametrize("saved", ["model.safetensors", "mm_projector.bin"])
def test_a_finished_run_is_not_overwritten(tmp_path, saved):
    # was: a finished fusion model replaced by a linear one without a word, exit 0
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / saved).write_bytes(b"weights")
    with pytest.raises(usage.UsageError, match=rf"holds a finished run \({saved}\) and no checkpoint to resume"):
        checked(tmp_path, *DEEPMOLM)


def test_resuming_with_another_language_model_or_tokenizer_is_refused(tmp_path, capsys):
    """was: another size failed after loading (an optimizer group size error), and another
    tokenizer of the same size resumed without a word; a resume said nothing at all."""
    from deepmolm_plugin.tiny_llm import train_chatml_tokenizer

    llm = tmp_path / "llm"
    llm.mkdir()
    (llm / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2}))
    corpus = ["The molecule is ethanol.", "CCO", "c1ccccc1", "It is benzene."] * 20
    tokenizer = train_chatml_tokenizer(corpus, vocab_size=300)
    tokenizer.save_pretrained(llm)
    checkpoint = resumable(tmp_path / "out" / "checkpoint-2", {"mm_vision_tower": "deepencoder", "hidden_size": 64,
                                                               "num_hidden_layers": 2})
    # as the host saves it: with a token added, written by another serialiser (not the same bytes)
    tokenizer.add_tokens(["<im_patch>"], special_tokens=True)
    tokenizer.save_pretrained(checkpoint)
    saved = json.loads((checkpoint / "tokenizer.json").read_text())
    (checkpoint / "tokenizer.json").write_text(json.dumps(saved, indent=3))
    checked(tmp_path, *DEEPMOLM, "--model_name_or_path", str(llm))  # the same tokenizer: resumed
    assert f"resuming {checkpoint} (the host resumes the last checkpoint" in capsys.readouterr().err
    train_chatml_tokenizer(list(reversed(corpus)) + ["CCN", "ethylamine"] * 30, vocab_size=300).save_pretrained(
        checkpoint)
    with pytest.raises(usage.UsageError, match=r"is another language model: its tokenizer gives \d+ of its \d+ "
                                               r"tokens other ids"):
        checked(tmp_path, *DEEPMOLM, "--model_name_or_path", str(llm))
    (llm / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 3}))
    with pytest.raises(usage.UsageError, match=r"num_hidden_layers 3 \(the checkpoint: 2\)"):
        checked(tmp_path, *DEEPMOLM, "--model_name_or_path", str(llm))


def test_model_only_checkpoints_say_so_and_damaged_rng_state_is_named(tmp_path):
    """was: "optimizer.pt is missing ... move it away to resume from an earlier one" for a
    --save_only_model run, none of whose checkpoints can; a cut rng_state.pth passed, then
    failed after the model had loaded."""
    for step in (2, 4):
        checkpoint = resumable(tmp_path / "out" / f"checkpoint-{step}", {"mm_vision_tower": "deepencoder"})
        (checkpoint / "optimizer.pt").unlink()
        (checkpoint / "scheduler.pt").unlink()
    with pytest.raises(usage.UsageError, match=r"saved without the optimizer and schedule \(--save_only_model\)"):
        checked(tmp_path, *DEEPMOLM)
    whole = resumable(tmp_path / "other" / "out" / "checkpoint-2", {"mm_vision_tower": "deepencoder"})
    (whole / "rng_state.pth").write_bytes(b"PK\x03\x04cut")
    with pytest.raises(usage.UsageError, match=r"whose rng_state.pth is not a readable PyTorch file"):
        checked(tmp_path / "other", *DEEPMOLM)


def test_a_stage1_adapter_of_another_tower_is_refused(tmp_path):
    # was: a projector that learnt another tower's features (other heads, other weights) loaded silently
    from deepmolm_plugin.encoder.presets import encoder_config

    tiny = encoder_config("tiny")
    stage1 = tmp_path / "stage1"
    stage1.mkdir()
    (stage1 / "mm_projector.bin").write_bytes(b"")
    (stage1 / "config.json").write_text(json.dumps({
        "mm_vision_tower": "deepencoder", "mm_projector_type": "fusion", "fp_bits": 4096, "fp_levels": 4,
        "fusion_heads": 8, "deepencoder_config": tiny.to_dict(), "vision_tower_weights": "random"}))
    adapter = ["--pretrain_mm_mlp_adapter", str(stage1 / "mm_projector.bin")]
    checked(tmp_path, *DEEPMOLM, *adapter, "--deepencoder_config", "tiny", "--vision_tower_weights", "random")
    other = tmp_path / "enc.json"
    other.write_text(json.dumps({**tiny.to_dict(), "clip_heads": tiny.clip_heads * 2}))
    with pytest.raises(usage.UsageError, match=rf"clip_heads={tiny.clip_heads * 2} \(the checkpoint"):
        checked(tmp_path, *DEEPMOLM, *adapter, "--deepencoder_config", str(other), "--vision_tower_weights", "random")
    with pytest.raises(usage.UsageError, match=r"--vision_tower_weights '.*sam.pth' \(stage 1: 'random'\)"):
        checked(tmp_path, *DEEPMOLM, *adapter, "--deepencoder_config", "tiny", "--vision_tower_weights",
                str(tmp_path / "sam.pth"))
    # the same weights spelt another way (stage 1 saved the path as typed) are the same weights
    (tmp_path / "ocr").mkdir()
    config = json.loads((stage1 / "config.json").read_text())
    (stage1 / "config.json").write_text(json.dumps({**config, "vision_tower_weights": f"{tmp_path}/./ocr/"}))
    checked(tmp_path, *DEEPMOLM, *adapter, "--deepencoder_config", "tiny", "--vision_tower_weights", str(tmp_path / "ocr"))
