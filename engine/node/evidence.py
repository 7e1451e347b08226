"""The evidence pool: duplicate-vote evidence waiting for a block, and what was committed.

Evidence comes from the core (``ReportEvidence``: gossiped to peers) and from peers (verified
first, not gossiped again: the mesh is full). A proposer takes what is pending for heights below
the block; a commit moves the block's evidence to the committed set. Bounded by
``limits.evidence_pending_max``; evidence older than ``limits.evidence_age_heights_max`` is
refused.
"""
from __future__ import annotations

from engine import consensus as cs
from engine import limits
from engine.errors import ProtocolError
from engine.net import codec
from engine.node.ports import Counters
from engine.node.tip import ChainTip
from engine.node.valset import ValidatorHistory
from engine.node.wire import PeerWire
from engine.suite import DEFAULT, Suite

__all__ = ["EvidencePool"]


class EvidencePool:
    def __init__(self, *, chain_id: bytes, validators: cs.ValidatorSet, tip: ChainTip,
                 wire: PeerWire, counters: Counters, suite: Suite = DEFAULT,
                 history: ValidatorHistory | None = None):
        self.chain_id = chain_id
        self.suite = suite
        self.validators = validators
        #: Evidence is checked against the set of its own height (None: ``validators``).
        self.history = history
        self.tip = tip
        self.wire = wire
        self.counters = counters
        #: hash -> (height of the offence, encoded evidence)
        self._pending: dict[bytes, tuple[int, bytes]] = {}
        self._committed: set[bytes] = set()

    def report(self, evidence: cs.DuplicateVoteEvidence) -> None:
        """Found by the core: keep it and tell the peers."""
        self.add(evidence, gossip=True)

    def on_message(self, items: list[bytes]) -> None:
        """Evidence from a peer; ProtocolError when an item does not verify."""
        for e in items:
            ev = cs.DuplicateVoteEvidence.decode(e)
            vset = self.validators if self.history is None else self.history.at(ev.height)
            if vset is None:
                raise ProtocolError(f"evidence of height {ev.height}: its set is not known")
            ev.verify(self.chain_id, vset, self.suite.verify)
            self.add(ev, gossip=False)

    def add(self, evidence: cs.DuplicateVoteEvidence, *, gossip: bool) -> None:
        encoded = evidence.encode()
        eh = self.suite.hash_many([encoded])[0]
        if eh in self._pending or eh in self._committed \
                or evidence.height < self.tip.height + 1 - limits.evidence_age_heights_max:
            return
        if len(self._pending) >= limits.evidence_pending_max:
            self.counters.add("evidence_dropped")
            return
        self._pending[eh] = (evidence.height, encoded)
        self.counters.add("evidence")
        if gossip:
            self.wire.broadcast(codec.encode(codec.EVIDENCE, [encoded]))

    def for_block(self, height: int) -> list[bytes]:
        """Pending evidence a block at ``height`` may carry (offences below the height)."""
        return [e for h, e in self._pending.values() if h < height][:limits.evidence_per_block_max]

    def is_committed(self, evidence_hash: bytes) -> bool:
        return evidence_hash in self._committed

    def on_committed(self, items: list[bytes]) -> None:
        for e in items:
            eh = self.suite.hash_many([e])[0]
            self._pending.pop(eh, None)
            self._committed.add(eh)
