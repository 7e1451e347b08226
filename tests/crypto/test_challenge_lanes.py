"""The batch challenges k = SHA-512(R || A || M), hashed several messages side by side on the
vector paths (four lanes on avx2, eight on avx512), with lanes of one pass differing in block
count: message lengths on both sides of every padding boundary, in shuffled order, so a lane
that finishes early must keep its digest while the others go on. A wrong digest in any lane
makes an honest signature fail and a changed message pass; verdicts are checked against
`cryptography` (OpenSSL) and against the single check, on every ISA path."""
from __future__ import annotations

import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine import crypto, tx

# R || A is 64 bytes; a padded message grows a block where 64 + len + 17 crosses 128 * k.
BOUNDARY_LENGTHS = [0, 1, 46, 47, 48, 49, 100, 110, 111, 174, 175, 176, 177, 239, 240, 302, 303,
                    304, 305, 430, 431, 432, 1000, 4097]


def _openssl(pk: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
    except InvalidSignature:
        return False
    return True


def _entries(seed: int):
    rng = random.Random(seed)
    lengths = BOUNDARY_LENGTHS * 2
    rng.shuffle(lengths)
    entries = []
    for length in lengths:
        key = Ed25519PrivateKey.generate()
        msg = rng.randbytes(length)
        entries.append((key.public_key().public_bytes_raw(), msg, key.sign(msg)))
    return rng, entries


@pytest.mark.parametrize("seed", [1, 2])
def test_batches_of_mixed_lengths_match_openssl(isa, seed):
    rng, entries = _entries(seed)
    # Every batch size up to two passes of the widest kernel, and the whole list.
    for n in [*range(1, 18), len(entries)]:
        batch = entries[:n]
        bad = rng.randrange(n)
        pk, msg, sig = batch[bad]
        if msg:  # a changed message must change its lane's digest (and only that one's)
            i = rng.randrange(len(msg))
            msg = msg[:i] + bytes([msg[i] ^ 1 << rng.randrange(8)]) + msg[i + 1:]
        else:
            sig = sig[:31] + bytes([sig[31] ^ 1]) + sig[32:]
        batch = [*batch[:bad], (pk, msg, sig), *batch[bad + 1:]]
        pks, msgs, sigs = ([e[k] for e in batch] for k in range(3))
        expected = [_openssl(*e) for e in batch]
        assert expected.count(False) == 1
        for threads in (1, 2):
            assert crypto.verify_batch(pks, msgs, sigs, threads=threads) == expected, (n, threads)
        assert [crypto.verify(*e) for e in batch] == expected


def test_tx_envelopes_of_mixed_lengths(isa):
    """verify_txs hashes a domain prefix before the message: the same lanes with a prefix."""
    rng = random.Random(7)
    keys = [crypto.SigningKey.from_seed(rng.randbytes(32)) for _ in range(13)]
    envs = [tx.encode_tx(keys[i], i, rng.randbytes(BOUNDARY_LENGTHS[i % len(BOUNDARY_LENGTHS)]),
                         "lanes") for i in range(len(keys))]
    assert tx.verify_txs(envs, "lanes", threads=1) == [True] * len(envs)
    tampered = list(envs)
    tampered[5] = envs[5][:-70] + bytes([envs[5][-70] ^ 4]) + envs[5][-69:]
    got = tx.verify_txs(tampered, "lanes", threads=1)
    assert got == [i != 5 for i in range(len(envs))]
    assert tx.verify_txs(envs, "other-chain", threads=1) == [False] * len(envs)
