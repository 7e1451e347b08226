"""Garbage-collector settings for a node process.

CPython's cyclic collector runs a young-generation pass every 700 container allocations and,
when enough objects have survived, a full pass over every tracked object. A node allocates
several containers per transaction (decoded transactions, result lists, dict entries) and
holds hundreds of thousands of long-lived ones (mempool entries, id caches, the state tree's
history), so with the defaults a full pass costs ~40-50 ms on the event loop (a stall of every
consensus step behind it) and the collector took ~15 % of a node's CPU in
``tools/node_cost.py`` (docs/performance.md, "Per-transaction CPU, the round after").

:func:`tune_gc` keeps the collector on (reference cycles, e.g. from exceptions kept in
futures, are still freed) but runs the young pass every ``young`` allocations and moves the
objects alive at start-up (modules, classes, the store's and the application's loaded state)
into the permanent generation, so full passes are rarer and shorter. ``engine start`` calls it
once the node has started; a program embedding :class:`engine.node.Node` may call it too
(it changes the whole process's collector, so the engine does not do it on its own there).
"""
from __future__ import annotations

import gc

__all__ = ["GC_YOUNG_THRESHOLD", "tune_gc"]

#: Container allocations between young-generation passes (CPython's default: 700).
GC_YOUNG_THRESHOLD = 20_000


def tune_gc(young: int = GC_YOUNG_THRESHOLD, *, freeze: bool = True) -> tuple[int, int, int]:
    """Set the young-generation threshold to ``young`` (the older generations keep CPython's
    ratios) and, with ``freeze``, collect once and freeze the survivors. Returns the previous
    thresholds."""
    if type(young) is not int or young < 1:
        raise ValueError("young must be a positive int")
    previous = gc.get_threshold()
    gc.set_threshold(young, previous[1], previous[2])
    if freeze:
        gc.collect()
        gc.freeze()
    return previous
