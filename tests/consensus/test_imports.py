"""The core is sans-IO: nothing in engine/consensus may import I/O, clocks, threads or global
randomness (docs/architecture.md)."""
import ast
import pathlib

import engine.consensus

FORBIDDEN = {"asyncio", "socket", "lmdb", "threading", "time", "random", "selectors",
             "subprocess", "multiprocessing", "concurrent", "datetime", "secrets"}


def _imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_consensus_package_imports_no_io():
    root = pathlib.Path(engine.consensus.__file__).parent
    files = sorted(root.glob("*.py")) + sorted(root.glob("*.pyx"))
    assert len(files) >= 8
    for path in files:
        text = path.read_text()
        if path.suffix == ".pyx":  # cimport/import lines only; Cython is not Python syntax
            text = "\n".join(line for line in text.splitlines()
                             if line.startswith(("import ", "from ")) and " cimport " not in line)
        bad = _imported_modules(text) & FORBIDDEN
        assert not bad, f"{path.name} imports {bad}"


def test_checker_detects_forbidden_import():
    assert _imported_modules("import time\nfrom asyncio import sleep\n") == {"time", "asyncio"}
