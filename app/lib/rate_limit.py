"""Fixed-window rate limits: in this process's memory, or in Redis when REDIS_URL is set.

Each key gets `limit` hits per `window` seconds. With Redis, every app process shares the
counts; without it, each process counts on its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.lib.errors import RateLimited


class RateLimiter(Protocol):
    limit: int
    window: float

    async def hit(self, key: str, what: str = "requests") -> None:
        """Count one hit for `key`; raise RateLimited once the window's limit is passed."""


def _refuse(what: str, retry_after: float) -> RateLimited:
    seconds = max(1, math.ceil(retry_after))
    return RateLimited(f"Too many {what}; try again in {seconds} s.", seconds)


@dataclass
class MemoryRateLimiter:
    limit: int
    window: float
    _hits: dict[str, tuple[int, float]] = field(default_factory=dict)

    async def hit(self, key: str, what: str = "requests") -> None:
        now = time.monotonic()
        count, started = self._hits.get(key, (0, now))
        if now - started >= self.window:
            count, started = 0, now
        if count >= self.limit:
            raise _refuse(what, self.window - (now - started))
        self._hits[key] = (count + 1, started)
        if len(self._hits) > 10_000:
            for old in [k for k, (_, t) in self._hits.items() if now - t >= self.window]:
                del self._hits[old]


@dataclass
class RedisRateLimiter:
    redis: Any  # redis.asyncio.Redis
    prefix: str
    limit: int
    window: float

    async def hit(self, key: str, what: str = "requests") -> None:
        name = f"chatwithme:rate:{self.prefix}:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, math.ceil(self.window), nx=True)
            pipe.pttl(name)
            count, _, ttl_ms = await pipe.execute()
        if int(count) > self.limit:
            raise _refuse(what, max(int(ttl_ms), 0) / 1000)


def rate_limiter(redis: Any | None, prefix: str, limit: int, window: float) -> RateLimiter:
    if redis is not None:
        return RedisRateLimiter(redis, prefix, limit, window)
    return MemoryRateLimiter(limit, window)


def client_ip(connection: Any) -> str:
    """The peer's address, which uvicorn takes from `X-Forwarded-For` only when the peer is one
    of TRUSTED_PROXIES; the key of limits per IP."""
    client = connection.client
    return str(client.host) if client else "unknown"
