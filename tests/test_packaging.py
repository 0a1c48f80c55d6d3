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
