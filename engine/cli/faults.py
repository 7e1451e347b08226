"""`engine faults run SCENARIO.toml ...` and `engine faults list`: the fault-injection runner."""
from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import sys

DEFAULT_DIR = os.path.join("tests", "scenarios")


def register(sub) -> None:
    p = sub.add_parser("faults", help="run fault-injection scenarios against real processes")
    fsub = p.add_subparsers(dest="faults_command", metavar="ACTION")
    run = fsub.add_parser("run", help="run scenario files (TOML, see engine/faults/scenario.py)")
    run.add_argument("scenarios", nargs="+", help="scenario files")
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    run.add_argument("--keep", action="store_true", help="keep the work folder on success")
    run.add_argument("--workdir", default=None, help="work folder (default: a temporary one)")
    run.set_defaults(func=_run)
    ls = fsub.add_parser("list", help="list the scenarios of a folder")
    ls.add_argument("--dir", default=DEFAULT_DIR)
    ls.set_defaults(func=_list)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run(args: argparse.Namespace) -> int:
    from engine.faults.runner import ScenarioFailed, run_scenario
    from engine.faults.scenario import load_scenario

    failed = 0
    for path in args.scenarios:
        try:
            sc = load_scenario(path)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.seed is not None:
            sc = dataclasses.replace(sc, seed=args.seed)
        workdir = os.path.join(args.workdir, sc.name) if args.workdir else None
        try:
            report = run_scenario(sc, workdir=workdir, keep=args.keep)
        except (ScenarioFailed, KeyboardInterrupt) as e:
            print(f"FAILED {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"ok {report.summary()}")
    return 1 if failed else 0


def _list(args: argparse.Namespace) -> int:
    from engine.faults.scenario import load_scenario

    for path in sorted(glob.glob(os.path.join(args.dir, "*.toml"))):
        sc = load_scenario(path)
        tags = ",".join(t for t, on in (("quick", sc.quick), ("netns", sc.netns)) if on)
        print(f"{path}  [{tags}]  {sc.description}")
    return 0
