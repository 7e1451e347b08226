"""What every kernel benchmark shares: the result row, paired best-of timing, output checksums.

Kernel suites (engine/benchmarks/kernels.py, engine/benchmarks/sm.py) build their rows with
these, so every line has the same columns and the same rules: baseline and engine timed
alternately on the same inputs, outputs compared before any ratio is printed.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine import hashing

__all__ = ["HEADER", "KernelResult", "best_s", "checksum", "paired_s"]


@dataclass
class KernelResult:
    name: str
    path: str           # native path that ran (ISA or library)
    baseline: str       # what the baseline is
    items: int          # items per timed run (signatures, messages, blocks, ...)
    unit: str           # what an item is
    baseline_us: float  # µs per item, baseline
    engine_us: float    # µs per item, engine
    ratio: float        # baseline_us / engine_us
    checksum: str       # of the engine's outputs (equal to the baseline's, or it raised)
    includes: str = ""  # what both timed regions start from and include

    def line(self) -> str:
        return (f"{self.name:<34} {self.path:<8} {self.items:>7} {self.unit:<6} "
                f"{self.baseline:<22} {self.baseline_us:>10.2f} {self.engine_us:>10.3f} "
                f"{self.ratio:>8.2f}x  {self.checksum}"
                + (f"\n    timed: {self.includes}" if self.includes else ""))


HEADER = (f"{'kernel':<34} {'path':<8} {'items':>7} {'unit':<6} {'baseline':<22} "
          f"{'base µs':>10} {'engine µs':>10} {'ratio':>9}  checksum")


def best_s(fn: Callable[[], Any], repeat: int, before: Callable[[], None] | None = None
           ) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs of ``fn`` and its last result."""
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        if before is not None:
            before()
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def paired_s(baseline: Callable[[], Any], engine: Callable[[], Any], repeat: int,
             before_engine: Callable[[], None] | None = None) -> tuple[float, Any, float, Any]:
    """Best times of baseline and engine, run alternately so both see the same machine load
    (other tenants come and go; timing one side first and the other later skews the ratio)."""
    base_best = eng_best = float("inf")
    base_out = eng_out = None
    for _ in range(max(1, repeat)):
        b, base_out = best_s(baseline, 1)
        e, eng_out = best_s(engine, 1, before_engine)
        base_best, eng_best = min(base_best, b), min(eng_best, e)
    return base_best, base_out, eng_best, eng_out


def checksum(parts: Sequence[bytes] | bytes) -> str:
    data = parts if isinstance(parts, (bytes, bytearray)) else b"".join(parts)
    return hashing.blake3(bytes(data)).hex()[:16]


def verdict_bytes(verdicts: Sequence[Any]) -> bytes:
    return bytes(1 if v else 0 for v in verdicts)


def same(name: str, engine_out: Any, baseline_out: Any) -> None:
    if engine_out != baseline_out:
        raise RuntimeError(f"{name}: engine and baseline outputs differ; no ratio reported")


def result(name: str, path: str, baseline: str, items: int, unit: str, base_s: float,
            engine_s: float, check: str, includes: str = "") -> KernelResult:
    base_us, eng_us = base_s / items * 1e6, engine_s / items * 1e6
    return KernelResult(name, path, baseline, items, unit, round(base_us, 4), round(eng_us, 4),
                        round(base_us / eng_us, 3), check, includes)


