"""Training launcher, seventh hostile sweep: DeepSpeed configs and checkpoints, batches,
folders, trainable sets and option values the launcher let through.

Before: a ZeRO stage written as "3" saved a model of empty tensors, and a ZeRO-3 config
without stage3_gather_16bit_weights_on_model_save saved no model weights at all (both exit
0); DeepSpeed config values that contradict the command line were transformers' traceback
after the model had loaded; a DeepSpeed checkpoint resumed without --deepspeed went on with a
fresh optimizer and schedule (exit 0), a plain one with --deepspeed was a traceback;
--dataloader_drop_last with fewer records than a batch took 0 steps and saved the untrained
model (exit 0); the default render folder <data_path>.renders was not checked (a traceback
after the model had loaded); --output_dir "" left ./trainer_output/ and a traceback; a resume
with another --freeze_backbone / --freeze_mm_mlp_adapter, or --tune_mm_mlp_adapter with
--freeze_mm_mlp_adapter, were tracebacks; --seed -1 and --dataloader_num_workers -1 were
tracebacks; a damaged tokenizer.json in the resumed checkpoint was blamed on
--model_name_or_path. Each is now one line before the model loads.
"""

import json
import shutil
import os
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import pytest

from host_fixtures import ROOT, run_module, train_args
from test_hostile_training_third import DEEPMOLM, check_argument_values, checked, host_train, resumable

from deepmolm_plugin import usage
from deepmolm_plugin.training.arguments import check_batches
from deepmolm_plugin.training.deepspeed_config import check_deepspeed_config
from deepmolm_plugin.training.inputs import check_inputs
from deepmolm_plugin.training.run_record import write_run_record
from deepmolm_plugin.training.saved_settings import llm_differences

ZERO2, ZERO3 = ROOT / "scripts" / "zero2.json", ROOT / "scripts" / "zero3.json"
# the settings DEEPMOLM gives, as a checkpoint's config.json records them
SAVED = {"mm_vision_tower": "deepencoder", "mm_projector_type": "fusion", "fp_bits": 4096, "fp_levels": 4,
         "image_mode": "base", "fusion_heads": 8}


def _deepspeed_file(tmp_path, base: Path, **changes) -> Path:
    """`base` (a scripts/ config) with top-level keys and `zero_optimization.<key>` changed
    (None: removed)."""
    config = json.loads(base.read_text())
    for key, value in changes.items():
        node, key = (config["zero_optimization"], key[5:]) if key.startswith("zero_") else (config, key)
        if value is None:
            del node[key]
        else:
            node[key] = value
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(config))
    return path


# --- findings 1, 2: ZeRO stage and the ZeRO-3 save ----------------------------------------

@pytest.mark.parametrize("changes, reason", [
    # was: DeepSpeed read "3" as stage 3, transformers not: a model of empty tensors, exit 0
    ({"zero_stage": "3"}, r'zero_optimization.stage is "3", not a JSON integer 0-3'),
    ({"zero_stage": True}, "zero_optimization.stage is true, not a JSON integer 0-3"),
    ({"zero_stage": 4}, "zero_optimization.stage is 4, not a JSON integer 0-3"),
    # was: exit 0 with no model weights in --output_dir, only global_step*/
    ({"zero_stage3_gather_16bit_weights_on_model_save": None},
     "zero_optimization.stage3_gather_16bit_weights_on_model_save is not given \\(false\\): under ZeRO-3 the run "
     "would save no model"),
    ({"zero_stage3_gather_16bit_weights_on_model_save": "true"},
     'zero_optimization.stage3_gather_16bit_weights_on_model_save is "true": under ZeRO-3'),
])
def test_a_zero_stage_that_transformers_misreads_or_a_zero3_save_without_weights_is_refused(tmp_path, changes,
                                                                                          reason):
    path = _deepspeed_file(tmp_path, ZERO3, **changes)
    with pytest.raises(usage.UsageError, match=f"--deepspeed {path}: {reason}"):
        check_deepspeed_config(str(path))
    for good in (ZERO2, ZERO3):  # the project's own configs pass
        check_deepspeed_config(str(good))


@pytest.mark.parametrize("spelling", ["gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save"])
def test_deepspeeds_other_spellings_of_the_zero3_save_setting_count(tmp_path, spelling):
    # its field name and the deprecated fp16 one (LLaVA-era configs): such runs save weights
    path = _deepspeed_file(tmp_path, ZERO3, zero_stage3_gather_16bit_weights_on_model_save=None,
                           **{f"zero_{spelling}": True})
    check_deepspeed_config(str(path))
    path = _deepspeed_file(tmp_path, ZERO3, zero_stage3_gather_16bit_weights_on_model_save=None,
                           **{f"zero_{spelling}": False})
    with pytest.raises(usage.UsageError, match=f"zero_optimization.{spelling} is false"):  # the key given
        check_deepspeed_config(str(path))
    # two spellings: DeepSpeed refuses them together, after the model loaded
    path = _deepspeed_file(tmp_path, ZERO3, zero_stage3_gather_16bit_weights_on_model_save=False,
                           **{f"zero_{spelling}": True})
    with pytest.raises(usage.UsageError, match="spellings of one setting, which DeepSpeed refuses together"):
        check_deepspeed_config(str(path))


# --- finding 6: DeepSpeed values that contradict the command line -------------------------

def test_deepspeed_values_that_contradict_the_command_line_are_refused_before_the_model_loads(tmp_path):
    # was: transformers' "Please correct the following DeepSpeed config values" traceback after the load
    path = _deepspeed_file(tmp_path, ZERO2, fp16={"enabled": True}, bf16={"enabled": True},
                           train_micro_batch_size_per_gpu=16, gradient_clipping=0.5,
                           optimizer={"type": "AdamW", "params": {"lr": 0.1}})
    with pytest.raises(usage.UsageError) as caught:
        checked(tmp_path, *DEEPMOLM, "--deepspeed", str(path), "--per_device_train_batch_size", "2")
    message = str(caught.value)
    assert message.startswith(f"--deepspeed {path}: values that contradict the command line"), message
    for part in ("train_micro_batch_size_per_gpu=16 vs hf per_device_train_batch_size=2",
                 "gradient_clipping=0.5 vs hf max_grad_norm=1.0", "optimizer.params.lr=0.1 vs hf learning_rate",
                 "fp16.enabled=True vs hf fp16", "bf16.enabled=True vs hf bf16"):
        assert part in message, message
    assert "\n" not in message
    checked(tmp_path, *DEEPMOLM, "--deepspeed", str(ZERO2))  # "auto" takes the options' values


# --- finding 3: a checkpoint of the other kind than --deepspeed ---------------------------

def test_a_checkpoint_resumed_under_the_other_kind_of_training_is_refused(tmp_path):
    deepspeed_run = tmp_path / "ds"
    checkpoint = resumable(deepspeed_run / "out" / "checkpoint-5", SAVED)
    for name in ("optimizer.pt", "scheduler.pt"):  # the engine keeps them under global_step5/
        (checkpoint / name).unlink()
    (checkpoint / "global_step5").mkdir()
    (checkpoint / "latest").write_text("global_step5")
    checked(deepspeed_run, *DEEPMOLM, "--deepspeed", str(ZERO2))
    # was: resumed with a fresh optimizer and learning-rate schedule, exit 0
    with pytest.raises(usage.UsageError, match="resume checkpoint-5, a DeepSpeed checkpoint .* but this run has no "
                                               "--deepspeed: it would go on with a fresh optimizer"):
        checked(deepspeed_run, *DEEPMOLM)
    plain_run = tmp_path / "plain"
    resumable(plain_run / "out" / "checkpoint-5", SAVED)
    checked(plain_run, *DEEPMOLM)
    # was: "Can't find a valid checkpoint", a traceback after the model had loaded
    with pytest.raises(usage.UsageError, match=f"resume checkpoint-5, saved without DeepSpeed .* gives --deepspeed "
                                               f"{ZERO2}, whose engine cannot load it"):
        checked(plain_run, *DEEPMOLM, "--deepspeed", str(ZERO2))


# --- finding 4: --dataloader_drop_last without one full batch -----------------------------

def test_drop_last_with_fewer_records_than_a_batch_on_every_process_is_refused(monkeypatch):
    options = Namespace(per_device_train_batch_size=8, dataloader_drop_last=True)
    # was: 0 steps, the untrained model saved, exit 0
    with pytest.raises(usage.UsageError, match="--data_path has 4 records, fewer than one batch of "
                                               "--per_device_train_batch_size 8 on each of 1 process"):
        check_batches(options, 4)
    check_batches(options, 8)
    check_batches(Namespace(per_device_train_batch_size=8, dataloader_drop_last=False), 4)
    monkeypatch.setenv("WORLD_SIZE", "2")  # accelerate shards the full batches over the processes
    with pytest.raises(usage.UsageError, match="8 records, fewer than one batch .* 8 on each of 2 process"):
        check_batches(options, 8)
    check_batches(options, 16)


def test_the_launcher_refuses_drop_last_without_a_batch_before_the_model_loads(tiny_setup, tmp_path):
    out = tmp_path / "out"
    args = train_args(tiny_setup, out, "--mm_projector", "fusion", "--dataloader_drop_last", "True", steps=2)
    args[args.index("--per_device_train_batch_size") + 1] = "8"  # the set-up has 4 records
    proc = run_module("deepmolm_plugin.train", args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "error: --dataloader_drop_last True drops every batch: --data_path has 4 records" in proc.stderr
    assert not (out / "model.safetensors").exists()


# --- finding 5: the default render folder ---------------------------------------------------

def _data_without_images(tiny_setup, folder: Path) -> list:
    """The set-up's records (drawn: no `image`) in folder/train.json; its launcher arguments."""
    folder.mkdir()
    (folder / "train.json").write_text(json.dumps(tiny_setup["records"]))
    args = train_args(tiny_setup, folder.parent / "out", "--mm_projector", "fusion")
    args[args.index("--data_path") + 1] = str(folder / "train.json")
    return args


def test_a_default_render_folder_that_cannot_be_made_is_refused(tiny_setup, tmp_path):
    args = _data_without_images(tiny_setup, tmp_path / "data")
    check_inputs(args)
    (tmp_path / "data" / "train.json.renders").write_text("not a folder")
    # was: FileExistsError, a traceback after the model had loaded
    with pytest.raises(usage.UsageError, match=r"--render_folder .*train.json.renders: is a file, not a folder \(not "
                                               r"given: <data_path>.renders"):
        check_inputs(args)
    check_inputs(args + ["--render_folder", str(tmp_path / "renders")])  # given: that one is used


def test_a_default_render_folder_in_a_read_only_data_folder_is_refused(tiny_setup, tmp_path, monkeypatch):
    args = _data_without_images(tiny_setup, tmp_path / "data")
    data, access = tmp_path / "data", os.access
    # a read-only mount, as access() reports it (root writes through file modes)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != data and access(path, mode))
    # was: PermissionError, a traceback after the model had loaded
    with pytest.raises(usage.UsageError, match=r"--render_folder .*train.json.renders: .*is not writable"):
        check_inputs(args)


# --- finding 7: --output_dir "" -------------------------------------------------------------

def test_an_empty_output_dir_is_refused(tmp_path):
    # was: taken for "not given": ./trainer_output/ written, then a FileNotFoundError traceback
    with pytest.raises(usage.UsageError, match="--output_dir: the folder name is empty"):
        checked(tmp_path, *DEEPMOLM, "--output_dir", "")


def test_the_launcher_leaves_nothing_behind_for_an_empty_output_dir(tiny_setup, tmp_path):
    proc = run_module("deepmolm_plugin.train", train_args(tiny_setup, "", "--mm_projector", "fusion", steps=1),
                      cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "error: --output_dir: the folder name is empty" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no ./trainer_output/


# --- finding 8: the trainable set ------------------------------------------------------------

@pytest.mark.parametrize("option", ["--freeze_backbone", "--freeze_mm_mlp_adapter"])
def test_resuming_with_another_trainable_set_is_refused(tmp_path, option):
    saved = {**SAVED, "freeze_mm_mlp_adapter": False, "deepmolm_run": {"freeze_backbone": False}}
    resumable(tmp_path / "out" / "checkpoint-5", saved)
    checked(tmp_path, *DEEPMOLM)
    # was: the optimizer state's ValueError traceback after the model had loaded
    with pytest.raises(usage.UsageError, match=f"other settings: {option} True \\(the checkpoint: False\\)"):
        checked(tmp_path, *DEEPMOLM, option, "True")


def test_a_run_with_nothing_to_train_is_refused(tmp_path):
    # was: "element 0 of tensors does not require grad" at the first step
    with pytest.raises(usage.UsageError, match="--tune_mm_mlp_adapter True with --freeze_mm_mlp_adapter True leaves "
                                               "nothing to train"):
        checked(tmp_path, *DEEPMOLM, "--tune_mm_mlp_adapter", "True", "--freeze_mm_mlp_adapter", "True")
    checked(tmp_path, *DEEPMOLM, "--tune_mm_mlp_adapter", "True")


# --- finding 9: seeds and workers --------------------------------------------------------------

@pytest.mark.parametrize("option, value, reason", [
    ("seed", "-1", ">= 0 and <= 4294967295"),  # was: numpy's "Seed must be between 0 and 2**32 - 1" traceback
    ("seed", "4294967296", ">= 0 and <= 4294967295"),
    ("data_seed", "-1", ">= 0 and <= 4294967295"),
    ("dataloader_num_workers", "-1", ">= 0, got -1"),  # was: torch's ValueError after the model had loaded
])
def test_seeds_and_worker_counts_out_of_range_are_refused(tmp_path, option, value, reason):
    with pytest.raises(usage.UsageError, match=f"--{option} must be a whole number {reason}"):  # (a count: 2026-12-06)
        checked(tmp_path, *DEEPMOLM, f"--{option}", value)
    checked(tmp_path, *DEEPMOLM, f"--{option}", "0")


# --- finding 10: an unreadable tokenizer.json -------------------------------------------------

def test_an_unreadable_tokenizer_is_named_not_taken_for_another_model(tiny_setup, tmp_path):
    llm = tiny_setup["llm"]
    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()
    shutil.copy(llm / "config.json", checkpoint / "config.json")
    shutil.copy(llm / "tokenizer.json", checkpoint / "tokenizer.json")
    model_args = SimpleNamespace(model_name_or_path=str(llm))
    assert llm_differences(model_args, str(checkpoint)) == []
    damaged = checkpoint / "tokenizer.json"
    damaged.write_bytes(damaged.read_bytes()[:100])
    # was: "--model_name_or_path ... is another language model: its tokenizer gives a tokenizer.json that
    # cannot be read", naming neither the file nor the checkpoint
    with pytest.raises(usage.UsageError, match=f"^{damaged}: not a readable tokenizer.json"):
        llm_differences(model_args, str(checkpoint))


def test_resuming_with_another_drop_last_is_refused(tmp_path):
    # was: resumed; the epoch's batches were counted otherwise, and the wrong ones skipped
    data = tmp_path / "train.json"
    data.write_text('[{"id": "a"}]')

    def launch(*extra):
        return check_argument_values(host_train, ["--output_dir", str(tmp_path / "out"), "--data_path", str(data),
                                                  *DEEPMOLM, *extra])

    write_run_record(*launch())
    resumable(tmp_path / "out" / "checkpoint-3", {"mm_vision_tower": "deepencoder"})
    launch()  # the same command resumes
    with pytest.raises(usage.UsageError, match=r"--dataloader_drop_last True \(the run: False\)"):
        launch("--dataloader_drop_last", "True")

