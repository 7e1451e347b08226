"""`engine init | testnet | start | status | demo`: set up, run and watch nodes."""
from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    p = sub.add_parser("init", help="create a single-validator node home")
    p.add_argument("--home", required=True, help="node home folder to create")
    p.add_argument("--chain-id", default=None, help="chain id (default: random)")
    _crypto_argument(p)
    _app_arguments(p)
    p.set_defaults(func=_init)

    p = sub.add_parser("testnet", help="create N validator homes sharing one genesis")
    p.add_argument("--validators", type=int, default=4, help="number of validators (default 4)")
    p.add_argument("--full-nodes", type=int, default=0,
                   help="non-validator homes node<N>.. that follow the chain (default 0); "
                        "set state_sync and its trust keys in one before its first start to "
                        "join from a snapshot")
    p.add_argument("--output", required=True, help="folder for node0, node1, ...")
    p.add_argument("--base-port", type=int, default=26656,
                   help="p2p port of node0; node i uses base+2i (p2p) and base+2i+1 (rpc)")
    p.add_argument("--chain-id", default=None)
    p.add_argument("--hosts", default=None,
                   help="comma-separated host of each node (default 127.0.0.1 for all)")
    _crypto_argument(p)
    _app_arguments(p)
    p.set_defaults(func=_testnet)

    p = sub.add_parser("start", help="run a node until SIGINT/SIGTERM")
    p.add_argument("--home", required=True)
    p.add_argument("--app", default=None,
                   help="application as package.module:ClassName (default: config, kvstore)")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=_start)

    p = sub.add_parser("status", help="print a node's GET /status as JSON")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--home", help="find the RPC address in this node's config")
    g.add_argument("--rpc", help="RPC base URL, e.g. http://127.0.0.1:26657")
    p.set_defaults(func=_status)

    p = sub.add_parser("demo", help="run a local 4-validator network under load, live view")
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    p.add_argument("--rate", type=int, default=2000, help="offered load, transactions/second")
    p.add_argument("--base-port", type=int, default=0, help="default: pick free ports")
    p.add_argument("--keep", action="store_true", help="keep the temporary homes")
    p.add_argument("--no-live", action="store_true", help="print lines instead of a live view")
    _crypto_argument(p)
    p.set_defaults(func=_demo)


def _crypto_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--crypto", default=None, choices=["ed25519-blake3", "sm2-sm3"],
                   help="the chain's crypto suite, written to genesis.json "
                        "(default ed25519-blake3)")


def _app_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", default=None,
                   help="application as package.module:ClassName, written to config.toml "
                        "(default: kvstore)")
    p.add_argument("--app-state", default=None, metavar="FILE",
                   help="JSON object file: the genesis app_state (handed to init_chain)")


def _app_settings(args: argparse.Namespace) -> dict:
    """The genesis app state and the app setting of ``--app-state`` and ``--app``."""
    out: dict = {}
    if args.app_state is not None:
        try:
            with open(args.app_state) as f:
                state = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"--app-state {args.app_state}: cannot read JSON ({e})") from e
        if not isinstance(state, dict):
            raise ValueError(f"--app-state {args.app_state}: must hold a JSON object")
        out["app_state"] = state
    if args.app is not None:
        from engine.app import load_app

        try:
            load_app(args.app)  # a typo shows here, not only at every node's start
        except (ValueError, TypeError) as e:
            print(f"warning: --app {args.app}: {e} (is it on PYTHONPATH where the nodes run?)",
                  file=sys.stderr)
        out["app"] = args.app
    return out


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _init(args: argparse.Namespace) -> int:
    from engine.config import init_home

    try:
        home = init_home(args.home, args.chain_id, crypto=args.crypto, **_app_settings(args))
    except ValueError as e:
        return _fail(str(e))
    print(json.dumps({"home": home.path, "chain_id": home.genesis.chain_id,
                      "crypto": home.genesis.crypto,
                      "validator": home.validator_key.public_key.hex(),
                      "p2p": f"{home.config.p2p_host}:{home.config.p2p_port}",
                      "rpc": home.rpc_url}, indent=2))
    return 0


def _testnet(args: argparse.Namespace) -> int:
    from engine.config import init_testnet

    hosts = args.hosts.split(",") if args.hosts else None
    try:
        homes = init_testnet(args.output, args.validators, base_port=args.base_port,
                             chain_id=args.chain_id, hosts=hosts, crypto=args.crypto,
                             full_nodes=args.full_nodes, **_app_settings(args))
    except ValueError as e:
        return _fail(str(e))
    print(f"chain {homes[0].genesis.chain_id} ({homes[0].genesis.crypto}): "
          f"{args.validators} validators, {args.full_nodes} full nodes")
    for h, host in zip(homes, hosts or ["127.0.0.1"] * len(homes)):
        print(f"  {h.path}  p2p {host}:{h.config.p2p_port}  rpc {h.rpc_url}")
    return 0


def _start(args: argparse.Namespace) -> int:
    import os

    from engine import allocator
    from engine.memtrace import install_from_env
    from engine.node import run_node_forever

    try:
        allocator.install()  # freed memory goes back to the OS (engine/allocator.py)
        install_from_env()  # heap snapshots when ENGINE_TRACEMALLOC is set (a diagnostic)
        seams = None
        if os.environ.get("ENGINE_TEST_FAULTS") == "1":
            # Test-only fault tooling (chaos transport, equivocation, signature log), active
            # only when HOME/testing.toml exists too: it wraps the node's ports.
            from engine.faults.hooks import seams_for_home

            seams = seams_for_home(args.home)
        return run_node_forever(args.home, app_spec=args.app, log_level=args.log_level,
                                seams=seams)
    except (ValueError, TypeError) as e:
        return _fail(str(e))
    except OSError as e:  # most often: the p2p or RPC port is taken
        return _fail(f"cannot start the node: {e}")


def _status(args: argparse.Namespace) -> int:
    from engine.client import Client, ClientError

    if args.home:
        from engine.config import load_home

        try:
            url = load_home(args.home).rpc_url
        except ValueError as e:
            return _fail(str(e))
    else:
        url = args.rpc
    try:
        status = Client(url).status()
    except ClientError as e:
        return _fail(str(e))
    print(json.dumps(status, indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    return run_demo(validators=args.validators, duration_s=args.duration, rate=args.rate,
                    base_port=args.base_port, keep=args.keep, live=not args.no_live,
                    crypto=args.crypto)
