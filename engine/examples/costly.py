"""A kvstore whose execution costs CPU: ``execution_us_per_tx`` microseconds of thread CPU per
transaction on top of the kvstore's own work, spent in ``finalize_block`` (default 20; set it
in ``[app_settings]`` of config.toml, or with ``engine bench tps --app-setting``).

It stands for an application heavier than the built-in kvstore (contract execution, a
ledger with many checks), so benchmarks can show what that weight does to a network:
``engine bench tps --app engine.examples.costly:CostlyKVStore``. Everything else (payloads,
state, app hash, queries, optimistic execution) is the kvstore's.
"""
from __future__ import annotations

import time

from engine.app import BlockContext, BlockResult, KVStoreApp
from engine.tx import Tx

__all__ = ["CostlyKVStore", "burn_cpu_us"]

#: The default cost per transaction, in microseconds of thread CPU.
EXECUTION_US_PER_TX = 20
#: At most this much per transaction (a typo should not stall a node for minutes).
EXECUTION_US_PER_TX_MAX = 10_000


def burn_cpu_us(us: float) -> None:
    """Spend ``us`` microseconds of this thread's CPU (not wall time: on a busy machine it
    takes longer, as real work would)."""
    end = time.thread_time() + us / 1e6
    while time.thread_time() < end:
        pass


class CostlyKVStore(KVStoreApp):
    name = "costly-kvstore"

    @property
    def cost_us_per_tx(self) -> float:
        value = self.settings.get("execution_us_per_tx", EXECUTION_US_PER_TX)
        if type(value) not in (int, float) or not 0 <= value <= EXECUTION_US_PER_TX_MAX:
            raise ValueError(f"app_settings execution_us_per_tx must be a number in "
                             f"0..{EXECUTION_US_PER_TX_MAX}, not {value!r}")
        return float(value)

    def info(self) -> dict:
        return {**super().info(), "execution_us_per_tx": self.cost_us_per_tx}

    def finalize_block(self, height: int, txs: list[Tx],
                       context: BlockContext | None = None) -> BlockResult:
        result = super().finalize_block(height, txs, context)
        burn_cpu_us(self.cost_us_per_tx * len(txs))
        return result
