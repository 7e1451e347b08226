"""Native tally: thresholds at the exact boundaries, unequal powers, duplicates, conflicts,
batch statuses, and differential agreement with the pure-Python reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.consensus import _tally
from engine.consensus.reference_tally import PyVoteTally

IMPLS = [_tally.VoteTally, PyVoteTally]


@pytest.mark.parametrize("impl", IMPLS)
def test_exactly_two_thirds_is_not_a_quorum(impl):
    t = impl([1, 1, 1])
    r = t.new_row()
    t.add(r, 0, 1)
    t.add(r, 1, 1)
    assert t.power(r, 1) == 2 and not t.has_quorum(r, 1)  # 2/3 exactly: not more than 2/3
    t.add(r, 2, 1)
    assert t.has_quorum(r, 1) and t.quorum_slot(r) == 1


@pytest.mark.parametrize("impl", IMPLS)
def test_just_below_and_just_above_two_thirds(impl):
    t = impl([200, 1, 99])  # total 300
    r = t.new_row()
    t.add(r, 0, 1)
    assert not t.has_quorum(r, 1)  # 200/300
    t.add(r, 1, 1)
    assert t.has_quorum(r, 1)  # 201/300
    assert t.has_quorum_any(r)


@pytest.mark.parametrize("impl", IMPLS)
def test_unequal_powers_one_validator_holds_quorum(impl):
    t = impl([10, 1, 1, 1])
    r = t.new_row()
    t.add(r, 0, 3)
    assert t.has_quorum(r, 3) and t.quorum_slot(r) == 3
    r2 = t.new_row()
    for v in (1, 2, 3):
        t.add(r2, v, 0)
    assert not t.has_quorum_any(r2) and not t.has_one_third_any(r2)  # 3/13


@pytest.mark.parametrize("impl", IMPLS)
def test_one_third_threshold_for_round_skip(impl):
    t = impl([1, 1, 1, 1])
    r = t.new_row()
    t.add(r, 0, 0)
    assert not t.has_one_third_any(r)  # 1/4
    t.add(r, 1, 5)
    assert t.has_one_third_any(r)  # 2/4 > 1/3, any values
    t3 = impl([1, 1, 1])
    r = t3.new_row()
    t3.add(r, 0, 0)
    assert not t3.has_one_third_any(r)  # exactly 1/3 is not more than 1/3


@pytest.mark.parametrize("impl", IMPLS)
def test_duplicates_and_conflicts(impl):
    t = impl([1, 2, 3])
    r = t.new_row()
    assert t.add(r, 1, 4) == _tally.ADDED
    assert t.add(r, 1, 4) == _tally.DUPLICATE
    assert t.add(r, 1, 0) == _tally.CONFLICT
    assert t.power(r, 4) == 2 and t.power(r, 0) == 0 and t.power_any(r) == 2
    assert t.vote_of(r, 1) == 4
    t.add_extra(r, 1, 0)  # the conflicting vote counted for its value, not for "any"
    assert t.power(r, 0) == 2 and t.power_any(r) == 2
    with pytest.raises(ValueError):
        t.add_extra(r, 1, 4)


@pytest.mark.parametrize("impl", IMPLS)
def test_out_of_range_arguments(impl):
    t = impl([1, 1])
    r = t.new_row()
    for args in ((r + 1, 0, 0), (r, 2, 0), (r, 0, 6), (r, -1, 0)):
        with pytest.raises(ValueError):
            t.add(*args)
    assert list(t.add_batch([r, r, 9], [0, 0, 0], [1, 2, 0])) == [0, 2, 3]


def test_native_rejects_bad_powers():
    for bad in ([], [0, 1], [-1], [1 << 61]):
        with pytest.raises(ValueError):
            _tally.VoteTally(bad)


def test_rows_grow_beyond_the_hint():
    t = _tally.VoteTally([1, 1, 1, 1], 1)
    rows = [t.new_row() for _ in range(100)]
    for r in rows:
        t.add(r, r % 4, 1)
    assert [t.power(r, 1) for r in rows] == [1] * 100
    assert t.rows_count == 100


def test_bitmap_power():
    powers = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256], dtype=np.int64)
    assert _tally.bitmap_power(bytes([0b10000001, 0b1]), powers) == 1 + 128 + 256
    with pytest.raises(ValueError):
        _tally.bitmap_power(bytes([0, 0b10]), powers)  # bit past the last validator
    with pytest.raises(ValueError):
        _tally.bitmap_power(bytes([0]), powers)  # wrong length


ops = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6), st.integers(0, 13)),
               max_size=200)


@settings(max_examples=150, deadline=None)
@given(powers=st.lists(st.integers(1, 1000), min_size=1, max_size=7), ops=ops)
def test_native_matches_reference(powers, ops):
    a, b = _tally.VoteTally(powers), PyVoteTally(powers)
    for _ in range(6):
        a.new_row()
        b.new_row()
    rows, vals, slots = zip(*ops) if ops else ((), (), ())
    assert list(a.add_batch(rows, vals, slots)) == b.add_batch(rows, vals, slots)
    assert list(a.quorum_slots()) == b.quorum_slots()
    for r in range(6):
        assert a.power_any(r) == b.power_any(r)
        assert a.has_quorum_any(r) == b.has_quorum_any(r)
        assert a.has_one_third_any(r) == b.has_one_third_any(r)
        assert a.quorum_slot(r) == b.quorum_slot(r)
        for s in range(2 * len(powers) + 2):
            assert a.power(r, s) == b.power(r, s)
