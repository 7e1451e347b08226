"""Prometheus metrics of one node (a registry per node, so several nodes can share a process).

Gauges and counters that mirror node state (height, round, mempool, peers, faults) are read at
scrape time from a :class:`MetricsState` the node supplies, so the hot path pays nothing for
them; histograms (block interval, admission batch sizes, verify time, the phases of a height)
are observed as events happen. The metrics know nothing of the node: they are given a
function that reads its state.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["MetricsState", "NodeMetrics"]


@dataclass(frozen=True)
class MetricsState:
    height: int
    round: int
    mempool_txs: int
    mempool_bytes: int
    peers: int
    peer_faults: Mapping[str, int]
    mempool_rejected: Mapping[str, int]
    events: Mapping[str, int]
    #: Thread CPU seconds by stage (engine/node/stagecpu.py), and of the whole process.
    stage_cpu: Mapping[str, float] = field(default_factory=dict)
    process_cpu: float = 0.0
    #: CPU seconds of the native kernels' helper threads (engine/node/stagecpu.py).
    native_cpu: float = 0.0


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], MetricsState]):
        self.read = read

    def collect(self) -> Iterator:
        s = self.read()
        yield GaugeMetricFamily("engine_height", "Last committed height", value=s.height)
        yield GaugeMetricFamily("engine_round", "Current consensus round", value=s.round)
        yield GaugeMetricFamily("engine_mempool_txs", "Transactions in the mempool",
                                value=s.mempool_txs)
        yield GaugeMetricFamily("engine_mempool_bytes", "Bytes in the mempool",
                                value=s.mempool_bytes)
        yield GaugeMetricFamily("engine_peers", "Connected peers", value=s.peers)
        for name, help_text, label, values in (
                ("engine_peer_faults", "Peer faults by reason", "reason", s.peer_faults),
                ("engine_mempool_rejected", "Refused transactions", "code", s.mempool_rejected),
                ("engine_node_events", "Node event counters", "event", s.events)):
            family = CounterMetricFamily(name, help_text, labels=[label])
            for key, count in sorted(values.items()):
                family.add_metric([key], count)
            yield family
        stages = CounterMetricFamily(
            "engine_stage_cpu_seconds", "Thread CPU time by stage of the transaction path",
            labels=["stage"])
        for stage, seconds in s.stage_cpu.items():
            stages.add_metric([stage], seconds)
        yield stages
        yield CounterMetricFamily("engine_process_cpu_seconds",
                                  "CPU time of the node process (every thread)",
                                  value=s.process_cpu)
        yield CounterMetricFamily("engine_native_threads_cpu_seconds",
                                  "CPU time of the native kernels' helper threads",
                                  value=s.native_cpu)


class NodeMetrics:
    def __init__(self, read: Callable[[], MetricsState]):
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StateCollector(read))
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
        self.height_phase = Histogram(
            "engine_height_phase_seconds",
            "Wall-clock time of each phase of a height at this node (engine/node/phases.py)",
            ["phase"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                2.5, 5, 10),
            registry=self.registry)

    def observe_phase(self, phase: str, seconds: float) -> None:
        """One phase of a stored height (engine/node/phases.py)."""
        self.height_phase.labels(phase).observe(seconds)

    def observe_block(self, interval_s: float, txs: int) -> None:
        self.block_interval.observe(interval_s)
        self.block_txs.observe(txs)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.verify_seconds.observe(seconds)

    def text(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
