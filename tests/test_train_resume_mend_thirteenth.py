"""Training launcher's resume, thirteenth sweep, mended after review (13B).

Was: (1) "resuming <checkpoint>" and the stage-1 note said before main's own refusals
(template, tokenizer, batches, the output lock); (2) after a second resume of a run first
resumed between two --logging_steps, a wrong train_loss without a word (each loss entry was
taken to cover every step since the entry before); (3) --length_column_name, which the
launcher's dataset never reads, refused a resume; (4) the bf16-on-the-CPU note never said
under torchrun or with --use_cpu True given; (5) resume_schedule.apply() half-applied on a
transformers without _finalize_training, and a renamed _initial_global_step silently
disabled the train_loss patch; (7) without `latest`, global_step9 taken for newer than
global_step10.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import deepmolm_plugin
from test_training_interrupted_save import fake_host, finished  # noqa: F401  (fixtures)
from test_train_resume_thirteenth import adapter_checkpoint, checked, started_run  # noqa: F401

deepmolm_plugin.register()

from deepmolm_plugin import train  # noqa: E402
from deepmolm_plugin.training.checkpoint_problems import deepspeed_processes_problem  # noqa: E402
from deepmolm_plugin.training.distributed import cpu_bf16_argv, prepare_cpu_distributed  # noqa: E402
from host_fixtures import train_args  # noqa: E402

# --- 1. nothing said before a refusal ------------------------------------------------------


@pytest.mark.parametrize("option, bad, refusal", [
    ("--version", "v1", "--version v1 does not fit"),  # check_template, in main
])
def test_resuming_is_not_said_before_mains_own_refusals(tiny_setup, tmp_path, fake_host, capsys,  # noqa: F811
                                                       option, bad, refusal):
    out = tmp_path / "out"
    args = train_args(tiny_setup, out, "--mm_projector", "fusion")
    train.main(args)  # a fresh start: writes the run's record
    finished(out / "checkpoint-2")
    capsys.readouterr()
    args[args.index(option) + 1] = bad
    with pytest.raises(SystemExit) as refused:
        train.main(args)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and refusal in err
    assert "resuming" not in err  # was: "resuming .../checkpoint-2", then the refusal


def test_the_stage1_note_is_not_said_before_mains_own_refusals(tiny_setup, tmp_path, fake_host, capsys):  # noqa: F811
    args = train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion", "--tune_mm_mlp_adapter", "True")
    args[args.index("--save_strategy") + 1] = "steps"
    args[args.index("--version") + 1] = "v1"
    with pytest.raises(SystemExit) as refused:
        train.main(args)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "--version v1 does not fit" in err
    assert "cannot resume" not in err  # was: the stage-1 note, then the refusal


# --- 2. train_loss after a second resume --------------------------------------------------

def test_loss_entries_covering_fewer_steps_leave_a_named_gap():
    from deepmolm_plugin.patches.resume_schedule import LOSS_STEPS, logged_loss_sum, loss_log_gap

    # --logging_steps 2, resumed at step 3: the entry at step 4 is step 4 alone
    history = [{"loss": 10.0, "step": 2, LOSS_STEPS: 2}, {"loss": 1.0, "step": 4, LOSS_STEPS: 1},
               {"loss": 1.0, "step": 6, LOSS_STEPS: 2}]
    assert logged_loss_sum(history, 6) is None  # was (24.0, 6): step 4's loss weighted over steps 3-4
    assert loss_log_gap(history, 6) == "the log has no loss for step 3"
    assert logged_loss_sum(history[:1], 2) == (20.0, 2)
    old = [{"loss": 4.0, "step": 1}, {"loss": 2.0, "step": 3}]  # a log without the counts
    assert logged_loss_sum(old, 3) is None
    assert "at step 1 does not say how many steps it covers" in loss_log_gap(old, 3)


def test_a_second_resume_after_an_unaligned_one_keeps_this_calls_loss_and_says_why(tiny_setup, tmp_path,
                                                                                    monkeypatch, capsys):
    out = tmp_path / "out"

    def run(steps):  # --logging_steps 2, a save after every step: the first resume is at step 1
        args = train_args(tiny_setup, out, "--mm_projector", "fusion", steps=steps)
        args[args.index("--save_strategy") + 1] = "steps"
        args[args.index("--logging_steps") + 1] = "2"
        monkeypatch.setattr("sys.argv", ["train"])
        train.main(args + ["--save_steps", "1", "--lr_scheduler_type", "constant"])
        return capsys.readouterr().err

    run(1)
    run(2)  # resumed at step 1: its loss entry at step 2 is step 2 alone
    logged = [e for e in json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
              if "loss" in e]
    assert [(e["step"], e["loss_steps"]) for e in logged] == [(2, 1)]
    err = run(3)  # resumed at step 2, from an aligned checkpoint: step 1 is still in no entry
    assert "train_loss" in err and "is the mean of steps 3-3 only" in err
    assert "the log has no loss for step 1" in err  # was: no note, step 2's loss taken for steps 1-2
    state = json.loads((out / "trainer_state.json").read_text())
    assert "loss_steps" not in state["log_history"][-1]


# --- 3. --length_column_name ---------------------------------------------------------------

def test_another_length_column_resumes(tmp_path, capsys):
    out, data = started_run(tmp_path, "--train_sampling_strategy", "group_by_length")
    capsys.readouterr()
    checked(out, data, "--train_sampling_strategy", "group_by_length", "--length_column_name", "n")  # was refused
    assert "length_column_name" not in capsys.readouterr().err


# --- 4. bf16 on the CPU ---------------------------------------------------------------------

def test_bf16_on_the_cpu_is_noted_under_torchrun(tiny_setup, tmp_path, fake_host, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr("sys.argv", ["train"])
    train.main(train_args(tiny_setup, tmp_path / "out", "--mm_projector", "fusion", "--bf16", "True",
                          "--per_device_train_batch_size", "1"))
    import sys

    assert sys.argv.count("--use_cpu") == 1
    err = capsys.readouterr().err
    assert "--bf16 True without a GPU: training on the CPU in bfloat16 (--use_cpu True added)" in err  # was: nothing


def test_bf16_with_use_cpu_given_is_noted_on_rank_0_only(monkeypatch, capsys):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)  # --use_cpu True: the CPU all the same
    argv = ["--bf16", "True", "--use_cpu", "True"]
    options = SimpleNamespace(bf16=True, use_cpu=True)
    assert cpu_bf16_argv(argv, options) == argv
    assert "--bf16 True with --use_cpu True: training on the CPU in bfloat16" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")
    assert cpu_bf16_argv(argv, options) == argv
    assert capsys.readouterr().err == ""


def test_one_accelerator_test_decides_cpu_distribution(monkeypatch):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)  # e.g. an XPU: no CUDA, an accelerator
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert prepare_cpu_distributed(["--output_dir", "o"]) == ["--output_dir", "o"]  # was: --use_cpu added


# --- 5. resume_schedule's guards -----------------------------------------------------------

def test_a_trainer_without_finalize_training_leaves_nothing_half_applied(monkeypatch):
    import transformers
    from llava.train import llava_trainer

    from deepmolm_plugin.patches import _host, resume_schedule

    monkeypatch.setattr(llava_trainer, _host._APPLIED_ATTR, set())
    host_load = llava_trainer.LLaVATrainer._load_optimizer_and_scheduler
    monkeypatch.delattr(transformers.Trainer, "_finalize_training")
    with pytest.raises(RuntimeError, match=r"Trainer\._finalize_training"):
        resume_schedule.apply()
    assert getattr(llava_trainer, _host._APPLIED_ATTR) == set()  # was: {'resume_schedule'}
    assert llava_trainer.LLaVATrainer._load_optimizer_and_scheduler is host_load


def test_a_trainer_without_initial_global_step_is_an_error_not_a_silent_no_op():
    from deepmolm_plugin.patches.resume_schedule import _finalize_training_wrapper

    wrapped = _finalize_training_wrapper(lambda self: "host's own")
    with pytest.raises(RuntimeError, match=r"Trainer\._initial_global_step"):  # was: getattr(..., 0), the host's
        wrapped(SimpleNamespace())


# --- 7. DeepSpeed step folders by number ---------------------------------------------------

def test_without_latest_the_highest_global_step_is_counted(tmp_path, monkeypatch):
    checkpoint = tmp_path / "checkpoint-10"
    for step, ranks in (("global_step9", 1), ("global_step10", 2)):
        (checkpoint / step).mkdir(parents=True)
        for rank in range(ranks):
            torch.save({}, checkpoint / step / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert deepspeed_processes_problem(str(checkpoint)) is None  # was: global_step9's 1 process counted
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert "split across the 2 process(es)" in deepspeed_processes_problem(str(checkpoint))
