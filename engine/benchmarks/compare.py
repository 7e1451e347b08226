"""`engine bench compare BASE.json NEW.json`: the CI regression gate.

Only machine-normalised figures are compared, so a baseline stored from one run (or one machine)
still means something on the next:

- a kernel's ``ratio`` (baseline time / engine time, both measured in the same run): higher is
  better;
- end-to-end TPS divided by the score of the calibration kernel timed in the same run
  (``tps_per_calibration``): higher is better;
- p50 latency multiplied by the calibration score (``latency_p50_calibrated``): lower is better.

A figure regresses when it is worse than the base by more than ``max_regression_pct`` percent.
A figure present in BASE but missing from NEW counts as a regression (a kernel that disappeared
must not pass silently); a TPS report whose run lost transactions or whose nodes disagreed fails
whatever its speed.

Kernel figures carry the native path that produced them (``avx512``, ``avx2``, ``portable``...)
and are compared only with a figure of the same kernel on the same path: an avx2 runner is not
an avx512 one made slower. A kernel measured on another path in NEW is listed as ``other path``
(neither a pass nor a regression), the gate says which paths differ, and when that leaves
nothing to compare it exits 2 with the reason instead of passing or failing.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from engine.benchmarks import REPORT_SCHEMA

MAX_REGRESSION_PCT_DEFAULT = 10.0


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    higher_is_better: bool
    kernel: str | None = None  # the kernel's own name, without its path
    path: str | None = None    # the native path that ran it, when the report says


@dataclass(frozen=True)
class Change:
    name: str
    base: float | None
    new: float | None
    change_pct: float | None  # positive = better, negative = worse
    verdict: str              # ok | REGRESSION | missing | new | other path
    path: str | None = None   # the native path of a kernel figure


def load_report(path: str) -> dict[str, Any]:
    """Read a report written by `engine bench kernels` or `engine bench tps`."""
    try:
        with open(path) as f:
            report = json.load(f)
    except OSError as e:
        raise ValueError(f"cannot read report {path!r}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"report {path!r} is not JSON: {e}") from None
    if not isinstance(report, dict):
        raise ValueError(f"report {path!r} must hold a JSON object")  # noqa: TRY004 (bad file)
    if report.get("schema") != REPORT_SCHEMA:
        raise ValueError(f"report {path!r} has schema {report.get('schema')!r}, "
                         f"expected {REPORT_SCHEMA}")
    if "kernels" not in report and "tps" not in report:
        raise ValueError(f"report {path!r} holds neither kernel results nor a TPS run")
    return report


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, not {value!r}")  # noqa: TRY004 (bad file)
    return float(value)


def _key(name: str, path: str | None) -> str:
    return f"{name} [{path}]" if path else name


def figures(report: dict[str, Any]) -> dict[str, Figure]:
    """The machine-normalised figures of a report, by name and native path."""
    out: dict[str, Figure] = {}
    kernels = report.get("kernels")
    if kernels is not None:
        for r in kernels.get("results", []):
            path = r.get("path")
            if path is not None and not isinstance(path, str):
                raise ValueError(f"kernel {r['name']!r} path must be a string, not {path!r}")
            name = f"kernel: {r['name']}"
            out[_key(name, path)] = Figure(name, _number(r["ratio"], f"{name} ratio"), True,
                                           r["name"], path)
    if "tps" in report:
        score = _number(report["calibration"]["score"], "calibration score")
        if score <= 0:
            raise ValueError("calibration score must be positive")
        out["tps / calibration"] = Figure("tps / calibration",
                                          _number(report["tps"], "tps") / score, True)
        p50 = report.get("latency_ms", {}).get("p50")
        if isinstance(p50, (int, float)) and not math.isnan(p50):  # NaN: nothing committed
            out["latency p50 x calibration"] = Figure("latency p50 x calibration",
                                                      float(p50) * score, False)
    return out


def compare_reports(base: dict[str, Any], new: dict[str, Any],
                    max_regression_pct: float = MAX_REGRESSION_PCT_DEFAULT) -> list[Change]:
    if isinstance(max_regression_pct, bool) or not isinstance(max_regression_pct, (int, float)) \
            or not 0 <= max_regression_pct < 100:
        raise ValueError(f"max_regression_pct must be in [0, 100), not {max_regression_pct!r}")
    fb, fn = figures(base), figures(new)
    new_kernels = {f.kernel for f in fn.values() if f.kernel is not None}
    changes = []
    for key, b in fb.items():
        n = fn.get(key)
        if n is None:
            # The same kernel measured on another native path is not comparable, not missing.
            other = b.kernel is not None and b.kernel in new_kernels
            changes.append(Change(b.name, b.value, None, None,
                                  "other path" if other else "missing", b.path))
            continue
        if b.value <= 0:
            pct = 0.0 if n.value == b.value else float("inf")
        elif b.higher_is_better:
            pct = (n.value / b.value - 1) * 100
        else:
            pct = (b.value / n.value - 1) * 100 if n.value > 0 else float("inf")
        # Worse by more than the threshold, measured as the fraction of the base figure lost.
        lost_pct = (1 - n.value / b.value) * 100 if b.higher_is_better and b.value > 0 else \
            ((n.value / b.value - 1) * 100 if b.value > 0 else 0.0)
        verdict = "REGRESSION" if lost_pct > max_regression_pct else "ok"
        changes.append(Change(b.name, b.value, n.value, pct, verdict, b.path))
    base_kernels = {f.kernel for f in fb.values() if f.kernel is not None}
    for key, n in fn.items():
        if key not in fb:
            other = n.kernel is not None and n.kernel in base_kernels
            changes.append(Change(n.name, None, n.value, None, "other path" if other else "new",
                                  n.path))
    return changes


def path_differences(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per kernel measured on different native paths in BASE and NEW."""
    def paths(report: dict[str, Any]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for f in figures(report).values():
            if f.kernel is not None:
                out.setdefault(f.kernel, set()).add(f.path or "?")
        return out

    pb, pn = paths(base), paths(new)
    lines = []
    for kernel in pb:
        if kernel in pn and pb[kernel] != pn[kernel] and not pb[kernel] & pn[kernel]:
            lines.append(f"{kernel}: base ran {'/'.join(sorted(pb[kernel]))}, "
                         f"new ran {'/'.join(sorted(pn[kernel]))}")
    return lines


def run_checks(new: dict[str, Any]) -> list[str]:
    """Failures that no speed makes up for: lost transactions, disagreeing nodes."""
    problems = []
    if "tps" in new:
        if new.get("lost", 0):
            problems.append(f"the TPS run lost {new['lost']} accepted transactions")
        if not new.get("nodes_agree", False):
            problems.append("the nodes of the TPS run did not agree")
        if new.get("duplicates", 0):
            problems.append(f"the TPS run committed {new['duplicates']} transactions twice")
    return problems


def format_table(changes: list[Change]) -> str:
    lines = [f"{'figure':<46} {'path':<9} {'base':>12} {'new':>12} {'change':>9}  verdict"]
    for c in changes:
        base = f"{c.base:12.3f}" if c.base is not None else f"{'-':>12}"
        new = f"{c.new:12.3f}" if c.new is not None else f"{'-':>12}"
        pct = f"{c.change_pct:+8.1f}%" if c.change_pct is not None else f"{'-':>9}"
        lines.append(f"{c.name:<46} {c.path or '-':<9} {base} {new} {pct}  {c.verdict}")
    return "\n".join(lines)


def compare_files(base_path: str, new_path: str,
                  max_regression_pct: float = MAX_REGRESSION_PCT_DEFAULT) -> tuple[int, str]:
    """Exit code (0 pass, 1 regression) and the printed table."""
    from engine.benchmarks.machine import describe

    base, new = load_report(base_path), load_report(new_path)
    changes = compare_reports(base, new, max_regression_pct)
    problems = run_checks(new)
    bad = [c for c in changes if c.verdict in ("REGRESSION", "missing")]
    compared = [c for c in changes if c.verdict in ("ok", "REGRESSION")]
    differ = path_differences(base, new)
    text = [f"base: {describe(base.get('machine', {}))}",
            f"new:  {describe(new.get('machine', {}))}",
            (f"threshold: a figure may lose at most {max_regression_pct:g}% "
             "(higher-is-better ratios; latency: may grow at most that much)"), "",
            format_table(changes), ""]
    if differ:
        text.append("NOTE: the native paths differ, so these kernels are not compared (only "
                    "figures of the same path are): " + "; ".join(differ))
    if not compared and any(c.verdict == "other path" for c in changes) and not bad \
            and not problems:
        text.append("NOTHING COMPARABLE: every kernel of BASE ran on another native path in "
                    "NEW; measure both on one path (ENGINE_FORCE_ISA) to gate")
        return 2, "\n".join(text)
    text += [f"FAIL: {p}" for p in problems]
    if bad:
        text.append(f"FAIL: {len(bad)} figure(s) regressed beyond {max_regression_pct:g}% "
                    f"or are missing: {', '.join(_key(c.name, c.path) for c in bad)}")
    if not bad and not problems:
        text.append(f"PASS: no figure regressed beyond {max_regression_pct:g}%")
    return (1 if bad or problems else 0), "\n".join(text)
