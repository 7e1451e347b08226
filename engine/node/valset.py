"""The node's validator-set history: which set signs height h, and how a block changes it.

The genesis set signs from height 1 until the first change; a change returned by
``finalize_block(h)`` signs from ``h + 2`` (engine/valset.py). After block ``h`` is committed the
sets of ``h + 1`` and ``h + 2`` are known (the *horizon* is ``h + 2``): consensus at ``h + 1``,
the header of ``h + 1`` (``validators_hash``, ``next_validators_hash``) and messages buffered for
``h + 2`` all have their set. Asking beyond the horizon answers None: no node may guess a set a
block not yet decided could change.

Every part of the node that needs a set (the consensus core, block validity and production,
block sync, evidence, the peer set, queries) asks this one object, so they never disagree. The
records live in the store (engine/store/_valsets.py), written with the block that causes them.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence

from engine import consensus as cs
from engine.valset import UPDATE_DELAY_HEIGHTS, ValidatorUpdate, apply_updates, decode_set

__all__ = ["ValidatorHistory"]


class ValidatorHistory:
    def __init__(self, genesis: cs.ValidatorSet, records: Sequence[tuple[int, bytes]] = (),
                 committed_height: int = 0):
        if not isinstance(genesis, cs.ValidatorSet):
            raise TypeError("genesis must be a ValidatorSet")
        self._starts: list[int] = [1]
        self._sets: list[cs.ValidatorSet] = [genesis]
        key_bytes = len(genesis.validators[0].public_key)  # the chain's suite
        for height, raw in records:
            self.record(height, decode_set(raw, key_bytes))
        self.horizon = committed_height + UPDATE_DELAY_HEIGHTS

    @property
    def genesis(self) -> cs.ValidatorSet:
        return self._sets[0]

    def at(self, height: int) -> cs.ValidatorSet | None:
        """The set that signs ``height``; None beyond the horizon (not decided yet)."""
        if type(height) is not int or height < 1:
            raise ValueError(f"height must be an int >= 1, not {height!r}")
        if height > self.horizon:
            return None
        return self._sets[bisect.bisect_right(self._starts, height) - 1]

    def set_at(self, height: int) -> cs.ValidatorSet:
        """``at(height)``, raising ValueError beyond the horizon."""
        vset = self.at(height)
        if vset is None:
            raise ValueError(f"the validator set of height {height} is not known yet "
                             f"(known up to {self.horizon})")
        return vset

    def latest(self) -> cs.ValidatorSet:
        """The newest known set (the one that signs the horizon)."""
        return self._sets[-1]

    def is_member_near(self, public_key: bytes, height: int) -> bool:
        """Whether ``public_key`` signs ``height`` or one of the known heights after it."""
        return any(vset.index_of(public_key) is not None
                   for vset in self._sets_from(height))

    def _sets_from(self, height: int) -> list[cs.ValidatorSet]:
        i = max(0, bisect.bisect_right(self._starts, height) - 1)
        return self._sets[i:]

    def changes(self) -> list[tuple[int, cs.ValidatorSet]]:
        """Every (first height, set), genesis first."""
        return list(zip(self._starts, self._sets))

    def next_change(self, height: int,
                    updates: Sequence[ValidatorUpdate]) -> tuple[int, cs.ValidatorSet] | None:
        """The (first height, set) record that updates returned by ``finalize_block(height)``
        make, or None when they change nothing. ValueError (naming the problem) when the
        batch is refused (engine/valset.py)."""
        if not updates:
            return None
        base = self.set_at(height + 1)
        new = apply_updates(base, updates)
        if new == base:
            return None
        return height + UPDATE_DELAY_HEIGHTS, new

    def record(self, from_height: int, vset: cs.ValidatorSet) -> None:
        """Add a record (after the store saved it); heights only grow."""
        if from_height <= self._starts[-1]:
            raise ValueError(f"validator-set record at {from_height} is not after the last "
                             f"one ({self._starts[-1]})")
        self._starts.append(from_height)
        self._sets.append(vset)

    def committed(self, height: int) -> None:
        """Block ``height`` is committed: the sets up to ``height + 2`` are known."""
        self.horizon = max(self.horizon, height + UPDATE_DELAY_HEIGHTS)


class PeerFollower:
    """Keeps the peer set on the validator set: after every commit, the validators of the
    known heights ahead (the next height's set and the one after) are the peers; configured
    peers without a ``validator`` key are non-validator peers and always kept.

    - a configured peer tagged with a validator key that no known set ahead holds is dropped
      (and refused) until a set names it again;
    - a validator key in a set ahead that no configured peer runs is admitted as a node key: a
      validator that joined later authenticates with its validator key (engine/node/join.py);
      it is dropped again when it leaves.
    """

    def __init__(self, history: ValidatorHistory, peers: Sequence[tuple[bytes, bytes | None]],
                 own_node_key: bytes, own_validator_key: bytes | None = None):
        self.history = history
        #: node key -> validator key (None: a configured non-validator peer)
        self._configured = dict(peers)
        self._own = {own_node_key, own_validator_key}
        self._admitted: set[bytes] = set()

    def plan(self, next_height: int) -> tuple[set[bytes], set[bytes]]:
        """(node keys to admit, node keys to drop) for the sets from ``next_height`` on."""
        validators: set[bytes] = set()
        for vset in self.history._sets_from(next_height):
            validators.update(v.public_key for v in vset.validators)
        run_by_configured = {v for v in self._configured.values() if v is not None}
        admit = {k for k, v in self._configured.items() if v is not None and v in validators}
        admit |= {v for v in validators if v not in run_by_configured and v not in self._own}
        drop = {k for k, v in self._configured.items() if v is not None and v not in validators}
        drop |= self._admitted - admit
        self._admitted = {k for k in admit if k not in self._configured}
        return admit, drop
