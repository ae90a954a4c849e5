"""Pub/sub: one suite over the in-process and the Redis backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest

from kefu.events import EventDispatcher, RealtimeEvent, audience
from kefu.infra.pubsub import MemoryPubSub, PubSub, make_pubsub
from tests.conftest import PUBSUB_BACKENDS, REDIS_URL


def make(backend: str) -> PubSub:
    if backend == "memory":
        return MemoryPubSub()
    from kefu.infra.pubsub.redis import RedisPubSub

    return RedisPubSub(REDIS_URL, prefix=f"kefu-test-{uuid.uuid4().hex[:8]}:")


async def next_item(it: AsyncIterator[tuple[str, bytes]]) -> tuple[str, bytes]:
    return await asyncio.wait_for(it.__anext__(), timeout=2)


@pytest.mark.parametrize("backend", PUBSUB_BACKENDS)
def test_publish_reaches_subscribers_of_the_topic_only(backend: str) -> None:
    async def go() -> None:
        ps = make(backend)
        await ps.start()
        try:
            a = await ps.subscribe(["ticket:1:agents"])
            b = await ps.subscribe(["ticket:2:agents"])
            ia, ib = aiter(a), aiter(b)
            await ps.publish("ticket:1:agents", b"hello")
            assert await next_item(ia) == ("ticket:1:agents", b"hello")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ib.__anext__(), timeout=0.3)
            await a.add(["team:3"])
            await ps.publish("team:3", "你好".encode())
            assert await next_item(ia) == ("team:3", "你好".encode())
            await a.remove(["team:3"])
            await ps.publish("team:3", b"gone")
            await ps.publish("ticket:1:agents", b"still")
            assert await next_item(ia) == ("ticket:1:agents", b"still")
            await a.close()
            await b.close()
        finally:
            await ps.stop()

    asyncio.run(go())


@pytest.mark.parametrize("backend", PUBSUB_BACKENDS)
def test_two_subscribers_share_a_topic_and_leave_independently(backend: str) -> None:
    async def go() -> None:
        ps = make(backend)
        await ps.start()
        try:
            a = await ps.subscribe(["t"])
            b = await ps.subscribe(["t"])
            await ps.publish("t", b"1")
            assert await next_item(aiter(a)) == ("t", b"1")
            assert await next_item(aiter(b)) == ("t", b"1")
            await a.close()
            await ps.publish("t", b"2")
            assert await next_item(aiter(b)) == ("t", b"2")
            await b.close()
        finally:
            await ps.stop()

    asyncio.run(go())


@pytest.mark.skipif(
    "redis" not in PUBSUB_BACKENDS, reason="Redis not reachable (required under CI)"
)
def test_redis_crosses_processes() -> None:
    """Two hubs stand for two `kefu serve` processes: one publishes, the other delivers."""

    async def go() -> None:
        prefix = f"kefu-test-{uuid.uuid4().hex[:8]}:"
        from kefu.infra.pubsub.redis import RedisPubSub

        node1, node2 = RedisPubSub(REDIS_URL, prefix=prefix), RedisPubSub(REDIS_URL, prefix=prefix)
        await node1.start()
        await node2.start()
        try:
            sub = await node2.subscribe(["contact:9"])
            await asyncio.sleep(0.05)
            await node1.publish("contact:9", b"from node 1")
            assert await next_item(aiter(sub)) == ("contact:9", b"from node 1")
        finally:
            await node1.stop()
            await node2.stop()

    asyncio.run(go())


@pytest.mark.skipif(
    "redis" not in PUBSUB_BACKENDS, reason="Redis not reachable (required under CI)"
)
def test_redis_databases_do_not_hear_each_other() -> None:
    """Redis has one pub/sub namespace for all its databases: deployments (and test
    runs) on different database numbers of one server keep their events apart."""

    async def go() -> None:
        from kefu.infra.pubsub.redis import RedisPubSub

        def on_db(n: int) -> RedisPubSub:
            return RedisPubSub(urlsplit(REDIS_URL)._replace(path=f"/{n}").geturl())

        here, same, other = on_db(11), on_db(11), on_db(10)
        for node in (here, same, other):
            await node.start()
        try:
            topic = f"ticket:{uuid.uuid4().hex}:agents"
            heard_same, heard_other = (
                aiter(await same.subscribe([topic])),
                aiter(await other.subscribe([topic])),
            )
            await asyncio.sleep(0.05)
            await here.publish(topic, b"db 11 only")
            assert await next_item(heard_same) == (topic, b"db 11 only")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(heard_other.__anext__(), timeout=0.3)
        finally:
            for node in (here, same, other):
                await node.stop()

    asyncio.run(go())


def test_make_pubsub_picks_backend() -> None:
    assert isinstance(make_pubsub(None), MemoryPubSub)


def test_internal_events_never_reach_contact_topics() -> None:
    note = RealtimeEvent(
        "message.created", ticket_id=1, team_id=2, assignee_id=3, contact_id=4, is_internal=True
    )
    reply = RealtimeEvent("message.created", ticket_id=1, team_id=2, assignee_id=3, contact_id=4)
    assert not any(t.startswith(("contact:", "ticket:1:contact")) for t in audience(note))
    assert set(audience(reply)) >= {
        "ticket:1:contact",
        "contact:4",
        "ticket:1:agents",
        "team:2",
        "agent:3",
    }
    general = RealtimeEvent("ticket.created", ticket_id=5, contact_id=None)
    assert "team:none" in audience(general)
    assert not any(t.startswith("contact:") for t in audience(general))


@pytest.mark.parametrize("backend", PUBSUB_BACKENDS)
def test_dispatcher_publishes_from_other_threads(backend: str) -> None:
    async def go() -> None:
        ps = make(backend)
        await ps.start()
        dispatcher = EventDispatcher(ps)
        await dispatcher.start()
        try:
            sub = await ps.subscribe(["contact:4"])
            ev = RealtimeEvent("message.created", ticket_id=1, contact_id=4, data={"x": 1})
            publish: Callable[[list[RealtimeEvent]], None] = dispatcher.publish
            await asyncio.to_thread(publish, [ev])
            topic, data = await next_item(aiter(sub))
            assert topic == "contact:4" and b'"message.created"' in data
        finally:
            await dispatcher.stop()
            await ps.stop()

    asyncio.run(go())
