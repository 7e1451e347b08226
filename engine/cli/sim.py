"""`engine sim`: run the deterministic simulator over many seeds and report violations.

Exit status is 1 when any seed violates agreement, validity, no-double-sign, certificate,
recovery or liveness checks; each failing seed is printed with the command that replays it.
``ENGINE_SIM_SEED`` in the environment is the same as ``--seed``.
"""
from __future__ import annotations

import argparse
import logging
import os
import time

from engine.sim.faults import BEHAVIOURS
from engine.sim.world import SimConfig, run_seed

#: Failing seeds printed in full (the rest are counted).
FAILURES_SHOWN_MAX = 10


def register(sub) -> None:
    p = sub.add_parser("sim", help="run the deterministic consensus simulator")
    p.add_argument("--validators", type=int, default=4, help="validators (default 4)")
    p.add_argument("--byzantine", type=int, default=0, help="Byzantine validators (default 0)")
    p.add_argument("--seeds", type=int, default=100, help="seeds to run (default 100)")
    p.add_argument("--seed", type=int, default=None, help="run only this seed (replay)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed of the range")
    p.add_argument("--heights", type=int, default=5, help="heights each run decides at least")
    p.add_argument("--behaviours", default=",".join(BEHAVIOURS),
                   help=f"Byzantine behaviours to draw from (default {','.join(BEHAVIOURS)})")
    p.add_argument("--zero-delay", action="store_true", help="no network delay and no faults")
    p.add_argument("--valset-changes", type=int, default=0,
                   help="validator-set changes (joins, leaves, power shifts) drawn per seed; "
                        "2 spare nodes may join (default 0: a fixed set)")
    p.add_argument("--verbose", action="store_true", help="print one line per seed")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes (results and output order do not depend on it)")
    p.set_defaults(func=_run)


def _config(args: argparse.Namespace) -> SimConfig:
    behaviours = tuple(b for b in args.behaviours.split(",") if b)
    unknown = [b for b in behaviours if b not in BEHAVIOURS]
    if unknown or not behaviours:
        raise SystemExit(f"--behaviours: unknown {unknown}; choose from {','.join(BEHAVIOURS)}")
    if not 1 <= args.validators <= 1000:
        raise SystemExit("--validators must be 1..1000")
    if not 0 <= args.byzantine <= args.validators:
        raise SystemExit("--byzantine must be 0..validators")
    if args.heights < 1 or args.seeds < 1:
        raise SystemExit("--heights and --seeds must be at least 1")
    if not 0 <= args.valset_changes <= 100:
        raise SystemExit("--valset-changes must be 0..100")
    return SimConfig(validators=args.validators, byzantine=args.byzantine, heights=args.heights,
                     behaviours=behaviours, zero_delay=args.zero_delay,
                     valset_changes=args.valset_changes)


def _results(seeds, config: SimConfig, jobs: int):
    """Seed results in seed order, computed in ``jobs`` processes (each seed is independent
    and deterministic, so parallelism changes nothing but the wall time)."""
    if jobs <= 1 or len(seeds) < 2:
        return map(run_seed, seeds, [config] * len(seeds))
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=jobs)
    return pool.map(run_seed, seeds, [config] * len(seeds), chunksize=16)


def _run(args: argparse.Namespace) -> int:
    # The node's driver logs recoveries (Resume after a WAL loss) as warnings; in a campaign of
    # thousands of seeds they are expected, and the checker reports what matters.
    logging.getLogger("engine.node").setLevel(logging.ERROR)
    config = _config(args)
    env_seed = os.environ.get("ENGINE_SIM_SEED")
    if args.seed is None and env_seed:
        args.seed = int(env_seed)
    seeds = [args.seed] if args.seed is not None else \
        range(args.first_seed, args.first_seed + args.seeds)
    started = time.perf_counter()
    heights = rounds = decisions = messages = evidence = wal_losses = changes = refused = 0
    early = reused = 0
    failed = []
    for seed, r in zip(seeds, _results(seeds, config, args.jobs)):
        heights += r.heights_decided
        rounds += r.rounds_total
        decisions += r.decisions
        messages += r.messages
        evidence += r.evidence_committed
        wal_losses += r.wal_losses
        changes += r.valset_changes
        refused += r.removed_votes_refused
        early += r.speculations
        reused += r.speculations_reused
        if args.verbose or args.seed is not None:
            print(f"seed {seed}: heights={r.heights_decided} messages={r.messages} "
                  f"virtual={r.virtual_ms}ms violations={len(r.violations)} | {r.plan}")
        if r.violations:
            failed.append(r)
            if len(failed) <= FAILURES_SHOWN_MAX:
                print(f"FAIL seed {seed}: {r.plan}")
                for v in r.violations[:5]:
                    print(f"    {v}")
                print(f"    replay: engine sim --validators {config.validators} "
                      f"--byzantine {config.byzantine} --heights {config.heights} "
                      f"--behaviours {','.join(config.behaviours)} "
                      f"--valset-changes {config.valset_changes} --seed {seed}")
    elapsed = time.perf_counter() - started
    n = len(seeds)
    print(f"seeds={n} validators={config.validators} byzantine={config.byzantine} "
          f"heights_decided={heights} mean_rounds_per_height="
          f"{rounds / decisions if decisions else 0:.3f} messages={messages} "
          f"evidence_committed={evidence} wal_tail_losses={wal_losses} "
          + (f"valset_changes={changes} removed_votes_refused={refused} "
             if config.valset_changes else "")
          + f"early_executions={early} reused={reused} "
          + f"violations={len(failed)} seconds={elapsed:.1f}")
    return 1 if failed else 0
