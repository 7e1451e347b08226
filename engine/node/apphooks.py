"""The optional application hooks, adapted for the node: what an app defines is found once (by
name and signature), and every call is wrapped so an exception in app code is contained.

- ``check_tx(tx, pending)``: admission sees the pool (:class:`engine.mempool.Senders`);
- ``check_txs(txs) -> [CheckResult]``: the batch form of ``check_tx(tx)``, one call per
  admission chunk; used only where it answers for the ``check_tx`` the app runs (defined by
  the class that defines ``check_tx``, or a subclass of it) and ``check_tx`` takes no pool;
- ``recheck_tx(tx, pending)``: after every commit, each pooled transaction is judged again
  (``pending`` includes it) and evicted when refused;
- ``prepare_proposal(height, txs) -> txs``: the proposer chooses and orders, among the reaped
  transactions, what its block carries (a subset, in any order; anything else falls back to the
  reaped list);
- ``process_proposal(height, txs) -> bool``: a validator accepts or rejects a proposed block
  (after the node's own checks). An exception rejects the block.

Both proposal hooks must be deterministic and fast (they run on the loop while consensus waits;
keep them well under ``timeout_propose_ms``): a slow call is logged.
"""
from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine import tx as txmod
from engine.app import Application
from engine.mempool import Mempool
from engine.suite import DEFAULT, Suite

log = logging.getLogger("engine.node.apphooks")

__all__ = ["AppHooks", "positional_count"]

#: A proposal hook taking longer than this is logged (it delays the whole network).
PROPOSAL_HOOK_MS_WARN = 100


def positional_count(method: Callable) -> int:
    """How many positional arguments a bound method takes (a large number for ``*args``)."""
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return 0
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 1 << 16
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _owner(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO that defines ``name``."""
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def _batch_check(app: Application) -> Callable | None:
    """``app.check_txs`` when it answers for the ``check_tx`` the app runs: a subclass that
    overrides ``check_tx`` alone must not be bypassed by a ``check_txs`` it inherits."""
    batch = getattr(app, "check_txs", None)
    if not callable(batch):
        return None
    cls = type(app)
    batch_owner, single_owner = _owner(cls, "check_txs"), _owner(cls, "check_tx")
    if batch_owner is None or single_owner is None:  # set on the instance: trusted as given
        return batch
    return batch if issubclass(batch_owner, single_owner) else None


def _overridden(app: Application, name: str) -> Callable | None:
    method = getattr(app, name, None)
    return method if callable(method) else None


class AppHooks:
    def __init__(self, app: Application, counters: Any, suite: Suite = DEFAULT):
        self.app = app
        self.suite = suite
        self.counters = counters
        self.check_tx_pending = positional_count(app.check_tx) >= 2
        self.check_txs = None if self.check_tx_pending else _batch_check(app)
        self.recheck_tx = _overridden(app, "recheck_tx")
        self._prepare = _overridden(app, "prepare_proposal")
        self._process = _overridden(app, "process_proposal")
        self.mempool: Mempool | None = None

    def recheck(self, height: int) -> None:
        if self.recheck_tx is not None and self.mempool is not None and len(self.mempool):
            evicted = self.mempool.recheck(self.recheck_tx)
            if evicted:
                log.info("recheck after block %d evicted %d transactions", height, len(evicted))

    def _decoded(self, envelopes: Sequence[bytes], ids: Sequence[bytes]) -> list[Any]:
        pooled = self.mempool.decoded if self.mempool is not None else (lambda i: None)
        return [pooled(i) or txmod.decode_tx(e, tx_id=i) for e, i in zip(envelopes, ids)]

    @property
    def prepares(self) -> bool:
        return self._prepare is not None

    @property
    def processes(self) -> bool:
        return self._process is not None

    def prepare(self, height: int, envelopes: list[bytes]) -> list[bytes]:
        """The app's choice among the reaped envelopes (the reaped list when it has none, or
        returns something that is not a subset of them, or raises)."""
        if self._prepare is None:
            return envelopes
        ids = self.suite.hash_many(envelopes) if envelopes else []
        txs = self._decoded(envelopes, ids)
        started = time.perf_counter()
        try:
            chosen = list(self._prepare(height, txs))
        except Exception:  # app code: propose what was reaped
            log.exception("prepare_proposal raised at height %d; proposing the reaped txs",
                          height)
            self.counters.add("app_prepare_error")
            return envelopes
        self._timed("prepare_proposal", height, started)
        by_id = dict(zip(ids, envelopes))
        out, seen = [], set()
        for t in chosen:
            tx_id = getattr(t, "tx_id", None)
            if tx_id not in by_id or tx_id in seen:
                log.error("prepare_proposal returned a transaction it was not given (or twice) "
                          "at height %d; proposing the reaped txs", height)
                self.counters.add("app_prepare_error")
                return envelopes
            seen.add(tx_id)
            out.append(by_id[tx_id])
        return out

    def process(self, height: int, envelopes: Sequence[bytes], ids: Sequence[bytes]) -> bool:
        if self._process is None:
            return True
        txs = self._decoded(envelopes, ids)
        started = time.perf_counter()
        try:
            ok = bool(self._process(height, txs))
        except Exception:  # app code: a block it cannot judge is rejected
            log.exception("process_proposal raised at height %d; rejecting the block", height)
            self.counters.add("app_process_error")
            return False
        self._timed("process_proposal", height, started)
        return ok

    def _timed(self, name: str, height: int, started: float) -> None:
        ms = (time.perf_counter() - started) * 1000
        if ms > PROPOSAL_HOOK_MS_WARN:
            log.warning("%s took %.0f ms at height %d (keep it well under the propose timeout)",
                        name, ms, height)
