"""deepmolm-kflm2, fifteenth round: a featuriser cache inside --out is refused before any work
(it was filled, then --out was refused as "not a run folder" on this and every rerun), and
test-file names that cannot be file or table names as they are (245 bytes; a newline, a '|')
give plot files and results.md rows that are well formed (they failed after every seed had
trained, or split the table rows)."""

from __future__ import annotations

import json
import os
import re

import pytest

from deepmolm_plugin.property import cli as kcli
from deepmolm_plugin.property import featurizers

from test_hostile_kflm2 import FORTY, _run
from test_hostile_property_images import _csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads cost more than they give


def _data(tmp_path, header=("smiles", "y")):
    rows = [(s, i % 7, (i * 3) % 5) for i, s in enumerate(FORTY)]
    return _csv(tmp_path / "d.csv", list(header), [r[:len(header)] for r in rows])


# ------------------------------------------------------------------- the featurisers' cache inside --out
@pytest.mark.parametrize("where", ["inside", "equal", "environment"])
def test_a_cache_inside_or_equal_to_out_is_refused_before_anything_is_computed(tmp_path, monkeypatch, capsys,
                                                                                 where):
    # was: the cache was filled in run/cache, then --out refused ("it holds cache, which is not a
    # file as a run writes it ... not even with --overwrite"), and every rerun the same
    def computed(*a, **k):
        raise AssertionError("a featuriser was built: the refusal came after work")

    monkeypatch.setattr(featurizers, "make_featurizer", computed)
    monkeypatch.delenv("DEEPMOLM_PROPERTY_CACHE", raising=False)
    data, out = _data(tmp_path), tmp_path / "run"
    (tmp_path / "link").symlink_to(out, target_is_directory=True)  # another spelling of --out
    argv = _run(data, out)
    argv[argv.index("--features") + 1] = "morgan"
    if where == "inside":
        argv += ["--cache-dir", str(out / "cache")]
    elif where == "equal":
        argv += ["--cache-dir", str(tmp_path / "x" / ".." / "run")]
    else:
        out.mkdir()  # an empty --out is taken; the cache is named through the link to it
        monkeypatch.setenv("DEEPMOLM_PROPERTY_CACHE", str(tmp_path / "link" / "c"))
    for _ in range(2):  # the rerun says the same
        with pytest.raises(SystemExit) as exit_:
            kcli.main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--out" in err and "--cache-dir" in err, err
        assert ("is --out" if where == "equal" else "is inside --out") in err, err
        assert ("$DEEPMOLM_PROPERTY_CACHE" if where == "environment" else "--cache-dir") in err.split("error: ")[1][:30], err
        assert not out.exists() or not any(out.iterdir())  # no cache, no run file


# ------------------------------------------------------------------- test-file names
def _test_file_run(tmp_path, name, targets=("y",)):
    data = _data(tmp_path, ("smiles", *targets))
    rows = [("CCCl", 1, 2), ("CCBr", 2, 1), ("CCCCO", 3, 0), ("c1ccccc1C", 4, 3)]
    test = _csv(tmp_path / f"{name}.csv", ["smiles", *targets], [r[:1 + len(targets)] for r in rows])
    out = tmp_path / "run"
    argv = [a for a in _run(data, out, targets=targets, extra=["--test-file", str(test), "--sizes", "0.8", "0.2", "0"])
            if a != "--no-plots"]
    return argv, out


def test_a_245_byte_test_file_stem_runs_to_results_and_plots(tmp_path):
    # was: every seed trained, then "cannot write the reports ... File name too long" for
    # plots/parity_<stem>_0.png, and the rerun the message suggested failed the same way
    name = "t" * 245
    argv, out = _test_file_run(tmp_path, name)
    assert kcli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert name in results["summary"]  # the reports keep the real name
    assert f"| {name} |" in (out / "results.md").read_text()
    plots = sorted(p.name for p in (out / "plots").iterdir())
    parity = [p for p in plots if p.startswith("parity_")]
    assert "learning_curves.png" in plots and len(parity) == 1 and len(parity[0]) <= 100, plots
    assert kcli.main(argv) == 0  # resumed: the reports are written again


def test_plot_file_names_are_short_ascii_and_never_shared():
    from deepmolm_plugin.property.report import plot_file_name

    assert plot_file_name("parity", "ext_1", "_0") == "parity_ext_1_0.png"  # a plain name as before
    names = ["t" * 245, "t" * 244 + "u", "a b", "a_b", "a\nb", "é", ".hidden", "x-0123abcd"]
    files = [plot_file_name("roc", n) for n in names]
    assert len(set(files)) == len(files), files
    assert all(re.fullmatch(r"roc_[A-Za-z0-9_][A-Za-z0-9._-]{0,80}\.png", f) for f in files), files


def test_a_newline_and_a_bar_in_names_give_well_formed_table_rows(tmp_path):
    # was: written as-is into results.md, the newline split a table row in two and '|' added a cell
    name, target = "ext\nA|B", "p|q\nr"
    argv, out = _test_file_run(tmp_path, name, targets=("y", target))
    assert kcli.main(argv) == 0
    text = (out / "results.md").read_text()
    assert name in json.loads((out / "results.json").read_text())["summary"]
    assert "ext\nA" not in text and "p|q\nr" not in text and "q\nr" not in text
    tables = re.findall(r"(?:^\|.*\n)+", text, flags=re.M)
    assert len(tables) == 3, text  # summary, per target, per seed
    for table in tables:
        widths = {len(re.split(r"(?<!\\)\|", row)) for row in table.splitlines()}
        assert len(widths) == 1, table
    assert "| ext\\nA\\|B |" in text and "| p\\|q\\nr |" in text and "ext\\nA\\|B: " in text
    parity = [p.name for p in (out / "plots").glob("parity_*")]
    assert parity and all(re.fullmatch(r"[A-Za-z0-9._-]+", p) for p in parity), parity


def test_a_data_or_test_file_path_that_is_not_utf8_is_refused_before_out(tmp_path, capsys):
    # was: every seed trained, then a UnicodeEncodeError traceback writing results.md
    argv, out = _test_file_run(tmp_path, "ext")
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/a\xffb.csv")
    os.rename(tmp_path / "ext.csv", odd)
    argv[argv.index("--test-file") + 1] = odd
    with pytest.raises(SystemExit) as exit_:
        kcli.main(argv)
    assert exit_.value.code == 2 and "not UTF-8" in capsys.readouterr().err
    assert not out.exists()
