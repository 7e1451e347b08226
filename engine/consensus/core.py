"""The Tendermint state machine: Algorithm 1 of "The latest gossip on BFT consensus".

Theory of operation
-------------------
``ConsensusCore.step(event) -> list[Action]`` is the only way state changes. It checks the event
(peer input that is malformed, unsigned or from an unknown validator raises ``ProtocolError``
before anything changes), records messages in the height's log (``HeightVotes`` over the native
tally, plus the proposals and blocks seen), and then evaluates the paper's *upon* rules until none
fires. Rules are evaluated over the whole log, which is why messages of later rounds are kept
(up to ``limits.rounds_ahead_max`` ahead) and messages of later heights are buffered (up to
``limits.heights_ahead_max`` heights and ``limits.future_height_messages_max`` messages) and
replayed when the height starts; anything beyond a bound is reported with ``MessageDropped``.

Rules, by paper line (h = height, r = round, "2f+1" = more than 2/3 of the power, "f+1" = more
than 1/3):

- l.11 ``start_round(r)``: step := propose; the proposer proposes validValue (with validRound)
  or asks the driver for a value (``RequestValue`` -> ``ValueReady``); everyone schedules
  timeoutPropose(r).
- l.22 proposal (h, r, v, -1) in step propose: prevote v if valid(v) and (lockedRound = -1 or
  lockedValue = v), else nil.
- l.28 proposal (h, r, v, vr) with 0 <= vr < r and 2f+1 prevotes (h, vr, v) in step propose:
  prevote v if valid(v) and (lockedRound <= vr or lockedValue = v), else nil. (The newer proof of
  lock unlocks an older lock.)
- l.34 2f+1 prevotes of anything (h, r) in step prevote, first time: schedule timeoutPrevote(r).
- l.36 2f+1 prevotes (h, r, v), v known and valid, step >= prevote, first time: in step prevote
  lock v (lockedValue, lockedRound := v, r) and precommit v; in every case validValue,
  validRound := v, r.
- l.44 2f+1 prevotes (h, r, nil) in step prevote: precommit nil.
- l.47 2f+1 precommits of anything (h, r), first time: schedule timeoutPrecommit(r).
- l.49 2f+1 precommits (h, r', v) for any round r', v known and valid: ``decide`` v with the
  commit certificate of those precommits, then height h + 1, round 0, empty log.
- l.55 messages of any type from f+1 power at (h, r' > r): ``start_round(r')``.
- l.57/61/65 timeouts: propose -> prevote nil; prevote -> precommit nil; precommit -> next round;
  each only if (h, r, step) still match (the stale guard).

Recovery from a damaged WAL (``Resume``): replaying a WAL that lost its tail leaves the core
behind what its signer record says it signed. Left there it would stay silent (the guard
refuses every step at or below the last one signed) and, with peers needing its messages for
a quorum or for f+1 in a later round, the height would never end. ``resume_event()`` lists the
signed messages the replayed state lacks; stepping that event counts the own votes again (and
re-sends them: identical bytes and signatures), restores the lock from the latest own non-nil
precommit (l.36 is the only place a lock is taken, always with that precommit), and moves to
the last signed (round, step) without signing: the same place the node was in, minus the lost
messages of others, which peers re-send.

A block v is known when a valid proposal of this height carried it; id(v) is ``hash_block(v)``.
Timeouts grow linearly per round, ``init + r * delta``, reset at every height.

Determinism: the core reads no clock, no randomness and no I/O; signing is deterministic
Ed25519. Replaying the same events into a core built with the same arguments and the persisted
signer state gives the same state and the same actions.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine import crypto, hashing, limits
from engine.consensus import events as ev
from engine.consensus.certificate import CommitCertificate
from engine.consensus.proposer import ProposerSchedule
from engine.consensus.signer import DoubleSignRefused, SignerGuard
from engine.consensus.types import (
    NIL,
    Proposal,
    ProtocolError,
    Step,
    ValidatorSet,
    Vote,
    VoteType,
    check_chain_id,
    check_proposal_shape,
    check_vote_shape,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from engine.consensus.votes import CONFLICT, HeightVotes

Verify = Callable[[bytes, bytes, bytes], bool]
IsValid = Callable[[int, bytes], bool]
ValidatorsAt = Callable[[int], "ValidatorSet | None"]
#: Proposer schedules kept for recently seen validator sets.
_SCHEDULES_CACHED_MAX = 8


@dataclass(frozen=True)
class TimeoutConfig:
    """Round timeouts: ``<step>_ms + round * <step>_delta_ms`` (capped by limits)."""

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500

    def duration_ms(self, step: Step, round: int) -> int:
        base, delta = {
            Step.PROPOSE: (self.propose_ms, self.propose_delta_ms),
            Step.PREVOTE: (self.prevote_ms, self.prevote_delta_ms),
            Step.PRECOMMIT: (self.precommit_ms, self.precommit_delta_ms),
        }[step]
        return min(base + round * delta, limits.round_timeout_ms_max)


class ConsensusCore:
    """One validator's (or observer's, with ``signer=None``) Tendermint state machine."""

    def __init__(self, chain_id: bytes, validators: ValidatorSet, signer: SignerGuard | None,
                 *, height: int = 1, is_valid: IsValid = lambda h, b: True,
                 hash_block: Callable[[bytes], bytes] = hashing.blake3,
                 verify: Verify = crypto.verify, timeouts: TimeoutConfig = TimeoutConfig(),
                 tally_factory: Callable[..., Any] | None = None,
                 validators_at: ValidatorsAt | None = None):
        self.chain_id = check_chain_id(chain_id)
        if not isinstance(validators, ValidatorSet):
            raise TypeError("validators must be a ValidatorSet")
        if type(height) is not int or height < 1:
            raise ValueError(f"height must be an int >= 1, not {height!r}")
        if validators_at is not None and not callable(validators_at):
            raise TypeError("validators_at must be callable (height -> ValidatorSet | None)")
        self.validators = validators
        self.signer = signer
        self.own_index = validators.index_of(signer.public_key) if signer else None
        self.is_valid = is_valid
        self.hash_block = hash_block
        self.verify = verify
        self.timeouts = timeouts
        self._tally_factory = tally_factory
        #: The set of each height (a changing set); None: ``validators`` signs every height.
        self._validators_at = validators_at
        self._schedules: dict[bytes, ProposerSchedule] = {}
        self.schedule = self._schedule_of(validators)
        self.future: list[ev.Event] = []
        self.started = False
        self._reset_height(height)

    # --- state ------------------------------------------------------------------------------

    def _reset_height(self, height: int) -> None:
        if self._validators_at is not None:
            vset = self._validators_at(height)
            if not isinstance(vset, ValidatorSet):
                # The driver starts a height only once the block two heights back is stored.
                raise RuntimeError(f"the validator set of height {height} is unknown")
            self.validators = vset
            self.own_index = vset.index_of(self.signer.public_key) if self.signer else None
            self.schedule = self._schedule_of(vset)
        self.height = height
        self.round = 0
        self.step_ = Step.PROPOSE
        self.locked_value: bytes | None = None
        self.locked_round = -1
        self.valid_value: bytes | None = None
        self.valid_round = -1
        kwargs = {"tally_factory": self._tally_factory} if self._tally_factory else {}
        self.votes = HeightVotes(self.validators, **kwargs)
        self.proposals: dict[int, dict[bytes, Proposal]] = {}
        self.blocks: dict[bytes, bytes] = {}
        self._valid_cache: dict[bytes, bool] = {}
        self._fired: set[tuple[str, int]] = set()
        self._proposed: set[int] = set()
        # Set when a proposal brings a block not seen before at this height: precommits of
        # any earlier round may have been waiting for it (l.49).
        self._block_learned = False

    def proposer(self, height: int, round: int) -> int:
        """The proposer's index in the set of ``height`` (docs/consensus.md: the rotation
        continues at position ``height + round`` of each set's schedule); -1 when that set is
        not known yet."""
        if height == self.height:
            return self.schedule.proposer(height, round)
        vset = self.validators_for(height)
        return -1 if vset is None else self._schedule_of(vset).proposer(height, round)

    def validators_for(self, height: int) -> ValidatorSet | None:
        """The set that signs ``height`` (None when not known yet)."""
        if height == self.height or self._validators_at is None:
            return self.validators
        return self._validators_at(height)

    def _schedule_of(self, vset: ValidatorSet) -> ProposerSchedule:
        key = vset.hash()
        sched = self._schedules.get(key)
        if sched is None:
            if len(self._schedules) >= _SCHEDULES_CACHED_MAX:
                self._schedules.clear()
            sched = self._schedules[key] = ProposerSchedule(
                [v.power for v in vset.validators])
        return sched

    def snapshot(self) -> tuple:
        """Everything that determines future behaviour, for replay checks."""
        votes = tuple(sorted((r, int(t), tuple(v.encode() if v else b"" for v in row.votes))
                             for (r, t), row in self.votes._rows.items()))
        extra = tuple(sorted((r, int(t), i, tuple(sorted(vs)))
                             for (r, t), row in self.votes._rows.items()
                             for i, vs in row.extra.items()))
        props = tuple(sorted((r, tuple(sorted(p.encode() for p in ps.values())))
                             for r, ps in self.proposals.items()))
        signer = self.signer.state if self.signer else None
        if signer is not None and signer.height < self.height:
            # The history of a finished height decides nothing (the guard refuses any height
            # below its record), and a restart cannot rebuild it: the WAL of a decided height
            # is dropped with the block's save.
            signer = dataclasses.replace(signer, history=())
        return (self.height, self.round, int(self.step_), self.locked_value, self.locked_round,
                self.valid_value, self.valid_round, tuple(sorted(self._fired)),
                tuple(sorted(self._proposed)), votes, extra, props, self.started, signer,
                # Buffered future messages as a multiset: a replay feeds each height's WAL in
                # turn, so messages of different future heights may come back in another order.
                tuple(sorted((_event_height(e), type(e).__name__) for e in self.future)))

    # --- the one entry point -------------------------------------------------------------------

    def step(self, event: ev.Event) -> list[ev.Action]:
        """Apply one event; return the actions for the driver, in order."""
        out: list[ev.Action] = []
        if isinstance(event, ev.VoteReceived):
            self._on_vote(event, out)
        elif isinstance(event, ev.ProposalReceived):
            self._on_proposal(event, out)
        elif isinstance(event, ev.TimeoutFired):
            self._on_timeout(event, out)
        elif isinstance(event, ev.ValueReady):
            self._on_value(event, out)
        elif isinstance(event, ev.CommitReceived):
            self._on_commit(event, out)
        elif isinstance(event, ev.Start):
            self._on_start(event, out)
        elif isinstance(event, ev.Resume):
            self._on_resume(event, out)
        else:
            raise TypeError(f"event must be a consensus event, not {type(event).__name__}")
        return out

    # --- inputs ------------------------------------------------------------------------------

    def _buffer_future(self, height: int, event: ev.Event, out: list) -> None:
        if height > self.height + limits.heights_ahead_max:
            out.append(ev.MessageDropped(f"height {height} is more than "
                                         f"{limits.heights_ahead_max} ahead of {self.height}"))
        elif len(self.future) >= limits.future_height_messages_max:
            out.append(ev.MessageDropped("future-height buffer is full"))
        else:
            self.future.append(event)

    def _round_too_far(self, round: int, out: list) -> bool:
        if round > self.round + limits.rounds_ahead_max:
            out.append(ev.MessageDropped(f"round {round} is more than {limits.rounds_ahead_max}"
                                         f" ahead of {self.round}"))
            return True
        return False

    def _check_signer(self, index: int, height: int, out: list) -> bytes | None:
        """The public key of validator ``index`` at ``height``; None (reported) when that
        height's set is not known yet; ProtocolError when the index is not in it."""
        vset = self.validators_for(height)
        if vset is None:
            out.append(ev.MessageDropped(f"height {height} has no known validator set yet"))
            return None
        if not 0 <= index < len(vset):
            raise ProtocolError(f"validator index {index} is not in the validator set of "
                                f"height {height}")
        return vset.public_key(index)

    def _on_vote(self, event: ev.VoteReceived, out: list) -> None:
        vote = check_vote_shape(event.vote)
        if vote.height < self.height:
            return  # a late vote of a decided height: nothing left to do with it
        pk = self._check_signer(vote.validator_index, vote.height, out)
        if pk is None:
            return
        if not self.verify(pk, vote.sign_bytes(self.chain_id), vote.signature):
            raise ProtocolError("vote signature is invalid")
        if vote.height > self.height:
            self._buffer_future(vote.height, event, out)
            return
        if self._round_too_far(vote.round, out):
            return
        status, evidence = self.votes.add(vote)
        if status == CONFLICT and evidence is not None:
            out.append(ev.ReportEvidence(evidence))
        self._run_rules(vote.round, out)

    def _on_proposal(self, event: ev.ProposalReceived, out: list) -> None:
        p = check_proposal_shape(event.proposal)
        if not isinstance(event.block, bytes) or len(event.block) > limits.block_bytes_max:
            raise ProtocolError(f"block must be bytes of at most {limits.block_bytes_max}")
        if p.height < self.height:
            return
        pk = self._check_signer(p.proposer_index, p.height, out)
        if pk is None:
            return
        if p.proposer_index != self.proposer(p.height, p.round):
            raise ProtocolError(f"validator {p.proposer_index} is not the proposer of "
                                f"({p.height}, {p.round})")
        if self.hash_block(event.block) != p.block_hash:
            raise ProtocolError("proposal block does not match its block hash")
        if not self.verify(pk, p.sign_bytes(self.chain_id), p.signature):
            raise ProtocolError("proposal signature is invalid")
        if p.height > self.height:
            self._buffer_future(p.height, event, out)
            return
        if self._round_too_far(p.round, out):
            return
        self._record_proposal(p, event.block, out)
        self._run_rules(p.round, out)

    def _record_proposal(self, p: Proposal, block: bytes, out: list) -> None:
        in_round = self.proposals.setdefault(p.round, {})
        if p.block_hash in in_round:
            return
        if len(in_round) >= limits.proposals_per_round_max:
            out.append(ev.MessageDropped(f"more than {limits.proposals_per_round_max} "
                                         f"proposals in round {p.round}"))
            return
        in_round[p.block_hash] = p
        if p.block_hash not in self.blocks:
            self.blocks[p.block_hash] = block
            self._block_learned = True
        self.votes.note_participant(p.round, p.proposer_index)

    def _on_start(self, event: ev.Start, out: list) -> None:
        if type(event.height) is not int:
            raise TypeError("Start.height must be an int")
        if event.height != self.height or self.started:
            return  # stale or repeated
        self.started = True
        height = self.height
        for i, e in enumerate(self.future):  # a certified block of this height decides at once
            if isinstance(e, ev.CommitReceived) and e.certificate.height == height:
                del self.future[i]
                self._on_commit(e, out)
                return
        self._start_round(0, out)
        # The log may already hold messages of this height: evaluate every round in it.
        for r in self.votes.rounds():
            if self.height != height:
                return
            self._run_rules(r, out)
        if self.height == height:
            self._run_rules(self.round, out)

    # --- recovery after a damaged WAL --------------------------------------------------------

    def resume_event(self) -> ev.Resume | None:
        """The ``Resume`` to feed after WAL replay when the signer record holds messages of
        this height that the replayed state does not reflect (the WAL lost its tail); None
        when the state is whole."""
        if self.signer is None or self.own_index is None or not self.started:
            return None
        st = self.signer.state
        if st.height != self.height:
            return None
        entries = list(st.history)
        if (st.round, st.step) not in {(r, s) for r, s, _, _ in entries}:
            entries.append((st.round, st.step, st.sign_bytes, st.signature))
        missing = tuple(e for e in entries if not self._reflects(e[0], e[1]))
        return ev.Resume(self.height, missing) if missing else None

    def _reflects(self, round: int, step: int) -> bool:
        assert self.own_index is not None
        if (round, step) > (self.round, int(self.step_)):
            return False
        if step == Step.PROPOSE:
            return round in self._proposed
        return self.votes.vote_of(round, step - 1, self.own_index) is not None

    def _own_message(self, entry: Any) -> Vote | Proposal:
        """An own signed message rebuilt from a signer record entry; ValueError if the entry
        is not a signature of this validator at this height."""
        if not isinstance(entry, tuple) or len(entry) != 4:
            raise TypeError("Resume.signed entries must be (round, step, sign_bytes, signature)")
        r, s, sb, sig = entry
        if type(r) is not int or not 0 <= r < limits.rounds_max or s not in (1, 2, 3) \
                or not isinstance(sb, bytes) or len(sb) < 36 or not isinstance(sig, bytes):
            raise ValueError(f"Resume: malformed signed entry at round {r!r}, step {s!r}")
        assert self.own_index is not None
        bh = sb[-32:]
        msg: Vote | Proposal
        if s == Step.PROPOSE:
            pol_round = int.from_bytes(sb[-36:-32], "little", signed=True)
            expected = proposal_sign_bytes(self.chain_id, self.height, r, pol_round, bh)
            msg = Proposal(self.height, r, pol_round, bh, self.own_index, sig)
        else:
            vote_type = VoteType(s - 1)
            expected = vote_sign_bytes(self.chain_id, vote_type, self.height, r, bh)
            msg = Vote(vote_type, self.height, r, bh, self.own_index, sig)
        if sb != expected:
            raise ValueError(f"Resume: entry at round {r}, step {s} is not for this height "
                             "and chain")
        if not self.verify(self.validators.public_key(self.own_index), sb, sig):
            raise ValueError(f"Resume: entry at round {r}, step {s} is not signed by this "
                             "validator")
        return msg

    def _on_resume(self, event: ev.Resume, out: list) -> None:
        if type(event.height) is not int or not isinstance(event.signed, tuple):
            raise TypeError("Resume needs an int height and a tuple of signed entries")
        if event.height != self.height or not self.started or self.signer is None \
                or not event.signed:
            return  # stale: the height is over (or the core is an observer)
        msgs = [self._own_message(e) for e in event.signed]  # all checked before any change
        for msg in msgs:
            if isinstance(msg, Vote):
                counted = self.votes.vote_of(msg.round, msg.type, msg.validator_index)
                if counted is None or counted.block_hash != msg.block_hash:
                    # A different vote already counted under this validator's key was signed
                    # by another holder of the key (a duplicate key is Byzantine): both count
                    # and the pair is reported, as for any equivocation.
                    status, evidence = self.votes.add(msg)
                    if status == CONFLICT and evidence is not None:
                        out.append(ev.ReportEvidence(evidence))
                    out.append(ev.BroadcastVote(msg, self.signer.state))
                continue
            self._proposed.add(msg.round)
            block = self.blocks.get(msg.block_hash)
            if block is not None and msg.block_hash not in self.proposals.get(msg.round, {}):
                self._record_proposal(msg, block, out)
                out.append(ev.BroadcastProposal(msg, block, self.signer.state))
        self._restore_lock(msgs)
        last = max((m.round, int(m.type) + 1 if isinstance(m, Vote) else int(Step.PROPOSE))
                   for m in msgs)
        if last > (self.round, int(self.step_)):
            self.round, self.step_ = last[0], Step(last[1])
            if self.step_ == Step.PROPOSE:  # own proposal signed, the prevote still to come
                self._schedule(Step.PROPOSE, out)
        height = self.height
        for r in sorted({m.round for m in msgs} | {self.round}):
            if self.height != height:
                return
            self._run_rules(r, out)

    def _restore_lock(self, msgs: list) -> None:
        """The latest own non-nil precommit is the lock (l.36 locks exactly when it sends one);
        its value is also the valid value when its block is known."""
        locks = [(m.round, m.block_hash) for m in msgs if isinstance(m, Vote)
                 and m.type == VoteType.PRECOMMIT and m.block_hash != NIL]
        if not locks:
            return
        r, bh = max(locks)
        if r > self.locked_round:
            self.locked_value, self.locked_round = bh, r
        if r > self.valid_round and bh in self.blocks:
            self.valid_value, self.valid_round = bh, r

    def _on_timeout(self, event: ev.TimeoutFired, out: list) -> None:
        h, r, s = event.height, event.round, event.step
        if h != self.height or r != self.round:
            return  # stale: the (height, round) it was scheduled for is over
        if s == Step.PROPOSE and self.step_ == Step.PROPOSE:  # l.57
            self.enter_prevote(NIL, out)
        elif s == Step.PREVOTE and self.step_ == Step.PREVOTE:  # l.61
            self.enter_precommit(NIL, out)
        elif s == Step.PRECOMMIT:  # l.65
            self._start_round(r + 1, out)
        else:
            return
        self._run_rules(self.round, out)

    def _on_value(self, event: ev.ValueReady, out: list) -> None:
        if not isinstance(event.block, bytes):
            raise TypeError("ValueReady.block must be bytes")
        if len(event.block) > limits.block_bytes_max:
            raise ValueError(f"ValueReady.block exceeds {limits.block_bytes_max} bytes")
        if not self.started or (event.height, event.round) != (self.height, self.round) \
                or self.step_ != Step.PROPOSE or self.round in self._proposed \
                or self.own_index != self.proposer(self.height, self.round):
            return  # stale answer to an earlier RequestValue
        self._propose(event.block, -1, out)
        self._run_rules(self.round, out)

    def _on_commit(self, event: ev.CommitReceived, out: list) -> None:
        cert = event.certificate
        if not isinstance(cert, CommitCertificate) or not isinstance(event.block, bytes):
            raise ProtocolError("CommitReceived needs a CommitCertificate and block bytes")
        if type(cert.height) is not int or type(cert.round) is not int:
            raise ProtocolError("certificate height and round must be ints")
        if cert.height < self.height:
            return
        if self.hash_block(event.block) != cert.block_hash:
            raise ProtocolError("block does not match the certificate's block hash")
        vset = self.validators_for(cert.height)
        if vset is None:
            out.append(ev.MessageDropped(f"height {cert.height} has no known validator set "
                                         f"yet"))
            return
        cert.verify(self.chain_id, vset, self._verify_batch)
        if cert.height > self.height or not self.started:
            # Validity of this height needs the previous block committed, i.e. Start.
            self._buffer_future(cert.height, event, out)
            return
        if not self.is_valid(self.height, event.block):
            raise ProtocolError("a certified block is invalid here: the validator set forked")
        self.decide(cert.round, event.block, cert.block_hash, cert, out)
        self._replay_future(out)

    def _verify_batch(self, pks: Sequence[bytes], msgs: Sequence[bytes],
                      sigs: Sequence[bytes]) -> list[bool]:
        return [self.verify(p, m, s) for p, m, s in zip(pks, msgs, sigs)] \
            if self.verify is not crypto.verify else crypto.verify_batch(pks, msgs, sigs)

    # --- the upon rules -------------------------------------------------------------------------

    def _valid(self, block_hash: bytes) -> bool:
        ok = self._valid_cache.get(block_hash)
        if ok is None:
            block = self.blocks.get(block_hash)
            ok = block is not None and bool(self.is_valid(self.height, block))
            if block is not None:
                self._valid_cache[block_hash] = ok
        return ok

    def _run_rules(self, touched_round: int, out: list) -> None:
        """Fire rules until none applies (each firing can enable another)."""
        if not self.started:
            return  # messages are logged before Start; rules wait for it
        height = self.height
        if touched_round > self.round and self.votes.has_one_third_in_round(touched_round):
            self._start_round(touched_round, out)  # l.55 round skip
        rounds = [touched_round, self.round]
        if self._block_learned:
            self._block_learned = False
            rounds = self.votes.rounds()
        while True:
            if any(self._try_decide(r, out) for r in rounds):
                assert self.height == height + 1
                self._replay_future(out)
                return
            if not self._rules_of_current_round(out):
                return

    def _rules_of_current_round(self, out: list) -> bool:
        r, votes = self.round, self.votes
        if self.step_ == Step.PROPOSE:
            for bh, p in self.proposals.get(r, {}).items():
                if p.pol_round == -1:  # l.22
                    ok = self._valid(bh) and (self.locked_round == -1 or self.locked_value == bh)
                    self.enter_prevote(bh if ok else NIL, out)
                    return True
                if votes.has_quorum(p.pol_round, VoteType.PREVOTE, bh):  # l.28
                    ok = self._valid(bh) and (self.locked_round <= p.pol_round
                                              or self.locked_value == bh)
                    self.enter_prevote(bh if ok else NIL, out)
                    return True
        elif self._rules_after_propose(r, out):
            return True
        if ("l47", r) not in self._fired and votes.has_quorum_any(r, VoteType.PRECOMMIT):
            self._fired.add(("l47", r))
            self._schedule(Step.PRECOMMIT, out)
            return True
        return False

    def _rules_after_propose(self, r: int, out: list) -> bool:
        """l.34, l.36 and l.44: the rules that need step >= prevote."""
        votes = self.votes
        if self.step_ == Step.PREVOTE and ("l34", r) not in self._fired \
                and votes.has_quorum_any(r, VoteType.PREVOTE):
            self._fired.add(("l34", r))
            self._schedule(Step.PREVOTE, out)
            return True
        if ("l36", r) in self._fired:
            return False
        qh = votes.quorum_hash(r, VoteType.PREVOTE)
        if qh is not None and qh != NIL and self._valid(qh):
            self._fired.add(("l36", r))
            if self.step_ == Step.PREVOTE:
                self.locked_value, self.locked_round = qh, r
                self.enter_precommit(qh, out)
            self.valid_value, self.valid_round = qh, r
            return True
        if qh == NIL and self.step_ == Step.PREVOTE:  # l.44
            self.enter_precommit(NIL, out)
            return True
        return False

    def _try_decide(self, round: int, out: list) -> bool:
        """l.49: 2f+1 precommits for a known, valid block in ``round``."""
        qh = self.votes.quorum_hash(round, VoteType.PRECOMMIT)
        if qh is None or qh == NIL or not self._valid(qh):
            return False
        sigs = self.votes.signatures_for(round, VoteType.PRECOMMIT, qh)
        cert = CommitCertificate.build(self.height, round, qh, sigs, len(self.validators))
        self.decide(round, self.blocks[qh], qh, cert, out)
        return True

    # --- steps, named as in the paper ------------------------------------------------------------

    def _start_round(self, round: int, out: list) -> None:
        """l.11 StartRound."""
        if round >= limits.rounds_max:
            raise RuntimeError("round counter overflow: consensus cannot make progress")
        self.round = round
        self.step_ = Step.PROPOSE
        self.enter_propose(out)

    def enter_propose(self, out: list) -> None:
        """Step propose of a new round (entered only from l.11 StartRound, which l.55 round
        skip, l.65 timeoutPrecommit and Start call): schedule timeoutPropose (l.21); the
        proposer proposes validValue with validRound (l.15-16) or asks for a value (l.18)."""
        self._schedule(Step.PROPOSE, out)
        if self.own_index is None or self.own_index != self.proposer(self.height, self.round):
            return
        if self.valid_value is not None:
            self._propose(self.blocks[self.valid_value], self.valid_round, out)
        else:
            out.append(ev.RequestValue(self.height, self.round))

    def _propose(self, block: bytes, pol_round: int, out: list) -> None:
        assert self.signer is not None and self.own_index is not None
        bh = self.hash_block(block)
        sb = proposal_sign_bytes(self.chain_id, self.height, self.round, pol_round, bh)
        sig = self._sign(Step.PROPOSE, sb, out)
        self._proposed.add(self.round)
        if sig is None:
            return
        p = Proposal(self.height, self.round, pol_round, bh, self.own_index, sig)
        self._record_proposal(p, block, out)
        out.append(ev.BroadcastProposal(p, block, self.signer.state))

    def enter_prevote(self, block_hash: bytes, out: list) -> None:
        """Prevote ``block_hash`` (NIL for nil) and move to step prevote. Triggered by l.22
        (a proposal without POL), l.28 (a proposal with a POL) and l.57 (timeoutPropose)."""
        if self.step_ != Step.PROPOSE:
            return  # stale guard: already past propose in this round
        self.step_ = Step.PREVOTE
        self._vote(VoteType.PREVOTE, block_hash, out)

    def enter_precommit(self, block_hash: bytes, out: list) -> None:
        """Precommit ``block_hash`` (NIL for nil) and move to step precommit. Triggered by l.36
        (2f+1 prevotes for a valid value: lock it), l.44 (2f+1 nil prevotes) and l.61
        (timeoutPrevote)."""
        if self.step_ != Step.PREVOTE:
            return  # stale guard
        self.step_ = Step.PRECOMMIT
        self._vote(VoteType.PRECOMMIT, block_hash, out)

    def _vote(self, vote_type: VoteType, block_hash: bytes, out: list) -> None:
        if self.signer is None or self.own_index is None:
            return
        sb = vote_sign_bytes(self.chain_id, vote_type, self.height, self.round, block_hash)
        step = Step.PREVOTE if vote_type == VoteType.PREVOTE else Step.PRECOMMIT
        sig = self._sign(step, sb, out)
        if sig is None:
            return
        vote = Vote(vote_type, self.height, self.round, block_hash, self.own_index, sig)
        self.votes.add(vote)
        out.append(ev.BroadcastVote(vote, self.signer.state))

    def _sign(self, step: Step, sign_bytes: bytes, out: list) -> bytes | None:
        assert self.signer is not None
        try:
            return self.signer.sign(self.height, self.round, int(step), sign_bytes)
        except DoubleSignRefused as e:
            out.append(ev.SignRefused(self.height, self.round, step, str(e)))
            return None

    def decide(self, round: int, block: bytes, block_hash: bytes, cert: CommitCertificate,
               out: list) -> None:
        """l.49: record the decision and move to the next height, which waits for Start.
        Triggered by 2f+1 precommits for a known valid value in any round, or by a verified
        commit certificate from a peer (catch-up)."""
        out.append(ev.Decide(self.height, round, block, block_hash, cert))
        self.started = False  # until the driver has committed the block and sends Start
        self._reset_height(self.height + 1)

    def _replay_future(self, out: list) -> None:
        """Feed buffered messages of the new height back in (and keep later ones)."""
        pending, self.future = self.future, []
        for event in pending:
            h = _event_height(event)
            if h < self.height:
                continue
            if h > self.height or isinstance(event, ev.CommitReceived):
                self.future.append(event)  # a commit waits for Start (see _on_commit)
                continue
            try:
                out.extend(self.step(event))
            except ProtocolError as e:  # checked when buffered; only validity can differ now
                out.append(ev.MessageDropped(f"buffered message rejected: {e}"))

    def _schedule(self, step: Step, out: list) -> None:
        out.append(ev.ScheduleTimeout(self.height, self.round, step,
                                      self.timeouts.duration_ms(step, self.round)))

    @property
    def step_name(self) -> str:
        return self.step_.name.lower()


def _event_height(event: ev.Event) -> int:
    if isinstance(event, ev.VoteReceived):
        return event.vote.height
    if isinstance(event, ev.ProposalReceived):
        return event.proposal.height
    if isinstance(event, ev.CommitReceived):
        return event.certificate.height
    raise AssertionError(f"unexpected buffered event {event!r}")
