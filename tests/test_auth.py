"""Logging in: password + TOTP, lock-out, rate limits, sessions with CSRF, tokens, JWTs."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pyotp
import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from kefu.actions.agents import do_enroll_totp
from kefu.domain.access import SYSTEM, Role
from tests.factories import (
    PASSWORD,
    auth,
    make_agent,
    make_contact,
    make_team,
    make_ticket,
    make_token,
)

JWT_KEY = "test-contact-jwt-key-of-32-bytes!"


def login(client: TestClient, email: str, password: str = PASSWORD, totp: str | None = None) -> Any:
    body = {"email": email, "password": password}
    if totp is not None:
        body["totp"] = totp
    return client.post("/api/v1/auth/login", json=body)


def test_agent_logs_in_with_password_and_uses_the_session(client: TestClient, db: Session) -> None:
    team = make_team(db)
    agent = make_agent(db, teams=[team], password=PASSWORD)
    make_ticket(db, team=team)
    db.commit()
    r = login(client, agent.email.upper())
    assert r.status_code == 200, r.text
    cookie = r.cookies.get("kefu_session")
    assert cookie
    assert "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=lax" in r.headers["set-cookie"].lower()
    csrf = r.json()["csrf_token"]
    assert client.get("/api/v1/me").json()["agent"]["email"] == agent.email
    assert len(client.get("/api/v1/tickets").json()["items"]) == 1
    # A state change through a cookie session needs the CSRF token.
    no_csrf = client.post("/api/v1/tickets", json={"subject": "x"})
    assert no_csrf.status_code == 403
    wrong = client.post("/api/v1/tickets", json={"subject": "x"}, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    ok = client.post("/api/v1/tickets", json={"subject": "x"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201
    assert client.post("/api/v1/auth/logout").status_code == 204
    client.cookies.set("kefu_session", cookie)
    assert client.get("/api/v1/me").status_code == 401


def test_wrong_password_and_unknown_email_look_the_same(client: TestClient, db: Session) -> None:
    agent = make_agent(db, password=PASSWORD)
    db.commit()
    a = login(client, agent.email, "wrong password!")
    b = login(client, "nobody@kx-exchange.example")
    assert a.status_code == b.status_code == 401
    assert a.json()["detail"] == b.json()["detail"]


def test_admin_must_use_totp(client: TestClient, db: Session) -> None:
    admin = make_agent(db, role=Role.ADMIN, password=PASSWORD)
    db.commit()
    no_totp_enrolled = login(client, admin.email)
    assert no_totp_enrolled.status_code == 401
    assert no_totp_enrolled.json()["totp_required"] is True
    uri = do_enroll_totp(db, SYSTEM, admin)
    db.commit()
    secret = pyotp.parse_uri(uri).secret
    assert login(client, admin.email).json()["totp_required"] is True
    bad = login(
        client, admin.email, totp="000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    )
    assert bad.status_code == 401
    good = login(client, admin.email, totp=pyotp.TOTP(secret).now())
    assert good.status_code == 200, good.text


def test_lockout_after_repeated_failures(client: TestClient, db: Session, settings: Any) -> None:
    agent = make_agent(db, password=PASSWORD)
    db.commit()
    for _ in range(settings.login_max_failures):
        assert login(client, agent.email, "wrong password!").status_code == 401
    locked = login(client, agent.email)  # the right password no longer helps
    assert locked.status_code == 401
    assert "锁定" in locked.json()["detail"]


def test_login_rate_limit(client: TestClient, db: Session, settings: Any) -> None:
    for _ in range(settings.login_rate_per_minute):
        login(client, "spray@kx-exchange.example", "x")
    r = login(client, "spray@kx-exchange.example", "x")
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0


def test_revoked_and_expired_tokens_stop_working(client: TestClient, db: Session) -> None:
    agent = make_agent(db)
    raw = make_token(db, agent)
    db.commit()
    h = auth(raw)
    tokens = client.get("/api/v1/tokens", headers=h).json()["items"]
    assert len(tokens) == 1 and tokens[0]["prefix"].startswith("kefu_")
    assert raw not in str(tokens)
    expired = client.post(
        "/api/v1/tokens", json={"name": "short", "expires_at": "2000-01-01T00:00:00Z"}, headers=h
    ).json()
    assert client.get("/api/v1/me", headers=auth(expired["token"])).status_code == 401
    assert client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=h).status_code == 204
    assert client.get("/api/v1/me", headers=h).status_code == 401
    assert client.get("/api/v1/me", headers=auth("kefu_not-a-real-token")).status_code == 401
    assert (
        client.get("/api/v1/me", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status_code == 401
    )
    assert client.get("/api/v1/me").status_code == 401


def test_agent_cannot_revoke_someone_elses_token(client: TestClient, db: Session) -> None:
    a, b = make_agent(db), make_agent(db)
    ha = auth(make_token(db, a))
    make_token(db, b)
    db.commit()
    b_tokens = client.get("/api/v1/tokens", headers=auth(make_token(db, b))).json()["items"]
    db.commit()
    assert client.delete(f"/api/v1/tokens/{b_tokens[0]['id']}", headers=ha).status_code == 404


def _jwt(sub: str, **claims: Any) -> str:
    payload = {"sub": sub, "aud": "kefu", "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, JWT_KEY, algorithm="HS256")


def test_contact_identified_by_exchange_token_sees_only_own_tickets(
    client: TestClient, db: Session
) -> None:
    team = make_team(db)
    agent = make_agent(db, teams=[team])
    stranger = make_contact(db)
    theirs = make_ticket(db, contact=stranger, team=team)
    db.commit()
    h = auth(_jwt("88880001", email="me@example.com", name="小明", kyc_level=2))
    me = client.get("/api/v1/me", headers=h).json()
    assert me["kind"] == "contact" and me["contact"]["exchange_uid"] == "88880001"
    assert me["contact"]["verification_level"] == 2
    created = client.post(
        "/api/v1/tickets",
        json={
            "subject": "账户被盗",
            "body": "我的账户被盗了",
            "kind": "account_security",
            "priority": "low",
        },
        headers=h,
    )
    assert created.status_code == 201, created.text
    mine = created.json()
    assert mine["priority"] == "urgent" and mine["channel"] == "web"
    listed = client.get("/api/v1/tickets", headers=h).json()["items"]
    assert [t["number"] for t in listed] == [mine["number"]]
    # IDOR: the stranger's ticket, its messages and posting to it are all "not found".
    for method, path, body in [
        ("GET", f"/api/v1/tickets/{theirs.number}", None),
        ("GET", f"/api/v1/tickets/{theirs.number}/messages", None),
        ("POST", f"/api/v1/tickets/{theirs.number}/messages", {"body": "hi"}),
    ]:
        assert client.request(method, path, json=body, headers=h).status_code == 404
    # Contacts cannot do agent things.
    assert client.get("/api/v1/contacts", headers=h).status_code == 403
    assert client.get(f"/api/v1/tickets/{mine['number']}/events", headers=h).status_code == 403
    assert (
        client.patch(
            f"/api/v1/tickets/{mine['number']}", json={"status": "solved"}, headers=h
        ).status_code
        == 403
    )
    spoof = client.post(
        "/api/v1/tickets", json={"subject": "x", "contact_id": stranger.id}, headers=h
    )
    assert spoof.status_code == 403
    route = client.post("/api/v1/tickets", json={"subject": "x", "team_id": team.id}, headers=h)
    assert route.status_code == 403
    # An internal note on the contact's ticket never reaches them.
    ha = auth(make_token(db, agent))
    db.commit()
    url = f"/api/v1/tickets/{mine['number']}/messages"
    assert (
        client.post(
            url, json={"body": "内部：疑似被钓鱼", "is_internal": True}, headers=ha
        ).status_code
        == 201
    )
    assert client.post(url, json={"body": "已为您冻结账户"}, headers=ha).status_code == 201
    bodies = [m["body"] for m in client.get(url, headers=h).json()["items"]]
    assert bodies == ["我的账户被盗了", "已为您冻结账户"]
    note = client.post(url, json={"body": "x", "is_internal": True}, headers=h)
    assert note.status_code == 403


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(
            {"sub": "1", "aud": "kefu", "exp": int(time.time()) + 60},
            "wrong-key-wrong-key-wrong-key-32",
            algorithm="HS256",
        ),
        jwt.encode(
            {"sub": "88880002", "aud": "kefu", "exp": int(time.time()) - 120},
            JWT_KEY,
            algorithm="HS256",
        ),
        jwt.encode(
            {"sub": "88880002", "aud": "other", "exp": int(time.time()) + 60},
            JWT_KEY,
            algorithm="HS256",
        ),
        jwt.encode({"sub": "88880002", "aud": "kefu"}, JWT_KEY, algorithm="HS256"),
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiI4ODg4MDAwMiIsImF1ZCI6ImtlZnUifQ.",
        "a.b.c",
    ],
)
def test_forged_identity_tokens_are_refused(client: TestClient, token: str) -> None:
    r = client.get("/api/v1/me", headers=auth(token))
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
