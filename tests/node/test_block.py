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


def test_garbage_truncation_and_bit_flips_raise_protocol_error_only():
    raw = _block().encode()
    rng = random.Random(7)
    cases = [b"", b"\x01", b"\x02" + raw[1:], raw + b"\x00"]
    cases += [raw[:i] for i in range(0, len(raw), 7)]
    cases += [os.urandom(rng.randrange(1, 600)) for _ in range(300)]
    for _ in range(300):
        m = bytearray(raw)
        m[rng.randrange(len(m))] ^= 1 << rng.randrange(8)
        cases.append(bytes(m))
    for data in cases:
        try:
            Block.decode(data)
        except ProtocolError:
            pass


def test_absurd_tx_count_is_refused_before_allocating():
    b = _block()
    raw = bytearray(b.encode())
    # tx_count sits after version, chain id and the fixed fields; set it to 2**32 - 1.
    off = 2 + len(b.chain_id) + 8 + 8 + 32 * 3 + 4
    raw[off:off + 4] = b"\xff\xff\xff\xff"
    with pytest.raises(ProtocolError, match="too many"):
        Block.decode(bytes(raw))
