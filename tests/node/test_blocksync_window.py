"""The block sync window in isolation: disjoint ranges spread over peers, none asked twice,
pruned peers not asked for what they no longer hold, and the node told when nobody holds it."""
from __future__ import annotations

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
