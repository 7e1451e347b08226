"""Compact proposals (engine/node/compact.py): reconstruction from the pool, fetching what is
missing, refusing what does not belong to the signed proposal, bounded pending state, the wire
messages, and whole networks where transactions must be fetched or are withheld."""
from __future__ import annotations

import asyncio
import os

import pytest

from engine import consensus as cs
from engine import limits
from engine.block import Block, block_id, tx_root_of
from engine.crypto import SigningKey
from engine.errors import ProtocolError
from engine.hashing import blake3
from engine.net import codec
from engine.net.chaos import Chaos, ChaosConfig
from engine.net.limits import NetLimits
from engine.node import Node
from engine.node.compact import CompactBlocks, assemble, split_block
from engine.node.ports import NodeSeams
from tests.node.helpers import make_testnet, make_txs, run

CHAIN = "compact-chain"
KEY = SigningKey(b"\x07" * 32)


def _block(n_txs: int = 5, height: int = 3, size: int = 250,
           txs: list[bytes] | None = None) -> tuple[bytes, list[bytes]]:
    txs = [os.urandom(size) for _ in range(n_txs)] if txs is None else txs
    b = Block.make(chain_id=CHAIN.encode(), height=height, time_ms=1, parent_hash=bytes(32),
                   app_hash=bytes(32), proposer_index=0, last_commit=os.urandom(100),
                   evidence=[], txs=txs, validators_hash=bytes(32),
                   next_validators_hash=bytes(32))
    return b.encode(), txs


def _proposal(raw: bytes, height: int = 3) -> cs.Proposal:
    return cs.Proposal(height, 0, -1, block_id(raw), 0, b"\x00" * 64)


def test_split_and_assemble_round_trip():
    raw, txs = _block()
    head, got, ids = split_block(raw)
    assert got == txs and ids == [blake3(t) for t in txs]
    assert assemble(head, txs) == raw
    assert block_id(assemble(head, txs)) == block_id(raw)


def test_a_block_whose_transactions_are_all_pooled_is_complete_at_once():
    raw, txs = _block()
    head, _, ids = split_block(raw)
    pool = dict(zip(ids, txs))
    compact = CompactBlocks(lambda ids: [pool.get(i) for i in ids])
    pending = compact.open(_proposal(raw), head, ids, b"peer")
    assert not pending.missing and pending.block() == raw and len(compact) == 0
    assert pending.decoded() == Block.decode(raw)  # what parsing the whole block gives


def test_missing_transactions_are_tracked_filled_and_checked():
    raw, txs = _block(6)
    head, _, ids = split_block(raw)
    pool = {ids[i]: txs[i] for i in (0, 2, 5)}
    compact = CompactBlocks(lambda ids: [pool.get(i) for i in ids])
    p = _proposal(raw)
    pending = compact.open(p, head, ids, b"peer")
    assert pending.missing == {1, 3, 4} and len(compact) == 1
    assert compact.open(p, head, ids, b"other") is pending  # the same block once
    # An envelope that is not the one at its index is a protocol fault, and fills nothing.
    with pytest.raises(ProtocolError, match="not the one"):
        compact.receive(p.block_hash, [1], [txs[3]])
    assert pending.missing == {1, 3, 4}
    assert compact.receive(p.block_hash, [1, 3], [txs[1], txs[3]]) is None
    done = compact.receive(p.block_hash, [4], [txs[4]])
    assert done is pending and done.block() == raw and len(compact) == 0
    assert done.decoded() == Block.decode(raw)
    # Late duplicates for a completed block are ignored.
    assert compact.receive(p.block_hash, [4], [txs[4]]) is None


def test_a_head_or_ids_that_do_not_belong_to_the_signed_proposal_are_refused():
    raw, _ = _block()
    head, _, ids = split_block(raw)
    other_raw, _ = _block()
    compact = CompactBlocks(lambda ids: [None] * len(ids))
    with pytest.raises(ProtocolError, match="does not hash"):
        compact.open(_proposal(other_raw), head, ids, b"peer")
    swapped = ids[:-1] + [blake3(b"another tx")]
    with pytest.raises(ProtocolError, match="tx root"):
        compact.open(_proposal(raw), head, swapped, b"peer")
    with pytest.raises(ProtocolError, match="tx root"):
        compact.open(_proposal(raw), head, ids[:-1], b"peer")
    with pytest.raises(ProtocolError, match="another height"):
        compact.open(_proposal(raw, height=4), head, ids, b"peer")
    assert len(compact) == 0


def _on_both_sides(wanted: bytes, candidates) -> list:
    """One candidate whose hash sorts below ``wanted`` and one above (a check written as
    ``<`` or ``>`` instead of ``!=`` lets one side through)."""
    below = above = None
    for value, digest in candidates:
        if digest < wanted and below is None:
            below = value
        elif digest > wanted and above is None:
            above = value
        if below is not None and above is not None:
            return [below, above]
    raise AssertionError("no candidates on both sides")


def test_every_mismatch_is_refused_whichever_way_it_differs():
    # Fixed transactions: which candidates sort below or above is then fixed too.
    raw, txs = _block(txs=[blake3(b"fixed %d" % i) * 8 for i in range(5)])
    head, _, ids = split_block(raw)
    header = Block.decode(raw)
    compact = CompactBlocks(lambda ids: [None] * len(ids))
    for block_hash in (bytes(32), b"\xff" * 32):  # a signed id below and above the head's
        p = cs.Proposal(3, 0, -1, block_hash, 0, b"\x00" * 64)
        with pytest.raises(ProtocolError, match="does not hash"):
            compact.open(p, head, ids, b"peer")
    for height in (2, 4):
        with pytest.raises(ProtocolError, match="another height"):
            compact.open(_proposal(raw, height=height), head, ids, b"peer")
    swaps = ((ids[:-1] + [blake3(b"tx %d" % i)], None) for i in range(64))
    swaps = ((v, tx_root_of(v)) for v, _ in swaps)
    for swapped in _on_both_sides(header.tx_root, swaps):  # tx roots below and above
        with pytest.raises(ProtocolError, match="tx root"):
            compact.open(_proposal(raw), head, swapped, b"peer")
    assert len(compact) == 0
    p = _proposal(raw)
    pending = compact.open(p, head, ids, b"peer")
    others = ((t, blake3(t)) for t in (b"other %d" % i for i in range(64)))
    for wrong in _on_both_sides(ids[2], others):  # fetched ids below and above the named one
        with pytest.raises(ProtocolError, match="not the one"):
            compact.receive(p.block_hash, [2], [wrong])
    for index in (len(ids), len(ids) + 3):  # no such index: a fault, not an IndexError
        with pytest.raises(ProtocolError, match="not the one"):
            compact.receive(p.block_hash, [index], [txs[0]])
    assert pending.missing == set(range(len(ids)))
    # Counts and heights compared by value (CPython caches ints only up to 256).
    raw, txs = _block(300, height=1000, size=40)
    head, _, ids = split_block(raw)
    big = compact.open(_proposal(raw, height=1000), head, ids, b"peer")
    assert big.missing == set(range(300)) and len(compact) == 2


def test_pending_blocks_are_bounded_and_forgotten_below_the_core_height():
    compact = CompactBlocks(lambda ids: [None] * len(ids))
    opened = []
    for h in range(1, limits.compact_blocks_pending_max + 4):
        raw, _ = _block(2, height=h)
        head, _, ids = split_block(raw)
        opened.append(compact.open(_proposal(raw, height=h), head, ids, b"peer"))
    assert len(compact) == limits.compact_blocks_pending_max
    compact.forget_below(limits.compact_blocks_pending_max + 2)
    assert len(compact) == 2


def test_compact_messages_are_checked_by_the_codec():
    lim = NetLimits()
    good = codec.encode(codec.COMPACT_PROPOSAL, b"p" * 116, b"h" * 300, [b"i" * 32] * 3)
    assert codec.decode(good, lim).fields[2] == [b"i" * 32] * 3
    assert codec.decode(codec.encode(codec.COMPACT_PROPOSAL, b"p", b"h", []), lim).fields[2] == []
    bad = [
        codec.encode(codec.COMPACT_PROPOSAL, b"p", b"h", [b"short"]),
        codec.encode(codec.COMPACT_PROPOSAL, b"p", b"h", b"not a list"),
        codec.encode(codec.COMPACT_PROPOSAL, b"p", b"h"),
        codec.encode(codec.GET_PROPOSAL_TXS, 3, b"x" * 31, [0]),
        codec.encode(codec.GET_PROPOSAL_TXS, 3, b"x" * 32, []),
        codec.encode(codec.GET_PROPOSAL_TXS, 3, b"x" * 32, [-1]),
        codec.encode(codec.GET_PROPOSAL_TXS, 0, b"x" * 32, [0]),
        codec.encode(codec.GET_PROPOSAL_TXS, 3, b"x" * 32, [lim.proposal_txs_max]),
        codec.encode(codec.PROPOSAL_TXS, 3, b"x" * 32, [0, 1], [b"tx"]),
        codec.encode(codec.PROPOSAL_TXS, 3, b"x" * 32, [0], ["text"]),
    ]
    for message in bad:
        with pytest.raises(ProtocolError):
            codec.decode(message, lim)


def test_proposal_bytes_per_transaction_before_and_after():
    """The figure in the README: 1,000 transactions of 250 B in one proposal."""
    raw, _ = _block(1000)
    p = _proposal(raw).encode()
    head, _, ids = split_block(raw)
    full = len(codec.encode(codec.PROPOSAL, p, raw))
    compact = len(codec.encode(codec.COMPACT_PROPOSAL, p, head, ids))
    assert full / 1000 > 254 and compact / 1000 < 36, (full / 1000, compact / 1000)


def _chaos(*kinds: str) -> Chaos:
    return Chaos(ChaosConfig(drop_pct=100.0, kinds=kinds, seed=1))


async def _connected(nodes, timeout_s: float = 30) -> None:
    """Until every node has all the others as peers (so node 0's gossip meets the chaos)."""
    for _ in range(int(timeout_s * 20)):
        if all(len(n.status()["peers"]) == len(nodes) - 1 for n in nodes):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the nodes did not connect")


async def _stop(nodes):
    await asyncio.gather(*(n.stop() for n in nodes))


def test_validators_fetch_the_transactions_only_the_proposer_holds(tmp_path):
    """Node 0's transaction gossip is dropped, so only node 0 holds its transactions: the
    others must fetch them when node 0 proposes, and every node commits them."""
    homes = make_testnet(tmp_path, 4, CHAIN)

    async def main():
        chaos = _chaos("txs")
        nodes = [Node(homes[0], seams=NodeSeams(chaos=chaos))] + [Node(h) for h in homes[1:]]
        for n in nodes:
            await n.start()
        try:
            await _connected(nodes)
            results = await nodes[0].submit_txs(make_txs(CHAIN, 40, "only0"))
            assert all(r.ok for r in results)
            infos = await asyncio.gather(*(n.wait_for_tx(r.tx_id, 40) for n in nodes
                                           for r in results))
            assert all(i is not None for i in infos)
            assert chaos.counts["dropped"] > 0  # the fault happened
            fetched = sum(n.counters.get("compact_txs_fetched") for n in nodes[1:])
            completed = sum(n.counters.get("compact_blocks_completed") for n in nodes[1:])
            assert fetched >= 40 and completed >= 1, (fetched, completed)
        finally:
            await _stop(nodes)

    run(main(), 90)


def test_a_proposer_that_withholds_transactions_costs_rounds_not_the_chain(tmp_path):
    """Node 0 holds transactions nobody else has and never answers requests for them: its
    proposals with transactions can never be completed, the others time out those rounds, and
    the chain goes on with the other proposers."""
    homes = make_testnet(tmp_path, 4, CHAIN)

    async def main():
        chaos = _chaos("txs", "proposal_txs")
        nodes = [Node(homes[0], seams=NodeSeams(chaos=chaos))] + [Node(h) for h in homes[1:]]
        for n in nodes:
            await n.start()
        try:
            await _connected(nodes)
            start = max(n.latest_height for n in nodes)
            results = await nodes[0].submit_txs(make_txs(CHAIN, 20, "withheld"))
            assert all(r.ok for r in results)
            await asyncio.gather(*(n.wait_for_height(start + 8, 60) for n in nodes[1:]))
            fetched = sum(n.counters.get("compact_txs_fetched") for n in nodes[1:])
            completed = sum(n.counters.get("compact_blocks_completed") for n in nodes[1:])
            assert fetched > 0 and completed == 0, (fetched, completed)
            assert chaos.counts["dropped"] > 0
            for n in nodes[1:]:
                assert n.tx_info(results[0].tx_id) is None
        finally:
            await _stop(nodes)

    run(main(), 90)
