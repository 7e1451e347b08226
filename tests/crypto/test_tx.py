"""Transaction envelopes v1: layout, decoding errors and native batch verification."""
from __future__ import annotations

import struct

import pytest

from engine import crypto, tx
from engine.hashing import blake3


def _key(i: int = 0) -> crypto.SigningKey:
    return crypto.SigningKey.from_seed(bytes([i]) * 32)


def test_layout_and_round_trip():
    k = _key()
    env = tx.encode_tx(k, 2**64 - 1, b"payload", "chain-a")
    assert env[0] == 1 and env[1:33] == k.public_key
    assert struct.unpack_from("<QI", env, 33) == (2**64 - 1, 7)
    unsigned = env[:-64]
    expected_msg = b"engine/tx/v1" + bytes([7]) + b"chain-a" + unsigned
    assert crypto.verify(k.public_key, expected_msg, env[-64:])
    t = tx.decode_tx(env)
    assert (t.version, t.sender, t.nonce, t.payload) == (1, k.public_key, 2**64 - 1, b"payload")
    assert t.signature == env[-64:] and t.tx_id == blake3(env)
    assert tx.decode_tx(bytearray(env)) == t
    # A caller that already hashed the envelope passes the id instead of hashing again.
    assert tx.decode_tx(env, tx_id=blake3(env)) == t
    with pytest.raises(TypeError, match="tx_id"):
        tx.decode_tx(env, tx_id=b"short")


def test_native_layout_matches_python():
    """csrc/ed25519/tx_envelope.h and engine/tx.py define the one layout: offsets and sizes agree."""
    from engine import _native_ed25519

    native = _native_ed25519._tx_layout()
    fields = struct.Struct("<B32sQI")
    assert tx._HEADER.format == fields.format
    sizes = [struct.calcsize("<" + f) for f in ("B", "32s", "Q", "I")]
    offsets = [sum(sizes[:i]) for i in range(4)]
    assert native["version"] == tx.TX_VERSION
    assert (native["sender_offset"], native["sender_bytes"]) == (offsets[1], sizes[1])
    assert (native["nonce_offset"], native["nonce_bytes"]) == (offsets[2], sizes[2])
    assert (native["payload_len_offset"], native["payload_len_bytes"]) == (offsets[3], sizes[3])
    assert native["header_bytes"] == tx.TX_HEADER_BYTES == tx._HEADER.size
    assert native["signature_bytes"] == crypto.SIGNATURE_BYTES
    assert native["domain"] == tx.TX_DOMAIN
    # The format bounds a chain id by its u8 length prefix; the engine's policy
    # (limits.chain_id_bytes_max, checked in Python before any native call) is tighter.
    from engine import limits

    assert native["chain_id_bytes_max"] == 255 >= limits.chain_id_bytes_max


def test_decode_errors():
    env = tx.encode_tx(_key(), 1, b"abc", "c")
    for bad, why in ((env[:100], "shorter"), (b"\x02" + env[1:], "version"),
                     (env + b"\0", "payload length"), (env[:-1], "payload length")):
        with pytest.raises(tx.TxDecodeError, match=why):
            tx.decode_tx(bad)
    with pytest.raises(TypeError):
        tx.decode_tx("text")


def test_encode_errors():
    with pytest.raises(TypeError, match="signing_key"):
        tx.encode_tx(b"k", 1, b"", "c")
    with pytest.raises(ValueError, match="nonce"):
        tx.encode_tx(_key(), -1, b"", "c")
    with pytest.raises(TypeError, match="payload"):
        tx.encode_tx(_key(), 1, "p", "c")
    with pytest.raises(ValueError, match="chain_id"):
        tx.encode_tx(_key(), 1, b"", "x" * 256)


def test_verify_txs_verdicts(isa):
    envs = [tx.encode_tx(_key(i % 5), i, bytes(i % 50), "main") for i in range(120)]
    bad = list(envs)
    bad[0] = envs[0][:-1] + bytes([envs[0][-1] ^ 1])          # signature bit
    bad[10] = envs[10][:50] + bytes([envs[10][50] ^ 1]) + envs[10][51:]  # payload/nonce bit
    bad[20] = envs[20][:60]                                      # truncated
    bad[30] = b"\x02" + envs[30][1:]                             # version
    bad[40] = envs[40] + b"\0"                                   # length mismatch
    bad[50] = b""                                                # empty
    expected = [i not in (0, 10, 20, 30, 40, 50) for i in range(120)]
    assert tx.verify_txs(bad, "main", threads=1) == expected
    assert tx.verify_txs(bad, b"main", threads=2) == expected
    assert not any(tx.verify_txs(envs, "other"))
    assert tx.verify_txs([], "main") == []


def test_verify_txs_equals_crypto_verify():
    envs = [tx.encode_tx(_key(i), i, b"p" * i, "c") for i in range(1, 9)]
    decoded = [tx.decode_tx(e) for e in envs]
    singles = [crypto.verify(t.sender, tx.sign_bytes(e[:-64], "c"), t.signature)
               for t, e in zip(decoded, envs)]
    assert tx.verify_txs(envs, "c") == singles == [True] * 8


def test_verify_txs_argument_errors():
    env = tx.encode_tx(_key(), 1, b"", "c")
    with pytest.raises(TypeError, match=r"envelopes\[1\]"):
        tx.verify_txs([env, "x"], "c")
    with pytest.raises(TypeError, match="chain_id"):
        tx.verify_txs([env], 5)


def test_decode_verified_equals_decode_tx_and_falls_back_on_bad_layouts():
    """The admission decoder (no re-check of what verify_txs checked) builds the same Tx as
    decode_tx for both envelope versions, and hands anything malformed to decode_tx, whose
    TxDecodeError names the problem (a fake verifier that passes garbage cannot make it build
    a wrong Tx)."""
    from engine.crypto import Sm2SigningKey

    envs = [tx.encode_tx(_key(i), i * 1000, b"k%d=%s" % (i, b"v" * i), "c") for i in range(5)]
    envs.append(tx.encode_tx(Sm2SigningKey.generate(), 3, b"a=b", "c"))
    assert envs[-1][0] == 2
    for env in envs:
        tx_id = bytes(range(32))
        fast = tx.decode_verified(env, tx_id)
        assert fast == tx.decode_tx(env, tx_id=tx_id) and type(fast) is tx.Tx
        assert (fast.sender, fast.nonce) == tx.sender_and_nonce(env)
    env = envs[1]
    for bad, why in ((b"", "shorter"), (b"\x09" + env[1:], "version 9"),
                     (env[:-1], "payload length"), (env + b"x", "payload length"),
                     (env[:50], "shorter")):
        with pytest.raises(tx.TxDecodeError, match=why):
            tx.decode_verified(bad, bytes(32))
    assert tx.decode_verified(bytearray(env), bytes(32)) == tx.decode_tx(env, tx_id=bytes(32))
