"""scripts/gpu_check.py rehearsed on the CPU (--dry-run: tiny sizes, no CUDA): the encoder
benchmark per batch and SAM attention path (sdpa, and the rel-pos terms folded), SAM's
attention ways alone at the largest batch, the
launcher under ZeRO-2 and ZeRO-3 and with the feature cache, and its result files, through
the same code the GPU run takes."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from host_fixtures import ROOT


def test_dry_run_exercises_every_check(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--dry-run", "--steps", "2",
                           "--sam-attention", "sdpa", "folded", "--out-dir", str(tmp_path)], cwd=tmp_path, env=env, text=True, capture_output=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] is True
    encoder = report["encoder"]
    assert sorted((r["batch"], r["impl"], r["sam_attention"]) for r in encoder) == [
        (1, "ours", "folded"), (1, "ours", "sdpa"), (1, "reference", "-"), (1, "reference", "-"),
        (2, "ours", "folded"), (2, "ours", "sdpa"), (2, "reference", "-"), (2, "reference", "-")]
    for r in encoder:
        # the dry run's encoder runs the GPU run's bf16 where the CPU has it natively
        assert r["latency_s"] > 0 and r["device_peak_tflops"] > 0
        assert r["max_abs_diff"] <= (1e-4 if r["dtype"] == "float32" else 0.1)
    training = report["training"]
    assert [(r["zero"], r["feature_cache"]) for r in training] == [
        ("zero2", "off"), ("zero3", "off"), ("zero2", "cold"), ("zero2", "warm")]
    for r in training:
        assert len(r["losses"]) == 2 and all(math.isfinite(x) for x in r["losses"]) and r["samples_per_s"] > 0
    for name in ("gpu_check.md", "gpu_encoder_b1.json", "gpu_encoder_b2.md", "gpu_encoder_b2_folded.md"):
        assert (tmp_path / name).is_file()
    ways = json.loads((tmp_path / "gpu_sam_attention_b2.json").read_text())["results"]
    assert {"pieces", "folded"} <= {r["way"] for r in ways if "error" not in r}
    assert "| zero3 | off |" in (tmp_path / "gpu_check.md").read_text()


def test_a_failed_launcher_run_is_recorded_and_the_others_still_run(tmp_path):
    """A launcher run past --run-timeout is killed with its workers, named under
    "failures", and the script goes on to the next run and exits 1 (device time is too
    scarce to lose the remaining checks to one hang)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--dry-run", "--only", "training",
                           "--run-timeout", "1", "--out-dir", str(tmp_path)], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["encoder"] == [] and report["training"] == []
    assert [(f["check"], f["error"]) for f in report["failures"]] == [
        ("zero2 (feature cache off)", "no result after 1 s"), ("zero3 (feature cache off)", "no result after 1 s"),
        ("zero2 (feature cache cold)", "no result after 1 s"),
        ("zero2 (feature cache warm)", "skipped: the cold run that fills the cache failed")]
    assert "4 check(s) FAILED" in proc.stdout


def test_a_timed_out_launcher_is_stopped_with_workers_in_their_own_session(tmp_path):
    """torch.distributed.run starts its workers with start_new_session: killing the
    launcher's process group left them running (holding the GPU) and holding the stderr
    pipe, so the script then waited for them without a limit. A stand-in launcher that
    ignores SIGTERM and starts such a worker: both are gone soon after the timeout."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_check import run_group

    launcher = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        "print('worker', w.pid, file=sys.stderr, flush=True)\n"
        "time.sleep(120)\n")
    began = time.monotonic()
    returncode, stderr = run_group([sys.executable, "-c", launcher], tmp_path, dict(os.environ), timeout=5, grace=1)
    assert returncode is None and time.monotonic() - began < 30
    worker = int(stderr.split("worker", 1)[1].split()[0])
    time.sleep(0.5)
    state = (Path("/proc") / str(worker) / "stat")
    assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # gone, or dead and unreaped


def test_the_real_size_setup_trains_on_the_cpu(tmp_path):
    """The CPU-size sibling of the GPU training check at the real encoder size (the dry run
    uses the tiny preset): one launcher step on write_setup's deepseek-ocr setup. A fixed
    --model_max_length 256 was shorter than a 1024 px view's 273 image positions, and the
    launcher refused every record; only the GPU run had the real size."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_feature_cache import launcher_args, trainer_metrics, write_setup

    setup = write_setup(tmp_path / "setup", "deepseek-ocr")
    assert setup["model_max_length"] >= 273 + 64
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "deepmolm_plugin.train", *launcher_args(setup, out, 1, 1)],
                          cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    losses = trainer_metrics(out, 1)["losses"]
    assert len(losses) == 1 and math.isfinite(losses[0])


def test_ctrl_c_stops_the_launcher_and_its_workers(tmp_path):
    """The launcher runs in a session of its own, so the terminal's Ctrl-C did not reach it:
    after Ctrl-C it kept training (on the GPU) with its temporary folder deleted. Now Ctrl-C
    in run_group stops the tree as the timeout does, and is raised again."""
    import _thread
    import threading

    import pytest

    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_check import run_group

    pids = tmp_path / "pids"
    launcher = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        f"open({str(pids)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{w.pid}}')\n"
        f"os.replace({str(pids)!r} + '.tmp', {str(pids)!r})\n"
        "time.sleep(120)\n")

    def interrupt_once_started():
        while not pids.is_file():
            time.sleep(0.05)
        _thread.interrupt_main()  # what Ctrl-C does to the script

    threading.Thread(target=interrupt_once_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_group([sys.executable, "-c", launcher], tmp_path, dict(os.environ), timeout=100, grace=1)
    def ended(pid):  # gone, or dead and unreaped
        state = Path("/proc") / str(pid) / "stat"
        try:
            return state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    for pid in map(int, pids.read_text().split()):
        for _ in range(100):  # a SIGKILLed process takes a moment to exit
            if ended(pid):
                break
            time.sleep(0.1)
        assert ended(pid), pid
