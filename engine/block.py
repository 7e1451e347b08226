"""The block format the node proposes, validates, stores and syncs (all integers little-endian).

Header::

    version u8 = 1 | u8 len(chain_id) | chain_id | height u64 | time_ms u64
    | parent_hash 32 (zero at height 1) | app_hash 32 (application state after height - 1)
    | tx_root 32 (Merkle root over the transaction ids, docs/formats.md)
    | proposer_index u32 | tx_count u32
    | last_commit_len u32 | last_commit (commit certificate of height - 1; empty at height 1)
    | evidence_count u16 | (u32 len | duplicate-vote evidence) * evidence_count

Block = header | (u32 len | envelope) * tx_count. The block hash (the consensus value id) is
the chain's hash (BLAKE3, or SM3 on an ``sm2-sm3`` chain) of the whole block, so it commits to every transaction; ``tx_root`` is there for
inclusion proofs, and the store checks that it matches the transactions on save.

Carrying ``app_hash`` of the parent state makes every validator vote on the result of executing
the previous block: a node whose application diverged rejects the next proposal instead of
silently forking. ``decode`` raises ProtocolError on anything malformed (blocks come from peers).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from engine.net.errors import ProtocolError
from engine.suite import Suite, get_suite

VERSION = 1
_FIXED = struct.Struct("<QQ32s32s32sII")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")

__all__ = ["Block", "tx_root_of"]


def tx_root_of(tx_ids: list[bytes], suite: Suite | None = None) -> bytes:
    """The Merkle root over the transaction ids, in the chain's suite (engine/suite.py)."""
    return get_suite(suite).tx_root(tx_ids)


@dataclass(frozen=True)
class Block:
    chain_id: bytes
    height: int
    time_ms: int
    parent_hash: bytes
    app_hash: bytes
    tx_root: bytes
    proposer_index: int
    last_commit: bytes
    evidence: tuple[bytes, ...]
    txs: tuple[bytes, ...]

    @classmethod
    def make(cls, *, chain_id: bytes, height: int, time_ms: int, parent_hash: bytes,
             app_hash: bytes, proposer_index: int, last_commit: bytes,
             evidence: list[bytes], txs: list[bytes],
             tx_ids: list[bytes] | None = None, suite: Suite | None = None) -> Block:
        s = get_suite(suite)
        ids = tx_ids if tx_ids is not None else s.hash_many(txs) if txs else []
        return cls(chain_id, height, time_ms, parent_hash, app_hash, tx_root_of(ids, s),
                   proposer_index, last_commit, tuple(evidence), tuple(txs))

    def header(self) -> bytes:
        parts = [bytes([VERSION, len(self.chain_id)]), self.chain_id,
                 _FIXED.pack(self.height, self.time_ms, self.parent_hash, self.app_hash,
                             self.tx_root, self.proposer_index, len(self.txs)),
                 _U32.pack(len(self.last_commit)), self.last_commit,
                 _U16.pack(len(self.evidence))]
        for e in self.evidence:
            parts += [_U32.pack(len(e)), e]
        return b"".join(parts)

    def encode(self) -> bytes:
        return self.header() + b"".join(_U32.pack(len(t)) + t for t in self.txs)

    @classmethod
    def decode(cls, data: bytes, *, header_only: bool = False) -> Block:
        """Parse a block (or, with ``header_only``, a stored header whose txs are kept apart)."""
        view = memoryview(data)
        try:
            if view[0] != VERSION:
                raise ProtocolError(f"block version {view[0]} is not {VERSION}")
            n = view[1]
            off = 2
            chain_id = bytes(view[off:off + n])
            off += n
            height, time_ms, parent, app, root, proposer, count = _FIXED.unpack_from(view, off)
            off += _FIXED.size
            commit, off = _chunk(view, off)
            (n_ev,) = _U16.unpack_from(view, off)
            off += 2
            evidence = []
            for _ in range(n_ev):
                e, off = _chunk(view, off)
                evidence.append(e)
            txs: list[bytes] = []
            if not header_only:
                if count > (len(view) - off) // 5:  # each tx needs at least 5 bytes
                    raise ProtocolError(f"block claims {count} transactions, too many for its size")
                for _ in range(count):
                    t, off = _chunk(view, off)
                    if not t:
                        raise ProtocolError("empty transaction in block")
                    txs.append(t)
            if off != len(view):
                raise ProtocolError(f"{len(view) - off} trailing bytes after the block")
        except (struct.error, IndexError) as e:
            raise ProtocolError(f"truncated block: {e}") from None
        if len(chain_id) != n:
            raise ProtocolError("truncated chain id")
        block = cls(chain_id, height, time_ms, parent, app, root, proposer, commit,
                    tuple(evidence), tuple(txs))
        object.__setattr__(block, "_count", count)
        return block

    @property
    def tx_count(self) -> int:
        return getattr(self, "_count", len(self.txs))


def _chunk(view: memoryview, off: int) -> tuple[bytes, int]:
    (n,) = _U32.unpack_from(view, off)
    off += 4
    if off + n > len(view):
        raise ProtocolError(f"a {n}-byte field runs past the end of the block")
    return bytes(view[off:off + n]), off + n


def with_txs(header_block: Block, txs: list[bytes]) -> Block:
    """Re-assemble a stored block from its header and its transactions."""
    return Block(header_block.chain_id, header_block.height, header_block.time_ms,
                 header_block.parent_hash, header_block.app_hash, header_block.tx_root,
                 header_block.proposer_index, header_block.last_commit, header_block.evidence,
                 tuple(txs))
