"""Where a node's CPU goes, by stage of the transaction path, as counters a benchmark can read.

Each stage is timed with ``time.thread_time`` (the CPU of the thread that ran it, whatever else
the machine runs, which is what a shared 2-core box needs) and accumulated in seconds; the
node exposes the totals in ``/metrics`` as ``engine_stage_cpu_seconds_total{stage}`` next to
``engine_process_cpu_seconds`` (every thread of the process), so the part of the process CPU
no stage names (the event loop, sockets, HTTP, consensus messages) is their difference.
``engine bench tps`` divides the counters' growth over the load by the transactions committed
meanwhile: microseconds per transaction per node and stage (README, "Benchmarks").

The native kernels' own helper threads (the pool that parallel hashing and signature batches
use, ``verify_threads``) run outside every Python thread: their CPU is measured apart, as the
process CPU minus that of the Python threads alive (``native_threads_cpu``; a Python thread
that ended is counted there too), and exposed as ``engine_native_threads_cpu_seconds_total``.

The stages do not overlap (a stage never runs inside another), so their sum is at most the
process CPU:

- ``admission``: pooling verified transactions (``Mempool._admit_chunk``);
- ``verification``: hashing and signature checks of admitted and proposed transactions (the
  mempool's worker thread);
- ``proposal``: making a block (the proposer) or completing a compact proposal from the pool;
- ``validity``: checking a proposed block (``BlockValidator.is_valid``);
- ``execution``: the application's ``finalize_block`` and the block's nonce records;
- ``storage``: saving the block (``Store.save_block``, its flush included);
- ``commit_other``: the rest of a commit (mempool removal, stale nonces, waiters, events).
"""
from __future__ import annotations

import threading
import time

__all__ = ["STAGES", "StageCpu", "native_threads_cpu", "no_stage"]

STAGES = ("admission", "verification", "proposal", "validity", "execution", "storage",
          "commit_other")


class StageCpu:
    """Thread CPU seconds by stage. ``add`` is called from the event loop and from the
    verification workers, which may add to one stage at once: a lock keeps every addition
    whatever the interpreter's thread-switch points (CPython 3.11 happens not to switch inside
    ``d[k] += x``; a free-threaded build would)."""

    __slots__ = ("_lock", "seconds")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        if stage not in self.seconds:
            raise ValueError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
        with self._lock:
            self.seconds[stage] += seconds

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.seconds)


def no_stage(stage: str, seconds: float) -> None:
    """The default sink of a part built without a node (tests, tools): nothing is kept."""


def native_threads_cpu() -> float:
    """CPU seconds of this process outside its live Python threads: the native pool's helper
    threads (and Python threads that have ended)."""
    python = 0.0
    for t in threading.enumerate():
        try:
            python += time.clock_gettime(time.pthread_getcpuclockid(t.ident or 0))
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return max(0.0, time.process_time() - python)
