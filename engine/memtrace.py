"""Heap snapshots of a running node, for finding what grows (a diagnostic, off by default).

With ``ENGINE_TRACEMALLOC=DIR`` in its environment, ``engine start`` traces Python allocations
(``tracemalloc``, ``ENGINE_TRACEMALLOC_FRAMES`` frames, default 6) and a daemon thread writes a
snapshot to ``DIR/heap-<pid>-<n>.snap`` every ``ENGINE_TRACEMALLOC_EVERY_S`` seconds (default
60). Tracing makes allocation a few times slower: use it on one node of a soak, never in
production. ``python -m engine.memtrace DIR`` prints, for consecutive and first-to-last
snapshots, the source lines whose retained memory grew most. Only Python allocations are seen;
native buffers (LMDB pages, OpenSSL, the C kernels) show up only in RSS.
"""
from __future__ import annotations

import glob
import os
import sys
import threading
import time
import tracemalloc

__all__ = ["diff_snapshots", "install_from_env"]

MiB = 1 << 20


def install_from_env() -> bool:
    """Start tracing and the snapshot thread when ``ENGINE_TRACEMALLOC`` is set; True if so."""
    out = os.environ.get("ENGINE_TRACEMALLOC")
    if not out:
        return False
    frames = int(os.environ.get("ENGINE_TRACEMALLOC_FRAMES", "6"))
    every_s = float(os.environ.get("ENGINE_TRACEMALLOC_EVERY_S", "60"))
    if frames < 1 or every_s <= 0:
        raise ValueError("ENGINE_TRACEMALLOC_FRAMES and ENGINE_TRACEMALLOC_EVERY_S must be > 0")
    os.makedirs(out, exist_ok=True)
    tracemalloc.start(frames)

    def dump() -> None:
        n = 0
        while True:
            time.sleep(every_s)
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)])
            snap.dump(os.path.join(out, f"heap-{os.getpid()}-{n:04d}.snap"))
            n += 1

    threading.Thread(target=dump, name="memtrace", daemon=True).start()
    return True


def diff_snapshots(old: tracemalloc.Snapshot, new: tracemalloc.Snapshot, top: int = 15,
                   key: str = "lineno") -> list[str]:
    """The ``top`` source locations whose retained size grew most from ``old`` to ``new``."""
    lines = []
    for stat in new.compare_to(old, key)[:top]:
        frame = stat.traceback[0]
        lines.append(f"{stat.size_diff / MiB:+8.2f} MiB {stat.count_diff:+9d} blocks "
                     f"(now {stat.size / MiB:7.2f} MiB)  {frame.filename}:{frame.lineno}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m engine.memtrace DIR", file=sys.stderr)
        return 2
    by_pid: dict[str, list[str]] = {}
    for p in sorted(glob.glob(os.path.join(argv[0], "heap-*.snap"))):
        by_pid.setdefault(os.path.basename(p).split("-")[1], []).append(p)
    # A killed and restarted node writes under a new pid: read the longest-lived process.
    paths = max(by_pid.values(), key=len, default=[])
    if len(paths) < 2:
        print(f"need two snapshots in {argv[0]}, found {len(paths)}", file=sys.stderr)
        return 2
    snaps = [tracemalloc.Snapshot.load(p) for p in paths]
    for p, s in zip(paths, snaps):
        total = sum(t.size for t in s.traces) / MiB
        print(f"{os.path.basename(p)}: {total:.1f} MiB traced in {len(s.traces)} blocks")
    print(f"\n== growth from {os.path.basename(paths[0])} to {os.path.basename(paths[-1])}")
    print("\n".join(diff_snapshots(snaps[0], snaps[-1])))
    half = len(snaps) // 2
    if 0 < half < len(snaps) - 1:
        print(f"\n== growth in the second half ({os.path.basename(paths[half])} to "
              f"{os.path.basename(paths[-1])})")
        print("\n".join(diff_snapshots(snaps[half], snaps[-1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
