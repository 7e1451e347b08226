"""engine._txcodec.decode_verified_many (the admission path's batch decoder) against
engine.tx.decode_tx, the per-envelope decoder it replaces there."""
from __future__ import annotations

import gc
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import crypto, tx
from engine._txcodec import decode_verified_many
from engine.hashing import blake3


def _ed_key(i: int) -> crypto.SigningKey:
    return crypto.SigningKey.from_seed(bytes([i]) * 32)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**64 - 1), st.binary(max_size=300)),
                min_size=0, max_size=12))
def test_same_tuples_as_decode_tx(specs):
    envs = [tx.encode_tx(_ed_key(k), nonce, payload, "c") for k, nonce, payload in specs]
    ids = [blake3(e) for e in envs]
    got = decode_verified_many(tx.Tx, envs, ids)
    want = [tx.decode_tx(e, tx_id=i) for e, i in zip(envs, ids)]
    assert got == want
    assert all(type(t) is tx.Tx for t in got)
    for t in got:  # fields are fresh objects of the right types (not views of the envelope)
        assert type(t.sender) is bytes and type(t.payload) is bytes and type(t.nonce) is int


def test_sm2_envelopes_version_2():
    key = crypto.Sm2SigningKey.generate()
    env = tx.encode_tx(key, 5, b"k=v", "c")
    (got,) = decode_verified_many(tx.Tx, [env], [b"\x01" * 32])
    assert got == tx.decode_tx(env, tx_id=b"\x01" * 32)
    assert got.version == 2 and len(got.sender) == 64


def test_off_layout_gives_none_and_decode_tx_says_why():
    good = tx.encode_tx(_ed_key(1), 1, b"abc", "c")
    cases = [
        b"",                                  # empty
        b"\x03" + good[1:],                   # unknown version
        good[:-1],                            # payload length no longer matches
        good + b"\x00",                       # trailing byte
        good[:40],                            # shorter than the minimum
        bytearray(good),                      # not bytes: the per-envelope path handles it
    ]
    ids = [b"\x02" * 32] * len(cases)
    assert decode_verified_many(tx.Tx, cases, ids) == [None] * len(cases)
    for env in cases[:-1]:
        with pytest.raises(tx.TxDecodeError):
            tx.decode_tx(env, tx_id=b"\x02" * 32)
    # A bad id makes the entry None too (decode_tx refuses it with a TypeError).
    assert decode_verified_many(tx.Tx, [good, good], [b"short", "x" * 32]) == [None, None]


def test_argument_errors_name_the_argument():
    good = tx.encode_tx(_ed_key(1), 1, b"abc", "c")
    with pytest.raises(ValueError, match="ids"):
        decode_verified_many(tx.Tx, [good], [])
    with pytest.raises(TypeError, match="tx_type"):
        decode_verified_many(tuple, [good], [blake3(good)])
    with pytest.raises(TypeError):
        decode_verified_many(tx.Tx, (good,), [blake3(good)])  # a list is required


def test_no_reference_leaks():
    envs = [tx.encode_tx(_ed_key(2), n, b"k=v" * n, "c") for n in range(50)]
    ids = [blake3(e) for e in envs]
    probe = ids[7]
    before = sys.getrefcount(probe)
    for _ in range(200):
        decode_verified_many(tx.Tx, envs, ids)
    gc.collect()
    assert sys.getrefcount(probe) == before  # each tuple's reference to its id was released
    keep = decode_verified_many(tx.Tx, envs, ids)
    assert sys.getrefcount(probe) == before + 1
    del keep
    assert sys.getrefcount(probe) == before


def test_split_chunks_against_a_python_reading():
    from engine._txcodec import split_chunks

    fields = [b"a", b"bcd" * 100, bytes(range(256))]
    data = b"HEAD" + b"".join(len(f).to_bytes(4, "little") + f for f in fields) + b"TAIL"
    assert split_chunks(data, 4, 3) == (fields, len(data) - 4)
    assert split_chunks(memoryview(data), 4, 2) == (fields[:2], 4 + 5 + 4 + 300)
    assert split_chunks(b"", 0, 0) == ([], 0)
    for args, why in (((data, 4, 5), "past the end"), ((data[:20], 4, 2), "run past"),
                      ((b"\x00" * 4, 0, 1), "empty"), ((data, len(data) + 1, 0), "past the end"),
                      ((data, -1, 1), "non-negative")):
        with pytest.raises(ValueError, match=why):
            split_chunks(*args)


def test_senders_and_nonces_match_the_python_reading():
    from engine._txcodec import senders_and_nonces

    envs = [tx.encode_tx(_ed_key(3), 2**64 - 1, b"x", "c"),
            tx.encode_tx(crypto.Sm2SigningKey.generate(), 7, b"", "c")]
    assert senders_and_nonces(envs) == [tx.sender_and_nonce(e) for e in envs]
    assert senders_and_nonces([]) == []
    with pytest.raises(ValueError, match=r"envelopes\[1\]"):
        senders_and_nonces([envs[0], b"\x03abc"])
    with pytest.raises(ValueError, match="shorter"):
        senders_and_nonces([envs[0][:20]])
    with pytest.raises(TypeError, match=r"envelopes\[0\]"):
        senders_and_nonces([bytearray(envs[0])])


def _split_reference(body: bytes, count_max: int) -> list[bytes]:
    """The POST /txs body read in Python (what engine.rpc.body did before the native pass)."""
    out, pos, n = [], 0, len(body)
    while pos < n:
        if pos + 4 > n:
            raise ValueError(f"truncated length prefix at byte {pos}")
        length = int.from_bytes(body[pos:pos + 4], "little")
        pos += 4
        if length == 0 or pos + length > n:
            raise ValueError(f"record at byte {pos - 4} announces {length} bytes, "
                             f"{n - pos} remain")
        out.append(body[pos:pos + length])
        pos += length
        if len(out) > count_max:
            raise ValueError(f"more than {count_max} envelopes in one request")
    if not out:
        raise ValueError("empty batch")
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=8), st.integers(0, 3),
       st.binary(max_size=6), st.integers(1, 8))
def test_post_body_split_matches_the_reference(records, cut, junk, count_max):
    from engine.rpc.body import join_envelopes, split_envelopes

    body = join_envelopes(records)
    for data in (body, body[:len(body) - cut], body + junk, junk):
        try:
            want = _split_reference(data, count_max)
        except ValueError as e:
            with pytest.raises(ValueError) as got:
                split_envelopes(data, count_max)
            assert str(got.value) == str(e)
        else:
            assert split_envelopes(data, count_max) == want


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=20), st.lists(st.binary(max_size=300), max_size=10))
def test_join_chunks_is_the_inverse_of_split_chunks(head, items):
    from engine._txcodec import join_chunks, split_chunks

    raw = join_chunks(head, items)
    assert raw == head + b"".join(len(t).to_bytes(4, "little") + t for t in items)
    if all(items):
        assert split_chunks(raw, len(head), len(items)) == (items, len(raw))
    with pytest.raises(TypeError, match=r"items\[0\]"):
        join_chunks(head, [bytearray(b"x")])


# ---- kv_writes: the kvstore's block parse, against engine.app.parse_kv -----------------------

def _kv_reference(txs):
    from engine.app import parse_kv

    writes, malformed = {}, []
    for i, t in enumerate(txs):
        kv = parse_kv(t.payload)
        if kv is None:
            malformed.append(i)
        else:
            writes[kv[0]] = kv[1]
    return writes, malformed


def _kv_args():
    from engine.app import KEY_BYTES_MAX, VAL_PREFIX, VALUE_BYTES_MAX
    from engine.nonces import RESERVED_PREFIX

    return KEY_BYTES_MAX, VALUE_BYTES_MAX, RESERVED_PREFIX, VAL_PREFIX


def _kv_tx(payload: bytes) -> tx.Tx:
    return tx.Tx(1, b"s" * 32, 0, payload, b"x" * 64, b"i" * 32)


_kv_payload = st.one_of(
    st.builds(lambda k, v: k + b"=" + v, st.sampled_from([b"a", b"b", b"k1", b"", b"x" * 256,
                                                         b"x" * 257, b"\xffengine/n",
                                                         b"\xffengine", b"a=b"]),
              st.sampled_from([b"", b"1", b"v=w", b"y" * 4096, b"y" * 4097])),
    st.binary(max_size=20))


@settings(max_examples=300, deadline=None)
@given(st.lists(_kv_payload, max_size=12))
def test_kv_writes_matches_parse_kv(payloads):
    from engine._txcodec import kv_writes

    txs = [_kv_tx(p) for p in payloads]
    got = kv_writes(txs, *_kv_args())
    if any(p.startswith(b"val:") for p in payloads):
        assert got is None
        return
    want = _kv_reference(txs)
    assert got == want
    assert list(got[0].items()) == list(want[0].items())  # same first-write order


def test_kv_writes_edges_of_the_rule():
    from engine._txcodec import kv_writes

    payloads = [b"a=1", b"=x", b"noeq", b"x" * 256 + b"=v", b"x" * 257 + b"=v",
                b"k=" + b"y" * 4096, b"k2=" + b"y" * 4097, b"\xffengine/n=1", b"\xffengin=1",
                b"a=2", b"b==", b""]
    writes, malformed = kv_writes([_kv_tx(p) for p in payloads], *_kv_args())
    assert malformed == [1, 2, 4, 6, 7, 11]
    assert list(writes.items()) == [(b"a", b"2"), (b"x" * 256, b"v"), (b"k", b"y" * 4096),
                                    (b"\xffengin", b"1"), (b"b", b"=")]


def test_kv_writes_hands_back_what_it_does_not_handle():
    from engine._txcodec import kv_writes

    args = _kv_args()
    assert kv_writes([_kv_tx(b"a=1"), _kv_tx(b"val:" + b"0" * 64 + b"=1")], *args) is None
    assert kv_writes([_kv_tx(bytearray(b"a=1"))], *args) is None  # payload not bytes
    assert kv_writes([(1, 2, 3)], *args) is None  # not a transaction tuple
    assert kv_writes([], *args) == ({}, [])
    with pytest.raises(TypeError):
        kv_writes((_kv_tx(b"a=1"),), *args)  # a list is required


def test_kv_writes_no_reference_leaks():
    from engine._txcodec import kv_writes

    payload = b"key=value"
    txs = [_kv_tx(payload)] * 20
    before = sys.getrefcount(payload)
    for _ in range(200):
        kv_writes(txs, *_kv_args())
    gc.collect()
    assert sys.getrefcount(payload) == before


@settings(max_examples=300, deadline=None)
@given(st.lists(_kv_payload, max_size=12))
def test_kv_verdicts_match_kv_ok(payloads):
    from engine._txcodec import kv_verdicts
    from engine.app import kv_ok

    ok, bad = object(), object()
    got = kv_verdicts([_kv_tx(p) for p in payloads], ok, bad, *_kv_args())
    assert got == [None if p.startswith(b"val:") else ok if kv_ok(p) else bad for p in payloads]


def test_kv_verdicts_leave_what_they_do_not_handle_to_the_caller():
    from engine._txcodec import kv_verdicts

    ok, bad = object(), object()
    txs = [_kv_tx(b"a=1"), _kv_tx(bytearray(b"a=1")), (1, 2), _kv_tx(b"val:x=1"), _kv_tx(b"=")]
    assert kv_verdicts(txs, ok, bad, *_kv_args()) == [ok, None, None, None, bad]
