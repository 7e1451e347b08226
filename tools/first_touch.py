"""How much the machine charges for memory the first time it is touched, GiB after GiB.

    python tools/first_touch.py [--gib 10]

Maps ``--gib`` GiB of anonymous memory, one GiB at a time, holding each, and writes one byte
per 4 KiB page; prints the seconds each GiB took and the cost per page. On bare metal every
GiB costs the same (the kernel zeroes each new page). In a virtual machine whose host backs
guest memory lazily, and takes back pages the guest frees (free page reporting, a balloon),
the first GiBs reuse pages the host still backs and the later ones fault on the host too: on
the development VM of this repository 0.33 s per GiB for the first 3 GiB, then 2.7-2.9 s
(about 11 us per page, 8.6x).

That is what makes `engine bench tps` runs on such a machine slower the longer a network
runs: every block a node stores takes new page-cache pages, and once the host-backed pool is
used up each costs a host fault, seen as kernel time in ``copy_folio_from_iter_atomic`` and
``clear_page_erms`` (docs/performance.md, "CPU per transaction grows with a network's running
time"). Run this before comparing long runs across machines.
"""
from __future__ import annotations

import argparse
import mmap
import time

GIB = 1 << 30
PAGE = 4096


def touch_gib() -> tuple[mmap.mmap, float]:
    """One GiB mapped and written once per page (kept mapped by the caller); its seconds."""
    m = mmap.mmap(-1, GIB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    t0 = time.perf_counter()
    for off in range(0, GIB, PAGE):
        m[off] = 1
    return m, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gib", type=int, default=10, help="GiB to map and touch (default 10)")
    a = ap.parse_args(argv)
    if not 1 <= a.gib <= 1024:
        ap.error("--gib must be 1..1024")
    held = []
    times = []
    for i in range(a.gib):
        m, seconds = touch_gib()
        held.append(m)
        times.append(seconds)
        print(f"GiB {i + 1:3d}: {seconds:6.2f} s ({seconds / (GIB // PAGE) * 1e6:5.2f} us a page)",
              flush=True)
    fastest = min(times)
    print(f"slowest / fastest GiB: {max(times) / fastest:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
