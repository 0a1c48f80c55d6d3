"""The README's Layout block names every module of the package, and its host-patch table
every patch: a reader finds each file from the README (was: data/prepare/overlaps.py, the
dataset readers under data/sources/, molecule/io/base.py and patches/resume_schedule.py,
which changes a resumed run's learning rate, were in neither)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def layout_sections() -> dict:
    """The Layout block of deepmolm_plugin/ cut into its top-level entries: {folder name or
    "": text}, "" holding the package's own modules' lines. An entry starts at a line
    indented by two spaces; deeper lines belong to the entry above them."""
    block = README.split("\n## Layout\n", 1)[1].split("```", 2)[1]
    block = block.split("\npatches/", 1)[0]  # the package's part only
    sections, current = {"": ""}, ""
    for line in block.splitlines():
        if re.match(r"  \S", line):
            first = line.split()[0]
            current = first[:-1] if first.endswith("/") else ""
            sections.setdefault(current, "")
        sections[current] += line + "\n"
    return sections


def named(module: Path, sections: dict) -> bool:
    """Whether `module` (relative to the package) is named where it lives: its file name in
    its top-level folder's entry, after its sub-folder's name (`sources/ (... base ...)`), or
    among the package's own lines. A bare file name anywhere in the block counted before, so
    one `base` covered both molecule/io/base.py and data/sources/base.py."""
    parts = module.parts
    text = sections.get(parts[0] if len(parts) > 1 else "", "")
    if len(parts) > 2:  # a sub-folder: from its name to the next folder named in that entry
        at = text.find(parts[1] + "/")
        if at < 0:
            return False
        text = text[at + len(parts[1]) + 1:]
        following = re.search(r"\b[a-z_0-9]+/", text)
        text = text[:following.start()] if following else text
    return module.stem in set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def patch_table_names() -> set:
    table = README.split("**Host patches**", 1)[1].split("\n\n", 2)[1]
    return set(re.findall(r"`([a-z_0-9]+)`", table))


def test_every_module_is_named_in_the_layout():
    sections = layout_sections()
    package = ROOT / "deepmolm_plugin"
    modules = [p for p in package.rglob("*.py")
               if "__pycache__" not in p.parts and p.name not in ("__init__.py", "__main__.py")
               and "patches" not in p.relative_to(package).parts]
    assert len(modules) > 80  # the walk found the package
    unnamed = [str(p.relative_to(package)) for p in modules if not named(p.relative_to(package), sections)]
    assert unnamed == [], f"modules the README's Layout does not name: {unnamed}"


def test_every_patch_is_in_the_host_patch_table():
    patches = [p.stem for p in (ROOT / "patches").glob("*.py") if not p.stem.startswith("_")]
    assert "registry" in patches
    unnamed = sorted(set(patches) - patch_table_names())
    assert unnamed == [], f"patches the README's host-patch table does not name: {unnamed}"


def test_a_module_is_looked_for_under_its_own_folder():
    """One `base` in the io entry must not cover data/sources/base.py (the review's case)."""
    sections = {"": "", "data": "  data/   prepare/ (cli, items), sources/ (readers)\n",
                "molecule": "  molecule/\n    io/   readers; base.py: the registry\n"}
    assert named(Path("molecule/io/base.py"), sections)
    assert not named(Path("data/sources/base.py"), sections)
    assert named(Path("data/prepare/cli.py"), sections) and not named(Path("cli.py"), sections)
