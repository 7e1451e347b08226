"""Tracing a sample of transactions through a node (``trace_txs = true`` in config.toml).

For one transaction in ``SAMPLE_ONE_IN`` (chosen by the first byte of its signature's R, the
same choice on every node and in the load generator) the node appends a line
``<key> <step> <time>`` to ``HOME/tx-trace.log`` at each step of its path:

=================  ===============================================================================
``queued_local``   queued for admission from ``POST /txs`` (or the embedding API)
``queued_peer``    queued for admission from a peer's gossip
``verified``       its batch hashed and its signature checked
``admitted``       through admission (pooled, or refused)
``proposed``       cut into a block by this node as proposer
``decided``        its block decided here (the decision reaches the committer)
``stored``         its block stored here
=================  ===============================================================================

``<key>`` is the hex of the signature's first 8 bytes (the same on every node), ``<time>`` is
``time.monotonic()``: on Linux one clock for every process of a machine, so the traces of a
local network's nodes line up (``engine bench tps --trace-txs`` merges them into where a
transaction's latency goes: :func:`engine.benchmarks.txpath.tx_path`). Each call writes and
flushes its lines at once, so a node that is killed keeps what it traced.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

__all__ = ["SAMPLE_ONE_IN", "STEPS", "TRACE_FILE", "TxTrace", "sample_keys", "sampled"]

TRACE_FILE = "tx-trace.log"
SAMPLE_ONE_IN = 16
STEPS = ("queued_local", "queued_peer", "verified", "admitted", "proposed", "decided", "stored")
#: Ed25519 and SM2 signatures end in 64 bytes whose first (R's, r's) is uniform.
_SIGNATURE_BYTES = 64
_BELOW = 256 // SAMPLE_ONE_IN


def sampled(envelopes: Sequence[bytes]) -> list[tuple[int, str]]:
    """(index, trace key) of the sampled envelopes among ``envelopes``."""
    return [(i, bytes(e[-_SIGNATURE_BYTES:8 - _SIGNATURE_BYTES]).hex())
            for i, e in enumerate(envelopes)
            if len(e) >= _SIGNATURE_BYTES and e[-_SIGNATURE_BYTES] < _BELOW]


def sample_keys(envelopes: Sequence[bytes]) -> list[str]:
    """The trace keys of the sampled envelopes among ``envelopes``, in order."""
    return [key for _, key in sampled(envelopes)]


class TxTrace:
    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.clock = clock
        self._file = open(path, "a", encoding="ascii")  # noqa: SIM115 - open until close()

    def mark(self, step: str, envelopes: Sequence[bytes]) -> None:
        """Record ``step`` now for the sampled ones among ``envelopes``."""
        if step not in STEPS:
            raise ValueError(f"unknown trace step {step!r}; expected one of {STEPS}")
        keys = sample_keys(envelopes)
        if keys and not self._file.closed:
            t = f" {step} {self.clock():.6f}\n"
            self._file.write(t.join(keys) + t)
            self._file.flush()

    def close(self) -> None:
        self._file.close()

    @staticmethod
    def in_home(home: str) -> TxTrace:
        return TxTrace(os.path.join(home, TRACE_FILE))
