"""Smoke runs of `engine bench sync` and `engine bench prune` (README "Joining and pruning"):
the same code as `make bench-sync` on a tiny chain and a short load, inside `make test`.

The smoke checks what the full run reports, not its speed: both joiners end with the
validator's app hash and state (the benchmark raises otherwise), the ceiling recomputed the
same app hash, the state-synced node really restored from a snapshot, and with pruning on the
store keeps a bounded window of blocks."""
from __future__ import annotations

import asyncio

import pytest

from engine.benchmarks.sync import prune_report, run_prune, run_sync


@pytest.mark.bench_smoke
def test_bench_sync_smoke(tmp_path):
    lines: list[str] = []
    report = asyncio.run(asyncio.wait_for(
        run_sync(blocks=40, keys=800, workdir=str(tmp_path), progress=lines.append), 240))
    assert report["identical"] and report["setup"]["blocks"] == 42
    assert report["setup"]["txs"] == 802 and report["setup"]["state_entries"] >= 800
    phases = report["phases"]
    assert all(p["seconds"] > 0 and p["blocks"] == 42 for p in phases.values())
    assert report["state_sync_restore_s"] > 0  # it restored, not replayed
    assert any("faster than block sync" in line for line in lines)


@pytest.mark.bench_smoke
def test_bench_prune_smoke(tmp_path):
    report = asyncio.run(asyncio.wait_for(
        run_prune(duration_s=8, rate_tps=200, retain_blocks=20, workdir=str(tmp_path),
                  progress=lambda line: None), 120))
    last = report["samples"][-1]
    assert last["latest"] > 25 and last["base"] > 1          # it pruned while running
    assert report["blocks_held_at_end"] <= 20 + 2 * 256      # bounded by retain + one step


def test_prune_report_says_whether_the_file_stopped_growing():
    # A step (a burst of larger blocks) and then flat: stopped, the step is still reported.
    step = [(t, 1000 if t < 7 else 2000, t, 1) for t in range(13)]
    r = prune_report(step, 100, 1, 12, 0)
    assert r["stopped_growing"] and r["growth_second_half_pct"] > 50
    assert r["file_bytes_max"] == 2000
    growing = [(t, 1000 + 100 * t, t, 1) for t in range(13)]
    r = prune_report(growing, 100, 1, 12, 0)
    assert not r["stopped_growing"] and r["growth_last_quarter_pct"] > 2
