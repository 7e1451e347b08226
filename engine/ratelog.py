"""Rate-limited warnings for refusals a stranger can trigger at will.

Every refusal is counted (in ``/metrics``); the log gets at most one line per reason per
interval, saying how many were suppressed since the last line, so an attacker cannot fill a
disk with our log while an operator still sees that something is refused, and why.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]

#: One WARNING line per reason at most this often.
REFUSAL_LOG_INTERVAL_S = 10.0


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float = REFUSAL_LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, reason: str, message: str, *args: object) -> bool:
        """Log ``message`` at WARNING unless ``reason`` was logged within the interval; True
        when a line was written."""
        now = self.clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval_s:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return False
        self._last[reason] = now
        suppressed = self._suppressed.pop(reason, 0)
        if suppressed:
            message += " (%d more like it in the last %.0f s)"
            args = (*args, suppressed, now - last if last is not None else 0.0)
        self.logger.warning("refused [%s]: " + message, reason, *args)
        return True
