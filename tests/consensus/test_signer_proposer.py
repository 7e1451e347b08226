"""The double-sign guard and the weighted round-robin proposer."""
import math
from collections import Counter

import pytest

from engine import limits
from engine.consensus import DoubleSignRefused, ProposerSchedule, SignerGuard
from engine.consensus.proposer import build_schedule

from .harness import keys


def test_guard_refuses_conflicts_and_regressions():
    g = SignerGuard(keys(1)[0])
    s1 = g.sign(5, 0, 2, b"prevote A")
    assert g.sign(5, 0, 2, b"prevote A") == s1  # same bytes: the same signature again
    with pytest.raises(DoubleSignRefused, match="conflicting"):
        g.sign(5, 0, 2, b"prevote B")
    s2 = g.sign(5, 0, 3, b"precommit A")
    assert g.sign(5, 0, 2, b"prevote A") == s1  # replay of an earlier step of this height
    with pytest.raises(DoubleSignRefused, match="below"):
        g.sign(5, 0, 1, b"a proposal never signed")
    with pytest.raises(DoubleSignRefused):
        g.sign(4, 9, 3, b"older height")
    g.sign(6, 0, 2, b"next height")
    assert g.state.hrs() == (6, 0, 2) and len(g.state.history) == 1
    with pytest.raises(DoubleSignRefused):
        g.sign(5, 0, 3, b"precommit A")  # history of height 5 is gone: refused, not re-signed
    assert s2 != s1


def test_guard_survives_restart_from_persisted_state():
    k = keys(1)[0]
    g = SignerGuard(k)
    sig = g.sign(3, 1, 2, b"x")
    restored = SignerGuard(k, g.state)
    assert restored.sign(3, 1, 2, b"x") == sig
    with pytest.raises(DoubleSignRefused):
        restored.sign(3, 1, 2, b"y")


@pytest.mark.parametrize("powers", [[1, 1, 1, 1], [5, 3, 2], [10, 1], [7, 7, 14, 21]])
def test_each_validator_proposes_in_proportion_to_power(powers):
    sched = build_schedule(powers)
    counts = Counter(sched.tolist())
    g = math.gcd(*powers)
    assert len(sched) == sum(powers) // g
    assert [counts[i] for i in range(len(powers))] == [p // g for p in powers]


def test_proposer_is_deterministic_and_spreads():
    a, b = ProposerSchedule([5, 3, 2]), ProposerSchedule([5, 3, 2])
    seq = [a.proposer(h, r) for h in range(1, 20) for r in range(3)]
    assert seq == [b.proposer(h, r) for h in range(1, 20) for r in range(3)]
    window = [a.proposer(1, r) for r in range(10)]
    assert window.count(0) == 5  # smooth: the heavy validator never takes a long run
    assert max(len(run) for run in "".join(map(str, window)).split("1")) <= 3


def test_huge_weights_are_scaled_to_the_schedule_bound(monkeypatch):
    monkeypatch.setattr(limits, "proposer_schedule_len_max", 1000)
    sched = build_schedule([3001, 1])
    assert len(sched) <= limits.proposer_schedule_len_max + 1
    assert set(sched.tolist()) == {0, 1}
