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
    prune = ssub.add_parser("prune", help="delete old blocks of a stopped node, keeping the "
                                          "newest N")
    prune.add_argument("--home", required=True, help="node home directory (or the store itself)")
    prune.add_argument("--retain", required=True, type=int, metavar="N",
                       help="blocks to keep (at least engine.limits.retain_blocks_min)")
    prune.set_defaults(func=_prune)
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


def _prune(args) -> int:
    """Prune a stopped node's store in bounded transactions (a crash or Ctrl-C at any point
    leaves a consistent store; running it again goes on). Kept snapshots are respected."""
    from engine import limits
    from engine.node.pruning import retain_height
    from engine.node.snapshots import SNAPSHOTS_DIR
    from engine.store import Store

    if args.retain < limits.retain_blocks_min:
        print(f"store prune FAILED: --retain must be at least {limits.retain_blocks_min} "
              f"(engine.limits.retain_blocks_min), not {args.retain}")
        return 2
    path = resolve(args.home)
    if not os.path.exists(os.path.join(path, "data.mdb")):
        print(f"store prune FAILED: no store under {args.home!r}")
        return 1
    snapshot_dir = os.path.join(args.home, SNAPSHOTS_DIR)
    heights = [int(n) for n in os.listdir(snapshot_dir) if n.isdigit()] \
        if os.path.isdir(snapshot_dir) else []
    try:
        with Store(path) as store:
            before = store.info()
            target = retain_height(store.latest_height(), args.retain,
                                   min(heights) if heights else None)
            removed = 0
            while store.base_height() and target > store.base_height():
                removed += store.prune(target, blocks_max=limits.prune_blocks_per_step)
            after = store.info()
    except StoreError as e:  # e.g. the node is running (LMDB lock) or the disk is full
        print(f"store prune FAILED: {e}")
        return 1
    print(json.dumps({"removed_blocks": removed, "base_height": after["base_height"],
                      "latest_height": after["latest_height"],
                      "file_bytes": after["file_bytes"],
                      "pages_reusable_before": before["pages_reusable"],
                      "pages_reusable_after": after["pages_reusable"]}, indent=2))
    return 0
