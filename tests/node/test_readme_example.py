"""The README's embedding example runs as written, in-process and behind `engine start --app`."""
from __future__ import annotations

import asyncio
import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _example_source() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text.split("## Embedding", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_readme_counter_app_runs(tmp_path):
    path = tmp_path / "counter_app.py"
    path.write_text(_example_source())
    spec = importlib.util.spec_from_file_location("counter_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert asyncio.run(asyncio.wait_for(module.main(), 60)) == 3
    import sys

    from engine.app import load_app

    sys.path.insert(0, str(tmp_path))
    try:
        app = load_app("counter_app:CounterApp")
    finally:
        sys.path.remove(str(tmp_path))
    assert app.name == "counter"
