"""Prometheus metrics of one node (a registry per node, so several nodes can share a process).

Gauges and counters that mirror node state (height, round, mempool, peers, faults) are read at
scrape time by a collector, so the hot path pays nothing for them; histograms (block interval,
admission batch sizes, verify time) are observed as events happen.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from engine.node import Node

__all__ = ["NodeMetrics"]


class _StateCollector(Collector):
    def __init__(self, node: Node):
        self.node = node

    def collect(self) -> Iterator:
        n = self.node
        core = n.core
        yield GaugeMetricFamily("engine_height", "Last committed height", value=n.latest_height)
        yield GaugeMetricFamily("engine_round", "Current consensus round",
                                value=core.round if core else 0)
        yield GaugeMetricFamily("engine_mempool_txs", "Transactions in the mempool",
                                value=len(n.mempool) if n.mempool else 0)
        yield GaugeMetricFamily("engine_mempool_bytes", "Bytes in the mempool",
                                value=n.mempool.size_bytes if n.mempool else 0)
        yield GaugeMetricFamily("engine_peers", "Connected peers",
                                value=len(n.peers.connected()) if n.peers else 0)
        faults = CounterMetricFamily("engine_peer_faults", "Peer faults by reason",
                                     labels=["reason"])
        for reason, count in sorted((n.peers.faults if n.peers else {}).items()):
            faults.add_metric([reason], count)
        yield faults
        rejected = CounterMetricFamily("engine_mempool_rejected", "Refused transactions",
                                       labels=["code"])
        for code, count in sorted((n.mempool.rejected if n.mempool else {}).items()):
            rejected.add_metric([code], count)
        yield rejected
        events = CounterMetricFamily("engine_node_events", "Node event counters",
                                     labels=["event"])
        for name, count in sorted(n.counters.items()):
            events.add_metric([name], count)
        yield events


class NodeMetrics:
    def __init__(self, node: Node):
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StateCollector(node))
        self.block_interval = Histogram(
            "engine_block_interval_seconds", "Time between consecutive commits",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10),
            registry=self.registry)
        self.block_txs = Histogram(
            "engine_block_txs", "Transactions per committed block",
            buckets=(0, 1, 10, 100, 500, 1000, 2000, 5000, 10000), registry=self.registry)
        self.batch_size = Histogram(
            "engine_mempool_batch_size", "Transactions per admission batch",
            buckets=(1, 4, 16, 64, 256, 1024, 4096), registry=self.registry)
        self.verify_seconds = Histogram(
            "engine_mempool_verify_seconds", "Hash + signature verification time per batch",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=self.registry)

    def observe_block(self, interval_s: float, txs: int) -> None:
        self.block_interval.observe(interval_s)
        self.block_txs.observe(txs)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.verify_seconds.observe(seconds)
