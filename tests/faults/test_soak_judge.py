"""The soak's verdict (engine/faults/soak.py, ``_judge``) on synthetic samples: it passes a
level heap whose file-backed RSS grows with the store, and fails each kind of growth."""
from __future__ import annotations

from engine.faults.soak import ATTACK_SETTLE_S, _judge, attack_recovery, warmup_s

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


def filling_then_level(fill_s: float):
    """A heap that grows 1 MiB/s while bounded caches fill, then stays level."""
    out = []
    for k in range(int(DURATION_S / 2)):
        t = 2.0 * k
        anon = 40 + 1.0 * min(t, fill_s)
        out += [(t, n, anon + 30, 20, anon) for n in range(4)]
    return out


def test_growth_until_the_caches_fill_is_judged_after_the_warm_up():
    # Caches full at 200 s of a 400 s run: judged from the first quarter (100 s) the heap
    # seems to grow (wrongly); with the warm-up at the fill time it is level.
    data = filling_then_level(200.0)
    assert any("anonymous RSS keeps growing" in p for p in _judge(data, DURATION_S, [20.0] * 4))
    assert _judge(data, DURATION_S, [20.0] * 4, warmup=warmup_s(DURATION_S, 100_000 / 200)) == []


def test_growth_after_the_warm_up_still_fails():
    data = filling_then_level(DURATION_S)  # never levels off
    problems = _judge(data, DURATION_S, [20.0] * 4, warmup=warmup_s(DURATION_S, 100_000 / 200))
    assert len(problems) == 4 and all("anonymous RSS keeps growing" in p for p in problems)


def test_warm_up_is_the_fill_time_of_the_largest_cache_or_a_quarter():
    assert warmup_s(1200.0, 200) == 1.1 * 100_000 / 200
    assert warmup_s(1200.0, 10_000) == 300.0


def test_a_run_shorter_than_its_warm_up_fails_as_too_short():
    problems = _judge(samples(0.0, 0.0), DURATION_S, [20.0] * 4, warmup=350.0)
    assert len(problems) == 1 and "too short" in problems[0]


def test_attack_recovery_compares_before_and_after_settling_and_skips_killed_nodes():
    # Node n holds 50 MiB before an attack at 100-110 s, 50 + 10 n MiB from 150 s on; node 3
    # is killed at 140 s and is left out.
    data = []
    for k in range(200):
        t = float(k)
        data += [(t, n, 0.0, 20, 50.0 + (10.0 * n if t >= 150 else 0.0)) for n in range(4)]
    rows = attack_recovery(data, [(100.0, 110.0)], [(140.0, 3)])
    assert [(node, before, after) for _, node, before, after in rows] == [
        (0, 50.0, 50.0), (1, 50.0, 60.0), (2, 50.0, 70.0)]
    assert ATTACK_SETTLE_S >= 30  # past at least one periodic malloc_trim
    # A node restarted within the warm-up before the attack fills its caches again: not judged.
    rows = attack_recovery(data, [(100.0, 110.0)], [(140.0, 3), (30.0, 1)], warmup=80.0)
    assert [node for _, node, _, _ in rows] == [0, 2]


def test_a_restarted_node_is_judged_once_its_new_process_filled_its_caches():
    # node3 restarts at 250 s and its heap grows again for 100 s (caches refilling): judged from
    # 250 + fill it would have under a quarter of the run left, so it is left out; the same
    # growth on a node that never restarted fails.
    data = []
    for k in range(int(DURATION_S / 2)):
        t = 2.0 * k
        for n in range(4):
            anon = 40.0 + (1.0 * min(max(t - 250, 0), 100) if n == 3 else 0.0)
            data.append((t, n, anon + 30, 20, anon))
    assert _judge(data, DURATION_S, [20.0] * 4, warmup=100.0, kills=[(250.0, 3)],
                  fill=100.0) == []
    problems = _judge(data, DURATION_S, [20.0] * 4, warmup=100.0, kills=[], fill=100.0)
    assert problems and all("node3 anonymous RSS keeps growing" in p for p in problems)


def test_a_run_where_no_heap_can_be_judged_fails():
    problems = _judge(samples(0.0, 0.0), DURATION_S, [20.0] * 4, warmup=100.0,
                      kills=[(300.0, n) for n in range(4)], fill=100.0)
    assert problems == ["no node ran long enough after its caches filled to judge its heap"]
