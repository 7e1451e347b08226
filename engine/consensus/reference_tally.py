"""A pure-Python, dict-based vote tally with the same interface as the native ``_tally``.

It is the differential oracle for the native tally in the tests and the baseline in the
benchmark; the consensus core can run on either (``HeightVotes(tally_factory=...)``).
"""
from __future__ import annotations

from collections.abc import Sequence

ADDED, DUPLICATE, CONFLICT, INVALID = 0, 1, 2, 3


class PyVoteTally:
    def __init__(self, powers: Sequence[int], rows_hint: int = 8):
        powers = [int(p) for p in powers]
        if not powers or any(p <= 0 for p in powers):
            raise ValueError("powers must be a non-empty sequence of positive ints")
        self.powers = powers
        self.validators_count = len(powers)
        self.total_power = sum(powers)
        self.rows: list[tuple[dict[int, int], dict[int, int], list[int]]] = []

    @property
    def rows_count(self) -> int:
        return len(self.rows)

    def new_row(self) -> int:
        # (validator -> slot, slot -> power, [power of any])
        self.rows.append(({}, {}, [0]))
        return len(self.rows) - 1

    def _check(self, row: int, validator: int, slot: int) -> bool:
        return (0 <= row < len(self.rows) and 0 <= validator < self.validators_count
                and 0 <= slot < 2 * self.validators_count + 2)

    def add(self, row: int, validator: int, slot: int) -> int:
        if not self._check(row, validator, slot):
            raise ValueError(f"row {row}, validator {validator} or slot {slot} is out of range")
        votes, value_power, any_power = self.rows[row]
        prev = votes.get(validator)
        if prev is not None:
            return DUPLICATE if prev == slot else CONFLICT
        votes[validator] = slot
        p = self.powers[validator]
        value_power[slot] = value_power.get(slot, 0) + p
        any_power[0] += p
        return ADDED

    def add_extra(self, row: int, validator: int, slot: int) -> None:
        if not self._check(row, validator, slot):
            raise ValueError(f"row {row}, validator {validator} or slot {slot} is out of range")
        if self.rows[row][0].get(validator) == slot:
            raise ValueError("add_extra of the validator's first vote")
        vp = self.rows[row][1]
        vp[slot] = vp.get(slot, 0) + self.powers[validator]

    def add_batch(self, rows, validators, slots) -> list[int]:
        out = []
        for r, v, s in zip(rows, validators, slots):
            r, v, s = int(r), int(v), int(s)
            out.append(self.add(r, v, s) if self._check(r, v, s) else INVALID)
        return out

    def vote_of(self, row: int, validator: int) -> int:
        return self.rows[row][0].get(validator, -1)

    def power(self, row: int, slot: int) -> int:
        return self.rows[row][1].get(slot, 0)

    def power_any(self, row: int) -> int:
        return self.rows[row][2][0]

    def has_quorum(self, row: int, slot: int) -> bool:
        return 3 * self.power(row, slot) > 2 * self.total_power

    def has_quorum_any(self, row: int) -> bool:
        return 3 * self.power_any(row) > 2 * self.total_power

    def has_one_third_any(self, row: int) -> bool:
        return 3 * self.power_any(row) > self.total_power

    def quorum_slots(self) -> list[int]:
        return [self.quorum_slot(r) for r in range(len(self.rows))]

    def quorum_slot(self, row: int) -> int:
        for s, p in self.rows[row][1].items():
            if 3 * p > 2 * self.total_power:
                return s
        return -1
