"""Training launcher: a run stopped while the Trainer wrote a checkpoint.

Was: Ctrl-C, SIGTERM (a SLURM requeue) or SIGKILL while the Trainer wrote checkpoint-N left
it half-written (weights, optimizer, no trainer_state.json). The interrupt line promised
"the same command resumes from the last", but the rerun was refused ("has no
trainer_state.json ...: move it away"), so a requeued job failed instead of resuming; and
SIGTERM itself ended the launcher without a word, exit 143.

Now: the rerun sets the cut save aside as `unfinished-checkpoint-N` (kept, contents intact,
said in one line) and resumes the checkpoint before it, or starts afresh when there is none;
under torchrun only rank 0 renames and the other ranks agree with it and wait for it. The
interrupt line names the cut save and what the rerun does, and SIGTERM takes the Ctrl-C
path (one line, exit 130), DataLoader workers included.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import deepmolm_plugin

deepmolm_plugin.register()

import llava.train.train as host_train  # noqa: E402  (after register: patched host)
from transformers.trainer_utils import get_last_checkpoint  # noqa: E402

from deepmolm_plugin import train, usage  # noqa: E402
from deepmolm_plugin.training.arguments import check_argument_values  # noqa: E402
from deepmolm_plugin.training.checkpoints import resumed_checkpoint, set_aside_unfinished_save  # noqa: E402
from deepmolm_plugin.training.interrupts import stop_on_sigterm  # noqa: E402
from deepmolm_plugin.training.options import PROG  # noqa: E402
from deepmolm_plugin.training.run_record import RUN_RECORD  # noqa: E402

DEEPMOLM = ["--vision_tower", "deepencoder", "--mm_projector", "fusion"]


def finished(checkpoint: Path) -> Path:
    """A checkpoint-N the host can resume (what the Trainer's save leaves, in small)."""
    from safetensors.torch import save_file

    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text(json.dumps({"mm_vision_tower": "deepencoder"}))
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 2, "train_batch_size": 2}))
    save_file({"w": torch.zeros(2)}, str(checkpoint / "model.safetensors"))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.save({}, checkpoint / name)
    return checkpoint


def cut_short(checkpoint: Path, like: "Path | None" = None) -> Path:
    """checkpoint-N as a stop during its save leaves it (the sweep's Ctrl-C / SIGKILL): the
    weights and optimizer written, the schedule, RNG state and trainer_state.json (written
    last) not."""
    if like is None:
        finished(checkpoint)
    else:
        shutil.copytree(like, checkpoint)
    for name in ("trainer_state.json", "scheduler.pt", "rng_state.pth"):
        (checkpoint / name).unlink()
    return checkpoint


def contents(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def checked(out: Path):
    return check_argument_values(host_train, ["--output_dir", str(out), "--data_path", "x.json", *DEEPMOLM])


def host_view(out: Path) -> dict:
    """What the host decides from --output_dir: whether it resumes (its `checkpoint-*` glob)
    and from which folder (transformers' choice)."""
    return {"globbed": sorted(p.name for p in out.glob("checkpoint-*")), "resumes": get_last_checkpoint(str(out))}


@pytest.fixture
def fake_host(monkeypatch):
    """The host's train() replaced: records what it would resume from when it starts."""
    seen = {}

    def run(**kwargs):
        out = Path(sys.argv[sys.argv.index("--output_dir") + 1])
        seen.update(host_view(out))

    monkeypatch.setattr(host_train, "train", run)
    monkeypatch.setattr("sys.argv", ["train"])
    return seen


def test_a_cut_save_is_set_aside_and_the_checkpoint_before_it_resumes(tiny_setup, tmp_path, fake_host, capsys):
    # was: refused, "the host would resume checkpoint-4, which has no trainer_state.json"
    from host_fixtures import train_args

    out = tmp_path / "out"
    cut_short(out / "checkpoint-4", like=finished(out / "checkpoint-2"))
    before = contents(out / "checkpoint-4")
    train.main(train_args(tiny_setup, out, "--mm_projector", "fusion"))
    assert not (out / "checkpoint-4").exists()
    assert contents(out / "unfinished-checkpoint-4") == before  # kept as it was, under a name the host skips
    assert fake_host == {"globbed": ["checkpoint-2"], "resumes": str(out / "checkpoint-2")}
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "checkpoint-" in line] == [
        f"{PROG}: {out / 'checkpoint-4'} was cut short while being saved (no trainer_state.json, which the "
        f"Trainer writes last): set aside as {out / 'unfinished-checkpoint-4'}; resuming {out / 'checkpoint-2'} "
        "(the host resumes the last checkpoint of --output_dir)"]


def test_a_second_cut_save_of_the_same_step_does_not_overwrite_the_first(tmp_path):
    out = tmp_path / "out"
    cut_short(out / "checkpoint-4", like=finished(out / "checkpoint-2"))
    (out / "unfinished-checkpoint-4").mkdir()  # set aside by an earlier stop at this step
    checked(out)
    set_aside_unfinished_save(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2", "unfinished-checkpoint-4",
                                                     "unfinished-checkpoint-4.2"]
    assert not any((out / "unfinished-checkpoint-4").iterdir())


def test_a_cut_first_save_is_set_aside_and_the_run_starts_afresh(tiny_setup, tmp_path, fake_host, capsys):
    # was: refused the same way, although nothing was left to resume
    from host_fixtures import train_args

    out = tmp_path / "out"
    cut_short(out / "checkpoint-2")
    # the record of the run's first start, which a fresh start replaces with its own
    # settings (a later resume of this start compares with them): no resume check now
    (out / RUN_RECORD).write_text(json.dumps({"settings": {"learning_rate": 0.5}, "data_path": "old.json",
                                              "data_sha256": "0"}))
    train.main(train_args(tiny_setup, out, "--mm_projector", "fusion"))
    assert fake_host == {"globbed": [], "resumes": None}  # the host starts afresh
    assert (out / "unfinished-checkpoint-2" / "model.safetensors").is_file()
    assert json.loads((out / RUN_RECORD).read_text())["settings"]["learning_rate"] == 2e-3
    err = capsys.readouterr().err
    assert (f"set aside as {out / 'unfinished-checkpoint-2'}; no finished checkpoint is left, so the run starts "
            "afresh") in err and "resuming" not in err


def test_other_ranks_agree_with_rank_0_and_wait_for_its_rename(tmp_path, monkeypatch, capsys):
    # under torchrun every rank runs the checks at once: rank 1 neither renames nor refuses,
    # and its host starts only once rank 0 has set the folder aside
    out = tmp_path / "out"
    cut_short(out / "checkpoint-4", like=finished(out / "checkpoint-2"))
    monkeypatch.setenv("RANK", "1")
    checked(out)
    assert resumed_checkpoint(str(out)) == str(out / "checkpoint-2")
    waits = []

    def rank_0_renames(seconds):  # what rank 0 does while rank 1 waits
        waits.append(seconds)
        os.rename(out / "checkpoint-4", out / "unfinished-checkpoint-4")

    monkeypatch.setattr("time.sleep", rank_0_renames)
    set_aside_unfinished_save(str(out))
    assert len(waits) == 1 and host_view(out)["resumes"] == str(out / "checkpoint-2")
    assert capsys.readouterr().err == ""  # rank 0 says it


@pytest.mark.parametrize("layout, message", [
    # a stage-1 checkpoint is no cut save: setting it aside would only expose the next one alike
    ({"config.json": "{}", "mm_projector.bin": ""}, r"which has no trainer_state.json \(a --tune_mm_mlp_adapter"),
    # trainer_state.json there but damaged: maybe a damaged copy of a finished save
    ({"config.json": "{}", "trainer_state.json": "{"}, "whose trainer_state.json is not readable JSON"),
])
def test_a_checkpoint_that_is_no_cut_save_is_still_refused_and_kept(tmp_path, layout, message):
    out = tmp_path / "out"
    finished(out / "checkpoint-2")
    for name, text in layout.items():
        (out / "checkpoint-4").mkdir(exist_ok=True)
        (out / "checkpoint-4" / name).write_text(text)
    with pytest.raises(usage.UsageError, match=message):
        checked(out)
    set_aside_unfinished_save(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2", "checkpoint-4"]


def test_the_interrupt_line_names_a_cut_save_and_the_rerun_does_what_it_says(tiny_setup, tmp_path, monkeypatch,
                                                                            capsys):
    # was: "the checkpoint-<step> folders saved so far are kept: the same command resumes from
    # the last", and the same command was refused
    from host_fixtures import train_args

    out = tmp_path / "out"
    finished(out / "checkpoint-2")

    def stopped_while_saving(**kwargs):
        cut_short(out / "checkpoint-4", like=out / "checkpoint-2")
        raise KeyboardInterrupt

    monkeypatch.setattr(host_train, "train", stopped_while_saving)
    monkeypatch.setattr("sys.argv", ["train"])
    args = train_args(tiny_setup, out, "--mm_projector", "fusion")
    with pytest.raises(SystemExit) as exit_:
        train.main(args)
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"{PROG}: interrupted while checkpoint-4 was being saved: it was cut short (no trainer_state.json); the "
        "checkpoints saved before it are kept, and the same command sets checkpoint-4 aside (as "
        "unfinished-checkpoint-4) and resumes from checkpoint-2, the last checkpoint saved in full")
    seen = {}
    monkeypatch.setattr(host_train, "train", lambda **kwargs: seen.update(host_view(out)))
    train.main(args)  # the same command
    assert seen["resumes"] == str(out / "checkpoint-2") and (out / "unfinished-checkpoint-4").is_dir()


def test_sigterm_stops_the_launcher_as_ctrl_c_does(tiny_setup, tmp_path):
    """was: exit 143 without a word. A scheduler signals the whole process group, the
    DataLoader workers too (a traceback from torch's SIGCHLD handler followed the line)."""
    from host_fixtures import train_args

    out = tmp_path / "out"
    log = tmp_path / "log"
    args = train_args(tiny_setup, out, "--mm_projector", "fusion", steps=100000)
    args[args.index("--dataloader_num_workers") + 1] = "2"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w") as stream:
        proc = subprocess.Popen([sys.executable, "-m", "deepmolm_plugin.train", *args,
                                 "--dataloader_persistent_workers", "True"], cwd=tmp_path, stdout=stream,
                                stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 300  # a run that never trains fails the test instead of hanging it
            while "'loss'" not in log.read_text(errors="replace"):  # training: the workers are up
                assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
                try:
                    proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text(errors="replace")
    assert code == 130, text[-4000:]
    assert "Traceback" not in text and "Exception ignored" not in text, text[-4000:]
    last = [line for line in text.replace("\r", "\n").splitlines() if line.startswith(PROG)][-1]
    # no checkpoint was saved before the signal (2026-12-06: it said "the checkpoint-<step> folders saved so far
    # are kept: the same command resumes from the last")
    assert last == f"{PROG}: interrupted before any checkpoint-<step> was saved: the same command starts afresh"


def test_a_second_run_on_the_same_output_dir_is_refused_and_changes_nothing(tiny_setup, tmp_path, fake_host,
                                                                               capsys):
    # was: no lock; a second launch took the checkpoint the first was still saving for a cut
    # save and set it aside, and both runs wrote one folder
    from host_fixtures import train_args

    from deepmolm_plugin import output_lock

    out = tmp_path / "out"
    cut_short(out / "checkpoint-4", like=finished(out / "checkpoint-2"))  # as the first run's save in progress
    first = output_lock.hold(output_lock.folder_lock(out, PROG))
    try:
        with pytest.raises(SystemExit) as exit_:
            train.main(train_args(tiny_setup, out, "--mm_projector", "fusion"))
        assert exit_.value.code == 2 and fake_host == {}
        assert (out / "checkpoint-4").is_dir() and not (out / "unfinished-checkpoint-4").exists()
        assert f"another {PROG} is writing {out} (pid {os.getpid()})" in capsys.readouterr().err
    finally:
        first.release()
    train.main(train_args(tiny_setup, out, "--mm_projector", "fusion"))  # once it is gone
    assert fake_host["resumes"] == str(out / "checkpoint-2") and not (out / ".lock").exists()


def test_children_forked_during_training_keep_the_default_sigterm():
    """Training's handler (which also quiets the DataLoader workers' SIGCHLD) was installed
    over usage's, so the reset at fork did not know it: a process forked during training
    (a datasets map, a tokenizer pool) raised KeyboardInterrupt on SIGTERM."""
    previous = stop_on_sigterm()
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0 if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
