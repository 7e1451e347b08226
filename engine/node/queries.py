"""The node's read API (for RPC and embedding): blocks, transactions, validators, and waits.

:class:`RecentBlocks` keeps the tx ids of the last ``limits.recent_blocks_max`` commits (so
``GET /block`` and ``GET /blocks`` need not hash a block's transactions again); :class:`Waiters`
holds the futures of ``wait_for_height`` and ``wait_for_tx``, woken by the committer.
"""
from __future__ import annotations

import asyncio
from typing import Any

from engine import consensus as cs
from engine import limits
from engine.app import Event
from engine.block import Block
from engine.config import Genesis
from engine.node.events import result_json, unpack_result
from engine.node.tip import ChainTip
from engine.node.valset import ValidatorHistory
from engine.rpc.api import TxInfo
from engine.store import Store

__all__ = ["NodeQueries", "RecentBlocks", "Waiters"]


class RecentBlocks:
    def __init__(self) -> None:
        self._blocks: dict[int, tuple[bytes, list[bytes]]] = {}

    def add(self, height: int, block_hash: bytes, tx_ids: list[bytes]) -> None:
        self._blocks[height] = (block_hash, tx_ids)
        if len(self._blocks) > limits.recent_blocks_max:
            del self._blocks[min(self._blocks)]

    def get(self, height: int) -> tuple[bytes, list[bytes]] | None:
        return self._blocks.get(height)


class Waiters:
    def __init__(self) -> None:
        self.heights: list[tuple[int, asyncio.Future]] = []
        self.txs: dict[bytes, list[asyncio.Future]] = {}

    def committed(self, height: int, tx_ids: list[bytes]) -> None:
        keep = []
        for h, fut in self.heights:
            if h <= height:
                if not fut.done():
                    fut.set_result(height)
            else:
                keep.append((h, fut))
        self.heights = keep
        if self.txs:
            for i, tx_id in enumerate(tx_ids):
                for fut in self.txs.pop(tx_id, ()):
                    if not fut.done():
                        fut.set_result((height, i))

    def cancel_all(self) -> None:
        for _, fut in self.heights:
            fut.cancel()
        for futs in self.txs.values():
            for fut in futs:
                fut.cancel()


class NodeQueries:
    """Answers from the store and the tip; waits through :class:`Waiters`."""

    def __init__(self, *, store: Store, tip: ChainTip, genesis: Genesis,
                 validators: cs.ValidatorSet, recent: RecentBlocks, waiters: Waiters,
                 history: ValidatorHistory | None = None):
        self.store = store
        self.tip = tip
        self.genesis = genesis
        self.validators = validators
        self.history = history
        self.recent = recent
        self.waiters = waiters

    async def wait_for_height(self, height: int, timeout_s: float | None = None) -> int:
        if self.tip.height >= height:
            return self.tip.height
        fut = asyncio.get_running_loop().create_future()
        self.waiters.heights.append((height, fut))
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            # Timed-out waits would otherwise stay listed until their height comes.
            self.waiters.heights = [(h, f) for h, f in self.waiters.heights if not f.done()]
            raise

    async def wait_for_tx(self, tx_id: bytes, timeout_s: float) -> TxInfo | None:
        info = self.tx_info(tx_id)
        if info is not None:
            return info
        fut = asyncio.get_running_loop().create_future()
        self.waiters.txs.setdefault(tx_id, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            waiting = self.waiters.txs.get(tx_id)
            if waiting and fut in waiting:
                waiting.remove(fut)
                if not waiting:
                    del self.waiters.txs[tx_id]
        return self.tx_info(tx_id)

    def block_info(self, height: int) -> dict[str, Any] | None:
        stored = self.store.load_block(height)
        if stored is None:
            return None
        b = Block.decode(stored.header, header_only=True)
        cert = cs.CommitCertificate.decode(stored.certificate,
                                           len(self.validator_set_at(height)))
        return {
            "height": stored.height, "hash": stored.block_hash.hex(),
            "parent_hash": stored.parent_hash.hex(), "time_ms": b.time_ms,
            "app_hash": b.app_hash.hex(), "result_app_hash": stored.app_hash.hex(),
            "tx_root": stored.tx_root.hex(), "proposer_index": b.proposer_index,
            "num_txs": len(stored.txs),
            "tx_ids": [t.hex() for t in self._tx_ids(height, stored.txs)],
            "evidence": len(b.evidence),
            "certificate": {"round": cert.round, "signers": cert.signer_indices()},
        }

    def _tx_ids(self, height: int, txs: list[bytes]) -> list[bytes]:
        """The ids of a stored block's transactions: kept from the commit for recent blocks,
        hashed again (one batch call) for older ones."""
        recent = self.recent.get(height)
        if recent is not None:
            return recent[1]
        return self.store.suite.hash_many(txs) if txs else []

    async def wait_for_blocks(self, from_height: int, timeout_s: float,
                              count_max: int = limits.blocks_per_answer_max
                              ) -> list[dict[str, Any]]:
        if type(from_height) is not int or from_height < 1:
            raise ValueError(f"from_height must be a positive int, not {from_height!r}")
        if self.tip.height < from_height:
            try:
                await self.wait_for_height(from_height, timeout_s)
            except asyncio.TimeoutError:
                return []
        out = []
        for h in range(from_height, min(self.tip.height, from_height + count_max - 1) + 1):
            recent = self.recent.get(h)
            if recent is not None:
                block_hash, ids = recent
            else:
                stored = self.store.load_block(h)
                if stored is None:  # pruned
                    continue
                block_hash, ids = stored.block_hash, self._tx_ids(h, stored.txs)
            out.append({"height": h, "hash": block_hash.hex(), "num_txs": len(ids),
                        "tx_ids": [t.hex() for t in ids]})
        return out

    def tx_info(self, tx_id: bytes) -> TxInfo | None:
        loc = self.store.find_tx(tx_id)
        stored = self.store.load_block(loc.height) if loc is not None else None
        if loc is None or stored is None:
            return None
        # One block load serves the proof (against the stored tx root) and the result.
        proof = self.store.suite.tx_proof(stored.txs, loc.index)
        code, log_text, data, events = 0, "", b"", list[Event]()
        if loc.index < len(stored.results):
            code, log_text, data, events = unpack_result(stored.results[loc.index])
        return {
            "tx_id": tx_id.hex(), "height": loc.height, "index": loc.index,
            "tx": loc.tx.hex(), "result": result_json(code, log_text, data, events),
            "block_hash": stored.block_hash.hex(),
            "proof": {"root": stored.tx_root.hex(), "index": proof.index, "size": proof.size,
                      "path": [p.hex() for p in proof.path]},
        }

    def validator_set_at(self, height: int) -> cs.ValidatorSet:
        """The set that signs ``height`` (from the store's set history); ValueError when
        ``height`` is not an int >= 1 or its set is not known yet (beyond latest + 2)."""
        if type(height) is not int or height < 1:
            raise ValueError(f"height must be an int >= 1, not {height!r}")
        if self.history is None:
            return self.validators
        return self.history.set_at(height)

    def light_block(self, height: int) -> dict[str, Any] | None:
        """``GET /light_block/{h}``: the header, commit certificate and signing set of
        ``height`` as hex of their encodings (docs/formats.md, "Light block"); None when the
        block is not stored."""
        if type(height) is not int or height < 1:
            raise ValueError(f"height must be a positive int, not {height!r}")
        stored = self.store.load_block(height)
        if stored is None:
            return None
        header = Block.decode(stored.header, header_only=True).decoded_header()
        return {"height": height, "hash": stored.block_hash.hex(),
                "header": header.encode().hex(), "certificate": stored.certificate.hex(),
                "validators": self.validator_set_at(height).encode().hex()}

    def validators_info(self, height: int | None = None) -> dict[str, Any]:
        """The set that signs ``height`` (default: the next height to commit, latest + 1):
        ``{height, total_power, hash, validators: [{index, pub_key, power, name}]}``."""
        at = self.tip.height + 1 if height is None else height
        vset = self.validator_set_at(at)
        names = {gv.public_key: gv.name for gv in self.genesis.validators}
        return {"height": at, "total_power": vset.total_power,
                "hash": vset.hash(self.store.suite.hash).hex(),
                "validators": [{"index": i, "pub_key": v.public_key.hex(),
                                "public_key": v.public_key.hex(), "power": v.power,
                                "name": names.get(v.public_key, "")}
                               for i, v in enumerate(vset.validators)]}
