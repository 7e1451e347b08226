"""Deterministic simulation of N validators running the real consensus core.

``run_seed(seed, SimConfig(...))`` builds a ``World`` (world.py): a virtual clock, a seeded
network with a per-seed fault mix (faults.py), Byzantine behaviours (equivocating votes and
proposals, silence, invalid blocks, twins) and continuous invariant checks (checker.py). The same
seed and config replay the same run exactly. ``engine sim`` (cli.py) runs many seeds.
"""
from engine.sim.world import SeedResult, SimConfig, World, run_seed

__all__ = ["SeedResult", "SimConfig", "World", "run_seed"]
