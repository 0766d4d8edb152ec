"""Rate limits: per process in memory, or shared through Redis when REDIS_URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.lib.errors import RateLimited
from app.lib.rate_limit import MemoryRateLimiter, RedisRateLimiter, rate_limiter

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_memory_limiter_refuses_past_the_limit_with_retry_after() -> None:
    limiter = MemoryRateLimiter(limit=2, window=60)
    await limiter.hit("a")
    await limiter.hit("a")
    with pytest.raises(RateLimited) as refused:
        await limiter.hit("a")
    assert 1 <= refused.value.retry_after <= 60
    await limiter.hit("b")  # other keys are counted apart


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisConnectionError, OSError):
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    yield client
    await client.aclose()


async def test_redis_limiters_share_one_count_across_processes(redis: Any) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    # Two limiters stand for two app processes sharing one Redis.
    first = rate_limiter(redis, prefix, limit=3, window=30)
    second = RedisRateLimiter(redis, prefix, limit=3, window=30)
    assert isinstance(first, RedisRateLimiter)
    await first.hit("user-1")
    await second.hit("user-1")
    await first.hit("user-1")
    with pytest.raises(RateLimited) as refused:
        await second.hit("user-1")
    assert 1 <= refused.value.retry_after <= 30
    await second.hit("user-2")
    await redis.delete(*[k async for k in redis.scan_iter(f"chatwithme:rate:{prefix}:*")])
