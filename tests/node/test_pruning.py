"""Pruning while the node runs: the retained window, RPC and block sync answers for pruned
heights, the pruner's bounds, and `engine store prune` on a stopped node."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import pytest

from engine import limits
from engine.node import Node
from engine.node.ports import Counters
from engine.node.pruning import Pruner, retain_height
from engine.store import Store, check_store, store_path
from tests.node.helpers import run
from tests.node.synchelpers import make_net, wait_until


def test_retain_height_rules():
    assert retain_height(1000, 0) == 1                                   # 0 keeps everything
    assert retain_height(1000, 100) == 901                               # the newest 100
    assert retain_height(1000, 1) == 1000 - limits.retain_blocks_min + 1  # the engine's floor
    assert retain_height(1000, 100, snapshot_height=850) == 850          # a kept snapshot
    assert retain_height(10, 100) == 1
    with pytest.raises(ValueError, match="retain_blocks"):
        retain_height(10, -1)


def test_pruned_heights_answer_404_with_the_earliest_height_and_block_sync_is_told(tmp_path):
    homes = make_net(tmp_path, 1, 1, retain_blocks=limits.retain_blocks_min)

    async def main():
        val = Node(homes[0])
        await val.start()
        try:
            await val.wait_for_height(limits.retain_blocks_min + 15, 30)
            await wait_until(lambda: val.store.base_height() > 10, 10, "pruning")
            status = val.status()
            earliest = status["earliest_height"]
            assert earliest == val.store.base_height() > 1
            assert status["latest_height"] - earliest + 1 >= limits.retain_blocks_min
            assert val.counters.values.get("blocks_pruned", 0) >= earliest - 1
            url = val.home.rpc_url
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{url}/block/1") as r:
                    body = await r.json()
                    assert r.status == 404 and body["error"] == "pruned"
                    assert body["earliest_height"] >= earliest
                async with http.get(f"{url}/block/{val.latest_height}") as r:
                    assert r.status == 200  # (pruning keeps moving: the tip is always held)
                async with http.get(f"{url}/block/{val.latest_height + 1000}") as r:
                    assert r.status == 404 and (await r.json())["error"] == "not_found"
            # A node from genesis asks for height 1: told it is pruned, it does not pretend.
            full = Node(homes[1].path)
            await full.start()
            try:
                await wait_until(lambda: full.counters.values.get("sync_all_peers_pruned"),
                                 15, "the pruned answer")
                assert full.counters.values.get("sync_peer_pruned", 0) >= 1
                assert val.counters.values.get("sync_pruned_asked", 0) >= 1
                assert full.latest_height == 0 and not full.status()["catching_up"]
            finally:
                await full.stop()
        finally:
            await val.stop()
        with Store(store_path(homes[0].path), readonly=True) as store:
            report = check_store(store)
            assert report.ok, report.summary()

    run(main(), 90)


def _store_with_blocks(path, count: int) -> None:
    from engine.hashing import blake3

    with Store(path, sync=False) as s:
        parent = bytes(32)
        for h in range(1, count + 1):
            txs = [f"tx{h}-{i}".encode() for i in range(4)]
            block_hash = blake3(b"block" + h.to_bytes(8, "little"))
            s.save_block(h, block_hash, b"header", txs, b"cert", parent_hash=parent,
                         app_hash=blake3(b"app" + h.to_bytes(8, "little")),
                         state_changes=[(b"k%d" % h, b"v")])
            parent = block_hash


def test_pruner_waits_for_a_batch_of_due_blocks(tmp_path):
    """One pruning write (a synced LMDB transaction) per ``prune_batch_blocks`` heights, not
    one per height: the base moves only once that many blocks are due."""
    from engine.node.pruning import Pruner

    batch = limits.prune_batch_blocks
    assert batch > 1
    path = str(tmp_path / "s")
    _store_with_blocks(path, 60)
    with Store(path, sync=False) as s:
        pruner = Pruner(store=s, retain_blocks=20, counters=Counters())
        assert pruner.step() == 40 and s.base_height() == 41  # 40 due: one step
        parent = s.load_block(60).block_hash
        for h in range(61, 61 + batch):
            block_hash = bytes([h]) * 32
            s.save_block(h, block_hash, b"header", [b"tx%d" % h], b"cert", parent_hash=parent,
                         app_hash=bytes(32), state_changes=[])
            parent = block_hash
            due = retain_height(h, 20) - s.base_height()
            removed = pruner.step()
            if due < batch:
                assert removed == 0 and s.base_height() == 41, h
            else:
                assert removed == batch and s.base_height() == 41 + batch, h
        assert s.base_height() == 41 + batch
        assert pruner.counters.get("blocks_pruned") == 40 + batch
        assert check_store(s).ok


def test_store_prune_cli_keeps_the_newest_blocks_and_reports_page_reuse(tmp_path):
    home = tmp_path / "home"
    path = store_path(str(home))
    _store_with_blocks(path, 300)
    cmd = [sys.executable, "-m", "engine", "store", "prune", "--home", str(home)]
    out = subprocess.run([*cmd, "--retain", "5"], check=False, capture_output=True, text=True)
    assert out.returncode == 2 and "at least" in out.stdout
    out = subprocess.run([*cmd, "--retain", "100"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["removed_blocks"] == 200 and report["base_height"] == 201
    assert report["pages_reusable_after"] > report["pages_reusable_before"]
    with Store(path, readonly=True) as s:
        assert s.base_height() == 201 and s.latest_height() == 300
        assert s.load_block(200) is None and s.load_block(201) is not None
        assert s.state_get(b"k1") == b"v"  # state is not history: never pruned
        info = json.loads(subprocess.run([sys.executable, "-m", "engine", "store", "info",
                                          "--home", str(home)], capture_output=True,
                                         text=True, check=True).stdout)
        assert info["pages_reusable"] > 0


def test_retain_height_at_an_odd_distance():
    """1001 - 100 is odd: the newest 100 start at 902 (`| 1` would keep 901)."""
    assert retain_height(1001, 100) == 902
    assert retain_height(1001, 100, snapshot_height=950) == 902
    assert retain_height(1001, 100, snapshot_height=900) == 900


class _PruneStore:
    """Heights base..latest held; ``prune`` removes at most ``blocks_max`` from the bottom."""

    closed = False

    def __init__(self, base: int, latest: int) -> None:
        self.base, self.latest = base, latest
        self.calls: list[tuple[int, int]] = []

    def latest_height(self) -> int:
        return self.latest

    def base_height(self) -> int:
        return self.base

    def prune(self, target: int, *, blocks_max: int) -> int:
        removed = min(blocks_max, target - self.base)
        self.calls.append((self.base, removed))
        self.base += removed
        return removed


def _counting_pruner(store: _PruneStore, retain: int = 100) -> tuple[Pruner, list[int]]:
    """A pruner whose steps are recorded (the store's base as each one starts)."""
    pruner = Pruner(store=store, retain_blocks=retain, counters=Counters())  # type: ignore[arg-type]
    steps: list[int] = []
    real = pruner.step

    def counted() -> int:
        steps.append(store.base)
        return real()

    pruner.step = counted  # type: ignore[method-assign]
    return pruner, steps


def _run_pruner(store: _PruneStore, retain: int, commits: int = 1) -> tuple[Pruner, list[int]]:
    """``commits`` commits in one turn of the loop, then every step they lead to."""
    pruner, steps = _counting_pruner(store, retain)

    async def main():
        for _ in range(commits):
            pruner.after_commit(store.latest)
        for _ in range(50):  # let every scheduled step run
            await asyncio.sleep(0)

    asyncio.run(main())
    return pruner, steps


def test_pruning_runs_in_bounded_steps_until_less_than_a_batch_is_due():
    per = limits.prune_blocks_per_step
    # 2.5 steps' worth due: three steps, one after the other, none at once.
    store = _PruneStore(base=1, latest=1 + per * 5 // 2 + 100 - 1)
    pruner, _ = _run_pruner(store, retain=100, commits=3)
    assert [removed for _, removed in store.calls] == [per, per, per // 2]
    assert store.base == store.latest - 100 + 1
    assert pruner.counters.get("blocks_pruned") == per * 5 // 2 and not pruner._scheduled


def test_a_step_leaving_exactly_a_batch_due_schedules_another():
    per, batch = limits.prune_blocks_per_step, limits.prune_batch_blocks
    store = _PruneStore(base=1, latest=per + batch + 100)  # per + batch due
    _run_pruner(store, retain=100)
    assert [removed for _, removed in store.calls] == [per, batch]


def test_less_than_a_batch_due_waits_and_a_closed_store_is_left_alone():
    batch = limits.prune_batch_blocks
    store = _PruneStore(base=1, latest=batch - 1 + 100)
    _run_pruner(store, retain=100)
    assert store.calls == []
    store.latest += 1  # now exactly a batch is due
    _run_pruner(store, retain=100)
    assert store.calls == [(1, batch)]
    closed = _PruneStore(base=1, latest=1000)
    closed.closed = True
    _run_pruner(closed, retain=100)
    assert closed.calls == []
    off = _PruneStore(base=1, latest=1000)
    _run_pruner(off, retain=0)
    assert off.calls == []


def test_a_commit_while_a_step_is_scheduled_adds_no_second_step():
    per = limits.prune_blocks_per_step
    store = _PruneStore(base=1, latest=1 + 3 * per + 100 - 1)
    pruner, steps = _counting_pruner(store)

    async def main():
        pruner.after_commit(store.latest)
        pruner.after_commit(store.latest)  # in the same turn: still one step
        await asyncio.sleep(0)  # first step ran and scheduled the next
        pruner.after_commit(store.latest)  # one is scheduled already: nothing more
        pruner.after_commit(store.latest)
        for _ in range(20):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert len(store.calls) == 3
    assert steps == [1, 1 + per, 1 + 2 * per]  # each step once, none after the last


@pytest.mark.parametrize("target", [519, 528])
def test_the_next_step_is_scheduled_by_the_blocks_still_due(target):
    """Target 519: 262 due after the first step, 6 after the second; target 528: 15 after the
    second (a remainder or an exclusive or of the heights would stop early or step once more)."""
    per = limits.prune_blocks_per_step
    store = _PruneStore(base=1, latest=target + 99)
    _, steps = _run_pruner(store, retain=100)
    assert [removed for _, removed in store.calls] == [per, per] and steps == [1, 1 + per]


def test_a_step_returns_what_it_removed_and_needs_no_loop_when_nothing_is_due():
    store = _PruneStore(base=1, latest=100)
    pruner = Pruner(store=store, retain_blocks=100, counters=Counters())  # type: ignore[arg-type]
    assert pruner.step() == 0  # nothing due
    store.closed = True
    store.latest = 1000
    assert pruner.step() == 0  # closed
    pruner.after_commit(1000)  # outside an event loop (replay at start-up): nothing, no error
    assert store.calls == [] and not pruner._scheduled
