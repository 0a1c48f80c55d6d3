"""One-way dependencies: no import cycles among our modules, in-function imports included.

The graph is read from the source (every `import` and `from ... import` statement, at
module level or inside functions, under TYPE_CHECKING or not), so a cycle hidden by a
local import fails here as surely as one Python would trip over. Nodes are our modules
(`deepmolm_plugin.*`, with `patches/` as `deepmolm_plugin.patches.*`); `from pkg import
name` points at `pkg.name` when that is a module, else at `pkg`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"deepmolm_plugin": ROOT / "deepmolm_plugin", "deepmolm_plugin.patches": ROOT / "patches"}


def our_modules() -> dict:
    """{module name: path} for every .py file of the package (patches included)."""
    modules = {}
    for prefix, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if prefix == "deepmolm_plugin" and parts[:1] == ["patches"]:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([prefix, *parts])] = path
    return modules


MODULES = our_modules()


def _target(name: str) -> str | None:
    """The module of ours that `name` refers to (itself, or the closest enclosing module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path) -> set:
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin
                     for alias in node.names]
        else:
            continue
        for name in names:
            if name == "patches" or name.startswith("patches."):  # the repository-level name tests use
                name = "deepmolm_plugin." + name
            target = _target(name)
            if target is not None and target != module:
                found.add(target)
    return found


def find_cycle(graph: dict) -> list | None:
    state: dict = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return None
        if state.get(node) == "open":
            return trail[trail.index(node):] + [node]
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, trail + [node])
            if cycle:
                return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        cycle = visit(node, [])
        if cycle:
            return cycle
    return None


def test_the_walk_sees_every_kind_of_import():
    """The reader itself: relative, absolute, from-package-import-module, in-function."""
    graph = {m: imports_of(m, p) for m, p in MODULES.items()}
    assert "deepmolm_plugin.molecule_fp" in graph["deepmolm_plugin.projector.layout"]  # `from ..molecule_fp import`
    assert "deepmolm_plugin.model.heads" in graph["deepmolm_plugin.property.aux_head"]
    assert "deepmolm_plugin.molecule.fingerprint" in graph["deepmolm_plugin.molecule.inputs"]  # inside a function
    assert "deepmolm_plugin.patches.conversation_qwen2" in graph["deepmolm_plugin.cli"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_among_our_modules():
    graph = {m: imports_of(m, p) for m, p in MODULES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("low, high", [
    ("deepmolm_plugin.molecule_fp", "deepmolm_plugin"),  # the contract imports nothing of ours
    ("deepmolm_plugin.molecule", "deepmolm_plugin.data"),  # molecules know nothing of records
    ("deepmolm_plugin.projector", "deepmolm_plugin.molecule."),  # nor the projector of RDKit
    ("deepmolm_plugin.model", "deepmolm_plugin.property"),  # optional heads plug into the model
    ("deepmolm_plugin.encoder", "deepmolm_plugin.model"),
    ("deepmolm_plugin.eval", "deepmolm_plugin.gui"),  # batch evaluation runs without the page's code
    ("deepmolm_plugin.model", "deepmolm_plugin.gui"),
    ("deepmolm_plugin.model", "deepmolm_plugin.eval"),
])
def test_data_flows_one_way(low, high):
    """Lower layers never import higher ones (a cycle-free graph could still point backwards)."""
    offenders = {m: sorted(t for t in imports_of(m, p) if t.startswith(high) and t != low)
                 for m, p in MODULES.items() if m == low or m.startswith(low + ".")}
    assert not {m: t for m, t in offenders.items() if t}
