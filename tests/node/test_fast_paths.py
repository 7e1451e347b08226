"""Fast paths of the transaction path that skip a per-item Python loop when the input has its
usual shape; each is held here to the answer of the loop it skips (or of the format itself):
queueing a peer's batch for admission, gossiping admitted transactions, encoding a block and
splitting one into head and transactions."""
from __future__ import annotations

import asyncio
import itertools
import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.app import CheckResult
from engine.block import Block
from engine.mempool import FULL, Mempool, MempoolLimits
from engine.net import codec
from engine.net.limits import NetLimits
from engine.node.compact import split_block
from engine.node.router import TxGossip
from engine.suite import DEFAULT


def _mempool(pending_max: int) -> Mempool:
    return Mempool(chain_id=b"chain", check_tx=lambda tx: CheckResult(),
                   find_committed=lambda ids: [False] * len(ids),
                   limits=MempoolLimits(pending_txs_max=pending_max),
                   verify=lambda envs, chain_id, threads: [True] * len(envs),
                   decode=lambda e: SimpleNamespace(payload=e))


@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("queued, pending_max",
                         [(0, 10), (3, 10), (4, 10), (5, 10), (7, 10), (10, 10), (0, 4), (0, 5)])
def test_a_peers_batch_is_queued_as_the_loop_queues_it(local, queued, pending_max):
    """submit() of a list of bytes (the fast path) and of the same items as a tuple (the
    loop) leave the same queue and refusal counts, also when the queue fills up midway."""
    async def main():
        envs = [b"tx%d" % i for i in range(6)]
        out = []
        for shape in (list, tuple):
            mp = _mempool(pending_max)
            mp.submit([b"old%d" % i for i in range(queued)], local=False)
            mp.submit(shape(envs), local=local)
            out.append((list(mp._pending), dict(mp.rejected), mp._wakeup.is_set()))
        assert out[0] == out[1]
        pending, rejected, woken = out[0]
        fit = min(6, pending_max - queued)
        assert [e for e, _, _ in pending[queued:]] == envs[:fit]
        assert all(slot is None and flag is local for _, slot, flag in pending[queued:])
        assert rejected.get(FULL, 0) == 6 - fit and woken == bool(pending)
    asyncio.run(main())


def test_a_peers_batch_of_other_types_is_converted_or_refused_by_name():
    async def main():
        mp = _mempool(100)
        mp.submit([b"a", bytearray(b"b"), memoryview(b"c").tobytes()])
        assert [e for e, _, _ in mp._pending] == [b"a", b"b", b"c"]
        assert all(type(e) is bytes for e, _, _ in mp._pending)
        with pytest.raises(TypeError, match="envelope must be bytes, not str"):
            mp.submit([b"d", "e"])
        assert [e for e, _, _ in mp._pending][-1] == b"d"  # queued before the bad one
    asyncio.run(main())


class _Wire:
    def __init__(self):
        self.sent: list[bytes] = []

    def broadcast(self, raw: bytes) -> None:
        self.sent.append(raw)


def _gossip_messages(envs: list[bytes], limits: NetLimits) -> list[list[bytes]]:
    wire = _Wire()
    TxGossip(wire, limits)(envs)  # type: ignore[arg-type]
    out = []
    for raw in wire.sent:
        msg = codec.decode(raw, limits)
        assert msg.kind == codec.TXS
        out.append(msg.fields[0])
    return out


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), max_size=40), count_max=st.integers(1, 12),
       frame=st.integers(200, 800))
def test_gossip_sends_every_transaction_once_in_order_within_the_limits(sizes, count_max,
                                                                          frame):
    limits = NetLimits(txs_per_message_max=count_max, frame_bytes_max=frame, tx_bytes_max=64)
    envs = [bytes([i % 256]) * n for i, n in enumerate(sizes)]
    messages = _gossip_messages(envs, limits)
    assert [e for m in messages for e in m] == envs
    assert all(m for m in messages)  # nothing empty is sent
    assert all(len(m) <= count_max and len(codec.encode(codec.TXS, m)) <= frame
               for m in messages)
    # As few messages as the greedy split makes: each one full when the next begins.
    for m, nxt in itertools.pairwise(messages):
        assert len(m) == count_max or sum(len(e) + 5 for e in m) + len(nxt[0]) > frame // 2
    if len(envs) <= count_max and sum(len(e) + 5 for e in envs) <= frame // 2:
        assert len(messages) == (1 if envs else 0)
    # The split's own budget: half a frame, 5 bytes counted per envelope (room for msgpack's
    # framing whatever the sizes); no message holds more than that rule lets in.
    for m in messages:
        if len(m) > 1:
            assert sum(len(e) + 5 for e in m[:-1]) + len(m[-1]) <= frame // 2


def test_gossip_counts_each_new_message_from_zero():
    """Half a frame of 100 bytes, 5 counted per envelope: [50] | [50, 45] | [50], the second
    message filled to exactly 100 (55 + 45), as the first could have been."""
    limits = NetLimits(txs_per_message_max=64, frame_bytes_max=200, tx_bytes_max=64)
    envs = [b"a" * 50, b"b" * 50, b"c" * 45, b"d" * 50]
    assert _gossip_messages(envs, limits) == [envs[:1], envs[1:3], envs[3:]]
    assert _gossip_messages(envs[1:3], limits) == [envs[1:3]]
    # A second message starts from zero, not below: 55 + 46 is over the 100.
    envs = [b"a" * 50, b"b" * 50, b"c" * 46]
    assert _gossip_messages(envs, limits) == [envs[:1], envs[1:2], envs[2:]]
    # One message only when 5 bytes per envelope fit: 10 of 6 bytes count 110, so 9 + 1.
    envs = [bytes([i]) * 6 for i in range(10)]
    assert _gossip_messages(envs, limits) == [envs[:9], envs[9:]]


def _block(txs) -> Block:
    return Block(chain_id=b"chain", height=3, time_ms=1_700_000_000_000,
                 parent_hash=b"p" * 32, app_hash=b"a" * 32, tx_root=b"t" * 32,
                 proposer_index=1, last_commit=b"c" * 40, evidence=(b"e" * 10,), txs=txs,
                 validators_hash=b"v" * 32, next_validators_hash=b"n" * 32)


def test_block_encoding_is_the_same_for_every_shape_of_its_transactions():
    rng = random.Random(5)
    txs = [rng.randbytes(rng.randrange(1, 300)) for _ in range(50)]
    reference = _block(txs).head() + b"".join(len(t).to_bytes(4, "little") + t for t in txs)
    for shape in (list(txs), tuple(txs), [bytearray(t) for t in txs], txs[:3]):
        expected = reference if len(shape) == 50 else _block(shape).head() + b"".join(
            len(t).to_bytes(4, "little") + t for t in shape)
        raw = _block(shape).encode()
        assert raw == expected
        assert list(Block.decode(raw).txs) == [bytes(t) for t in shape]
    empty = _block([]).encode()
    assert empty == _block([]).head() and Block.decode(empty).txs in ([], ())


def test_split_block_gives_the_head_the_transactions_and_their_ids():
    rng = random.Random(6)
    for n in (0, 1, 7, 300):
        txs = [rng.randbytes(rng.randrange(1, 400)) for _ in range(n)]
        block = _block(txs)
        head, got, ids = split_block(block.encode(), DEFAULT)
        assert head == block.head() and got == txs
        assert ids == (DEFAULT.hash_many(txs) if txs else [])
