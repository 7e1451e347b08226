"""SM3: the standard's examples, OpenSSL (hashlib), gmssl and the pure-Python reference, on every
ISA path; lane positions, per-lane lengths, packed input, threads and argument errors."""
from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native_sm, hashing
from engine._reference import sm3 as ref
from tests.conftest import ISA_PATHS
from tests.sm.conftest import sm3_vectors

try:
    hashlib.new("sm3")
    HAVE_OPENSSL_SM3 = True
except ValueError:
    HAVE_OPENSSL_SM3 = False

try:
    from gmssl import func as gm_func
    from gmssl import sm3 as gm_sm3
except ImportError:
    gm_sm3 = None

needs_openssl = pytest.mark.skipif(not HAVE_OPENSSL_SM3, reason="this OpenSSL has no SM3")

# Around the block size and the padding boundary (55/56 bytes: the length no longer fits).
BOUNDARIES = [0, 1, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 127, 128, 129, 250, 1000, 4097]


def expected(data: bytes) -> bytes:
    if HAVE_OPENSSL_SM3:
        return hashlib.new("sm3", data).digest()
    return ref.sm3(data)


@pytest.mark.parametrize("case", sm3_vectors(), ids=lambda c: c["message_ascii"])
def test_standard_examples(sm_isa, case):
    msg = case["message_ascii"].encode() * case["repeat"]
    assert hashing.sm3(msg).hex() == case["digest"]
    assert ref.sm3(msg).hex() == case["digest"]
    # The same message in every lane of a batch.
    assert [h.hex() for h in hashing.sm3_many([msg] * 40)] == [case["digest"]] * 40


@needs_openssl
@pytest.mark.parametrize("length", BOUNDARIES)
def test_boundary_lengths_against_openssl(sm_isa, length):
    data = os.urandom(length)
    assert hashing.sm3(data) == expected(data)
    for batch in (1, 2, 3, 7, 8, 9, 15, 16, 17, 33, 40):
        msgs = [os.urandom(length) for _ in range(batch)]
        assert hashing.sm3_many(msgs) == [expected(m) for m in msgs]


@needs_openssl
def test_one_message_every_length_and_multi_mib(sm_isa):
    """The one-message compression (vectorised expansion on avx2/avx512) at every length 0..1100
    (each tail and padding case, runs of 1..17 whole blocks) and on multi-MiB buffers, also
    read from an unaligned offset."""
    rng = random.Random(32905)
    data = rng.randbytes(1101)
    for n in range(1101):
        assert hashing.sm3(data[:n]) == expected(data[:n]), n
    for size in (1 << 20, (3 << 20) + 17, (5 << 20) - 1):
        big = rng.randbytes(size + 3)
        assert hashing.sm3(big[:size]) == expected(big[:size]), size
        view = memoryview(big)[3:]
        assert hashing.sm3(view) == expected(bytes(view)), size


def test_reference_agrees_with_openssl():
    if not HAVE_OPENSSL_SM3:
        pytest.skip("this OpenSSL has no SM3")
    rng = random.Random(5)
    for length in BOUNDARIES[:-1]:
        data = rng.randbytes(length)
        assert ref.sm3(data) == hashlib.new("sm3", data).digest()


@pytest.mark.skipif(gm_sm3 is None, reason="the optional gmssl package is not installed")
def test_against_gmssl(sm_isa):
    rng = random.Random(6)
    msgs = [rng.randbytes(rng.randrange(300)) for _ in range(50)]
    want = [bytes.fromhex(gm_sm3.sm3_hash(gm_func.bytes_to_list(m))) for m in msgs]
    assert hashing.sm3_many(msgs) == want
    assert [hashing.sm3(m) for m in msgs] == want


def test_mixed_batches_every_size(sm_isa):
    rng = random.Random(1)
    for batch in range(1, 41):
        lengths = [rng.choice(BOUNDARIES + [rng.randrange(0, 3000)]) for _ in range(batch)]
        msgs = [rng.randbytes(n) for n in lengths]
        assert hashing.sm3_many(msgs) == [expected(m) for m in msgs], lengths


def test_one_long_message_among_short_ones(sm_isa):
    # Lanes are refilled as messages end; the long one finishes on its own at the end.
    msgs = [os.urandom(100) for _ in range(60)]
    msgs.insert(7, os.urandom(300_001))
    assert hashing.sm3_many(msgs) == [expected(m) for m in msgs]


def test_packed_matches_list_and_threads(sm_isa):
    rng = random.Random(2)
    msgs = [rng.randbytes(rng.randrange(0, 700)) for _ in range(5000)]
    want = [expected(m) for m in msgs]
    offsets = np.cumsum([0] + [len(m) for m in msgs], dtype=np.uint64)
    data = b"".join(msgs)
    for threads in (1, 2, None):
        assert hashing.sm3_many(msgs, threads=threads) == want
        assert hashing.sm3_many_packed(data, offsets, threads=threads) == b"".join(want)


def test_many_accepts_buffers(sm_isa):
    msgs = [b"abc", bytearray(b"abc"), memoryview(b"xabc")[1:]]
    assert hashing.sm3_many(msgs) == [hashing.sm3(b"abc")] * 3
    assert hashing.sm3(bytearray(b"abc")) == hashing.sm3(b"abc")
    assert hashing.sm3_many([]) == []
    assert hashing.sm3_many_packed(b"", np.zeros(1, dtype=np.uint64)) == b""


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_hypothesis_against_reference(msgs):
    want = [ref.sm3(m) for m in msgs]
    for isa in ISA_PATHS:
        _native_sm._force_isa(isa)
        try:
            assert hashing.sm3_many(msgs) == want
        finally:
            _native_sm._force_isa(None)


def test_argument_errors():
    with pytest.raises(TypeError, match="data"):
        hashing.sm3("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"messages\[1\]"):
        hashing.sm3_many([b"a", "b"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="messages"):
        hashing.sm3_many(b"abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        hashing.sm3_many([b"a"], threads=0)
    with pytest.raises(TypeError, match="threads"):
        hashing.sm3_many([b"a"], threads=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="offsets"):
        hashing.sm3_many_packed(b"abc", np.array([0, 4], dtype=np.uint64))
    with pytest.raises(ValueError, match="offsets"):
        hashing.sm3_many_packed(b"abc", np.array([2, 1], dtype=np.uint64))
    with pytest.raises(ValueError, match="offsets"):
        hashing.sm3_many_packed(b"abc", b"123")
    with pytest.raises(ValueError):
        _native_sm._force_isa("sse9")


def test_kernel_info_names_the_path(sm_isa):
    assert _native_sm.kernel_info()["sm3"] == sm_isa
