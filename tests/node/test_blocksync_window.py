"""The block sync window in isolation: disjoint ranges spread over peers, none asked twice,
pruned peers not asked for what they no longer hold, and the node told when nobody holds it;
requests that expire or whose peer leaves, held blocks in the window, a tip that jumps ahead.
(Blocks themselves: tests/node/test_blocksync_held.py.)"""
from __future__ import annotations

import time

import pytest

from engine import limits
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node.blocksync import BlockSync
from engine.node.ports import Counters
from engine.node.tip import ChainTip


class _Wire:
    def __init__(self):
        self.sent: list[tuple[bytes, codec.Message]] = []

    def send(self, peer: bytes, message: bytes) -> bool:
        self.sent.append((peer, codec.decode(message, NetLimits())))
        return True


def _sync(height: int = 10):
    tip = ChainTip(height=height)
    wire = _Wire()
    sync = BlockSync(chain_id=b"c", validators=None, tip=tip, store=None,  # type: ignore[arg-type]
                     wire=wire, signatures=None, counters=Counters())  # type: ignore[arg-type]
    return sync, wire


def _ranges(wire) -> list[tuple[bytes, int, int]]:
    return [(p, m.fields[0], m.fields[1]) for p, m in wire.sent if m.kind == codec.GET_BLOCKS]


def test_window_asks_disjoint_ranges_of_several_peers():
    sync, wire = _sync(10)
    peers = [b"a" * 32, b"b" * 32, b"c" * 32]
    for p in peers:
        sync.on_status(p, 1000, b"\0" * 32)
    asked = _ranges(wire)
    per, inflight = limits.sync_blocks_per_request, limits.sync_requests_in_flight_max
    assert len(asked) == inflight
    heights = [h for _, start, n in asked for h in range(start, start + n)]
    assert sorted(heights) == list(range(11, 11 + per * inflight))  # contiguous, disjoint
    # Spread: no peer has more than its share of the window.
    per_peer = {p: sum(1 for q, _, _ in asked if q == p) for p in peers}
    assert max(per_peer.values()) <= limits.sync_requests_per_peer_max
    assert sum(1 for n in per_peer.values() if n) >= 2
    wire.sent.clear()
    sync.on_status(peers[0], 1001, b"\0" * 32)  # nothing new while the window is full
    assert _ranges(wire) == []


def test_a_pruned_peer_is_not_asked_again_and_the_node_says_so():
    sync, wire = _sync(10)
    a, b = b"a" * 32, b"b" * 32
    sync.on_status(a, 500, b"\0" * 32)
    first = _ranges(wire)
    assert len(first) == limits.sync_requests_per_peer_max and all(p == a for p, _, _ in first)
    wire.sent.clear()
    sync.on_pruned(a, first[0][1], 300)       # a holds 300.. only
    assert _ranges(wire) == []                # nobody else holds 11
    assert sync.counters.values.get("sync_all_peers_pruned") == 1
    sync.on_status(b, 500, b"\0" * 32)        # b holds everything: it gets the range back
    assert any(p == b and start == 11 for p, start, _ in _ranges(wire))
    assert all(p == b for p, start, _ in _ranges(wire) if start < 300)


A, B = b"a" * 32, b"b" * 32
HELD = (b"block", b"cert", B)  # a held entry: never read by the window


def test_a_disconnected_peers_requests_and_only_its_own_are_asked_again():
    sync, wire = _sync(10)
    sync.on_status(A, 1000, b"\0" * 32)
    sync.on_status(B, 1000, b"\0" * 32)
    mine = {start for p, start, _ in _ranges(wire) if p == A}
    theirs = {start for p, start, _ in _ranges(wire) if p == B}
    assert mine and theirs
    wire.sent.clear()
    sync.on_disconnect(A)
    assert set(sync._inflight) == theirs
    sync.on_status(B, 1000, b"\0" * 32)  # B may take A's ranges, up to its own share
    assert all(p == B and start in mine for p, start, _ in _ranges(wire))


def test_a_request_expires_after_the_timeout_and_caps_its_peers_claim():
    sync, _wire = _sync(9)
    sync.on_status(A, 1000, b"\0" * 32)
    start, (peer, _sent, count) = min(sync._inflight.items())
    assert (start, peer) == (10, A)
    C = b"c" * 32
    sync._inflight[start] = (peer, time.monotonic() - 2.5, count)
    sync.on_status(C, 1000, b"\0" * 32)
    assert sync._inflight[start][0] == A  # 2.5 s: still A's
    sync._inflight[start] = (peer, time.monotonic() - 3.0, count)
    D = b"d" * 32  # A and C have their share of requests out
    sync.on_status(D, 1000, b"\0" * 32)
    assert sync._inflight[start][0] == D  # 3 s: expired, asked of another peer
    assert sync._peer_heights[A] == start - 1


def test_the_window_starts_after_the_tip_odd_or_even():
    for tip in (9, 10):
        sync, wire = _sync(tip)
        sync.on_status(A, 1000, b"\0" * 32)
        assert min(start for _, start, _ in _ranges(wire)) == tip + 1


def test_each_held_height_is_skipped_and_the_next_one_asked():
    sync, wire = _sync(10)
    for h in (11, 12, 13):
        sync._held[h] = HELD
    sync.on_status(A, 1000, b"\0" * 32)
    assert min(s for _, s, _ in _ranges(wire)) == 14


def test_held_blocks_are_skipped_and_the_window_ends_where_it_should(monkeypatch):
    monkeypatch.setattr(limits, "sync_blocks_per_request", 4)
    monkeypatch.setattr(limits, "sync_requests_in_flight_max", 3)
    monkeypatch.setattr(limits, "sync_blocks_buffered_max", 8)  # a window of 11..18
    sync, wire = _sync(10)
    for h in (11, 12, 13, 14):
        sync._held[h] = HELD
    sync.on_status(A, 1000, b"\0" * 32)
    # One range starts in the window after the held heights; none at its end (19) or later.
    assert [(s, n) for _, s, n in _ranges(wire)] == [(15, 4)]


def test_a_range_stops_where_a_later_request_starts(monkeypatch):
    sync, wire = _sync(10)
    sync._peer_heights[A] = 1000
    sync._inflight[15] = (B, time.monotonic(), 16)  # 15..30 already asked
    sync.on_status(A, 1000, b"\0" * 32)
    asked = [(s, n) for _, s, n in _ranges(wire)]
    assert asked[0] == (11, 4) and all(s >= 31 for s, _ in asked[1:])


def test_a_tip_that_jumps_ahead_clears_what_lies_below_it():
    """As after a state sync restore: requests, verified and held blocks below the new tip
    are dropped, and the window starts after it."""
    sync, wire = _sync(10)
    sync.on_status(A, 1000, b"\0" * 32)
    sync._buffer[12] = (b"block", None, A)  # type: ignore[assignment]
    sync._held[20] = HELD
    sync._held[300] = HELD
    wire.sent.clear()
    sync.tip.height = 200
    sync.on_status(A, 1000, b"\0" * 32)
    assert sync._buffer == {} and list(sync._held) == [300]
    assert all(start > 200 for start in sync._inflight)
    assert min(start for _, start, _ in _ranges(wire)) == 201


@pytest.mark.parametrize("claim,expected", [(5, False), (10, False), (11, True)])
def test_catching_up_means_a_backed_peer_claims_more_than_our_tip(claim, expected):
    sync, _wire = _sync(10)
    sync.on_status(A, claim, b"\0" * 32)
    sync._backed.add(A)
    assert sync.catching_up() is expected


def test_a_peer_that_holds_exactly_the_first_height_is_asked():
    sync, wire = _sync(10)
    sync.on_status(A, 1000, b"\0" * 32)
    wire.sent.clear()
    sync.on_pruned(A, 11, 11)  # a says it holds 11.. after all
    assert any(p == A and start == 11 for p, start, _ in _ranges(wire))
