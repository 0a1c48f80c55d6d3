"""Training launcher's resume, thirteenth sweep (13B).

Was: (1) a resume with another --train_sampling_strategy accepted (the resumed epoch read
another order: some records trained twice, others never); (2) a DeepSpeed ZeRO checkpoint
resumed on another number of processes, DeepSpeed's traceback on every rank after loading;
(3) stage-1 (--tune_mm_mlp_adapter) checkpoints, which cannot resume, promised a resume and
the refusal advised moving the last one away (exposing another alike); (4) a checkpoint
without rng_state*.pth for this run's processes resumed without a word; (5) train_loss of a
resumed run averaged only its resumed steps; (6) "resuming ..." printed before a refusal.
"""

import json
from pathlib import Path

import pytest
import torch

import deepmolm_plugin
from test_training_interrupted_save import fake_host, finished  # noqa: F401  (fixtures)

deepmolm_plugin.register()

import llava.train.train as host_train  # noqa: E402  (after register: patched host)

from deepmolm_plugin import train, usage  # noqa: E402
from deepmolm_plugin.training.arguments import check_argument_values  # noqa: E402
from deepmolm_plugin.training.interrupts import interrupted_message  # noqa: E402
from deepmolm_plugin.training.run_record import RUN_RECORD, write_run_record  # noqa: E402
from host_fixtures import losses, train_args  # noqa: E402

DEEPMOLM = ["--vision_tower", "deepencoder", "--mm_projector", "fusion"]


def checked(out: Path, data: Path, *extra):
    return check_argument_values(host_train, ["--output_dir", str(out), "--data_path", str(data), *DEEPMOLM,
                                              *extra])


def started_run(tmp_path: Path, *extra) -> tuple:
    """An --output_dir as a run started with `extra` leaves it after its second step: its
    RUN_RECORD and a checkpoint-2 to resume."""
    data, out = tmp_path / "train.json", tmp_path / "out"
    tmp_path.mkdir(parents=True, exist_ok=True)
    data.write_text("[]")
    write_run_record(*checked(out, data, *extra))
    finished(out / "checkpoint-2")
    return out, data


# --- 1. the sampler and what it reads -----------------------------------------------------

@pytest.mark.parametrize("strategy", ["sequential", "group_by_length"])
def test_resuming_with_another_sampling_strategy_is_refused(tmp_path, strategy):
    out, data = started_run(tmp_path)
    checked(out, data)  # its own sampler resumes
    with pytest.raises(usage.UsageError, match=rf"--train_sampling_strategy '{strategy}' \(the run: 'random'\)"):
        checked(out, data, "--train_sampling_strategy", strategy)


def test_group_by_length_keeps_each_batch_factor_random_only_their_product(tmp_path):
    out, data = started_run(tmp_path, "--train_sampling_strategy", "group_by_length",
                            "--per_device_train_batch_size", "4")
    with pytest.raises(usage.UsageError, match=r"--per_device_train_batch_size 2 \(the run: 4; "
                                               r"--train_sampling_strategy group_by_length orders"):
        checked(out, data, "--train_sampling_strategy", "group_by_length",
                "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2")
    out, data = started_run(tmp_path / "random", "--per_device_train_batch_size", "4")
    checked(out, data, "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2")  # same product


def test_a_record_without_the_new_fields_resumes_with_a_note(tmp_path, capsys):
    out, data = started_run(tmp_path)
    record = json.loads((out / RUN_RECORD).read_text())
    del record["settings"]["train_sampling_strategy"]  # as the launcher before it wrote it
    (out / RUN_RECORD).write_text(json.dumps(record))
    capsys.readouterr()
    checked(out, data, "--train_sampling_strategy", "sequential")
    err = capsys.readouterr().err
    assert "was written before the launcher recorded --train_sampling_strategy, so" in err
    assert "--train_sampling_strategy 'sequential'" in err
    assert [line.split(": ")[1][:8] for line in err.strip().splitlines()] == ["note", "resuming"]  # one note


# --- 2. DeepSpeed's optimizer state, split by process --------------------------------------

def deepspeed_checkpoint(folder: Path, ranks: int) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"mm_vision_tower": "deepencoder"}))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 2, "train_batch_size": 4}))
    (folder / "latest").write_text("global_step2")
    (folder / "global_step2").mkdir()
    torch.save({}, folder / "global_step2" / "mp_rank_00_model_states.pt")
    for rank in range(ranks):
        torch.save({}, folder / "global_step2" / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")


def test_a_deepspeed_checkpoint_on_another_number_of_processes_is_refused(tmp_path, monkeypatch):
    config = tmp_path / "zero2.json"
    config.write_text(json.dumps({"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}))
    data, out = tmp_path / "train.json", tmp_path / "out"
    data.write_text("[]")
    deepspeed_checkpoint(out / "checkpoint-2", ranks=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(usage.UsageError) as refused:
        checked(out, data, "--deepspeed", str(config), "--per_device_train_batch_size", "2")
    message = str(refused.value)
    assert "split across the 1 process(es) that saved it, but this run has 2" in message
    assert "resume on 1 process(es)" in message and f"--model_name_or_path {out / 'checkpoint-2'}" in message
    monkeypatch.setenv("WORLD_SIZE", "1")
    checked(out, data, "--deepspeed", str(config), "--per_device_train_batch_size", "4")  # its own count resumes


# --- 3. stage-1 checkpoints ----------------------------------------------------------------

def adapter_checkpoint(folder: Path) -> Path:
    """What the host's LLaVATrainer._save_checkpoint leaves under --tune_mm_mlp_adapter."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"mm_vision_tower": "deepencoder"}))
    torch.save({"model.mm_projector.w": torch.zeros(2)}, folder / "mm_projector.bin")
    return folder


def test_stage1_checkpoints_say_they_cannot_resume(tmp_path, capsys):
    data, out = tmp_path / "train.json", tmp_path / "out"
    data.write_text("[]")
    checked(out, data, "--tune_mm_mlp_adapter", "True", "--save_strategy", "steps")  # a fresh start says so
    err = capsys.readouterr().err
    assert "--tune_mm_mlp_adapter with --save_strategy steps: each checkpoint-<step> holds only the projector" in err
    assert "cannot resume" in err
    for step in (1, 2):
        adapter_checkpoint(out / f"checkpoint-{step}")
    message = interrupted_message(str(out))
    assert "resumes from the last" not in message and "cannot resume" in message
    assert str(out / "checkpoint-2" / "mm_projector.bin") in message
    with pytest.raises(usage.UsageError) as refused:
        checked(out, data, "--tune_mm_mlp_adapter", "True", "--save_strategy", "steps")
    assert "move it away" not in str(refused.value)  # checkpoint-1 is the same kind
    assert "so this run cannot resume" in str(refused.value)
    assert f"--pretrain_mm_mlp_adapter {out / 'checkpoint-2' / 'mm_projector.bin'}" in str(refused.value)


# --- 4. and 6. what a resume says, and when -------------------------------------------------

def test_a_checkpoint_without_rng_state_resumes_with_a_note(tiny_setup, tmp_path, fake_host, capsys):  # noqa: F811
    out = tmp_path / "out"
    (finished(out / "checkpoint-2") / "rng_state.pth").unlink()
    train.main(train_args(tiny_setup, out, "--mm_projector", "fusion"))
    err = capsys.readouterr().err
    assert f"resuming {out / 'checkpoint-2'}" in err
    assert "checkpoint-2 holds no rng_state.pth for this run's 1 process(es) (it holds none)" in err
    assert "random draws (dropout and the like) start fresh" in err


def test_resuming_is_said_only_after_every_check_passed(tiny_setup, tmp_path, fake_host, capsys):  # noqa: F811
    out = tmp_path / "out"
    args = train_args(tiny_setup, out, "--mm_projector", "fusion")
    train.main(args)  # a fresh start: writes the run's record
    finished(out / "checkpoint-2")
    capsys.readouterr()
    args[args.index("--learning_rate") + 1] = "1e-4"
    with pytest.raises(SystemExit) as refused:
        train.main(args)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "--learning_rate 0.0001 (the run: 0.002)" in err
    assert "resuming /" not in err and ": resuming" not in err  # was: "resuming .../checkpoint-2", then the refusal
    args[args.index("--learning_rate") + 1] = "2e-3"
    train.main(args)
    assert capsys.readouterr().err.count(f"resuming {out / 'checkpoint-2'}") == 1


# --- 5. a resumed run's train_loss ----------------------------------------------------------

def test_logged_loss_sum_covers_every_step_or_nothing():
    from deepmolm_plugin.patches.resume_schedule import logged_loss_sum, whole_run_loss

    history = [{"loss": 4.0, "step": 1, "loss_steps": 1}, {"loss": 2.0, "step": 3, "loss_steps": 2},
               {"train_loss": 9.0, "step": 3}]
    assert logged_loss_sum(history, 3) == (8.0, 3)  # step 1: 4, steps 2-3: 2 each
    assert logged_loss_sum(history, 2) is None  # step 2 was logged with step 3 only
    assert whole_run_loss(1.0, 1, (8.0, 3)) == pytest.approx(9.0 / 4)


def test_a_resumed_run_reports_the_train_loss_of_all_its_steps(tiny_setup, tmp_path, monkeypatch):
    def run(out, steps):  # in this process: a 1-2 step run, without a second interpreter start
        args = train_args(tiny_setup, out, "--mm_projector", "fusion", steps=steps)
        args[args.index("--save_strategy") + 1] = "steps"
        monkeypatch.setattr("sys.argv", ["train"])
        # a constant rate: the 1-step run's schedule is then the 2-step run's, step for step
        train.main(args + ["--save_steps", "1", "--lr_scheduler_type", "constant"])

    def train_loss(out):
        return [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "train_loss" in e]

    run(tmp_path / "whole", 2)
    run(tmp_path / "resumed", 1)
    run(tmp_path / "resumed", 2)
    assert losses(tmp_path / "resumed") == pytest.approx(losses(tmp_path / "whole"))  # the same steps
    whole, resumed = train_loss(tmp_path / "whole")[-1], train_loss(tmp_path / "resumed")[-1]
    assert resumed["step"] == 2 and resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-5)
    assert resumed["train_loss"] != pytest.approx(losses(tmp_path / "resumed")[-1])  # was: step 2's alone
