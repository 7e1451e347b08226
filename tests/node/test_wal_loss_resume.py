"""A stalled height, two validators that lose their WAL, and a restart of all four: the real
node resumes from its signer record and the height ends (issue 8, the in-process version of
tests/scenarios/wal-truncate-stalled.toml)."""
from __future__ import annotations

import asyncio
import random

from engine.faults.walfault import TAIL_BYTES_MAX, damage_wal
from engine.node import Node
from tests.node import helpers
from tests.node.helpers import make_testnet, make_txs, start_nodes

CHAIN = "walloss"


def run(coro, timeout_s: float = 120):
    return helpers.run(coro, timeout_s)


async def _signed_in_current_height(node: Node, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        st = node.store.signer_record()
        if st is not None and st.height == node.core.height:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{node.config.moniker} signed nothing at height {node.core.height}")


def test_stalled_height_ends_after_two_validators_lose_their_wal(tmp_path):
    # Blocks 1.5 s apart, proposals time out after 1 s: validators 2 and 3 stop before
    # anything is proposed at the next height, so 0 and 1 stall with nil prevotes and no lock.
    # (Had 0 and 1 locked a value whose proof of lock only their lost WALs held, two amnesic
    # validators of four would be more than f: nothing could unlock them.)
    homes = make_testnet(tmp_path, 4, CHAIN, block_interval_ms=1500, timeout_propose_ms=1000)

    async def main():
        nodes = await start_nodes(homes)
        try:
            await asyncio.gather(*(n.wait_for_height(2, 30) for n in nodes))
            await asyncio.gather(nodes[2].stop(), nodes[3].stop())
            # Two of four: no quorum. Both sign in the stalled height, then stop.
            await asyncio.gather(*(_signed_in_current_height(n, 20) for n in nodes[:2]))
            stalled = nodes[0].core.height
            for n in nodes[:2]:
                st = n.store.signer_record()
                assert (st.height, st.round, st.step) == (stalled, 0, 2)
                assert st.sign_bytes[-32:] == bytes(32)  # a nil prevote
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))
        for i in (0, 1):
            report = damage_wal(homes[i].path, "truncate", TAIL_BYTES_MAX, random.Random(i))
            assert report["deleted"], report  # the whole WAL of the height is gone

        # First restart of the two alone: they resume, and stay stalled (still no quorum).
        pair = await start_nodes(homes[:2])
        try:
            for n in pair:
                assert n.counters.get("resumed_from_signer") == 1
                st = n.store.signer_record()
                assert (n.core.height, n.core.round, int(n.core.step_)) == \
                    (st.height, st.round, st.step)
            await asyncio.sleep(0.5)
        finally:
            await asyncio.gather(*(n.stop() for n in pair))

        # The Resume is in the WAL now: a second restart replays it and needs no new one.
        nodes = await start_nodes(homes)
        try:
            for n in nodes[:2]:
                assert n.counters.get("resumed_from_signer", 0) == 0
                st = n.store.signer_record()
                assert (n.core.round, int(n.core.step_)) >= (st.round, st.step)
            await nodes[1].submit_txs(make_txs(CHAIN, 20, "after"))
            await asyncio.gather(*(n.wait_for_height(stalled + 1, 40) for n in nodes))
            for n in nodes:
                assert n.counters.get("persist_refused", 0) == 0, n.config.moniker
            infos = [n.block_info(stalled) for n in nodes]
            assert len({i["hash"] for i in infos}) == 1
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))

    run(main())
