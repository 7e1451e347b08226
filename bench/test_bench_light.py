"""Light-client benchmark smoke run (issue 15 item 5): the same code as `engine bench light` at
tiny sizes inside `make test`. Both sides must agree on which headers verified (the run raises
otherwise), every row names its ISA path and a ratio, and the skip crossed the set change."""
from __future__ import annotations

import pytest

from engine import crypto
from engine.benchmarks.light import bench_skip, run_light


@pytest.mark.bench_smoke
def test_smoke_light_benchmark():
    lines: list[str] = []
    rows = run_light(quick=True, progress=lines.append)
    assert [r["name"] for r in rows] == ["light block, 10 validators",
                                         "light block, 31 validators",
                                         "skip 200 heights, 12 validators"]
    for r in rows:
        assert r["path"] == crypto.native_path() and r["ratio"] > 0
        assert r["engine_headers_per_s"] > 0 and r["baseline_headers_per_s"] > 0
    assert rows[0]["signatures"] == 30 and rows[1]["signatures"] == 62
    skip = rows[2]
    assert skip["set_changed"] == "4/12" and skip["headers"] >= 1
    assert any("ratio" in line for line in lines)


@pytest.mark.bench_smoke
def test_skip_with_a_third_changed_needs_one_header():
    # 12 validators, 4 replaced over the heights: 8/12 of the trusted power still signs the
    # target, so the client verifies it straight from height 1 (bisection is covered in
    # tests/light/test_client.py).
    row = bench_skip(12, 1, heights=50)
    assert row["headers"] == 1 and row["signatures"] == 12


@pytest.mark.bench_smoke
def test_smoke_light_benchmark_on_sm2_chains():
    """The same scenarios on SM2/SM3 chains: SM2 certificates checked by the SM2 batch, the
    baseline a loop of single SM2 verifications, the skip verified to the SM3 id of the
    target (a BLAKE3 comparison would fail the run)."""
    rows = run_light(quick=True, progress=lambda line: None, crypto_suite="sm2-sm3")
    assert [r["crypto"] for r in rows] == ["sm2-sm3"] * 3
    for r in rows:
        assert r["path"] == crypto.sm2_native_path() and r["ratio"] > 0
        assert r["baseline"] == "loop of crypto.sm2_verify"
    assert rows[0]["signatures"] == 30 and rows[2]["set_changed"] == "4/12"
    assert rows[0]["checksum"] != run_light(quick=True, progress=lambda line: None)[0]["checksum"]
