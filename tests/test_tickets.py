"""Tickets through the API: create, read, list, update, merge, messages, idempotency."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from kefu.domain.access import Role
from kefu.domain.tickets import normalize_ticket_number
from tests.conftest import EventSink
from tests.factories import (
    auth,
    contact_actor,
    make_agent,
    make_contact,
    make_team,
    make_ticket,
    make_token,
)


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    payments = make_team(db)
    security = make_team(db)
    alice = make_agent(db, teams=[payments])
    bob = make_agent(db, teams=[security])
    admin = make_agent(db, role=Role.ADMIN)
    contact = make_contact(db)
    db.commit()
    return {
        "payments": payments,
        "security": security,
        "alice": alice,
        "bob": bob,
        "admin": admin,
        "contact": contact,
        "alice_h": auth(make_token(db, alice)),
        "bob_h": auth(make_token(db, bob)),
        "admin_h": auth(make_token(db, admin, ["read", "write", "admin"])),
    }


def create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    payload = {"subject": "提币一直在审核中", "body": "我昨天提的USDT还在审核", **body}
    r = client.post("/api/v1/tickets", json=payload, headers=headers)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def test_create_ticket_stores_it_with_its_first_message(
    client: TestClient, world: dict[str, Any], sink: EventSink
) -> None:
    t = create(
        client,
        world["alice_h"],
        team_id=world["payments"].id,
        contact={"email": "New.User@Example.com", "name": "王先生"},
        coin="usdt",
        network="trc20",
        tags=["提币", "VIP"],
    )
    assert normalize_ticket_number(t["number"]) == t["number"]
    assert t["status"] == "new"
    assert t["priority"] == "normal"
    assert t["coin"] == "USDT" and t["network"] == "TRC20"
    assert t["tags"] == ["vip", "提币"]
    assert t["message_count"] == 1
    assert "ticket.created" in sink.types()
    assert "message.created" in sink.types()

    got = client.get(f"/api/v1/tickets/{t['number']}", headers=world["alice_h"]).json()
    assert got["subject"] == "提币一直在审核中"
    msgs = client.get(f"/api/v1/tickets/{t['number']}/messages", headers=world["alice_h"]).json()
    assert [m["body"] for m in msgs["items"]] == ["我昨天提的USDT还在审核"]
    first = msgs["items"][0]
    assert {
        "id",
        "body",
        "author",
        "is_internal",
        "channel",
        "created_at",
        "attachments",
    } <= first.keys()
    contact = client.get(f"/api/v1/contacts/{got['contact_id']}", headers=world["alice_h"]).json()
    assert contact["email"] == "n***@example.com"  # agents see it masked (docs/security.md)


def test_ticket_number_lookup_accepts_spoken_form(
    client: TestClient, world: dict[str, Any]
) -> None:
    t = create(client, world["alice_h"])
    lower = "k" + t["number"][1:]
    r = client.get(f"/api/v1/tickets/{lower}", headers=world["alice_h"])
    assert r.status_code == 200


def test_account_security_ticket_is_urgent_whatever_is_asked(
    client: TestClient, world: dict[str, Any]
) -> None:
    t = create(client, world["alice_h"], kind="account_security", priority="low")
    assert t["priority"] == "urgent"
    r = client.patch(
        f"/api/v1/tickets/{t['number']}", json={"priority": "normal"}, headers=world["alice_h"]
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


def test_changing_kind_to_account_security_raises_priority(
    client: TestClient, world: dict[str, Any]
) -> None:
    t = create(client, world["alice_h"])
    r = client.patch(
        f"/api/v1/tickets/{t['number']}",
        json={"kind": "account_security"},
        headers=world["alice_h"],
    )
    assert r.json()["priority"] == "urgent"


def test_status_flow_and_invalid_transition(client: TestClient, world: dict[str, Any]) -> None:
    t = create(client, world["alice_h"])
    url = f"/api/v1/tickets/{t['number']}"
    h = world["alice_h"]
    assert client.patch(url, json={"status": "pending"}, headers=h).json()["status"] == "pending"
    solved = client.patch(url, json={"status": "solved"}, headers=h).json()
    assert solved["status"] == "solved" and solved["solved_at"] is not None
    assert client.patch(url, json={"status": "closed"}, headers=h).json()["status"] == "closed"
    r = client.patch(url, json={"status": "open"}, headers={**h, "Accept-Language": "zh-CN"})
    assert r.status_code == 409
    problem = r.json()
    assert problem["type"].endswith("/invalid-transition")
    assert problem["status"] == 409
    assert problem["detail"] == "状态不能这样变更"
    r_en = client.patch(url, json={"status": "open"}, headers={**h, "Accept-Language": "en"})
    assert r_en.json()["detail"] == "invalid status transition"
    # A closed ticket takes no more messages.
    r = client.post(f"{url}/messages", json={"body": "还在吗"}, headers=h)
    assert r.status_code == 409


def test_assign_tag_and_history(client: TestClient, world: dict[str, Any]) -> None:
    t = create(client, world["admin_h"])
    url = f"/api/v1/tickets/{t['number']}"
    h = world["admin_h"]
    r = client.patch(
        url,
        json={
            "team_id": world["security"].id,
            "assignee_id": world["bob"].id,
            "add_tags": ["被盗"],
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["team_id"] == world["security"].id
    assert body["assignee_id"] == world["bob"].id
    assert body["tags"] == ["被盗"]
    r = client.patch(url, json={"remove_tags": ["被盗"], "add_tags": ["已冻结"]}, headers=h)
    assert r.json()["tags"] == ["已冻结"]
    kinds = [e["kind"] for e in client.get(f"{url}/events", headers=h).json()["items"]]
    assert kinds[:2] == ["ticket.created", "message.created"]
    assert "ticket.assigned" in kinds and kinds.count("ticket.tagged") == 2
    # Unassigning sets null explicitly.
    assert client.patch(url, json={"assignee_id": None}, headers=h).json()["assignee_id"] is None
    bad = client.patch(url, json={"assignee_id": 999999}, headers=h)
    assert bad.status_code == 422


def test_agent_reply_sets_first_response_and_opens(
    client: TestClient, world: dict[str, Any]
) -> None:
    t = create(client, world["alice_h"])
    url = f"/api/v1/tickets/{t['number']}"
    r = client.post(
        f"{url}/messages", json={"body": "您好，我们正在核实"}, headers=world["alice_h"]
    )
    assert r.status_code == 201
    msg = r.json()
    assert msg["seq"] == 2 and msg["direction"] == "out" and msg["author"]["type"] == "agent"
    after = client.get(url, headers=world["alice_h"]).json()
    assert after["status"] == "open"
    assert after["first_response_at"] is not None
    # An internal note does not count as a first response on another ticket.
    t2 = create(client, world["alice_h"])
    client.post(
        f"/api/v1/tickets/{t2['number']}/messages",
        json={"body": "内部：先查链上", "is_internal": True},
        headers=world["alice_h"],
    )
    assert (
        client.get(f"/api/v1/tickets/{t2['number']}", headers=world["alice_h"]).json()[
            "first_response_at"
        ]
        is None
    )


def test_messages_resume_after_seq(client: TestClient, world: dict[str, Any]) -> None:
    t = create(client, world["alice_h"])
    url = f"/api/v1/tickets/{t['number']}/messages"
    for i in range(5):
        client.post(url, json={"body": f"第{i}条"}, headers=world["alice_h"])
    items = client.get(f"{url}?after_seq=3", headers=world["alice_h"]).json()["items"]
    assert [m["seq"] for m in items] == [4, 5, 6]


def test_client_message_id_is_idempotent(client: TestClient, world: dict[str, Any]) -> None:
    t = create(client, world["alice_h"])
    url = f"/api/v1/tickets/{t['number']}/messages"
    a = client.post(
        url, json={"body": "你好", "client_msg_id": "c-1"}, headers=world["alice_h"]
    ).json()
    b = client.post(
        url, json={"body": "你好", "client_msg_id": "c-1"}, headers=world["alice_h"]
    ).json()
    assert a["id"] == b["id"]
    assert len(client.get(url, headers=world["alice_h"]).json()["items"]) == 2


def test_idempotency_key_replays_and_rejects_reuse(
    client: TestClient, world: dict[str, Any]
) -> None:
    h = {**world["alice_h"], "Idempotency-Key": "create-1"}
    body = {"subject": "充币未到账", "body": "TxID 在此"}
    first = client.post("/api/v1/tickets", json=body, headers=h)
    again = client.post("/api/v1/tickets", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert first.json()["number"] == again.json()["number"]
    assert again.headers["idempotent-replayed"] == "true"
    listed = client.get("/api/v1/tickets", headers=world["alice_h"]).json()["items"]
    assert sum(1 for t in listed if t["number"] == first.json()["number"]) == 1
    other = client.post("/api/v1/tickets", json={**body, "subject": "别的"}, headers=h)
    assert other.status_code == 409
    # Keys are per caller: Bob's same key is a different request.
    bob = client.post(
        "/api/v1/tickets", json=body, headers={**world["bob_h"], "Idempotency-Key": "create-1"}
    )
    assert bob.status_code == 201 and bob.json()["number"] != first.json()["number"]


def test_list_filters_and_cursor_pages(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    h = world["admin_h"]
    numbers = [
        create(client, h, team_id=world["payments"].id, tags=["批量"], coin="BTC")["number"]
        for _ in range(7)
    ]
    create(client, h, kind="complaint", channel="email")
    seen: list[str] = []
    cursor = None
    while True:
        q = "/api/v1/tickets?tag=批量&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(q, headers=h).json()
        seen += [t["number"] for t in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == list(reversed(numbers))
    asc = client.get("/api/v1/tickets?tag=批量&sort=created_at&limit=100", headers=h).json()
    assert [t["number"] for t in asc["items"]] == numbers
    complaints = client.get("/api/v1/tickets?kind=complaint&channel=email", headers=h).json()
    assert len(complaints["items"]) == 1 and complaints["items"][0]["priority"] == "high"
    by_team = client.get(f"/api/v1/tickets?team_id={world['payments'].id}", headers=h).json()
    assert len(by_team["items"]) == 7
    by_prio = client.get("/api/v1/tickets?sort=priority&limit=2", headers=h).json()
    assert by_prio["items"][0]["priority"] == "high"
    page2 = client.get(f"/api/v1/tickets?sort=priority&limit=2&cursor={by_prio['next']}", headers=h)
    assert page2.status_code == 200 and len(page2.json()["items"]) == 2
    multi = client.get("/api/v1/tickets?status=new,open&priority=high", headers=h).json()
    assert len(multi["items"]) == 1
    assert client.get("/api/v1/tickets?status=bogus", headers=h).status_code == 422
    assert client.get("/api/v1/tickets?cursor=!!!", headers=h).status_code == 422
    assert (
        client.get("/api/v1/tickets?created_after=2020-01-01T00:00:00", headers=h).status_code
        == 422
    )
    ranged = client.get("/api/v1/tickets?created_after=2020-01-01T00:00:00Z&tag=批量", headers=h)
    assert len(ranged.json()["items"]) == 7


def test_merge_moves_messages_and_closes_source(client: TestClient, world: dict[str, Any]) -> None:
    h = world["alice_h"]
    a = create(client, h, tags=["a"])
    b = create(client, h, body="同一个问题的第二封邮件")
    r = client.post(f"/api/v1/tickets/{b['number']}/merge", json={"into": a["number"]}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["number"] == a["number"] and r.json()["message_count"] == 2
    src = client.get(f"/api/v1/tickets/{b['number']}", headers=h).json()
    assert src["status"] == "closed" and src["merged_into"] == a["number"]
    bodies = [
        m["body"]
        for m in client.get(f"/api/v1/tickets/{a['number']}/messages", headers=h).json()["items"]
    ]
    assert bodies == ["我昨天提的USDT还在审核", "同一个问题的第二封邮件"]
    again = client.post(
        f"/api/v1/tickets/{b['number']}/merge", json={"into": a["number"]}, headers=h
    )
    assert again.status_code == 409
    self_merge = client.post(
        f"/api/v1/tickets/{a['number']}/merge", json={"into": a["number"]}, headers=h
    )
    assert self_merge.status_code == 422


def test_agent_cannot_reach_another_teams_ticket(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    ticket = make_ticket(db, team=world["security"], contact=world["contact"])
    db.commit()
    url = f"/api/v1/tickets/{ticket.number}"
    h = world["alice_h"]
    for method, path, body in [
        ("GET", url, None),
        ("PATCH", url, {"status": "open"}),
        ("GET", f"{url}/messages", None),
        ("POST", f"{url}/messages", {"body": "hi"}),
        ("GET", f"{url}/events", None),
    ]:
        r = client.request(method, path, json=body, headers=h)
        assert r.status_code == 404, (method, path, r.status_code)
    listed = client.get("/api/v1/tickets", headers=h).json()["items"]
    assert ticket.number not in [t["number"] for t in listed]
    # Bob is in that team; an admin sees all.
    assert client.get(url, headers=world["bob_h"]).status_code == 200
    assert client.get(url, headers=world["admin_h"]).status_code == 200
    # Merging someone else's ticket into yours is also refused.
    mine = create(client, h)
    r = client.post(
        f"/api/v1/tickets/{mine['number']}/merge", json={"into": ticket.number}, headers=h
    )
    assert r.status_code == 404


def test_assignee_sees_ticket_outside_their_teams(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    ticket = make_ticket(db, team=world["security"], assignee=world["alice"])
    db.commit()
    assert (
        client.get(f"/api/v1/tickets/{ticket.number}", headers=world["alice_h"]).status_code == 200
    )


def test_read_only_token_cannot_write(
    client: TestClient, world: dict[str, Any], db: Session
) -> None:
    ro = auth(make_token(db, world["alice"], ["read"]))
    db.commit()
    assert client.get("/api/v1/tickets", headers=ro).status_code == 200
    r = client.post("/api/v1/tickets", json={"subject": "x"}, headers=ro)
    assert r.status_code == 403


def test_contact_factory_ticket_visible_to_contact_actor(
    db: Session, world: dict[str, Any]
) -> None:
    from kefu.queries.tickets import TicketFilter, list_tickets

    mine = make_ticket(db, actor=contact_actor(world["contact"]), contact=world["contact"])
    other = make_ticket(db, contact=make_contact(db))
    page = list_tickets(db, contact_actor(world["contact"]), TicketFilter())
    assert [t.number for t in page.items] == [mine.number]
    assert other.number not in [t.number for t in page.items]
