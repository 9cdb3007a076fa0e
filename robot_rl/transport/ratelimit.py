"""Log lines that a flood cannot multiply: one per kind at once, then at most one per interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """Logs the first event of each kind, then at most one line per `every_s` seconds per kind,
    saying how many events of that kind were not logged in between."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger = logger
        self.every_s = every_s
        self._clock = clock
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, msg: str, *args: object) -> bool:
        """Log `msg % args` if this kind's interval has passed; True when a line was written."""
        now = self._clock()
        if now < self._next.get(kind, -float("inf")):
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._next[kind] = now + self.every_s
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            msg += f" ({suppressed} more of this kind in the last {self.every_s:.0f} s not logged)"
        self.logger.log(level, msg, *args)
        return True
