"""The pub/sub interface both backends implement."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol


class Subscription(Protocol):
    """A set of topics being listened to. Iterate for (topic, data); close when done."""

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]: ...

    async def add(self, topics: Iterable[str]) -> None: ...

    async def remove(self, topics: Iterable[str]) -> None: ...

    async def close(self) -> None: ...


class PubSub(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, data: bytes) -> None: ...

    async def subscribe(self, topics: Iterable[str]) -> Subscription: ...
