"""`engine bench sync` and `engine bench prune`: joining a chain, and a pruned store's size.

``sync`` (README "Joining and pruning"): one validator (in this process) builds a chain of
``blocks`` blocks holding ``keys`` distinct kvstore keys (``keys / blocks`` signed transactions
per block from 100 senders), taking a snapshot every ``blocks`` heights. Then, in the same run
and the same process:

1. **block sync**: a fresh full node joins from genesis (the windowed, certificate-verifying
   catch-up every node runs) until it holds the whole chain;
2. **state sync**: a fresh full node joins from the snapshot (discover, verify against the
   certified header, fetch chunks, restore in one transaction) and block-syncs the rest;
3. **ceiling**: the same blocks verified (certificate and every transaction signature, one
   batch call each), executed by the kvstore app and saved to a fresh store in one loop, with
   no network and no consensus: the most block sync could do on this machine.

It prints seconds, blocks/s and txs/s of each, the block sync / state sync ratio and block
sync / ceiling, and checks that both joiners end with the validator's app hash and state (a
checksum of every state entry). Every store syncs to disk on commit (the default).

``prune``: one validator with ``retain_blocks`` under a steady load that rewrites a bounded key
space (so the state stops growing and only blocks come and go); the store file size is sampled
every second, and the report says whether it stopped growing after warm-up.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from engine import config, crypto
from engine import tx as txmod
from engine.hashing import blake3

SENDERS = 100
CHAIN_ID = "bench-sync"
_FAST: dict[str, Any] = {"timeout_propose_ms": 1000, "timeout_prevote_ms": 500, "timeout_precommit_ms": 500,
         "timeout_delta_ms": 100, "block_interval_ms": 1,
         "create_empty_blocks": False}


@dataclass
class Phase:
    name: str
    seconds: float
    blocks: int
    txs: int

    def line(self, path: str) -> str:
        return (f"{self.name:<11} {self.seconds:8.2f} s  {self.blocks / self.seconds:9.1f} "
                f"blocks/s  {self.txs / self.seconds:10.0f} txs/s   [{path}]")

    def to_json(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "blocks": self.blocks, "txs": self.txs,
                "blocks_per_s": round(self.blocks / self.seconds, 1),
                "txs_per_s": round(self.txs / self.seconds, 1)}


def _signed_load(keys: int, prefix: str = "key") -> list[bytes]:
    senders = [crypto.SigningKey.from_seed(blake3(b"bench sender %d" % i)) for i in range(SENDERS)]
    out = []
    for i in range(keys):
        key = senders[i % SENDERS]
        out.append(txmod.encode_tx(key, i // SENDERS, f"{prefix}{i:08d}=v{i}".encode(),
                                   CHAIN_ID))
    return out


def state_checksum(store) -> str:
    """BLAKE3 over every committed state entry, in key order."""
    digest = bytearray(32)
    parts = []
    for k, v in store.state_items():
        parts.append(len(k).to_bytes(4, "little") + k + v)
        if len(parts) >= 4096:
            digest[:] = blake3(bytes(digest) + b"".join(parts))
            parts = []
    return blake3(bytes(digest) + b"".join(parts)).hex()


async def _build_chain(home, blocks: int, keys: int, progress) -> Any:
    from engine.node import Node

    load = _signed_load(keys)
    per_block = max(1, keys // blocks)
    node = Node(home, store_sync=False)
    await node.start()
    t0 = time.perf_counter()
    for start in range(0, len(load), per_block):
        h = node.latest_height
        for r in await node.submit_txs(load[start:start + per_block]):
            if not r.ok:
                raise RuntimeError(f"load refused: {r.log}")
        await node.wait_for_height(h + 1, 60)
        while node.mempool is not None and len(node.mempool):
            await node.wait_for_height(node.latest_height + 1, 60)
        if node.latest_height % 200 == 0:
            progress(f"  building: height {node.latest_height}")
    # Two more blocks: a snapshot at H is verified against block H + 1's header.
    while node.latest_height < blocks + 2:
        h = node.latest_height
        extra = [txmod.encode_tx(crypto.SigningKey.from_seed(blake3(b"bench tail")), h,
                                 f"tail{h}=x".encode(), CHAIN_ID)]
        await node.submit_txs(extra)
        await node.wait_for_height(h + 1, 60)
    progress(f"  built {node.latest_height} blocks, {keys} keys in "
             f"{time.perf_counter() - t0:.1f} s")
    return node


async def _join(home, source, target: int, progress) -> tuple[float, Any]:
    from engine.node import Node

    node = Node(home.path)  # the config as saved now
    t0 = time.perf_counter()
    await node.start()
    await node.wait_for_height(target, 3600)
    seconds = time.perf_counter() - t0
    await node.stop()
    return seconds, node


def _ceiling(source_store, work: str, top: int) -> tuple[float, int, bytes]:
    """Verify + apply + store of blocks 1..top from ``source_store`` into a fresh store."""
    from engine import consensus as cs
    from engine.app import KVStoreApp
    from engine.block import Block
    from engine.nonces import NonceTable
    from engine.store import Store

    genesis = config.load_home(os.path.join(work, "node0")).genesis
    validators = cs.ValidatorSet([cs.Validator(v.public_key, v.power)
                                  for v in genesis.validators])
    blocks = list(source_store.blocks(1, top + 1))
    path = os.path.join(work, "ceiling")
    with Store(path) as store:
        app = KVStoreApp()

        class _View:
            def get(self, key):
                return store.state_get(key)

            def items(self, prefix=b""):
                return store.state_items(prefix)

        app.state = _View()
        init = app.init_chain(CHAIN_ID, dict(genesis.app_state))
        store.save_genesis(init.app_hash, list(init.writes.items()))
        app.commit()
        nonces = NonceTable(store.state_get)
        txs_total = 0
        t0 = time.perf_counter()
        for stored in blocks:
            cert = cs.CommitCertificate.decode(stored.certificate, len(validators))
            cert.verify(CHAIN_ID.encode(), validators, crypto.verify_batch)
            block = Block.decode(stored.header, header_only=True)
            ok = txmod.verify_txs(stored.txs, CHAIN_ID) if stored.txs else []
            if not all(ok):
                raise RuntimeError(f"block {stored.height}: a transaction does not verify")
            txs = [txmod.decode_tx(t) for t in stored.txs]
            result = app.finalize_block(stored.height, txs)
            changes = list(result.writes.items())
            changes += nonces.apply_block((t.sender, t.nonce) for t in txs)
            store.save_block(stored.height, stored.block_hash, stored.header, stored.txs,
                             stored.certificate, parent_hash=block.parent_hash,
                             app_hash=result.app_hash, state_changes=changes)
            nonces.committed()
            app.commit()
            txs_total += len(txs)
        seconds = time.perf_counter() - t0
        app_hash = store.app_hash() or b""
    return seconds, txs_total, app_hash


async def run_sync(*, blocks: int, keys: int, workdir: str | None = None,
                   progress=print) -> dict[str, Any]:
    """The whole ``sync`` benchmark; returns the report (raises when results differ)."""
    from engine import native_info
    from engine.localnet import free_base_port

    if blocks < 3 or keys < blocks:
        raise ValueError(f"blocks must be >= 3 and keys >= blocks, not {blocks}, {keys}")
    work = workdir or tempfile.mkdtemp(prefix="engine-bench-sync-")
    try:
        homes = config.init_testnet(work, 1, base_port=free_base_port(6), chain_id=CHAIN_ID,
                                    full_nodes=2, snapshot_interval=blocks, **_FAST)
        source = await _build_chain(homes[0], blocks, keys, progress)
        try:
            top = source.latest_height
            src_txs = sum(len(b.txs) for b in source.store.blocks(1, top + 1))
            src_hash, src_state = source.store.app_hash(), state_checksum(source.store)
            state_entries = len(source.store.state_items())
            progress("  joining by block sync from genesis ...")
            bs_s, bs_node = await _join(homes[1], source, top, progress)
            bs_ok = _same(bs_node, top, src_hash, src_state)
            stored = source.store.load_block(1)
            assert stored is not None
            conf = config.load_config(homes[2].path)
            conf.state_sync, conf.state_sync_trust_height = True, 1
            conf.state_sync_trust_hash = stored.block_hash.hex()
            config.save_config(homes[2].path, conf)
            progress("  joining by state sync ...")
            ss_s, ss_node = await _join(homes[2], source, top, progress)
            ss_ok = _same(ss_node, top, src_hash, src_state)
            restore_s = ss_node.state_sync_seconds or 0.0
            progress("  ceiling: verify + apply + store in one loop ...")
            ceil_s, ceil_txs, ceil_hash = _ceiling(source.store, work, top)
        finally:
            await source.stop()
        if ceil_hash != src_hash or ceil_txs != src_txs:
            raise RuntimeError("the ceiling run computed another app hash: it did not do the "
                               "same work")
        if not (bs_ok and ss_ok):
            raise RuntimeError(f"a joiner differs from the validator (block sync same: {bs_ok}, "
                               f"state sync same: {ss_ok})")
        kernels = native_info()["kernels"]
        isa = f"ed25519 {kernels.get('ed25519')}, blake3 {kernels.get('blake3')}"
        phases = {"block_sync": Phase("block sync", bs_s, top, src_txs),
                  "state_sync": Phase("state sync", ss_s, top, src_txs),
                  "ceiling": Phase("ceiling", ceil_s, top, src_txs)}
        report = {
            "setup": {"blocks": top, "keys": keys, "txs": src_txs, "senders": SENDERS,
                      "state_entries": state_entries, "snapshot_interval": blocks, "process": "all nodes in one process",
                      "store_sync": True, "native": str(isa)},
            "phases": {k: p.to_json() for k, p in phases.items()},
            "state_sync_restore_s": round(restore_s, 3),
            "ratio_block_sync_over_state_sync": round(bs_s / ss_s, 2),
            "block_sync_fraction_of_ceiling": round(ceil_s / bs_s, 3),
            "app_hash": src_hash.hex() if src_hash else "", "state_checksum": src_state,
            "identical": True,
        }
        progress(f"chain: {top} blocks, {src_txs} txs, {keys} keys; native path {isa}")
        for key, p in phases.items():
            progress(p.line("windowed block sync" if key == "block_sync" else
                            "snapshot + block sync" if key == "state_sync" else
                            "one loop, no network"))
        progress(f"state sync is {bs_s / ss_s:.1f}x faster than block sync "
                 f"(restore itself {restore_s:.2f} s); block sync runs at "
                 f"{100 * ceil_s / bs_s:.0f}% of the ceiling")
        progress(f"app hash {src_hash.hex() if src_hash else ''} and state checksum "
                 f"{src_state[:16]} identical on all three")
        return report
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def _same(node, top: int, app_hash, state: str) -> bool:
    from engine.store import Store, store_path

    with Store(store_path(node.home.path), readonly=True) as store:
        return store.app_hash(top) == app_hash and state_checksum(store) == state


async def run_prune(*, duration_s: float, rate_tps: int, retain_blocks: int,
                    key_space: int = 2000, workdir: str | None = None,
                    progress=print) -> dict[str, Any]:
    """Steady load on one validator with ``retain_blocks``; the store file size each second."""
    from engine.localnet import free_base_port
    from engine.node import Node

    work = workdir or tempfile.mkdtemp(prefix="engine-bench-prune-")
    try:
        homes = config.init_testnet(work, 1, base_port=free_base_port(2), chain_id=CHAIN_ID,
                                    retain_blocks=retain_blocks,
                                    **{**_FAST, "block_interval_ms": 100})
        node = Node(homes[0])
        await node.start()
        senders = [crypto.SigningKey.from_seed(blake3(b"prune sender %d" % i))
                   for i in range(SENDERS)]
        data = os.path.join(homes[0].path, "store", "data.mdb")
        samples: list[tuple[float, int, int, int]] = []
        pages: list[dict[str, float]] = []
        t0 = time.perf_counter()
        sent = 0
        try:
            while (now := time.perf_counter() - t0) < duration_s:
                due = int(now * rate_tps)
                batch = [txmod.encode_tx(senders[i % SENDERS], i // SENDERS,
                                         f"k{i % key_space}=v{i}".encode(), CHAIN_ID)
                         for i in range(sent, due)]
                sent = due
                if batch:
                    await node.submit_txs(batch)
                if not samples or now - samples[-1][0] >= 1.0:
                    samples.append((round(now, 1), os.path.getsize(data), node.latest_height,
                                    node.earliest_height))
                    if node.store is not None:
                        info = node.store.info()
                        pages.append({"t_s": round(now, 1),
                                      "reusable": info["pages_reusable"],
                                      **{k: v["pages"] for k, v in info["databases"].items()}})
                await asyncio.sleep(0.05)
        finally:
            await node.stop()
        report = prune_report(samples, retain_blocks, rate_tps, duration_s, sent)
        report["pages"] = pages
        return report
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def prune_report(samples: list[tuple[float, int, int, int]], retain_blocks: int,
                 rate_tps: int, duration_s: float, sent: int) -> dict[str, Any]:
    """Whether the file stopped growing. LMDB never shrinks its file, so its size is the high
    water mark of the retained blocks plus LMDB's free list: a burst of larger blocks raises it
    for good, a steady load must not keep raising it. The verdict: less than 2% growth over the
    last quarter of the run; the second half's growth is reported next to it."""
    def growth_since(t_from: float) -> tuple[int, float]:
        later = [s for s in samples if s[0] >= t_from]
        start = later[0][1] if later else samples[-1][1]
        return start, (samples[-1][1] - start) / start if start else 0.0

    at_half, growth = growth_since(duration_s / 2)
    _, growth_quarter = growth_since(duration_s * 3 / 4)
    return {"setup": {"retain_blocks": retain_blocks, "rate_tps": rate_tps,
                      "duration_s": duration_s, "txs_sent": sent,
                      "key_space": "bounded (state size steady)"},
            "samples": [{"t_s": t, "file_bytes": b, "latest": h, "base": base}
                        for t, b, h, base in samples],
            "file_bytes_at_half": at_half, "file_bytes_at_end": samples[-1][1],
            "file_bytes_max": max(s[1] for s in samples),
            "growth_second_half_pct": round(100 * growth, 2),
            "growth_last_quarter_pct": round(100 * growth_quarter, 2),
            "blocks_held_at_end": samples[-1][2] - samples[-1][3] + 1,
            "stopped_growing": growth_quarter < 0.02}


def plot_prune(report: dict[str, Any], path: str) -> None:
    """The store file size and the held heights over time (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t_s"] for s in samples]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(t, [s["file_bytes"] / 2**20 for s in samples], label="store file (MiB)")
    ax.set_xlabel("seconds under load")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(t, [s["latest"] for s in samples], color="grey", linestyle=":",
             label="latest height")
    ax2.plot(t, [s["base"] for s in samples], color="grey", linestyle="--",
             label="earliest height held")
    ax2.set_ylabel("height")
    setup = report["setup"]
    ax.set_title(f"retain_blocks={setup['retain_blocks']}, {setup['rate_tps']} tx/s offered, "
                 f"bounded key space")
    fig.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
