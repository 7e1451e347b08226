"""engine/examples/costly.py: a kvstore whose execution costs the CPU it is set to, with the
kvstore's results and app hash."""
from __future__ import annotations

import time

import pytest

from engine import crypto, tx
from engine.app import KVStoreApp
from engine.examples.costly import CostlyKVStore, burn_cpu_us


def _txs(n: int) -> list[tx.Tx]:
    key = crypto.SigningKey.generate()
    return [tx.decode_tx(tx.encode_tx(key, i, b"k%d=v" % i, "c")) for i in range(n)]


def test_same_results_as_the_kvstore_and_the_cpu_it_is_set_to():
    plain, costly = KVStoreApp(), CostlyKVStore()
    costly.settings = {"execution_us_per_tx": 500}
    for app in (plain, costly):
        app.init_chain("c", {})
        app.commit()
    txs = _txs(40)
    t0 = time.thread_time()
    got = costly.finalize_block(1, txs)
    spent = time.thread_time() - t0
    want = plain.finalize_block(1, txs)
    assert got.app_hash == want.app_hash and got.writes == want.writes
    assert spent >= 40 * 500e-6  # 20 ms of this thread's CPU at least
    assert costly.info()["execution_us_per_tx"] == 500
    assert costly.optimistic_execution


@pytest.mark.parametrize("bad", [-1, 10_001, "20", True, None])
def test_a_bad_setting_is_refused_by_name(bad):
    app = CostlyKVStore()
    app.settings = {"execution_us_per_tx": bad}
    with pytest.raises(ValueError, match="execution_us_per_tx must be a number"):
        app.finalize_block(1, _txs(1))


def test_burn_counts_thread_cpu():
    t0 = time.thread_time()
    burn_cpu_us(3000)
    assert time.thread_time() - t0 >= 0.003
