"""Two soak runs side by side (``make soak`` CSVs): RSS and anonymous RSS per node over time.

    python -m engine.faults.soak_compare BEFORE.csv AFTER.csv OUT.png [--labels A B]

Prints, per run and node, the anonymous RSS averaged over the second and the last quarter of
the run (the soak's "levels off" windows) and the slope between them.
"""
from __future__ import annotations

import argparse
import csv
import sys


def load(path: str) -> dict[int, list[tuple[float, float, float]]]:
    """node -> [(t_s, rss_mib, anon_mib)] with a new process of a node kept on the same line."""
    out: dict[int, list[tuple[float, float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(int(row["node"]), []).append(
                (float(row["t_s"]), float(row["rss_mib"]), float(row["rss_anon_mib"])))
    return out


def quarters(series: list[tuple[float, float, float]], duration_s: float,
             column: int) -> tuple[float, float]:
    q = duration_s / 4
    mid = [s[column] for s in series if q <= s[0] < 2 * q]
    last = [s[column] for s in series if s[0] >= 3 * q]
    if not mid or not last:
        return float("nan"), float("nan")
    return sum(mid) / len(mid), sum(last) / len(last)


def summary(label: str, runs: dict[int, list[tuple[float, float, float]]]) -> list[str]:
    duration = max(s[-1][0] for s in runs.values())
    lines = []
    for node, series in sorted(runs.items()):
        for column, what in ((2, "anonymous"), (1, "RSS")):
            mid, last = quarters(series, duration, column)
            slope = (last - mid) / (duration / 2) * 60
            lines.append(f"{label} node{node} {what:9s}: {mid:6.1f} -> {last:6.1f} MiB "
                         f"(2nd -> 4th quarter, {slope:+.2f} MiB/min)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.faults.soak_compare",
                                 description=__doc__)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("out")
    ap.add_argument("--labels", nargs=2, default=["before", "after"])
    a = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load(a.before), load(a.after)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, run, label in zip(axes, runs, a.labels):
        for node, series in sorted(run.items()):
            t = [s[0] for s in series]
            line, = ax.plot(t, [s[1] for s in series], lw=1, label=f"node{node} RSS")
            ax.plot(t, [s[2] for s in series], lw=1, ls="--", color=line.get_color())
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("seconds")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MiB (solid: RSS, dashed: anonymous)")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    for label, run in zip(a.labels, runs):
        print("\n".join(summary(label, run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
