"""`engine bench compare`: the gate passes equal reports, fails regressions, missing figures,
lost transactions and disagreeing nodes, and rejects bad input with a clear error."""
from __future__ import annotations

import copy
import json

import pytest

from engine.benchmarks import REPORT_SCHEMA
from engine.benchmarks.compare import compare_files, compare_reports, figures, load_report
from engine.cli import main


def kernels_report(**ratios: float) -> dict:
    return {"schema": REPORT_SCHEMA, "kind": "kernels", "machine": {"cpu_model": "test"},
            "kernels": {"results": [{"name": n, "ratio": r} for n, r in ratios.items()],
                        "calibration": {"score": 10.0}}}


def tps_report(tps: float, p50: float, score: float, **extra) -> dict:
    body = {"schema": REPORT_SCHEMA, "kind": "tps", "machine": {}, "tps": tps,
            "latency_ms": {"p50": p50, "p95": p50 * 2, "p99": p50 * 3},
            "calibration": {"score": score}, "lost": 0, "nodes_agree": True, "duplicates": 0}
    body.update(extra)
    return body


def write(tmp_path, name: str, report: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


def test_equal_and_better_reports_pass(tmp_path):
    base = write(tmp_path, "base.json", kernels_report(a=10.0, b=2.0))
    new = write(tmp_path, "new.json", kernels_report(a=10.5, b=1.85))  # b lost 7.5 %
    code, text = compare_files(base, new, 10)
    assert code == 0, text
    assert "PASS" in text and "kernel: b" in text


def test_regression_beyond_threshold_fails_and_is_named(tmp_path):
    base = write(tmp_path, "base.json", kernels_report(a=10.0, b=2.0))
    new = write(tmp_path, "new.json", kernels_report(a=10.0, b=1.7))  # b lost 15 %
    code, text = compare_files(base, new, 10)
    assert code == 1
    line = next(ln for ln in text.splitlines() if ln.startswith("kernel: b"))
    assert "REGRESSION" in line and "-15.0%" in line
    assert compare_files(base, new, 20)[0] == 0  # within a looser threshold


def test_missing_figure_fails_and_new_figure_is_listed(tmp_path):
    base = write(tmp_path, "base.json", kernels_report(a=10.0, b=2.0))
    new = write(tmp_path, "new.json", kernels_report(a=10.0, c=5.0))
    assert compare_files(base, new)[0] == 1
    verdicts = {c.name: c.verdict for c in compare_reports(load_report(base),
                                                           load_report(new))}
    assert verdicts == {"kernel: a": "ok", "kernel: b": "missing", "kernel: c": "new"}


def test_tps_is_normalised_by_the_calibration_kernel():
    # The same code on a machine half as fast: TPS and calibration both halve, latency doubles.
    base = tps_report(10_000, 400, 20.0)
    slower_machine = tps_report(5_000, 800, 10.0)
    changes = compare_reports(base, slower_machine, 10)
    assert [c.verdict for c in changes] == ["ok", "ok"]
    # A real slowdown on the same machine is caught, for TPS and for latency alike.
    changes = compare_reports(base, tps_report(8_000, 400, 20.0), 10)
    assert {c.name: c.verdict for c in changes}["tps / calibration"] == "REGRESSION"
    changes = compare_reports(base, tps_report(10_000, 480, 20.0), 10)
    assert {c.name: c.verdict for c in changes}["latency p50 x calibration"] == "REGRESSION"
    assert figures(base)["tps / calibration"].value == pytest.approx(500.0)


@pytest.mark.parametrize("extra, message", [
    ({"lost": 3}, "lost 3"), ({"nodes_agree": False}, "did not agree"),
    ({"duplicates": 1}, "twice")])
def test_tps_run_that_lost_or_forked_fails_whatever_its_speed(tmp_path, extra, message):
    base = write(tmp_path, "base.json", tps_report(1000, 400, 20.0))
    new = write(tmp_path, "new.json", tps_report(5000, 100, 20.0, **extra))
    code, text = compare_files(base, new)
    assert code == 1 and message in text


def test_cli_exit_codes(tmp_path, capsys):
    base = write(tmp_path, "base.json", kernels_report(a=10.0))
    slow = write(tmp_path, "slow.json", kernels_report(a=5.0))
    assert main(["bench", "compare", base, base]) == 0
    assert main(["bench", "compare", base, slow]) == 1
    assert main(["bench", "compare", base, slow, "--max-regression", "60"]) == 0
    assert "REGRESSION" not in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.parametrize("content, message", [
    ("not json", "not JSON"), ("[1, 2]", "JSON object"),
    (json.dumps({"schema": 99, "kernels": {}}), "schema 99"),
    (json.dumps({"schema": REPORT_SCHEMA}), "neither")])
def test_bad_reports_get_a_clear_error(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    good = write(tmp_path, "good.json", kernels_report(a=1.0))
    assert main(["bench", "compare", good, str(bad)]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match=message):
        load_report(str(bad))


def test_missing_file_and_bad_threshold(tmp_path, capsys):
    good = write(tmp_path, "good.json", kernels_report(a=1.0))
    assert main(["bench", "compare", good, str(tmp_path / "absent.json")]) == 2
    assert "cannot read report" in capsys.readouterr().err
    with pytest.raises(ValueError, match="max_regression_pct"):
        compare_reports(load_report(good), load_report(good), 150)
    assert main(["bench", "compare", good, good, "--max-regression", "-5"]) == 2


def test_non_numeric_ratio_is_rejected(tmp_path):
    r = kernels_report(a=1.0)
    broken = copy.deepcopy(r)
    broken["kernels"]["results"][0]["ratio"] = "fast"
    with pytest.raises(ValueError, match="ratio must be a number"):
        figures(broken)


def kernels_on_paths(*rows: tuple[str, str, float]) -> dict:
    """A kernels report whose rows name the native path each kernel ran on."""
    return {"schema": REPORT_SCHEMA, "kind": "kernels", "machine": {"cpu_model": "test"},
            "kernels": {"results": [{"name": n, "path": p, "ratio": r} for n, p, r in rows],
                        "calibration": {"score": 10.0}}}


def test_figures_of_another_native_path_are_not_a_regression(tmp_path):
    # Baseline stored on an IFMA runner, pull request measured on an AVX2-only one: about half the
    # ratio, yet nothing regressed; with nothing left to compare the gate says so and exits 2.
    base = write(tmp_path, "base.json", kernels_on_paths(("ed25519 batch", "avx512", 20.0),
                                                         ("tx ids", "avx512", 9.0)))
    new = write(tmp_path, "new.json", kernels_on_paths(("ed25519 batch", "avx2", 10.0),
                                                       ("tx ids", "avx2", 8.0)))
    code, text = compare_files(base, new, 10)
    assert code == 2, text
    assert "REGRESSION" not in text and "PASS" not in text
    assert "native paths differ" in text and "base ran avx512, new ran avx2" in text
    assert "NOTHING COMPARABLE" in text
    verdicts = {c.verdict for c in compare_reports(load_report(base), load_report(new))}
    assert verdicts == {"other path"}
    assert main(["bench", "compare", base, new]) == 2


def test_only_figures_of_the_same_path_are_compared(tmp_path):
    # The base has both paths; the new run has only avx2 (and a third kernel still on avx512).
    base = write(tmp_path, "base.json", kernels_on_paths(
        ("ed25519 batch", "avx512", 20.0), ("ed25519 batch", "avx2", 13.0),
        ("merkle", "avx512", 30.0)))
    ok = write(tmp_path, "ok.json", kernels_on_paths(("ed25519 batch", "avx2", 12.5),
                                                     ("merkle", "avx2", 25.0)))
    code, text = compare_files(base, ok, 10)
    assert code == 0, text  # the avx2 figure is compared; merkle's paths differ and say so
    assert "merkle: base ran avx512, new ran avx2" in text and "PASS" in text
    both = write(tmp_path, "both.json", kernels_on_paths(("ed25519 batch", "avx2", 12.5),
                                                         ("merkle", "avx512", 29.0)))
    code, text = compare_files(base, both, 10)
    assert code == 0, text
    verdicts = {(c.name, c.path): c.verdict
                for c in compare_reports(load_report(base), load_report(both))}
    assert verdicts == {("kernel: ed25519 batch", "avx512"): "other path",
                        ("kernel: ed25519 batch", "avx2"): "ok", ("kernel: merkle", "avx512"): "ok"}
    # A real slowdown on the same path is still caught.
    slow = write(tmp_path, "slow.json", kernels_on_paths(("ed25519 batch", "avx2", 10.0),
                                                         ("merkle", "avx512", 29.0)))
    code, text = compare_files(base, slow, 10)
    assert code == 1 and "kernel: ed25519 batch [avx2]" in text.splitlines()[-1]
