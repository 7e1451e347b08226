"""The `engine` command line (also `python -m engine`).

Every command module lives in this package, one per capability: a module listed in
SUBCOMMAND_MODULES defines ``register(subparsers)``, which adds a parser whose
``func(args) -> int`` runs the command. Command modules import what they run lazily, inside
``func``, so ``engine --help`` stays fast and the layers below never import the CLI.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# In the order `engine --help` lists them.
SUBCOMMAND_MODULES = (
    "engine.cli.node",        # init, testnet, start, status, demo
    "engine.cli.valset",      # join, tx
    "engine.cli.sim",         # sim
    "engine.cli.store",       # store check / store info
    "engine.cli.bench",       # bench kernels / tps / compare
    "engine.cli.info",        # native-info
    "engine.cli.faults",      # faults run / list
    "engine.cli.light",       # light verify
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine", description="BFT consensus engine with native hot paths")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
