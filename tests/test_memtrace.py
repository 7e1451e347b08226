"""engine/memtrace.py, the heap-snapshot diagnostic behind the soak findings: off without its
environment variable, and its diff names the line that grew."""
from __future__ import annotations

import tracemalloc

import pytest

from engine import memtrace


def test_off_without_the_environment_variable(monkeypatch):
    monkeypatch.delenv("ENGINE_TRACEMALLOC", raising=False)
    assert memtrace.install_from_env() is False
    assert not tracemalloc.is_tracing()


def test_bad_settings_are_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("ENGINE_TRACEMALLOC", str(tmp_path))
    monkeypatch.setenv("ENGINE_TRACEMALLOC_EVERY_S", "0")
    with pytest.raises(ValueError, match="ENGINE_TRACEMALLOC_EVERY_S"):
        memtrace.install_from_env()


def test_the_diff_names_the_line_that_grew():
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        kept = [bytes([i % 256]) * 1000 for i in range(2000)]  # about 2 MiB, this line
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    top = memtrace.diff_snapshots(before, after, top=1)
    assert len(kept) == 2000 and len(top) == 1
    assert "test_memtrace.py" in top[0], top
    grown_mib = float(top[0].split("MiB")[0])
    assert 1.9 < grown_mib < 3, top
