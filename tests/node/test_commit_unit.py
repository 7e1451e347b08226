"""The committer's own bookkeeping, one piece at a time (engine/node/commit.py): which
``finalize_block`` signatures get the block context, the sets that context is built from, the
validator-set change a block makes, early executions of two blocks of one height, the CPU and
block-interval figures it reports, and the index compaction it schedules. Written against the
survivors of a mutation run over the module (docs/mutation.md)."""
from __future__ import annotations

import asyncio
import time
import types
from functools import partial

import pytest

from engine import consensus as cs
from engine import crypto
from engine.app import BlockResult, KVStoreApp, TxResult
from engine.node.commit import BlockCommitter, _check_result, takes_context
from tests.node.commitfakes import decide, make_committer, signed_block

CHAIN = "commit-unit"
KEY = crypto.SigningKey.generate()


def _set(n: int) -> cs.ValidatorSet:
    return cs.ValidatorSet([cs.Validator(crypto.SigningKey.generate().public_key, 10)
                            for _ in range(n)])


_block = partial(signed_block, CHAIN, KEY)


class _History:
    """A set history by height; records what the committer tells it."""

    def __init__(self, sets: dict[int, cs.ValidatorSet], change: cs.ValidatorSet | None = None):
        self.sets = sets
        self.change = change
        self.recorded: list[tuple[int, cs.ValidatorSet]] = []
        self.committed_heights: list[int] = []

    def at(self, height: int) -> cs.ValidatorSet | None:
        return self.sets.get(height)

    def next_change(self, height: int, updates) -> tuple[int, cs.ValidatorSet]:
        assert self.change is not None
        return height + 2, self.change

    def record(self, height: int, vset: cs.ValidatorSet) -> None:
        self.recorded.append((height, vset))

    def committed(self, height: int) -> None:
        self.committed_heights.append(height)


class _ContextApp(KVStoreApp):
    def __init__(self, updates=()) -> None:
        super().__init__()
        self.contexts: list = []
        self.updates = updates

    def finalize_block(self, height, txs, context=None):
        self.contexts.append(context)
        r = super().finalize_block(height, txs, context)
        if self.updates:
            return BlockResult(r.tx_results, r.app_hash, r.writes,
                               validator_updates=self.updates)
        return r


def _committer(app, *, history=None, deferred=None, metrics=None) -> BlockCommitter:
    return make_committer(app, chain=CHAIN, history=history, deferred=deferred, metrics=metrics)


_decide = decide


# ---- which finalize_block gets the context ------------------------------------------------------
def test_takes_context_by_position_count_varargs_or_name():
    def two(height, txs):
        pass

    def three(height, txs, ctx):
        pass

    def four(height, txs, ctx, extra=None):
        pass

    def star(height, *rest):
        pass

    def named(height, txs, *, context=None):
        pass

    def keywords(height, txs, **kw):
        pass

    def early_names(a_height, b_txs):  # names that sort before "context"
        pass

    def kw_only(height, txs, *, flag=False):
        pass

    assert not takes_context(two) and not takes_context(early_names)
    assert not takes_context(keywords) and not takes_context(kw_only)
    assert takes_context(three) and takes_context(four)
    assert takes_context(star) and takes_context(named)
    assert not takes_context(len)  # no signature to read: the two-argument form


# ---- the block context: own set, the parent's signers, the next set ----------------------------
def test_context_reads_each_set_at_its_own_height():
    """Height 2's proposer comes from the set of height 2, the last commit's signers from the
    set of height 1 (which signed it) and ``next_validators`` is the set of height 3: three
    different sets, so reading any of them at another height shows."""
    s1, s2, s3 = _set(3), _set(4), _set(5)
    app = _ContextApp()
    c = _committer(app, history=_History({1: s1, 2: s2, 3: s3}))
    h1, b1 = _block(1, [b"a=1"])
    c.commit(_decide(1, h1, b1))
    cert = cs.CommitCertificate.build(1, 0, h1, {0: bytes(64), 2: bytes(64)}, len(s1))
    h2, b2 = _block(2, [b"b=2"], last_commit=cert.encode(), proposer_index=3)
    c.commit(_decide(2, h2, b2))
    first, ctx = app.contexts
    assert first.last_commit_signers == () and first.proposer == s1.validators[0].public_key
    assert ctx.height == 2 and ctx.block_hash == h2
    assert ctx.proposer == s2.validators[3].public_key and ctx.proposer_index == 3
    assert ctx.last_commit_signers == (s1.validators[0].public_key, s1.validators[2].public_key)
    assert ctx.next_validators is s3


def test_context_of_a_proposer_index_outside_the_set_names_no_proposer():
    app = _ContextApp()
    c = _committer(app, history=_History({1: _set(2)}))
    h1, b1 = _block(1, [b"a=1"], proposer_index=2)
    c.commit(_decide(1, h1, b1))
    assert app.contexts[0].proposer == b"" and app.contexts[0].proposer_index == 2


# ---- a validator-set change -------------------------------------------------------------------
def test_validator_updates_are_stored_and_recorded_for_height_plus_two():
    new = _set(3)
    history = _History({1: _set(2)}, change=new)
    app = _ContextApp(updates=[("key", 5)])
    c = _committer(app, history=history)
    h1, b1 = _block(1, [b"a=1"])
    c.commit(_decide(1, h1, b1))
    assert c.store.saved[0]["validator_set"] == (3, new.encode())  # type: ignore[attr-defined]
    assert history.recorded == [(3, new)] and history.committed_heights == [1]
    assert c.counters.get("validator_set_changes") == 1


def test_no_updates_store_no_set_and_record_nothing():
    history = _History({1: _set(2)}, change=_set(3))
    c = _committer(_ContextApp(), history=history)
    h1, b1 = _block(1, [b"a=1"])
    c.commit(_decide(1, h1, b1))
    assert c.store.saved[0]["validator_set"] is None  # type: ignore[attr-defined]
    assert history.recorded == [] and history.committed_heights == [1]
    assert c.counters.get("validator_set_changes") == 0


def test_updates_without_a_history_halt_with_a_reason():
    c = _committer(_ContextApp(updates=[("key", 5)]))
    h1, b1 = _block(1, [b"a=1"])
    with pytest.raises(RuntimeError, match="no validator-set history"):
        c.commit(_decide(1, h1, b1))
    assert c.store.saved == [] and c.tip.height == 0  # type: ignore[attr-defined]


# ---- early execution of two blocks of one height -------------------------------------------------
@pytest.mark.parametrize("order", ["low_first", "high_first"])
def test_precommitting_another_block_of_the_height_executes_it_too(order):
    """A later round's precommit for another block is executed early as well, whichever of the
    two hashes sorts first; the decided one is reused."""
    a, b = _block(1, [b"a=1"]), _block(1, [b"a=2"], time_ms=2)
    low, high = sorted([a, b])
    first, second = (low, high) if order == "low_first" else (high, low)
    deferred: list = []
    app = _ContextApp()
    c = _committer(app, deferred=deferred)
    for h, raw in (first, second):
        c.speculate(1, h, raw)
        while deferred:
            deferred.pop(0)()
    assert len(app.contexts) == 2 and c.counters.get("optimistic_executions") == 2
    c.commit(_decide(1, *second))
    assert len(app.contexts) == 2 and c.counters.get("optimistic_reused") == 1
    assert c.counters.get("optimistic_discarded") == 0


def test_a_decision_without_an_early_execution_discards_nothing():
    c = _committer(_ContextApp(), deferred=[])
    h1, b1 = _block(1, [b"a=1"])
    c.commit(_decide(1, h1, b1))
    assert c.counters.get("optimistic_discarded") == 0
    assert c.counters.get("optimistic_reused") == 0


# ---- the figures it reports ------------------------------------------------------------------------
def test_stage_cpu_and_block_interval_are_the_time_spent():
    """Each stage's CPU is a part of the thread time the commit took, and the block interval the
    time since the previous commit: sums, products or quotients of clock readings are not."""
    stages: list[tuple[str, float]] = []
    intervals: list[float] = []
    metrics = types.SimpleNamespace(observe_block=lambda dt, n: intervals.append(dt))
    deferred: list = []
    c = _committer(_ContextApp(), metrics=metrics, deferred=deferred)
    c.stage_cpu = lambda stage, seconds: stages.append((stage, seconds))
    wall0 = time.monotonic()
    for height in (1, 2):
        h, raw = _block(height, [b"k%d=%d" % (i, height) for i in range(200)])
        c.speculate(height, h, raw)
        cpu0 = time.thread_time()
        while deferred:
            deferred.pop(0)()
        c.commit(_decide(height, h, raw))
        spent = time.thread_time() - cpu0
        mine = stages[-4:]
        assert [s for s, _ in mine] == ["execution", "execution", "storage", "commit_other"]
        assert all(0 <= seconds <= spent + 1e-3 for _, seconds in mine), (mine, spent)
        assert sum(seconds for _, seconds in mine) <= spent + 1e-3
    assert len(intervals) == 2
    assert all(0 <= dt <= time.monotonic() - wall0 + 0.5 for dt in intervals), intervals


# ---- index compaction ---------------------------------------------------------------------------------
def test_index_compaction_runs_once_per_loop_turn_and_again_later():
    c = _committer(_ContextApp())

    async def main() -> None:
        for height in (1, 2):  # two commits in one turn of the loop: one compaction
            h, raw = _block(height, [b"a=%d" % height])
            c.commit(_decide(height, h, raw))
        assert c.store.compactions == 0  # type: ignore[attr-defined]  # after the turn
        await asyncio.sleep(0)
        assert c.store.compactions == 1  # type: ignore[attr-defined]
        h, raw = _block(3, [b"a=3"])
        c.commit(_decide(3, h, raw))
        await asyncio.sleep(0)
        assert c.store.compactions == 2  # type: ignore[attr-defined]

    asyncio.run(main())


def test_no_compaction_is_scheduled_outside_a_loop():
    c = _committer(_ContextApp())
    h, raw = _block(1, [b"a=1"])
    c.commit(_decide(1, h, raw))  # replay at start-up: no loop running
    assert c.store.compactions == 0 and c._compaction_pending is False  # type: ignore


# ---- a key of the largest size in any Mapping ---------------------------------------------------
def test_a_key_of_the_largest_size_passes_in_any_mapping():
    from engine.app import STATE_KEY_BYTES_MAX
    key = b"k" * STATE_KEY_BYTES_MAX
    _check_result(BlockResult([TxResult()], bytes(32), types.MappingProxyType({key: b"v"})), 1)
    with pytest.raises(ValueError, match="STATE_KEY_BYTES_MAX"):
        _check_result(BlockResult([TxResult()], bytes(32),
                                  types.MappingProxyType({key + b"k": b"v"})), 1)


def test_early_execution_is_matched_by_value_not_by_object():
    """Heights above 256 and block hashes arrive as new objects each time (from the WAL, the
    wire, the core): the early execution is still found and reused."""
    deferred: list = []
    app = _ContextApp()
    c = _committer(app, deferred=deferred)
    c.tip.height = int("999")
    h, raw = _block(1000, [b"a=1"])

    def height() -> int:
        return int("1000")  # a new int object on every call

    c.speculate(height(), bytes(bytearray(h)), raw)
    while deferred:
        deferred.pop(0)()
    assert len(app.contexts) == 1
    c.speculate(height(), bytes(bytearray(h)), raw)  # the same block again: nothing to do
    assert deferred == []
    c._speculate(height(), bytes(bytearray(h)), raw)
    assert len(app.contexts) == 1
    c.commit(_decide(height(), bytes(bytearray(h)), raw))
    assert len(app.contexts) == 1 and c.counters.get("optimistic_reused") == 1
    assert c.tip.height == 1000
