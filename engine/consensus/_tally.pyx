# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Native vote tally: per-row vote records and voting power over numpy arrays.

A *row* is one vote set, e.g. the prevotes of (height, round); the Python layer
(engine/consensus/votes.py) maps (round, type) to rows and block hashes to small integer
*slots* (slot 0 is nil by convention there; here a slot is an index < 2 * validators + 2).
Each validator's first vote in a row counts for its value and for "any"; a repeat of the same
slot is a duplicate, a different slot is a conflict (the caller turns it into
DuplicateVoteEvidence and may count it for its value only with ``add_extra``, as the paper
counts every signed message per value). Adding a vote is O(1). Thresholds compare with integer arithmetic: quorum is ``3 * power > 2 * total``
(more than two thirds), one third is ``3 * power > total`` (f + 1: at least one correct).

This module knows nothing about consensus rules; it counts.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

cnp.import_array()

cdef enum:
    S_ADDED = 0
    S_DUPLICATE = 1
    S_CONFLICT = 2
    S_INVALID = 3

ADDED = S_ADDED
DUPLICATE = S_DUPLICATE
CONFLICT = S_CONFLICT
#: Status in add_batch output for an entry with an invalid row, validator or slot.
INVALID = S_INVALID

cdef int64_t POWER_TOTAL_MAX = (<int64_t>1) << 60


cdef class VoteTally:
    """Vote sets over one validator set. ``powers`` is the voting power of each validator in
    validator-set order (positive integers, total at most 2**60)."""

    cdef readonly Py_ssize_t validators_count
    cdef readonly int64_t total_power
    cdef readonly Py_ssize_t rows_count
    cdef Py_ssize_t rows_cap
    cdef object _powers_arr, _votes_arr, _value_power_arr, _any_power_arr
    cdef int64_t[::1] powers
    cdef int32_t[:, ::1] votes
    cdef int64_t[:, ::1] value_power
    cdef int64_t[::1] any_power

    def __cinit__(self, powers, Py_ssize_t rows_hint=8):
        arr = np.array(powers, dtype=np.int64, copy=True)
        if arr.ndim != 1 or arr.shape[0] < 1:
            raise ValueError("powers must be a non-empty one-dimensional sequence")
        if (arr <= 0).any():
            raise ValueError("powers must all be positive")
        cdef int64_t total = 0
        cdef int64_t[::1] p = arr
        cdef Py_ssize_t i
        for i in range(p.shape[0]):
            if p[i] > POWER_TOTAL_MAX - total:
                raise ValueError("powers must sum to at most 2**60")
            total += p[i]
        self._powers_arr = arr
        self.powers = arr
        self.validators_count = arr.shape[0]
        self.total_power = total
        self.rows_count = 0
        self.rows_cap = 0
        self._grow(max(rows_hint, 1))

    cdef _grow(self, Py_ssize_t cap):
        n = self.validators_count
        votes = np.full((cap, n), -1, dtype=np.int32)
        value_power = np.zeros((cap, 2 * n + 2), dtype=np.int64)
        any_power = np.zeros(cap, dtype=np.int64)
        if self.rows_count:
            votes[:self.rows_count] = self._votes_arr[:self.rows_count]
            value_power[:self.rows_count] = self._value_power_arr[:self.rows_count]
            any_power[:self.rows_count] = self._any_power_arr[:self.rows_count]
        self._votes_arr, self._value_power_arr, self._any_power_arr = votes, value_power, any_power
        self.votes, self.value_power, self.any_power = votes, value_power, any_power
        self.rows_cap = cap

    def new_row(self) -> int:
        """Allocate an empty vote set and return its row number."""
        if self.rows_count == self.rows_cap:
            self._grow(self.rows_cap * 2)
        self.rows_count += 1
        return self.rows_count - 1

    cdef inline int _check(self, Py_ssize_t row, Py_ssize_t validator, Py_ssize_t slot) noexcept nogil:
        return (0 <= row < self.rows_count and 0 <= validator < self.validators_count
                and 0 <= slot < 2 * self.validators_count + 2)

    cdef inline int _add(self, Py_ssize_t row, Py_ssize_t validator, Py_ssize_t slot) noexcept nogil:
        # Raw pointers: rows are C-contiguous, so no memoryview checks in the hot loop.
        cdef int32_t* vote = &self.votes[0, 0] + row * self.validators_count + validator
        cdef int32_t prev = vote[0]
        if prev >= 0:
            return S_DUPLICATE if prev == slot else S_CONFLICT
        vote[0] = <int32_t>slot
        cdef int64_t p = self.powers[validator]
        (&self.value_power[0, 0])[row * (2 * self.validators_count + 2) + slot] += p
        (&self.any_power[0])[row] += p
        return S_ADDED

    cpdef int add(self, Py_ssize_t row, Py_ssize_t validator, Py_ssize_t slot) except -1:
        """Record ``validator``'s vote for ``slot`` in ``row``: ADDED, DUPLICATE or CONFLICT."""
        if not self._check(row, validator, slot):
            raise ValueError(f"row {row}, validator {validator} or slot {slot} is out of range")
        return self._add(row, validator, slot)

    def add_extra(self, Py_ssize_t row, Py_ssize_t validator, Py_ssize_t slot):
        """Count an equivocating validator's vote for ``slot`` too (value power only). The
        caller guarantees it counts each (validator, slot) of a row at most once."""
        if not self._check(row, validator, slot):
            raise ValueError(f"row {row}, validator {validator} or slot {slot} is out of range")
        if self.votes[row, validator] == slot:
            raise ValueError("add_extra of the validator's first vote")
        self.value_power[row, slot] += self.powers[validator]

    def add_batch(self, rows, validators, slots):
        """Add many votes (three equal-length integer arrays); returns an int8 status array
        (ADDED, DUPLICATE, CONFLICT, or INVALID for an out-of-range entry). Runs without the GIL."""
        cdef cnp.ndarray r_arr = np.ascontiguousarray(rows, dtype=np.int64)
        cdef cnp.ndarray v_arr = np.ascontiguousarray(validators, dtype=np.int64)
        cdef cnp.ndarray s_arr = np.ascontiguousarray(slots, dtype=np.int64)
        if not (r_arr.ndim == v_arr.ndim == s_arr.ndim == 1):
            raise ValueError("rows, validators and slots must be one-dimensional")
        if not (r_arr.shape[0] == v_arr.shape[0] == s_arr.shape[0]):
            raise ValueError("rows, validators and slots must have the same length")
        cdef int64_t[::1] r = r_arr
        cdef int64_t[::1] v = v_arr
        cdef int64_t[::1] s = s_arr
        out_arr = np.empty(r.shape[0], dtype=np.int8)
        cdef int8_t[::1] out = out_arr
        cdef Py_ssize_t i
        with nogil:
            for i in range(r.shape[0]):
                if self._check(r[i], v[i], s[i]):
                    out[i] = <int8_t>self._add(r[i], v[i], s[i])
                else:
                    out[i] = S_INVALID
        return out_arr

    def vote_of(self, Py_ssize_t row, Py_ssize_t validator) -> int:
        """The slot ``validator`` voted for in ``row`` (its first vote), or -1."""
        if not self._check(row, validator, 0):
            raise ValueError(f"row {row} or validator {validator} is out of range")
        return self.votes[row, validator]

    cpdef int64_t power(self, Py_ssize_t row, Py_ssize_t slot) except -1:
        """Voting power of the first votes for ``slot`` in ``row``."""
        if not self._check(row, 0, slot):
            raise ValueError(f"row {row} or slot {slot} is out of range")
        return self.value_power[row, slot]

    cpdef int64_t power_any(self, Py_ssize_t row) except -1:
        """Voting power of every validator with a vote in ``row``."""
        if not self._check(row, 0, 0):
            raise ValueError(f"row {row} is out of range")
        return self.any_power[row]

    cpdef bint has_quorum(self, Py_ssize_t row, Py_ssize_t slot) except -1:
        """More than 2/3 of the total power voted for ``slot`` (2f + 1)."""
        return 3 * self.power(row, slot) > 2 * self.total_power

    cpdef bint has_quorum_any(self, Py_ssize_t row) except -1:
        """More than 2/3 of the total power voted, for anything."""
        return 3 * self.power_any(row) > 2 * self.total_power

    cpdef bint has_one_third_any(self, Py_ssize_t row) except -1:
        """More than 1/3 of the total power voted (f + 1: at least one correct validator)."""
        return 3 * self.power_any(row) > self.total_power

    cdef inline Py_ssize_t _quorum_slot(self, Py_ssize_t row) noexcept nogil:
        cdef Py_ssize_t width = 2 * self.validators_count + 2
        cdef int64_t* vp = &self.value_power[0, 0] + row * width
        cdef int64_t need = 2 * self.total_power
        cdef Py_ssize_t s
        for s in range(width):
            if 3 * vp[s] > need:
                return s
        return -1

    def quorum_slot(self, Py_ssize_t row) -> int:
        """The slot holding a quorum in ``row``, or -1 (at most one slot can while less
        than 1/3 of the power equivocates)."""
        if not self._check(row, 0, 0):
            raise ValueError(f"row {row} is out of range")
        return self._quorum_slot(row)

    def quorum_slots(self):
        """``quorum_slot`` of every row, as an int64 array (one call, without the GIL)."""
        out_arr = np.empty(self.rows_count, dtype=np.int64)
        cdef int64_t[::1] out = out_arr
        cdef Py_ssize_t r
        with nogil:
            for r in range(self.rows_count):
                out[r] = self._quorum_slot(r)
        return out_arr


def bitmap_power(bitmap, powers) -> int:
    """Total power of the validators whose bit is set in ``bitmap`` (bit i of byte i // 8,
    least significant first). Raises ValueError on a wrong length or a set padding bit."""
    cdef const uint8_t[::1] bm = memoryview(bitmap).cast("B")
    cdef cnp.ndarray p_arr = np.ascontiguousarray(powers, dtype=np.int64)
    cdef int64_t[::1] p = p_arr
    cdef Py_ssize_t n = p.shape[0]
    if bm.shape[0] != (n + 7) // 8:
        raise ValueError(f"bitmap must be {(n + 7) // 8} bytes for {n} validators, not {bm.shape[0]}")
    if n % 8 and bm[bm.shape[0] - 1] >> (n % 8):
        raise ValueError("bitmap has bits set past the last validator")
    cdef int64_t total = 0
    cdef Py_ssize_t i
    with nogil:
        for i in range(n):
            if (bm[i >> 3] >> (i & 7)) & 1:
                total += p[i]
    return total
