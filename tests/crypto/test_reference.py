"""The pure-Python ZIP-215 reference against every vector file's expected verdicts."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine._reference import ed25519 as ref
from tests.crypto import vectors


@pytest.mark.parametrize("name", vectors.FILES)
def test_reference_matches_expected(name):
    cases = vectors.load(name)
    wrong = [c.case_id for c in cases
             if ref.verify(c.public_key, c.message, c.signature) != c.expected]
    assert wrong == []
    assert any(c.expected for c in cases)


def test_reference_counts_match_readme():
    accepted = {name: sum(c.expected for c in vectors.load(name)) for name in vectors.FILES}
    assert accepted == {
        "rfc8032/sign.input": 1024,
        "wycheproof/ed25519_test.json": 89,
        "speccheck/cases.json": 9,
        "cctv/ed25519vectors.json": 826,
        "zip215/zip215.json": 196,
    }


def test_reference_accepts_openssl_signatures_and_rejects_tampering():
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pk = key.public_key().public_bytes_raw()
    sig = key.sign(b"hello")
    assert ref.verify(pk, b"hello", sig)
    assert not ref.verify(pk, b"hellp", sig)
    assert not ref.verify(pk, b"hello", sig[:32] + (int.from_bytes(sig[32:], "little") + ref.L)
                          .to_bytes(32, "little"))


def test_reference_batch_detects_a_bad_entry():
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    pk = key.public_key().public_bytes_raw()
    msgs = [bytes([i]) for i in range(4)]
    sigs = [key.sign(m) for m in msgs]
    assert ref.verify_batch([pk] * 4, msgs, sigs)
    assert not ref.verify_batch([pk] * 4, msgs, sigs[:3] + [sigs[0]])
