"""Block validity: the ``is_valid`` the node injects into the consensus core.

A block at height h is valid when: chain id and height are right and it follows our tip (parent
hash, and the app hash of the state after the parent); it is within the configured size limits;
its parent certificate (``last_commit``) is for the parent and verifies (one batch
verification); the transaction root matches its transactions; no transaction appears twice or is
already committed; every transaction signature verifies (only those this node has not verified at
admission are checked, in one batch); every transaction's (sender, nonce) is fresh against the
committed nonce records and the block's earlier transactions (``engine/nonces.py``: replay
protection that does not depend on remembering old ids); its evidence is valid, recent and not
yet committed; and the application's ``process_proposal`` (when it has one) accepts it.

Every cache here is bounded (engine/limits.py) and emptied at each commit.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from engine import consensus as cs
from engine import limits
from engine._txcodec import senders_and_nonces
from engine.block import Block, Header, block_id, check_body, header_size
from engine.errors import ProtocolError
from engine.mempool import Mempool
from engine.node.ports import Counters
from engine.node.stagecpu import no_stage
from engine.node.tip import ChainTip
from engine.node.valset import ValidatorHistory
from engine.nonces import NonceTable
from engine.suite import DEFAULT as _DEFAULT_SUITE
from engine.suite import Suite

log = logging.getLogger("engine.node.validity")

__all__ = ["BlockValidator", "block_hash"]


def block_hash(raw: bytes, suite: Suite = _DEFAULT_SUITE) -> bytes:
    """The block id (the suite's hash of the header, the body checked against it;
    ProtocolError if not)."""
    return block_id(raw, suite)


class BlockValidator:
    def __init__(self, *, chain_id: bytes, validators: cs.ValidatorSet, tip: ChainTip,
                 mempool: Mempool, find_committed: Callable[[list[bytes]], list[bool]],
                 evidence_committed: Callable[[bytes], bool], block_txs_max: int,
                 block_bytes_max: int, counters: Counters,
                 app_accepts: Callable[[int, list[bytes], list[bytes]], bool] | None = None,
                 nonces: NonceTable | None = None, suite: Suite = _DEFAULT_SUITE,
                 history: ValidatorHistory | None = None):
        self.chain_id = chain_id
        self.suite = suite
        self.validators = validators
        #: Which set signs each height (None: ``validators`` signs every height).
        self.history = history
        self.tip = tip
        self.mempool = mempool
        self.find_committed = find_committed
        self.evidence_committed = evidence_committed
        self.block_txs_max = block_txs_max
        self.block_bytes_max = block_bytes_max
        self.counters = counters
        #: The application's ``process_proposal`` (engine/node/apphooks.py), asked last.
        self.app_accepts = app_accepts
        self.nonces = nonces
        self._verdicts: dict[bytes, bool] = {}
        self._decoded: dict[bytes, tuple[Block, list[bytes]]] = {}
        #: Encoded block -> its id. The core, the router and the producer ask for the id of the
        #: same block several times per height; each miss decodes the block and hashes every
        #: transaction, a hit on the same bytes object costs a dict lookup (CPython keeps a
        #: bytes object's hash).
        self._ids: dict[bytes, bytes] = {}
        self._certificates_ok: set[bytes] = set()
        #: Thread CPU by stage (engine/node/stagecpu.py): checking proposed blocks.
        self.stage_cpu: Callable[[str, float], None] = no_stage

    def validator_hashes(self, height: int) -> tuple[bytes, bytes]:
        """(validators_hash, next_validators_hash) that a block at ``height`` must carry."""
        hash_fn = self.suite.hash
        if self.history is None:
            h = self.validators.hash(hash_fn)
            return h, h
        return (self.history.set_at(height).hash(hash_fn),
                self.history.set_at(height + 1).hash(hash_fn))

    def set_at(self, height: int) -> cs.ValidatorSet:
        """The set that signs ``height`` (ValueError when not known)."""
        return self.validators if self.history is None else self.history.set_at(height)

    def block_hash(self, raw: bytes) -> bytes:
        """The block id in this chain's suite (the core's ``hash_block``): the hash of the
        header once the body is checked against it (ProtocolError otherwise, not cached).
        The decoded block and its transaction ids are kept for :meth:`decoded`."""
        key = self._ids.get(raw)
        if key is not None:
            return key
        b = Block.decode(raw)
        ids = self.suite.hash_many(list(b.txs)) if b.txs else []
        check_body(b, ids, self.suite)
        key = self.suite.hash(raw[:header_size(len(b.chain_id))])
        self._keep_block(raw, key, b, ids)
        return key

    def remember_block(self, raw: bytes, key: bytes, block: Block, tx_ids: list[bytes]) -> None:
        """Keep what :meth:`block_hash` and :meth:`decoded` would compute for ``raw``, from a
        block assembled out of checked parts (engine/node/compact.py: ``block`` as
        ``Block.decode(raw)`` gives it, ``tx_ids`` the hashes of its transactions, which are
        not hashed again here), so they need not parse and hash the whole block again. Kept
        only when ``raw``'s header hashes to ``key``, is the header ``block`` carries, and
        commits to ``block``'s body and ``tx_ids``; otherwise nothing is kept and
        ``block_hash`` finds and reports the fault as for any block."""
        n = header_size(len(block.chain_id))
        try:
            header = Header.decode(raw[:n])
            if self.suite.hash(raw[:n]) != key or block.decoded_header(self.suite) != header:
                return
            check_body(block, tx_ids, self.suite)
        except (ProtocolError, ValueError):
            return
        self._keep_block(raw, key, block, list(tx_ids))

    def _keep_block(self, raw: bytes, key: bytes, block: Block, tx_ids: list[bytes]) -> None:
        """Cache a checked block's id by its bytes and its decoded form by its id."""
        if len(self._ids) >= limits.decoded_blocks_cached_max:
            self._ids.clear()
        self._ids[raw] = key
        self._keep_decoded(key, (block, tx_ids))

    def is_valid(self, height: int, raw: bytes) -> bool:
        t0 = time.thread_time()
        try:
            return self._is_valid(height, raw)
        finally:
            self.stage_cpu("validity", time.thread_time() - t0)

    def _is_valid(self, height: int, raw: bytes) -> bool:
        try:
            key = self.block_hash(raw)
        except ProtocolError as e:
            # Not cached: the id of a body that does not match its header is not its own.
            log.warning("invalid block at height %d: %s", height, e)
            self.counters.add("invalid_block")
            return False
        ok = self._verdicts.get(key)
        if ok is None:
            try:
                self._check(height, raw, key)
                ok = True
            except (ProtocolError, ValueError) as e:
                log.warning("invalid block at height %d: %s", height, e)
                self.counters.add("invalid_block")
                ok = False
            self.remember(key, ok)
        return ok

    def remember(self, key: bytes, ok: bool) -> None:
        """Record a verdict (the node's own proposal is valid by construction)."""
        if len(self._verdicts) >= limits.valid_blocks_cached_max:
            self._verdicts.clear()
        self._verdicts[key] = ok

    def decoded(self, key: bytes, raw: bytes) -> tuple[Block, list[bytes]]:
        """A block and its transaction ids, decoded once between validation and commit."""
        hit = self._decoded.get(key)
        if hit is not None:
            return hit
        b = Block.decode(raw)
        out = (b, self.suite.hash_many(list(b.txs)) if b.txs else [])
        check_body(b, out[1], self.suite)
        self._keep_decoded(key, out)
        return out

    def _keep_decoded(self, key: bytes, decoded: tuple[Block, list[bytes]]) -> None:
        if len(self._decoded) >= limits.decoded_blocks_cached_max:
            self._decoded.clear()
        self._decoded[key] = decoded

    def clear(self) -> None:
        """A block was committed: every verdict was about the previous tip."""
        self._verdicts.clear()
        self._decoded.clear()
        self._ids.clear()

    def _check(self, height: int, raw: bytes, key: bytes) -> None:
        tip = self.tip
        b, ids = self.decoded(key, raw)
        if b.chain_id != self.chain_id or b.height != height:
            raise ProtocolError(f"block is for {b.chain_id!r} height {b.height}")
        if height != tip.height + 1:
            raise ProtocolError(f"block {height} does not follow our tip {tip.height}")
        if b.parent_hash != tip.block_hash:
            raise ProtocolError("parent hash is not our last block")
        if b.app_hash != tip.app_hash:
            raise ProtocolError("app hash differs from our state after the parent")
        if len(b.txs) > self.block_txs_max or len(raw) > self.block_bytes_max + (1 << 20):
            raise ProtocolError("block exceeds the configured size limits")
        if (b.validators_hash, b.next_validators_hash) != self.validator_hashes(height):
            raise ProtocolError("the block names another validator set")
        self._check_last_commit(height, b.last_commit)
        if len(set(ids)) != len(ids):
            raise ProtocolError("a transaction appears twice")
        # A pooled transaction is known to be uncommitted (commits leave the pool), so only
        # the others need the store's index: one batched lookup. With nonces enforced none:
        # a committed transaction consumed its (sender, nonce), which check_block refuses.
        if self.nonces is None:
            unknown = [t for t in ids if t not in self.mempool]
            if unknown and any(self.find_committed(unknown)):
                raise ProtocolError("the block holds an already committed transaction")
        if ids and not all(self.mempool.verify_block_txs(list(b.txs), ids)):
            raise ProtocolError("a transaction signature does not verify")
        if self.nonces is not None and b.txs:
            # Signatures verified: every envelope has the suite's header.
            stale = self.nonces.check_block(senders_and_nonces(list(b.txs)), block_id=key)
            if stale is not None:
                raise ProtocolError(f"transaction {stale[0]} has a {stale[1]} nonce")
        for e in b.evidence:
            ev = cs.DuplicateVoteEvidence.decode(e)
            if not height - limits.evidence_age_heights_max <= ev.height < height \
                    or self.evidence_committed(self.suite.hash(e)):
                raise ProtocolError("evidence is too old, from the future or already committed")
            ev.verify(self.chain_id, self.set_at(ev.height), self.suite.verify)
        if self.app_accepts is not None and not self.app_accepts(height, list(b.txs), ids):
            raise ProtocolError("the application rejected the block (process_proposal)")

    def _check_last_commit(self, height: int, raw: bytes) -> None:
        if height == 1:
            if raw:
                raise ProtocolError("block 1 cannot carry a last commit")
            return
        if raw in self._certificates_ok:
            return
        parent_set = self.set_at(height - 1)
        cert = cs.CommitCertificate.decode(raw, len(parent_set))
        if cert.height != height - 1 or cert.block_hash != self.tip.block_hash:
            raise ProtocolError("last commit is not for the parent block")
        cert.verify(self.chain_id, parent_set, self.suite.verify_batch)
        if len(self._certificates_ok) >= limits.certificates_cached_max:
            self._certificates_ok.clear()
        self._certificates_ok.add(raw)
