"""Rate limits, in memory (one process) or in Redis (shared by nodes).

Each key's window starts at its first hit, not on the clock's minute, so a burst cannot
double its allowance by straddling a boundary (30 at :59 and 30 more at :00).
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import redis.asyncio as aioredis


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_seconds: int) -> int:
        """Count a hit; return 0 if allowed, else the seconds until the window resets."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, limit: int, window_seconds: int) -> int:
        now = time.monotonic()
        if len(self._counts) > self.MAX_KEYS:
            self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
        ends, count = self._counts.get(key, (0.0, 0))
        if ends <= now:
            ends, count = now + window_seconds, 0
        count += 1
        self._counts[key] = (ends, count)
        if count > limit:
            return max(1, math.ceil(ends - now))
        return 0

    async def close(self) -> None:
        return None


class RedisRateLimiter:
    def __init__(self, url: str, *, prefix: str = "kefu:rl:") -> None:
        self._redis = aioredis.from_url(url)
        self._prefix = prefix

    async def hit(self, key: str, limit: int, window_seconds: int) -> int:
        rkey = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(rkey, 0, ex=window_seconds, nx=True)  # the window starts at the first hit
            pipe.incr(rkey)
            pipe.ttl(rkey)
            _, count, ttl = await pipe.execute()
        if int(count) > limit:
            return max(1, int(ttl))
        return 0

    async def close(self) -> None:
        await self._redis.aclose()


def make_rate_limiter(redis_url: str | None) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url)
    return MemoryRateLimiter()
