"""The light client: follow a chain from one trusted header, verifying headers by bisection and
cross-checking them against witnesses.

    from engine.light import LightClient, RpcSource
    lc = LightClient.from_trusted_hash(RpcSource("http://127.0.0.1:26657"),
                                       trusted_height=1, trusted_hash=bytes.fromhex("..."))
    lb = lc.verify_to(5000)          # a LightBlock whose header is now trusted
    lc.detect_fork(lb.height)        # raises ForkDetected when a witness proves a fork

``verify_to`` (skipping, CometBFT's bisection) tries the target straight from the latest trusted
header below it; when the target's signers hold no more than 1/3 of the trusted power it fetches
the middle height, verifies that first, and retries from there, so a chain whose set changed
slowly needs a few headers, not every one. ``verify_sequential`` walks every height.
Every verified block is kept (bounded by ``trusted_blocks_max``) as a new root of trust.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.consensus.types import check_chain_id
from engine.errors import ProtocolError
from engine.light.block import LightBlock
from engine.light.sources import LightBlockSource
from engine.light.verify import (
    LightClientError,
    NotEnoughTrust,
    VerificationFailed,
    VerifyBatch,
    check_trust_fresh,
    verify_certificate,
    verify_light_block,
)

__all__ = ["ForkDetected", "ForkEvidence", "LightClient", "conflict_evidence"]

#: A week: the window in which a trusted header may start a verification (the chain's
#: validators must stay accountable at least this long; CometBFT defaults to two weeks with
#: three weeks of unbonding).
TRUSTING_PERIOD_MS_DEFAULT = 7 * 24 * 3600 * 1000
#: How far ahead of the local clock a header's time may be.
CLOCK_DRIFT_MS_DEFAULT = 10_000
#: Verified blocks kept as roots of trust.
TRUSTED_BLOCKS_MAX = 1000
#: Bisection never fetches more headers than this for one target.
BISECTION_STEPS_MAX = 512


@dataclass(frozen=True)
class ForkEvidence:
    """Two light blocks of the same chain and height, both signed by more than 2/3 of their
    set, with different hashes: proof that validators signed two conflicting headers (those
    who signed both equivocated). ``primary`` is what the client was told first."""

    height: int
    primary: LightBlock
    witness: LightBlock
    witness_source: str

    def double_signers(self) -> list[bytes]:
        """Public keys that signed both headers (they equivocated, whatever else happened)."""
        a = {self.primary.validators.public_key(i)
             for i in self.primary.certificate.signer_indices()}
        return sorted(self.witness.validators.public_key(i)
                      for i in self.witness.certificate.signer_indices()
                      if self.witness.validators.public_key(i) in a)

    def to_json(self) -> dict[str, Any]:
        return {"height": self.height, "primary": self.primary.to_json(),
                "witness": self.witness.to_json(), "witness_source": self.witness_source,
                "double_signers": [k.hex() for k in self.double_signers()]}


class ForkDetected(LightClientError):
    """A witness holds a validly signed header that conflicts with the primary's."""

    reason = "fork_detected"

    def __init__(self, evidence: ForkEvidence):
        super().__init__(f"fork at height {evidence.height}: primary has "
                         f"{evidence.primary.hash().hex()}, witness {evidence.witness_source} "
                         f"has {evidence.witness.hash().hex()}, both validly signed")
        self.evidence = evidence


def conflict_evidence(chain_id: bytes, a: LightBlock, b: LightBlock, witness_source: str = "",
                      verify_batch: VerifyBatch | None = None) -> ForkEvidence | None:
    """ForkEvidence when ``a`` and ``b`` are two different, each validly certified headers of
    ``chain_id`` at the same height; None when they are the same header. Raises
    VerificationFailed when either is not validly certified (then it proves nothing)."""
    if a.height != b.height:
        raise ValueError(f"the light blocks are of heights {a.height} and {b.height}")
    if a.suite is not b.suite:
        raise VerificationFailed(f"the light blocks are of the {a.suite.name} and the "
                                 f"{b.suite.name} suites: not one chain")
    if a.hash() == b.hash():
        return None
    for lb in (a, b):
        if lb.header.chain_id != chain_id:
            raise VerificationFailed(f"light block is for chain {lb.header.chain_id!r}")
        try:
            lb.check_basic()
        except ProtocolError as e:
            raise VerificationFailed(str(e)) from None
        verify_certificate(chain_id, lb, None, verify_batch)
    return ForkEvidence(a.height, a, b, witness_source)


class LightClient:
    """Verifies headers of ``chain_id`` from a trusted light block, fetching from ``primary``
    and cross-checking with ``witnesses`` (:class:`engine.light.sources.LightBlockSource`).
    The chain's crypto suite is the trusted block's (``trusted.suite``): every light block
    verified from it must be of that suite (sources decode with theirs:
    ``RpcSource(url, suite=...)``), and certificates are checked with its signatures unless
    ``verify_batch`` is given."""

    def __init__(self, primary: LightBlockSource, trusted: LightBlock, *,
                 witnesses: Sequence[LightBlockSource] = (),
                 trusting_period_ms: int = TRUSTING_PERIOD_MS_DEFAULT,
                 clock_drift_ms: int = CLOCK_DRIFT_MS_DEFAULT,
                 now_ms: Callable[[], int] | None = None,
                 verify_batch: VerifyBatch | None = None,
                 trusted_blocks_max: int = TRUSTED_BLOCKS_MAX):
        if not isinstance(trusted, LightBlock):
            raise TypeError(f"trusted must be a LightBlock, not {type(trusted).__name__}")
        for name, value in (("trusting_period_ms", trusting_period_ms),
                            ("clock_drift_ms", clock_drift_ms),
                            ("trusted_blocks_max", trusted_blocks_max)):
            if type(value) is not int or value <= 0:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        self.chain_id = check_chain_id(trusted.header.chain_id)
        self.primary = primary
        self.witnesses = list(witnesses)
        self.trusting_period_ms = trusting_period_ms
        self.clock_drift_ms = clock_drift_ms
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._verify_batch = verify_batch
        self.trusted_blocks_max = trusted_blocks_max
        try:
            trusted.check_basic()
        except ProtocolError as e:
            raise VerificationFailed(f"trusted block: {e}") from None
        self._trusted: dict[int, LightBlock] = {trusted.height: trusted}
        #: Light blocks verified in the last ``verify_to`` (a measure of the bisection's work).
        self.verified_count = 0
        #: Witnesses dropped by ``detect_fork``: (name, why).
        self.faulty_witnesses: list[tuple[str, str]] = []

    @classmethod
    def from_trusted_hash(cls, primary: LightBlockSource, trusted_height: int,
                          trusted_hash: bytes, **options: Any) -> LightClient:
        """Fetch the light block at ``trusted_height`` from ``primary`` and trust it if its
        header hash is ``trusted_hash`` (obtained out of band: a block explorer, a friend, the
        genesis) and its certificate is validly signed by its own set."""
        if type(trusted_height) is not int or trusted_height < 1:
            raise ValueError(f"trusted_height must be a positive int, not {trusted_height!r}")
        if not isinstance(trusted_hash, bytes) or len(trusted_hash) != 32:
            raise ValueError("trusted_hash must be 32 bytes")
        lb = primary.light_block(trusted_height)
        if lb.height != trusted_height:
            raise VerificationFailed(f"asked for height {trusted_height}, got {lb.height}")
        if lb.hash() != trusted_hash:
            raise VerificationFailed(f"the header of height {trusted_height} has hash "
                                     f"{lb.hash().hex()}, not the trusted hash "
                                     f"{trusted_hash.hex()}")
        client = cls(primary, lb, **options)
        check_trust_fresh(lb, client._now_ms(), client.trusting_period_ms)
        verify_certificate(client.chain_id, lb, None, client._verify_batch)
        return client

    # ---- trusted state ----

    @property
    def latest_trusted(self) -> LightBlock:
        return self._trusted[max(self._trusted)]

    def trusted_block(self, height: int) -> LightBlock | None:
        return self._trusted.get(height)

    def trusted_heights(self) -> list[int]:
        """The heights of the verified (trusted) blocks kept, in order."""
        return sorted(self._trusted)

    def _trust(self, lb: LightBlock) -> None:
        self._trusted[lb.height] = lb
        while len(self._trusted) > self.trusted_blocks_max:
            del self._trusted[min(self._trusted)]

    def _anchor_below(self, height: int) -> LightBlock:
        below = [h for h in self._trusted if h < height]
        if not below:
            raise VerificationFailed(f"height {height} is not after any trusted header "
                                     f"(lowest trusted: {min(self._trusted)}); verifying "
                                     "backwards is not supported")
        return self._trusted[max(below)]

    # ---- verification ----

    def verify(self, untrusted: LightBlock) -> LightBlock:
        """Verify a light block given by the caller (e.g. brought by a relayer) from the latest
        trusted header below it, with no fetching: a skip needs more than 1/3 trusted power
        (NotEnoughTrust otherwise: bring intermediate blocks first)."""
        if not isinstance(untrusted, LightBlock):
            raise TypeError(f"untrusted must be a LightBlock, not {type(untrusted).__name__}")
        known = self._trusted.get(untrusted.height)
        if known is not None:
            if known.hash() != untrusted.hash():
                raise VerificationFailed(f"height {untrusted.height} conflicts with the "
                                         "trusted header")
            return known
        self._verify_step(self._anchor_below(untrusted.height), untrusted)
        return untrusted

    def _verify_step(self, trusted: LightBlock, untrusted: LightBlock) -> None:
        verify_light_block(self.chain_id, trusted, untrusted, now_ms=self._now_ms(),
                           trusting_period_ms=self.trusting_period_ms,
                           clock_drift_ms=self.clock_drift_ms, verify_batch=self._verify_batch)
        self.verified_count += 1
        self._trust(untrusted)

    def _fetch(self, height: int) -> LightBlock:
        lb = self.primary.light_block(height)
        if lb.height != height:
            raise VerificationFailed(f"asked the primary for height {height}, got {lb.height}")
        return lb

    def _begin(self, height: int) -> LightBlock | None:
        """Check ``height``, reset the count of verified headers; the light block when
        ``height`` is trusted already."""
        if type(height) is not int or height < 1:
            raise ValueError(f"height must be a positive int, not {height!r}")
        self.verified_count = 0
        return self._trusted.get(height)

    def verify_to(self, height: int) -> LightBlock:
        """Verify the header at ``height`` by skipping (bisection) and return its light block."""
        known = self._begin(height)
        if known is not None:
            return known
        pending = [self._fetch(height)]
        for _ in range(BISECTION_STEPS_MAX):
            target = pending[-1]
            anchor = self._anchor_below(target.height)
            try:
                self._verify_step(anchor, target)
            except NotEnoughTrust:
                middle = (anchor.height + target.height) // 2
                if middle == anchor.height:  # adjacent blocks never need trust overlap
                    raise
                pending.append(self._fetch(middle))
                continue
            pending.pop()
            if not pending:
                return target
        raise VerificationFailed(f"bisection to height {height} took over "
                                 f"{BISECTION_STEPS_MAX} steps")

    def verify_sequential(self, height: int) -> LightBlock:
        """Verify every header from the latest trusted one below ``height`` up to it."""
        known = self._begin(height)
        if known is not None:
            return known
        anchor = self._anchor_below(height)
        for h in range(anchor.height + 1, height + 1):
            lb = self._fetch(h)
            self._verify_step(anchor, lb)
            anchor = lb
        return anchor

    # ---- witnesses ----

    def detect_fork(self, height: int) -> None:
        """Compare the trusted header at ``height`` with every witness's. A witness with the
        same header agrees; one whose different header verifies from this client's trust (the
        same rules, with the witness as the source) proves a fork: ForkDetected carries the
        ForkEvidence with both signed headers. A witness whose header does not verify is
        faulty and is dropped from ``witnesses`` (listed in ``faulty_witnesses``)."""
        mine = self._trusted.get(height)
        if mine is None:
            raise ValueError(f"height {height} is not verified yet")
        for w in list(self.witnesses):
            try:
                theirs = w.light_block(height)
            except LightClientError as e:
                self.faulty_witnesses.append((w.name, str(e)))
                self.witnesses.remove(w)
                continue
            if theirs.hash() == mine.hash():
                continue
            shadow = LightClient(w, self._anchor_below(height),
                                 trusting_period_ms=self.trusting_period_ms,
                                 clock_drift_ms=self.clock_drift_ms, now_ms=self._now_ms,
                                 verify_batch=self._verify_batch)
            try:
                shadow.verify_to(height)
            except LightClientError as e:
                self.faulty_witnesses.append((w.name, f"its conflicting header fails: {e}"))
                self.witnesses.remove(w)
                continue
            evidence = conflict_evidence(self.chain_id, mine, theirs, w.name, self._verify_batch)
            assert evidence is not None  # the hashes differ
            raise ForkDetected(evidence)
