"""Validator-set changes in the simulator: a seeded plan of joins, leaves and power shifts.

The plan is drawn once per seed: at a few heights the "application" returns validator updates
(engine/valset.py), which every node applies after committing that height, so the set that
signs ``h + 2`` changes, exactly as a node applies ``finalize_block``'s updates. Each node keeps
its own :class:`engine.node.valset.ValidatorHistory` (the node's class), extended on its own
commits; the world keeps the canonical one the checker verifies certificates against.

Every drawn change keeps the Byzantine power below 1/3 of the set it makes (the simulator's
safety premise) and never removes a Byzantine validator (so the bound cannot be dodged by
removing honest power later); a change that would break a limit is skipped, not forced.
A removed honest validator keeps running: it follows the chain as a full node, and keeps
sending votes signed with its old index (``SimNode.zombie_votes``), which every node must
refuse.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from engine.consensus import ValidatorSet
from engine.node.valset import ValidatorHistory
from engine.valset import UPDATE_DELAY_HEIGHTS, ValidatorUpdate, apply_updates

__all__ = ["draw_changes"]

#: Powers a joining validator or a power shift draws from.
POWERS = (1, 2, 3, 5)


def draw_changes(rng: random.Random, genesis: ValidatorSet, keys: Sequence[bytes],
                 byzantine: set[bytes], count: int,
                 heights: int) -> dict[int, list[ValidatorUpdate]]:
    """``count`` changes at distinct heights in ``1..heights - 2`` (so each takes effect within
    the run): height -> updates. ``keys`` are every instance's validator key (members and
    spares); ``byzantine`` the keys that must stay and stay below 1/3."""
    last = max(1, heights - UPDATE_DELAY_HEIGHTS)
    at = sorted(rng.sample(range(1, last + 1), min(count, last)))
    history = ValidatorHistory(genesis, committed_height=1 << 40)
    plan: dict[int, list[ValidatorUpdate]] = {}
    for h in at:
        base = history.set_at(h + 1)
        members = [v.public_key for v in base.validators]
        outside = [k for k in keys if base.index_of(k) is None]
        kind = rng.choice(("join", "leave", "power", "swap"))
        updates: list[ValidatorUpdate] = []
        if kind in ("join", "swap") and outside:
            updates.append(ValidatorUpdate(rng.choice(outside), rng.choice(POWERS)))
        if kind in ("leave", "swap"):
            honest = [k for k in members if k not in byzantine]
            if honest:
                updates.append(ValidatorUpdate(rng.choice(honest), 0))
        if kind == "power":
            updates.append(ValidatorUpdate(rng.choice(members), rng.choice(POWERS)))
        try:
            new = apply_updates(base, updates)
        except ValueError:
            continue  # e.g. the last honest validator would leave: skipped
        byz = sum(v.power for v in new.validators if v.public_key in byzantine)
        if not updates or new == base or 3 * byz >= new.total_power:
            continue
        plan[h] = updates
        history.record(h + UPDATE_DELAY_HEIGHTS, new)
    return plan
