"""Live chat over real websockets against a live server, on each database and each
pub/sub backend: bot first, the stolen-account fast lane, the queue and routing,
delivery guarantees (ack after storage, no duplicates, exact resume), and bad input."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st
from mnemonic import Mnemonic
from sqlalchemy import func, select

from kefu.actions.articles import ArticleData, do_save_article
from kefu.domain.access import SYSTEM
from kefu.domain.chat import (
    AgentLoad,
    ChatState,
    Presence,
    asks_for_human,
    estimate_wait_seconds,
    is_account_takeover,
    pick_agent,
)
from kefu.domain.tickets import Priority, TicketKind
from kefu.models import Contact, Message, Rating, Team, Ticket
from tests.chat_support import (
    Client,
    LiveServer,
    contact_token,
    database_for,
    live_server,
    run,
)
from tests.conftest import DB_BACKENDS, PUBSUB_BACKENDS, REDIS_URL
from tests.factories import PASSWORD, make_agent, make_team, make_token
from tests.secret_evidence import assert_kept_nowhere, gather

PRIVKEY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# -- the rules, pure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "我的账号被盗了，币全没了",
        "账户异常，有人异地登录把USDT提走了",
        "资产丢失 怎么办",
        "My account was hacked and drained",
        "there was an unauthorized withdrawal from my wallet",
        "被 盗 了",
    ],
)
def test_takeover_reports_take_the_fast_lane(text: str) -> None:
    assert is_account_takeover(text)


@pytest.mark.parametrize(
    "text",
    [
        "如何防止账户被盗？",
        "提现多久到账",
        "How to prevent my account from being stolen",
        "KYC 审核",
    ],
)
def test_ordinary_questions_do_not(text: str) -> None:
    assert not is_account_takeover(text)


def test_asking_for_a_person() -> None:
    assert asks_for_human("转人工")
    assert asks_for_human("我要找 人工客服")
    assert asks_for_human("let me talk to a human")
    assert not asks_for_human("提现多久到账")


def _load(agent_id: int, active: int, capacity: int = 5, **kw: Any) -> AgentLoad:
    return AgentLoad(
        agent_id=agent_id,
        presence=kw.get("presence", Presence.ONLINE),
        capacity=capacity,
        active_chats=active,
        team_ids=frozenset(kw.get("teams", {1})),
        last_assigned_rank=kw.get("rank", 0.0),
    )


def test_routing_picks_the_least_loaded_agent_of_the_team() -> None:
    agents = [_load(1, 3), _load(2, 1), _load(3, 0, teams={2}), _load(4, 0, presence=Presence.AWAY)]
    assert pick_agent(agents, team_id=1) == 2
    assert pick_agent(agents, team_id=2) == 3
    assert pick_agent(agents, team_id=None) == 3
    assert pick_agent([_load(1, 5)], team_id=1) is None  # full: the chat waits


def test_routing_breaks_ties_by_longest_idle() -> None:
    assert pick_agent([_load(1, 1, rank=200.0), _load(2, 1, rank=100.0)], team_id=1) == 2


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Presence)),
            st.integers(0, 6),
            st.integers(0, 6),
            st.sets(st.integers(1, 3), max_size=3),
        ),
        max_size=8,
    ),
    st.one_of(st.none(), st.integers(1, 3)),
)
def test_routing_never_picks_someone_who_cannot_take_the_chat(
    rows: list[tuple[Presence, int, int, set[int]]], team: int | None
) -> None:
    agents = [
        AgentLoad(i, p, cap, active, frozenset(teams))
        for i, (p, cap, active, teams) in enumerate(rows)
    ]
    picked = pick_agent(agents, team)
    able = [
        a
        for a in agents
        if a.presence is Presence.ONLINE and a.free > 0 and (team is None or team in a.team_ids)
    ]
    if not able:
        assert picked is None
    else:
        chosen = next(a for a in agents if a.agent_id == picked)
        assert chosen in able
        assert chosen.active_chats / chosen.capacity == min(
            a.active_chats / a.capacity for a in able
        )


def test_wait_estimate() -> None:
    assert estimate_wait_seconds(0, 1, 5, 300) == 0
    assert estimate_wait_seconds(3, 2, 10, 300) == 90
    assert estimate_wait_seconds(3, 0, 0, 300) is None  # nobody online: no number to promise


# -- over real sockets -------------------------------------------------------------------


@pytest.fixture(params=[(d, p) for d in DB_BACKENDS for p in PUBSUB_BACKENDS], ids=str)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    backend, pubsub = request.param
    url = database_for(backend, tmp_path)
    with live_server(url, tmp_path, REDIS_URL if pubsub == "redis" else None) as live:
        yield live


def seed(live: LiveServer) -> dict[str, Any]:
    with live.sessions.begin() as db:
        general = make_team(db, "general")
        security = make_team(db, "security")
        make_team(db, "payments")
        agent = make_agent(db, teams=[general])
        guard = make_agent(db, teams=[security])
        do_save_article(
            db,
            SYSTEM,
            ArticleData(
                title="提现多久到账？",
                body_md="提现一般在 30 分钟内到账，链上拥堵时可能延迟。",
                locale="zh-CN",
            ),
        )
        return {
            "agent_token": make_token(db, agent),
            "agent_id": agent.id,
            "agent_name": agent.name,
            "guard_token": make_token(db, guard),
            "guard_id": guard.id,
        }


def test_visitor_bot_queue_agent_round_trip(server: LiveServer) -> None:
    ids = seed(server)

    async def scenario() -> None:
        visitor = await Client.connect(server.ws_url)
        welcome = await visitor.expect(type="welcome")
        assert welcome["role"] == "visitor"
        await visitor.send(
            {"type": "start", "topic": "trading", "text": "提现多久到账", "id": "c1"}
        )
        token = (await visitor.expect(type="visitor"))["visitor"]
        started = await visitor.expect(type="started")
        number = started["ticket"]
        assert started["chat_state"] == "bot"
        assert (await visitor.expect(type="ack", id="c1"))["seq"] == 1
        await visitor.expect(type="message", seq=1)
        bot = await visitor.expect(type="message", seq=2)
        assert bot["kind"] == "bot_suggestions"
        assert bot["articles"][0]["title"] == "提现多久到账？"

        # 转人工 with nobody online: the contact is told their place and that no one is there.
        await visitor.send({"type": "human", "ticket": number, "id": "h1"})
        queue = await visitor.expect(type="queue", ticket=number)
        assert queue["position"] == 1
        assert queue["agents_online"] == 0
        assert queue["eta_seconds"] is None

        # An agent comes online and is given the chat at once.
        agent = await Client.connect(server.ws_url, token=ids["agent_token"])
        assert (await agent.expect(type="welcome"))["role"] == "agent"
        await agent.send({"type": "presence", "status": "online", "id": "p1"})
        state = await visitor.expect(type="state", chat_state="active")
        assert state["agent_name"] == ids["agent_name"]

        await agent.send({"type": "watch", "ticket": number})
        await agent.expect(type="message", seq=1)
        await agent.send({"type": "msg", "ticket": number, "text": "您好，我来帮您查", "id": "a1"})
        ack = await agent.expect(type="ack", id="a1")
        got = await visitor.expect(type="message", seq=ack["seq"])
        assert got["body"] == "您好，我来帮您查"
        assert got["author"]["type"] == "agent"

        await visitor.send({"type": "msg", "ticket": number, "text": "好的谢谢", "id": "c2"})
        ack2 = await visitor.expect(type="ack", id="c2")
        assert (await agent.expect(type="message", seq=ack2["seq"]))["body"] == "好的谢谢"

        # Typing is relayed, not stored.
        await visitor.send({"type": "typing", "ticket": number})
        assert (await agent.expect(type="typing"))["ticket"] == number

        await agent.send({"type": "end", "ticket": number, "id": "e1"})
        await visitor.expect(type="state", chat_state="ended")
        await visitor.send(
            {"type": "rate", "ticket": number, "stars": 5, "speed": 5, "resolution": 4, "id": "r1"}
        )
        await visitor.expect(type="done", ref="r1")
        await visitor.close()
        await agent.close()

        # The visitor's token brings them back to their own contact.
        again = await Client.connect(server.ws_url, visitor=token)
        assert (await again.expect(type="welcome"))["role"] == "contact"
        await again.close()

    run(scenario())
    with server.sessions() as db:
        ticket = db.scalar(select(Ticket))
        assert ticket is not None
        assert ticket.chat_state is ChatState.ENDED
        assert ticket.assignee_id == ids["agent_id"]
        assert ticket.first_response_at is not None
        rating = db.scalar(select(Rating))
        assert rating is not None and (rating.stars, rating.speed, rating.resolution) == (5, 5, 4)
        bodies = [m.body for m in db.scalars(select(Message).order_by(Message.seq))]
        assert bodies[0] == "提现多久到账" and "您好，我来帮您查" in bodies


def test_stolen_account_skips_the_bot_and_the_queue(server: LiveServer) -> None:
    seed(server)

    async def scenario() -> tuple[str, str]:
        early = await Client.connect(server.ws_url, token=contact_token("20000001"))
        await early.expect(type="welcome")
        await early.send({"type": "start", "topic": "other", "text": "转人工", "id": "x"})
        first = (await early.expect(type="started"))["ticket"]
        assert (await early.expect(type="queue", ticket=first))["position"] == 1

        victim = await Client.connect(server.ws_url, token=contact_token("20000002"))
        await victim.expect(type="welcome")
        await victim.send(
            {"type": "start", "topic": "trading", "text": "我的账号被盗了，USDT 被提走", "id": "v"}
        )
        started = await victim.expect(type="started")
        assert started["chat_state"] == "queued"
        assert started["priority"] == "urgent"
        instructions = await victim.expect(type="message", kind="security_instructions")
        assert "冻结" in instructions["body"] and "助记词" in instructions["body"]
        # Urgent goes ahead of whoever was already waiting.
        assert (await victim.expect(type="queue", ticket=started["ticket"]))["position"] == 1
        await early.expect(type="queue", ticket=first, position=2)
        return first, started["ticket"]

    _, urgent = run(scenario())
    with server.sessions() as db:
        ticket = db.scalar(select(Ticket).where(Ticket.number == urgent))
        assert ticket is not None
        assert ticket.kind is TicketKind.ACCOUNT_SECURITY
        assert ticket.priority is Priority.URGENT
        assert "fast_lane" in ticket.tags
        security = db.scalar(select(Team).where(Team.slug == "security"))
        assert security is not None and ticket.team_id == security.id


def test_a_report_to_the_bot_moves_the_chat_to_the_fast_lane(server: LiveServer) -> None:
    seed(server)

    async def scenario() -> str:
        c = await Client.connect(server.ws_url, token=contact_token("20000003"))
        await c.expect(type="welcome")
        await c.send({"type": "start", "topic": "trading", "text": "提现多久到账", "id": "1"})
        number = (await c.expect(type="started", chat_state="bot"))["ticket"]
        await c.send({"type": "msg", "ticket": number, "text": "刚发现账户被盗了", "id": "2"})
        await c.expect(type="message", kind="security_instructions")
        await c.expect(type="state", chat_state="queued", priority="urgent")
        return number

    number = run(scenario())
    with server.sessions() as db:
        ticket = db.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None and ticket.priority is Priority.URGENT


def test_resend_is_stored_once_and_reconnect_gets_exactly_what_was_missed(
    server: LiveServer,
) -> None:
    ids = seed(server)

    async def scenario() -> str:
        c = await Client.connect(server.ws_url, token=contact_token("20000004"))
        await c.expect(type="welcome")
        await c.send({"type": "start", "topic": "other", "text": "人工客服", "id": "s"})
        number = (await c.expect(type="started"))["ticket"]
        await c.send({"type": "msg", "ticket": number, "text": "第一条", "id": "m1"})
        first = await c.expect(type="ack", id="m1")
        await c.send({"type": "msg", "ticket": number, "text": "第一条", "id": "m1"})  # resend
        again = await c.expect(type="ack", id="m1")
        assert again["seq"] == first["seq"]
        last_seen = first["seq"]
        await c.close()

        agent = await Client.connect(server.ws_url, token=ids["agent_token"])
        await agent.expect(type="welcome")
        await agent.send({"type": "accept", "ticket": number, "id": "acc"})
        await agent.expect(type="done", ref="acc")
        for i in range(3):
            await agent.send({"type": "msg", "ticket": number, "text": f"回复{i}", "id": f"a{i}"})
            await agent.expect(type="ack", id=f"a{i}")
        await agent.send(
            {"type": "msg", "ticket": number, "text": "内部备注", "id": "n", "internal": True}
        )
        await agent.expect(type="ack", id="n")

        back = await Client.connect(
            server.ws_url, token=contact_token("20000004"), resume={number: last_seen}
        )
        welcome = await back.expect(type="welcome")
        assert welcome["chats"][0]["ticket"] == number
        missed = [await back.expect(type="message") for _ in range(3)]
        assert [m["body"] for m in missed] == ["回复0", "回复1", "回复2"]
        assert [m["seq"] for m in missed] == [last_seen + 1, last_seen + 2, last_seen + 3]
        extra = [f for f in await back.quiet() if f["type"] == "message"]
        assert extra == []  # no internal note, no repeats
        return number

    run(scenario())
    with server.sessions() as db:
        count = db.scalar(
            select(func.count()).select_from(Message).where(Message.client_msg_id == "m1")
        )
        assert count == 1


def test_anonymous_visitors_cannot_open_account_topics_but_victims_can(server: LiveServer) -> None:
    seed(server)

    async def scenario() -> None:
        c = await Client.connect(server.ws_url)
        await c.expect(type="welcome")
        await c.send(
            {"type": "start", "topic": "deposit_withdrawal", "text": "充值没到", "id": "1"}
        )
        error = await c.expect(type="error", ref="1")
        assert error["code"] == "permission-denied"
        assert error["message"] == "该问题类型需要先登录交易所账户"
        await c.send({"type": "start", "topic": "account_security", "text": "号被盗了", "id": "2"})
        started = await c.expect(type="started")
        assert started["priority"] == "urgent"

    run(scenario())
    with server.sessions() as db:
        ticket = db.scalar(select(Ticket))
        assert ticket is not None and "identity_unverified" in ticket.tags


def test_leaving_a_message_when_nobody_is_online(server: LiveServer) -> None:
    seed(server)

    async def scenario() -> str:
        c = await Client.connect(server.ws_url)
        await c.expect(type="welcome")
        await c.send({"type": "start", "topic": "other", "text": "转人工，我要投诉", "id": "1"})
        number = (await c.expect(type="started"))["ticket"]
        queue = await c.expect(type="queue")
        assert queue["agents_online"] == 0
        await c.send({"type": "leave", "ticket": number, "email": "Li.Lei@Example.com", "id": "2"})
        await c.expect(type="done", ref="2")
        await c.expect(type="message", kind="left_message")
        return number

    number = run(scenario())
    with server.sessions() as db:
        ticket = db.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None and ticket.chat_state is ChatState.LEFT_MESSAGE
        contact = db.get(Contact, ticket.contact_id)
        assert contact is not None and contact.email == "li.lei@example.com"
        first = db.scalar(select(Message).order_by(Message.seq).limit(1))
        assert first is not None and first.body == "转人工，我要投诉"


def test_secrets_typed_into_chat_are_masked_before_storage(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The chat door: nothing of a seed phrase, key, password or code in the database,
    the search index, the file store or the logs (tests/secret_evidence.py)."""
    caplog.set_level(logging.DEBUG)
    seed(server)
    seed_phrase = Mnemonic("english").to_mnemonic(bytes(range(16)))
    secrets = [seed_phrase, PRIVKEY, "Hunter2024!", "482913"]

    async def scenario() -> None:
        c = await Client.connect(server.ws_url, token=contact_token("20000005"))
        await c.expect(type="welcome")
        await c.send({"type": "start", "topic": "other", "text": "转人工", "id": "1"})
        number = (await c.expect(type="started"))["ticket"]
        await c.send({"type": "msg", "ticket": number, "text": f"助记词 {seed_phrase}", "id": "2"})
        ack = await c.expect(type="ack", id="2")
        echoed = await c.expect(type="message", seq=ack["seq"])
        assert seed_phrase not in echoed["body"]
        warning = await c.expect(type="message", kind="dlp_warning")
        assert "官方客服绝不会索要" in warning["body"]
        others = f"私钥 {PRIVKEY} 登录密码：Hunter2024! 谷歌验证码 482913"
        await c.send({"type": "msg", "ticket": number, "text": others, "id": "3"})
        await c.expect(type="ack", id="3")

    run(scenario())
    with server.sessions() as db:
        evidence = gather(db, files_dir=server.settings.files_dir, caplog=caplog)
    assert "屏蔽" in evidence.index
    assert_kept_nowhere(evidence, secrets)


def test_bad_input_gets_an_error_frame_and_the_socket_survives(server: LiveServer) -> None:
    seed(server)

    async def scenario() -> None:
        c = await Client.connect(server.ws_url, token=contact_token("20000006"))
        await c.expect(type="welcome")
        await c.ws.send("{not json")
        assert (await c.expect(type="error"))["code"] == "invalid_json"
        await c.send({"no": "type"})
        assert (await c.expect(type="error"))["code"] == "invalid_frame"
        await c.send({"type": "teleport"})
        assert (await c.expect(type="error"))["code"] == "unknown_type"
        await c.send({"type": "msg", "ticket": "K00000000", "text": "x", "id": "1"})
        assert (await c.expect(type="error", ref="1"))["code"] == "not-found"
        await c.send({"type": "msg", "ticket": ["x"], "text": "x", "id": "2"})
        assert (await c.expect(type="error", ref="2"))["code"] == "invalid_frame"
        await c.send({"type": "presence", "status": "online"})
        assert (await c.expect(type="error"))["code"] == "agents_only"
        await c.send({"type": "start", "topic": "other", "text": "x" * 5000, "id": "3"})
        assert (await c.expect(type="error", ref="3"))["code"] == "validation-failed"
        await c.send({"type": "ping", "t": 7})
        assert (await c.expect(type="pong"))["t"] == 7

        # A frame over the limit: an error, then the socket is closed by policy.
        await c.ws.send('{"type":"msg","text":"' + "x" * 20_000 + '"}')
        assert (await c.expect(type="error"))["code"] == "frame_too_large"
        await c.ws.wait_closed()
        assert c.ws.close_code == 1008

    run(scenario())


def test_hello_is_required_and_forged_identities_are_refused(server: LiveServer) -> None:
    seed(server)

    async def scenario() -> None:
        c = await Client.connect(server.ws_url, token="a.b.c")
        assert (await c.expect(type="error"))["code"] == "not_authenticated"
        await c.ws.wait_closed()
        assert c.ws.close_code == 4001

        forged = await Client.connect(
            server.ws_url, visitor="v1.1.00000000000000000000000000000000"
        )
        assert (await forged.expect(type="error"))["code"] == "not_authenticated"
        await forged.ws.wait_closed()
        assert forged.ws.close_code == 4001

        raw = await websockets.connect(server.ws_url)  # no hello at all
        await raw.send('{"type":"start"}')
        assert '"hello_required"' in str(await raw.recv())
        await raw.wait_closed()
        assert raw.close_code == 4001

    run(scenario())


async def drain(c: Client) -> list[dict[str, Any]]:
    """Every frame until the server closes the socket."""
    frames = []
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            frames.append(json.loads(await c.ws.recv()))
    return frames


def test_a_flood_is_rate_limited_then_cut_off(server: LiveServer) -> None:
    seed(server)

    async def scenario() -> None:
        c = await Client.connect(server.ws_url, token=contact_token("20000007"))
        await c.expect(type="welcome")
        for i in range(200):
            await c.send({"type": "ping", "t": i})
        seen = await drain(c)
        assert c.ws.close_code == 1008
        pongs = [f for f in seen if f["type"] == "pong"]
        limited = [f for f in seen if f.get("code") == "rate_limited"]
        assert 40 <= len(pongs) < 60  # the burst, plus what refilled meanwhile
        assert len(limited) == 50  # then cut off

    run(scenario())


def test_agents_on_the_same_ticket_see_each_other_and_notes_stay_internal(
    server: LiveServer,
) -> None:
    """Collision detection: a second agent who opens a ticket is shown to the first and
    the first to them; typing a note shows to colleagues, never to the customer."""
    ids = seed(server)
    with server.sessions.begin() as db:
        general = db.scalar(select(Team).where(Team.slug == "general"))
        colleague = make_agent(db, teams=[general] if general else [])
        colleague_token, colleague_id, colleague_name = (
            make_token(db, colleague),
            colleague.id,
            colleague.name,
        )

    async def scenario() -> None:
        customer = await Client.connect(server.ws_url, token=contact_token("30000001"))
        await customer.expect(type="welcome")
        await customer.send({"type": "start", "topic": "other", "text": "转人工", "id": "s"})
        number = (await customer.expect(type="started"))["ticket"]

        first = await Client.connect(server.ws_url, token=ids["agent_token"])
        await first.expect(type="welcome")
        await first.send({"type": "watch", "ticket": number})
        await first.expect(type="message", seq=1)

        second = await Client.connect(server.ws_url, token=colleague_token)
        await second.expect(type="welcome")
        await second.send({"type": "watch", "ticket": number})
        seen_by_first = await first.expect(type="viewers", ticket=number)
        assert seen_by_first["agents"] == [{"id": colleague_id, "name": colleague_name}]
        seen_by_second = await second.expect(type="viewers", ticket=number)
        assert seen_by_second["agents"] == [{"id": ids["agent_id"], "name": ids["agent_name"]}]

        await second.send({"type": "typing", "ticket": number, "internal": True})
        typing = await first.expect(type="typing", ticket=number)
        assert typing["agent_id"] == colleague_id and typing["agent_name"] == colleague_name
        assert not [f for f in await customer.quiet() if f["type"] == "typing"]
        # The typist does not hear their own typing.
        assert not [f for f in await second.quiet(0.1) if f["type"] == "typing"]

        await second.send({"type": "typing", "ticket": number})
        assert (await customer.expect(type="typing", ticket=number))["from"] == "agent"

        await second.close()
        gone = await first.expect(type="viewers", ticket=number, agents=[])
        assert gone["ticket"] == number

    run(scenario())


def test_a_console_following_the_inbox_hears_of_changes_in_its_teams(
    server: LiveServer,
) -> None:
    ids = seed(server)
    with server.sessions.begin() as db:
        payments = db.scalar(select(Team).where(Team.slug == "payments"))
        security = db.scalar(select(Team).where(Team.slug == "security"))
        assert payments is not None and security is not None
        payments_id, security_id = payments.id, security.id

    async def scenario() -> None:
        guard = await Client.connect(server.ws_url, token=ids["guard_token"])
        await guard.expect(type="welcome")
        await guard.send({"type": "follow", "inbox": True, "id": "f"})
        await guard.expect(type="done", ref="f")
        async with httpx.AsyncClient(base_url=server.url) as http:
            headers = {"Authorization": f"Bearer {ids['agent_token']}"}
            for team_id, subject in ((payments_id, "别的团队"), (security_id, "安全组的")):
                response = await http.post(
                    "/api/v1/tickets",
                    json={"subject": subject, "body": "正文", "channel": "web", "team_id": team_id},
                    headers=headers,
                )
                assert response.status_code == 201, response.text
                if team_id == security_id:
                    mine = response.json()["number"]
        changed = await guard.expect(type="changed", ticket=mine)
        assert changed["event"] == "ticket.created"
        # Another team's ticket does not reach this console.
        assert [f["ticket"] for f in await guard.quiet() if f["type"] == "changed"] == []

    run(scenario())


def test_the_console_cookie_only_works_from_the_consoles_own_pages(server: LiveServer) -> None:
    """Cross-site websocket hijacking: a page elsewhere that opens the socket has the
    agent's cookie sent along; it must get a visitor's socket, not the agent's."""
    with server.sessions.begin() as db:
        agent = make_agent(db, password=PASSWORD)
        email = agent.email
    login = httpx.post(
        server.url + "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    cookie = f"kefu_session={login.cookies['kefu_session']}"

    async def role(origin: str) -> str:
        async with websockets.connect(
            server.ws_url, additional_headers={"Cookie": cookie, "Origin": origin}
        ) as ws:
            await ws.send(json.dumps({"type": "hello"}))
            welcome = json.loads(await ws.recv())
            assert welcome["type"] == "welcome"
            return str(welcome["role"])

    assert run(role(server.url)) == "agent"
    assert run(role("https://evil.example")) == "visitor"
