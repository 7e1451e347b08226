"""The consensus driver over fake ports: persist before send, commit then start, halt on a
commit failure, nothing sent while replaying, and recovery to the exact state."""
from __future__ import annotations

import pytest

from engine import consensus as cs
from engine.crypto import SigningKey
from engine.node.driver import ConsensusDriver
from engine.node.ports import Counters, NullObserver
from engine.node.wal import Journal
from engine.sim.storage import MemoryWalStore

CHAIN = b"driver"
KEY = SigningKey(b"\x07" * 32)
VSET = cs.ValidatorSet([cs.Validator(KEY.public_key, 1)])


class FakeTimers:
    def __init__(self):
        self.pending = []

    def call_later(self, delay_ms, callback):
        self.pending.append(callback)
        return self

    def cancel(self):
        pass

    def cancel_all(self):
        self.pending.clear()


class RecordingOutbox:
    """Records every send with the signer record the store held at that moment."""

    def __init__(self, store: MemoryWalStore):
        self.store = store
        self.sent: list[tuple[str, int, int, object]] = []

    def votes(self, votes, to=None):
        for v in votes:
            self.sent.append(("vote", v.height, int(v.type) + 1, self.store.signer))

    def proposal(self, proposal, block, to=None):
        self.sent.append(("proposal", proposal.height, 1, self.store.signer))


class Parts:
    """A one-validator driver whose value source answers at once and whose committer records."""

    def __init__(self, store: MemoryWalStore | None = None, fail_commit_at: int = 0):
        self.store = store or MemoryWalStore()
        self.timers = FakeTimers()
        self.outbox = RecordingOutbox(self.store)
        self.decided: list[int] = []
        self.requests: list[tuple[int, int]] = []
        self.fail_commit_at = fail_commit_at
        journal = Journal(self.store, self.timers, pending_bytes_max=0)
        core = cs.ConsensusCore(CHAIN, VSET, cs.SignerGuard(KEY, journal.restore_signer_state()),
                                height=len(self.decided) + 1 if store is None else 1,
                                is_valid=lambda h, b: True)
        self.driver = ConsensusDriver(core, journal=journal, outbox=self.outbox,
                                      timers=self.timers, values=self, committer=self,
                                      evidence=self, observer=NullObserver(),
                                      counters=Counters())

    def request(self, height, round):
        self.requests.append((height, round))

    def pump(self, heights: int) -> None:
        """Answer value requests (as the node does, later) until ``heights`` are decided."""
        while len(self.decided) < heights and self.requests:
            height, round = self.requests.pop(0)
            self.driver.input(cs.ValueReady(height, round, b"block %d" % height), height)

    def commit(self, decide):
        if decide.height == self.fail_commit_at:
            raise OSError("disk full")
        self.decided.append(decide.height)
        self.store.drop_decided(decide.height)

    def report(self, evidence):
        raise AssertionError("no evidence expected")


def test_every_message_is_durable_before_it_is_sent_and_heights_follow():
    p = Parts()
    p.driver.start_height(1)
    p.pump(3)
    assert p.decided == [1, 2, 3]
    assert p.driver.core.height == 4  # each commit started the next height
    assert p.outbox.sent, "nothing was sent"
    for kind, height, step, signer in p.outbox.sent:
        # The store's signer record was at or past this message when it left.
        assert signer is not None, (kind, height, step)
        assert (signer.height, signer.step) >= (height, step), (kind, height, step, signer)


def test_a_failed_commit_halts_the_driver():
    p = Parts(fail_commit_at=2)
    halts = []
    p.driver.on_halt = halts.append
    p.driver.start_height(1)
    with pytest.raises(OSError):
        p.pump(3)
    assert p.decided == [1] and p.driver.halted and "cannot commit block 2" in halts[0]
    sent = len(p.outbox.sent)
    p.driver.input(cs.TimeoutFired(3, 0, cs.Step.PROPOSE), 3)  # ignored once halted
    assert len(p.outbox.sent) == sent


def test_replay_sends_nothing_until_it_is_over_and_restores_the_state():
    p = Parts()
    p.fail_commit_at = 1  # stop at height 1 with its votes signed and in the WAL
    p.driver.start_height(1)
    with pytest.raises(OSError):
        p.pump(1)
    before = p.driver.core.snapshot()
    again = Parts(store=p.store)
    again.fail_commit_at = 1
    with pytest.raises(OSError):  # the replayed decision commits again, and fails again
        again.driver.replay()
    assert again.outbox.sent == []
    assert again.driver.core.snapshot()[:8] == before[:8]
