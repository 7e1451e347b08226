"""`engine bench`: kernel benchmarks, end-to-end TPS on a local testnet, and the CI compare gate.

- :mod:`engine.benchmarks.kernels` times each native kernel next to a baseline measured in the
  same run (OpenSSL loop, ``blake3`` package loop, pure-Python references, raw LMDB put).
- :mod:`engine.benchmarks.tps` starts validators as separate ``engine start`` processes, drives
  signed transactions through ``POST /txs`` and checks nothing was lost.
- :mod:`engine.benchmarks.compare` compares two JSON reports on machine-normalised figures
  (ratios to same-run baselines, TPS divided by a same-run calibration kernel).
- :mod:`engine.benchmarks.machine` records the machine a report was measured on.
"""
from __future__ import annotations

#: Version of the JSON report layout; `compare` refuses reports of another version.
REPORT_SCHEMA = 1
