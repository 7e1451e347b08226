"""`engine light verify`: verify a header of a running chain from a trusted one, over RPC.

    engine light verify --rpc http://127.0.0.1:26657 --trusted-height 1 \\
        --trusted-hash 5f3c... --height 5000 [--witness URL ...] [--sequential] \\
        [--crypto sm2-sm3]

Prints the verified header's hash (hex) and exits 0; otherwise prints ``error: <reason>:
<why>`` on stderr and exits 1 when the header was refused (``invalid``, ``trust_expired``,
``not_enough_trust``, ``fork_detected``), 3 when a node could not answer, 2 on bad arguments.
"""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("light", help="light client: verify another chain's headers")
    light = p.add_subparsers(dest="light_command", metavar="WHAT")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    v = light.add_parser("verify", help="verify the header at --height from a trusted header")
    v.add_argument("--rpc", required=True, metavar="URL", help="the primary node's RPC address")
    v.add_argument("--trusted-height", type=int, required=True, metavar="H")
    v.add_argument("--trusted-hash", required=True, metavar="HEX",
                   help="the hash of the trusted header (64 hex digits), obtained out of band")
    v.add_argument("--height", type=int, default=None, metavar="H2",
                   help="the height to verify (default: the primary's latest)")
    v.add_argument("--witness", action="append", default=[], metavar="URL",
                   help="a node to cross-check the verified header with (repeatable)")
    v.add_argument("--trusting-period", type=float, default=7 * 24 * 3600, metavar="SECONDS",
                   help="how old the trusted header may be (default: one week)")
    v.add_argument("--sequential", action="store_true",
                   help="verify every height instead of skipping")
    v.add_argument("--crypto", default=None, metavar="SUITE",
                   help="the chain's crypto suite: ed25519-blake3 (default) or sm2-sm3")
    v.add_argument("--json", action="store_true", help="print a JSON report instead of the hash")
    v.set_defaults(func=_verify)


def _fail(code: int, reason: str, message: str) -> int:
    print(f"error: {reason}: {message}", file=sys.stderr)
    return code


def _verify(args) -> int:
    from engine.light import ForkDetected, LightClient, LightClientError, RpcSource
    from engine.light.sources import SourceUnavailable

    try:
        trusted_hash = bytes.fromhex(args.trusted_hash)
    except ValueError:
        return _fail(2, "bad_argument", "--trusted-hash must be hex")
    if len(trusted_hash) != 32:
        return _fail(2, "bad_argument", "--trusted-hash must be 64 hex digits (32 bytes)")
    if args.trusted_height < 1:
        return _fail(2, "bad_argument", "--trusted-height must be at least 1")
    if args.trusting_period <= 0:
        return _fail(2, "bad_argument", "--trusting-period must be positive")
    from engine.suite import get_suite

    try:
        suite = get_suite(args.crypto)
    except ValueError as e:
        return _fail(2, "bad_argument", f"--crypto: {e}")
    try:
        primary = RpcSource(args.rpc, suite=suite)
        witnesses = [RpcSource(u, suite=suite) for u in args.witness]
    except ValueError as e:
        return _fail(2, "bad_argument", str(e))
    try:
        height = args.height if args.height is not None else primary.latest_height()
        if height < args.trusted_height:
            return _fail(2, "bad_argument", f"--height {height} is below the trusted height")
        client = LightClient.from_trusted_hash(
            primary, args.trusted_height, trusted_hash, witnesses=witnesses,
            trusting_period_ms=int(args.trusting_period * 1000))
        lb = client.verify_sequential(height) if args.sequential else client.verify_to(height)
        client.detect_fork(height)
    except SourceUnavailable as e:
        return _fail(3, e.reason, str(e))
    except ForkDetected as e:
        print(json.dumps(e.evidence.to_json()), file=sys.stderr)
        return _fail(1, e.reason, str(e))
    except LightClientError as e:
        return _fail(1, e.reason, str(e))
    finally:
        primary.close()
    if args.json:
        print(json.dumps({"height": lb.height, "hash": lb.hash().hex(),
                          "app_hash": lb.header.app_hash.hex(),
                          "verified_headers": client.verified_count,
                          "faulty_witnesses": client.faulty_witnesses}))
    else:
        print(lb.hash().hex())
    return 0
