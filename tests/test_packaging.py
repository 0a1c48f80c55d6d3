"""`pip install .` ships every subpackage, with top-level patches/ as deepmolm_plugin.patches."""

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from interrupt_at import interrupted

ROOT = Path(__file__).resolve().parents[1]


def _source_packages():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "deepmolm_plugin").rglob("__init__.py")}
    return found | {"deepmolm_plugin.patches"}


def test_setup_cfg_lists_every_package():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    assert listed == _source_packages()
    assert "deepmolm_plugin.patches = patches" in cfg["options"]["package_dir"]


def test_wheel_contains_patches_as_subpackage(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("deepmolm_plugin-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "deepmolm_plugin/patches/__init__.py" in names
    assert not any(n.startswith("patches/") for n in names)
    for package in _source_packages():
        assert package.replace(".", "/") + "/__init__.py" in names, package


def test_console_scripts_start_their_tool_and_a_ctrl_c_while_it_loads_is_one_line(monkeypatch, capsys):
    # was: a Ctrl-C in the first second or two (importing RDKit, torch) was a 25-line
    # KeyboardInterrupt traceback from inside an import, not one line and exit 130
    import importlib.util

    from deepmolm_plugin import entry_points

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = dict(line.split(" = ") for line in cfg["options.entry_points"]["console_scripts"].split("\n") if line)
    called = {}
    monkeypatch.setattr(entry_points, "_run", lambda module, function, prog: called.setdefault(prog, (module, function)))
    for prog, target in scripts.items():
        module, function = target.split(":")
        assert module == "deepmolm_plugin.entry_points"
        getattr(entry_points, function)()
        tool, main = called[prog]
        spec = importlib.util.find_spec(tool)
        assert spec is not None and f"def {main}(" in Path(spec.origin).read_text(), (prog, tool, main)
    monkeypatch.undo()
    monkeypatch.setattr(entry_points, "_exit", lambda status: status)  # the process's end: os._exit

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(entry_points.importlib, "import_module", interrupted)
    assert entry_points.prepare() == 130
    assert capsys.readouterr().err == "deepmolm-prepare: interrupted while starting\n"
    # a second Ctrl-C while the tool cleans up after the first (was: a traceback from its `finally`)
    import types

    def cleaning_up():
        try:
            raise KeyboardInterrupt  # the first: the tool prints its own line ...
        finally:
            raise KeyboardInterrupt  # ... unless the second comes first
    monkeypatch.setattr(entry_points.importlib, "import_module", lambda name: types.SimpleNamespace(main=cleaning_up))
    assert entry_points.prepare() == 130
    assert capsys.readouterr().err == "\ndeepmolm-prepare: interrupted\n"


def _python_m_tools():
    """{dotted module: its run_module call} for every module of the package with a __main__ block."""
    import ast

    tools = {}
    for path in sorted((ROOT / "deepmolm_plugin").rglob("*.py")):
        tree = ast.parse(path.read_text())
        mains = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
        if mains:
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            tools[module] = (tree, mains)
    return tools


def test_every_python_m_tool_starts_through_the_interrupt_guard_before_its_imports():
    # 2026-12-06: `python -m deepmolm_plugin.cli` / `.train` (the README's commands) imported torch and the
    # host inside main without the console scripts' guard: a Ctrl-C in their first seconds was a 25-77 line
    # KeyboardInterrupt traceback and exit status -2. A later session: the guard started at main, after the
    # module's own imports (`make demo`'s first 3-8 s: torch and open_clip; model_vqa, report: 1 s)
    import ast

    tools = _python_m_tools()
    assert {"deepmolm_plugin.demo", "deepmolm_plugin.train", "deepmolm_plugin.cli", "deepmolm_plugin.gui.__main__",
            "deepmolm_plugin.eval.model_vqa", "deepmolm_plugin.eval.report"} <= set(tools)
    for module, (tree, mains) in tools.items():
        assert len(mains) == 1, module
        body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        first = next(node for node in body if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"))
        assert first is mains[0], f"{module}: its __main__ block must come before its imports"
        calls = [n for n in ast.walk(first) if isinstance(n, ast.Call) and ast.unparse(n.func) == "run_module"]
        assert calls and ast.literal_eval(calls[0].args[0]) == module, module


# their packages' own imports (RDKit, e3fp, torch) come before any line of the tool's module; their
# console scripts (deepmolm-fingerprint, -render, -kflm2) are the documented way and are guarded
_HEAVY_PACKAGES = {"deepmolm_plugin.molecule.tools", "deepmolm_plugin.property.cli"}


@pytest.mark.parametrize("module", sorted(set(_python_m_tools()) - _HEAVY_PACKAGES))
def test_a_ctrl_c_while_a_python_m_tool_imports_is_one_line(module):
    # a Ctrl-C at the first import from outside the package once the guard has started (`interrupt_at`)
    process = interrupted("module", module, "*", module, ROOT)
    prog = "python -m " + module.removesuffix(".__main__")
    assert (process.returncode, process.stderr, process.stdout) == (130, f"{prog}: interrupted while starting\n", "")


def test_a_ctrl_c_while_the_training_launcher_starts_is_one_line():
    # SIGINT when torch is first looked for: inside main's checks and imports (the launcher module itself
    # loads nothing heavy; was: a 1 s sleep, which now and then landed before main or after its start)
    process = interrupted("module", "deepmolm_plugin.train", "torch", "deepmolm_plugin.train", ROOT,
                          armed_by="deepmolm_plugin.train", timeout=120)
    assert (process.returncode, process.stderr, process.stdout) == \
        (130, "\npython -m deepmolm_plugin.train: interrupted\n", ""), process.stderr[-3000:]
