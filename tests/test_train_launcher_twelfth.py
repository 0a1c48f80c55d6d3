"""Training launcher, twelfth sweep (12B): what the launcher said nothing about, or said late.

Was: (1) records' molecules with a projector that reads none, dropped without a word;
(2) another --aux_property_weight on resume, taken silently; (3) the rerun of a finished
command trained a step past --max_steps and rewrote its results; (4) a damaged depiction in
the render folder, trusted by its name forever ("image file is truncated", naming no file);
(5) `properties` without a graph source under --aux_property_task, refused after the model
loaded, exit 1; (6) a stage-1 adapter of another random tower (--seed) accepted.
"""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import deepmolm_plugin
from test_hostile_training import dataset, tokenizer, turns  # noqa: F401  (fixtures)

deepmolm_plugin.register()

import llava.train.train as host_train  # noqa: E402  (after register: patched host)

from deepmolm_plugin import train, usage  # noqa: E402
from deepmolm_plugin.data.records import RecordError  # noqa: E402
from deepmolm_plugin.training.arguments import check_argument_values  # noqa: E402
from deepmolm_plugin.training.finished import finished_run_line  # noqa: E402
from deepmolm_plugin.training.inputs import note_unread_molecules  # noqa: E402
from deepmolm_plugin.training.run_record import RUN_RECORD  # noqa: E402
from host_fixtures import train_args  # noqa: E402

DEEPMOLM = ["--vision_tower", "deepencoder", "--mm_projector", "fusion"]


def checked(output: Path, *extra):
    return check_argument_values(host_train, ["--output_dir", str(output), "--data_path", "x.json", *extra])


def saved_checkpoint(folder: Path, config: dict, state: dict) -> Path:
    """A checkpoint-N the host can resume (what the Trainer's save leaves, in small)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "trainer_state.json").write_text(json.dumps({"train_batch_size": 2, **state}))
    save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({}, folder / name)
    return folder


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


# --- 1. molecules a projector does not read ------------------------------------------------

def test_linear_projector_with_molecule_records_says_how_many_are_not_read(capsys):
    records = [{"id": f"r{i}", "smiles": "CCO", "conversations": turns()} for i in range(3)]
    records.append({"id": "plain", "image": "a.png", "conversations": turns()})
    note_unread_molecules(records, ["--vision_tower", "deepencoder"], host_train)  # linear, the host default
    err = capsys.readouterr().err
    assert "note: 3 of 4 records carry a molecule" in err
    assert "--mm_projector linear reads none" in err and "--mm_projector fusion" in err
    assert "--mm_projector concat" in err and len(err.strip().splitlines()) == 1
    note_unread_molecules(records, DEEPMOLM, host_train)  # fusion reads them: nothing to say
    note_unread_molecules(records[3:], ["--vision_tower", "deepencoder"], host_train)  # no molecule: nothing
    assert capsys.readouterr().err == ""


# --- 2. the property loss's weight on resume -----------------------------------------------

def test_resuming_with_another_aux_property_weight_is_refused(tmp_path):
    aux = ["--aux_property_task", "kflm2", "--aux_properties", "MW"]
    saved_checkpoint(tmp_path / "out" / "checkpoint-2",
                     {"mm_vision_tower": "deepencoder", "mm_projector_type": "fusion", "aux_property_task": "kflm2",
                      "aux_properties": ["MW"], "aux_property_weight": 0.1}, {"global_step": 2})
    checked(tmp_path / "out", *DEEPMOLM, *aux, "--aux_property_weight", "0.1")  # its own weight resumes
    with pytest.raises(usage.UsageError, match=r"--aux_property_weight 5\.0 \(the checkpoint: 0\.1\)"):
        checked(tmp_path / "out", *DEEPMOLM, *aux, "--aux_property_weight", "5.0")


# --- 3. the rerun of a finished command ----------------------------------------------------

def finished_output(output: Path, step: int, epoch: float = 0.5, final: bool = True) -> Path:
    saved_checkpoint(output / f"checkpoint-{step}", {"mm_vision_tower": "deepencoder"},
                     {"global_step": step, "epoch": epoch})
    if final:  # what the host writes after the last step: trainer_state.json, then the model
        (output / "trainer_state.json").write_text(json.dumps({"global_step": step, "epoch": epoch,
                                                               "train_batch_size": 2}))
        (output / "model.safetensors").write_bytes((output / f"checkpoint-{step}" / "model.safetensors").read_bytes())
    return output


def test_rerunning_a_finished_command_says_so_and_changes_nothing(tiny_setup, tmp_path, capsys):
    output = finished_output(tmp_path / "out", 2)
    before = snapshot(output)
    with pytest.raises(SystemExit) as stop:
        train.main(train_args(tiny_setup, output, "--mm_projector", "fusion", "--save_strategy", "steps",
                              "--save_steps", "1", steps=2))
    assert stop.value.code == 0
    err = capsys.readouterr().err
    assert "holds a finished run: its final model (model.safetensors) was saved at step 2, at or past the end " \
           "this command sets (--max_steps 2); nothing to train, nothing changed" in err
    assert "resuming" not in err and len(err.strip().splitlines()) == 1
    assert snapshot(output) == before  # no checkpoint-3, trainer_state.json as it was, no run record


@pytest.mark.parametrize("extra, finished", [
    (["--max_steps", "2"], True), (["--max_steps", "1"], True),  # at, or past (a lowered --max_steps)
    (["--max_steps", "3"], False),  # trained on: how a finished run is trained for longer
    (["--num_train_epochs", "0.5"], True), (["--num_train_epochs", "1"], False),  # the state's own epoch count
])
def test_the_end_is_the_command_s_steps_or_epochs(tmp_path, extra, finished):
    options, _ = checked(finished_output(tmp_path / "out", 2), *DEEPMOLM, *extra)
    assert (finished_run_line(options) is not None) == finished


def test_a_last_checkpoint_at_the_end_without_the_final_save_is_refused(tmp_path):
    options, _ = checked(finished_output(tmp_path / "out", 2, final=False), *DEEPMOLM, "--max_steps", "2")
    with pytest.raises(usage.UsageError, match=r"checkpoint-2 is at step 2, at or past the end this command sets "
                                               r"\(--max_steps 2\), but no final model was saved"):
        finished_run_line(options)  # was: trained step 3 at learning rate 0
    options, _ = checked(tmp_path / "out", *DEEPMOLM, "--max_steps", "3")
    assert finished_run_line(options) is None


# --- 4. a damaged depiction ------------------------------------------------------------------

def test_a_damaged_depiction_is_drawn_again_with_a_note(tmp_path, tokenizer, caplog):  # noqa: F811
    from deepmolm_plugin.molecule.inputs import InputResolver

    folder = tmp_path / "renders"
    drawn = Path(InputResolver(render_folder=str(folder)).draw({"smiles": "CCO"}, "r0"))
    whole = drawn.read_bytes()
    drawn.write_bytes(whole[:300])  # a crash while it was written (not synced)
    resolver = InputResolver(render_folder=str(folder))
    assert resolver.draw({"smiles": "CCO"}, "r0") == str(drawn)
    with Image.open(drawn) as image:
        image.load()  # whole again: was "image file is truncated" at every run
    assert resolver.redrawn == [drawn]
    drawn.write_bytes(whole[:300])
    with caplog.at_level("WARNING"):
        dataset(tmp_path, tokenizer, [{"id": "r0", "smiles": "CCO", "conversations": turns()}])
    assert f"1 depiction(s) in {folder} were damaged" in caplog.text and str(drawn) in caplog.text
    Image.open(drawn).load()


def test_an_image_the_host_cannot_load_is_named_by_its_path(tmp_path, tokenizer, monkeypatch):  # noqa: F811
    from types import SimpleNamespace

    records = [{"id": "r0", "smiles": "CCO", "conversations": turns()}]
    ds = dataset(tmp_path, tokenizer, records)
    ds[0]  # checked and read once; then the file is damaged under the run (as after a crash of another writer)

    def truncated(path):
        raise OSError("image file is truncated")

    monkeypatch.setattr(host_train, "Image", SimpleNamespace(open=truncated))
    with pytest.raises(RecordError, match=r"record 'r0': image .*renders/\w+\.png \(a depiction drawn by training: "
                                          r"delete it and the next run draws it again\): OSError: image file is "
                                          "truncated"):
        ds[0]


# --- 5. properties without a graph source, before the model loads -----------------------------

def test_properties_without_a_graph_source_are_refused_before_the_model_loads(tiny_setup, tmp_path, capsys):
    records = [{"id": "fp0", "image": "a.png", "molecule_fp": [[1, 2, 3, 4]], "properties": {"MW": 46.1},
                "conversations": turns()}]
    data = tmp_path / "fpaux.json"
    data.write_text(json.dumps(records))
    args = train_args({**tiny_setup, "data": data}, tmp_path / "out", "--mm_projector", "fusion",
                      "--aux_property_task", "kflm2", "--aux_properties", "MW", steps=1)
    with pytest.raises(SystemExit) as stop:
        train.main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "records 'fp0' have `properties` but no `smiles`, `structure` or `atoms`" in err
    assert "Loading" not in err and not (tmp_path / "out").exists()


# --- 6. a random tower's seed ------------------------------------------------------------------

def test_a_stage_1_adapter_of_another_random_tower_is_refused(tmp_path):
    stage1 = tmp_path / "stage1"
    stage1.mkdir()
    (stage1 / "config.json").write_text(json.dumps({"mm_projector_type": "fusion", "mm_vision_tower": "deepencoder",
                                                    "fusion_heads": 8, "vision_tower_weights": "random"}))
    torch.save({}, stage1 / "mm_projector.bin")
    (stage1 / RUN_RECORD).write_text(json.dumps({"settings": {"seed": 0}}))
    stage2 = [*DEEPMOLM, "--vision_tower_weights", "random",
              "--pretrain_mm_mlp_adapter", str(stage1 / "mm_projector.bin")]
    checked(tmp_path / "out", *stage2, "--seed", "0")  # the same tower
    with pytest.raises(usage.UsageError, match=r"--seed 1 with --vision_tower_weights random \(stage 1: --seed 0"):
        checked(tmp_path / "out", *stage2, "--seed", "1")


def test_a_stage_1_run_without_its_seed_record_is_a_note(tmp_path, capsys):
    stage1 = tmp_path / "stage1"
    stage1.mkdir()
    (stage1 / "config.json").write_text(json.dumps({"mm_projector_type": "fusion", "mm_vision_tower": "deepencoder",
                                                    "fusion_heads": 8, "vision_tower_weights": "random"}))
    checked(tmp_path / "out", *DEEPMOLM, "--vision_tower_weights", "random", "--seed", "1",
            "--pretrain_mm_mlp_adapter", str(stage1 / "mm_projector.bin"))
    assert f"no readable {stage1 / RUN_RECORD} records the --seed of the stage-1 run" in capsys.readouterr().err
