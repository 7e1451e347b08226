"""The message log of one height: vote sets per (round, type) over the native tally.

``HeightVotes`` maps (round, vote type) to a tally row and block hashes to slots (nil is slot 0),
keeps the first signed vote of each validator per row (for certificates and evidence), and keeps
a per-round participation row: which validators sent *any* message in a round, for the f + 1
round-skip rule. Counting is done by the native tally (``_tally.VoteTally``); the pure-Python
``PyVoteTally`` can stand in for tests.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine import limits
from engine.consensus import _tally
from engine.consensus.evidence import DuplicateVoteEvidence
from engine.consensus.types import NIL, ValidatorSet, Vote

ADDED, DUPLICATE, CONFLICT = _tally.ADDED, _tally.DUPLICATE, _tally.CONFLICT


class _Row:
    __slots__ = ("extra", "extra_slots_left", "index", "slots", "votes")

    def __init__(self, index: int, validators_count: int):
        self.index = index
        self.slots: dict[bytes, int] = {NIL: 0}
        self.votes: list[Vote | None] = [None] * validators_count
        # Conflicting votes counted for their value: validator -> block hash -> vote.
        self.extra: dict[int, dict[bytes, Vote]] = {}
        # First votes use at most validators + 1 slots; conflicting ones get as many more.
        self.extra_slots_left = validators_count + 1


class HeightVotes:
    """All votes of one height. ``add`` returns (status, evidence or None)."""

    __slots__ = ("_evidence_seen", "_round_rows", "_rows", "tally", "validators")

    def __init__(self, validators: ValidatorSet,
                 tally_factory: Callable[..., Any] = _tally.VoteTally):
        self.validators = validators
        self.tally: Any = tally_factory(validators.powers)
        self._rows: dict[tuple[int, int], _Row] = {}
        self._round_rows: dict[int, int] = {}
        self._evidence_seen: set[tuple[int, int, int]] = set()

    def _row(self, round: int, vote_type: int) -> _Row:
        row = self._rows.get((round, vote_type))
        if row is None:
            row = _Row(self.tally.new_row(), len(self.validators))
            self._rows[(round, vote_type)] = row
        return row

    def add(self, vote: Vote) -> tuple[int, DuplicateVoteEvidence | None]:
        """Count a vote whose signature was already checked."""
        row = self._row(vote.round, vote.type)
        known = row.slots.get(vote.block_hash)
        new_slot = known is None
        slot = len(row.slots) if known is None else known  # a new slot is tentative
        status = self.tally.add(row.index, vote.validator_index, slot)
        if status == ADDED:
            if new_slot:
                row.slots[vote.block_hash] = slot
            row.votes[vote.validator_index] = vote
            self.note_participant(vote.round, vote.validator_index)
            return status, None
        if status == CONFLICT:
            self._count_conflicting(row, vote, slot, new_slot)
            key = (vote.round, int(vote.type), vote.validator_index)
            if key not in self._evidence_seen:  # one report per equivocating (round, type)
                self._evidence_seen.add(key)
                first = row.votes[vote.validator_index]
                assert first is not None and first.block_hash != vote.block_hash
                return status, DuplicateVoteEvidence.from_votes(first, vote)
        return status, None

    def _count_conflicting(self, row: _Row, vote: Vote, slot: int, new_slot: bool) -> None:
        """The paper counts signed messages per value, so an equivocator's second value gets
        its power too (that is what lets others see a proof of lock it helped form). Bounded:
        ``limits.equivocations_counted_max`` values per validator and row."""
        mine = row.extra.setdefault(vote.validator_index, {})
        if vote.block_hash in mine or len(mine) >= limits.equivocations_counted_max:
            return
        if new_slot:
            if row.extra_slots_left == 0:
                return
            row.extra_slots_left -= 1
            row.slots[vote.block_hash] = slot
        mine[vote.block_hash] = vote
        self.tally.add_extra(row.index, vote.validator_index, slot)

    def note_participant(self, round: int, validator_index: int) -> None:
        """Record that the validator sent some message in ``round`` (vote or proposal)."""
        r = self._round_rows.get(round)
        if r is None:
            r = self._round_rows[round] = self.tally.new_row()
        self.tally.add(r, validator_index, 0)

    def has_one_third_in_round(self, round: int) -> bool:
        """f + 1: more than 1/3 of the power sent some message in ``round``."""
        r = self._round_rows.get(round)
        return r is not None and self.tally.has_one_third_any(r)

    def has_quorum(self, round: int, vote_type: int, block_hash: bytes) -> bool:
        row = self._rows.get((round, vote_type))
        if row is None:
            return False
        slot = row.slots.get(block_hash)
        return slot is not None and self.tally.has_quorum(row.index, slot)

    def has_quorum_any(self, round: int, vote_type: int) -> bool:
        row = self._rows.get((round, vote_type))
        return row is not None and self.tally.has_quorum_any(row.index)

    def quorum_hash(self, round: int, vote_type: int) -> bytes | None:
        """The block hash (or NIL) with more than 2/3 of the power in this vote set, if any."""
        row = self._rows.get((round, vote_type))
        if row is None or not self.tally.has_quorum_any(row.index):
            return None
        slot = self.tally.quorum_slot(row.index)
        if slot < 0:
            return None
        for h, s in row.slots.items():
            if s == slot:
                return h
        raise AssertionError("quorum slot without a hash")

    def votes_for(self, round: int, vote_type: int, block_hash: bytes) -> list[Vote]:
        """The votes counted for ``block_hash`` (first and conflicting), for relaying a proof
        of lock to peers that miss it."""
        row = self._rows.get((round, vote_type))
        if row is None:
            return []
        found = [v for v in row.votes if v is not None and v.block_hash == block_hash]
        found += [votes[block_hash] for votes in row.extra.values() if block_hash in votes]
        return found

    def signatures_for(self, round: int, vote_type: int, block_hash: bytes) -> dict[int, bytes]:
        """Signatures of the votes counted for ``block_hash``, by validator index."""
        row = self._rows.get((round, vote_type))
        if row is None:
            return {}
        sigs = {i: v.signature for i, v in enumerate(row.votes)
                if v is not None and v.block_hash == block_hash}
        for i, votes in row.extra.items():
            if block_hash in votes:
                sigs[i] = votes[block_hash].signature
        return sigs

    def vote_of(self, round: int, vote_type: int, validator_index: int) -> Vote | None:
        """The first vote of one validator in one vote set, if counted."""
        row = self._rows.get((round, vote_type))
        return row.votes[validator_index] if row is not None else None

    def votes_of(self, validator_index: int) -> list[Vote]:
        """The counted votes of one validator (for re-gossip by a driver)."""
        found = [row.votes[validator_index] for row in self._rows.values()]
        return [v for v in found if v is not None]

    def rounds(self) -> list[int]:
        return sorted({r for r, _ in self._rows} | set(self._round_rows))
