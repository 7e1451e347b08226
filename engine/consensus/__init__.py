"""Sans-IO Tendermint BFT consensus: a pure state machine, driven by events, emitting actions.

The core (``ConsensusCore`` in core.py, with its theory of operation) never reads a clock, a
socket, a file or a random source: ``core.step(event) -> list[Action]`` is the only thing that
changes consensus state. The node driver (engine/node) and the simulator (engine/sim) feed it
the same events and execute the same actions.

Events (inputs; the driver writes each to the WAL before ``step``)
  ``Start(height)``                        begin the height at round 0 (after construction, and
                                           after each Decide once the block is committed)
  ``ProposalReceived(proposal, block)``    a signed proposal and its block bytes
  ``VoteReceived(vote)``                   a signed prevote or precommit
  ``TimeoutFired(height, round, step)``    a timer from ``ScheduleTimeout`` expired
  ``ValueReady(height, round, block)``     the block to propose, answering ``RequestValue``
  ``CommitReceived(block, certificate)``   a decided block + certificate from a peer (catch-up)
  ``Resume(height, signed)``               after replay, own signed messages the replayed state
                                           lacks (a damaged WAL): ``core.resume_event()``

Actions (outputs; execute in order)
  ``BroadcastProposal(proposal, block, signer_state)`` and ``BroadcastVote(vote, signer_state)``:
      persist ``signer_state`` and the WAL durably, *then* send. The core has already counted
      its own message; the driver must not feed it back.
  ``ScheduleTimeout(height, round, step, duration_ms)``  deliver ``TimeoutFired`` later
  ``RequestValue(height, round)``       build a block (with evidence, last commit) -> ValueReady
  ``Decide(height, round, block, block_hash, certificate)``  commit the block, then feed
      ``Start(height + 1)`` (the core is at height + 1 and logs its messages meanwhile)
  ``ReportEvidence(evidence)``          store DuplicateVoteEvidence; put it in a later block
  ``MessageDropped(reason)``            a bound was reached; count it in metrics
  ``SignRefused(height, round, step, reason)``  the double-sign guard refused; alert

Errors: peer input that is malformed, badly signed or from outside the validator set raises
``ProtocolError`` and changes nothing; driver misuse raises TypeError/ValueError.

Recovery: build the core with the same arguments, restore ``SignerGuard(key, persisted_state)``
and replay the WAL of the current height through ``step``; re-sent messages are identical bytes.
Then feed ``core.resume_event()`` (through the WAL like any input) when it is not None: the WAL
lost its tail, and the core catches up with what its signer record says it signed.

Injected functions: ``is_valid(height, block) -> bool`` (transactions, header, last commit,
evidence), ``hash_block(block) -> 32 bytes`` (id(v); BLAKE3 by default), ``verify(pk, msg, sig)``
(engine.crypto.verify by default; a driver may inject a cache of batch-verified results).
"""
from engine.consensus.certificate import CommitCertificate
from engine.consensus.core import ConsensusCore, TimeoutConfig
from engine.consensus.events import (
    Action,
    BroadcastProposal,
    BroadcastVote,
    CommitReceived,
    Decide,
    Event,
    MessageDropped,
    ProposalReceived,
    ReportEvidence,
    RequestValue,
    Resume,
    ScheduleTimeout,
    SignRefused,
    Start,
    TimeoutFired,
    ValueReady,
    VoteReceived,
)
from engine.consensus.evidence import DuplicateVoteEvidence
from engine.consensus.proposer import ProposerSchedule
from engine.consensus.signer import DoubleSignRefused, SignerGuard, SignerState
from engine.consensus.types import (
    NIL,
    Proposal,
    ProtocolError,
    Step,
    Validator,
    ValidatorSet,
    Vote,
    VoteType,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from engine.consensus.votes import HeightVotes

__all__ = [
    "NIL",
    "Action",
    "BroadcastProposal",
    "BroadcastVote",
    "CommitCertificate",
    "CommitReceived",
    "ConsensusCore",
    "Decide",
    "DoubleSignRefused",
    "DuplicateVoteEvidence",
    "Event",
    "HeightVotes",
    "MessageDropped",
    "Proposal",
    "ProposalReceived",
    "ProposerSchedule",
    "ProtocolError",
    "ReportEvidence",
    "RequestValue",
    "Resume",
    "ScheduleTimeout",
    "SignRefused",
    "SignerGuard",
    "SignerState",
    "Start",
    "Step",
    "TimeoutConfig",
    "TimeoutFired",
    "Validator",
    "ValidatorSet",
    "ValueReady",
    "Vote",
    "VoteReceived",
    "VoteType",
    "proposal_sign_bytes",
    "vote_sign_bytes",
]
