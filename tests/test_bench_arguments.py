"""The benchmark scripts check their command line before any work: each case below ran
for minutes and then failed with a traceback, or published nonsense (negative s/step, a
report for 5 workers on 2 cores, a relative --csv that the reruns, run elsewhere, lost)."""

import sys

import pytest

from host_fixtures import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import bench_encoder  # noqa: E402
import bench_feature_cache  # noqa: E402
import bench_kflm2  # noqa: E402
import bench_prepare  # noqa: E402


@pytest.mark.parametrize("script, argv, message", [
    (bench_encoder, ["--tiny", "--batch", "0"], "--batch: must be >= 1, got 0"),  # was: a reshape error
    (bench_encoder, ["--tiny", "--repeats", "0"], "--repeats: must be >= 1"),  # was: StatisticsError
    (bench_encoder, ["--tiny", "--image-size", "100"], "--image-size must be a multiple of 64"),
    (bench_encoder, ["--tiny", "--device", "foo"], "--device 'foo'"),
    (bench_encoder, ["--tiny", "--out-dir", "{file}"], "--out-dir: folder {file}: is a file"),  # was: after the run
    (bench_feature_cache, ["--steps", "-1"], "--steps: must be >= 1, got -1"),  # was: negative s/step published
    (bench_kflm2, ["--seeds", "0"], "--seeds: must be >= 1"),
    (bench_kflm2, ["--data", "{missing}"], "no delaney-processed.csv"),  # was: FileNotFoundError
    (bench_prepare, ["--csv", "{missing}/x.csv"], "--csv: no such file"),
    (bench_prepare, ["--workers", "64"], "--workers 64: this machine has"),  # was: "64 workers" in the report
])
def test_bad_arguments_are_one_line_before_any_work(tmp_path, monkeypatch, capsys, script, argv, message):
    (tmp_path / "file").write_text("")
    fill = {"file": str(tmp_path / "file"), "missing": str(tmp_path / "missing")}
    argv = [a.format(**fill) for a in argv]
    monkeypatch.setattr(sys, "argv", [script.__name__ + ".py", *argv])
    with pytest.raises(SystemExit) as exit_:
        script.main(argv) if script in (bench_encoder, bench_kflm2) else script.main()
    assert exit_.value.code == 2
    assert message.format(**fill) in capsys.readouterr().err
