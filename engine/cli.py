"""The `engine` command line (also `python -m engine`).

Each capability registers its own subcommand: a module listed in SUBCOMMAND_MODULES defines
``register(subparsers)``, which adds a parser whose ``func(args) -> int`` runs the command.
Modules not present in this build are skipped, so the help lists exactly what works.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# In the order `engine --help` lists them.
SUBCOMMAND_MODULES = (
    "engine.node_cli",        # init, testnet, start, status, demo
    "engine.sim.cli",         # sim
    "engine.store.cli",       # store check / store info
    "engine.bench_cli",       # bench kernels / tps / compare
    "engine.info_cli",        # native-info
    "engine.testnet.cli",     # faults run / list
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine", description="BFT consensus engine with native hot paths")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):  # the module itself is absent
                continue
            raise
        module.register(sub)
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
