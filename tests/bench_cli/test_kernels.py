"""`engine bench kernels`: outputs are checked against the baselines, the report carries the
machine, and the compare gate provably fails when a kernel is made slower."""
from __future__ import annotations

import json
import time

import pytest

from engine import hashing
from engine import tx as txmod
from engine.benchmarks import kernels
from engine.benchmarks import sm as sm_bench
from engine.benchmarks.compare import compare_reports
from engine.cli import main

SLOWDOWN_S = 0.02  # per call: turns a ~0.1 ms kernel call into ~20 ms


def quick(only: list[str]) -> dict:
    return {"schema": 1, "kind": "kernels", "machine": {},
            "kernels": kernels.run_kernels(quick=True, only=only)}


def test_injected_slowdown_fails_the_gate_and_an_honest_rerun_passes(monkeypatch):
    only = ["tx_ids", "merkle"]
    base = quick(only)
    rerun = quick(only)
    # Two honest runs: no figure loses 90 % (the threshold is loose because this machine is
    # shared; the point here is the slowdown below, which loses far more).
    assert all(c.verdict == "ok" for c in compare_reports(base, rerun, 90))

    real = hashing.blake3_many

    def slowed(*args, **kwargs):
        time.sleep(SLOWDOWN_S)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashing, "blake3_many", slowed)
    slow = quick(only)
    verdicts = {c.name: c.verdict for c in compare_reports(base, slow, 90)}
    assert verdicts["kernel: tx ids (blake3_many list, 1 thr)"] == "REGRESSION"
    assert verdicts["kernel: merkle root of tx ids (1 thr)"] == "ok"


def test_injected_slowdown_through_the_cli(tmp_path, monkeypatch, capsys):
    base, slow = tmp_path / "base.json", tmp_path / "slow.json"
    assert main(["bench", "kernels", "--quick", "--only", "tally", "--json", str(base)]) == 0
    from engine.consensus import _tally

    real = _tally.VoteTally

    class SlowTally(real):  # type: ignore[misc, valid-type]
        def add_batch(self, *args):
            time.sleep(SLOWDOWN_S * 5)
            return super().add_batch(*args)

    monkeypatch.setattr(_tally, "VoteTally", SlowTally)
    assert main(["bench", "kernels", "--quick", "--only", "tally", "--json", str(slow)]) == 0
    capsys.readouterr()
    assert main(["bench", "compare", str(base), str(slow), "--max-regression", "50"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "FAIL" in out


def test_report_json_holds_results_checksums_and_machine(tmp_path, capsys):
    path = tmp_path / "k.json"
    assert main(["bench", "kernels", "--quick", "--only", "verify_txs,certificates",
                 "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    machine = report["machine"]
    for key in ("cpu_model", "cpu_flags", "cores", "versions", "native", "git_commit"):
        assert key in machine
    names = [r["name"] for r in report["kernels"]["results"]]
    assert names == ["verify_txs (1 thr)", "verify_txs (all thr)",
                     "verify_txs 64 senders (1 thr)", "certificate verify (67/100)"]
    for r in report["kernels"]["results"]:
        assert r["ratio"] == pytest.approx(r["baseline_us"] / r["engine_us"], rel=1e-2)
        assert len(r["checksum"]) == 16 and r["items"] > 0
    # Every verdict was True, so both verify_txs runs hash the same verdict bytes.
    assert report["kernels"]["results"][0]["checksum"] == report["kernels"]["results"][1][
        "checksum"]
    assert report["kernels"]["calibration"]["score"] > 0
    out = capsys.readouterr().out
    assert "verify_txs (all thr)" in out and "calibration" in out


def test_a_kernel_whose_outputs_differ_is_not_reported(monkeypatch, capsys):
    real = txmod.verify_txs

    def wrong(envelopes, chain_id, *, threads=None):
        out = real(envelopes, chain_id, threads=threads)
        out[0] = not out[0]
        return out

    monkeypatch.setattr(txmod, "verify_txs", wrong)
    with pytest.raises(RuntimeError, match="outputs differ"):
        kernels.run_kernels(quick=True, only=["verify_txs"])
    assert main(["bench", "kernels", "--quick", "--only", "verify_txs"]) == 1
    assert "outputs differ" in capsys.readouterr().err


#: Floors far below any measured quick-run ratio (README "Benchmarks"), for the kernels whose
#: engine side does the work in C while the baseline runs Python per item: a floor fails when the
#: engine side stops doing the native work (say a Python fallback), not on a slow machine. On
#: the portable path `tx ids` runs about as fast as the `blake3` package's loop (1.1x), so its
#: floor there only catches a gross slowdown.
QUICK_RATIO_FLOORS = {"tx ids": 1.5, "merkle root": 5.0, "vote tally": 5.0}
QUICK_RATIO_FLOORS_PORTABLE = {"tx ids": 0.3, "merkle root": 3.0, "vote tally": 5.0}


def test_every_kernel_runs_quick_and_matches_its_baseline():
    section = kernels.run_kernels(quick=True)
    # Thirteen kernels (plus six SM2/SM3 lines when OpenSSL has SM2, issue 17, and two more, the
    # batch-64 SM2 lines on the forced avx2 build, when SM2 runs its avx512 IFMA lanes); on a CPU
    # that selects a wider path, the hashing and Ed25519 ones also on avx2, each row naming its
    # path.
    rows = [(r["name"], r["path"]) for r in section["results"]]
    sm_rows = [row for row in rows if row[0].startswith(("sm2 ", "sm3 "))]
    # The avx2 throughput line against the BLAKE3 C library (issue 18) runs where the library
    # can be built and the engine can run avx2, on avx2.
    c_rows = [row for row in rows if row[0] == "blake3_many_packed vs C avx2 bulk"]
    assert c_rows in ([], [("blake3_many_packed vs C avx2 bulk", "avx2")])
    rows = [row for row in rows if row not in sm_rows and row not in c_rows]
    sm_extra = 2 * len(sm_bench.narrower_sm2_paths())
    assert len(sm_rows) in (0, 6 + sm_extra) and len(set(sm_rows)) == len(sm_rows)
    if sm_rows and sm_extra:
        assert [row for row in sm_rows if row[1] == "avx2"] == [
            (n, "avx2") for n in ("sm2 verify batch 64 (cold, 1 thr)",
                                  "sm2 verify batch 64 (warm, 1 thr)")]
    narrower = kernels.narrower_path()
    extra = [row for row in rows if narrower and row[1] == narrower]
    assert len({name for name, _ in rows}) == 13
    assert len(set(rows)) == len(rows) == 13 + len(extra)
    assert len(extra) == (5 if narrower else 0)
    for r in section["results"]:
        assert r["ratio"] == pytest.approx(r["baseline_us"] / r["engine_us"], rel=1e-2)
        assert r["includes"].startswith("both: "), r["name"]  # each line says what it times
    for prefix, floor in QUICK_RATIO_FLOORS.items():
        found = [r for r in section["results"] if r["name"].startswith(prefix)]
        assert found, prefix
        for r in found:
            least = QUICK_RATIO_FLOORS_PORTABLE[prefix] if r["path"] == "portable" else floor
            assert r["ratio"] >= least, f"{r['name']} ({r['path']}): {r['ratio']}x, floor {least}x"


def test_bad_arguments(capsys):
    with pytest.raises(ValueError, match="unknown kernels"):
        kernels.run_kernels(quick=True, only=["nope"])
    assert main(["bench", "kernels", "--only", "nope"]) == 2
    assert "unknown kernels" in capsys.readouterr().err
    with pytest.raises(ValueError, match="tx_bytes"):
        kernels.make_envelopes(3, tx_bytes=20)
