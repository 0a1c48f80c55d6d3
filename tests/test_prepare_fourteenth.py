"""deepmolm-prepare, fourteenth round: a CLI module that did nothing when run, label names
no record can carry, tables that are not comma-separated, and SMILES "that do not parse".

Was: `python -m deepmolm_plugin.data.prepare.cli ...` did nothing and exited 0 (no
`__main__` guard); a label name with a line break, `<image>` or a chat-template token
failed every row at run time, blaming the id or the answer; a semicolon- or tab-separated
"CSV" was "no 'smiles' column in the header ['smiles;logS']" under "reader stopped after 0
items"; `[H+]` and `*CC` were "SMILES ... does not parse" though they parse and are refused."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import deepmolm_plugin
from deepmolm_plugin.data.prepare.schedule import check_reader_options
from deepmolm_plugin.data.prepare.common import PrepareError
from deepmolm_plugin.data.sources import csv_source, sdf_source  # noqa: F401 (registers the readers)
from deepmolm_plugin.data.sources.base import READERS, check_options
from test_prepare import prepare

TINY = ["--image-size", "32", "--no-progress"]
PACKAGE = Path(deepmolm_plugin.__file__).resolve().parent  # the tree under test (old or new)
ROOT = PACKAGE.parent

# --- 1. every module with a command-line main runs when started with `python -m` -----------

# Modules that define a main-like function or parse a command line but are not meant to be
# run themselves: {path relative to the repository: why}. A new entry needs a reason.
NOT_RUN = {
    "deepmolm_plugin/training/arguments.py": "parses deepmolm_plugin.train's command line; run that module",
}


def _command_line_modules() -> list:
    """(relative path, why it is a command line) for every module of the package, scripts/
    and patches/ that defines `main` / `*_main`, builds an argument parser, or is a
    `__main__.py`."""
    found = []
    for folder in (PACKAGE, ROOT / "scripts", ROOT / "patches"):
        for path in sorted(folder.rglob("*.py")) if folder.is_dir() else []:
            tree = ast.parse(path.read_text(), str(path))
            mains = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and (n.name == "main" or n.name.endswith("_main"))]
            parsers = any(isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", None))
                          in ("ArgumentParser", "HfArgumentParser") for n in ast.walk(tree))
            if mains or parsers or path.name == "__main__.py":
                why = f"defines {mains}" if mains else ("builds a parser" if parsers else "is a __main__.py")
                found.append((path, why, tree))
    return found


def _guard(tree: ast.Module):
    """The module's top-level `if __name__ == "__main__":` that calls something, or None."""
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"':
            if any(isinstance(n, ast.Call) for n in ast.walk(node)):
                return node
    return None


def test_every_module_with_a_command_line_main_has_a_main_guard():
    modules = _command_line_modules()
    assert any(path.name == "cli.py" and path.parent.name == "prepare" for path, _, _ in modules)
    missing = [f"{path.relative_to(ROOT)} ({why})" for path, why, tree in modules
               if _guard(tree) is None and path.relative_to(ROOT).as_posix() not in NOT_RUN]
    assert not missing, ("modules with a command line but no `if __name__ == \"__main__\":` guard: `python -m` "
                         f"runs them as a silent no-op (exit 0); add the guard or list them in NOT_RUN: {missing}")


def test_python_m_prepare_cli_runs_the_command(tmp_path):
    """was: exit status 0 and no output, whatever the arguments."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "deepmolm_plugin.data.prepare.cli", "--format", "nosuch",
                           "--input", "x.csv", "--out", str(tmp_path / "o")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "invalid choice: 'nosuch'" in done.stderr
    assert "RuntimeWarning" not in done.stderr  # the package no longer imports the module it is about to run


# --- 2. label names that no record can carry: one usage error before reading ---------------

BAD_NAMES = [
    ("y=act <image> x", "contains '<image>', the image placeholder"),
    ("y=<|im_end|>", "contains '<|im_end|>', a control token of the chat template"),
    ("y=a\tb", "holds a control character ('\\t'"),
    ("y=a\u200bb", "invisible format character (U+200B)"),
    ("y=a\x01b", "holds the control character U+0001"),
    ("y=a\nb", "holds a control character ('\\n'"),
]


@pytest.mark.parametrize("spec, reason", BAD_NAMES)
def test_csv_label_name_no_record_can_carry_is_refused_before_any_row(tmp_path, spec, reason):
    data = tmp_path / "plain.csv"
    data.write_text("smiles,y\nCCO,1\nCCN,2\n")
    items = READERS["csv"](str(data), {"label_columns": [spec]})
    with pytest.raises(ValueError) as error:
        next(iter(items))
    name = spec.partition("=")[2]
    assert f"every item of the label name {name!r} would fail" in str(error.value)
    assert reason in str(error.value)
    # a name with spaces, brackets, a slash or a comma is still a label
    items = list(READERS["csv"](str(data), {"label_columns": ["y=log S (mol/L), pH-free"]}))
    assert [item.task for item in items] == ["property:log S (mol/L), pH-free"] * 2


def test_csv_header_label_with_a_line_break_is_one_usage_error(tmp_path, capsys):
    """The repro: a header cell "LogS\\n(mol/L)" failed every row at stage id, blaming the id."""
    data = tmp_path / "nl_header.csv"
    data.write_text('smiles,"LogS\n(mol/L)"\nCCO,1.5\nCCN,2\n')
    out = tmp_path / "o"
    code, _ = prepare("--format", "csv", "--input", data, "--out", out, "--label-columns", "LogS\n(mol/L)", *TINY)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "label name 'LogS\\n(mol/L)' would fail" in err and "holds a control character" in err
    assert "stopped after" not in err
    assert not (out / "failures.jsonl").exists()


@pytest.mark.parametrize("spec, reason", BAD_NAMES)
def test_sdf_label_name_no_record_can_carry_is_refused_before_the_output_is_touched(tmp_path, spec, reason):
    with pytest.raises(PrepareError) as error:
        check_reader_options("sdf", {"label_columns": [spec]})
    assert "every item of the label name" in str(error.value) and reason in str(error.value)
    check_reader_options("sdf", {"label_columns": ["y=log S (mol/L)"]})  # a usable name passes


@pytest.mark.parametrize("fmt", ["csv", "sdf"])
@pytest.mark.parametrize("value", [5, [5], {"y": 1}])
def test_column_option_that_is_no_name_or_list_of_names_is_a_usage_error(fmt, value):
    """was: a TypeError traceback (``--option label_columns=5``)."""
    with pytest.raises(ValueError, match="option label_columns must be a column name"):
        check_options(fmt, {"label_columns": value})


# --- 3. tables that are not comma-separated ---------------------------------------------------


@pytest.mark.parametrize("text, what", [("smiles;logS\nCCO;-0,77\nCCN;1,5\n", "semicolons (';')"),
                                        ("smiles\tlogS\nCCO\t-0.77\nCCN\t1.5\n", "tabs ('\\t')"),
                                        ("smiles|logS\nCCO|-0.77\n", "vertical bars ('|')")])
@pytest.mark.parametrize("smiles_column", [[], ["--smiles-column", "smiles"]])
def test_csv_that_is_not_comma_separated_is_refused_naming_the_separator(tmp_path, capsys, text, what,
                                                                        smiles_column):
    data = tmp_path / "excel.csv"
    data.write_text(text)
    code, _ = prepare("--format", "csv", "--input", data, "--out", tmp_path / "o", "--label-columns", "logS",
                      *smiles_column, *TINY)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"the header is one cell, {text.splitlines()[0]!r}, holding {what}" in err
    assert "the file is not comma-separated; save it comma-separated" in err
    assert "stopped after" not in err and "no 'smiles' column" not in err


def test_chebi20_file_that_is_not_tab_separated_is_refused_naming_the_separator(tmp_path, capsys):
    for name in ("train.txt", "validation.txt", "test.txt"):
        (tmp_path / name).write_text("CID,SMILES,description\n1,CCO,The molecule is ethanol.\n")
    code, _ = prepare("--format", "chebi20", "--input", tmp_path, "--out", tmp_path / "o", *TINY)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "holding commas (','): the file is not tab-separated; save it tab-separated" in err
    assert "stopped after" not in err


def test_header_problem_is_not_framed_as_a_read_that_stopped(tmp_path, capsys):
    """A missing column is a usage error before any row: was "reader stopped after 0 items"."""
    data = tmp_path / "t.csv"
    data.write_text("mol,y\nCCO,1\n")
    code, _ = prepare("--format", "csv", "--input", data, "--out", tmp_path / "o", "--label-columns", "y", *TINY)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "deepmolm-prepare: error: --format csv: no 'smiles' column in the header ['mol', 'y']" in err
    assert "stopped after" not in err


# --- 4. SMILES that parse but are refused ------------------------------------------------------


@pytest.mark.parametrize("smiles, reason", [
    ("[H+]", "SMILES '[H+]' is refused: no heavy atoms"),
    ("*CC", "SMILES '*CC' is refused: dummy/query atoms"),
    ("C1CC(", "unparseable SMILES 'C1CC('"),  # the reason names the SMILES: said once, as the other tools say it
])
def test_csv_refused_smiles_is_worded_as_refused_not_unparsed(tmp_path, smiles, reason):
    data = tmp_path / "w.csv"
    data.write_text(f"smiles,y\n{smiles},1\n")
    (failure,) = list(READERS["csv"](str(data), {"label_columns": ["y"]}))
    assert failure.stage == "smiles"
    assert failure.reason.startswith(reason), failure.reason
    assert "does not parse" not in failure.reason
