"""The application hooks as the node finds and calls them (engine/node/apphooks.py): how many
positional arguments a hook takes (``*args``, keyword-only parameters, no signature), which
``check_tx`` sees the pool, a batch check set on the instance, the transactions a proposal hook
is given (the pool's own objects, the others decoded), and the warning of a slow hook. Written
against the survivors of a mutation run over the module (docs/mutation.md)."""
from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest

from engine import tx
from engine.app import Application, CheckResult, KVStoreApp
from engine.crypto import SigningKey
from engine.node.apphooks import AppHooks, positional_count
from engine.node.ports import Counters
from engine.suite import DEFAULT


class _NoSignature:
    """A callable whose signature cannot be read (``inspect.signature`` raises TypeError)."""

    __signature__ = "not a signature"

    def __call__(self, *args):
        return CheckResult()


def test_positional_count():
    class A:
        def one(self, tx): ...
        def two(self, tx, pending): ...
        def three(self, tx, pending, extra=None): ...
        def star(self, *args): ...
        def keyword_only(self, tx, *, pending=None): ...
        def keywords(self, tx, **options): ...
        def positional_only(self, tx, pending, /): ...

    a = A()
    assert positional_count(a.one) == 1
    assert positional_count(a.two) == 2
    assert positional_count(a.three) == 3
    assert positional_count(a.star) == 1 << 16
    assert positional_count(a.keyword_only) == 1  # a keyword-only parameter is not positional
    assert positional_count(a.keywords) == 1
    assert positional_count(a.positional_only) == 2
    assert positional_count(_NoSignature()) == 0


@pytest.mark.parametrize("check_tx,pending", [
    (lambda self, t: CheckResult(), False),
    (lambda self, t, pending: CheckResult(), True),
    (lambda self, t, pending, extra=None: CheckResult(), True),  # three positional: the pool too
    (lambda self, *args: CheckResult(), True),
    (lambda self, t, *, pending=None: CheckResult(), False),
])
def test_which_check_tx_is_given_the_pool(check_tx, pending):
    app = type("App", (KVStoreApp,), {"check_tx": check_tx})()
    hooks = AppHooks(app, Counters())
    assert hooks.check_tx_pending is pending
    assert hooks.check_txs is None  # KVStoreApp's batch does not answer for this check_tx


def test_a_batch_check_set_on_the_instance_is_trusted_as_given():
    app = Application()
    batch = lambda txs: [CheckResult() for _ in txs]  # an attribute, not a method
    app.check_txs = batch  # type: ignore[attr-defined]
    assert AppHooks(app, Counters()).check_txs is batch


def _envelopes(n: int) -> tuple[list[bytes], list[bytes]]:
    key = SigningKey.generate()
    envs = [tx.encode_tx(key, i, b"k%d=v" % i, "c") for i in range(n)]
    return envs, DEFAULT.hash_many(envs)


class _Recorder(Application):
    def __init__(self, sleep_s: float = 0.0) -> None:
        super().__init__()
        self.seen: list[list] = []
        self.sleep_s = sleep_s

    def prepare_proposal(self, height, txs):
        self.seen.append(list(txs))
        time.sleep(self.sleep_s)
        return list(reversed(txs))

    def process_proposal(self, height, txs):
        self.seen.append(list(txs))
        time.sleep(self.sleep_s)
        return True


@pytest.mark.parametrize("with_pool", [True, False])
def test_proposal_hooks_get_the_pools_objects_and_decode_the_others(with_pool):
    envs, ids = _envelopes(3)
    pooled = {ids[1]: tx.decode_tx(envs[1], tx_id=ids[1])}  # only the middle one is pooled
    app = _Recorder()
    hooks = AppHooks(app, Counters())
    if with_pool:
        hooks.mempool = SimpleNamespace(decoded=pooled.get)  # type: ignore[assignment]
    assert hooks.prepare(4, envs) == list(reversed(envs))
    assert hooks.process(4, envs, ids) is True
    for given in app.seen:
        assert [t.tx_id for t in given] == ids
        assert [t.payload for t in given] == [b"k0=v", b"k1=v", b"k2=v"]
        assert (given[1] is pooled[ids[1]]) is with_pool  # the pool's own object, not a copy


def test_a_slow_proposal_hook_is_logged_and_a_fast_one_is_not(caplog):
    envs, ids = _envelopes(2)
    with caplog.at_level(logging.WARNING, logger="engine.node.apphooks"):
        fast = AppHooks(_Recorder(), Counters())
        fast.prepare(3, envs)
        fast.process(3, envs, ids)
        assert not [r for r in caplog.records if "took" in r.getMessage()]
        slow = AppHooks(_Recorder(sleep_s=0.15), Counters())
        slow.prepare(300, envs)
        slow.process(301, envs, ids)
    warned = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert len(warned) == 2
    assert warned[0].startswith("prepare_proposal took ") and "at height 300" in warned[0]
    assert warned[1].startswith("process_proposal took ") and "at height 301" in warned[1]
    ms = int(warned[0].split("took ")[1].split(" ms")[0])
    assert 140 <= ms < 5000  # the elapsed time in milliseconds


def test_an_app_without_hooks_gets_the_node_defaults():
    hooks = AppHooks(Application(), Counters())
    assert hooks.prepares is False and hooks.processes is False
    envs, ids = _envelopes(2)
    assert hooks.prepare(1, envs) is envs
    assert hooks.process(1, envs, ids) is True
    assert hooks.recheck_tx is None
    hooks.recheck(1)  # nothing to recheck with: no error
    with_hooks = AppHooks(_Recorder(), Counters())
    assert with_hooks.prepares is True and with_hooks.processes is True


class _Pool:
    def __init__(self, evict: list[bytes]) -> None:
        self.evict = evict
        self.rechecked: list = []

    def __len__(self) -> int:
        return 3

    def recheck(self, fn):
        self.rechecked.append(fn)
        return self.evict


class _Rechecking(Application):
    def recheck_tx(self, tx, pending):
        return CheckResult()


def test_recheck_runs_over_the_pool_and_logs_only_evictions(caplog):
    app = _Rechecking()
    hooks = AppHooks(app, Counters())
    hooks.recheck(300)  # no mempool attached yet: nothing, no error
    with caplog.at_level(logging.INFO, logger="engine.node.apphooks"):
        for evict, height in (([], 301), ([b"a", b"b"], 302)):
            pool = _Pool(evict)
            hooks.mempool = pool  # type: ignore[assignment]
            hooks.recheck(height)
            assert pool.rechecked == [app.recheck_tx]
    logged = [r.getMessage() for r in caplog.records if "recheck" in r.getMessage()]
    assert logged == ["recheck after block 302 evicted 2 transactions"]


@pytest.mark.parametrize("elapsed_s,warned", [
    (0.1, False),            # exactly 100 ms: not more than the threshold
    (0.099609375, False),    # just below (exact binary fractions: no rounding in the test)
    (0.10009765625, True),   # 100.1 ms: just above
])
def test_the_slow_hook_threshold_is_more_than_100_ms(monkeypatch, caplog, elapsed_s, warned):
    from engine.node import apphooks

    times = iter([0.0, elapsed_s])
    monkeypatch.setattr(apphooks.time, "perf_counter", lambda: next(times))
    envs, _ = _envelopes(1)
    with caplog.at_level(logging.WARNING, logger="engine.node.apphooks"):
        AppHooks(_Recorder(), Counters()).prepare(7, envs)
    assert any("took" in r.getMessage() for r in caplog.records) is warned
