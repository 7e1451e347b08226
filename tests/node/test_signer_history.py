"""Issue 13, finding 8: every own signature of the current height is durable in the signer
record, not only the last; a validator that loses its whole WAL restores its votes and its
lock exactly (no amnesia). Checked on the LMDB store and on the simulator's model of it."""
from __future__ import annotations

import pytest

from engine.node.wal import Journal
from engine.sim.storage import MemoryWalStore
from engine.store import Store
from tests.consensus.harness import Net, h
from tests.consensus.test_resume import locked_then_round_2, restarted


class _NoTimers:
    def call_later(self, delay_ms, fn):
        raise AssertionError("persisting a signature needs no timer")


def _lmdb(tmp_path):
    store = Store(str(tmp_path / "store"), sync=False)

    def lose_wal(height: int) -> None:
        store.wal_discard(height)
        assert store.wal_replay(height) == []
    return store, lose_wal


def _memory(tmp_path):
    store = MemoryWalStore()

    def lose_wal(height: int) -> None:
        store.lose_tail(len(store.wal))
    return store, lose_wal


@pytest.mark.parametrize("make_store", [_lmdb, _memory], ids=["lmdb", "sim-model"])
def test_whole_wal_lost_restores_every_vote_and_the_lock(tmp_path, make_store):
    net = Net(4)
    c = net.core(0)
    locked_then_round_2(net, c)  # precommit A in round 0 (the lock), nil prevote in round 2
    signed = c.signer.state
    assert len(signed.history) >= 4

    store, lose_wal = make_store(tmp_path)
    journal = Journal(store, _NoTimers())
    for r, s, sign_bytes, sig in signed.history:  # as the driver persists each before sending
        journal.persist_signature(signed.height, r, s, sign_bytes, sig)
    lose_wal(signed.height)

    restored = Journal(store, _NoTimers()).restore_signer_state()
    assert restored == signed  # every signature of the height, exactly

    again = restarted(net, 0, restored)
    again.step(again.resume_event())
    assert (again.locked_value, again.locked_round) == (h(b"A"), 0)
    assert (again.round, again.step_) == (c.round, c.step_)

    # A new height starts a new history.
    vote = net.vote(0, 1, 2, 0, b"X")
    journal.persist_signature(2, 0, 2, vote.sign_bytes(b"test-chain"), b"s" * 64)
    assert [e[:2] for e in store.signer_history()] == [(0, 2)]
    if isinstance(store, Store):
        store.close()
