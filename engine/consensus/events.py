"""Inputs (events) and outputs (actions) of the consensus core, as frozen dataclasses.

Events are everything that can change consensus state; the driver writes each one to its WAL
before calling ``step``, so replaying the WAL rebuilds the exact state. Actions are what the
driver must do, in order. See the package docstring for the contract of each.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.consensus.certificate import CommitCertificate
from engine.consensus.evidence import DuplicateVoteEvidence
from engine.consensus.signer import SignerState
from engine.consensus.types import Proposal, Step, Vote

# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Begin ``height`` at round 0: after construction, and after each ``Decide`` once the
    driver has committed the block (validity at the next height depends on it). Messages of
    the height that arrive earlier are logged; the rules run from Start on."""

    height: int


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A proposal and its block from a peer (or from this node's own WAL)."""

    proposal: Proposal
    block: bytes


@dataclass(frozen=True, slots=True)
class VoteReceived:
    vote: Vote


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    """A timer asked for by ``ScheduleTimeout`` has expired."""

    height: int
    round: int
    step: Step


@dataclass(frozen=True, slots=True)
class ValueReady:
    """The driver's answer to ``RequestValue``: the block to propose (the paper's getValue())."""

    height: int
    round: int
    block: bytes


@dataclass(frozen=True, slots=True)
class CommitReceived:
    """A decided block with its commit certificate, from a peer that is ahead (catch-up)."""

    block: bytes
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class Resume:
    """After WAL replay: messages this node signed at ``height`` (from its signer record) that
    the replayed state does not reflect, because the WAL lost its tail. Each entry of
    ``signed`` is (round, step, sign bytes, signature). The core counts its own votes again,
    restores its lock from its latest non-nil precommit, and moves to the last signed
    (round, step) without signing anything; ``ConsensusCore.resume_event()`` builds it."""

    height: int
    signed: tuple[tuple[int, int, bytes, bytes], ...]


Event = (Start | ProposalReceived | VoteReceived | TimeoutFired | ValueReady | CommitReceived
         | Resume)

# --- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BroadcastProposal:
    """Persist ``signer_state`` (with the WAL) durably, then send the proposal and block."""

    proposal: Proposal
    block: bytes
    signer_state: SignerState


@dataclass(frozen=True, slots=True)
class BroadcastVote:
    """Persist ``signer_state`` (with the WAL) durably, then send the vote."""

    vote: Vote
    signer_state: SignerState


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Deliver ``TimeoutFired(height, round, step)`` after ``duration_ms``."""

    height: int
    round: int
    step: Step
    duration_ms: int


@dataclass(frozen=True, slots=True)
class RequestValue:
    """This node proposes at (height, round): answer with ``ValueReady``."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class Decide:
    """``block`` is decided at ``height``: execute and store it with ``certificate`` (the
    core has already moved to height + 1)."""

    height: int
    round: int
    block: bytes
    block_hash: bytes
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    """A validator equivocated: store the evidence and include it in a later block."""

    evidence: DuplicateVoteEvidence


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """A valid-looking message was not kept because a named bound was reached (count it)."""

    reason: str


@dataclass(frozen=True, slots=True)
class SignRefused:
    """The double-sign guard refused to sign: the node stays silent at this step. For an honest
    node this means its state was lost or rolled back; the driver should alert."""

    height: int
    round: int
    step: Step
    reason: str


Action = (BroadcastProposal | BroadcastVote | ScheduleTimeout | RequestValue | Decide
          | ReportEvidence | MessageDropped | SignRefused)
