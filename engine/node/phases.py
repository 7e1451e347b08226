"""Where a height's wall-clock time goes, as this node sees it.

The consensus driver marks the moments of each height (``ConsensusDriver.on_mark``): the
height started, the node held the proposal (its own, signed, or a peer's, complete), it sent
its prevote, its precommit, the core decided, the block was stored. :class:`HeightPhases`
turns the marks of one height into the durations between them when the block is stored, and
hands each to ``observe(phase, seconds)`` (the node's ``engine_height_phase_seconds``
histogram, ``/metrics``; ``engine bench tps`` reports their means per step):

=============  ==================================================================================
``propose``    start -> the proposal: the block cut (``block_interval_ms`` since the previous
               block), its transfer and completion from the pool
``prevote``    the proposal -> own prevote sent: validity and the signature's synced write
``precommit``  own prevote -> own precommit sent: waiting for 2/3 of the prevotes
``decide``     own precommit -> the decision: waiting for 2/3 of the precommits
``commit``     the decision -> the block stored (execution unless done early, and the save)
``height``     start -> the block stored: the sum of the above
=============  ==================================================================================

Only the first time of each moment counts (a height of several rounds: its prevote is that of
round 0, and waiting for later rounds falls in the phases after it). A proposal that arrived
before its height started (the node still storing the block before) is held from the start:
its propose phase is 0. A moment the node does not
have (a non-validator casts no votes; a node that caught up decides without voting) is left out
and its time falls in the next phase it has; a moment whose first time comes after a later one
is left out the same way. A height that started before this recorder saw it (a restart, WAL
replay) is not observed.
"""
from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MARKS", "PHASES", "HeightPhases"]

#: The marks in the order a height passes them; each one but ``start`` ends the phase of the
#: same index in PHASES.
MARKS = ("start", "proposal", "prevote", "precommit", "decide", "saved")
PHASES = ("propose", "prevote", "precommit", "decide", "commit")
_PHASE_OF = dict(zip(MARKS[1:], PHASES))


class HeightPhases:
    """Turns the driver's marks into phase durations (see the module docstring)."""

    def __init__(self, observe: Callable[[str, float], None],
                 clock: Callable[[], float] = time.monotonic):
        self.observe = observe
        self.clock = clock
        self.height: int | None = None
        self._times: dict[str, float] = {}
        #: The height of a proposal that arrived before that height started.
        self._early_proposal: int | None = None

    def mark(self, height: int, name: str) -> None:
        if name not in _PHASE_OF and name != "start":
            raise ValueError(f"unknown height mark {name!r}; expected one of {MARKS}")
        if name == "start":
            now = self.clock()
            self.height, self._times = height, {"start": now}
            if self._early_proposal == height:
                self._times["proposal"] = now  # held from the start
            self._early_proposal = None
            return
        if name == "proposal" and (self.height is None or height > self.height):
            self._early_proposal = height  # the next height's, before it started
            return
        if height != self.height or name in self._times:
            return  # another height or not the first time
        self._times[name] = self.clock()
        if name == "saved":
            self._finish()

    def _finish(self) -> None:
        times, self.height, self._times = self._times, None, {}
        last = times["start"]
        for name in MARKS[1:]:
            t = times.get(name)
            if t is None or t < last:
                continue
            self.observe(_PHASE_OF[name], t - last)
            last = t
        self.observe("height", times["saved"] - times["start"])
