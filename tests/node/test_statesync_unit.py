"""State sync's checks one at a time (engine/node/statesync.py), on a real chain of blocks and
certificates but without a network: the snapshot header against the certified chain (each
rule broken on its own, from both sides where it has two), the offers a peer makes, the chunks
it serves, the order and size of the restored state, the choice among candidates, and the
whole run against scripted peers (a bad block from one, the good one from the next, a chunk
refetched after a bad one)."""
from __future__ import annotations

import asyncio
import time

import msgpack
import pytest

from engine import consensus as cs
from engine import crypto, limits
from engine.app import Application
from engine.block import Block, block_id
from engine.crypto import SigningKey
from engine.errors import ProtocolError
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node.ports import Counters
from engine.node.statesync import StateSyncer, StateSyncFailed, verify_snapshot_header
from engine.snapshot import Snapshot, chunk_hash, decode_state_chunk

CHAIN = b"statesync-unit"
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
VSET = cs.ValidatorSet([cs.Validator(k.public_key, 1) for k in KEYS])
LIMITS = NetLimits()


def _cert(height: int, block_hash: bytes, signers=range(4)) -> bytes:
    msg = cs.vote_sign_bytes(CHAIN, cs.VoteType.PRECOMMIT, height, 0, block_hash)
    return cs.CommitCertificate.build(height, 0, block_hash,
                                      {i: KEYS[i].sign(msg) for i in signers}, 4).encode()


def _make(height: int, parent: bytes, app_hash: bytes, header_height: int | None = None) -> bytes:
    return Block.make(chain_id=CHAIN, height=height if header_height is None else header_height,
                      time_ms=height, parent_hash=parent, app_hash=app_hash, proposer_index=0,
                      last_commit=b"", evidence=[], txs=[b"tx%d" % height],
                      validators_hash=bytes(32), next_validators_hash=bytes(32)).encode()


def _app_hash(height: int) -> bytes:
    """The app hash block ``height`` carries (the state after ``height - 1``)."""
    return bytes([height]) * 32


def _chain(top: int = 6) -> dict[int, tuple[bytes, bytes]]:
    blocks: dict[int, tuple[bytes, bytes]] = {}
    parent = bytes(32)
    for h in range(1, top + 1):
        raw = _make(h, parent, _app_hash(h))
        parent = block_id(raw)
        blocks[h] = (raw, _cert(h, parent))
    return blocks


CHAIN_BLOCKS = _chain()


def _snap(height: int = 4, app_hash: bytes | None = None, chunks: tuple = (b"c0",)) -> Snapshot:
    return Snapshot(height, 1, _app_hash(height + 1) if app_hash is None else app_hash,
                    tuple(chunk_hash(c) for c in chunks))


def _verify(snap: Snapshot, blocks=None, trust_height: int = 2, trust_hash: bytes | None = None):
    blocks = CHAIN_BLOCKS if blocks is None else blocks
    return verify_snapshot_header(
        chain_id=CHAIN, validators=VSET, verify_batch=crypto.verify_batch,
        trust_height=trust_height,
        trust_hash=block_id(CHAIN_BLOCKS[trust_height][0]) if trust_hash is None else trust_hash,
        snapshot=snap, blocks=blocks)


# ---- the snapshot header against the chain --------------------------------------------------------
def test_a_snapshot_that_matches_the_certified_chain_is_verified():
    v = _verify(_snap(4))
    assert (v.height, v.block_hash, v.app_hash) == (4, block_id(CHAIN_BLOCKS[4][0]), _app_hash(5))
    assert v.certificate == CHAIN_BLOCKS[4][1] and v.block.height == 4
    # At the trusted height itself (the lowest allowed).
    assert _verify(_snap(2)).height == 2


def test_a_snapshot_below_the_trusted_height_is_refused():
    with pytest.raises(ProtocolError, match="below the trusted height 3"):
        _verify(_snap(2), trust_height=3)


@pytest.mark.parametrize("gone", [2, 4, 5])
def test_each_of_the_three_blocks_must_be_served(gone):
    blocks = {h: v for h, v in CHAIN_BLOCKS.items() if h != gone}
    with pytest.raises(ProtocolError, match=f"block {gone} was not served"):
        _verify(_snap(4), blocks)


def test_the_trusted_block_must_hash_to_the_trusted_hash():
    with pytest.raises(ProtocolError, match="not the trusted"):
        _verify(_snap(4), trust_hash=block_id(CHAIN_BLOCKS[3][0]))


@pytest.mark.parametrize("which", [2, 4, 5])
def test_a_certificate_of_another_height_is_refused_wherever_it_is(which):
    for other in (which - 1, which + 1):
        blocks = dict(CHAIN_BLOCKS)
        blocks[which] = (CHAIN_BLOCKS[which][0], CHAIN_BLOCKS[other][1])
        with pytest.raises(ProtocolError, match=f"certificate of height {other} served for "
                                                f"{which}"):
            _verify(_snap(4), blocks)


@pytest.mark.parametrize("which", [2, 4, 5])
def test_a_block_its_certificate_does_not_sign_is_refused(which):
    blocks = dict(CHAIN_BLOCKS)
    cert = CHAIN_BLOCKS[which][1]
    other = _make(which, bytes(32), b"\x09" * 32)
    blocks[which] = (other, cert)
    with pytest.raises(ProtocolError, match=f"block {which} is not the block its certificate"):
        _verify(_snap(4), blocks)


@pytest.mark.parametrize("header_height", [3, 5])
def test_a_certified_block_whose_header_names_another_height_is_refused(header_height):
    """The validators signed it at height 4, but its header says another height."""
    blocks = dict(CHAIN_BLOCKS)
    raw = _make(4, block_id(CHAIN_BLOCKS[3][0]), _app_hash(4), header_height=header_height)
    blocks[4] = (raw, _cert(4, block_id(raw)))
    with pytest.raises(ProtocolError, match=f"block of height {header_height} served for 4"):
        _verify(_snap(4), blocks)


def test_a_certificate_short_of_a_quorum_is_refused():
    blocks = dict(CHAIN_BLOCKS)
    raw = CHAIN_BLOCKS[5][0]
    blocks[5] = (raw, _cert(5, block_id(raw), signers=range(2)))
    with pytest.raises(ProtocolError, match="not more than 2/3"):
        _verify(_snap(4), blocks)


def test_the_next_block_must_link_to_the_snapshot_block():
    blocks = dict(CHAIN_BLOCKS)
    raw = _make(5, block_id(CHAIN_BLOCKS[3][0]), _app_hash(5))  # links to 3, not 4
    blocks[5] = (raw, _cert(5, block_id(raw)))
    with pytest.raises(ProtocolError, match="block 5 does not link to block 4"):
        _verify(_snap(4), blocks)


def test_the_snapshot_app_hash_must_be_the_one_certified_after_its_height():
    for wrong in (_app_hash(4), _app_hash(6), b"\xff" * 32):
        with pytest.raises(ProtocolError, match="is not the app hash"):
            _verify(_snap(4, app_hash=wrong))


# ---- a syncer fed by hand --------------------------------------------------------------------------
class _App(Application):
    def __init__(self, state_hash: bytes | None = None, accept: bool = True) -> None:
        self.state_hash = state_hash
        self.accept = accept
        self.applied: list[int] = []

    def finalize_block(self, height, txs):  # pragma: no cover - never called here
        raise AssertionError

    def offer_snapshot(self, snapshot, app_hash):
        return self.accept and snapshot.app_hash == app_hash

    def apply_snapshot_chunk(self, index, chunk):
        self.applied.append(index)
        return decode_state_chunk(chunk)

    def snapshot_state_hash(self, entries):
        return self.state_hash


class _Store:
    def __init__(self) -> None:
        self.restored: list[tuple[int, bytes, list]] = []

    def restore_from_snapshot(self, height, block_hash, head, txs, certificate, *, parent_hash,
                              app_hash, state) -> None:
        self.restored.append((height, block_hash, state))


def _syncer(app=None, peers=(b"a" * 32, b"b" * 32), trust_height: int = 2):
    sent: list[tuple[bytes, codec.Message]] = []
    penalized: list[tuple[bytes, str]] = []
    s = StateSyncer(chain_id=CHAIN, validators=VSET, app=app or _App(), store=_Store(),  # type: ignore[arg-type]
                    trust_height=trust_height, trust_hash=block_id(CHAIN_BLOCKS[trust_height][0]),
                    send=lambda p, raw: sent.append((p, codec.decode(raw, LIMITS))) or True,
                    penalize=lambda p, why: penalized.append((p, why)),
                    connected=lambda: list(peers), counters=Counters(),
                    verify_batch=crypto.verify_batch)
    return s, sent, penalized


def _msg(kind: int, *fields) -> codec.Message:
    return codec.decode(codec.encode(kind, *fields), LIMITS)


A, B, C = b"a" * 32, b"b" * 32, b"c" * 32


def test_offers_are_checked_counted_and_bounded():
    s, _, penalized = _syncer()
    good = _snap(4)
    s.on_message(A, _msg(codec.SNAPSHOTS, [good.to_wire()]))
    s.on_message(B, _msg(codec.SNAPSHOTS, [good.to_wire()]))
    assert s._candidates[good.hash].peers == {A, B} and penalized == []
    forged = good.to_wire()
    forged[0] = 5  # another height under the same hash
    s.on_message(C, _msg(codec.SNAPSHOTS, [forged]))
    assert penalized == [(C, "invalid_snapshots")]
    assert s.counters.get("state_sync_invalid_snapshots") == 1
    # A refused snapshot is not taken again.
    s._refuse(s._candidates[good.hash], "test")
    s.on_message(A, _msg(codec.SNAPSHOTS, [good.to_wire()]))
    assert good.hash not in s._candidates
    # Only the first snapshots_offered_max offers of a list count (the codec bounds a
    # message's list too; this holds whatever the codec lets through).
    many = [_snap(3, chunks=(b"x%d" % i,)) for i in range(limits.snapshots_offered_max + 2)]
    s._on_snapshots(A, [m.to_wire() for m in many])
    assert set(s._candidates) == {m.hash for m in many[:limits.snapshots_offered_max]}


def test_candidates_are_bounded_whatever_a_peer_invents():
    s, _, _ = _syncer()
    bound = limits.snapshots_offered_max * 64
    n = 0
    while n < bound + 5:
        batch = [_snap(3, chunks=(b"y%d" % (n + i),)).to_wire()
                 for i in range(limits.snapshots_offered_max)]
        s.on_message(A, _msg(codec.SNAPSHOTS, batch))
        n += len(batch)
    assert len(s._candidates) == bound
    # A known one still gains peers at the bound.
    known = next(iter(s._candidates.values()))
    s.on_message(B, _msg(codec.SNAPSHOTS, [known.snap.to_wire()]))
    assert B in known.peers


def test_the_best_candidate_is_the_highest_then_the_most_offered():
    s, _, _ = _syncer(trust_height=3)
    low, high, other_high = _snap(3), _snap(5, chunks=(b"h",)), _snap(5, chunks=(b"g",))
    below = _snap(2, chunks=(b"below",))
    for peer, snaps in ((A, [low, high, below]), (B, [other_high, below]),
                        (C, [other_high, below])):
        s.on_message(peer, _msg(codec.SNAPSHOTS, [x.to_wire() for x in snaps]))

    async def pick():
        return await s._next_candidate(asyncio.get_running_loop().time() + 1)

    assert asyncio.run(pick()).snap == other_high  # height 5, two peers
    s._refuse(s._candidates[other_high.hash], "test")
    assert asyncio.run(pick()).snap == high
    s._refuse(s._candidates[high.hash], "test")
    assert asyncio.run(pick()).snap == low  # at the trusted height; `below` never
    s._refuse(s._candidates[low.hash], "test")
    assert asyncio.run(pick()) is None


def _waiting_chunk(s: StateSyncer, snap: Snapshot, index: int, peer: bytes):
    loop = asyncio.new_event_loop()
    fut = loop.create_future()
    s._chunk_waiters[(snap.hash, index)] = (peer, fut)
    return loop, fut


def test_a_chunk_is_taken_only_from_the_peer_asked_and_only_if_it_hashes_right():
    chunks = (b"c0", b"c1")
    snap = _snap(4, chunks=chunks)
    s, _, penalized = _syncer()
    s.on_message(A, _msg(codec.SNAPSHOTS, [snap.to_wire()]))
    s.on_message(B, _msg(codec.SNAPSHOTS, [snap.to_wire()]))
    loop, fut = _waiting_chunk(s, snap, 1, A)
    s.on_message(B, _msg(codec.CHUNK, snap.hash, 1, chunks[1]))  # not asked of B: ignored
    assert not fut.done()
    s.on_message(A, _msg(codec.CHUNK, snap.hash, 1, chunks[1]))
    assert fut.result() == chunks[1] and penalized == []
    loop.close()
    # A wrong chunk: refused, counted, its peer dropped from the snapshot, the waiter freed.
    loop, fut = _waiting_chunk(s, snap, 0, A)
    s.on_message(A, _msg(codec.CHUNK, snap.hash, 0, b"not c0"))
    assert fut.result() is None and penalized == [(A, "invalid_chunk")]
    assert s.counters.get("state_sync_bad_chunk") == 1 and s._candidates[snap.hash].peers == {B}
    loop.close()
    # An index past the snapshot's chunks, even with a hash that would match another index.
    loop, fut = _waiting_chunk(s, snap, 2, B)
    s.on_message(B, _msg(codec.CHUNK, snap.hash, 2, chunks[0]))
    assert fut.result() is None and penalized[-1] == (B, "invalid_chunk")
    loop.close()


def test_an_empty_chunk_means_the_peer_no_longer_has_it():
    snap = _snap(4)
    s, _, penalized = _syncer()
    s.on_message(A, _msg(codec.SNAPSHOTS, [snap.to_wire()]))
    loop, fut = _waiting_chunk(s, snap, 0, A)
    s.on_message(A, _msg(codec.CHUNK, snap.hash, 0, b""))
    assert fut.result() is None and penalized == [] and s._candidates[snap.hash].peers == set()
    assert s.counters.get("state_sync_bad_chunk") == 0
    loop.close()


def _state_chunk(pairs) -> bytes:
    return msgpack.packb([[k, v] for k, v in pairs], use_bin_type=True)


def test_restored_entries_must_ascend_across_chunks():
    s, _, _ = _syncer()
    good = [_state_chunk([(b"a", b"1"), (b"b", b"2")]), _state_chunk([(b"c", b"3")])]
    snap = _snap(4, chunks=tuple(good))
    assert s._apply(snap, dict(enumerate(good))) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    for second in ([(b"b", b"3")], [(b"a", b"3")]):  # the same key again, or a lower one
        chunks = [good[0], _state_chunk(second)]
        with pytest.raises(ProtocolError, match="chunk 1 does not continue the key order"):
            s._apply(_snap(4, chunks=tuple(chunks)), dict(enumerate(chunks)))
    # An empty chunk between two others is fine.
    chunks = [good[0], _state_chunk([]), good[1]]
    assert len(s._apply(_snap(4, chunks=tuple(chunks)), dict(enumerate(chunks)))) == 3
    with pytest.raises(ProtocolError, match="chunk 0: "):
        s._apply(_snap(4, chunks=(b"\xc1",)), {0: b"\xc1"})


def test_restored_state_is_bounded_in_bytes(monkeypatch):
    s, _, _ = _syncer()
    chunks = [_state_chunk([(b"a", b"x" * 50)]), _state_chunk([(b"b", b"y" * 49)])]
    snap = _snap(4, chunks=tuple(chunks))
    monkeypatch.setattr(limits, "snapshot_bytes_max", 101)  # 51 + 50: exactly at the bound
    assert len(s._apply(snap, dict(enumerate(chunks)))) == 2
    monkeypatch.setattr(limits, "snapshot_bytes_max", 100)
    with pytest.raises(ProtocolError, match="exceeds 100 bytes"):
        s._apply(snap, dict(enumerate(chunks)))


# ---- the whole run against scripted peers ---------------------------------------------------------
def _serve(s: StateSyncer, sent: list, blocks, chunks, *, bad_block_from=None,
           bad_chunk_once=None) -> None:
    """Answer every request in ``sent`` as honest peers would, except the scripted faults."""
    while sent:
        peer, m = sent.pop(0)
        if m.kind == codec.GET_SNAPSHOTS:
            continue
        if m.kind == codec.GET_BLOCKS:
            h = m.fields[0]
            raw, cert = blocks[h]
            if peer == bad_block_from:
                cert = blocks[h - 1][1]
            s.on_message(peer, _msg(codec.BLOCKS, [[h, raw, cert]]))
        elif m.kind == codec.GET_CHUNK:
            snap_hash, index = m.fields
            chunk = chunks[index]
            if bad_chunk_once is not None and bad_chunk_once[0] == peer \
                    and bad_chunk_once[1] == index:
                bad_chunk_once = None
                chunk = b"garbage"
            s.on_message(peer, _msg(codec.CHUNK, snap_hash, index, chunk))


def _run(s: StateSyncer, sent: list, snap: Snapshot, chunks, **faults):
    async def main():
        for peer in (A, B):
            s.on_message(peer, _msg(codec.SNAPSHOTS, [snap.to_wire()]))
        task = asyncio.ensure_future(s.run(5.0))
        while not task.done():
            _serve(s, sent, CHAIN_BLOCKS, chunks, **faults)
            await asyncio.sleep(0)
        return task.result()
    return asyncio.run(main())


def test_a_run_restores_the_verified_snapshot_past_a_bad_block_and_a_bad_chunk():
    chunks = [_state_chunk([(b"a", b"1")]), _state_chunk([(b"b", b"2")])]
    snap = _snap(4, chunks=tuple(chunks))
    s, sent, penalized = _syncer()
    v = _run(s, sent, snap, chunks, bad_block_from=A, bad_chunk_once=(B, 1))
    assert v.height == 4 and v.app_hash == _app_hash(5)
    assert s.store.restored == [(4, block_id(CHAIN_BLOCKS[4][0]),  # type: ignore[attr-defined]
                                 [(b"a", b"1"), (b"b", b"2")])]
    assert (A, "state_sync_bad_block") in penalized and (B, "invalid_chunk") in penalized
    assert s.counters.get("state_sync_bad_block") >= 1
    assert s.counters.get("state_sync_chunk_refetched") == 1
    assert s.counters.get("state_sync_restored") == 1


def test_a_run_refuses_a_state_that_hashes_to_another_app_hash():
    chunks = [_state_chunk([(b"a", b"1")])]
    snap = _snap(4, chunks=tuple(chunks))
    s, sent, _ = _syncer(app=_App(state_hash=b"\x01" * 32))

    async def main():
        for peer in (A, B):
            s.on_message(peer, _msg(codec.SNAPSHOTS, [snap.to_wire()]))
        task = asyncio.ensure_future(s.run(1.5))
        while not task.done():
            _serve(s, sent, CHAIN_BLOCKS, chunks)
            await asyncio.sleep(0.001)
        return task.exception()

    err = asyncio.run(main())
    assert isinstance(err, StateSyncFailed) and "restored state hashes to" in str(err)
    assert s.store.restored == [] and snap.hash in s._refused  # type: ignore[attr-defined]
    assert s.counters.get("state_sync_snapshot_refused") >= 1


# ---- an odd snapshot height ------------------------------------------------------------------------
def test_a_snapshot_at_an_odd_height_needs_the_block_after_it():
    """At height 3, ``3 ^ 1`` would be 2 and ``3 | 1`` 3: the next block is 4."""
    assert _verify(_snap(3)).height == 3
    blocks = dict(CHAIN_BLOCKS)
    raw = _make(4, block_id(CHAIN_BLOCKS[2][0]), _app_hash(4))
    blocks[4] = (raw, _cert(4, block_id(raw)))
    with pytest.raises(ProtocolError, match="^block 4 does not link to block 3$"):
        _verify(_snap(3), blocks)
    chunks = [_state_chunk([(b"a", b"1")])]
    s, sent, _ = _syncer()
    v = _run(s, sent, _snap(3, chunks=tuple(chunks)), chunks)
    assert v.height == 3 and v.app_hash == _app_hash(4)


def test_verified_height_is_immutable():
    import dataclasses
    v = _verify(_snap(4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.height = 5  # type: ignore[misc]


# ---- offers after a refused one, messages state sync does not answer ---------------------------------
def test_a_refused_offer_does_not_hide_the_offers_after_it():
    s, _, _ = _syncer()
    old, new = _snap(4), _snap(5, chunks=(b"n",))
    s._refused.add(old.hash)
    s.on_message(A, _msg(codec.SNAPSHOTS, [old.to_wire(), new.to_wire()]))
    assert set(s._candidates) == {new.hash}


def test_messages_of_other_kinds_are_ignored_during_state_sync():
    s, sent, penalized = _syncer()
    for kind, fields in ((codec.STATUS, (3, b"h" * 32)), (codec.TXS, ([b"t"],)),
                         (codec.GET_BLOCKS, (1, 4)),
                         (codec.GET_PROPOSAL_TXS, (3, b"h" * 32, [0])),
                         (codec.PROPOSAL_TXS, (3, b"h" * 32, [0], [b"t"]))):
        s.on_message(A, _msg(kind, *fields))
    assert sent == [] and penalized == [] and s._candidates == {}


# ---- pruned peers ------------------------------------------------------------------------------------
def _ask_block(s: StateSyncer, sent: list, height: int, peers: list[bytes], answer):
    """Run ``s._block(height, peers)``, answering each request with ``answer(peer, height)``
    (a message kind and fields) or not at all (None)."""
    async def main():
        task = asyncio.ensure_future(s._block(height, peers, time.monotonic() + 0.5))
        while not task.done():
            while sent:
                peer, m = sent.pop(0)
                reply = answer(peer, m.fields[0])
                if reply is not None:
                    s.on_message(peer, _msg(*reply))
            await asyncio.sleep(0.001)
        return task
    return asyncio.run(main())


def test_a_trusted_height_pruned_on_every_peer_says_to_trust_a_later_block():
    s, sent, _ = _syncer()
    task = _ask_block(s, sent, 2, [A, B], lambda p, h: (codec.PRUNED, h, 7 if p == A else 9))
    with pytest.raises(StateSyncFailed, match=r"^state_sync_trust_height 2 is pruned on every "
                                              r"peer \(the earliest they hold: 7\)"):
        task.result()


def test_another_height_pruned_or_unserved_is_not_the_snapshots_fault():
    s, sent, _ = _syncer()
    # Height 4 (not the trusted one) pruned on one peer, the other silent: no peer served it.
    task = _ask_block(s, sent, 4, [A, B], lambda p, h: (codec.PRUNED, h, 7) if p == A else None)
    err = task.exception()
    assert type(err).__name__ == "_NoPeer"
    assert str(err) == "no peer served block 4 with a valid certificate (1 have pruned it)"
    # The trusted height pruned on one peer of two: the other one serves it.
    task = _ask_block(s, sent, 2, [A, B], lambda p, h: (codec.PRUNED, h, 7) if p == A
                      else (codec.BLOCKS, [[h, *CHAIN_BLOCKS[h]]]))
    assert task.result() == CHAIN_BLOCKS[2]


def test_a_pruned_answer_from_a_peer_not_asked_or_for_no_request_is_ignored():
    s, sent, _ = _syncer()
    s.on_message(C, _msg(codec.PRUNED, 4, 9))  # nothing asked: ignored
    calls: list[bytes] = []

    def answer(peer, height):
        calls.append(peer)
        if peer == A:  # C and Z, never asked, claim A's height is pruned; A then serves it
            s.on_message(C, _msg(codec.PRUNED, height, 9))
            s.on_message(b"0" * 32, _msg(codec.PRUNED, height, 9))  # an id below A's
            return (codec.BLOCKS, [[height, *CHAIN_BLOCKS[height]]])
        return None

    task = _ask_block(s, sent, 4, [A, B], answer)
    assert task.result() == CHAIN_BLOCKS[4] and calls == [A]


# ---- time bounds -----------------------------------------------------------------------------------------
def test_request_timeouts_follow_the_limit_and_the_deadline():
    s, _, _ = _syncer()
    now = time.monotonic()
    assert s._timeout(now + 1000) == limits.state_sync_request_timeout_ms / 1000
    assert 0.5 < s._timeout(now + 1.0) <= 1.0
    assert s._timeout(now - 5) == 0.01


def test_waiting_for_offers_ends_at_the_deadline_and_peers_are_asked_again_each_second():
    s, sent, _ = _syncer(peers=(A, B))

    async def main():
        t0 = time.monotonic()
        assert await s._next_candidate(t0 + 0.2) is None
        assert time.monotonic() - t0 < 0.9  # the deadline, not the one-second wait
        assert sorted(p for p, m in sent if m.kind == codec.GET_SNAPSHOTS) == [A, B]
        sent.clear()
        s._asked[A] = time.monotonic() - 1.5  # A was asked 1.5 s ago, B just now
        await s._next_candidate(time.monotonic() + 0.05)
        assert [p for p, m in sent if m.kind == codec.GET_SNAPSHOTS] == [A]

    asyncio.run(main())


def test_a_chunk_request_that_times_out_drops_the_peer_from_the_snapshot():
    snap = _snap(4)
    s, _, _ = _syncer()
    s.on_message(A, _msg(codec.SNAPSHOTS, [snap.to_wire()]))
    s.on_message(B, _msg(codec.SNAPSHOTS, [snap.to_wire()]))
    got = asyncio.run(s._chunk(snap.hash, 0, A, time.monotonic() + 0.05))
    assert got is None and s._candidates[snap.hash].peers == {B}
    assert s._chunk_waiters == {}
    # A candidate refused meanwhile: the timeout has nothing to update.
    s._refuse(s._candidates[snap.hash], "test")
    assert asyncio.run(s._chunk(snap.hash, 0, B, time.monotonic() + 0.05)) is None


def test_the_trusted_height_pruned_on_some_peers_only_is_not_a_config_error():
    s, sent, _ = _syncer()
    task = _ask_block(s, sent, 2, [A, B], lambda p, h: (codec.PRUNED, h, 7) if p == A else None)
    err = task.exception()
    assert type(err).__name__ == "_NoPeer" and "(1 have pruned it)" in str(err)


def test_another_height_pruned_on_every_peer_is_not_a_config_error():
    s, sent, _ = _syncer()
    task = _ask_block(s, sent, 4, [A, B], lambda p, h: (codec.PRUNED, h, 7))
    err = task.exception()
    assert type(err).__name__ == "_NoPeer" and "(2 have pruned it)" in str(err)


def test_heights_above_256_are_compared_by_value():
    """Certificate heights decode as new int objects: above 256 they are not the cached ones."""
    blocks: dict[int, tuple[bytes, bytes]] = {}
    parent = bytes(32)
    for h in range(1000, 1004):
        raw = _make(h, parent, bytes([h % 256]) * 32)
        parent = block_id(raw)
        blocks[h] = (raw, _cert(h, parent))
    snap = Snapshot(int("1001"), 1, bytes([1002 % 256]) * 32, (chunk_hash(b"c"),))
    v = verify_snapshot_header(chain_id=CHAIN, validators=VSET, verify_batch=crypto.verify_batch,
                               trust_height=int("1000"), trust_hash=block_id(blocks[1000][0]),
                               snapshot=snap, blocks=blocks)
    assert v.height == 1001 and v.block_hash == block_id(blocks[1001][0])


def test_waiting_for_offers_wakes_at_least_once_a_second():
    s, _, _ = _syncer(peers=())

    async def main():
        t0 = time.monotonic()
        assert await s._next_candidate(t0 + 30) is None
        return time.monotonic() - t0

    assert 0.9 < asyncio.run(main()) < 1.8


def test_a_run_goes_on_to_the_next_snapshot_when_one_cannot_be_served(monkeypatch):
    """The best offer (height 5) comes from C alone, which answers nothing: its blocks come
    from A and B, its chunk from nobody, so it is abandoned; the offer at 4 is restored."""
    monkeypatch.setattr(limits, "state_sync_request_timeout_ms", 100)
    chunks = [_state_chunk([(b"a", b"1")])]
    best, good = _snap(5, chunks=(b"never",)), _snap(4, chunks=tuple(chunks))
    s, sent, _ = _syncer(peers=(A, B, C))

    async def main():
        s.on_message(C, _msg(codec.SNAPSHOTS, [best.to_wire()]))
        for peer in (A, B):
            s.on_message(peer, _msg(codec.SNAPSHOTS, [good.to_wire()]))
        task = asyncio.ensure_future(s.run(10.0))
        while not task.done():
            sent[:] = [(p, m) for p, m in sent if p != C]  # C never answers
            _serve(s, sent, CHAIN_BLOCKS, chunks)
            await asyncio.sleep(0.001)
        return task.result()

    v = asyncio.run(main())
    assert v.height == 4 and best.hash in s._refused
    assert s.counters.get("state_sync_snapshot_abandoned") == 1
    assert s.counters.get("state_sync_restored") == 1
