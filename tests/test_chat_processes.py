"""Chat across real processes: two `kefu serve` behind Redis deliver between a contact
on one and an agent on the other; a `kill -9` mid-conversation loses no message that
was acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import websockets
from sqlalchemy import select

from kefu.infra.db import make_engine, make_sessionmaker
from kefu.models import Message
from tests.chat_support import JWT_KEY, Client, contact_token
from tests.conftest import HAS_REDIS, REDIS_URL
from tests.factories import make_agent, make_team, make_token
from tests.processes import Server, free_port, process_env

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**process_env(tmp_path), "KEFU_CONTACT_JWT_KEY": JWT_KEY}


def seed_agent(env: dict[str, str]) -> str:
    engine = make_engine(f"sqlite:///{Path(env['KEFU_DATA_DIR']) / 'kefu.db'}")
    with make_sessionmaker(engine).begin() as db:
        team = make_team(db, "general")
        token = make_token(db, make_agent(db, teams=[team]))
    engine.dispose()
    return token


def ws_url(server: Server) -> str:
    return server.base.replace("http://", "ws://") + "/api/v1/chat/ws"


@pytest.mark.skipif(not HAS_REDIS, reason="needs Redis (required under CI=true)")
def test_two_servers_behind_redis_deliver_both_ways(env: dict[str, str]) -> None:
    env = {**env, "KEFU_REDIS_URL": REDIS_URL}
    token = seed_agent(env)
    one, two = Server(env, free_port()), Server(env, free_port())

    async def scenario() -> None:
        try:
            contact = await Client.connect(ws_url(one), token=contact_token("30000001"))
            await contact.expect(type="welcome")
            agent = await Client.connect(ws_url(two), token=token)
            await agent.expect(type="welcome")
            await agent.send({"type": "presence", "status": "online", "id": "p"})
            await agent.expect(type="done", ref="p")
            await contact.send({"type": "start", "topic": "other", "text": "转人工", "id": "s"})
            number = (await contact.expect(type="started"))["ticket"]
            # Routed on node one, announced on node two through Redis.
            await contact.expect(type="state", chat_state="active")
            await agent.expect(type="state", ticket=number, chat_state="active")
            await contact.send({"type": "msg", "ticket": number, "text": "来自一号节点", "id": "c"})
            assert (await agent.expect(type="message", client_msg_id="c"))["body"] == "来自一号节点"
            await agent.send({"type": "msg", "ticket": number, "text": "来自二号节点", "id": "a"})
            assert (await contact.expect(type="message", client_msg_id="a"))["body"] == (
                "来自二号节点"
            )
        finally:
            await Client.close_all()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        one.stop()
        two.stop()


def test_kill_9_mid_conversation_loses_no_acknowledged_message(env: dict[str, str]) -> None:
    server = Server(env, free_port())
    acked: set[str] = set()

    async def scenario() -> None:
        contact = await Client.connect(ws_url(server), token=contact_token("30000002"))
        await contact.expect(type="welcome")
        await contact.send({"type": "start", "topic": "other", "text": "转人工", "id": "s"})
        number = (await contact.expect(type="started"))["ticket"]

        async def acks() -> None:
            while True:
                frame = await contact.expect(type="ack", wait=30)
                acked.add(frame["id"])

        reader = asyncio.create_task(acks())
        for i in range(35):  # within the rate limit's burst
            await contact.send({"type": "msg", "ticket": number, "text": f"第{i}条", "id": f"m{i}"})
        await asyncio.sleep(3)  # the bucket refills; the first burst is acknowledged
        with contextlib.suppress(websockets.ConnectionClosed):
            for i in range(35, 65):
                await contact.send(
                    {"type": "msg", "ticket": number, "text": f"第{i}条", "id": f"m{i}"}
                )
                if i == 50:
                    server.kill9()  # mid-burst: some stored and acknowledged, some in flight
        reader.cancel()
        await Client.close_all()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    engine = make_engine(f"sqlite:///{Path(env['KEFU_DATA_DIR']) / 'kefu.db'}")
    with make_sessionmaker(engine)() as db:
        stored = set(db.scalars(select(Message.client_msg_id)).all())
    engine.dispose()
    assert acked, "the server acknowledged nothing before it was killed"
    assert acked - {"s"} <= stored
