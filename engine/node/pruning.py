"""Pruning old blocks while the node runs (``retain_blocks`` in config.toml).

After a commit the pruner schedules one step on the event loop (never inside the block's own
commit) once at least ``limits.prune_batch_blocks`` blocks are due (one synced write per that
many heights, not one per height): one write transaction removing at most
``limits.prune_blocks_per_step`` blocks with their certificates, hash entries and tx index
runs, then another step later if more is due.
Each step is atomic, so a crash at any instant leaves a consistent store whose base simply moved
less far; the next start goes on from there.

What is kept: the newest ``max(retain_blocks, limits.retain_blocks_min)`` blocks (and up to
``limits.prune_batch_blocks - 1`` older ones until the next step), and every block from the
oldest kept snapshot's height on (a node joining from that snapshot verifies it against the
next block's header, fetched from us).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from engine import limits
from engine.node.ports import Counters
from engine.store import Store

log = logging.getLogger("engine.node.pruning")

__all__ = ["Pruner", "retain_height"]


def retain_height(latest: int, retain_blocks: int, snapshot_height: int | None = None) -> int:
    """The lowest height to keep at ``latest`` (1: keep everything)."""
    if type(retain_blocks) is not int or retain_blocks < 0:
        raise ValueError(f"retain_blocks must be a non-negative int, not {retain_blocks!r}")
    if not retain_blocks:
        return 1
    keep = max(retain_blocks, limits.retain_blocks_min)
    target = max(1, latest - keep + 1)
    if snapshot_height is not None:
        target = min(target, snapshot_height)
    return target


class Pruner:
    def __init__(self, *, store: Store, retain_blocks: int, counters: Counters,
                 snapshot_height: Callable[[], int | None] = lambda: None):
        self.store = store
        self.retain_blocks = retain_blocks
        self.counters = counters
        self.snapshot_height = snapshot_height
        self._scheduled = False

    def after_commit(self, height: int) -> None:
        if not self.retain_blocks or self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # replay at start-up runs outside the loop: the next commit
            return
        self._scheduled = True
        loop.call_soon(self.step)

    def step(self) -> int:
        """One bounded pruning transaction; schedules the next one when more is due."""
        self._scheduled = False
        store = self.store
        if store.closed:
            return 0
        target = retain_height(store.latest_height(), self.retain_blocks, self.snapshot_height())
        if target - store.base_height() < limits.prune_batch_blocks:
            return 0
        removed = store.prune(target, blocks_max=limits.prune_blocks_per_step)
        self.counters.add("blocks_pruned", removed)
        if target - store.base_height() >= limits.prune_batch_blocks:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.step)
        return removed
