"""The node's validator-set history and the peer plan that follows it (engine/node/valset.py),
one rule at a time: which set signs a height (at and between the records' first heights, up to
the horizon and not beyond), records that must grow, the horizon that only grows, the change a
block's updates make (applied to the set of the next height, effective two heights on), who is
a member near a height, and which peers to admit and drop as sets change."""
from __future__ import annotations

import pytest

from engine import consensus as cs
from engine.crypto import SigningKey
from engine.node.valset import PeerFollower, ValidatorHistory
from engine.valset import ValidatorUpdate, encode_set

KEYS = [SigningKey(bytes([i + 1]) * 32).public_key for i in range(10)]


def _set(*idx: int, power: int = 10) -> cs.ValidatorSet:
    return cs.ValidatorSet([cs.Validator(KEYS[i], power) for i in idx])


A, B, C = _set(0, 1, 2, 3), _set(1, 2, 3, 4), _set(2, 3, 4, 5)


def _history(committed: int = 20) -> ValidatorHistory:
    """A from 1, B from 5, C from 9; committed up to ``committed``."""
    return ValidatorHistory(A, [(5, encode_set(B)), (9, encode_set(C))],
                            committed_height=committed)


def test_each_height_is_signed_by_the_latest_record_at_or_before_it():
    h = _history()
    expected = {1: A, 2: A, 4: A, 5: B, 6: B, 8: B, 9: C, 10: C, 22: C}
    for height, vset in expected.items():
        assert h.at(height) == vset, height
        assert h.set_at(height) == vset
    assert h.genesis is A and h.latest() == C
    assert h.changes() == [(1, A), (5, B), (9, C)]


def test_heights_beyond_the_horizon_are_not_known():
    h = _history(committed=6)
    assert h.horizon == 8 and h.at(8) == B and h.at(9) is None
    with pytest.raises(ValueError, match="height 9 is not known yet \\(known up to 8\\)"):
        h.set_at(9)
    h.committed(7)
    assert h.horizon == 9 and h.at(9) == C
    h.committed(3)  # an older height: the horizon never moves back
    assert h.horizon == 9


@pytest.mark.parametrize("bad", [0, -1, 1.0, "1", None, True])
def test_a_height_must_be_an_int_from_1(bad):
    with pytest.raises(ValueError, match="height must be an int >= 1"):
        _history().at(bad)


def test_records_must_grow():
    h = _history()
    for height in (9, 8, 1):
        with pytest.raises(ValueError, match=f"record at {height} is not after the last one "
                                             f"\\(9\\)"):
            h.record(height, A)
    h.record(10, A)
    assert h.changes()[-1] == (10, A) and h.at(10) is A and h.at(9) == C


def test_a_change_applies_to_the_next_heights_set_and_starts_two_heights_on():
    h = _history()
    # Block 4's updates apply to the set of height 5 (B, recorded already), not of 4 (A).
    change = h.next_change(4, [ValidatorUpdate(KEYS[9], 10)])
    assert change is not None
    start, new = change
    assert start == 6
    assert [v.public_key for v in new.validators] == \
        [v.public_key for v in B.validators] + [KEYS[9]]
    # No updates, or updates that leave the set as it is: no change.
    assert h.next_change(4, []) is None
    assert h.next_change(4, [ValidatorUpdate(KEYS[1], 10)]) is None
    with pytest.raises(ValueError):
        _history(committed=1).next_change(6, [ValidatorUpdate(KEYS[9], 10)])  # 7 unknown


def test_membership_near_a_height_looks_at_its_set_and_the_later_ones():
    h = _history()
    assert h.is_member_near(KEYS[0], 4)  # A signs 4
    assert not h.is_member_near(KEYS[0], 5)  # gone from B on
    assert h.is_member_near(KEYS[5], 1)  # joins with C
    assert h.is_member_near(KEYS[4], 7) and h.is_member_near(KEYS[4], 9)
    assert not h.is_member_near(KEYS[9], 1)


# ---- the peer plan ------------------------------------------------------------------------------
NODE = [SigningKey(bytes([50 + i]) * 32).public_key for i in range(6)]


def test_peers_follow_the_sets_ahead():
    history = ValidatorHistory(A, [(5, encode_set(B)), (9, encode_set(C))], committed_height=3)
    own_node, own_validator = NODE[5], KEYS[3]
    peers = [(NODE[0], KEYS[0]), (NODE[1], KEYS[1]), (NODE[2], KEYS[2]), (NODE[4], None)]
    f = PeerFollower(history, peers, own_node, own_validator)
    admit, drop = f.plan(4)  # sets of 4 and on: A, B, C (all known from 4's view)
    # Configured peers of validators in those sets; validator keys nobody configured run (4, 5)
    # are admitted as node keys; our own keys never; the non-validator peer is neither.
    assert admit == {NODE[0], NODE[1], NODE[2], KEYS[4], KEYS[5]}
    assert drop == set()
    admit, drop = f.plan(9)  # only C ahead: validators 0 and 1 left
    assert admit == {NODE[2], KEYS[4], KEYS[5]}
    assert drop == {NODE[0], NODE[1]}
    history.record(12, _set(0, 2, 3))
    admit, drop = f.plan(12)  # 0 is back, 4 and 5 (admitted before) leave
    assert admit == {NODE[0], NODE[2]}
    assert drop == {NODE[1], KEYS[4], KEYS[5]}
    admit, drop = f.plan(12)  # nothing admitted by key any more: nothing of that to drop
    assert drop == {NODE[1]}


@pytest.mark.parametrize("height", [6, 7])
def test_a_change_at_odd_and_even_heights(height):
    """Records at 5 and 8: block 7's updates apply to the set of 8 (C), block 6's to the set
    of 7 (B); each starts two heights on (heights where `| 1`, `| 2` or `^ 2` differ from the
    sums)."""
    h = ValidatorHistory(A, [(5, encode_set(B)), (8, encode_set(C))], committed_height=20)
    start, new = h.next_change(height, [ValidatorUpdate(KEYS[9], 10)])
    assert start == height + 2
    base = C if height == 7 else B
    assert [v.public_key for v in new.validators] == \
        [v.public_key for v in base.validators] + [KEYS[9]]
