"""Commit certificates: built from 2f+1 precommits, verified with one batch call and one tally;
a forged signature, too little power or a bad bitmap are rejected."""
import dataclasses

import pytest

from engine import crypto
from engine.consensus import CommitCertificate, ProtocolError, Validator, ValidatorSet, VoteType
from engine.consensus.types import vote_sign_bytes

from .harness import CHAIN, keys

BLOCK_HASH = bytes([7]) * 32


def _cert(signers, n=4, powers=None, height=3, round=1):
    ks = keys(n)
    vs = ValidatorSet([Validator(k.public_key, p) for k, p in zip(ks, powers or [1] * n)])
    msg = vote_sign_bytes(CHAIN, VoteType.PRECOMMIT, height, round, BLOCK_HASH)
    sigs = {i: ks[i].sign(msg) for i in signers}
    return CommitCertificate.build(height, round, BLOCK_HASH, sigs, n), vs


def test_quorum_certificate_verifies_with_one_batch_call(monkeypatch):
    cert, vs = _cert([0, 2, 3])
    calls = []
    real = crypto.verify_batch

    def counting(*a, **kw):
        calls.append(len(a[0]))
        return real(*a, **kw)

    cert.verify(CHAIN, vs, counting)
    assert calls == [3]
    assert cert.signer_indices() == [0, 2, 3] and cert.bitmap == bytes([0b1101])


def test_too_little_power_is_rejected():
    cert, vs = _cert([0, 1])
    with pytest.raises(ProtocolError, match="not more than 2/3"):
        cert.verify(CHAIN, vs)
    heavy, vs2 = _cert([0], powers=[7, 1, 1, 1])  # one validator with 7/10 of the power
    heavy.verify(CHAIN, vs2)


def test_exactly_two_thirds_of_the_power_is_not_a_quorum():
    # More than 2/3 is needed: exactly 2/3 must be refused, one unit more accepted.
    cert, vs = _cert([0, 1], n=3)  # 2 of 3
    with pytest.raises(ProtocolError, match="power 2 of 3 is not more than 2/3"):
        cert.verify(CHAIN, vs)
    weighted, vs2 = _cert([0, 3], powers=[2, 1, 1, 2])  # 4 of 6
    with pytest.raises(ProtocolError, match="power 4 of 6 is not more than 2/3"):
        weighted.verify(CHAIN, vs2)
    more, vs3 = _cert([0, 1, 3], powers=[2, 1, 1, 2])  # 5 of 6
    more.verify(CHAIN, vs3)
    assert not vs2.has_quorum(4) and vs2.has_quorum(5)


def test_forged_signature_is_rejected():
    cert, vs = _cert([0, 1, 2])
    forged = list(cert.signatures)
    forged[1] = bytes(64)
    bad = dataclasses.replace(cert, signatures=tuple(forged))
    with pytest.raises(ProtocolError, match=r"invalid signatures from validators \[1\]"):
        bad.verify(CHAIN, vs)
    with pytest.raises(ProtocolError):
        cert.verify(b"other-chain", vs)
    with pytest.raises(ProtocolError):
        dataclasses.replace(cert, round=2).verify(CHAIN, vs)


def test_bitmap_and_signature_count_must_agree():
    cert, vs = _cert([0, 1, 2])
    with pytest.raises(ProtocolError):
        dataclasses.replace(cert, signatures=cert.signatures[:2]).verify(CHAIN, vs)
    with pytest.raises(ProtocolError):
        dataclasses.replace(cert, bitmap=bytes([0b11110111])).verify(CHAIN, vs)


def test_encode_decode_round_trip():
    cert, _ = _cert(list(range(1, 8)), n=10)
    data = cert.encode()
    back = CommitCertificate.decode(data, 10)
    assert back == cert
    back.verify(CHAIN, ValidatorSet([Validator(k.public_key, 1) for k in keys(10)]))
    for cut in (5, len(data) - 1):
        with pytest.raises(ProtocolError):
            CommitCertificate.decode(data[:cut], 10)
    with pytest.raises(ProtocolError):
        CommitCertificate.decode(data, 17)
