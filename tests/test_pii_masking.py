"""PII in ticket subjects and contact records is shown masked to agents, as in message
bodies; an agent with the "view sensitive data" permission reveals it with
``reveal=true``, and every reveal is an audit event (docs/security.md)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from kefu.actions.agents import do_update_agent
from kefu.actions.webhooks import do_create_webhook
from kefu.domain.access import SYSTEM, Actor, ActorKind, Role
from kefu.models import Event, Job
from tests.factories import auth, make_agent, make_team, make_token

CARD = "6222 0212 3456 7890 128"  # Luhn-valid
CARD_MASKED = "6222 **** **** 0128"
SUBJECT = f"银行卡 {CARD} 被冻结"


@pytest.fixture
def people(db: Session) -> dict[str, Any]:
    team = make_team(db)
    agent = make_agent(db, teams=[team])
    db.commit()
    token = jwt.encode(
        {"sub": "66660009", "aud": "kefu", "exp": int(time.time()) + 600},
        "test-contact-jwt-key-of-32-bytes!",
        algorithm="HS256",
    )
    return {"agent": agent, "h_agent": auth(make_token(db, agent)), "h_contact": auth(token)}


def grant_view_sensitive(client: TestClient, db: Session, people: dict[str, Any]) -> None:
    do_update_agent(db, SYSTEM, people["agent"], can_view_sensitive=True)
    db.commit()
    client.app.state.kefu.principals.clear()  # type: ignore[attr-defined]


def reveals(db: Session) -> list[Event]:
    return list(db.scalars(select(Event).where(Event.kind == "sensitive.revealed")))


def test_ticket_subjects_are_masked_for_agents_and_in_webhooks(
    client: TestClient, people: dict[str, Any], db: Session
) -> None:
    do_create_webhook(
        db,
        Actor(kind=ActorKind.AGENT, id=None, role=Role.ADMIN),
        url="http://127.0.0.1:9/x",
        events=["ticket.created"],
    )
    db.commit()
    created = client.post("/api/v1/tickets", json={"subject": SUBJECT}, headers=people["h_contact"])
    assert created.status_code == 201, created.text
    assert created.json()["subject"] == SUBJECT  # the contact's own words
    number = created.json()["number"]
    url = f"/api/v1/tickets/{number}"
    h = people["h_agent"]
    masked = f"银行卡 {CARD_MASKED} 被冻结"
    assert client.get(url, headers=h).json()["subject"] == masked
    listed = client.get("/api/v1/tickets", headers=h).json()["items"]
    assert [t["subject"] for t in listed] == [masked]
    patched = client.patch(url, json={"priority": "high"}, headers=h)
    assert patched.json()["subject"] == masked
    assert client.get(url, headers=people["h_contact"]).json()["subject"] == SUBJECT
    # Webhook payloads carry the masked subject.
    [job] = db.scalars(select(Job).where(Job.kind == "webhook.deliver")).all()
    assert job.payload["data"]["subject"] == masked
    assert CARD not in str(job.payload)
    # Without the permission there is no reveal, and nothing is audited.
    refused = client.get(url, params={"reveal": "true"}, headers=h)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (
        client.get(url, params={"reveal": "true"}, headers=people["h_contact"]).status_code == 403
    )
    assert reveals(db) == []


def test_an_audited_reveal_shows_the_subject(
    client: TestClient, people: dict[str, Any], db: Session
) -> None:
    number = client.post(
        "/api/v1/tickets", json={"subject": SUBJECT}, headers=people["h_contact"]
    ).json()["number"]
    grant_view_sensitive(client, db, people)
    url = f"/api/v1/tickets/{number}"
    h = people["h_agent"]
    # Holding the permission does not unmask by default: each look is asked for.
    assert CARD_MASKED in client.get(url, headers=h).json()["subject"]
    assert reveals(db) == []
    revealed = client.get(url, params={"reveal": "true"}, headers=h)
    assert revealed.status_code == 200, revealed.text
    assert revealed.json()["subject"] == SUBJECT
    [audit] = reveals(db)
    assert audit.actor_id == people["agent"].id
    assert audit.ticket_id is not None
    assert audit.data == {"fields": ["subject"]}
    assert CARD not in str(audit.data)


def test_contacts_phone_and_email_are_masked_for_agents(
    client: TestClient, people: dict[str, Any], db: Session
) -> None:
    h = people["h_agent"]
    made = client.post(
        "/api/v1/contacts",
        json={"name": f"李雷 卡号 {CARD}", "email": "li.lei@example.com", "phone": "13800138000"},
        headers=h,
    )
    assert made.status_code == 201, made.text
    short = client.post("/api/v1/contacts", json={"phone": "123456"}, headers=h).json()
    cid = made.json()["id"]
    listed = {c["id"]: c for c in client.get("/api/v1/contacts", headers=h).json()["items"]}
    one = listed[cid]
    assert (one["phone"], one["email"]) == ("138****8000", "l***@example.com")
    assert one["name"] == f"李雷 卡号 {CARD_MASKED}"
    assert listed[short["id"]]["phone"] == "******"  # too short to show a head and a tail
    got = client.get(f"/api/v1/contacts/{cid}", headers=h).json()
    assert (got["phone"], got["email"]) == ("138****8000", "l***@example.com")
    # Searching by the full number still finds the contact, masked.
    found = client.get("/api/v1/contacts", params={"q": "13800138000"}, headers=h).json()
    assert [c["phone"] for c in found["items"]] == ["138****8000"]
    for path in ("/api/v1/contacts", f"/api/v1/contacts/{cid}"):
        assert client.get(path, params={"reveal": "true"}, headers=h).status_code == 403
    assert reveals(db) == []


def test_an_audited_reveal_shows_contacts_in_full(
    client: TestClient, people: dict[str, Any], db: Session
) -> None:
    h = people["h_agent"]
    cid = client.post(
        "/api/v1/contacts",
        json={"email": "li.lei@example.com", "phone": "+8613800138000"},
        headers=h,
    ).json()["id"]
    grant_view_sensitive(client, db, people)
    assert client.get(f"/api/v1/contacts/{cid}", headers=h).json()["phone"] == "+86 138****8000"
    one = client.get(f"/api/v1/contacts/{cid}", params={"reveal": "true"}, headers=h).json()
    assert (one["phone"], one["email"]) == ("+8613800138000", "li.lei@example.com")
    page = client.get("/api/v1/contacts", params={"reveal": "true"}, headers=h).json()
    assert [c["email"] for c in page["items"]] == ["li.lei@example.com"]
    audits = reveals(db)
    assert [a.data for a in audits] == [
        {"fields": ["email", "phone", "name"], "contact_ids": [cid]},
        {"fields": ["email", "phone", "name"], "contact_ids": [cid]},
    ]
    assert {a.actor_id for a in audits} == {people["agent"].id}
    assert all("13800138000" not in str(a.data) for a in audits)


def test_a_contact_sees_their_own_data_in_full(
    client: TestClient, people: dict[str, Any], db: Session
) -> None:
    token = jwt.encode(
        {
            "sub": "66660010",
            "aud": "kefu",
            "exp": int(time.time()) + 600,
            "email": "han.mei@example.com",
        },
        "test-contact-jwt-key-of-32-bytes!",
        algorithm="HS256",
    )
    me = client.get("/api/v1/me", headers=auth(token)).json()
    assert me["contact"]["email"] == "han.mei@example.com"
