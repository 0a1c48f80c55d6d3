"""Hostile --vision_tower_weights, eighth sweep: what was wrong -> what happens now.

- `~/enc` (`--vision_tower_weights=~/x`, the second path of `a.pth,~/b.safetensors`, which
  the shell never expands): the launcher's check expanded `~`, the loader did not ->
  "FileNotFoundError: checkpoint path does not exist: ~/enc" after the LLM had loaded.
  Now every loader expands it (tensor_files.checkpoint_path) and the run trains.
- Weights the loader refuses (a text file named .safetensors, a cut file, integer weights,
  missing or mis-shaped tensors, SAM without CLIP, an unknown layout) passed the launcher's
  existence check and were a CheckpointError traceback after the LLM had loaded. Now the
  launcher plans the load from the files' headers up front (check_tower_weights): one line,
  exit 2, before the LLM loads; what headers cannot show (NaN values) is one line naming
  the option when the tower loads, exit 2.
- A saved DeepEncoder folder without --deepencoder_config was refused ("given 1024 vs saved
  128") though the user gave no configuration. Now its saved configuration is used, as
  load_deepencoder does, and written into the model's config.json; a differing
  --deepencoder_config is named as such.
- A folder holding sam_vit_b_01ec64.pth beside a CLIP model.safetensors said "no SAM weights
  in [folder]". Now the message names the files read and those not, and how to give both.
- /dev/null or a FIFO was a bare NotADirectoryError, a symlink loop "does not exist", a
  training checkpoint {'state_dict', 'epoch'} named none of its keys, and "a.pth, b.pth"
  was "no such file" for " b.pth". Now each is named for what it is; spaces around listed
  paths are stripped.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from conftest import tiny_encoder_config
from test_encoder_checkpoints import _hf_clip_file, _meta_sam_file
from deepmolm_plugin import usage
from deepmolm_plugin.encoder import DeepEncoder, encoder_config, load_deepencoder, to_deepseek_layout
from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower, config_from_args
from deepmolm_plugin.tensor_files import CheckpointError


def _save(state, path):
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def tower():
    torch.manual_seed(0)
    return DeepEncoder(tiny_encoder_config())


@pytest.fixture(scope="module")
def saved(tower, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "enc"
    tower.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def public_pair(tower, tmp_path_factory):
    """Meta's SAM .pth beside a Hugging Face CLIP model.safetensors, in one folder."""
    folder = tmp_path_factory.mktemp("public")
    torch.save(_meta_sam_file(tower), folder / "sam_vit_b_01ec64.pth")
    _save(_hf_clip_file(tower, "vision_model."), folder / "model.safetensors")
    return folder


def _launcher_argv(tmp_path, weights, *extra):
    """The launcher's up-front checks only (check_inputs): a record, a model folder."""
    from deepmolm_plugin.training.inputs import check_inputs

    data = tmp_path / "train.json"
    turns = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "Ethanol."}]
    data.write_text(json.dumps([{"id": "x", "smiles": "CCO", "conversations": turns}]))
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    argv = ["--data_path", str(data), "--model_name_or_path", str(tmp_path / "model"), "--vision_tower", "deepencoder",
            "--vision_tower_weights", str(weights), *extra]
    return lambda: check_inputs(argv)


# --- 1. `~` ------------------------------------------------------------------------------------

def test_a_tilde_path_is_expanded_by_the_loader(tower, saved, public_pair, monkeypatch):
    monkeypatch.setenv("HOME", str(saved.parent))
    config = tiny_encoder_config()
    # was: FileNotFoundError "checkpoint path does not exist: ~/enc"
    assert load_deepencoder("~/enc").load_report.format == "deepmolm"
    monkeypatch.setenv("HOME", str(public_pair))
    both = [str(public_pair / "sam_vit_b_01ec64.pth"), "~/model.safetensors"]  # the second path: never shell-expanded
    assert load_deepencoder(both, config=config).load_report.format == "sam+clip"
    monkeypatch.setenv("HOME", str(saved.parent))
    built = DeepEncoderVisionTower("deepencoder", SimpleNamespace(vision_tower_weights="~/enc"))
    assert torch.equal(built.vision_tower.state_dict()["sam.pos_embed"], tower.state_dict()["sam.pos_embed"])


# --- 2. refused up front, before the LLM loads ----------------------------------------------------

def _weights_file(tmp_path, kind, tower):
    ds = to_deepseek_layout(tower)
    path = tmp_path / "weights.safetensors"
    if kind == "text":
        path.write_text("this is a README, not weights\n")
    elif kind == "cut":
        _save(ds, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "cut-pth":
        path = tmp_path / "weights.pth"
        torch.save(ds, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "integer":
        _save({**ds, "model.sam_model.pos_embed": ds["model.sam_model.pos_embed"].long()}, path)
    elif kind == "missing":
        del ds["model.sam_model.blocks.0.norm1.weight"]
        ds["model.vision_model.transformer.layers.1.mlp.fc1.weight"] = torch.zeros(5, 5)
        _save(ds, path)
    elif kind == "sam-alone":
        path = tmp_path / "sam_vit_b_01ec64.pth"
        torch.save(_meta_sam_file(tower), path)
    elif kind == "unknown":
        _save({"foo.weight": torch.zeros(2)}, path)
    return path


@pytest.mark.parametrize("kind, reason", [
    ("text", r"weights\.safetensors is not a tensor file"),
    ("cut", r"weights\.safetensors is not a readable safetensors file"),
    ("cut-pth", r"weights\.pth is not a readable PyTorch tensor file"),
    ("integer", r"sam\.pos_embed: dtype torch\.int64, not floating point"),
    ("missing", r"missing \(1\): sam\.blocks\.0\.norm1\.weight; wrong shape \(1\)"),
    ("sam-alone", r"found SAM weights but no CLIP ViT-L/14 weights"),
    ("unknown", r"unrecognised checkpoint layout"),
])
def test_weights_the_loader_refuses_are_one_line_before_the_llm_loads(tmp_path, tower, kind, reason):
    # was: accepted by the launcher (the path exists), then a traceback after the LLM had loaded
    path = _weights_file(tmp_path, kind, tower)
    check = _launcher_argv(tmp_path, path, "--deepencoder_config", "tiny")
    with pytest.raises(usage.UsageError, match=rf"^--vision_tower_weights {path}: .*{reason}") as error:
        check()
    assert "\n" not in str(error.value)


def test_the_launcher_refuses_bad_weights_before_the_llm_loads(tiny_setup, tmp_path):
    from host_fixtures import run_module, train_args

    bad = tmp_path / "weights.safetensors"
    bad.write_text("this is not a tensor file\n")
    args = train_args(tiny_setup, tmp_path / "out", steps=1)
    args[args.index("--vision_tower_weights") + 1] = str(bad)
    proc = run_module("deepmolm_plugin.train", args, cwd=tmp_path, check=False, timeout=300)
    # was: exit 1, a CheckpointError traceback once the LLM had loaded
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"python -m deepmolm_plugin.train: error: --vision_tower_weights {bad}: {bad} is not a tensor file: "
        "expected safetensors or a PyTorch checkpoint (first bytes b'this is n')")
    assert not (tmp_path / "out" / "deepmolm_resume.json").exists()  # stopped by the checks before the run starts


def test_weights_refused_once_the_tower_loads_are_one_line_naming_the_option(tiny_setup, tower, tmp_path,
                                                                             monkeypatch, capsys):
    # NaN values: only a full read shows them, so they pass the up-front check and are found when
    # the host builds the tower; was a CheckpointError traceback
    import deepmolm_plugin

    deepmolm_plugin.register()
    import llava.train.train as host_train

    from host_fixtures import train_args

    from deepmolm_plugin.train import main

    ds = to_deepseek_layout(tower)
    ds["model.sam_model.pos_embed"] = torch.full_like(ds["model.sam_model.pos_embed"], float("nan"))
    nan = _save(ds, tmp_path / "nan.safetensors")
    args = train_args(tiny_setup, tmp_path / "out", steps=1)
    args[args.index("--vision_tower_weights") + 1] = str(nan)

    def builds_the_tower(**kwargs):  # the host's builder, at the point it makes the tower
        DeepEncoderVisionTower("deepencoder", SimpleNamespace(vision_tower_weights=str(nan),
                                                              deepencoder_config=str(tiny_setup["encoder_config"])))

    monkeypatch.setattr(host_train, "train", builds_the_tower)
    monkeypatch.setattr("sys.argv", ["train"])
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"python -m deepmolm_plugin.train: error: --vision_tower_weights "
                                                   f"{nan}: DeepEncoder checkpoint {nan} has unusable tensors (1): "
                                                   "sam.pos_embed: ")


def test_a_big_legacy_pickle_is_left_to_the_load(tmp_path, tower, monkeypatch):
    """A legacy-format .pth cannot be memory-mapped: over the limit the up-front check reads
    none of it (the load reads it once); under it, it is planned like the others."""
    from deepmolm_plugin import tensor_files
    from deepmolm_plugin.encoder.model import check_deepencoder_weights

    path = tmp_path / "ocr.pth"
    torch.save(to_deepseek_layout(tower), path, _use_new_zipfile_serialization=False)
    assert check_deepencoder_weights(path, tiny_encoder_config()).format == "deepseek-ocr"
    monkeypatch.setattr(tensor_files, "LEGACY_PICKLE_HEADER_LIMIT", 1024)
    monkeypatch.setattr(tensor_files, "load_torch_file", None)  # reading it would fail here
    assert check_deepencoder_weights(path, tiny_encoder_config()) is None


# --- 3. a saved DeepEncoder folder without --deepencoder_config ------------------------------------

def test_a_saved_folder_without_a_config_builds_its_own_sizes(saved):
    # was: CheckpointError "the DeepEncoder configuration given does not match ... given 1024 vs saved 128"
    args = SimpleNamespace(vision_tower_weights=str(saved))
    assert config_from_args(args) == tiny_encoder_config()
    assert DeepEncoderVisionTower("deepencoder", args).encoder_config == tiny_encoder_config()


def test_the_model_config_records_the_saved_folders_sizes(saved):
    """What the host writes into the model's config.json is the tower's configuration."""
    from deepmolm_plugin.patches.arguments import _wrap_initialize_vision_modules

    args = SimpleNamespace(vision_tower_weights=str(saved), unfreeze_mm_vision_tower=False)
    built = DeepEncoderVisionTower("deepencoder", args)
    model = SimpleNamespace(config=SimpleNamespace(), get_vision_tower=lambda: built)
    _wrap_initialize_vision_modules(lambda self, model_args, fsdp=None: None)(model, args)
    assert model.config.deepencoder_config == tiny_encoder_config().to_dict()  # was: DeepSeek-OCR's 1024 px sizes


def test_a_saved_folder_passes_the_launcher_and_another_config_is_named(tmp_path, saved):
    _launcher_argv(tmp_path, saved)()  # its own configuration: nothing to say
    # was: accepted, then "the DeepEncoder configuration given does not match" after the LLM had loaded
    with pytest.raises(usage.UsageError, match=r"--deepencoder_config demo does not match the DeepEncoder "
                                               r"configuration saved with the weights \(.*enc\): image_size: 256 "
                                               r"vs saved 128") as error:
        _launcher_argv(tmp_path, saved, "--deepencoder_config", "demo")()
    assert "given" not in str(error.value)
    assert config_from_args(SimpleNamespace(vision_tower_weights=str(saved), deepencoder_config=encoder_config(
        "demo").to_dict())) == encoder_config("demo")  # a given configuration still wins (and is checked)


# --- 4. a folder with SAM's .pth beside CLIP's .safetensors -----------------------------------------

def test_a_folder_of_sam_pth_and_clip_safetensors_names_both_and_how_to_give_them(public_pair):
    with pytest.raises(CheckpointError, match=r"no SAM ViT-B .* \(read model\.safetensors, not "
                                              r"sam_vit_b_01ec64\.pth: ") as error:
        load_deepencoder(public_pair, config=tiny_encoder_config())
    # was: "no SAM ViT-B (image_encoder.*) weights in [folder]" and nothing more; the files it suggests load
    suggested = str(error.value).split("give the files themselves: ")[1].split(")")[0]
    assert suggested == f"{public_pair / 'sam_vit_b_01ec64.pth'},{public_pair / 'model.safetensors'}"
    assert load_deepencoder(suggested.split(","), config=tiny_encoder_config()).load_report.format == "sam+clip"


# --- 5. odd paths and files -------------------------------------------------------------------------

def test_odd_weights_paths_are_named_for_what_they_are(tmp_path, tower):
    fifo = tmp_path / "w.safetensors"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.safetensors"
    os.symlink(loop, loop)
    config = tiny_encoder_config()
    for path, reason in (("/dev/null", "/dev/null is a character device, not a file or folder of weights"),  # was:
                         (fifo, f"{fifo} is a named pipe \\(FIFO\\), not a file or folder of weights"),  # NotADirectoryError
                         (loop, f"{loop} is a symbolic link loop")):  # was: "checkpoint path does not exist"
        with pytest.raises(CheckpointError, match=reason):
            load_deepencoder(path, config=config)
        with pytest.raises(usage.UsageError, match=f"--vision_tower_weights {path}: {reason}"):
            _launcher_argv(tmp_path, path, "--deepencoder_config", "tiny")()  # was: accepted (the path exists)


def test_a_training_checkpoint_names_its_top_level_keys(tmp_path, tower):
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": to_deepseek_layout(tower), "epoch": 3}, path)
    # was: "does not hold a flat mapping of names to tensors", naming nothing it holds
    with pytest.raises(CheckpointError, match=r"its top-level keys are 'state_dict', 'epoch' \(a training "
                                              r"checkpoint\? save its weights alone: torch\.save\(checkpoint"
                                              r"\['state_dict'\], path\)\)"):
        load_deepencoder(path, config=tiny_encoder_config())


def test_spaces_around_listed_paths_are_stripped(tmp_path, public_pair):
    listed = f"{public_pair / 'sam_vit_b_01ec64.pth'}, {public_pair / 'model.safetensors'}"
    # was: "--vision_tower_weights  /.../model.safetensors: no such file or folder", the space unseen
    _launcher_argv(tmp_path, listed, "--deepencoder_config", "tiny")()
    pieces = [p for p in listed.split(",") if p]  # as the arguments class hands them to the tower
    assert load_deepencoder(pieces, config=tiny_encoder_config()).load_report.format == "sam+clip"


def test_weights_beside_a_saved_multimodal_model_are_not_planned(tmp_path, saved):
    """Guard: with --model_name_or_path a saved DeepMoLM model the host keeps its tower and
    reads none of --vision_tower_weights, so they are not planned against another size."""
    check = _launcher_argv(tmp_path, saved, "--deepencoder_config", "demo")
    (tmp_path / "model" / "config.json").write_text(json.dumps({"mm_vision_tower": "deepencoder"}))
    check()
