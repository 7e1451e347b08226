"""The consensus WAL on the driver's side (engine/node/wal.py), unit by unit: every record kind
round-trips, the journal buffers and flushes as documented (not durable on its own, durable
with the next signature, at once past its byte bound), decided heights leave the buffer, a
signature already durable costs no write, and a restart restores every signature of the
signer's height from the store's history, the WAL's SIGNED records and the record itself.

(The whole node's replay after crashes: test_replay.py, test_wal_loss_resume.py and the crash
trials; these tests pin the pieces those rely on.)"""
from __future__ import annotations

import msgpack
import pytest

from engine import consensus as cs
from engine.consensus import Step, VoteType
from engine.node import wal
from engine.node.wal import Journal, decode_record, encode_event, encode_signed
from engine.store import Store

N = 4  # validators
BLOCK = b"a block " * 8
HASH = b"\x11" * 32


def _events() -> list:
    proposal = cs.Proposal(7, 2, 1, HASH, 3, b"\x01" * 64)
    vote = cs.Vote(VoteType.PRECOMMIT, 7, 2, HASH, 1, b"\x02" * 64)
    cert = cs.CommitCertificate.build(7, 2, HASH, {0: b"\x03" * 64, 1: b"\x04" * 64,
                                                   3: b"\x05" * 64}, N)
    return [cs.ProposalReceived(proposal, BLOCK), cs.VoteReceived(vote),
            cs.TimeoutFired(7, 2, Step.PRECOMMIT), cs.TimeoutFired(7, 1, Step.PROPOSE),
            cs.ValueReady(7, 2, BLOCK + b"!"), cs.CommitReceived(BLOCK + b"?", cert),
            cs.Resume(7, ((1, 2, b"sb1", b"s" * 64), (2, 3, b"sb2", b"t" * 64))),
            cs.Start(7)]


@pytest.mark.parametrize("event", _events(), ids=lambda e: type(e).__name__)
def test_every_record_kind_round_trips(event):
    back = decode_record(encode_event(event), N)
    assert back == event and type(back) is type(event)
    if isinstance(event, cs.TimeoutFired):
        assert type(back.step) is Step


def test_signed_records_are_not_inputs_and_unknown_ones_are_refused():
    assert decode_record(encode_signed(1, 2, b"sb", b"s" * 64), N) is None
    for kind in (99, 9, 0, -1):  # past the last kind, and below the first
        with pytest.raises(ValueError, match=f"unknown WAL record kind {kind}"):
            decode_record(msgpack.packb([kind, 1, 2, 3, 4]), N)
    with pytest.raises(TypeError, match="no WAL record for"):
        encode_event(object())


def test_each_kind_decodes_as_itself_whatever_its_neighbours():
    """Kinds are matched exactly: a record of one kind never decodes as another."""
    kinds = {wal.PROPOSAL: cs.ProposalReceived, wal.VOTE: cs.VoteReceived,
             wal.TIMEOUT: cs.TimeoutFired, wal.VALUE: cs.ValueReady,
             wal.COMMIT: cs.CommitReceived, wal.RESUME: cs.Resume, wal.START: cs.Start}
    for event in _events():
        kind = msgpack.unpackb(encode_event(event))[0]
        assert kinds[kind] is type(event)
        assert type(decode_record(encode_event(event), N)) is type(event)


class _Timers:
    def __init__(self):
        self.scheduled: list[list] = []  # [delay, callback, cancelled]

    def call_later(self, delay_ms, callback):
        entry = [delay_ms, callback, False]
        self.scheduled.append(entry)

        class _Handle:
            def cancel(self_inner):
                entry[2] = True
        return _Handle()

    def live(self) -> list[list]:
        return [e for e in self.scheduled if not e[2]]


class _Recording(Store):
    """A real store that records how the journal writes to it."""

    def __init__(self, path):
        super().__init__(path, sync=False)
        self.appends: list[tuple[list, bool]] = []
        self.signs: list[tuple] = []

    def wal_append_many(self, entries, *, sync=True):
        self.appends.append((list(entries), sync))
        super().wal_append_many(entries, sync=sync)

    def sign_guarded(self, height, round, step, sign_bytes, sign, *, wal_entry=None,
                     wal_before=()):
        self.signs.append((height, round, step, list(wal_before)))
        return super().sign_guarded(height, round, step, sign_bytes, sign, wal_entry=wal_entry,
                                    wal_before=wal_before)

    def sign_guarded_many(self, entries, *, wal_before=()):
        self.signs.append(([e[:3] for e in entries], list(wal_before)))
        super().sign_guarded_many(entries, wal_before=wal_before)


@pytest.fixture
def journal(tmp_path):
    store = _Recording(str(tmp_path / "store"))
    timers = _Timers()
    yield Journal(store, timers, flush_ms=50, pending_bytes_max=100), store, timers
    store.close()


def test_records_wait_for_one_timer_and_flush_together_not_durably(journal):
    j, store, timers = journal
    j.append(5, b"x" * 10)
    j.append(5, b"y" * 10)
    assert len(timers.scheduled) == 1 and timers.scheduled[0][0] == 50  # one timer for both
    assert store.appends == [] and store.wal_replay(5) == []
    timers.scheduled[0][1]()  # the timer fires
    assert store.appends == [([(5, b"x" * 10), (5, b"y" * 10)], False)]
    assert store.wal_replay(5) == [b"x" * 10, b"y" * 10] and j.pending == []
    j.append(5, b"z")  # a new buffer gets a new timer
    assert len(timers.scheduled) == 2


def test_an_explicit_flush_cancels_the_timer_and_an_empty_one_writes_nothing(journal):
    j, store, timers = journal
    j.flush()
    assert store.appends == []
    j.append(5, b"x")
    j.flush()
    assert timers.live() == [] and len(store.appends) == 1
    j.append(5, b"y")
    assert len(timers.live()) == 1  # the next record schedules again


def test_the_byte_bound_flushes_at_once_only_when_exceeded(journal):
    j, store, timers = journal
    j.append(5, b"a" * 60)
    j.append(5, b"b" * 40)  # exactly 100: the bound, not past it
    assert store.appends == [] and len(j.pending) == 2
    j.append(5, b"c")  # 101: flushed now, timer cancelled
    assert store.appends == [([(5, b"a" * 60), (5, b"b" * 40), (5, b"c")], False)]
    assert timers.live() == [] and j.pending == []
    j.append(5, b"d" * 100)  # a fresh count after the flush: 100 is not past the bound
    assert j.pending == [(5, b"d" * 100)]


def test_discard_last_forgets_the_record_and_its_bytes(journal):
    j, store, _timers = journal
    j.append(5, b"a" * 60)
    j.append(5, b"b" * 40)
    j.discard_last()
    assert j.pending == [(5, b"a" * 60)]
    j.append(5, b"c" * 40)  # 100 again, not past the bound
    assert store.appends == []
    j.discard_last()
    j.discard_last()
    j.discard_last()  # nothing left: no error
    assert j.pending == []
    j.append(5, b"d" * 100)
    assert store.appends == []


def test_decided_heights_leave_the_buffer_and_its_byte_count(journal):
    j, store, _timers = journal
    for h, e in [(4, b"a" * 30), (5, b"b" * 30), (6, b"c" * 30), (5, b"d" * 5)]:
        j.append(h, e)
    j.drop_decided(5)
    assert j.pending == [(6, b"c" * 30)]
    j.append(6, b"e" * 70)  # 100 with what is kept: not past the bound
    assert store.appends == []
    j.append(6, b"f")
    assert store.appends == [([(6, b"c" * 30), (6, b"e" * 70), (6, b"f")], False)]
    j.append(7, b"g")
    j.drop_decided(5)  # nothing at or below 5: unchanged
    assert j.pending == [(7, b"g")]


def test_a_signature_is_durable_with_the_records_before_it_and_written_once(journal):
    j, store, _timers = journal
    j.append(5, b"a")
    j.append(5, b"b")
    j.persist_signature(5, 0, 2, b"sb", b"s" * 64)
    assert store.signs == [(5, 0, 2, [(5, b"a"), (5, b"b")])] and j.pending == []
    rec = store.signer_record()
    assert (rec.height, rec.round, rec.step, rec.signature) == (5, 0, 2, b"s" * 64)
    replayed = store.wal_replay(5)
    assert replayed[:2] == [b"a", b"b"]
    assert decode_record(replayed[2], N) is None  # the SIGNED record
    assert msgpack.unpackb(replayed[2]) == [wal.SIGNED, 0, 2, b"sb", b"s" * 64]
    j.append(5, b"c")
    j.persist_signature(5, 0, 2, b"sb", b"s" * 64)  # re-sent after a replay: no write
    assert len(store.signs) == 1 and j.pending == [(5, b"c")]


def test_several_signatures_of_one_step_share_one_write(journal):
    j, store, _timers = journal
    j.append(5, b"a")
    j.persist_signatures([(5, 0, 1, b"p", b"p" * 64), (5, 0, 2, b"v", b"v" * 64)])
    assert store.signs == [([(5, 0, 1), (5, 0, 2)], [(5, b"a")])] and j.pending == []
    # Only those not yet durable are written; none at all when every one is.
    j.persist_signatures([(5, 0, 2, b"v", b"v" * 64), (5, 0, 3, b"c", b"c" * 64)])
    assert store.signs[1] == ([(5, 0, 3)], [])
    j.persist_signatures([(5, 0, 1, b"p", b"p" * 64), (5, 0, 3, b"c", b"c" * 64)])
    assert len(store.signs) == 2
    j.persist_signature(5, 0, 1, b"p", b"p" * 64)  # known to the single path as well
    assert len(store.signs) == 2


def test_the_set_of_durable_signatures_is_pruned_to_the_current_height(journal, monkeypatch):
    from engine import limits

    monkeypatch.setattr(limits, "persisted_signatures_max", 3)
    j, store, _timers = journal
    for h, step in ((1, 2), (2, 2), (3, 2), (3, 3)):
        j.persist_signature(h, 0, step, b"sb", bytes([h, step]) * 32)
    j.persist_signature(3, 1, 2, b"sb", b"\x31" * 64)
    # Past the bound (4 > 3 before the fifth), only heights >= the one being signed stay:
    # the earlier signatures of height 3 too.
    assert sorted(k[:3] for k in j._persisted) == [(3, 0, 2), (3, 0, 3), (3, 1, 2)]
    for step in (1, 2):
        j.persist_signatures([(4, 0, step, b"x", bytes([4, step]) * 32)])
    j.persist_signatures([(4, 1, 1, b"y", b"y" * 64), (4, 1, 2, b"z", b"z" * 64)])
    assert sorted(k[:3] for k in j._persisted) == [(4, 0, 1), (4, 0, 2), (4, 1, 1), (4, 1, 2)]
    writes = len(store.signs)
    j.persist_signatures([(4, 0, 1, b"x", bytes([4, 1]) * 32)])
    j.persist_signature(4, 1, 2, b"z", b"z" * 64)
    assert len(store.signs) == writes  # still known after the pruning
    # Signatures added two at a time never step over the bound unnoticed.
    for h in range(5, 15):
        j.persist_signatures([(h, 0, 1, b"p", bytes([h, 1]) * 32),
                              (h, 0, 2, b"v", bytes([h, 2]) * 32)])
        assert len(j._persisted) <= 3 + 2


def test_replay_decodes_in_order_skips_damaged_records_and_knows_resumed_signatures(journal):
    j, store, _timers = journal
    events = _events()
    store.wal_append_many([(7, encode_event(e)) for e in events[:3]])
    store.wal_append_many([(7, b"\xc1 not msgpack"), (7, msgpack.packb([99])),
                           (7, encode_signed(2, 3, b"sb2", b"t" * 64))])
    store.wal_append_many([(7, encode_event(e)) for e in events[3:]])
    out = j.replay(7, N)
    errors = [e for e in out if isinstance(e, Exception)]
    assert [e for e in out if not isinstance(e, Exception)] == events
    assert len(errors) == 2 and out.index(errors[0]) == 3
    # The Resume's signatures count as durable: re-sending them writes nothing.
    j.persist_signature(7, 1, 2, b"sb1", b"s" * 64)
    assert store.signs == []


def test_restore_merges_the_history_the_wal_and_the_record(journal):
    j, store, timers = journal
    assert j.restore_signer_state() is None  # never signed
    j.persist_signature(9, 0, 1, b"p0", b"a" * 64)
    j.persist_signature(9, 0, 2, b"v0", b"b" * 64)
    j.persist_signature(9, 1, 2, b"v1", b"c" * 64)
    # A SIGNED record only the WAL holds (a store from before the signer history).
    store.wal_append_many([(9, encode_signed(0, 3, b"c0", b"d" * 64)),
                           (9, encode_event(cs.Start(9)))])
    fresh = Journal(store, timers)
    state = fresh.restore_signer_state()
    assert (state.height, state.round, state.step, state.signature) == (9, 1, 2, b"c" * 64)
    assert state.history == ((0, 1, b"p0", b"a" * 64), (0, 2, b"v0", b"b" * 64),
                             (0, 3, b"c0", b"d" * 64), (1, 2, b"v1", b"c" * 64))
    # Every one of them is known to be durable: re-sending writes nothing.
    writes = len(store.signs)
    for r, step, sb, sig in state.history:
        fresh.persist_signature(9, r, step, sb, sig)
    assert len(store.signs) == writes
