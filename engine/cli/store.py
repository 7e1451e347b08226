"""`engine store check` and `engine store info`: inspect a node's store from the shell."""
from __future__ import annotations

import importlib
import json
import os

from engine.store._records import StoreError


def register(sub) -> None:
    p = sub.add_parser("store", help="check or describe a node's block store")
    ssub = p.add_subparsers(dest="store_command", metavar="ACTION")
    check = ssub.add_parser("check", help="verify checksums, heights, links, tx index, WAL")
    check.add_argument("--home", required=True, help="node home directory (or the store itself)")
    check.add_argument("--verifier", default=None, metavar="MODULE:FUNCTION",
                       help="per-block hook fn(block, parent) -> problems (default: the "
                            "node's block format and certificates against HOME/genesis.json, "
                            "engine.node.check, when the home has one)")
    check.set_defaults(func=_check)
    info = ssub.add_parser("info", help="print heights, sizes and the schema")
    info.add_argument("--home", required=True, help="node home directory (or the store itself)")
    info.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def resolve(home: str) -> str:
    """The store directory for ``home``: ``home/store``, or ``home`` itself if it is a store."""
    from engine.store import store_path

    if os.path.exists(os.path.join(home, "data.mdb")):
        return home
    return store_path(home)


def _open(home: str):
    from engine.store import Store

    path = resolve(home)
    if not os.path.exists(os.path.join(path, "data.mdb")):
        raise StoreError(f"no store under {home!r} (looked for {path}/data.mdb)")
    return Store(path, readonly=True)


def _load_verifier(spec: str | None, home: str, store=None):
    """The ``--verifier MODULE:FUNCTION`` hook, or the node's verifier for ``home``."""
    if spec is None:
        from engine.node.check import verifier_for_home

        return verifier_for_home(home, store)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--verifier must be MODULE:FUNCTION, not {spec!r}")
    try:
        hook = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--verifier {spec}: {e}") from e
    if not callable(hook):
        raise TypeError(f"--verifier {spec} is not callable")
    return hook


def _check(args) -> int:
    from engine.store import check_store

    try:
        with _open(args.home) as store:
            verifier = _load_verifier(args.verifier, args.home, store)
            report = check_store(store, verify_block=verifier)
    except (StoreError, ValueError, TypeError) as e:  # a bad genesis.json or --verifier
        print(f"store check FAILED: {e}")
        return 1
    print(report.summary())
    return 0 if report.ok else 1


def _info(args) -> int:
    try:
        with _open(args.home) as store:
            info = store.info()
    except StoreError as e:
        print(f"store info FAILED: {e}")
        return 1
    print(json.dumps(info, indent=2))
    return 0
