"""The phases of a height (engine/node/phases.py): durations between the driver's marks, the
folding of moments a node does not have, and the driver marking a real height in order and
nothing while it replays."""
from __future__ import annotations

import random

import pytest

from engine.node.phases import MARKS, PHASES, HeightPhases
from tests.node.test_driver import Parts


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _recorder():
    clock, seen = Clock(), []
    phases = HeightPhases(lambda phase, s: seen.append((phase, round(s, 9))), clock)
    return phases, clock, seen


def _pass(phases, clock, height, times: dict[str, float]) -> None:
    """Mark ``height``'s moments at the given times, in the order of the times."""
    for name, t in sorted(times.items(), key=lambda kv: kv[1]):
        clock.now = t
        phases.mark(height, name)


def test_each_phase_is_the_time_between_two_moments():
    phases, clock, seen = _recorder()
    _pass(phases, clock, 7, {"start": 1.0, "proposal": 1.06, "prevote": 1.065,
                             "precommit": 1.075, "decide": 1.08, "saved": 1.09})
    assert seen == [("propose", 0.06), ("prevote", 0.005), ("precommit", 0.01),
                    ("decide", 0.005), ("commit", 0.01), ("height", 0.09)]


def test_a_moment_the_node_does_not_have_falls_in_the_next_phase():
    """A non-validator casts no votes: waiting for the votes is all in its decide phase."""
    phases, clock, seen = _recorder()
    _pass(phases, clock, 3, {"start": 0.0, "proposal": 0.05, "decide": 0.08, "saved": 0.1})
    assert seen == [("propose", 0.05), ("decide", 0.03), ("commit", 0.02), ("height", 0.1)]


def test_a_moment_after_a_later_one_is_left_out():
    """Prevoting nil on a timeout, precommitting, and only then the proposal (a later round):
    the first times out of order count in the phase that ends at the proposal."""
    phases, clock, seen = _recorder()
    _pass(phases, clock, 3, {"start": 0.0, "prevote": 0.3, "precommit": 0.35,
                             "proposal": 0.4, "decide": 0.5, "saved": 0.52})
    assert seen == [("propose", 0.4), ("decide", 0.1), ("commit", 0.02), ("height", 0.52)]


def test_other_heights_repeats_and_an_unstarted_height_are_not_observed():
    phases, clock, seen = _recorder()
    clock.now = 5.0
    phases.mark(9, "saved")  # never started here (a restart): nothing
    phases.mark(9, "start")
    clock.now = 5.1
    phases.mark(10, "proposal")  # the next height's proposal, early
    phases.mark(9, "proposal")
    clock.now = 5.2
    phases.mark(9, "proposal")  # a later round's proposal: the first one counts
    phases.mark(9, "saved")
    clock.now = 5.3
    phases.mark(9, "decide")  # after the height was stored: nothing
    phases.mark(9, "saved")
    assert seen == [("propose", 0.1), ("commit", 0.1), ("height", 0.2)]


def test_a_proposal_held_before_its_height_started_makes_an_empty_propose_phase():
    phases, clock, seen = _recorder()
    _pass(phases, clock, 4, {"start": 0.0, "proposal": 0.05, "prevote": 0.06,
                             "precommit": 0.07, "decide": 0.08})
    clock.now = 0.085
    phases.mark(5, "proposal")  # height 5's proposal while height 4 is being stored
    clock.now = 0.09
    phases.mark(4, "saved")
    seen.clear()
    _pass(phases, clock, 5, {"start": 0.1, "prevote": 0.11, "precommit": 0.12,
                             "decide": 0.13, "saved": 0.14})
    assert seen == [("propose", 0.0), ("prevote", 0.01), ("precommit", 0.01),
                    ("decide", 0.01), ("commit", 0.01), ("height", 0.04)]
    # Held for height 5 only: height 6 waits for its own proposal.
    seen.clear()
    _pass(phases, clock, 6, {"start": 0.2, "decide": 0.25, "saved": 0.26})
    assert seen[0] == ("decide", 0.05)


def test_an_unknown_moment_is_refused():
    phases, _, _ = _recorder()
    with pytest.raises(ValueError, match="unknown height mark 'prevotes'"):
        phases.mark(1, "prevotes")


def test_unknown_moments_on_both_sides_of_start_are_refused():
    phases, _, _ = _recorder()
    for name in ("begin", "unknown", "zzz"):  # below and above "start" in string order
        with pytest.raises(ValueError, match="unknown height mark"):
            phases.mark(1, name)


def _runtime(name: str) -> str:
    """``name`` as a new string object (not the interned literal): marks compare by value."""
    return "".join(list(name))


def test_marks_compare_names_and_heights_by_value():
    """Names built at run time and heights above 256 (ints not cached by CPython) are the
    same marks: a proposal held early for 300, then height 300 passed moment by moment."""
    phases, clock, seen = _recorder()
    h = 299
    _pass(phases, clock, h, {"start": 0.0, "proposal": 0.01, "prevote": 0.02,
                             "precommit": 0.03, "decide": 0.04})
    clock.now = 0.045
    phases.mark(int("300"), _runtime("proposal"))
    clock.now = 0.05
    phases.mark(int(str(h)), _runtime("saved"))
    assert seen[-1] == ("height", 0.05)
    seen.clear()
    for name, t in (("start", 0.1), ("prevote", 0.11), ("precommit", 0.13), ("decide", 0.16),
                    ("saved", 0.2)):
        clock.now = t
        phases.mark(int("300"), _runtime(name))
    assert seen == [("propose", 0.0), ("prevote", 0.01), ("precommit", 0.02),
                    ("decide", 0.03), ("commit", 0.04), ("height", 0.1)]


def test_votes_before_a_height_started_are_not_an_early_proposal():
    """Only a proposal is held for a height not started: a prevote or a precommit marked
    before the start (a replayed or stray mark) is dropped, and the height's own proposal
    ends its propose phase."""
    phases, clock, seen = _recorder()
    for name in ("prevote", "precommit", "decide"):
        phases.mark(5, name)  # nothing started yet
    _pass(phases, clock, 5, {"start": 1.0, "proposal": 1.2, "prevote": 1.25,
                             "precommit": 1.3, "decide": 1.4, "saved": 1.5})
    assert seen[0] == ("propose", 0.2)
    seen.clear()
    phases.mark(6, "start")
    phases.mark(7, "prevote")  # a later height's vote while 6 runs: not held either
    _pass(phases, clock, 6, {"saved": 2.0})
    _pass(phases, clock, 7, {"start": 2.1, "proposal": 2.4, "saved": 2.5})
    assert seen[-3:] == [("propose", 0.3), ("commit", 0.1), ("height", 0.4)]


def test_a_stale_proposal_does_not_replace_one_held_for_the_next_height():
    phases, clock, seen = _recorder()
    _pass(phases, clock, 8, {"start": 0.0, "proposal": 0.01, "decide": 0.05})
    clock.now = 0.06
    phases.mark(9, "proposal")  # held for 9
    phases.mark(7, "proposal")  # an old height's, relayed late: ignored
    clock.now = 0.07
    phases.mark(8, "saved")
    seen.clear()
    _pass(phases, clock, 9, {"start": 0.1, "decide": 0.15, "saved": 0.2})
    assert seen == [("propose", 0.0), ("decide", 0.05), ("commit", 0.05), ("height", 0.1)]


@pytest.mark.parametrize("seed", range(200))
def test_the_phases_observed_always_add_up_to_the_height(seed):
    rng = random.Random(seed)
    phases, clock, seen = _recorder()
    names = [m for m in MARKS[1:-1] if rng.random() < 0.7]
    times = {"start": 0.0, **{m: rng.uniform(0, 1) for m in names}, "saved": 1.0 + rng.random()}
    _pass(phases, clock, 1, times)
    assert seen[-1] == ("height", round(times["saved"], 9))
    parts = seen[:-1]
    assert [p for p, _ in parts] == [p for p in PHASES if p in dict(parts)]  # in order, once
    assert all(s >= 0 for _, s in parts)
    assert sum(s for _, s in parts) == pytest.approx(times["saved"])


def test_the_driver_marks_every_moment_of_a_height_in_order_and_nothing_when_replaying():
    p = Parts()
    marks: list[tuple[int, str]] = []
    p.driver.on_mark = lambda h, name: marks.append((h, name))
    p.driver.start_height(1)
    p.pump(3)
    assert p.decided == [1, 2, 3]
    for h in (1, 2, 3):  # one validator: it proposes, prevotes, precommits and decides
        assert [n for mh, n in marks if mh == h] == list(MARKS), marks
    assert marks[-1] == (4, "start")

    # A WAL replay of a height (its votes signed, its decision failing to commit) marks
    # nothing: its moments happened before the restart.
    q = Parts()
    q.fail_commit_at = 1
    q.driver.start_height(1)
    with pytest.raises(OSError):
        q.pump(1)
    again = Parts(store=q.store)
    replayed: list[tuple[int, str]] = []
    again.driver.on_mark = lambda h, name: replayed.append((h, name))
    again.fail_commit_at = 1
    with pytest.raises(OSError):
        again.driver.replay()
    assert replayed == []
