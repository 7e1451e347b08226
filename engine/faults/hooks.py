"""Test-only node seams, built by ``engine start`` only when ``ENGINE_TEST_FAULTS=1`` is set
and the node home holds ``testing.toml`` (written by the fault-injection runner and by
``engine bench tps --net-latency-ms``, never by ``engine init``/``engine testnet``). They wrap
the node's ports (engine/node/ports.py); the node itself imports nothing from here.

``testing.toml`` tables:

- ``[chaos]``: engine.net.chaos.ChaosConfig fields — the chaos transport for this node;
- ``[byzantine]``: engine.faults.byzantine — equivocate votes and/or proposals;
- always: the signature log ``HOME/testing/signatures.log``, one line per signature this node
  made and sent (``own``) and per valid validator signature it received (``recv``):
  ``<own|recv> <public key hex> <sign bytes hex>``. The invariant checker reads these logs to
  prove that no honest validator signed two different messages for one (height, round, step).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from engine.node.ports import NodeSeams

log = logging.getLogger("engine.faults")

TESTING_FILE = "testing.toml"
SIGNATURE_LOG = os.path.join("testing", "signatures.log")
ENV_SWITCH = "ENGINE_TEST_FAULTS"

__all__ = ["ENV_SWITCH", "SIGNATURE_LOG", "TESTING_FILE", "SignatureLog", "seams_for_home"]


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


class SignatureLog:
    """A signature observer writing ``own`` and ``recv`` lines (flushed per line)."""

    def __init__(self, path: str, own_key_hex: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._out = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the node
        self._own = own_key_hex

    def signed(self, height: int, round: int, step: int, sign_bytes: bytes,
               signature: bytes) -> None:
        self._out.write(f"own {self._own} {sign_bytes.hex()}\n")

    def received(self, public_keys: Sequence[bytes], messages: Sequence[bytes],
                 verdicts: Sequence[bool]) -> None:
        self._out.write("".join(f"recv {pk.hex()} {m.hex()}\n"
                                for pk, m, ok in zip(public_keys, messages, verdicts) if ok))

    def refused(self, height: int, round: int, step: int, reason: str,
                replaying: bool) -> None:
        pass


def seams_for_home(home: str) -> NodeSeams | None:
    """The seams ``home``'s testing.toml asks for, or None when it has none."""
    settings = load_settings(home)
    if settings is None:
        return None
    from engine.config import load_home

    loaded = load_home(home)
    log.warning("TEST-ONLY fault hooks active on %s: %s", loaded.config.moniker,
                sorted(settings) or "signature log only")
    observer = SignatureLog(os.path.join(home, SIGNATURE_LOG),
                            loaded.validator_key.public_key.hex())
    chaos = None
    if "chaos" in settings:
        from engine.net.chaos import Chaos, ChaosConfig

        chaos = Chaos(ChaosConfig.from_dict(settings["chaos"]))
    wrap = None
    if "byzantine" in settings:
        from engine.faults import byzantine

        wrap = byzantine.outbox_wrapper(loaded, settings["byzantine"])
    return NodeSeams(wrap_outbox=wrap, observer=observer, chaos=chaos)
