"""deepmolm-fingerprint / deepmolm-render: JSONL content, failure reports, exit codes."""

import json
import subprocess
import sys

import pytest
from PIL import Image
from rdkit import Chem

from deepmolm_plugin.molecule import molecule_from_smiles, molecule_fp
from deepmolm_plugin.molecule.tools import fingerprint_main, main, render_main


@pytest.fixture(scope="module")
def mixed_sdf(tmp_path_factory):
    """good (aspirin, 3D) / bad (pentavalent carbon) / good (ethanol, 3D)."""
    aspirin = molecule_from_smiles("CC(=O)Oc1ccccc1C(=O)O").mol
    aspirin.SetProp("_Name", "aspirin")
    ethanol = molecule_from_smiles("CCO").mol
    ethanol.SetProp("_Name", "ethanol")
    bad = Chem.MolFromSmiles("FC(F)(F)(F)F", sanitize=False)
    bad.SetProp("_Name", "pentafluoro")
    blocks = [Chem.MolToMolBlock(aspirin), Chem.MolToMolBlock(bad, kekulize=False), Chem.MolToMolBlock(ethanol)]
    path = tmp_path_factory.mktemp("tools") / "mixed.sdf"
    path.write_text("".join(b + "$$$$\n" for b in blocks))
    return path, aspirin


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_fingerprint_reports_keeps_going_and_exits_1(tmp_path, mixed_sdf, capsys):
    path, aspirin = mixed_sdf
    out, failures = tmp_path / "fp.jsonl", tmp_path / "failed.jsonl"
    code = fingerprint_main([str(path), "--out", str(out), "--failures", str(failures), "--no-progress"])
    assert code == 1
    lines = read_jsonl(out)
    assert [l["id"] for l in lines] == ["aspirin", "pentafluoro", "ethanol"]
    good, bad, _ = lines
    assert set(good) == {"id", "molecule_fp", "num_atoms", "fp_bits", "fp_levels", "source", "conformer", "notes",
                         "error"}
    assert good["error"] is None and good["conformer"] == "file" and good["source"] == f"{path}#0"
    assert good["molecule_fp"] == molecule_fp(aspirin).tolist()
    assert good["num_atoms"] == len(good["molecule_fp"]) == 13
    assert bad["molecule_fp"] is None and bad["num_atoms"] is None
    assert "valence" in bad["error"].lower() and bad["source"] == f"{path}#1"
    assert read_jsonl(failures) == [{"id": "pentafluoro", "source": f"{path}#1", "error": bad["error"]}]
    err = capsys.readouterr().err
    assert f"FAILED pentafluoro ({path}#1)" in err and "2 of 3 records; 1 failed" in err


def test_fingerprint_smiles_inputs_and_policy(capsys):
    assert fingerprint_main(["--smiles", "CCO", "c1ccccc1", "--no-progress"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [(l["id"], l["conformer"], l["num_atoms"]) for l in lines] == [("CCO", "generated", 3), ("c1ccccc1", "generated", 6)]
    assert fingerprint_main(["--smiles", "CCO", "--policy", "from-file", "--no-progress"]) == 1
    (line,) = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert "no coordinates" in line["error"]


def test_missing_file_and_max_atoms(tmp_path, mixed_sdf, capsys):
    path, _ = mixed_sdf
    code = fingerprint_main([str(tmp_path / "nope.sdf"), str(path), "--max-atoms", "5", "--too-large", "truncate", "--no-progress"])
    assert code == 1
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert "no such file" in lines[0]["error"] and "--smiles" in lines[0]["error"]
    assert lines[1]["num_atoms"] == 5 and "truncated" in lines[1]["notes"][0]
    assert lines[3]["num_atoms"] == 3 and lines[3]["notes"] == []


def test_render_writes_pngs_and_an_index(tmp_path, mixed_sdf):
    path, _ = mixed_sdf
    out = tmp_path / "png"
    assert render_main([str(path), "--out", str(out), "--size", "256", "--no-progress"]) == 1
    index = read_jsonl(out / "index.jsonl")
    assert [(l["id"], l["image"]) for l in index] == [("aspirin", "aspirin.png"), ("pentafluoro", None), ("ethanol", "ethanol.png")]
    assert index[1]["error"] and index[1]["source"] == f"{path}#1"
    image = Image.open(out / "aspirin.png")
    assert image.size == (256, 256) and image.mode == "RGB"
    assert render_main(["--smiles", "CCO", "CCO", "--out", str(out / "dup"), "--size", "128", "--no-progress"]) == 0
    assert sorted(p.name for p in (out / "dup").glob("*.png")) == ["CCO.png", "CCO__2.png"]


def test_dispatcher_and_usage_errors(tmp_path, capsys):
    assert main([]) == 2
    with pytest.raises(SystemExit) as info:
        fingerprint_main([])
    assert info.value.code == 2
    result = subprocess.run(
        [sys.executable, "-m", "deepmolm_plugin.molecule.tools", "fingerprint", "--smiles", "C", "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["molecule_fp"][0][1:] == [-1, -1, -1]


def test_fingerprint_of_a_400_carbon_chain_ends_at_the_cap():
    # Before the cap this ran for more than five minutes (ETKDG + MMFF94 on 1202 atoms).
    result = subprocess.run(
        [sys.executable, "-m", "deepmolm_plugin.molecule.tools", "fingerprint", "--smiles", "C" * 400,
         "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "too large: 400 heavy atoms > max_atoms=256" in result.stderr
    assert "0 of 1 records; 1 failed" in result.stderr
    (line,) = [json.loads(l) for l in result.stdout.splitlines()]
    assert line["molecule_fp"] is None and "400 heavy atoms > max_atoms=256" in line["error"]


def test_max_atoms_and_embed_timeout_flags(tmp_path, capsys):
    assert fingerprint_main(["--smiles", "CCCO", "CCO", "--max-atoms", "3", "--no-progress"]) == 1
    first, second = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert "4 heavy atoms > max_atoms=3" in first["error"] and second["num_atoms"] == 3
    assert fingerprint_main(["--smiles", "CCCO", "--max-atoms", "none", "--embed-timeout", "none",
                             "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["num_atoms"] == 4
    out = tmp_path / "png"
    assert render_main(["--smiles", "CCCO", "CCO", "--max-atoms", "3", "--out", str(out), "--size", "64",
                        "--no-progress"]) == 1
    index = read_jsonl(out / "index.jsonl")
    assert "4 heavy atoms > max_atoms=3" in index[0]["error"] and index[1]["image"] == "CCO.png"
    for flag, value in (("--max-atoms", "0"), ("--max-atoms", "ten"), ("--embed-timeout", "0"),
                        ("--embed-timeout", "nan")):
        with pytest.raises(SystemExit) as info:
            fingerprint_main(["--smiles", "CCO", flag, value])
        assert info.value.code == 2
        assert f"argument {flag}" in capsys.readouterr().err


def test_render_names_are_stable_and_a_rerun_says_what_it_removes(tmp_path, capsys):
    """was: a record named `index` was index.png, then index__2.png on a rerun (the tool's
    own index.jsonl took the name); the earlier run's pictures went without a word."""
    out = tmp_path / "pngs"
    assert render_main(["--smiles", "CCO", "--out", str(out), "--size", "64", "--no-progress"]) == 0
    (tmp_path / "ids.csv").write_text("smiles,id\nCCO,index\n")
    for _ in range(2):
        assert render_main([str(tmp_path / "ids.csv"), "--out", str(out), "--size", "64", "--no-progress"]) == 0
        assert [json.loads(x)["image"] for x in (out / "index.jsonl").read_text().splitlines()] == ["index.png"]
    assert "removed 1 pictures (and unfinished ones) an earlier run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["index.jsonl", "index.png"]  # no hidden .part left


def test_tools_stop_on_ctrl_c_with_one_line_and_escape_control_characters(tmp_path, capsys, monkeypatch):
    """was: a KeyboardInterrupt traceback from inside RDKit and no word of the partial output;
    an id with a line break split its FAILED line in two."""
    from deepmolm_plugin.molecule import tools

    assert fingerprint_main(["--smiles", "C1CC\nC", "--no-progress", "--out", str(tmp_path / "fp.jsonl")]) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "C1CC\\nC" in failed[0]

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tools, "render_molecule", stop)
    assert render_main(["--smiles", "CCO", "--out", str(tmp_path / "pngs"), "--no-progress"]) == 130
    assert "deepmolm-render: interrupted after 0 records" in capsys.readouterr().err
    monkeypatch.setattr(tools, "fingerprint_record", stop)
    assert fingerprint_main(["--smiles", "CCO", "--no-progress", "--out", str(tmp_path / "fp.jsonl")]) == 130
    assert "deepmolm-fingerprint: interrupted after 0 records; --out" in capsys.readouterr().err


def test_render_index_that_is_a_folder_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "pngs" / "index.jsonl").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_:
        render_main(["--smiles", "CCO", "--out", str(tmp_path / "pngs"), "--no-progress"])
    assert exit_.value.code == 2 and "index.jsonl" in capsys.readouterr().err


def test_a_pipe_given_as_input_is_named_as_one(tmp_path, capsys):
    # was "no such file" for a path that exists (a FIFO, `<(...)`, /dev/stdin)
    import os

    os.mkfifo(tmp_path / "pipe")
    assert fingerprint_main([str(tmp_path / "pipe"), "--no-progress", "--out", str(tmp_path / "fp.jsonl")]) == 1
    assert "is not a regular file (a pipe or a device)" in capsys.readouterr().err
    assert render_main(["--smiles", "[H][H]", "--out", str(tmp_path / "pngs"), "--no-progress"]) == 1
    assert "no heavy atoms: DeepMoLM's tokens and depictions are of heavy atoms" in capsys.readouterr().err
