"""A client that stops reading is dropped, not the server (issue #4): over real sockets
against a live server, two agents' sockets stop reading while the chats they watch
each send a burst of long messages. More than the send buffer's worth of frames is due
to each, so the server drops them: one reads again later and finds the close (4008);
the other never reads again and is let go all the same (offline for routing, off the
fan-out). The chats' contacts and a third agent watching the same chats get every
frame, and every acknowledged message is stored."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from sqlalchemy import select

from kefu.domain.chat import Presence
from kefu.infra.migrate import upgrade
from kefu.models import Agent, Message, Ticket
from kefu.web.chat import CLOSE_SLOW, RATE_BURST, SEND_BUFFER_FRAMES
from tests.chat_support import Client, LiveServer, contact_token, database_for, live_server, run
from tests.conftest import DB_BACKENDS, PG_URL, PUBSUB_BACKENDS, REDIS_URL, _reset_pg
from tests.factories import make_agent, make_team, make_token

# Each contact's burst stays inside the per-socket rate limit (the start frame is one).
BURST = int(RATE_BURST) - 5
# Near the longest chat text: frames of about 12 kB, so the flood outgrows the kernel's
# and the transport's buffers as well as the server's own.
BODY = "慢" * 3990


def _kernel_send_buffer_max() -> int:
    """The most a kernel socket may hold for a peer that does not read (Linux autotunes
    up to this), so the flood is sized past it; 4 MiB where it cannot be read."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 * 1024 * 1024


# Frames due to the stuck socket: the server's buffer, what the kernel and the transport
# can absorb on the way, and a margin; spread over enough chats to send that many.
FRAMES = SEND_BUFFER_FRAMES + _kernel_send_buffer_max() // len(BODY.encode()) + 128
CHATS = -(-FRAMES // BURST)


@pytest.fixture(params=[(d, p) for d in DB_BACKENDS for p in PUBSUB_BACKENDS], ids=str)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    backend, pubsub = request.param
    if backend == "sqlite":
        url = database_for(backend, tmp_path)
    else:
        # The database named by KEFU_TEST_PG_URL, not the chat tests' shared one.
        url = PG_URL
        _reset_pg(url)
        upgrade(url)
    with live_server(url, tmp_path, REDIS_URL if pubsub == "redis" else None) as live:
        yield live


async def connect_without_reading(ws_url: str, **hello: Any) -> Client:
    """A socket whose client reads nothing it is not asked for: a small receive
    window, one frame queued in the library before it stops taking bytes off the
    socket, no pings of its own (it would time itself out), and no compression (the
    frames would shrink to a few bytes and fit in the kernel's buffers)."""
    where = urlsplit(ws_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (where.hostname, where.port))
    ws = await websockets.connect(
        ws_url, sock=sock, max_size=2**20, max_queue=1, ping_interval=None, compression=None
    )
    client = Client(ws)
    await client.send({"type": "hello", **hello})
    return client


async def read_until_closed(client: Client) -> tuple[int | None, int]:
    """Read everything left, then the close: its code, and how many messages came."""
    messages = sum(1 for f in client.frames if f.get("type") == "message")
    try:
        while True:
            # Bounded: a server that keeps the socket open fails the test here.
            raw = await asyncio.wait_for(client.ws.recv(), 15)
            if json.loads(raw).get("type") == "message":
                messages += 1
    except TimeoutError:
        return None, messages
    except websockets.ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd is not None else None), messages


def slow_drops(server: LiveServer) -> float:
    """The server's count of sockets dropped for not reading, from /metrics."""
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("kefu_chat_slow_clients_dropped_total "):
            return float(line.split()[1])
    return 0.0


async def presence_becomes(server: LiveServer, agent_id: int, want: Presence) -> Presence:
    """The agent's presence once it is ``want``, or as it is after 10 s."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        with server.sessions() as db:
            agent = db.get(Agent, agent_id)
            assert agent is not None
            presence = agent.presence
        if presence is want or asyncio.get_running_loop().time() > deadline:
            return presence
        await asyncio.sleep(0.1)


async def flood(contact: Client, number: str, n: int) -> dict[str, int]:
    """``n`` long messages at once, then their acknowledgements: client id -> seq."""
    for i in range(n):
        await contact.send({"type": "msg", "ticket": number, "text": BODY, "id": f"f{i}"})
    return {f"f{i}": (await contact.expect(type="ack", id=f"f{i}"))["seq"] for i in range(n)}


async def collect(agent: Client, want: int) -> dict[tuple[str, int], dict[str, Any]]:
    """Message frames for the flood until ``want`` have come: (ticket, seq) -> frame."""
    got: dict[tuple[str, int], dict[str, Any]] = {}
    while len(got) < want:
        frame = await agent.expect(type="message")
        if str(frame.get("client_msg_id", "")).startswith("f"):
            got[(frame["ticket"], frame["seq"])] = frame
    return got


def test_a_client_that_stops_reading_is_dropped_and_nobody_else_loses_a_frame(
    server: LiveServer,
) -> None:
    # The stuck agent watches every chat within its own socket's burst.
    assert CHATS < RATE_BURST, f"{CHATS} chats to watch: more than one socket's burst"
    with server.sessions.begin() as db:
        team = make_team(db, "general")
        stuck_token = make_token(db, make_agent(db, teams=[team]))
        healthy_token = make_token(db, make_agent(db, teams=[team]))
        gone = make_agent(db, teams=[team])
        gone_id, gone_token = gone.id, make_token(db, gone)
    drops_before = slow_drops(server)

    async def scenario() -> dict[tuple[str, int], str]:
        contacts: list[tuple[Client, str]] = []
        for i in range(CHATS):
            contact = await Client.connect(server.ws_url, token=contact_token(f"4000{i:04d}"))
            await contact.expect(type="welcome")
            await contact.send({"type": "start", "topic": "other", "text": "转人工", "id": "s"})
            contacts.append((contact, (await contact.expect(type="started"))["ticket"]))

        healthy = await Client.connect(server.ws_url, token=healthy_token)
        await healthy.expect(type="welcome")
        stuck = await connect_without_reading(server.ws_url, token=stuck_token)
        await stuck.expect(type="welcome")
        gone = await connect_without_reading(server.ws_url, token=gone_token)
        await gone.expect(type="welcome")
        # Away, not online: present, but not given the chats waiting in the queue.
        await gone.send({"type": "presence", "status": "away", "id": "p"})
        await gone.expect(type="done", ref="p")
        for agent in (healthy, stuck, gone):
            for _, number in contacts:
                await agent.send({"type": "watch", "ticket": number})
            # Every watch is in place once the ping behind them is answered.
            await agent.send({"type": "ping", "t": 1})
            await agent.expect(type="pong", t=1)
        # From here on the stuck agents read nothing.

        results = await asyncio.gather(
            collect(healthy, CHATS * BURST), *(flood(c, number, BURST) for c, number in contacts)
        )
        seen_by_healthy: dict[tuple[str, int], dict[str, Any]] = results[0]
        acked = {
            (number, seq): client_id
            for (_, number), acks in zip(contacts, results[1:], strict=True)
            for client_id, seq in acks.items()
        }
        assert len(acked) == CHATS * BURST

        # The other agent got every message, whole; each contact got all of its acks.
        assert set(seen_by_healthy) == set(acked)
        assert all(f["body"] == BODY for f in seen_by_healthy.values())

        # The agent that never reads again was let go without reading a byte: offline
        # for routing at once (a ping timeout would take 40 s), and counted.
        assert await presence_becomes(server, gone_id, Presence.OFFLINE) is Presence.OFFLINE
        assert slow_drops(server) - drops_before == 2

        # The stuck socket was dropped with 4008 before it was sent all of them.
        code, delivered = await read_until_closed(stuck)
        assert code == CLOSE_SLOW, f"stuck socket closed with {code}, {delivered} messages"
        assert delivered < CHATS * BURST

        # The server still serves: a message after the drop reaches the other agent, and
        # the dropped agent reconnects and resumes exactly what it missed.
        contact, number = contacts[0]
        await contact.send({"type": "msg", "ticket": number, "text": "还在吗", "id": "after"})
        after = (await contact.expect(type="ack", id="after"))["seq"]
        assert (await healthy.expect(type="message", ticket=number, seq=after))["body"] == "还在吗"
        back = await Client.connect(server.ws_url, token=stuck_token)
        await back.expect(type="welcome")
        await back.send({"type": "watch", "ticket": number, "after": after - 1})
        assert (await back.expect(type="message", ticket=number, seq=after))["body"] == "还在吗"
        acked[(number, after)] = "after"
        return acked

    acked = run(scenario())
    # No acknowledged message is lost from storage.
    with server.sessions() as db:
        rows = db.execute(
            select(Ticket.number, Message.seq, Message.client_msg_id, Message.body)
            .join(Ticket, Ticket.id == Message.ticket_id)
            .where(Message.client_msg_id.is_not(None), Message.client_msg_id != "s")
        ).all()
    stored = {(number, seq): client_id for number, seq, client_id, _ in rows}
    assert stored == acked
    assert all(body in (BODY, "还在吗") for *_, body in rows)
