"""Pub/sub for realtime events: one interface, an in-process and a Redis backend.

See docs/subsystems/realtime.md. Messages are bytes; topics are strings such as
``ticket:42`` or ``team:3`` (never say "channel" for a topic).
"""

from kefu.infra.pubsub.base import PubSub, Subscription
from kefu.infra.pubsub.memory import MemoryPubSub

__all__ = ["MemoryPubSub", "PubSub", "Subscription", "make_pubsub"]


def make_pubsub(redis_url: str | None) -> PubSub:
    if redis_url:
        from kefu.infra.pubsub.redis import RedisPubSub  # optional backend

        return RedisPubSub(redis_url)
    return MemoryPubSub()
