"""The soak's verdict (engine/faults/soak.py, ``_judge``) on synthetic samples: it passes a
level heap whose file-backed RSS grows with the store, and fails each kind of growth."""
from __future__ import annotations

from engine.faults.soak import _judge

DURATION_S = 400.0


def samples(anon_per_s: float, file_per_s: float, fds_per_s: float = 0.0):
    """4 nodes sampled every 2 s: anonymous RSS 40 MiB + slope, file-backed 30 MiB + slope."""
    out = []
    for k in range(int(DURATION_S / 2)):
        t = 2.0 * k
        anon = 40 + anon_per_s * t
        rss = anon + 30 + file_per_s * t
        out += [(t, n, rss, int(20 + fds_per_s * t), anon) for n in range(4)]
    return out


def test_a_level_heap_with_file_pages_growing_like_the_store_passes():
    assert _judge(samples(0.0, 0.05), DURATION_S, [20.0] * 4) == []


def test_a_growing_heap_fails():
    problems = _judge(samples(0.1, 0.0), DURATION_S, [20.0] * 4)
    assert len(problems) == 4 and all("anonymous RSS keeps growing" in p for p in problems)


def test_file_backed_growth_beyond_the_store_fails():
    # 0.2 MiB/s between the 2nd and 4th quarter means is 40 MiB, over a 20 MiB store + 8.
    problems = _judge(samples(0.0, 0.2), DURATION_S, [20.0] * 4)
    assert len(problems) == 4 and all("more than its 20 MiB store" in p for p in problems)


def test_growing_descriptors_fail():
    problems = _judge(samples(0.0, 0.0, fds_per_s=0.2), DURATION_S, [20.0] * 4)
    assert len(problems) == 4 and all("open fds keep growing" in p for p in problems)
