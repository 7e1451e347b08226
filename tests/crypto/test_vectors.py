"""Every Ed25519 vector file against expected_zip215.json, single and batched, on every path."""
from __future__ import annotations

import random

import pytest

from engine import crypto
from tests.crypto import vectors
from tests.crypto.conftest import honest

FILES = vectors.FILES


def _shaped(cases):
    return [c for c in cases if len(c.public_key) == 32 and len(c.signature) == 64]


@pytest.mark.parametrize("name", FILES)
def test_single_matches_expected(isa, name):
    cases = vectors.load(name)
    wrong = []
    for c in cases:
        if len(c.public_key) != 32 or len(c.signature) != 64:
            assert not c.expected  # a wrong length is never a valid signature...
            with pytest.raises(ValueError):  # ...and the API says so loudly
                crypto.verify(c.public_key, c.message, c.signature)
            continue
        if crypto.verify(c.public_key, c.message, c.signature) != c.expected:
            wrong.append(c.case_id)
    assert wrong == []


@pytest.mark.parametrize("name", FILES)
def test_whole_file_as_one_batch(isa, name):
    cases = _shaped(vectors.load(name))
    got = crypto.verify_batch([c.public_key for c in cases], [c.message for c in cases],
                              [c.signature for c in cases], threads=1)
    assert [c.case_id for c, g in zip(cases, got) if g != c.expected] == []


@pytest.mark.parametrize("name", FILES)
def test_each_case_alone_and_duplicated(isa, name):
    cases = _shaped(vectors.load(name))
    if name.endswith("sign.input"):
        cases = cases[::16]  # honest signatures only; the whole file runs as one batch above
    for c in cases:
        assert crypto.verify_batch([c.public_key], [c.message], [c.signature]) == [c.expected]
        got = crypto.verify_batch([c.public_key] * 3, [c.message] * 3, [c.signature] * 3)
        assert got == [c.expected] * 3, c.case_id


@pytest.mark.parametrize("name", FILES[1:])
def test_mixed_at_every_position(isa, name):
    """Each vector case inside a batch of honest signatures, at every position of a 5-batch."""
    pks, msgs, sigs = honest(4, seed=7)
    rng = random.Random(name)
    cases = _shaped(vectors.load(name))
    if len(cases) > 200:
        cases = [c for c in cases if not c.expected] + rng.sample([c for c in cases if c.expected], 20)
    for c in cases:
        for pos in range(5):
            bp, bm, bs = pks[:], msgs[:], sigs[:]
            bp.insert(pos, c.public_key)
            bm.insert(pos, c.message)
            bs.insert(pos, c.signature)
            expected = [True] * 5
            expected[pos] = c.expected
            assert crypto.verify_batch(bp, bm, bs, threads=1) == expected, (c.case_id, pos)
