"""The `make mutate` list (tools/mutate.py) follows the code it mutates.

`make mutate` is outside `make test` (it runs many test files once per mutant), so a refactor
could leave a mutant's snippet matching nothing and the whole list unusable until someone runs
it. These checks are cheap and run with every `make test`: each snippet is present exactly once,
each mutant changes something, and every test it names exists."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mutate_module():
    spec = importlib.util.spec_from_file_location("mutate_tool", ROOT / "tools" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


MUTATE = _mutate_module()


def test_the_list_is_not_empty():
    assert len(MUTATE.MUTANTS) >= 10
    assert len({m.name for m in MUTATE.MUTANTS}) == len(MUTATE.MUTANTS)


def test_every_snippet_is_in_its_file_exactly_once():
    assert MUTATE.check_snippets(MUTATE.MUTANTS) == []


def test_the_check_reports_a_snippet_that_matches_nothing():
    stale = MUTATE.Mutant("stale", "engine/mempool.py", "no such line in the mempool", "x",
                          ("tests/node/test_mempool.py",), "")
    assert MUTATE.check_snippets([stale]) == ["stale: snippet found 0 times in engine/mempool.py"]


@pytest.mark.parametrize("mutant", MUTATE.MUTANTS, ids=lambda m: m.name)
def test_each_mutant_changes_the_code_and_names_existing_tests(mutant):
    assert mutant.replacement != mutant.original
    assert mutant.tests
    for test in mutant.tests:
        path, _, name = test.partition("::")
        source = (ROOT / path).read_text()
        if name:
            function = name.split("[")[0]
            assert re.search(rf"^(async )?def {re.escape(function)}\(", source, re.MULTILINE), test
