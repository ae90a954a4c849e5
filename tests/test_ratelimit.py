"""Rate limits over both backends: a key's window starts at its first hit."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kefu.infra.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, make_rate_limiter
from tests.conftest import PUBSUB_BACKENDS, REDIS_URL


def make(backend: str) -> RateLimiter:
    if backend == "memory":
        return MemoryRateLimiter()
    return RedisRateLimiter(REDIS_URL, prefix=f"kefu-test-{uuid.uuid4().hex[:8]}:")


@pytest.mark.parametrize("backend", PUBSUB_BACKENDS)
def test_limit_per_key_and_retry_after(backend: str) -> None:
    async def go() -> None:
        limiter = make(backend)
        try:
            assert [await limiter.hit("a", 3, 60) for _ in range(3)] == [0, 0, 0]
            wait = await limiter.hit("a", 3, 60)
            assert 1 <= wait <= 60
            assert await limiter.hit("b", 3, 60) == 0  # other keys are separate
        finally:
            await limiter.close()

    asyncio.run(go())


@pytest.mark.parametrize("backend", PUBSUB_BACKENDS)
def test_window_expires(backend: str) -> None:
    async def go() -> None:
        limiter = make(backend)
        try:
            assert await limiter.hit("k", 1, 1) == 0
            assert await limiter.hit("k", 1, 1) > 0
            await asyncio.sleep(1.2)
            assert await limiter.hit("k", 1, 1) == 0
        finally:
            await limiter.close()

    asyncio.run(go())


def test_factory() -> None:
    assert isinstance(make_rate_limiter(None), MemoryRateLimiter)
