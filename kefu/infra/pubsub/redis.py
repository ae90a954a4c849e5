"""Redis pub/sub: events reach sockets held by other ``kefu serve`` processes.

One Redis connection per process listens for every topic any local subscriber wants
and fans messages out in-process, so a thousand sockets cost one Redis subscription
per topic, not a thousand connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import redis.asyncio as aioredis

from kefu.infra.pubsub.memory import MemoryPubSub, MemorySubscription

log = logging.getLogger(__name__)


def channel_prefix(url: str) -> str:
    """Channels are named per database number: Redis keeps one pub/sub namespace for
    all of its databases, and two deployments (or test runs) sharing a server on
    different database numbers must not hear each other's events."""
    db = aioredis.connection.parse_url(url).get("db", 0)
    return f"kefu:{db}:"


class RedisPubSub:
    def __init__(self, url: str, *, prefix: str | None = None) -> None:
        self._url = url
        self._prefix = channel_prefix(url) if prefix is None else prefix
        self._local = MemoryPubSub()
        self._redis: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._refcount: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._redis = aioredis.from_url(self._url)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        # A placeholder subscription keeps the connection in subscribe mode from the start.
        await self._pubsub.subscribe(self._prefix + "_")
        self._reader = asyncio.create_task(self._read_loop())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._local.stop()
        if self._pubsub is not None:
            # redis-py annotates PubSub.aclose only from 8.x on: typed here for every
            # version pyproject admits, so mypy's verdict does not hang on the release.
            aclose: Callable[[], Awaitable[None]] = self._pubsub.aclose
            await aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, topic: str, data: bytes) -> None:
        assert self._redis is not None, "RedisPubSub.start() was not awaited"  # noqa: S101  # programming error
        await self._redis.publish(self._prefix + topic, data)

    async def subscribe(self, topics: Iterable[str]) -> RedisSubscription:
        sub = RedisSubscription(self, await self._local.subscribe(()))
        await sub.add(topics)
        return sub

    async def _retain(self, topics: Iterable[str]) -> None:
        assert self._pubsub is not None  # noqa: S101  # programming error
        async with self._lock:
            new = []
            for topic in topics:
                count = self._refcount.get(topic, 0)
                self._refcount[topic] = count + 1
                if count == 0:
                    new.append(self._prefix + topic)
            if new:
                await self._pubsub.subscribe(*new)

    async def _release(self, topics: Iterable[str]) -> None:
        assert self._pubsub is not None  # noqa: S101  # programming error
        async with self._lock:
            gone = []
            for topic in topics:
                count = self._refcount.get(topic, 0) - 1
                if count <= 0:
                    self._refcount.pop(topic, None)
                    gone.append(self._prefix + topic)
                else:
                    self._refcount[topic] = count
            if gone:
                await self._pubsub.unsubscribe(*gone)

    async def _read_loop(self) -> None:
        assert self._pubsub is not None  # noqa: S101  # programming error
        plen = len(self._prefix)
        while True:
            try:
                async for msg in self._pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    topic = msg["channel"].decode()[plen:]
                    await self._local.publish(topic, msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped connection must not end realtime delivery for good
                log.exception("redis pubsub reader failed; reconnecting")
                await asyncio.sleep(0.5)


class RedisSubscription:
    def __init__(self, hub: RedisPubSub, local: MemorySubscription) -> None:
        self._hub = hub
        self._local = local

    async def add(self, topics: Iterable[str]) -> None:
        topics = [t for t in topics if t not in self._local.topics]
        await self._hub._retain(topics)
        await self._local.add(topics)

    async def remove(self, topics: Iterable[str]) -> None:
        topics = [t for t in topics if t in self._local.topics]
        await self._local.remove(topics)
        await self._hub._release(topics)

    async def close(self) -> None:
        topics = list(self._local.topics)
        await self._local.close()
        await self._hub._release(topics)

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        return self._local.__aiter__()
