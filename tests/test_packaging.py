"""`pip install .` ships every subpackage, with top-level patches/ as deepmolm_plugin.patches."""

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

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


def test_every_python_m_tool_ends_through_the_interrupt_guard():
    # 2026-12-06: `python -m deepmolm_plugin.cli` / `.train` (the README's commands) imported torch and the
    # host inside main without the console scripts' guard: a Ctrl-C in their first seconds was a 25-77 line
    # KeyboardInterrupt traceback and exit status -2
    import ast

    for path in (ROOT / "deepmolm_plugin").rglob("*.py"):
        tree = ast.parse(path.read_text())
        mains = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
        if path.name == "__main__.py" and not mains:  # a package's __main__ runs at import
            mains = [tree]
        for block in mains:
            called = {ast.unparse(n.func) for n in ast.walk(block) if isinstance(n, ast.Call)}
            assert called & {"as_script", "prepare"}, (path, called)


def test_a_ctrl_c_while_the_training_launcher_starts_is_one_line():
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "deepmolm_plugin.train", "--help"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # inside main, importing the host (several seconds)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and err == "\npython -m deepmolm_plugin.train: interrupted\n", (process.returncode, err)
