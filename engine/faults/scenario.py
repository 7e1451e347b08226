"""Scenario files: a testnet, its load and a timeline of perturbations, in TOML.

```toml
name = "kill-restart"
description = "kill -9 one validator, restart it, the chain goes on"
validators = 4          # genesis validators, 10 power each
seed = 1                # drives every random choice of the run (load, WAL damage, chaos)
duration_s = 30         # the timeline length; checks and catch-up come after it
rate_tps = 100          # offered load (signed kvstore transactions)
netns = false           # true: one network namespace per node (root, ip, nft needed)
quick = true            # part of the `make test` subset
progress_timeout_s = 30 # after every heal/restart/resume the chain must move within this
byzantine = []          # validator indexes running the Byzantine hooks (excluded from honesty)
full_nodes = 0          # non-validator nodes after the validators (indexes validators..)
state_sync = []         # full nodes that join by state sync: not started until a "start"
                        # step, which first sets their trust (block 1's hash, from a live node)
duplicate_key = -1      # >= 0: one more process signing with that validator's key
expect_evidence = false # true: committed evidence against a faulty validator is required
known_bug = ""          # non-empty: reproduces an open bug (the test suite expects a failure)
spares = 0              # nodes outside the genesis set (indexes after the validators): full
                        # nodes until a set_power step makes them validators
crypto = "ed25519-blake3"  # the chain's suite: keys, signatures, hashes ("sm2-sm3": SM2/SM3)

[config]                # engine.config.NodeConfig overrides for every node
timeout_propose_ms = 800

[chaos]                 # engine.net.chaos.ChaosConfig for every node (seed added per node)
latency_ms = 20

[[step]]                # at_s: seconds after the load starts
at_s = 5
action = "kill"         # see ACTIONS
nodes = [3]
```
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from engine.suite import SUITE_NAMES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

#: action -> (required fields, optional fields)
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "kill": (("nodes",), ("wal_records",)),        # SIGKILL (wal_records: once its WAL holds some)
    "start": (("nodes",), ()),                     # restart killed nodes
    "pause": (("nodes",), ()),                     # SIGSTOP
    "resume": (("nodes",), ()),                    # SIGCONT
    "damage_wal": (("nodes", "mode"), ("tail_bytes", "flips")),  # killed nodes only
    "partition": (("groups",), ()),                # netns: groups cannot reach each other
    "isolate_proposer": ((), ()),                  # netns: next proposer cut off from all
    "block": (("from", "to"), ()),                 # netns: one-way loss from -> to
    "loss": (("nodes", "pct"), ()),                # netns: random packet loss into nodes
    "heal": ((), ()),                              # netns: remove every rule
    # kvstore admin transaction `val:<key of node i>=<power>` (0 removes, a spare joins),
    # waited for until committed; the final check proves each change in the set history
    "set_power": (("nodes", "power"), ()),
}
NETNS_ACTIONS = {"partition", "isolate_proposer", "block", "loss", "heal"}
VALIDATORS_MAX = 16
DURATION_S_MAX = 600

__all__ = ["ACTIONS", "Scenario", "Step", "load_scenario"]


@dataclass(frozen=True)
class Step:
    at_s: float
    action: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    description: str = ""
    validators: int = 4
    seed: int = 1
    duration_s: float = 30.0
    rate_tps: int = 100
    netns: bool = False
    quick: bool = False
    progress_timeout_s: float = 30.0
    byzantine: tuple[int, ...] = ()
    full_nodes: int = 0
    state_sync: tuple[int, ...] = ()
    duplicate_key: int = -1
    expect_evidence: bool = False
    known_bug: str = ""
    spares: int = 0
    crypto: str = "ed25519-blake3"
    config: dict[str, Any] = field(default_factory=dict)
    chaos: dict[str, Any] | None = None
    steps: tuple[Step, ...] = ()

    @property
    def processes(self) -> int:
        return self.validators + self.full_nodes + self.spares + \
            (1 if self.duplicate_key >= 0 else 0)

    @property
    def faulty(self) -> set[int]:
        """Validator indexes whose key may sign conflicting messages."""
        return set(self.byzantine) | ({self.duplicate_key} if self.duplicate_key >= 0 else set())

    @property
    def honest_processes(self) -> list[int]:
        """Processes whose stores must agree: the faulty validators' are excluded."""
        return [i for i in range(self.validators) if i not in self.faulty]


def _fail(path: str, message: str) -> ValueError:
    return ValueError(f"{path}: {message}")


def load_scenario(path: str) -> Scenario:
    try:
        with open(path, "rb") as f:
            obj = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: cannot read scenario ({e})") from e
    steps_raw = obj.pop("step", [])
    known = set(Scenario.__dataclass_fields__) - {"path", "steps"}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise _fail(path, f"unknown settings {unknown}")
    if "name" not in obj:
        raise _fail(path, "needs a name")
    for key in ("byzantine", "state_sync"):
        if key in obj:
            obj[key] = tuple(obj[key])
    try:
        sc = Scenario(path=path, **obj)
    except TypeError as e:
        raise _fail(path, str(e)) from e
    _check(sc, path)
    steps = tuple(_step(sc, path, i, raw) for i, raw in enumerate(steps_raw))
    if any(b.at_s < a.at_s for a, b in itertools.pairwise(steps)):
        raise _fail(path, "steps must be in order of at_s")
    return Scenario(**{**sc.__dict__, "steps": steps})


def _check(sc: Scenario, path: str) -> None:
    if sc.crypto not in SUITE_NAMES:
        raise _fail(path, f"crypto must be one of {list(SUITE_NAMES)}, not {sc.crypto!r}")
    if type(sc.validators) is not int or not 1 <= sc.validators <= VALIDATORS_MAX:
        raise _fail(path, f"validators must be in 1..{VALIDATORS_MAX}")
    if not 0 < sc.duration_s <= DURATION_S_MAX:
        raise _fail(path, f"duration_s must be in (0, {DURATION_S_MAX}]")
    if type(sc.rate_tps) is not int or sc.rate_tps < 0:
        raise _fail(path, "rate_tps must be a non-negative integer")
    if any(not 0 <= i < sc.validators for i in sc.byzantine):
        raise _fail(path, "byzantine lists a validator that does not exist")
    if type(sc.full_nodes) is not int or not 0 <= sc.full_nodes <= VALIDATORS_MAX:
        raise _fail(path, f"full_nodes must be in 0..{VALIDATORS_MAX}")
    if any(not sc.validators <= i < sc.validators + sc.full_nodes for i in sc.state_sync):
        raise _fail(path, "state_sync lists a node that is not a full node")
    if sc.full_nodes and sc.duplicate_key >= 0:
        raise _fail(path, "full_nodes and duplicate_key do not mix")
    if type(sc.spares) is not int or not 0 <= sc.spares <= VALIDATORS_MAX - sc.validators:
        raise _fail(path, f"spares must be in 0..{VALIDATORS_MAX - sc.validators}")
    if sc.spares and sc.full_nodes:
        raise _fail(path, "spares and full_nodes do not mix (both follow the validators)")
    if sc.duplicate_key >= sc.validators:
        raise _fail(path, "duplicate_key names a validator that does not exist")
    # Safety is only promised below 1/3 of the power (all validators have equal power here).
    if 3 * len(sc.faulty) >= sc.validators:
        raise _fail(path, f"{len(sc.faulty)} faulty of {sc.validators} validators is not "
                          "below 1/3")


def _step(sc: Scenario, path: str, i: int, raw: Any) -> Step:
    where = f"step {i}"
    if not isinstance(raw, dict) or "action" not in raw or "at_s" not in raw:
        raise _fail(path, f"{where} needs at_s and action")
    args = dict(raw)
    at_s, action = float(args.pop("at_s")), args.pop("action")
    if action not in ACTIONS:
        raise _fail(path, f"{where}: unknown action {action!r} (one of {sorted(ACTIONS)})")
    required, optional = ACTIONS[action]
    missing = [k for k in required if k not in args]
    extra = sorted(set(args) - set(required) - set(optional))
    if missing or extra:
        raise _fail(path, f"{where} ({action}): missing {missing}, unknown {extra}")
    if action in NETNS_ACTIONS and not sc.netns:
        raise _fail(path, f"{where}: {action} needs netns = true")
    nodes = list(args.get("nodes", [])) + [n for g in args.get("groups", []) for n in g]
    nodes += list(args.get("from", [])) + list(args.get("to", []))
    if any(type(n) is not int or not 0 <= n < sc.processes for n in nodes):
        raise _fail(path, f"{where}: node index out of range 0..{sc.processes - 1}")
    if not 0 <= at_s <= sc.duration_s:
        raise _fail(path, f"{where}: at_s must be within the duration")
    return Step(at_s, action, args)
