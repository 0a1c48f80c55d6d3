"""Fifteenth round: file names in default record ids, and run_eval.sh paths starting with "-".

- deepmolm-prepare without --id-column (CSV) or --id-field (SDF) makes ids "<file>#<row>": a
  file named " esol.csv" (or with a tab in its name) failed every row at stage "id", exit 1,
  blaming ids the user never wrote. Now the name is refused once, before any row is read, in
  one line naming the file and the option, exit 2, nothing prepared.
- run_eval.sh with OUT "-results" (or DATA "-data.json", MODEL "-model"): dirname read it as
  options ("dirname: invalid option -- 'r'", exit 1). Now every path is a path.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import deepmolm_plugin
from test_hostile_eval_eleventh import _fake_python
from test_prepare import prepare

TINY = ["--image-size", "32", "--no-progress", "--workers", "1"]
SCRIPT = Path(deepmolm_plugin.__file__).resolve().parents[1] / "scripts" / "eval" / "run_eval.sh"
# one carbon atom, untitled (the first line of the record is blank), with a label field Y
SDF_RECORD = ("\n  test\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n"
              "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
              "M  END\n> <Y>\n1.5\n\n> <ID>\nm{}\n\n$$$$\n")


@pytest.mark.parametrize("name, why", [(" esol.csv", "white space at its start"),
                                       ("tab\tname.csv", "a control character ('\\t'")])
def test_csv_file_name_that_cannot_make_ids_is_one_refusal(tmp_path, capsys, name, why):
    data = tmp_path / name
    data.write_text("smiles,y,key\nCCO,1.0,a\nCC,2.0,b\n")
    out = tmp_path / "out"
    code, _ = prepare("--format", "csv", "--input", data, "--out", out, "--label-columns", "y", *TINY)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(data) in lines[0] and repr(Path(name).stem) in lines[0] and why in lines[0]
    assert "--id-column" in lines[0] and "every item failed" not in err
    assert not out.exists()
    # the same file with its own ids is prepared
    code, _ = prepare("--format", "csv", "--input", data, "--out", out, "--label-columns", "y",
                      "--id-column", "key", *TINY)
    assert code == 0, capsys.readouterr().err
    assert sorted(r["id"] for r in json.loads((out / "train.json").read_text())) == ["a:property:y", "b:property:y"]


def test_sdf_file_name_that_cannot_make_ids_is_one_refusal(tmp_path, capsys):
    data = tmp_path / " mols.sdf"
    data.write_text(SDF_RECORD.format(1) + SDF_RECORD.format(2))
    out = tmp_path / "out"
    code, _ = prepare("--format", "sdf", "--input", data, "--out", out, "--label-columns", "Y", *TINY)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "' mols.sdf'" in lines[0] and "white space at its start" in lines[0] and "--id-field" in lines[0]
    assert not out.exists()
    code, _ = prepare("--format", "sdf", "--input", data, "--out", out, "--label-columns", "Y",
                      "--id-field", "ID", *TINY)
    assert code == 0, capsys.readouterr().err
    assert sorted(r["id"] for r in json.loads((out / "train.json").read_text())) == ["m1:property:Y", "m2:property:Y"]


def test_run_eval_takes_paths_that_start_with_a_dash(tmp_path):
    """MODEL "-model", DATA "-data.json", OUT "-results", relative: the whole run, with a stand-in
    for model_vqa (the real questions and report steps)."""
    (tmp_path / "-model").mkdir()
    mw = "What is the molecular weight of this molecule?"
    data = [{"id": f"r{i}", "smiles": "CCO", "task": "Molecular Weight", "properties": {"Molecular Weight": 46.07},
             "conversations": [{"from": "human", "value": f"<image>\n{mw}"},
                               {"from": "gpt", "value": "The molecular weight is 46.07 g/mol."}]} for i in range(2)]
    (tmp_path / "-data.json").write_text(json.dumps(data))
    env = {**os.environ, "PYTHON": str(_fake_python(tmp_path)), "REPORT_ARGS": "--no-plots"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("DEEPMOLM_OUTPUT_LOCK_FD", None)
    proc = subprocess.run(["bash", str(SCRIPT), "-model", "-data.json", "-results", "1"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    assert "invalid option" not in proc.stderr and "unrecognized arguments" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "-results" / "metrics.json").read_text())["counts"]["answers"] == 2
    # an error about such a path names it (and exits 2, the status for bad arguments)
    proc = subprocess.run(["bash", str(SCRIPT), "-model", "-missing.json", "-results", "1"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "DATA ./-missing.json is not a file" in proc.stderr, proc.stderr
    (tmp_path / "-file").write_text("")
    proc = subprocess.run(["bash", str(SCRIPT), "-model", "-data.json", "-file/out", "1"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "OUT ./-file/out: ./-file is a file" in proc.stderr, proc.stderr
