"""Test-only node hooks, loaded by engine/node.py only when ``ENGINE_TEST_FAULTS=1`` is set
and the node home holds ``testing.toml`` (written by the fault-injection runner, never by
``engine init``/``engine testnet``).

``testing.toml`` tables:

- ``[chaos]``: engine.net.chaos.ChaosConfig fields — the chaos transport for this node;
- ``[byzantine]``: engine.testnet.byzantine — equivocate votes and/or proposals;
- always: the signature log ``HOME/testing/signatures.log``, one line per signature this node
  made and sent (``own``) and per valid validator signature it received (``recv``):
  ``<own|recv> <public key hex> <sign bytes hex>``. The invariant checker reads these logs to
  prove that no honest validator signed two different messages for one (height, round, step).
"""
from __future__ import annotations

import logging
import os
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

log = logging.getLogger("engine.testnet")

TESTING_FILE = "testing.toml"
SIGNATURE_LOG = os.path.join("testing", "signatures.log")
ENV_SWITCH = "ENGINE_TEST_FAULTS"

__all__ = ["ENV_SWITCH", "SIGNATURE_LOG", "TESTING_FILE", "install"]


def load_settings(home: str) -> dict[str, Any] | None:
    path = os.path.join(home, TESTING_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            obj = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: cannot read test settings ({e})") from e
    unknown = sorted(set(obj) - {"chaos", "byzantine"})
    if unknown:
        raise ValueError(f"{path}: unknown tables {unknown}")
    return obj


def install(node: Any) -> None:
    """Attach the test-only behaviour ``node.home``'s testing.toml asks for (if any)."""
    settings = load_settings(node.home.path)
    if settings is None:
        return
    log.warning("TEST-ONLY fault hooks active on %s: %s", node.config.moniker,
                sorted(settings) or "signature log only")
    _log_signatures(node)
    if "chaos" in settings:
        from engine.net.chaos import Chaos, ChaosConfig

        node.peers.chaos = Chaos(ChaosConfig.from_dict(settings["chaos"]))
    if "byzantine" in settings:
        from engine.testnet import byzantine

        byzantine.install(node, settings["byzantine"])


def _log_signatures(node: Any) -> None:
    path = os.path.join(node.home.path, SIGNATURE_LOG)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the node
    own_key = node.home.validator_key.public_key.hex()
    persist = node._persist_signature
    verify_batch = node._verify_and_remember

    def persist_signature(height, round, step, sign_bytes, signature) -> bool:
        ok = persist(height, round, step, sign_bytes, signature)
        if ok:
            out.write(f"own {own_key} {sign_bytes.hex()}\n")
        return ok

    def verify_and_remember(public_keys, messages, signatures):
        verdicts = verify_batch(public_keys, messages, signatures)
        out.write("".join(f"recv {pk.hex()} {m.hex()}\n"
                          for pk, m, ok in zip(public_keys, messages, verdicts) if ok))
        return verdicts

    node._persist_signature = persist_signature
    node._verify_and_remember = verify_and_remember
