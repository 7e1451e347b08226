"""The block format: round trip, and nothing a peer sends makes decode fail other than with
ProtocolError."""
from __future__ import annotations

import dataclasses
import os
import random

import pytest

from engine.block import Block, Header, block_id, header_size, with_txs
from engine.hashing import blake3, merkle_root
from engine.net.errors import ProtocolError

EVIDENCE = os.urandom(226)
VSET = os.urandom(32)
NEXT_VSET = os.urandom(32)


def _block(txs=(b"tx-a", b"tx-bb", b"c" * 300), evidence=(EVIDENCE,)):
    return Block.make(chain_id=b"chain", height=7, time_ms=123456, parent_hash=os.urandom(32),
                      app_hash=os.urandom(32), proposer_index=2, last_commit=os.urandom(150),
                      evidence=list(evidence), txs=list(txs), validators_hash=VSET,
                      next_validators_hash=NEXT_VSET)


def test_roundtrip_and_header_only():
    b = _block()
    raw = b.encode()
    assert Block.decode(raw) == b
    assert b.tx_root == merkle_root(list(b.txs))
    head = Block.decode(b.head(), header_only=True)
    assert head.tx_count == 3 and head.txs == ()
    assert with_txs(head, list(b.txs)).encode() == raw
    empty = _block(txs=(), evidence=())
    assert Block.decode(empty.encode()) == empty
    assert empty.tx_root == merkle_root([])
    assert block_id(raw) != block_id(empty.encode())


def test_block_id_is_the_hash_of_the_header_alone():
    b = _block()
    raw = b.encode()
    header = b.header()
    encoded = header.encode()
    assert raw.startswith(encoded) and len(encoded) == header_size(len(b.chain_id))
    assert block_id(raw) == blake3(encoded) == header.hash() == b.hash()
    assert Header.decode(encoded) == header
    assert header.last_commit_hash == blake3(b.last_commit)
    assert header.evidence_hash == merkle_root([EVIDENCE])
    assert (header.validators_hash, header.next_validators_hash) == (VSET, NEXT_VSET)
    with pytest.raises(ProtocolError, match="trailing"):
        Header.decode(encoded + b"x")


@pytest.mark.parametrize("field", ["txs", "last_commit", "evidence"])
def test_a_body_that_is_not_the_one_the_header_commits_to_has_no_id(field):
    b = _block()
    other = {"txs": b.txs[:2] + (b"tx-other",), "last_commit": os.urandom(150),
             "evidence": (os.urandom(226),)}[field]
    swapped = dataclasses.replace(b, **{field: other})
    # The header of b followed by another body: decodes, but block_id refuses it.
    raw = b.header().encode() + swapped.encode()[header_size(len(b.chain_id)):]
    Block.decode(raw)
    with pytest.raises(ProtocolError, match="does not match|do not match"):
        block_id(raw)


def _fixed_block():
    """A block with fixed contents, so the bit flips below hit the same bytes every run."""
    return Block.make(chain_id=b"chain", height=7, time_ms=123456, parent_hash=b"P" * 32,
                      app_hash=b"A" * 32, proposer_index=2, last_commit=b"L" * 150,
                      evidence=[b"E" * 226], txs=[b"tx-a", b"tx-bb", b"c" * 300],
                      validators_hash=b"V" * 32, next_validators_hash=b"N" * 32)


def _ranges(b: Block) -> tuple[list[range], list[range]]:
    """Byte ranges of the raw block that hold values (not lengths, counts or the version): a
    flip there still decodes. First the header values that only the header holds (a flip gives
    a block with another id), then the header hashes and body values that bind the header to
    the body (a flip leaves a block whose body does not match its header)."""
    n = len(b.chain_id)
    fixed = 2 + n
    free = [range(2, 2 + n), range(fixed, fixed + 8 + 8 + 32 + 32)]  # height .. app_hash
    bound = [range(fixed + 80, fixed + 112)]  # tx_root
    off = fixed + 112 + 4  # past tx_count
    bound.append(range(off, off + 64))  # last_commit_hash, evidence_hash
    free.append(range(off + 64, off + 64 + 64 + 4))  # validator hashes, proposer index
    off += 64 + 64 + 4 + 4  # past last_commit's length
    bound.append(range(off, off + len(b.last_commit)))
    off += len(b.last_commit) + 2
    for e in b.evidence:
        bound.append(range(off + 4, off + 4 + len(e)))
        off += 4 + len(e)
    for t in b.txs:
        bound.append(range(off + 4, off + 4 + len(t)))
        off += 4 + len(t)
    return free, bound


def test_malformed_blocks_are_rejected_with_protocol_error():
    raw = _fixed_block().encode()
    rng = random.Random(7)
    must_reject = [b"", b"\x02", b"\x01" + raw[1:], raw + b"\x00", raw[:-1]]
    must_reject += [raw[:i] for i in range(0, len(raw), 7)]
    for data in must_reject:
        with pytest.raises(ProtocolError):
            Block.decode(data)
    # Random bytes: whatever yields an id must be exactly what it encodes back to.
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
        try:
            block_id(data)
            assert Block.decode(data).encode() == data
        except ProtocolError:
            pass


def test_bit_flips_in_structure_are_rejected_and_in_values_change_the_block_or_its_id():
    b = _fixed_block()
    raw = b.encode()
    bid = block_id(raw)
    free, bound = _ranges(b)
    free_set = set().union(*map(set, free))
    bound_set = set().union(*map(set, bound))
    rejected = changed = unbound = 0
    for pos in range(len(raw)):
        for bit in (0, 3, 7):
            m = bytearray(raw)
            m[pos] ^= 1 << bit
            m = bytes(m)
            if pos in free_set:  # a header value: another block with another id
                d = Block.decode(m)
                assert d != b and d.encode() == m and block_id(m) != bid
                changed += 1
            elif pos in bound_set:  # decodes, but the body no longer matches the header
                Block.decode(m)
                with pytest.raises(ProtocolError):
                    block_id(m)
                unbound += 1
            else:  # version, a length or a count: the structure no longer adds up
                with pytest.raises(ProtocolError):
                    Block.decode(m)
                rejected += 1
    assert rejected >= 3 * (2 + 4 + 4 + 2 + 4 * 4) and changed > rejected and unbound > changed


def test_absurd_tx_count_is_refused_before_allocating():
    b = _block()
    raw = bytearray(b.encode())
    # tx_count sits after version, chain id and the fixed fields up to tx_root; 2**32 - 1.
    off = 2 + len(b.chain_id) + 8 + 8 + 32 * 3
    raw[off:off + 4] = b"\xff\xff\xff\xff"
    with pytest.raises(ProtocolError, match="too many"):
        Block.decode(bytes(raw))


def test_an_empty_transaction_in_the_list_is_refused():
    b = _fixed_block()
    raw = b.encode()
    tail = sum(4 + len(t) for t in b.txs)
    head = raw[:len(raw) - tail]
    # The same tx count, the first transaction replaced by an empty one (and one byte more
    # at the end so that sizes still add up): the list no longer holds the count it claims.
    body = b"\x00\x00\x00\x00" + b"".join(len(t).to_bytes(4, "little") + t for t in b.txs[1:])
    with pytest.raises(ProtocolError, match="empty"):
        Block.decode(head + body + b"\x00" * 4)


def test_tx_fields_where_the_commit_reads_them_by_position():
    """engine/node/commit.py reads a block's (sender, nonce) pairs with itemgetter(1, 2)."""
    from engine.node.commit import _SENDER, _SENDER_NONCE
    from engine.tx import Tx

    assert Tx._fields[1:3] == ("sender", "nonce")
    t = Tx(1, b"s" * 32, 7, b"p", b"x" * 64, b"i" * 32)
    assert _SENDER_NONCE(t) == (t.sender, t.nonce) and _SENDER(t) == t.sender
