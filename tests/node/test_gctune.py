"""The node process's collector settings (engine/node/gctune.py)."""
from __future__ import annotations

import gc

import pytest

from engine.node import tune_gc


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_gc_raises_the_young_threshold_and_freezes_the_survivors(restore_gc):
    gc.unfreeze()
    survivor = [object() for _ in range(10)]  # a tracked container alive at the call
    previous = tune_gc(12_345)
    assert gc.get_threshold() == (12_345, previous[1], previous[2])
    assert gc.get_freeze_count() > len(survivor)
    # The collector stays on: a cycle made afterwards is still freed.
    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2


def test_tune_gc_without_freeze_leaves_the_generations_alone(restore_gc):
    gc.unfreeze()
    tune_gc(5_000, freeze=False)
    assert gc.get_threshold()[0] == 5_000 and gc.get_freeze_count() == 0


@pytest.mark.parametrize("young", [0, -1, 2.5, "700", None])
def test_tune_gc_refuses_a_bad_threshold_by_name(restore_gc, young):
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="young"):
        tune_gc(young)
    assert gc.get_threshold() == before
