"""The layering of docs/architecture.md, checked on the source: every import edge points down.

Walks the `ast` of every module of the project packages (module-level imports, imports
inside functions, ``TYPE_CHECKING`` blocks and ``importlib.import_module("...")`` string
literals all count), maps each module to its layer by the longest matching package
prefix in `LAYERS`, and fails on an edge a layer may not take, naming the module, the
line and the edge. A second test fails on any import cycle between project modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "games", "solver", "agents", "probes", "lm_interp", "scripts")

#: The one layer table (docs/architecture.md draws it): module prefix -> layer. The
#: longest prefix wins, so a module's layer is decided per module where a package
#: straddles layers (games: rules and environments; oracles; concepts and datasets).
LAYERS: dict[str, str] = {
    "common": "common",
    "games": "rules",  # games.base, games.registry, games.render, games.envs, games.<g> rules
    "games.connect4.oracle": "oracles",
    "solver": "oracles",
    "games.concepts": "concepts",
    "games.connect4.concepts": "concepts",
    "games.connect4.minimal_pairs": "concepts",
    "games.tictactoe.concepts": "concepts",
    "games.nim.concepts": "concepts",
    "games.datasets": "concepts",
    "agents": "agents",
    "probes": "probes",
    "lm_interp": "lm_interp",
    "scripts": "scripts",
}

#: layer -> the layers its modules may import (its own included).
MAY_IMPORT: dict[str, set[str]] = {
    "common": {"common"},
    "rules": {"common", "rules"},
    "oracles": {"common", "rules", "oracles"},
    "concepts": {"common", "rules", "oracles", "concepts"},
    "agents": {"common", "rules", "oracles", "concepts", "probes", "agents"},
    "probes": {"common", "probes"},
    "lm_interp": {"common", "probes", "lm_interp"},
    "scripts": {"common", "rules", "oracles", "concepts", "agents", "probes", "lm_interp", "scripts"},
}


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the project packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def layer_of(module: str) -> str:
    """The layer of a dotted module name (longest prefix in `LAYERS`)."""
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    assert best is not None, f"{module} is in no layer: add its package to LAYERS in tests/test_architecture.py"
    return LAYERS[best]


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported dotted name lands in (longest known prefix), or None."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, imported project module) for every import anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a.b import c`` imports the module a.b.c if there is one, else names of a.b
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (called == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]
        for name in names:
            target = _known(name, modules)
            if target is not None and target != module:
                found.append((node.lineno, target))
    return sorted(set(found))


def import_graph() -> dict[str, list[tuple[int, str]]]:
    modules = project_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def test_every_import_points_down_the_layers():
    modules = project_modules()
    bad = []
    for module, edges in import_graph().items():
        layer = layer_of(module)
        for line, target in edges:
            if layer_of(target) not in MAY_IMPORT[layer]:
                bad.append(f"{modules[module].relative_to(ROOT)}:{line}: {module} ({layer}) imports {target} "
                           f"({layer_of(target)}); {layer} may import only {sorted(MAY_IMPORT[layer])}")
    assert not bad, "imports that break the layering of docs/architecture.md:\n" + "\n".join(bad)


def test_no_import_cycle_between_project_modules():
    graph = {m: sorted({t for _, t in edges}) for m, edges in import_graph().items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles (function-level imports count too):\n" + "\n".join(
        " -> ".join([*c, c[0]]) for c in cycles)


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_checker_sees_function_level_and_string_imports(tmp_path):
    """The walk itself: an import inside a function and an import_module literal are edges."""
    source = tmp_path / "m.py"
    source.write_text("import importlib\n\ndef f():\n    from solver import engine\n"
                      "    return importlib.import_module('agents.network')\n")
    modules = {"probes.m": source, "solver": source, "solver.engine": source, "agents.network": source}
    edges = imports_of("probes.m", source, modules)
    assert (4, "solver.engine") in edges and (5, "agents.network") in edges
    assert layer_of("games.connect4.oracle") == "oracles" and layer_of("games.connect4.game") == "rules"
    assert _cycles({"a": ["b"], "b": ["a"], "c": ["a"]}) == [["a", "b"]]
