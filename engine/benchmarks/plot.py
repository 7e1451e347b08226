"""PNG plots of a TPS report (matplotlib, Agg backend, no display needed).

A sweep gives latency (p50, p95, p99) against committed throughput, one point per offered rate;
a single run gives committed transactions per second over time.
"""
from __future__ import annotations

from typing import Any


def plot_tps(report: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setup = report["setup"]
    title = (f"engine: {setup['validators']} validators, {setup['tx_bytes']} B txs, sync on — "
             f"{report['tps']:,.0f} TPS, p50 {report['latency_ms']['p50']} ms")
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    steps = report.get("steps", [])
    if len(steps) > 1:
        x = [s["tps"] for s in steps]
        for q, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^:")):
            ax.plot(x, [s["latency_ms"][q] for s in steps], style, label=f"latency {q}")
        for s in steps:
            ax.annotate(f"offered {s['offered_rate']}", (s["tps"], s["latency_ms"]["p50"]),
                        textcoords="offset points", xytext=(4, -12), fontsize=7)
        ax.set_xlabel("committed transactions per second")
        ax.set_ylabel("latency, submission to commit (ms)")
        ax.set_yscale("log")
        ax.legend()
    else:
        t = [p[0] for p in report.get("timeline", [])]
        n = [p[1] for p in report.get("timeline", [])]
        ax.bar(t, n, width=0.9, label="committed tx/s (node0)")
        ax.axhline(report["tps"], color="C1", linestyle="--", label="steady-state TPS")
        ax.set_xlabel("seconds since the load started")
        ax.set_ylabel("transactions committed per second")
        ax.legend()
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
