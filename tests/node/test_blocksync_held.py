"""Block sync above the validator-set horizon: a block more than two heights past the tip
cannot be verified on arrival (its set is not decided yet). It is held, not dropped and asked
for again, and verified when the core reaches it; one whose certificate fails then is refused,
its sender penalised, and the height asked again of another peer.

The blocks and certificates are real: a one-validator chain built by an in-process node."""
from __future__ import annotations

import asyncio

import pytest

from engine import config, limits
from engine import consensus as cs
from engine.block import Block, with_txs
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
def chain(tmp_path_factory):
    """(validator set, {height: (block bytes, certificate, stored block)}) of a 40-block chain."""
    home = make_net(tmp_path_factory.mktemp("held"), 1, 0)[0]

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

    def validators_for(self, height: int) -> cs.ValidatorSet | None:
        return self.vset if height <= self.height + 1 else None


class _Driver:
    running = True

    def __init__(self, vset, tip: ChainTip, blocks):
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
        raise AssertionError(f"halted: {reason}")


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
