"""Fault-injection testnets: real validator processes under kills, pauses, WAL damage,
network partitions (namespaces + nftables), a chaos transport and Byzantine validators.

- :mod:`engine.faults.scenario` — scenario files (TOML under tests/scenarios/) and their checks.
- :mod:`engine.faults.runner` — starts the processes, keeps load on them, applies the
  perturbations at their times and checks the invariants while running and at the end.
- :mod:`engine.faults.netns` — network namespaces, veth pairs, a bridge, nftables rules;
  everything it creates is removed again, even on failure or interruption.
- :mod:`engine.faults.walfault` — truncate or corrupt the tail of a stopped node's WAL.
- :mod:`engine.faults.hooks` / :mod:`engine.faults.byzantine` — test-only code the node loads
  when ``ENGINE_TEST_FAULTS=1`` and ``HOME/testing.toml`` exist: the chaos transport
  (engine/net/chaos.py), the signature log the invariant checker reads, and equivocation.
- :mod:`engine.faults.invariants` — no fork, nothing lost, no double sign, evidence committed.

Run ``engine faults run tests/scenarios/NAME.toml`` or ``make test-faults``.
"""
