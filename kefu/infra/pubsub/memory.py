"""In-process pub/sub: the embedded default, and the fake beside the Redis backend."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable

# A subscriber that falls this far behind is cut off rather than let memory grow.
MAX_QUEUE = 10_000


class MemorySubscription:
    def __init__(self, hub: MemoryPubSub) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(MAX_QUEUE)
        self.topics: set[str] = set()
        self.closed = False

    def deliver(self, topic: str, data: bytes) -> None:
        try:
            self._queue.put_nowait((topic, data))
        except asyncio.QueueFull:
            self._hub._drop(self)
            self.closed = True

    async def add(self, topics: Iterable[str]) -> None:
        for topic in topics:
            self.topics.add(topic)
            self._hub._subs[topic].add(self)

    async def remove(self, topics: Iterable[str]) -> None:
        for topic in topics:
            self.topics.discard(topic)
            self._hub._subs[topic].discard(self)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub._drop(self)
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item


class MemoryPubSub:
    def __init__(self) -> None:
        self._subs: defaultdict[str, set[MemorySubscription]] = defaultdict(set)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                await sub.close()

    async def publish(self, topic: str, data: bytes) -> None:
        for sub in list(self._subs.get(topic, ())):
            sub.deliver(topic, data)

    async def subscribe(self, topics: Iterable[str]) -> MemorySubscription:
        sub = MemorySubscription(self)
        await sub.add(topics)
        return sub

    def _drop(self, sub: MemorySubscription) -> None:
        for topic in list(sub.topics):
            subs = self._subs.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[topic]
