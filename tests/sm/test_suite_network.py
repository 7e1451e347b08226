"""A 4-validator SM2/SM3 network of separate `engine start` processes, run as `engine demo
--crypto sm2-sm3` runs it (no loss, agreement), then its stores checked block by block: every
block hash is SM3, every certificate SM2, every envelope version 2; the command-line switches."""
from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from engine import config, hashing
from engine.block import header_size
from engine.cli import main
from engine.demo import run_demo
from engine.node.check import make_verifier, verifier_for_home
from engine.store import Store, store_path
from engine.store.check import check_store
from engine.suite import ED25519_BLAKE3, SM2_SM3

pytestmark = pytest.mark.timeout(180)


def test_sm2_sm3_demo_network_commits_everything_and_stores_sm_blocks(capsys):
    code = run_demo(validators=4, duration_s=3, rate=150, live=False, keep=True,
                    crypto=SM2_SM3)
    out = capsys.readouterr().out
    workdir = re.search(r"homes and logs kept in (\S+)", out).group(1)
    try:
        assert code == 0, out
        assert "crypto sm2-sm3" in out and "all nodes agree" in out
        assert "no loss              yes: 0 accepted transactions not committed" in out
        committed = int(re.search(r"transactions\s+(\d+) committed", out).group(1))
        assert committed > 0
        _check_stores(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_stores(workdir: str) -> None:
    homes = sorted(os.path.join(workdir, n) for n in os.listdir(workdir)
                   if n.startswith("node") and os.path.isdir(os.path.join(workdir, n)))
    assert len(homes) == 4
    genesis = config.load_home(homes[0]).genesis
    assert genesis.crypto == SM2_SM3
    validators = [(v.public_key, v.power) for v in genesis.validators]
    for home in homes:
        store = Store(store_path(home), readonly=True)
        try:
            assert store.suite.name == SM2_SM3  # recorded at creation
            report = check_store(store, verifier_for_home(home))
            assert report.ok and report.blocks > 1 and report.txs > 0, report.summary()
            # The same blocks judged as an ed25519-blake3 chain fail (ids, roots, validators).
            wrong = check_store(store, make_verifier(b"demo", validators, suite=ED25519_BLAKE3))
            assert not wrong.ok
            assert any("validators_hash is not the hash" in p for p in wrong.problems)
            block = store.load_block(store.latest_height())
            assert block is not None  # the block id is SM3 of the header
            assert hashing.sm3(block.header[:header_size(len(b"demo"))]) == block.block_hash
        finally:
            store.close()
    txs = [t for h in range(1, 30) if (b := _load(homes[1], h)) is not None for t in b.txs]
    assert txs and all(t[0] == 2 for t in txs)  # SM2 envelopes only


def _load(home: str, height: int):
    store = Store(store_path(home), readonly=True)
    try:
        return store.load_block(height)
    finally:
        store.close()


def test_init_and_testnet_take_the_suite_on_the_command_line(tmp_path, capsys):
    assert main(["init", "--home", str(tmp_path / "one"), "--crypto", "sm2-sm3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["crypto"] == "sm2-sm3" and len(bytes.fromhex(out["validator"])) == 64
    assert main(["testnet", "--validators", "4", "--output", str(tmp_path / "net"),
                 "--crypto", "sm2-sm3", "--base-port", "40100"]) == 0
    assert "(sm2-sm3): 4 validators" in capsys.readouterr().out
    homes = [config.load_home(str(tmp_path / "net" / f"node{i}")) for i in range(4)]
    assert {h.genesis.hash() for h in homes} == {homes[0].genesis.hash()}
    assert all(len(h.node_key.public_key) == 64 for h in homes)
    with pytest.raises(SystemExit):
        main(["testnet", "--output", str(tmp_path / "x"), "--crypto", "rsa"])
    assert "invalid choice: 'rsa'" in capsys.readouterr().err


def test_bench_tps_with_sm2_sm3_reports_the_ed25519_baseline_of_the_same_run(tmp_path, capsys):
    out_json = tmp_path / "tps.json"
    code = main(["bench", "tps", "--validators", "4", "--duration", "2", "--rate", "200",
                 "--crypto", "sm2-sm3", "--json", str(out_json)])
    text = capsys.readouterr().out
    assert code == 0, text
    report = json.loads(out_json.read_text())
    assert report["setup"]["crypto"] == "sm2-sm3"
    assert report["baseline"]["setup"]["crypto"] == "ed25519-blake3"
    for r in (report, report["baseline"]):
        assert r["lost"] == 0 and r["nodes_agree"] and r["committed"] == r["accepted"] > 0
    assert report["tps_vs_baseline"] == round(report["tps"] / report["baseline"]["tps"], 3)
    assert report["crypto_ceiling"]["path"] == hashing._native_sm.kernel_info()["sm2"]
    assert "ratio                sm2-sm3 / ed25519-blake3 = " in text


@pytest.mark.parametrize("crypto, tx_bytes, message", [
    ("rsa", 250, "crypto must be one of ed25519-blake3, sm2-sm3, not 'rsa'"),
    ("sm2-sm3", 150, "tx_bytes must be an integer in 157..4096"),  # the sender is 64 bytes
])
def test_bench_tps_options_check_the_suite(crypto, tx_bytes, message):
    from engine.benchmarks.tps import TpsOptions

    with pytest.raises(ValueError, match=message):
        TpsOptions(crypto=crypto, tx_bytes=tx_bytes).validate()
    TpsOptions(crypto="ed25519-blake3", tx_bytes=150).validate()  # fine for 32-byte senders
