"""Verifying another chain from inside an application: chain A accepts a fact about chain B
only when B's validators signed it (README "Verifying another chain").

:class:`CrossChainApp` is a kvstore (``key=value`` transactions work as usual) that also runs a
light client of one counterparty chain B in its state, deterministically (the block's time is
its clock):

- ``relay/header:`` + a binary light block of B (docs/formats.md "Light block"): accepted when it
  verifies from the latest B header A already trusts below it (adjacent, or a skip whose signers
  hold more than 1/3 of that header's set, and more than 2/3 of its own), within the trusting
  period. A keeps it under ``xc/lb/<height>``.
- ``relay/state:`` + JSON ``{"proof": StateProof}``: accepted when the proof of B's kvstore key
  at height H verifies against the app hash of B's header H + 1, which A must already trust.
  A then records the value under ``xc/value/<key>`` (or deletes it when the proof shows
  absence): the "accept only if proven" rule.
- ``relay/tx:`` + JSON ``{"height", "tx" (hex envelope), "proof" (GET /tx's proof)}``: accepted
  when B's transaction is in B's trusted header of that height; recorded under
  ``xc/tx/<tx id hex>``.

Genesis ``app_state``: ``{"counterparty_chain_id": "...", "trusted_light_block": "<hex of a
binary light block of B>", "trusting_period_ms": N (optional), "counterparty_crypto":
"ed25519-blake3" or "sm2-sm3" (optional, default ed25519-blake3: B's crypto suite, in which
its light blocks, state proofs and transaction proofs are read)}`` (plus ordinary kvstore
entries). A and B need not share a suite: an Ed25519 chain can follow an SM2/SM3 one. Every
refusal is a failed transaction with the reason in its log; ``check_tx`` runs
the same checks against committed state, so a bad proof does not reach a block.

:func:`relay` is the relayer: it reads what A trusts, verifies B's headers up to the one that
proves the fact with its own light client (learning which intermediate headers A needs), and
submits those headers and the proof to A.
"""
from __future__ import annotations

import json
import struct
from typing import Any

from engine.app import (
    BlockResult,
    CheckResult,
    InitResult,
    KVStoreApp,
    QueryResult,
    TxResult,
    parse_kv,
)
from engine.errors import ProtocolError
from engine.light.block import LightBlock
from engine.light.client import TRUSTING_PERIOD_MS_DEFAULT
from engine.light.proofs import tx_proof_from_json, verify_state_proof, verify_tx_inclusion
from engine.light.verify import LightClientError, verify_certificate, verify_light_block
from engine.statetree import StateProof
from engine.suite import ED25519_BLAKE3, Suite, get_suite

__all__ = ["CrossChainApp", "relay"]

HEADER_PREFIX = b"relay/header:"
STATE_PREFIX = b"relay/state:"
TX_PREFIX = b"relay/tx:"
_LB = b"xc/lb/"
_VALUE = b"xc/value/"
_TX = b"xc/tx/"
_CONFIG = b"xc/config"


def _lb_key(height: int) -> bytes:
    return _LB + struct.pack(">Q", height)


class _Refused(Exception):
    pass


class CrossChainApp(KVStoreApp):
    name = "crosschain"
    version = "1"

    def __init__(self) -> None:
        super().__init__()
        self._writes: dict[bytes, bytes | None] = {}

    # ---- genesis ----

    def init_chain(self, chain_id: str, app_state: dict[str, Any]) -> InitResult:
        state = dict(app_state)
        try:
            counterparty = str(state.pop("counterparty_chain_id")).encode()
            suite = get_suite(state.pop("counterparty_crypto", ED25519_BLAKE3))
            trusted = LightBlock.decode(bytes.fromhex(state.pop("trusted_light_block")), suite)
            period = int(state.pop("trusting_period_ms", TRUSTING_PERIOD_MS_DEFAULT))
        except (KeyError, ValueError, TypeError, ProtocolError) as e:
            raise ValueError(f"crosschain genesis app_state: {e}") from None
        if trusted.header.chain_id != counterparty:
            raise ValueError("trusted_light_block is not of counterparty_chain_id")
        trusted.check_basic()
        verify_certificate(counterparty, trusted)
        result = super().init_chain(chain_id, state)
        writes = dict(result.writes)
        writes[_CONFIG] = json.dumps({"chain_id": counterparty.decode(),
                                      "trusting_period_ms": period,
                                      "crypto": suite.name}).encode()
        writes[_lb_key(trusted.height)] = trusted.encode()
        self._pending = writes
        self.tree.load([], 0)
        self.last_app_hash = self.tree.apply(0, writes, lambda key: None)
        return InitResult(self.last_app_hash, writes)

    # ---- reading state (this block's writes first) ----

    def _get(self, key: bytes) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self.state.get(key)

    def _config(self) -> tuple[bytes, int, Suite]:
        raw = self._get(_CONFIG)
        if raw is None:
            raise _Refused("no counterparty configured")
        cfg = json.loads(raw)
        return (cfg["chain_id"].encode(), int(cfg["trusting_period_ms"]),
                get_suite(cfg.get("crypto", ED25519_BLAKE3)))

    def _suite(self) -> Suite:
        """The counterparty's crypto suite."""
        return self._config()[2]

    def _trusted(self, height: int) -> LightBlock | None:
        raw = self._get(_lb_key(height))
        return None if raw is None else LightBlock.decode(raw, self._suite())

    def _anchor_below(self, height: int) -> LightBlock:
        heights = [int.from_bytes(k[len(_LB):], "big") for k, _ in self.state.items(_LB)]
        heights += [int.from_bytes(k[len(_LB):], "big") for k, v in self._writes.items()
                    if k.startswith(_LB) and v is not None]
        below = [h for h in heights if h < height]
        if not below:
            raise _Refused(f"no trusted counterparty header below height {height}")
        lb = self._trusted(max(below))
        assert lb is not None
        return lb

    # ---- the three relay transactions ----

    def _header(self, raw: bytes, now_ms: int | None) -> dict[bytes, bytes | None]:
        chain_id, period, suite = self._config()
        try:
            lb = LightBlock.decode(raw, suite)
        except ProtocolError as e:
            raise _Refused(f"malformed light block: {e}") from None
        known = self._trusted(lb.height)
        if known is not None:
            if known.hash() != lb.hash():
                raise _Refused(f"conflicts with the trusted header of height {lb.height}")
            return {}
        if now_ms is None:  # check_tx: the decision waits for the block's time
            return {}
        try:
            verify_light_block(chain_id, self._anchor_below(lb.height), lb, now_ms=now_ms,
                               trusting_period_ms=period)
        except LightClientError as e:
            raise _Refused(f"{e.reason}: {e}") from None
        return {_lb_key(lb.height): lb.encode()}

    def _state(self, raw: bytes) -> dict[bytes, bytes | None]:
        try:
            proof = StateProof.from_json(json.loads(raw)["proof"])
        except (ValueError, KeyError, TypeError) as e:
            raise _Refused(f"malformed state claim: {e}") from None
        header = self._trusted(proof.height + 1)
        if header is None:
            raise _Refused(f"relay the counterparty header of height {proof.height + 1} first")
        try:
            verify_state_proof(header, proof)
        except LightClientError as e:
            raise _Refused(str(e)) from None
        return {_VALUE + proof.key: proof.value}

    def _tx(self, raw: bytes) -> dict[bytes, bytes | None]:
        try:
            claim = json.loads(raw)
            height = claim["height"]
            envelope = bytes.fromhex(claim["tx"])
            proof = tx_proof_from_json(claim["proof"])
            if type(height) is not int:
                raise TypeError("height must be an int")
        except (ValueError, KeyError, TypeError) as e:
            raise _Refused(f"malformed tx claim: {e}") from None
        header = self._trusted(height)
        if header is None:
            raise _Refused(f"relay the counterparty header of height {height} first")
        try:
            verify_tx_inclusion(header, envelope, proof)
        except (LightClientError, TypeError) as e:
            raise _Refused(str(e)) from None
        return {_TX + header.suite.hash(envelope).hex().encode(): struct.pack(">Q", height)}

    def _execute(self, payload: bytes, now_ms: int | None) -> dict[bytes, bytes | None]:
        if payload.startswith(HEADER_PREFIX):
            return self._header(payload[len(HEADER_PREFIX):], now_ms)
        if payload.startswith(STATE_PREFIX):
            return self._state(payload[len(STATE_PREFIX):])
        if payload.startswith(TX_PREFIX):
            return self._tx(payload[len(TX_PREFIX):])
        kv = parse_kv(payload)
        if kv is None or kv[0].startswith(b"xc/"):
            raise _Refused("payload must be key=value (keys under xc/ are the relay's), or a "
                           "relay/header:, relay/state: or relay/tx: transaction")
        return {kv[0]: kv[1]}

    # ---- the application calls ----

    def check_tx(self, tx) -> CheckResult:
        self._writes = {}
        try:
            self._execute(bytes(tx.payload), None)
        except _Refused as e:
            return CheckResult(1, str(e))
        return CheckResult()

    def finalize_block(self, height, txs, context=None):  # type: ignore[override]
        now_ms = context.time_ms if context is not None else 0
        self._writes = {}
        results = []
        for tx in txs:
            try:
                self._writes.update(self._execute(bytes(tx.payload), now_ms))
                results.append(TxResult())
            except _Refused as e:
                results.append(TxResult(1, str(e)))
        writes, self._writes = self._writes, {}
        self._pending = writes
        self.last_app_hash = self.tree.apply(height, writes, self.state.get)
        return BlockResult(results, self.last_app_hash, dict(writes))

    def query(self, path: str, data: bytes, height: int | None = None):  # type: ignore[override]
        """``/latest``: the height of the latest trusted counterparty header (u64 BE); anything
        else as the kvstore."""
        if path == "/latest":
            heights = [int.from_bytes(k[len(_LB):], "big") for k, _ in self.state.items(_LB)]
            return QueryResult(value=struct.pack(">Q", max(heights)) if heights else None)
        return super().query(path, data, height)


def relay(b_url: str, a_url: str, key: bytes, height: int, *, wait: bool = True) -> list[dict]:
    """Carry the proof of B's ``key`` in the state after ``height`` to A, with every B header A
    needs to check it; returns A's answers (one per submitted transaction). The relayer signs
    with a throwaway key: A trusts the proofs, not the relayer."""
    from engine import tx
    from engine.light import LightClient, RpcSource
    from engine.rpc.client import Client

    a = Client(a_url)
    b_client = Client(b_url)
    try:
        b_suite = b_client.status().get("crypto", ED25519_BLAKE3)
    finally:
        b_client.close()
    b = RpcSource(b_url, suite=b_suite)
    try:
        a_status = a.status()
        latest = a.query("/latest")
        anchor_height = struct.unpack(">Q", bytes.fromhex(latest["value"]))[0]
        lc = LightClient(b, b.light_block(anchor_height))
        target = lc.verify_to(height + 1)
        needed = [h for h in lc.trusted_heights() if anchor_height < h <= target.height]
        answer = b.client.query("/key", key, height=height, prove=True)
        signer = get_suite(a_status.get("crypto", ED25519_BLAKE3)).generate_key()
        payloads = [HEADER_PREFIX + lc.trusted_block(h).encode()  # type: ignore[union-attr]
                    for h in needed]
        payloads.append(STATE_PREFIX + json.dumps({"proof": answer["proof"]}).encode())
        out = []
        for nonce, payload in enumerate(payloads):
            env = tx.encode_tx(signer, nonce, payload, a_status["chain_id"])
            out.append(a.submit_tx(env, wait_commit=wait))
        return out
    finally:
        a.close()
        b.close()
