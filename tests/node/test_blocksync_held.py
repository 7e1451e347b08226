"""Block sync with real blocks (a one-validator chain built by an in-process node).

Above the validator-set horizon: a block more than two heights past the tip cannot be verified
on arrival (its set is not decided yet). It is held, not dropped and asked for again, and
verified when the core reaches it; one whose certificate fails then is refused, its sender
penalised, and the height asked again of another peer. Also: which blocks of a reply are
taken, the app-hash divergence halt, and what a node serves for ``GET_BLOCKS``."""
from __future__ import annotations

import asyncio

import pytest

from engine import config, limits
from engine import consensus as cs
from engine.block import Block, block_id, header_size, with_txs
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node import Node
from engine.node.blocksync import BlockSync
from engine.node.ports import Counters, NullObserver
from engine.node.signatures import VerifiedSignatures
from engine.node.tip import ChainTip
from tests.node.synchelpers import make_net

TOP = 40


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_net(tmp_path_factory.mktemp("held"), 1, 0)[0]


@pytest.fixture(scope="module")
def chain(home):
    """(validator set, {height: (block bytes, certificate, stored block)}) of a 40-block chain."""

    async def build():
        node = Node(home.path, store_sync=False)
        await node.start()
        try:
            await node.wait_for_height(TOP, 60)
            blocks = {}
            for stored in node.store.blocks(1, TOP + 1):
                raw = with_txs(Block.decode(stored.header, header_only=True),
                               stored.txs).encode(node.store.suite)
                blocks[stored.height] = (raw, stored.certificate, stored)
            return blocks
        finally:
            await node.stop()

    blocks = asyncio.run(asyncio.wait_for(build(), 90))
    genesis = config.load_home(home.path).genesis
    vset = cs.ValidatorSet([cs.Validator(v.public_key, v.power) for v in genesis.validators])
    return vset, blocks


class _Wire:
    def __init__(self):
        self.sent: list[tuple[bytes, codec.Message]] = []
        self.penalized: list[tuple[bytes, str]] = []

    def send(self, peer: bytes, message: bytes) -> bool:
        self.sent.append((peer, codec.decode(message, NetLimits())))
        return True

    def penalize(self, peer: bytes, reason: str) -> None:
        self.penalized.append((peer, reason))

    def asked(self) -> list[tuple[bytes, int, int]]:
        return [(p, m.fields[0], m.fields[1]) for p, m in self.sent if m.kind == codec.GET_BLOCKS]


class _Core:
    """The core as block sync sees it: its height, and the set history's horizon (the sets of
    the committed height + 1 and + 2 are known, none beyond)."""

    def __init__(self, vset: cs.ValidatorSet):
        self.height = 1
        self.vset = vset
        self.hash_block = block_id  # the core's block id: the header's hash, body checked

    def validators_for(self, height: int) -> cs.ValidatorSet | None:
        return self.vset if height <= self.height + 1 else None


class _Driver:
    def __init__(self, vset, tip: ChainTip, blocks):
        self.running, self.halted = True, ""
        self.core = _Core(vset)
        self.tip, self.blocks = tip, blocks
        self.committed: list[int] = []

    def input(self, event, height: int) -> None:
        raw, cert_raw, stored = self.blocks[height]
        # What the core would check of a CommitReceived: the certificate is for this block.
        assert isinstance(event, cs.CommitReceived) and event.block == raw
        assert event.certificate.encode() == cert_raw and event.certificate.height == height
        self.committed.append(height)
        self.core.height = height + 1
        self.tip.height, self.tip.block_hash, self.tip.app_hash = \
            height, stored.block_hash, stored.app_hash

    def halt(self, reason: str) -> None:
        self.halted = reason
        self.running = False


def _joiner(chain):
    vset, blocks = chain
    first = Block.decode(blocks[1][0], header_only=True)
    tip = ChainTip(app_hash=first.app_hash)  # the genesis state, which block 1's header names
    wire = _Wire()
    sync = BlockSync(chain_id=b"sync-chain", validators=vset, tip=tip, store=None,  # type: ignore[arg-type]
                     wire=wire, signatures=VerifiedSignatures(NullObserver()), counters=Counters())
    driver = _Driver(vset, tip, blocks)
    sync.bind(driver)  # type: ignore[arg-type]
    return sync, wire, driver


def _reply(blocks, start: int, count: int, bad_from: int | None = None) -> list:
    items = []
    for h in range(start, min(start + count, TOP + 1)):
        raw, cert, _ = blocks[h]
        if bad_from is not None and h >= bad_from:  # one signature byte flipped
            cert = cert[:-1] + bytes([cert[-1] ^ 1])
        items.append([h, raw, cert])
    return items


def test_blocks_above_the_horizon_are_held_and_never_asked_twice(chain):
    _, blocks = chain
    sync, wire, driver = _joiner(chain)
    a, b = b"a" * 32, b"b" * 32
    sync.on_status(a, TOP, b"\0" * 32)
    sync.on_status(b, TOP, b"\0" * 32)
    first = wire.asked()
    per = limits.sync_blocks_per_request
    assert [s for _, s, _ in first] == [1, 1 + per, 1 + 2 * per]  # 1..40 in three requests
    # The later ranges answer first: none of them can be verified yet (horizon: height 2).
    for peer, start, count in first[1:]:
        sync.on_blocks(peer, _reply(blocks, start, count))
    assert driver.committed == []
    assert sorted(sync._held) == list(range(1 + per, TOP + 1))
    assert wire.asked() == first  # held, so not asked for again
    peer, start, count = first[0]
    sync.on_blocks(peer, _reply(blocks, start, count))
    assert driver.committed == list(range(1, TOP + 1))  # every block, in order, verified
    assert sync.counters.get("blocks_synced") == TOP and not sync._held and not sync._buffer
    assert wire.asked() == first and wire.penalized == []
    heights = [h for _, s, n in wire.asked() for h in range(s, s + n)]
    assert sorted(heights) == list(range(1, TOP + 1))  # each height asked exactly once


def test_a_held_block_that_fails_its_certificate_is_refused_and_asked_again(chain):
    _, blocks = chain
    sync, wire, driver = _joiner(chain)
    a, b = b"a" * 32, b"b" * 32
    per = limits.sync_blocks_per_request
    sync.on_status(a, per, b"\0" * 32)  # a is asked for 1..16, b for the rest
    sync.on_status(b, TOP, b"\0" * 32)
    sync.on_status(a, TOP, b"\0" * 32)
    first = wire.asked()
    (pa, sa, na), (pb, sb, nb) = first[0], first[1]
    assert (pa, sa, na) == (a, 1, per) and (pb, sb, nb) == (b, 1 + per, per)
    # b's range carries certificates that fail from its fifth block on: held unread.
    sync.on_blocks(pb, _reply(blocks, sb, nb, bad_from=sb + 4))
    assert wire.penalized == [] and len(sync._held) == nb
    wire.sent.clear()
    sync.on_blocks(pa, _reply(blocks, sa, na))
    # Applied up to the first bad certificate; b's other held blocks are dropped with it.
    assert driver.committed == list(range(1, sb + 4))
    assert wire.penalized == [(pb, "invalid_blocks")]
    assert sync.counters.get("sync_held_block_refused") == 1
    assert not any(v[2] == pb for v in sync._held.values())
    assert pb not in sync._backed
    again = wire.asked()
    assert again and again[0][1] == sb + 4 and again[0][0] == pa  # asked again, of a
    p, s, n = again[0]
    sync.on_blocks(p, _reply(blocks, s, n))
    assert driver.committed == list(range(1, s + n))


def _synced_to(sync, driver, blocks, height: int) -> None:
    """Bring the joiner to ``height`` committed (blocks 1..height through on_blocks)."""
    peer = b"s" * 32
    for start in range(1, height + 1, 2):
        sync.on_blocks(peer, _reply(blocks, start, min(2, height + 1 - start)))
    assert driver.committed == list(range(1, height + 1)) and not driver.halted


def test_which_blocks_of_a_reply_are_taken(chain, monkeypatch):
    _, blocks = chain
    monkeypatch.setattr(limits, "sync_blocks_buffered_max", 8)
    sync, _wire, driver = _joiner(chain)
    _synced_to(sync, driver, blocks, 4)
    p = b"p" * 32
    # Heights already committed are skipped, the ones after them still taken (in order, any
    # order in the reply); nothing at or past the window's end (core height 5 + 8 = 13).
    reply = _reply(blocks, 2, 12)  # heights 2..13
    sync.on_blocks(p, list(reversed(reply)))
    assert driver.committed == list(range(1, 13))  # 13 was past the window: not taken
    assert sync._held == {} and sync._buffer == {}
    # Above the horizon (core height 13: sets known to 14): held; a second copy of a held
    # height does not replace the first one.
    sync.on_blocks(p, _reply(blocks, 16, 3))
    first = sync._held[17]
    sync.on_blocks(b"q" * 32, _reply(blocks, 17, 1))
    assert sorted(sync._held) == [16, 17, 18] and sync._held[17] is first


def test_a_reply_retires_its_request_by_peer_value_not_identity(chain):
    _, blocks = chain
    sync, wire, driver = _joiner(chain)
    a = b"a" * 32
    sync.on_status(a, TOP, b"\0" * 32)
    asked = wire.asked()
    assert asked[0][1] == 1
    same_peer = bytes(bytearray(a))  # the peer's id as a new message decodes it
    assert same_peer is not a
    wire.sent.clear()
    sync.on_blocks(same_peer, _reply(blocks, 1, 2))  # a partial answer: 1..2 of 1..16
    assert driver.committed == [1, 2]
    assert 1 not in sync._inflight and [s for _, s, _ in wire.asked()] == [3]  # the rest


def test_a_block_that_diverges_from_our_app_hash_halts_the_node(chain):
    _, blocks = chain
    for wrong in (bytes(32), b"\xff" * 32):  # below and above the block's own app hash
        sync, _wire, driver = _joiner(chain)
        _synced_to(sync, driver, blocks, 6)
        sync.tip.app_hash = wrong
        sync.on_blocks(b"p" * 32, _reply(blocks, 7, 2))
        assert driver.halted.startswith("app hash mismatch at height 6: ours " + wrong.hex())
        assert driver.committed == list(range(1, 7))  # block 7 never reached the core


def _header_bit_flipped(raw: bytes, field: bytes) -> bytes:
    """``raw`` with one bit of ``field`` (found in the header) flipped."""
    n = header_size(len(Block.decode(raw, header_only=True).chain_id))
    at = raw[:n].index(field)
    return raw[:at] + bytes([raw[at] ^ 0x10]) + raw[at + 1:]


def test_a_certified_block_swapped_for_another_never_halts_the_node(chain):
    """Found by tests/node/test_peer_fuzz.py: a peer that sends the next block with its real
    certificate but one bit of the header's app hash flipped made the node halt ("app hash
    mismatch": the network's state differs from ours), because the app hash was compared
    before anyone checked that the block is the one the certificate signs. Now such a block
    is refused as its sender's fault; the same height from an honest peer goes in."""
    _, blocks = chain
    raw7, cert7, stored7 = blocks[7]
    swapped = {
        "app hash": _header_bit_flipped(raw7, stored7.app_hash),
        "parent hash": _header_bit_flipped(raw7, blocks[6][2].block_hash),
        "truncated": raw7[:-3],
    }
    for what, bad in swapped.items():
        sync, wire, driver = _joiner(chain)
        _synced_to(sync, driver, blocks, 6)
        liar, honest = b"l" * 32, b"h" * 32
        sync.on_blocks(liar, [[7, bad, cert7], _reply(blocks, 8, 1)[0]])
        assert not driver.halted, (what, driver.halted)
        assert driver.committed == list(range(1, 7)), what
        assert wire.penalized == [(liar, "invalid_blocks")], what
        assert sync.counters.get("sync_block_refused") == 1, what
        assert liar not in sync._backed
        sync.on_status(honest, TOP, b"\0" * 32)
        asked = [s for p, s, _ in wire.asked() if p == honest]
        assert asked and asked[0] == 7, (what, asked)  # height 7 asked again, of the other
        sync.on_blocks(honest, _reply(blocks, 7, 1))
        assert driver.committed == list(range(1, 9)), what  # 7, then the 8 buffered before


def test_a_refused_senders_claim_stops_below_the_refused_height(chain):
    _, blocks = chain
    sync, _wire, driver = _joiner(chain)
    b = b"b" * 32
    _synced_to(sync, driver, blocks, 4)
    sync.on_status(b, TOP, b"\0" * 32)
    sync.on_blocks(b, _reply(blocks, 5, 6, bad_from=7))  # 5, 6 apply; 7..10 held, 7 fails
    assert driver.committed == list(range(1, 7))
    assert sync._peer_heights[b] == 6 and sync._held == {}


@pytest.fixture
def served(home, chain):
    """A BlockSync serving the 40-block chain from its store (tip at 40)."""
    from engine.store import Store, store_path

    store = Store(store_path(home.path), sync=False)
    _, blocks = chain
    tip = ChainTip(height=TOP, block_hash=blocks[TOP][2].block_hash)
    wire = _Wire()
    sync = BlockSync(chain_id=b"sync-chain", validators=chain[0], tip=tip, store=store,
                     wire=wire, signatures=VerifiedSignatures(NullObserver()),  # type: ignore[arg-type]
                     counters=Counters())
    yield sync, wire, blocks
    store.close()


def _served(wire) -> list[list[int]]:
    return [[h for h, _, _ in m.fields[0]] for _, m in wire.sent if m.kind == codec.BLOCKS]


def test_get_blocks_serves_the_range_asked_up_to_the_tip(served):
    sync, wire, blocks = served
    p = b"p" * 32
    sync.on_get_blocks(p, 3, 5)
    sync.on_get_blocks(p, 37, 16)   # past the tip: 37..40
    sync.on_get_blocks(p, 40, 1)
    sync.on_get_blocks(p, 41, 4)    # nothing above the tip: no reply
    assert _served(wire) == [[3, 4, 5, 6, 7], [37, 38, 39, 40], [40]]
    for h, raw, cert in wire.sent[0][1].fields[0]:  # the bytes a joiner applies
        assert raw == blocks[h][0] and cert == blocks[h][1]


def test_get_blocks_reply_stops_at_its_byte_bound(served, monkeypatch):
    sync, wire, blocks = served
    size = len(blocks[10][0])
    assert all(len(blocks[h][0]) == size for h in range(10, 14))  # empty blocks, one size
    monkeypatch.setattr(limits, "sync_reply_bytes_max", 3 * size)
    sync.on_get_blocks(b"p" * 32, 10, 16)
    monkeypatch.setattr(limits, "sync_reply_bytes_max", 1)  # one block is always sent
    sync.on_get_blocks(b"p" * 32, 20, 16)
    assert _served(wire) == [[10, 11, 12], [20]]
