"""`make bench-check`: the performance thresholds, per kernel and native path, enforced on the
reports of `engine bench kernels` (one report per ISA path, ENGINE_FORCE_ISA set for each).

Each threshold is a ratio (baseline time / engine time, higher is better) that the kernel's
``ratio`` must reach. ``kind`` says where it comes from:

- ``target``: the README's target, measured by this kernel under the README's conditions; a
  kernel below it fails.
- ``floor``: a regression floor, about 60-70 % of what the kernel measured on the development
  machine (README "Benchmarks"), used where the README has no target for this measurement, or
  its target is missed, or it is stated under other conditions (the Ed25519 targets are for
  cached keys and are reported by bench/test_bench_ed25519.py; these kernels run cold keys).
  ``readme`` then quotes the README target for reference. A kernel below its floor fails too:
  it got slower than what the README reports.

A report row with no threshold for its path (a new kernel, a path not listed) is reported as
"no threshold" and does not fail; a threshold whose kernel is missing from a report (no row of
that name at all, while the report has rows of the threshold's path) fails (a kernel that
stopped running is not a kernel that is fast enough).

Usage: ``python -m engine.benchmarks.targets REPORT.json [REPORT.json ...]``; exit 1 naming
every kernel below its threshold, 2 on unreadable reports.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

ANY = "*"  # a kernel whose path is not an ISA (cython, lmdb): one threshold for every report


@dataclass(frozen=True)
class Threshold:
    kernel: str     # the kernel name as `engine bench kernels` prints it
    path: str       # the native path of the row (avx512, avx2, portable) or ANY
    ratio: float
    kind: str       # "target" or "floor"
    readme: str     # the README's statement this comes from


def _per_path(kernel: str, ratios: dict[str, float], kind: str, readme: str) -> list[Threshold]:
    return [Threshold(kernel, path, r, kind, readme) for path, r in ratios.items()]


THRESHOLDS: list[Threshold] = [
    *_per_path("tx ids (blake3_many list, 1 thr)",
               {"avx512": 4.0, "avx2": 2.5, "portable": 0.7}, "floor",
               "Hashing: blake3_many (list) >= 10x, missed; measured 7.3x avx512, 4.0x avx2, "
               "1.1x portable at 20,000 x 250 B"),
    *_per_path("merkle root of tx ids (1 thr)", {"avx512": 20.0, "avx2": 20.0}, "target",
               "Hashing: merkle_root >= 20x"),
    Threshold("merkle root of tx ids (1 thr)", "portable", 6.0, "floor",
              "Hashing: merkle_root >= 20x is for the SIMD paths; portable measured 9.1x"),
    *_per_path("ed25519 verify single", {"avx512": 1.5, "portable": 1.4},
               "floor", "Signatures: single >= 3x with cached keys; cold measured 2.1-2.6x"),
    Threshold("ed25519 verify single", "avx2", 1.9, "floor",
              "Signatures: avx2 single >= 3.5x with cached keys (issue 18); cold measured "
              "2.77-2.80x in the parallel form on AMD Zen 4 (2.18-2.19x before), 2.18-2.27x "
              "on Intel Xeon"),
    *_per_path("ed25519 verify_batch 64 (1 thr)", {"avx512": 8.0, "portable": 4.0},
               "floor", "Signatures: batch 64 >= 12x avx512, >= 6x portable (cached keys); "
               "cold measured 12.0-12.4x avx512, 5.5-5.9x portable"),
    Threshold("ed25519 verify_batch 64 (1 thr)", "avx2", 6.0, "floor",
              "Signatures: avx2 batch 64 >= 9x with cached keys (issue 18); cold measured "
              "8.77-9.02x with parallel-form Straus on AMD Zen 4 (8.17-8.20x before), "
              "6.74-6.97x on Intel Xeon"),
    *_per_path("ed25519 verify_batch 1024 (1 thr)",
               {"avx512": 11.0, "portable": 5.5}, "floor",
               "Signatures: batch 1024 >= 20x avx512, >= 8x portable (cached keys); cold "
               "measured 15.8-19.7x avx512, 7.8-8.2x portable"),
    Threshold("ed25519 verify_batch 1024 (1 thr)", "avx2", 8.5, "floor",
              "Signatures: avx2 batch 1024 >= 13x with cached keys (issue 18); cold measured "
              "12.6-13.1x on AMD Zen 4, 9.59-9.84x on Intel Xeon"),
    *_per_path("verify_txs (1 thr)", {"avx512": 12.0, "avx2": 6.0, "portable": 6.0}, "floor",
               "no ratio target (verify_txs <= 1.2x verify_batch's time); measured 18.8-22.9x "
               "avx512, 9.9x portable"),
    Threshold("vote tally (100 validators)", ANY, 20.0, "target",
              "Consensus: tally >= 20x the Python dict tally"),
    *_per_path("certificate verify (67/100)", {"avx512": 7.0, "avx2": 3.5, "portable": 3.5},
               "floor", "no target (report); measured 11.2-13.4x avx512, 5.3x portable"),
    Threshold("block save (1000 tx, sync)", ANY, 0.35, "floor",
              "Storage: save <= 1.3x the raw put (ratio >= 0.77), missed; measured 0.50-0.78"),
]


@dataclass(frozen=True)
class Verdict:
    kernel: str
    path: str
    ratio: float | None
    threshold: Threshold | None
    ok: bool

    def line(self) -> str:
        got = "missing" if self.ratio is None else f"{self.ratio:7.2f}x"
        if self.threshold is None:
            return f"{'no threshold':<13} {self.kernel:<36} {self.path:<8} {got}"
        t = self.threshold
        verdict = "ok" if self.ok else "BELOW"
        return (f"{verdict:<13} {self.kernel:<36} {self.path:<8} {got} >= {t.ratio:g}x "
                f"({t.kind}: {t.readme})")


def check_report(report: dict, thresholds: list[Threshold] = THRESHOLDS) -> list[Verdict]:
    """Verdicts for one `engine bench kernels` report (every row, and every threshold of the
    report's ISA paths whose kernel is absent)."""
    rows = report["kernels"]["results"]
    out: list[Verdict] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        name, path, ratio = row["name"], row["path"], float(row["ratio"])
        match = [t for t in thresholds if t.kernel == name and t.path in (path, ANY)]
        t = match[0] if match else None
        seen.add((name, path))
        out.append(Verdict(name, path, ratio, t, t is None or ratio >= t.ratio))
    # A kernel absent from the report fails at every path the report ran. A kernel with rows
    # at other paths only is not "missing": one report can mix paths (with ENGINE_FORCE_ISA=
    # avx512, SM2 kernels without an AVX-512 form run on avx2), and the avx2 report, not
    # that one, carries the avx2 Ed25519 rows.
    paths = {row["path"] for row in rows}
    names = {name for name, _ in seen}
    for t in thresholds:
        if t.path in paths and t.kernel not in names:
            out.append(Verdict(t.kernel, t.path, None, t, False))
    return out


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m engine.benchmarks.targets REPORT.json [...]", file=sys.stderr)
        return 2
    below: list[Verdict] = []
    for path in paths:
        try:
            with open(path) as f:
                report = json.load(f)
            verdicts = check_report(report)
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"error: {path}: not a kernels report ({e})", file=sys.stderr)
            return 2
        print(f"{path}:")
        for v in verdicts:
            print("  " + v.line())
        below += [v for v in verdicts if not v.ok]
    if below:
        names = ", ".join(f"{v.kernel} [{v.path}]" for v in below)
        print(f"\nFAIL: below threshold: {names}", file=sys.stderr)
        return 1
    print("\nevery kernel meets its threshold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
