"""The light client end to end against a 4-validator in-process testnet: `GET /light_block`,
the `engine light verify` CLI (a subprocess: real exit codes) with a good trusted hash, a wrong
one, stale trust, and through a proxy that forges certificates or swaps validator sets; and
transaction and kvstore state proofs checked from verified light blocks alone."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import urllib.request

from aiohttp import web

from engine import crypto, tx
from engine.consensus.certificate import CommitCertificate
from engine.consensus.types import Validator, ValidatorSet, VoteType, vote_sign_bytes
from engine.hashing import blake3
from engine.light import (
    LightBlock,
    LightClient,
    RpcSource,
    StateProof,
    VerificationFailed,
    tx_proof_from_json,
    verify_state_proof,
    verify_tx_inclusion,
)
from engine.rpc.client import Client, ClientError
from tests.node.helpers import make_testnet, run, start_nodes


def _get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "light", "verify", *argv],
                          check=False, capture_output=True, text=True, timeout=60)


async def _proxy(node, tamper):
    """An RPC endpoint serving ``node``'s light blocks, through ``tamper`` above height 1 (the
    trusted height stays honest, so the check that fails is the one under test)."""
    async def handler(request: web.Request) -> web.Response:
        height = int(request.match_info["height"])
        info = node.light_block(height)
        if info is None:
            return web.json_response({"error": "not_found", "message": "-"}, status=404)
        lb = LightBlock.from_json(info)
        return web.json_response((tamper(lb) if height > 1 else lb).to_json())

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"latest_height": node.latest_height})

    app = web.Application()
    app.router.add_get("/light_block/{height}", handler)
    app.router.add_get("/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _forge_signature(lb: LightBlock) -> LightBlock:
    sigs = list(lb.certificate.signatures)
    sigs[0] = bytes(reversed(sigs[0]))
    return dataclasses.replace(lb, certificate=dataclasses.replace(lb.certificate,
                                                                    signatures=tuple(sigs)))


_OTHER_SET = ValidatorSet([Validator(crypto.SigningKey.generate().public_key, 10)
                           for _ in range(4)])


def _swap_set(lb: LightBlock) -> LightBlock:
    return dataclasses.replace(lb, validators=_OTHER_SET)


def _forge_header(lb: LightBlock) -> LightBlock:
    return dataclasses.replace(lb, header=dataclasses.replace(lb.header, app_hash=bytes(32)))


def _equivocation(homes):
    """Every validator signs a second header at each height (what a fork takes): a witness
    serving these holds validly signed headers that conflict with the real chain's."""
    keys = {h.validator_key.public_key: h.validator_key for h in homes}

    def tamper(lb: LightBlock) -> LightBlock:
        header = dataclasses.replace(lb.header, app_hash=blake3(b"the other history"))
        msg = vote_sign_bytes(header.chain_id, VoteType.PRECOMMIT, header.height, 0,
                              header.hash())
        sigs = {i: keys[lb.validators.public_key(i)].sign(msg) for i in range(len(lb.validators))}
        cert = CommitCertificate.build(header.height, 0, header.hash(), sigs, len(lb.validators))
        return LightBlock(header, cert, lb.validators)

    return tamper


def test_light_client_against_a_testnet(tmp_path):
    homes = make_testnet(tmp_path, 4, chain_id="light-e2e")
    key = crypto.SigningKey.generate()

    async def main():
        nodes = await start_nodes(homes)
        loop = asyncio.get_running_loop()
        runners = []
        try:
            node = nodes[0]
            envelopes = [tx.encode_tx(key, i, b"city%d=paris%d" % (i, i), "light-e2e")
                         for i in range(3)]
            infos = []
            for env in envelopes:
                r = await node.submit_tx(env)
                assert r.ok, r.log
                infos.append(await node.wait_for_tx(r.tx_id, 20))
            tx_height = infos[-1]["height"]
            await node.wait_for_height(tx_height + 3, 30)
            url = node.rpc.url
            h1 = node.light_block(1)
            target = tx_height + 2

            # --- proofs from light blocks alone (the Python API over RPC), first, while the
            # heights are recent (the kvstore proves a bounded window of heights)
            def prove():
                src = RpcSource(url)
                lc = LightClient.from_trusted_hash(src, 1, bytes.fromhex(h1["hash"]))
                info = infos[0]
                block = lc.verify_to(info["height"])
                proof = tx_proof_from_json(info["proof"])
                verify_tx_inclusion(block, envelopes[0], proof)
                other = lc.verify_to(info["height"] + 1)
                try:
                    verify_tx_inclusion(other, envelopes[0], proof)
                    raise AssertionError("a proof for another block was accepted")
                except VerificationFailed:
                    pass
                # State: city0 after tx_height, proven by the header of tx_height + 1.
                q = Client(url)
                ans = q.query("/key", b"city0", height=tx_height, prove=True)
                assert ans["code"] == 0, ans
                sp = StateProof.from_json(ans["proof"])
                assert sp.value == b"paris0" and sp.height == tx_height
                verify_state_proof(lc.verify_to(tx_height + 1), sp)
                for wrong_block in (lc.verify_to(tx_height + 2), block):
                    try:
                        verify_state_proof(wrong_block, sp)
                        raise AssertionError("a state proof for another height was accepted")
                    except VerificationFailed as e:
                        assert "checked against the header" in str(e) or "app hash" in str(e)
                try:
                    verify_state_proof(lc.verify_to(tx_height + 1),
                                       dataclasses.replace(sp, value=b"london"))
                    raise AssertionError("a forged value was accepted")
                except VerificationFailed as e:
                    assert "another value" in str(e)
                absent = q.query("/key", b"no-such-city", height=tx_height, prove=True)
                assert absent["code"] == 1
                ap = StateProof.from_json(absent["proof"])
                assert ap.value is None
                verify_state_proof(lc.verify_to(tx_height + 1), ap)
                # Before the first write, city2 was absent: a proof at the older height says so.
                early = q.query("/key", b"city2", height=infos[0]["height"] - 1, prove=True)
                ep = StateProof.from_json(early["proof"])
                assert ep.value is None
                verify_state_proof(lc.verify_to(infos[0]["height"]), ep)
                q.close()
                src.close()
                return json.dumps(sp.to_json())

            await loop.run_in_executor(None, prove)

            # --- the route: JSON and binary agree, errors are clear
            c = Client(url)
            j = await loop.run_in_executor(None, c._request, "GET", f"/light_block/{target}")
            lb = LightBlock.from_json(j)
            assert lb.hash().hex() == node.block_info(target)["hash"]
            assert lb.validators == node.validator_set_at(target)
            raw = await loop.run_in_executor(None, _get_bytes,
                                             f"{url}/light_block/{target}?format=binary")
            assert LightBlock.decode(raw) == lb
            for path, status in (("/light_block/0", 400), ("/light_block/x", 400),
                                 ("/light_block/999999", 404),
                                 ("/light_block/1?format=xml", 400)):
                try:
                    await loop.run_in_executor(None, c._request, "GET", path)
                    raise AssertionError(f"{path} answered")
                except ClientError as e:
                    assert getattr(e, "status", None) == status, (path, e)
            c.close()

            # --- the CLI: exit 0 with the hash; refusals with their reason
            good = await loop.run_in_executor(None, lambda: _cli(
                "--rpc", url, "--trusted-height", "1", "--trusted-hash", h1["hash"],
                "--height", str(target), "--witness", nodes[1].rpc.url))
            assert good.returncode == 0, good.stderr
            assert good.stdout.strip() == lb.hash().hex()
            wrong = await loop.run_in_executor(None, lambda: _cli(
                "--rpc", url, "--trusted-height", "1", "--trusted-hash", "ab" * 32,
                "--height", str(target)))
            assert wrong.returncode == 1 and "not the trusted hash" in wrong.stderr
            stale = await loop.run_in_executor(None, lambda: _cli(
                "--rpc", url, "--trusted-height", "1", "--trusted-hash", h1["hash"],
                "--height", str(target), "--trusting-period", "0.001"))
            assert stale.returncode == 1 and "trust_expired" in stale.stderr
            for tamper, why in ((_forge_signature, "invalid signatures"),
                                (_swap_set, "not the one its header names"),
                                (_forge_header, "signs another block hash")):
                runner, purl = await _proxy(node, tamper)
                runners.append(runner)
                bad = await loop.run_in_executor(None, lambda u=purl: _cli(
                    "--rpc", u, "--trusted-height", "1", "--trusted-hash", h1["hash"],
                    "--height", str(target)))
                assert bad.returncode == 1 and why in bad.stderr, bad.stderr

            # A witness with a validly signed conflicting header: a fork, with its evidence.
            runner, wurl = await _proxy(node, _equivocation(homes))
            runners.append(runner)
            fork = await loop.run_in_executor(None, lambda: _cli(
                "--rpc", url, "--trusted-height", "1", "--trusted-hash", h1["hash"],
                "--height", str(target), "--witness", wurl))
            assert fork.returncode == 1 and "fork_detected" in fork.stderr, fork.stderr
            evidence = json.loads(fork.stderr.splitlines()[0])
            assert evidence["primary"]["hash"] == lb.hash().hex()
            assert evidence["witness"]["hash"] != lb.hash().hex()
            # Everyone who signed the real header also signed the other (all 4 did there).
            assert len(evidence["double_signers"]) == len(lb.certificate.signatures) >= 3
        finally:
            for r in runners:
                await r.cleanup()
            for n in reversed(nodes):
                await n.stop()

    run(main(), timeout_s=180)
