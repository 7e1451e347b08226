"""The layering rule of docs/architecture.md, checked on every import of every module
(module-level and inside functions, absolute and relative):

- no import cycle among ``engine`` modules (a package's ``__init__`` counts as the package);
- ``engine.node`` imports nothing from ``engine.faults``, ``engine.benchmarks`` or ``engine.cli``;
- ``engine.rpc`` nothing from ``engine.node``;
- ``engine.store`` nothing from ``engine.node``, ``engine.consensus`` or ``engine.block``;
- ``engine.consensus`` nothing from the node wing or the store, and no I/O (test_imports.py);
- nothing below the CLI imports ``engine.cli``.
"""
from __future__ import annotations

import ast
import pathlib

import engine

ROOT = pathlib.Path(engine.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST):
    """Every node of the tree except those under ``if TYPE_CHECKING:`` (annotations only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) \
                    and child.test.id == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """Every engine module ``name`` imports at run time, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in found if m == "engine" or m.startswith("engine.")}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for m in _imports(name, path):
            while m and m not in mods:  # engine.x.Name -> engine.x
                m = m.rpartition(".")[0]
            if m and m != name:
                targets.add(m)
        graph[name] = targets
    return graph


def _violations(graph: dict[str, set[str]], layer: str, forbidden: tuple[str, ...]) -> list[str]:
    def inside(m: str, pkg: str) -> bool:
        return m == pkg or m.startswith(pkg + ".")

    return sorted(f"{src} -> {dst}" for src, dsts in graph.items() if inside(src, layer)
                  for dst in dsts if any(inside(dst, f) for f in forbidden))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package importing its own submodules (its __init__ re-exporting them) and those
    submodules importing siblings through the package is not a cycle of ideas; drop the edges
    from a module to the package that contains it."""
    return {src: {d for d in dsts if not src.startswith(d + ".")} for src, dsts in graph.items()}


def test_no_import_cycles():
    cycles = _cycles(_without_package_inits(_graph()))
    assert not cycles, cycles


RULES = [
    ("engine.node", ("engine.faults", "engine.benchmarks", "engine.cli", "engine.sim")),
    ("engine.rpc", ("engine.node", "engine.faults", "engine.cli")),
    ("engine.store", ("engine.node", "engine.consensus", "engine.block", "engine.net",
                      "engine.rpc", "engine.cli")),
    ("engine.consensus", ("engine.node", "engine.store", "engine.net", "engine.rpc",
                          "engine.cli", "engine.block", "engine.mempool")),
    ("engine.net", ("engine.node", "engine.store", "engine.cli", "engine.faults")),
    ("engine.mempool", ("engine.node", "engine.cli", "engine.faults")),
]


def test_layering_rules():
    graph = _graph()
    problems = [v for layer, forbidden in RULES for v in _violations(graph, layer, forbidden)]
    assert not problems, problems


def test_only_the_cli_and_the_entry_point_import_the_cli():
    graph = _graph()
    users = sorted(src for src, dsts in graph.items()
                   if any(d == "engine.cli" or d.startswith("engine.cli.") for d in dsts)
                   and not (src == "engine.cli" or src.startswith("engine.cli.")))
    assert users == ["engine.__main__"], users


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The rules would be hollow if imports inside functions slipped through."""
    mod = tmp_path / "engine" / "node" / "x.py"
    mod.parent.mkdir(parents=True)
    mod.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    import engine.sim\n"
                   "def f():\n    from engine.faults import hooks\n    from ..cli import node\n")
    found = _imports("engine.node.x", mod)
    assert {"engine.faults", "engine.cli"} <= found and "engine.sim" not in found
    graph = {"engine.node.x": {"engine.faults"}, "engine.a": {"engine.b"},
             "engine.b": {"engine.a"}}
    assert _violations(graph, "engine.node", ("engine.faults",)) == [
        "engine.node.x -> engine.faults"]
    assert _cycles(graph) == [["engine.a", "engine.b"]]
