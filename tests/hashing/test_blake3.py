"""BLAKE3: official vectors and differential tests against the `blake3` package, on every path."""
from __future__ import annotations

import os
import random

import blake3 as blake3_pkg
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import hashing
from tests.vectors import blake3_input, blake3_vectors

VECTORS = blake3_vectors()
KEY = VECTORS["key"].encode()
BOUNDARIES = [0, 1, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 2047, 2048, 2049, 3072, 4097,
              5000]


def expected(data: bytes, key: bytes | None = None) -> bytes:
    return blake3_pkg.blake3(data, key=key).digest() if key else blake3_pkg.blake3(data).digest()


def packed_of(msgs):
    return b"".join(msgs), np.cumsum([0] + [len(m) for m in msgs], dtype=np.uint64)


def split32(out: bytes) -> list[bytes]:
    return [out[i:i + 32] for i in range(0, len(out), 32)]


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: str(c["input_len"]))
def test_official_vectors(hash_isa, case):
    data = blake3_input(case["input_len"])
    assert hashing.blake3(data).hex() == case["hash"][:64]
    assert hashing.blake3(data, key=KEY).hex() == case["keyed_hash"][:64]


def test_official_vectors_as_one_batch(hash_isa):
    cases = VECTORS["cases"]
    inputs = [blake3_input(c["input_len"]) for c in cases]
    assert [h.hex() for h in hashing.blake3_many(inputs)] == [c["hash"][:64] for c in cases]
    keyed = hashing.blake3_many(inputs, key=KEY)
    assert [h.hex() for h in keyed] == [c["keyed_hash"][:64] for c in cases]


@pytest.mark.parametrize("length", BOUNDARIES)
def test_boundary_lengths(hash_isa, length):
    data = os.urandom(length)
    assert hashing.blake3(data) == expected(data)
    # Every lane position and tail: the message alone and inside batches of 1..40.
    for batch in (1, 7, 8, 9, 15, 16, 17, 33, 40):
        msgs = [os.urandom(length) for _ in range(batch)]
        assert hashing.blake3_many(msgs) == [expected(m) for m in msgs]


def test_mixed_batches_every_size(hash_isa):
    rng = random.Random(1)
    for batch in range(1, 41):
        lengths = [rng.choice(BOUNDARIES + [rng.randrange(0, 5001)]) for _ in range(batch)]
        msgs = [rng.randbytes(n) for n in lengths]
        want = [expected(m) for m in msgs]
        assert hashing.blake3_many(msgs) == want, lengths
        assert split32(hashing.blake3_many_packed(*packed_of(msgs))) == want, lengths
        key = rng.randbytes(32)
        want = [expected(m, key) for m in msgs]
        assert hashing.blake3_many(msgs, key=key) == want, lengths
        assert split32(hashing.blake3_many_packed(*packed_of(msgs), key=key)) == want, lengths


def test_large_batch_threads(hash_isa):
    rng = random.Random(2)
    msgs = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(5000)]
    want = [expected(m) for m in msgs]
    for threads in (1, 2, 3, None):
        assert hashing.blake3_many(msgs, threads=threads) == want


def test_packed_large_batch_threads(hash_isa):
    """Enough messages for several pool tasks: tasks of one length (one kernel call each), mixed
    tasks (sorted by block count) and long messages (the tree code, given pointers built from
    the offsets), on one and several threads."""
    rng = random.Random(5)
    msgs = [rng.randbytes(250) for _ in range(3000)]
    msgs += [rng.randbytes(rng.randrange(0, 3000)) for _ in range(3000)]
    want = [expected(m) for m in msgs]
    for threads in (1, 2, 3, None):
        assert split32(hashing.blake3_many_packed(*packed_of(msgs), threads=threads)) == want


def test_long_messages(hash_isa):
    for length in (1 << 16, (1 << 20) + 1, 3 * 1024 * 1024 + 517):
        data = os.urandom(length)
        assert hashing.blake3(data) == expected(data)
        assert hashing.blake3_many([data, b"x", data[:5000]], threads=2) == [
            expected(data), expected(b"x"), expected(data[:5000])]


def test_bytes_like_inputs(hash_isa):
    data = os.urandom(300)
    arr = np.frombuffer(data, dtype=np.uint8)
    out = hashing.blake3_many([data, bytearray(data), memoryview(data), memoryview(data)[10:20]])
    assert out == [expected(data)] * 3 + [expected(data[10:20])]
    assert hashing.blake3(arr) == expected(data)


def test_packed_form(hash_isa):
    rng = random.Random(3)
    msgs = [rng.randbytes(rng.randrange(0, 2100)) for _ in range(1000)]
    offsets = np.cumsum([0] + [len(m) for m in msgs], dtype=np.uint64)
    out = hashing.blake3_many_packed(b"".join(msgs), offsets)
    assert [out[32 * i:32 * i + 32] for i in range(len(msgs))] == [expected(m) for m in msgs]
    assert hashing.blake3_many_packed(b"", np.zeros(1, dtype=np.uint64)) == b""


def test_packed_equal_lengths(hash_isa):
    """Batches of one length take the kernels' equal-length paths (one set of last-block masks
    per lane group): every length up to just past a chunk, in the packed and the list form,
    with a group and a lone lane left over (9 messages) and keyed."""
    rng = random.Random(4)
    key = rng.randbytes(32)
    for length in range(1100):
        msgs = [rng.randbytes(length) for _ in range(9)]
        want = [expected(m) for m in msgs]
        assert split32(hashing.blake3_many_packed(*packed_of(msgs))) == want, length
        assert hashing.blake3_many(msgs) == want, length
        if length % 7 == 0:
            assert split32(hashing.blake3_many_packed(*packed_of(msgs), key=key)) == [
                expected(m, key) for m in msgs], length


def guarded_pages(readable: int = 3):
    """`readable` pages between two that fault on any access: a kernel that reads a byte before
    or past the messages it was given crashes the test run."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    region = mmap.mmap(-1, (readable + 2) * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for start in (base, base + (readable + 1) * page):
        assert libc.mprotect(start, page, 0) == 0, ctypes.get_errno()  # PROT_NONE
    return memoryview(region)[page:(readable + 1) * page]  # the view keeps the mapping alive


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 6, 7, 63, 64, 65, 66, 67, 250, 1023, 1024])
def test_nothing_read_outside_the_messages(hash_isa, length):
    view = guarded_pages()
    count = 9
    rng = random.Random(length)
    msgs = [rng.randbytes(length) for _ in range(count)]
    want = [expected(m) for m in msgs]
    data = b"".join(msgs)
    offsets = np.arange(count + 1, dtype=np.uint64) * length
    for start in (0, len(view) - len(data)):  # against the page before, then the page after
        chunk = view[start:start + len(data)]
        chunk[:] = data
        assert split32(hashing.blake3_many_packed(chunk, offsets)) == want
        items = [chunk[i * length:(i + 1) * length] for i in range(count)]
        assert hashing.blake3_many(items) == want
        for item in items:
            item.release()
        chunk.release()
    view.release()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=2100), max_size=40), st.one_of(st.none(), st.binary(min_size=32, max_size=32)))
def test_hypothesis_matches_package(msgs, key):
    want = [expected(m, key) for m in msgs]
    assert hashing.blake3_many(msgs, key=key) == want
    assert split32(hashing.blake3_many_packed(*packed_of(msgs), key=key)) == want


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"messages\[1\]"):
        hashing.blake3_many([b"a", 3])
    with pytest.raises(TypeError, match=r"messages\[0\]"):
        hashing.blake3_many(["text"])
    with pytest.raises(TypeError, match="messages"):
        hashing.blake3_many(b"abc")
    with pytest.raises(TypeError, match="data"):
        hashing.blake3("text")
    with pytest.raises(ValueError, match="key"):
        hashing.blake3(b"x", key=b"short")
    with pytest.raises(ValueError, match="threads"):
        hashing.blake3_many([b"x"], threads=0)
    with pytest.raises(TypeError, match="threads"):
        hashing.blake3_many([b"x"], threads=1.5)
    with pytest.raises(ValueError, match="offsets"):
        hashing.blake3_many_packed(b"abc", np.array([0, 5], dtype=np.uint64))
    with pytest.raises(ValueError, match="offsets"):
        hashing.blake3_many_packed(b"abc", np.array([2, 1], dtype=np.uint64))
    assert hashing.blake3_many([]) == []
