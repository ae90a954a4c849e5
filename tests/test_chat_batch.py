"""The batched write of chat messages (``do_add_chat_messages``, what the socket's
writer calls for every ``msg`` frame): each item is stored or refused exactly as
``do_chat_message`` would, alone; resends are stored once; a ticket's order holds;
secrets are masked; and what is published is what the one-by-one path publishes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.auth import agent_actor
from kefu.actions.chat import (
    ChatMessageIn,
    ChatMessageStored,
    ChatStart,
    do_add_chat_messages,
    do_end_chat,
    do_set_presence,
    do_start_chat,
)
from kefu.actions.messages import message_public
from kefu.actions.webhooks import do_create_webhook
from kefu.domain.access import Actor, Role
from kefu.domain.chat import ChatState, ChatTopic, Presence
from kefu.domain.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from kefu.domain.tickets import TicketStatus
from kefu.events import pending_events
from kefu.models import Event, Job, Message, Ticket
from kefu.queries.tickets import get_ticket_by_number
from tests.chat_support import Client, LiveServer, database_for, live_server
from tests.conftest import DB_BACKENDS
from tests.factories import contact_actor, make_agent, make_contact, make_team, make_token

PRIVKEY = "e9873d79c6d87dc0fb6a5778633389f4453213303da61f20bd67fc233aa33262"


@dataclass
class Chat:
    number: str
    contact: Actor
    agent: Actor


def open_chat(db: Session, agent: Actor | None = None) -> Chat:
    """A contact's chat, given to an online agent (active, ticket open)."""
    if agent is None:
        team = make_team(db)
        agent = agent_actor(make_agent(db, teams=[team]))
        do_set_presence(db, agent, Presence.ONLINE, capacity=50)
    contact = contact_actor(make_contact(db))
    start = ChatStart(topic=ChatTopic.OTHER, text="转人工", client_msg_id="start")
    ticket = do_start_chat(db, contact, start)
    assert ticket.chat_state is ChatState.ACTIVE
    return Chat(ticket.number, contact, agent)


def msg(actor: Actor, number: str, text: str, cid: str, **kw: Any) -> ChatMessageIn:
    return ChatMessageIn(actor=actor, ticket=number, text=text, client_msg_id=cid, **kw)


def stored(db: Session, number: str) -> list[Message]:
    ticket = get_ticket_by_number(db, number)
    assert ticket is not None
    return list(db.scalars(select(Message).where(Message.ticket_id == ticket.id).order_by("seq")))


def seqs(outcomes: list[Any]) -> list[int | str]:
    return [o.seq if isinstance(o, ChatMessageStored) else type(o).__name__ for o in outcomes]


def test_a_resend_within_one_batch_and_across_batches_is_stored_once(
    db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    chat = open_chat(db)
    first = do_add_chat_messages(
        db,
        [
            msg(chat.contact, chat.number, "充值没到账", "a"),
            msg(chat.contact, chat.number, "充值没到账", "a"),  # the same frame again
            msg(chat.contact, chat.number, "TXID 稍后发", "b"),
        ],
    )
    assert seqs(first) == [2, 2, 3]
    # Found in the batch itself, not by the database refusing a second copy.
    assert "batched chat write failed" not in caplog.text
    published = len(pending_events(db))
    again = do_add_chat_messages(db, [msg(chat.contact, chat.number, "充值没到账", "a")])
    assert seqs(again) == [2]
    # A resend is acknowledged, not delivered again.
    assert len(pending_events(db)) == published
    assert [(m.seq, m.client_msg_id) for m in stored(db, chat.number)] == [
        (1, "start"),
        (2, "a"),
        (3, "b"),
    ]


def test_a_bad_item_fails_alone_with_the_error_the_full_path_gives(db: Session) -> None:
    chat = open_chat(db)
    other = open_chat(db, chat.agent)
    ended = open_chat(db, chat.agent)
    do_end_chat(db, ended.contact, get_ticket_by_number(db, ended.number))  # type: ignore[arg-type]
    outcomes = do_add_chat_messages(
        db,
        [
            msg(chat.contact, chat.number, "第一条", "1"),
            msg(chat.contact, "K00000000", "没有这个工单", "2"),
            msg(chat.contact, other.number, "别人的会话", "3"),
            msg(chat.contact, chat.number, "   ", "4"),
            msg(chat.contact, chat.number, "内部备注", "5", is_internal=True),
            msg(ended.contact, ended.number, "已结束", "6"),
            msg(chat.agent, chat.number, "请把助记词发给我核实", "7"),
            msg(chat.contact, chat.number, "第二条", "8"),
        ],
    )
    assert seqs(outcomes) == [
        2,
        "NotFound",
        "NotFound",
        "ValidationFailed",
        "PermissionDenied",
        "InvalidTransition",
        "ValidationFailed",
        3,
    ]
    assert isinstance(outcomes[1], NotFound) and isinstance(outcomes[2], NotFound)
    assert isinstance(outcomes[3], ValidationFailed) and outcomes[3].params["field"] == "body"
    assert isinstance(outcomes[4], PermissionDenied)
    assert isinstance(outcomes[5], InvalidTransition)
    assert isinstance(outcomes[6], ValidationFailed)  # the agent-reply lint
    assert [m.body for m in stored(db, chat.number)] == ["转人工", "第一条", "第二条"]
    assert [m.body for m in stored(db, other.number)] == ["转人工"]
    # An agent's note may follow an ended chat, as with do_chat_message.
    note = do_add_chat_messages(
        db, [msg(chat.agent, ended.number, "已核实", "n", is_internal=True)]
    )
    assert isinstance(note[0], ChatMessageStored)


def test_order_and_seq_per_ticket_hold_in_an_interleaved_batch(db: Session) -> None:
    agent_chat = open_chat(db)
    chats = [agent_chat, *(open_chat(db, agent_chat.agent) for _ in range(3))]
    items = [
        msg(c.contact, c.number, f"{c.number} 第{i}条", f"{i}") for i in range(10) for c in chats
    ]
    outcomes = do_add_chat_messages(db, items)
    assert all(isinstance(o, ChatMessageStored) for o in outcomes)
    for c in chats:
        rows = stored(db, c.number)
        assert [m.seq for m in rows] == list(range(1, 12))
        assert [m.body for m in rows[1:]] == [f"{c.number} 第{i}条" for i in range(10)]
        ticket = get_ticket_by_number(db, c.number)
        assert ticket is not None and ticket.last_seq == 11 and ticket.message_count == 11
    # The realtime events go out in the same order, one per message.
    created = [e for e in pending_events(db) if e.type == events.MESSAGE_CREATED]
    mine = [e.data["message"]["seq"] for e in created if e.data["ticket"] == chats[0].number]
    assert mine[-10:] == list(range(2, 12))


def test_secrets_are_masked_and_warned_about_in_their_place(db: Session) -> None:
    chat = open_chat(db)
    other = open_chat(db, chat.agent)
    outcomes = do_add_chat_messages(
        db,
        [
            msg(chat.contact, chat.number, "你好", "1"),
            msg(chat.contact, chat.number, f"私钥 {PRIVKEY}", "2"),
            msg(other.contact, other.number, "在吗", "3"),
            msg(chat.contact, chat.number, "然后呢", "4"),
        ],
    )
    assert seqs(outcomes) == [2, 3, 2, 5]
    rows = stored(db, chat.number)
    assert [(m.seq, (m.meta or {}).get("kind")) for m in rows] == [
        (1, None),
        (2, None),
        (3, None),
        (4, "dlp_warning"),
        (5, None),
    ]
    assert PRIVKEY not in rows[2].body and "屏蔽" in rows[2].body
    ticket = get_ticket_by_number(db, chat.number)
    assert ticket is not None
    masked = db.scalars(
        select(Event).where(Event.ticket_id == ticket.id, Event.kind == events.SECRET_MASKED)
    ).all()
    assert [e.data["kinds"] for e in masked] == [["private_key"]]
    for event in pending_events(db):
        assert PRIVKEY not in str(event.data)


def test_what_is_stored_and_published_matches_the_one_by_one_path(db: Session) -> None:
    admin = agent_actor(make_agent(db, role=Role.ADMIN))
    do_create_webhook(db, admin, url="https://hooks.example.com/k", events=["message.created"])
    chat = open_chat(db)
    jobs_before = db.scalar(select(func.count()).select_from(Job)) or 0
    # Two messages so the second is surely batched (the first reply is a response).
    outcomes = do_add_chat_messages(
        db,
        [
            msg(chat.contact, chat.number, "手机 13812345678 可以联系我", "c1"),
            msg(chat.agent, chat.number, "您好，正在为您查询", "a1"),
            msg(chat.agent, chat.number, "请稍候", "a2"),
            msg(chat.agent, chat.number, "内部：已转财务", "n1", is_internal=True),
        ],
    )
    assert seqs(outcomes) == [2, 3, 4, 5]
    ticket = get_ticket_by_number(db, chat.number)
    assert ticket is not None
    assert ticket.status is TicketStatus.OPEN and ticket.first_response_at is not None
    rows = stored(db, chat.number)[1:]
    assert [(m.author_type, m.direction, m.is_internal) for m in rows] == [
        ("contact", "in", False),
        ("agent", "out", False),
        ("agent", "out", False),
        ("agent", "out", True),
    ]
    published = {
        e.data["message"]["seq"]: e
        for e in pending_events(db)
        if e.type == events.MESSAGE_CREATED and e.data["ticket"] == chat.number
    }
    for m in rows:
        event = published[m.seq]
        assert event.data == {"ticket": chat.number, "message": message_public(m)}
        assert event.is_internal is m.is_internal
        assert (event.ticket_id, event.contact_id, event.assignee_id) == (
            ticket.id,
            ticket.contact_id,
            ticket.assignee_id,
        )
    # The phone number is stored, shown masked in what is published.
    assert "13812345678" in rows[0].body
    assert "13812345678" not in published[2].data["message"]["body"]
    # ... and stored masked beside it, for the console (nothing to mask: stored as "").
    assert [m.display_body for m in rows] == ["手机 138****5678 可以联系我", "", "", ""]
    history = db.scalars(
        select(Event).where(Event.ticket_id == ticket.id, Event.kind == events.MESSAGE_CREATED)
    ).all()
    assert [(e.data["seq"], e.data["message_id"]) for e in history][-4:] == [
        (m.seq, m.id) for m in rows
    ]
    # One webhook delivery per message, as record_event queues them.
    assert (db.scalar(select(func.count()).select_from(Job)) or 0) - jobs_before == 4


def test_a_report_to_the_bot_still_takes_the_fast_lane(db: Session) -> None:
    make_team(db, "security")
    contact = contact_actor(make_contact(db))
    ticket = do_start_chat(
        db,
        contact,
        ChatStart(topic=ChatTopic.OTHER, text="提现多久到账", client_msg_id="s"),
        suggest=lambda text, locale: [{"id": 1, "title": "提现多久到账？", "url": "/help/1"}],
    )
    assert ticket.chat_state is ChatState.BOT
    outcomes = do_add_chat_messages(
        db,
        [
            msg(contact, ticket.number, "我的账号被盗了", "1"),
            msg(contact, ticket.number, "快", "2"),
        ],
    )
    assert isinstance(outcomes[0], ChatMessageStored)
    assert isinstance(outcomes[1], ChatMessageStored)
    db.refresh(ticket)
    assert ticket.priority.value == "urgent" and ticket.chat_state is ChatState.QUEUED
    rows = stored(db, ticket.number)
    # The report, the safety instructions, then the message that followed it.
    assert [(m.body, (m.meta or {}).get("kind")) for m in rows][2:] == [
        ("我的账号被盗了", None),
        (rows[3].body, "security_instructions"),
        ("快", None),
    ]


# -- under concurrency, over real sockets ------------------------------------------------


@pytest.fixture(params=DB_BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with live_server(database_for(request.param, tmp_path), tmp_path, None) as live:
        yield live


def test_many_sockets_at_once_keep_each_tickets_order_and_store_each_message_once(
    server: LiveServer,
) -> None:
    with server.sessions.begin() as db:
        agent = make_agent(db, teams=[make_team(db, "general")])
        agent.max_chats = 50
        token = make_token(db, agent)
    contacts, per_contact = 12, 15

    async def scenario() -> None:
        console = await Client.connect(server.ws_url, token=token)
        await console.expect(type="welcome")
        await console.send({"type": "presence", "status": "online", "id": "p"})
        await console.expect(type="done")
        clients = []
        for i in range(contacts):
            c = await Client.connect(server.ws_url)
            await c.expect(type="welcome")
            await c.send({"type": "start", "topic": "other", "text": "转人工", "id": f"s{i}"})
            clients.append((c, (await c.expect(type="started"))["ticket"]))

        async def talk(c: Client, number: str) -> list[int]:
            acked = []
            for n in range(per_contact):
                await c.send({"type": "msg", "ticket": number, "text": f"第{n}条", "id": f"m{n}"})
                acked.append((await c.expect(type="ack", id=f"m{n}"))["seq"])
            # A resend after the ack (the client missed it) gets the same number.
            await c.send({"type": "msg", "ticket": number, "text": "第0条", "id": "m0"})
            assert (await c.expect(type="ack", id="m0"))["seq"] == acked[0]
            return acked

        results = await asyncio.gather(*(talk(c, n) for c, n in clients))
        for acked in results:
            assert acked == list(range(2, 2 + per_contact))
        await asyncio.gather(*(c.close() for c, _ in clients), console.close())
        return None

    asyncio.run(asyncio.wait_for(_closing(scenario()), 60))
    with server.sessions() as db:
        for ticket in db.scalars(select(Ticket)):
            rows = db.scalars(
                select(Message).where(Message.ticket_id == ticket.id).order_by(Message.seq)
            ).all()
            assert [m.seq for m in rows] == list(range(1, 2 + per_contact))
            assert [m.body for m in rows[1:]] == [f"第{n}条" for n in range(per_contact)]


async def _closing(coro: Any) -> Any:
    try:
        return await coro
    finally:
        await Client.close_all()
