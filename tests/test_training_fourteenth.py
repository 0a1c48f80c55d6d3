"""The training launcher, fourteenth round: records a multi-process epoch repeats to fill
its last step (said at the start), a rank whose peer process ended (one line, not a gloo
traceback), and a Ctrl-C at a C extension's import during the launcher's start (one line,
exit 130, not an ImportError traceback or a swallowed interrupt)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from host_fixtures import train_args
from interrupt_at import interrupted

PROG = "python -m deepmolm_plugin.train"


# 1. records repeated (or dropped) to fill a multi-process epoch's last step

def _accelerate_epoch(records: int, batch: int, processes: int, drop_last: bool) -> list:
    """The record indices every rank takes in one epoch, as accelerate shards the host's
    DataLoader (BatchSamplerShard with its default even_batches)."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    taken = []
    for rank in range(processes):
        sampler = BatchSampler(SequentialSampler(range(records)), batch, drop_last)
        shard = BatchSamplerShard(sampler, num_processes=processes, process_index=rank, split_batches=False,
                                  even_batches=True)
        taken += [i for step in shard for i in step]
    return taken


def _run_main(monkeypatch, setup: dict, out: Path, host_train, *extra: str, records: "list | None" = None,
              processes: int = 2):
    """The launcher's main in this process as rank 0 of `processes`, with the host's train()
    replaced by `host_train` (no model is built). `records`: --data_path's content."""
    import deepmolm_plugin
    from deepmolm_plugin import train

    deepmolm_plugin.register()
    import llava.train.train as host

    monkeypatch.setattr(host, "train", host_train)
    for name, value in {"WORLD_SIZE": str(processes), "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["train"])
    args = train_args(setup, out, "--mm_projector", "fusion", *extra)
    if records is not None:
        data = out.parent / "records.json"
        data.write_text(json.dumps(records))
        args[args.index("--data_path") + 1] = str(data)
    train.main(args)


def _five_records(setup: dict) -> list:
    extra = dict(setup["records"][0], id="mol4")
    return [*setup["records"], extra]


def test_a_multi_process_epoch_that_repeats_records_says_how_many(monkeypatch, capsys, tiny_setup, tmp_path):
    _run_main(monkeypatch, tiny_setup, tmp_path / "out", lambda **kw: None, records=_five_records(tiny_setup))
    notes = [line for line in capsys.readouterr().err.splitlines() if "not a multiple" in line]
    assert len(notes) == 1, notes
    assert notes[0].startswith(f"{PROG}: note: --data_path has 5 records, not a multiple of the 4 ")
    assert "filled with 3 record(s) repeated" in notes[0] and "another process count" in notes[0]
    assert "multiple of 4 records" in notes[0]


def test_the_repeated_record_count_is_the_one_accelerate_repeats(monkeypatch, capsys, tiny_setup, tmp_path):
    from deepmolm_plugin.training.arguments import batch_fill_note

    for processes, drop_last, want in ((2, "True", "leaves out its last 1 record(s)"), (1, "False", None)):
        out = tmp_path / f"out{processes}"
        _run_main(monkeypatch, tiny_setup, out, lambda **kw: None, "--dataloader_drop_last", drop_last,
                  records=_five_records(tiny_setup), processes=processes)
        notes = [line for line in capsys.readouterr().err.splitlines() if "not a multiple" in line]
        assert notes == [] if want is None else (len(notes) == 1 and want in notes[0]), notes
    for records in range(1, 14):  # the number said is the one accelerate repeats (or drops)
        for batch in (1, 2, 3):
            for processes in (2, 3):
                for drop_last in (False, True):
                    taken = _accelerate_epoch(records, batch, processes, drop_last)
                    monkeypatch.setenv("WORLD_SIZE", str(processes))
                    options = Namespace(per_device_train_batch_size=batch, dataloader_drop_last=drop_last)
                    note = batch_fill_note(options, records)
                    if len(taken) == records:
                        assert note is None, (records, batch, processes, drop_last)
                    elif drop_last:
                        assert f"last {records - len(taken)} record(s)" in note, (records, batch, processes)
                    else:
                        assert f"filled with {len(taken) - records} record(s)" in note, (records, batch, processes)


# 2. a rank whose peer process ended

_LOST_PEER = r"""
import os, sys, time
import deepmolm_plugin

register = deepmolm_plugin.register

def fake_train(attn_implementation=None):
    import torch, torch.distributed as dist
    dist.init_process_group("gloo", timeout=__import__("datetime").timedelta(seconds=60))
    dist.all_reduce(torch.ones(1))  # both ranks are up
    if dist.get_rank() == 1:
        time.sleep(1.0)  # rank 0 is waiting in the next collective
        os._exit(3)  # ends abruptly, as kill -9 does
    dist.all_reduce(torch.ones(1))

def register_then_stub():
    register()
    import llava.train.train as host
    host.train = fake_train

deepmolm_plugin.register = register_then_stub
from deepmolm_plugin.train import main
main(sys.argv[1:])
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_rank_whose_peer_process_ended_says_one_line(tiny_setup, tmp_path):
    script = tmp_path / "lost_peer.py"
    script.write_text(_LOST_PEER)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH")])),
           "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    args = train_args(tiny_setup, out, "--mm_projector", "fusion")
    ranks = [subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path,
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    try:
        _, err = ranks[0].communicate(timeout=150)
        ranks[1].communicate(timeout=30)
    finally:
        for rank in ranks:
            rank.kill()
    assert ranks[1].returncode == 3
    lines = [line for line in err.splitlines() if PROG in line]
    assert (ranks[0].returncode, "Traceback" in err, len(lines)) == (1, False, 1), err[-3000:]
    assert lines[0].startswith(f"{PROG}: error: another training process ended or lost contact (Connection ")
    assert lines[0].endswith("interrupted before any checkpoint-<step> was saved: the same command starts afresh")


@pytest.fixture
def stop_signals_kept():
    """The launcher ignores SIGINT and SIGTERM once its process group failed: put pytest's back."""
    kept = {stop: signal.getsignal(stop) for stop in (signal.SIGINT, signal.SIGTERM)}
    yield
    for stop, handler in kept.items():
        signal.signal(stop, handler)


def test_only_a_failed_process_group_is_taken_for_a_lost_peer(monkeypatch, capsys, tiny_setup, tmp_path,
                                                              stop_signals_kept):
    from deepmolm_plugin import train

    def leave(status):  # leave_process ends the process: here, the test's own exit
        raise SystemExit(status)

    monkeypatch.setattr(train, "leave_process", leave, raising=False)
    gloo = RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed "
                        "by peer [127.0.0.1]:46252. This is typically caused by a remote worker crashing.")

    def raises(error):
        def host_train(**kw):
            raise error
        return host_train

    with pytest.raises(SystemExit) as stopped:
        _run_main(monkeypatch, tiny_setup, tmp_path / "gloo", raises(gloo))
    err = capsys.readouterr().err
    assert stopped.value.code == 1 and (f"{PROG}: error: another training process ended or lost contact "
                                        "(Connection closed by peer [127.0.0.1]:46252), so this one stopped "
                                        "too; interrupted before any checkpoint-<step> was saved") in err, err
    for other in (RuntimeError("CUDA out of memory"), RuntimeError("Connection closed by peer")):
        with pytest.raises(RuntimeError) as raised:  # not a process group's failure: raised as it was
            _run_main(monkeypatch, tiny_setup, tmp_path / "other", raises(other))
        assert raised.value is other


# 3. a Ctrl-C while the launcher's start imports a C extension

# numpy's C extension imports its Python helpers while it initialises (torch imports numpy in the
# launcher's start): a KeyboardInterrupt there was swallowed by numpy (the launcher went on, exit 0),
# or left the extension half-loaded ("ImportError: cannot load module more than once per process")
@pytest.mark.parametrize("module", ["numpy._core._exceptions", "numpy._core._multiarray_umath"])
def test_a_ctrl_c_while_the_launcher_imports_a_c_extension_is_one_line(module, tmp_path):
    process = interrupted("module", "deepmolm_plugin.train", module, "deepmolm_plugin.train",
                          tmp_path)  # not the repository: PYTHONPATH picks the tree
    assert (process.returncode, process.stderr) == (130, f"\n{PROG}: interrupted\n"), process.stderr[-3000:]
