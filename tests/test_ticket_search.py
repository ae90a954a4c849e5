"""Full-text search over ticket messages on both databases: Chinese segmented like the
help center (提现 inside 如何提现到银行卡), notes for agents only, the agent's own
tickets only, messages that follow a merge, and a query language that is never
exposed."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from kefu.actions.auth import agent_actor
from kefu.actions.messages import NewMessage, do_add_message
from kefu.actions.tickets import do_change_status, do_merge_tickets
from kefu.domain.tickets import Channel, TicketStatus
from kefu.queries.tickets import TicketFilter, list_tickets
from tests.chat_support import contact_token
from tests.factories import (
    auth,
    contact_actor,
    make_agent,
    make_contact,
    make_team,
    make_ticket,
    make_token,
)


def numbers(client: TestClient, token: str, q: str) -> list[str]:
    r = client.get("/api/v1/tickets", params={"q": q, "limit": 100}, headers=auth(token))
    assert r.status_code == 200, r.text
    return [t["number"] for t in r.json()["items"]]


def test_words_in_messages_find_their_tickets(client: TestClient, db: Session) -> None:
    general, security = make_team(db), make_team(db)
    agent = make_agent(db, teams=[general])
    contact = make_contact(db)
    bank = make_ticket(db, subject="咨询", body="如何提现到银行卡？", team=general, contact=contact)
    other = make_ticket(db, subject="别的问题", body="合约爆仓了", team=general)
    hidden = make_ticket(db, subject="安全组", body="提现到银行卡被冻结", team=security)
    do_add_message(
        db,
        agent_actor(agent),
        other,
        NewMessage(body="内部：疑似洗钱，冻结核查", channel=Channel.WEB, is_internal=True),
    )
    token = make_token(db, agent)
    db.commit()

    # 提现 is found inside 如何提现到银行卡, and 提币 means the same (synonyms).
    assert numbers(client, token, "提现") == [bank.number]
    assert numbers(client, token, "提币 银行卡") == [bank.number]
    # Notes are searchable by agents; another team's ticket is not found.
    assert numbers(client, token, "洗钱") == [other.number]
    assert hidden.number not in numbers(client, token, "银行卡")
    # Every word must match.
    assert numbers(client, token, "提现 爆仓") == []
    # The FTS query language is not exposed: operators and quotes are just words.
    for hostile in (
        '"提现" OR 爆仓',
        "银行卡*",
        "NEAR(提现 银行卡)",
        "'; DROP TABLE messages; --",
        "\\",
    ):
        assert isinstance(numbers(client, token, hostile), list)
    # A contact may not search message text (it would reveal notes' words).
    assert contact.exchange_uid is not None
    r = client.get(
        "/api/v1/tickets", params={"q": "洗钱"}, headers=auth(contact_token(contact.exchange_uid))
    )
    assert r.status_code == 403


def test_words_combine_with_the_list_filters(client: TestClient, db: Session) -> None:
    team = make_team(db)
    agent = make_agent(db, teams=[team])
    first = make_ticket(db, subject="提现问题", body="提现到银行卡失败", team=team)
    second = make_ticket(db, subject="又一个", body="提现到银行卡很慢", team=team)
    do_change_status(db, agent_actor(agent), second, TicketStatus.PENDING)
    token = make_token(db, agent)
    db.commit()

    def found(**params: str) -> list[str]:
        r = client.get("/api/v1/tickets", params={"q": "银行卡", **params}, headers=auth(token))
        assert r.status_code == 200, r.text
        return [t["number"] for t in r.json()["items"]]

    assert sorted(found()) == sorted([first.number, second.number])
    assert found(status="pending") == [second.number]
    assert found(status="new") == [first.number]
    assert found(sort="created_at") == [first.number, second.number]
    # A cursor page holds to the search too.
    page = client.get(
        "/api/v1/tickets", params={"q": "银行卡", "limit": 1}, headers=auth(token)
    ).json()
    rest = client.get(
        "/api/v1/tickets",
        params={"q": "银行卡", "limit": 1, "cursor": page["next"]},
        headers=auth(token),
    ).json()
    assert [t["number"] for t in page["items"] + rest["items"]] == found()
    assert rest["next"] is None


def test_merged_messages_are_found_on_the_target(db: Session) -> None:
    team = make_team(db)
    agent = make_agent(db, teams=[team])
    contact = make_contact(db)
    first = make_ticket(db, subject="第一次", body="充值没到", team=team, contact=contact)
    second = make_ticket(
        db, subject="第二次", body="助记词钱包的USDT充值延迟", team=team, contact=contact
    )
    do_merge_tickets(db, agent_actor(agent), second, first)
    db.flush()
    page = list_tickets(db, agent_actor(agent), TicketFilter(text="延迟"))
    assert [t.number for t in page.items] == [first.number]


def test_contacts_messages_are_indexed_as_stored_with_secrets_masked(db: Session) -> None:
    contact = make_contact(db)
    words = "abandon ability able about above absent absorb abstract absurd abuse access accident"
    ticket = make_ticket(
        db, body=f"我的助记词 {words}", contact=contact, actor=contact_actor(contact)
    )
    db.flush()
    dialect = db.get_bind().dialect.name
    table, column = ("message_fts", "terms") if dialect == "sqlite" else ("message_search", "terms")
    indexed = " ".join(db.scalars(text(f"SELECT {column} FROM {table}")).all())  # noqa: S608  # fixed names
    assert "abandon" not in indexed and "absurd" not in indexed
    assert ticket.status is TicketStatus.NEW
