"""Sign bytes exactly as docs/formats.md, wire round trips, peer-input errors."""
import pytest

from engine.consensus import NIL, Proposal, ProtocolError, Vote, VoteType, vote_sign_bytes
from engine.consensus.types import proposal_sign_bytes

HASH = bytes(range(32))


def test_vote_sign_bytes_layout():
    got = vote_sign_bytes(b"abc", VoteType.PRECOMMIT, 0x0102030405060708, 0x0A0B0C0D, HASH)
    want = (b"engine/vote/v1" + b"\x03abc" + b"\x02"
            + bytes([8, 7, 6, 5, 4, 3, 2, 1]) + bytes([0x0D, 0x0C, 0x0B, 0x0A]) + HASH)
    assert got == want
    assert len(got) == 14 + 1 + 3 + 1 + 8 + 4 + 32


def test_nil_prevote_sign_bytes():
    got = vote_sign_bytes(b"c", VoteType.PREVOTE, 1, 0, NIL)
    assert got == b"engine/vote/v1\x01c\x01" + b"\x01" + bytes(7) + bytes(4) + bytes(32)


def test_proposal_sign_bytes_layout():
    got = proposal_sign_bytes(b"xy", 5, 2, -1, HASH)
    want = (b"engine/proposal/v1" + b"\x02xy" + bytes([5]) + bytes(7) + bytes([2, 0, 0, 0])
            + b"\xff\xff\xff\xff" + HASH)
    assert got == want


def test_vote_round_trip_and_errors():
    v = Vote(VoteType.PREVOTE, 7, 3, HASH, 2, bytes(range(64)))
    data = v.encode()
    assert len(data) == Vote.WIRE_BYTES == 113
    assert Vote.decode(data) == v
    with pytest.raises(ProtocolError):
        Vote.decode(data[:-1])
    with pytest.raises(ProtocolError):
        Vote.decode(b"\x03" + data[1:])  # vote type 3
    with pytest.raises(ProtocolError):
        Vote.decode(b"not bytes" if False else 5)  # type: ignore[arg-type]


def test_proposal_round_trip():
    p = Proposal(9, 4, 1, HASH, 0, bytes(64))
    assert Proposal.decode(p.encode()) == p
    with pytest.raises(ProtocolError):
        Proposal.decode(p.encode() + b"x")
