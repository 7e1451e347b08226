"""`engine bench kernels | tps | compare`: benchmarks that state their setup and gate CI.

See engine/benchmarks/ for what each measures; README "Benchmarks" for how to read the numbers.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from typing import Any


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: kernels, end-to-end TPS, compare reports")
    bench = p.add_subparsers(dest="bench_command", metavar="WHAT")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    k = bench.add_parser("kernels", help="native kernels next to same-run baselines")
    k.add_argument("--json", metavar="FILE", help="write the report here")
    k.add_argument("--quick", action="store_true", help="small inputs, fewer repeats")
    k.add_argument("--only", metavar="NAMES", default=None,
                   help="comma-separated subset of: tx_ids, merkle, ed25519_single, "
                        "ed25519_batch, verify_txs, tally, certificates, block_save, sm, "
                        "avx2_bulk")
    k.add_argument("--tx-bytes", type=int, default=250, help="envelope size (default 250)")
    k.set_defaults(func=_kernels)

    t = bench.add_parser("tps", help="committed TPS of a local testnet of separate processes")
    t.add_argument("--validators", type=int, default=4)
    t.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    t.add_argument("--tx-bytes", type=int, default=250, help="envelope size (default 250)")
    t.add_argument("--rate", default="max",
                   help="offered transactions/second, or 'max' (closed loop; default)")
    t.add_argument("--sweep", action="store_true",
                   help="a ladder of offered rates on one testnet; plots latency vs throughput")
    t.add_argument("--rates", default=None,
                   help="comma-separated ladder for --sweep (default: fractions of the max)")
    t.add_argument("--json", metavar="FILE", help="write the report here")
    t.add_argument("--plot", metavar="FILE.png", help="write a PNG plot here")
    t.add_argument("--base-port", type=int, default=0, help="default: pick free ports")
    t.add_argument("--profile", metavar="DIR", default=None,
                   help="record node0 with py-spy into DIR (flame SVG + top functions)")
    t.add_argument("--keep", action="store_true", help="keep the homes and node logs")
    t.add_argument("--crypto", default=None, choices=["ed25519-blake3", "sm2-sm3"],
                   help="the testnet's crypto suite; sm2-sm3 also runs the ed25519-blake3 "
                        "baseline with the same options in the same run")
    t.add_argument("--find-max", action="store_true",
                   help="search the highest offered rate the network sustains (a bounded "
                        "search of rungs; --rate sets the first rung, default 1000)")
    t.add_argument("--slo-p50-ms", type=float, default=500.0,
                   help="--find-max: the p50 latency a sustained rung must keep (default 500)")
    t.add_argument("--find-max-rungs", type=int, default=8,
                   help="--find-max: at most this many rungs (default 8)")
    t.add_argument("--net-latency-ms", type=int, default=0,
                   help="delay every message between the nodes by this many ms one way (the "
                        "test chaos transport: heights paced by the network, as across a WAN)")
    t.add_argument("--block-interval-ms", type=int, default=None,
                   help="the nodes' block_interval_ms (default: the node default, 100); "
                        "blocks are at least this far apart, so a low one leaves heights "
                        "paced by the work instead")
    t.add_argument("--app", default=None, metavar="MODULE:CLASS",
                   help="the nodes' application (default: the kvstore); it must take the "
                        "kvstore's key=value payloads, e.g. engine.examples.costly:CostlyKVStore "
                        "(a kvstore whose execution costs CPU)")
    t.add_argument("--app-setting", action="append", default=[], metavar="KEY=VALUE",
                   help="an [app_settings] entry of the nodes (repeatable), e.g. "
                        "execution_us_per_tx=50")
    t.add_argument("--no-optimistic-execution", action="store_true",
                   help="the nodes execute blocks only once decided (optimistic_execution = "
                        "false), to compare")
    t.add_argument("--trace-txs", action="store_true",
                   help="trace one transaction in 16 through the nodes and report where "
                        "their latency goes (posting, admission, gossip, the wait for a "
                        "block, consensus, storage)")
    t.add_argument("--retain-blocks", type=int, default=None, metavar="N",
                   help="the nodes' retain_blocks (default: keep every block): pruning runs "
                        "during the load; the final check counts a pruned block with the "
                        "transaction ids node 0 reported for it during the run")
    t.set_defaults(func=_tps)

    lt = bench.add_parser("light", help="light-client verification next to single verifies")
    lt.add_argument("--quick", action="store_true", help="tiny sizes (the smoke run)")
    lt.add_argument("--json", metavar="FILE", help="write the report here")
    lt.add_argument("--crypto", default=None, choices=["ed25519-blake3", "sm2-sm3"],
                    help="the chains' crypto suite (default ed25519-blake3)")
    lt.set_defaults(func=_light)
    s = bench.add_parser("sync", help="state sync vs block sync from genesis vs the ceiling")
    s.add_argument("--blocks", type=int, default=2000, help="chain length (default 2000)")
    s.add_argument("--keys", type=int, default=100_000, help="kvstore keys (default 100000)")
    s.add_argument("--json", metavar="FILE", help="write the report here")
    s.set_defaults(func=_sync)

    pr = bench.add_parser("prune", help="store file size under steady load with pruning")
    pr.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    pr.add_argument("--rate", type=int, default=500, help="transactions/second (default 500)")
    pr.add_argument("--retain-blocks", type=int, default=100, help="retain_blocks (default 100)")
    pr.add_argument("--json", metavar="FILE", help="write the report (with every sample) here")
    pr.add_argument("--plot", metavar="FILE.png", help="plot the file size curve here")
    pr.set_defaults(func=_prune)

    c = bench.add_parser("compare", help="exit 1 when NEW regressed against BASE")
    c.add_argument("base", metavar="BASE.json")
    c.add_argument("new", metavar="NEW.json")
    c.add_argument("--max-regression", type=float, default=10.0, metavar="PCT",
                   help="largest loss allowed per figure, percent (default 10)")
    c.set_defaults(func=_compare)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _write_report(args: argparse.Namespace, kind: str, report: dict[str, Any],
                  plot: Any) -> None:
    """``--json`` and ``--plot`` of a benchmark command (a plot needs matplotlib)."""
    if args.json:
        write_json(args.json, _envelope(kind, report))
        print(f"report written to {args.json}")
    if args.plot:
        try:
            plot(report, args.plot)
            print(f"plot written to {args.plot}")
        except ImportError:
            print("warning: matplotlib is not installed, no plot written", file=sys.stderr)


def _envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    from engine.benchmarks import REPORT_SCHEMA
    from engine.benchmarks.machine import machine_info

    return {"schema": REPORT_SCHEMA, "kind": kind,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "machine": machine_info(), **body}


def write_json(path: str, report: dict[str, Any]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def _kernels(args: argparse.Namespace) -> int:
    from engine.benchmarks.kernels import run_kernels
    from engine.benchmarks.machine import describe, machine_info

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    print(f"engine bench kernels on {describe(machine_info())}", flush=True)
    try:
        section = run_kernels(quick=args.quick, only=only, tx_bytes=args.tx_bytes,
                              progress=lambda line: print(line, flush=True))
    except ValueError as e:
        return _fail(str(e))
    except RuntimeError as e:  # outputs differed from the baseline's
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    if args.json:
        write_json(args.json, _envelope("kernels", {"kernels": section}))
        print(f"report written to {args.json}")
    return 0


def _light(args: argparse.Namespace) -> int:
    from engine.benchmarks.light import run_light
    from engine.benchmarks.machine import describe, machine_info

    print(f"engine bench light on {describe(machine_info())}", flush=True)
    try:
        rows = run_light(quick=args.quick, progress=lambda line: print(line, flush=True),
                         crypto_suite=args.crypto)
    except RuntimeError as e:  # verdicts differed from the baseline's
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    if args.json:
        write_json(args.json, _envelope("light", {"light": rows}))
        print(f"report written to {args.json}")
    return 0


def _tps(args: argparse.Namespace) -> int:
    from engine.benchmarks.tps import TpsOptions, run_tps_command

    try:
        opts = TpsOptions.from_args(args)
    except ValueError as e:
        return _fail(str(e))
    report, ok = run_tps_command(opts)
    if report is None:
        return 1
    from engine.benchmarks.plot import plot_tps

    _write_report(args, "tps", report, plot_tps)
    return 0 if ok else 1


def _sync(args: argparse.Namespace) -> int:
    import asyncio

    from engine.benchmarks.machine import describe, machine_info
    from engine.benchmarks.sync import run_sync

    print(f"engine bench sync on {describe(machine_info())}", flush=True)
    try:
        report = asyncio.run(run_sync(blocks=args.blocks, keys=args.keys,
                                      progress=lambda line: print(line, flush=True)))
    except ValueError as e:
        return _fail(str(e))
    except RuntimeError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    if args.json:
        write_json(args.json, _envelope("sync", report))
        print(f"report written to {args.json}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    import asyncio

    from engine.benchmarks.sync import run_prune

    report = asyncio.run(run_prune(duration_s=args.duration, rate_tps=args.rate,
                                   retain_blocks=args.retain_blocks,
                                   progress=lambda line: print(line, flush=True)))
    for s in report["samples"][::max(1, len(report["samples"]) // 20)]:
        print(f"  t={s['t_s']:6.1f}s  file {s['file_bytes'] / 2**20:7.2f} MiB  "
              f"heights {s['base']}..{s['latest']}")
    print(f"file at half-time {report['file_bytes_at_half'] / 2**20:.2f} MiB, at the end "
          f"{report['file_bytes_at_end'] / 2**20:.2f} MiB ({report['growth_second_half_pct']:+.1f}%"
          f" in the second half, {report['growth_last_quarter_pct']:+.1f}% in the last "
          f"quarter); {report['blocks_held_at_end']} blocks held; "
          f"{'stopped growing' if report['stopped_growing'] else 'STILL GROWING'}")
    from engine.benchmarks.sync import plot_prune

    _write_report(args, "prune", report, plot_prune)
    return 0 if report["stopped_growing"] else 1


def _compare(args: argparse.Namespace) -> int:
    from engine.benchmarks.compare import compare_files

    try:
        code, text = compare_files(args.base, args.new, args.max_regression)
    except (ValueError, KeyError) as e:
        return _fail(str(e))
    print(text)
    return code
