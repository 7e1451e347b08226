"""`engine join | tx`: bring a new node into a running network, and send a signed transaction
(e.g. the kvstore's ``val:<public key hex>=<power>`` that changes the validator set)."""
from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    p = sub.add_parser("join", help="create a home that joins an existing network "
                                    "(a full node until the set adds its validator key)")
    p.add_argument("--home", required=True, help="node home folder to create")
    p.add_argument("--from", dest="from_home", required=True,
                   help="a home of the network (its genesis and peers are copied)")
    p.add_argument("--p2p-port", type=int, required=True)
    p.add_argument("--rpc-port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1", help="p2p and RPC host of the new node")
    p.set_defaults(func=_join)

    p = sub.add_parser("tx", help="sign a transaction with a key file and submit it, waiting "
                                  "for its commit")
    p.add_argument("--rpc", required=True, help="RPC base URL, e.g. http://127.0.0.1:26657")
    p.add_argument("--key", required=True, help="key file (the format of validator_key.json)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the commit")
    p.add_argument("payload", help="transaction payload, e.g. key=value or val:<hex>=<power>")
    p.set_defaults(func=_tx)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _join(args: argparse.Namespace) -> int:
    from engine.node.join import init_joining_home

    try:
        home = init_joining_home(args.home, args.from_home, p2p_port=args.p2p_port,
                                 rpc_port=args.rpc_port, host=args.host)
    except ValueError as e:
        return _fail(str(e))
    print(json.dumps({"home": home.path, "chain_id": home.genesis.chain_id,
                      "validator": home.validator_key.public_key.hex(),
                      "p2p": f"{home.config.p2p_host}:{home.config.p2p_port}",
                      "rpc": home.rpc_url}, indent=2))
    return 0


def _tx(args: argparse.Namespace) -> int:
    import time

    from engine.client import Client, ClientError
    from engine.config import _read_key
    from engine.suite import SM2_SM3, get_suite
    from engine.tx import encode_tx

    try:
        with open(args.key) as f:  # the key file names its suite ("type": "sm2"), or is Ed25519
            kind = json.load(f).get("type")
        key = _read_key(args.key, get_suite(SM2_SM3 if kind == "sm2" else None))
        client = Client(args.rpc, timeout_s=args.timeout + 5)
        chain_id = client.status()["chain_id"]
        # A microsecond clock as the nonce: fresh for every send of the same key.
        envelope = encode_tx(key, time.time_ns() // 1000, args.payload.encode(), chain_id)
        answer = client.submit_tx(envelope, wait_commit=True,
                                  timeout_ms=int(args.timeout * 1000))
    except (ValueError, ClientError) as e:
        return _fail(str(e))
    print(json.dumps(answer, indent=2))
    result = answer.get("result") if isinstance(answer, dict) else None
    code = result.get("code", 0) if isinstance(result, dict) else answer.get("code", 0)
    return 0 if code == 0 else 1
