"""scripts/gpu_check.py rehearsed on the CPU (--dry-run: tiny sizes, no CUDA): the encoder
benchmark per batch, the launcher under ZeRO-2 and ZeRO-3 and with the feature cache, and
its result files, through the same code the GPU run takes."""

import json
import math
import os
import subprocess
import sys

from host_fixtures import ROOT


def test_dry_run_exercises_every_check(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--dry-run", "--steps", "2",
                           "--out-dir", str(tmp_path)], cwd=tmp_path, env=env, text=True, capture_output=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] is True
    encoder = report["encoder"]
    assert sorted({(r["batch"], r["impl"]) for r in encoder}) == [
        (1, "ours"), (1, "reference"), (2, "ours"), (2, "reference")]
    for r in encoder:
        assert r["latency_s"] > 0 and r["device_peak_tflops"] > 0 and r["max_abs_diff"] <= 1e-4
    training = report["training"]
    assert [(r["zero"], r["feature_cache"]) for r in training] == [
        ("zero2", "off"), ("zero3", "off"), ("zero2", "cold"), ("zero2", "warm")]
    for r in training:
        assert len(r["losses"]) == 2 and all(math.isfinite(x) for x in r["losses"]) and r["samples_per_s"] > 0
    for name in ("gpu_check.md", "gpu_encoder_b1.json", "gpu_encoder_b2.md"):
        assert (tmp_path / name).is_file()
    assert "| zero3 | off |" in (tmp_path / "gpu_check.md").read_text()
