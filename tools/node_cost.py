"""Per-transaction cost of one node's own work, for before/after comparisons of the hot path.

One validator in this process (a 1-validator testnet in a temporary folder, LMDB sync on as
by default) admits ``--txs`` signed 250-byte kvstore transactions from 1,000 senders, in
batches of 500 as `engine bench tps` posts them, proposes, validates and commits them; the
envelopes are signed beforehand (``--sign FILE`` writes them, ``--envelopes FILE`` reads them),
so nothing but the node's work is measured. Prints the CPU seconds of the process (user +
system) from the first submission to the last commit, per transaction.
(The envelopes are posted with at most 8 batches in flight.)

CPU time moves with the machine's other tenants; for a figure that does not, run it under
callgrind twice, with ``--txs 0`` and with ``--txs N``, and divide the difference of the
instruction counts by N (docs/performance.md: each round of the hot path):

    valgrind --tool=callgrind --callgrind-out-file=cg.N python tools/node_cost.py \\
        --envelopes envs.bin --txs 20000
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

CHAIN = "node-cost"


def _sign(path: str, count: int) -> None:
    from engine.benchmarks.tps import sign_envelopes

    envs = sign_envelopes(count, 250, CHAIN)
    with open(path, "wb") as f:
        f.writelines(len(e).to_bytes(4, "little") + e for e in envs)


def _load(path: str, count: int) -> list[bytes]:
    out: list[bytes] = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off < len(data) and len(out) < count:
        n = int.from_bytes(data[off:off + 4], "little")
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    if len(out) < count:
        raise SystemExit(f"{path} holds {len(out)} envelopes, fewer than --txs {count}")
    return out


async def _run(envs: list[bytes], batch: int, gc_tuned: bool) -> tuple[float, int]:
    from engine import config
    from engine.node import Node, tune_gc

    with tempfile.TemporaryDirectory() as tmp:
        (home,) = config.init_testnet(tmp, 1, base_port=_free_port(), chain_id=CHAIN)
        node = Node(home)
        await node.start()
        if gc_tuned:
            tune_gc()  # as `engine start` does
        try:
            await node.wait_for_height(1, 30)
            cpu0 = time.process_time()
            # At most 8 batches in flight (the admission queue is bounded, as over RPC).
            sem = asyncio.Semaphore(8)

            async def post(chunk: list[bytes]):
                async with sem:
                    return await node.submit_txs(chunk)

            answers = await asyncio.gather(*(post(envs[i:i + batch])
                                             for i in range(0, len(envs), batch)))
            results = [r for a in answers for r in a]
            refused = [r for r in results if not r.ok]
            if refused:
                raise SystemExit(f"{len(refused)} refused, e.g. {refused[0]}")
            if results and await node.wait_for_tx(results[-1].tx_id, 300) is None:
                raise SystemExit("the last transaction was not committed")
            cpu = time.process_time() - cpu0
            # Spot checks after the clock stops: each reads and decodes a whole block.
            for r in results[:: max(1, len(results) // 50)]:
                if await node.wait_for_tx(r.tx_id, 60) is None:
                    raise SystemExit("a transaction was not committed")
            return cpu, node.latest_height
        finally:
            await node.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port if port < 60000 else 40000  # the RPC port is the next one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sign", metavar="FILE", help="sign --txs envelopes into FILE and stop")
    ap.add_argument("--envelopes", metavar="FILE", help="envelopes signed by --sign")
    ap.add_argument("--txs", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--default-gc", action="store_true",
                    help="keep CPython's collector settings (engine start tunes them)")
    a = ap.parse_args()
    if a.sign:
        _sign(a.sign, a.txs)
        return
    if not a.envelopes:
        raise SystemExit("--envelopes FILE (made with --sign FILE) is required")
    envs = _load(a.envelopes, a.txs)
    cpu, height = asyncio.run(_run(envs, a.batch, not a.default_gc))
    per = f", {cpu / len(envs) * 1e6:.1f} us per transaction" if envs else ""
    print(f"{len(envs)} txs committed by height {height}: {cpu:.3f} s CPU{per}")


if __name__ == "__main__":
    main()
