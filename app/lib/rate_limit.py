"""Fixed-window rate limits, kept in this process's memory.

Each key gets `limit` hits per `window` seconds. One process only: with several app
processes each counts on its own (a shared Redis store is the chat issue's).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from app.lib.errors import RateLimited


@dataclass
class RateLimiter:
    limit: int
    window: float
    _hits: dict[str, tuple[int, float]] = field(default_factory=dict)

    def hit(self, key: str, what: str = "requests") -> None:
        """Count one hit for `key`; raise RateLimited when the window's limit is passed."""
        now = time.monotonic()
        count, started = self._hits.get(key, (0, now))
        if now - started >= self.window:
            count, started = 0, now
        if count >= self.limit:
            retry_after = math.ceil(self.window - (now - started))
            raise RateLimited(f"Too many {what}; try again in {retry_after} s.", retry_after)
        self._hits[key] = (count + 1, started)
        if len(self._hits) > 10_000:
            self._forget_old(now)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, (_, started) in self._hits.items() if now - started >= self.window]:
            del self._hits[key]
