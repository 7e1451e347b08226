"""The block format: round trip, and nothing a peer sends makes decode fail other than with
ProtocolError."""
from __future__ import annotations

import os
import random

import pytest

from engine.block import Block, with_txs
from engine.hashing import blake3, merkle_root
from engine.net.errors import ProtocolError

EVIDENCE = os.urandom(226)


def _block(txs=(b"tx-a", b"tx-bb", b"c" * 300), evidence=(EVIDENCE,)):
    return Block.make(chain_id=b"chain", height=7, time_ms=123456, parent_hash=os.urandom(32),
                      app_hash=os.urandom(32), proposer_index=2, last_commit=os.urandom(150),
                      evidence=list(evidence), txs=list(txs))


def test_roundtrip_and_header_only():
    b = _block()
    raw = b.encode()
    assert Block.decode(raw) == b
    assert b.tx_root == merkle_root(list(b.txs))
    head = Block.decode(b.header(), header_only=True)
    assert head.tx_count == 3 and head.txs == ()
    assert with_txs(head, list(b.txs)).encode() == raw
    empty = _block(txs=(), evidence=())
    assert Block.decode(empty.encode()) == empty
    assert empty.tx_root == merkle_root([])
    assert blake3(raw) != blake3(empty.encode())


def _fixed_block():
    """A block with fixed contents, so the bit flips below hit the same bytes every run."""
    return Block.make(chain_id=b"chain", height=7, time_ms=123456, parent_hash=b"P" * 32,
                      app_hash=b"A" * 32, proposer_index=2, last_commit=b"L" * 150,
                      evidence=[b"E" * 226], txs=[b"tx-a", b"tx-bb", b"c" * 300])


def _content_ranges(b: Block) -> list[range]:
    """Byte ranges of the raw block that hold values (not lengths, counts or the version): a
    flip there still decodes, to a block differing from the original."""
    n = len(b.chain_id)
    fixed = 2 + n
    ranges = [range(2, 2 + n), range(fixed, fixed + 8 + 8 + 32 * 3 + 4)]  # height .. proposer
    off = fixed + 8 + 8 + 32 * 3 + 4 + 4 + 4  # past tx_count and last_commit's length
    ranges.append(range(off, off + len(b.last_commit)))
    off += len(b.last_commit) + 2
    for e in b.evidence:
        ranges.append(range(off + 4, off + 4 + len(e)))
        off += 4 + len(e)
    for t in b.txs:
        ranges.append(range(off + 4, off + 4 + len(t)))
        off += 4 + len(t)
    return ranges


def test_malformed_blocks_are_rejected_with_protocol_error():
    raw = _fixed_block().encode()
    rng = random.Random(7)
    must_reject = [b"", b"\x01", b"\x02" + raw[1:], raw + b"\x00", raw[:-1]]
    must_reject += [raw[:i] for i in range(0, len(raw), 7)]
    for data in must_reject:
        with pytest.raises(ProtocolError):
            Block.decode(data)
    # Random bytes: whatever decodes must be exactly what it encodes back to (nothing ignored).
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
        try:
            assert Block.decode(data).encode() == data
        except ProtocolError:
            pass


def test_bit_flips_in_structure_are_rejected_and_in_values_change_the_block():
    b = _fixed_block()
    raw = b.encode()
    content = set().union(*map(set, _content_ranges(b)))
    rejected = changed = 0
    for pos in range(len(raw)):
        for bit in (0, 3, 7):
            m = bytearray(raw)
            m[pos] ^= 1 << bit
            if pos in content:
                d = Block.decode(bytes(m))  # a value changed: decodes, to a different block
                assert d != b and d.encode() == bytes(m)
                changed += 1
            else:  # version, a length or a count: the structure no longer adds up
                with pytest.raises(ProtocolError):
                    Block.decode(bytes(m))
                rejected += 1
    assert rejected >= 3 * (2 + 4 + 4 + 2 + 4 * 4) and changed > rejected


def test_absurd_tx_count_is_refused_before_allocating():
    b = _block()
    raw = bytearray(b.encode())
    # tx_count sits after version, chain id and the fixed fields; set it to 2**32 - 1.
    off = 2 + len(b.chain_id) + 8 + 8 + 32 * 3 + 4
    raw[off:off + 4] = b"\xff\xff\xff\xff"
    with pytest.raises(ProtocolError, match="too many"):
        Block.decode(bytes(raw))
