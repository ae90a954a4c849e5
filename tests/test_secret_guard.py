"""Secrets customers paste never reach the database, the logs or webhooks; agents'
replies that ask for them are refused; PII is masked for agents and reveals audited."""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt
import pytest
from mnemonic import Mnemonic
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from kefu.actions.agents import do_update_agent
from kefu.actions.webhooks import do_create_webhook
from kefu.channels.email.inbound import Ingestor
from kefu.domain.access import SYSTEM, Actor, ActorKind, Role
from kefu.infra.files import MemoryFileStore
from kefu.models import Base, Event, Job
from tests.factories import auth, make_agent, make_team, make_token

SEED = Mnemonic("english").to_mnemonic(bytes(range(16)))
SEED_ZH = Mnemonic("chinese_simplified").to_mnemonic(bytes(range(16, 32)))
PRIVKEY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
TXID = "9f3c5e2a7b1d4c6e8a0f2b4d6c8e0a1b3d5f7a9c1e3b5d7f9a2c4e6b8d0f1a3c"


@pytest.fixture
def setup(db: Session) -> dict[str, Any]:
    team = make_team(db)
    agent = make_agent(db, teams=[team])
    db.commit()
    token = jwt.encode(
        {"sub": "66660001", "aud": "kefu", "exp": int(time.time()) + 600},
        "test-contact-jwt-key-of-32-bytes!",
        algorithm="HS256",
    )
    return {
        "team": team,
        "agent": agent,
        "h_agent": auth(make_token(db, agent)),
        "h_contact": auth(token),
    }


def all_text_in_database(db: Session) -> str:
    """Every string column of every table, as one blob to search."""
    chunks: list[str] = []
    for table in Base.metadata.sorted_tables:
        cols = [c.name for c in table.columns]
        for row in db.execute(text(f"SELECT {', '.join(cols)} FROM {table.name}")):  # noqa: S608  # our own table names
            chunks.extend(str(v) for v in row if v is not None)
    return "\n".join(chunks)


def test_contact_secrets_are_masked_before_storage(
    client: TestClient, setup: dict[str, Any], db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    do_create_webhook(
        db,
        Actor(kind=ActorKind.AGENT, id=None, role=Role.ADMIN),
        url="http://127.0.0.1:9/x",
        events=[],
    )
    db.commit()
    caplog.set_level(logging.DEBUG)
    hc = setup["h_contact"]
    created = client.post(
        "/api/v1/tickets",
        json={
            "subject": "密码是 Hunter2024! 请帮我登录",
            "body": f"我的助记词是 {SEED}",
            "txid": TXID,
        },
        headers=hc,
    )
    assert created.status_code == 201, created.text
    number = created.json()["number"]
    assert created.json()["subject"] == "密码是 [已屏蔽：密码] 请帮我登录"
    url = f"/api/v1/tickets/{number}/messages"
    for body in (
        f"私钥：{PRIVKEY}",
        f"谷歌验证码 482913，还有 {SEED_ZH}",
        f"这是我的充值 TxID {TXID}",
    ):
        assert client.post(url, json={"body": body}, headers=hc).status_code == 201
    msgs = client.get(url, headers=hc).json()["items"]
    bodies = [m["body"] for m in msgs]
    assert bodies[0] == "我的助记词是 [已屏蔽：助记词]"
    assert any("[已屏蔽：私钥]" in b for b in bodies)
    assert any("[已屏蔽：验证码]" in b and "[已屏蔽：助记词]" in b for b in bodies)
    assert f"这是我的充值 TxID {TXID}" in bodies  # the ticket's TxID is public, not a key
    warnings = [m for m in msgs if m["author"]["type"] == "system"]
    assert len(warnings) == 3  # one after each message that held a secret
    assert "官方客服绝不会索要" in warnings[0]["body"]
    stored = all_text_in_database(db)
    for secret in (SEED, SEED_ZH, PRIVKEY, "Hunter2024!", "482913"):
        assert secret not in stored
        assert secret not in caplog.text
    masked_events = db.scalars(select(Event).where(Event.kind == "secret.masked")).all()
    assert {k for e in masked_events for k in e.data["kinds"]} == {
        "seed_phrase",
        "private_key",
        "otp_code",
    }
    assert all(job.payload["data"] for job in db.scalars(select(Job)))


def test_agent_reply_asking_for_secrets_is_blocked(
    client: TestClient, setup: dict[str, Any], db: Session
) -> None:
    t = client.post(
        "/api/v1/tickets",
        json={"subject": "提币问题", "team_id": setup["team"].id},
        headers=setup["h_agent"],
    ).json()
    url = f"/api/v1/tickets/{t['number']}/messages"
    h = setup["h_agent"]
    blocked = client.post(url, json={"body": "请提供您的助记词以便我们核实身份"}, headers=h)
    assert blocked.status_code == 422
    problem = blocked.json()
    assert problem["problem"] == "asks_for_secret"
    assert problem["reason"]
    assert (
        client.post(
            url, json={"body": "请加我的WhatsApp +44 7700 900123 继续沟通"}, headers=h
        ).status_code
        == 422
    )
    ok = client.post(
        url, json={"body": "我们绝不会索要您的助记词或密码，请勿向任何人透露。"}, headers=h
    )
    assert ok.status_code == 201, ok.text
    note = client.post(
        url, json={"body": "内部：用户可能已泄露密码", "is_internal": True}, headers=h
    )
    assert note.status_code == 201


def test_pii_is_masked_for_agents_and_reveals_are_audited(
    client: TestClient, setup: dict[str, Any], db: Session
) -> None:
    hc = setup["h_contact"]
    t = client.post(
        "/api/v1/tickets",
        json={"subject": "银行卡", "body": "卡号 6222 0212 3456 7890 128，手机 13800138000"},
        headers=hc,
    ).json()
    url = f"/api/v1/tickets/{t['number']}/messages"
    assert (
        "6222 0212 3456 7890 128" in client.get(url, headers=hc).json()["items"][0]["body"]
    )  # their own
    agent_view = client.get(url, headers=setup["h_agent"]).json()["items"][0]["body"]
    assert "6222 0212 3456 7890 128" not in agent_view
    assert "138****8000" in agent_view
    assert client.get(url + "?reveal=true", headers=setup["h_agent"]).status_code == 403
    do_update_agent(db, SYSTEM, setup["agent"], can_view_sensitive=True)
    db.commit()
    client.app.state.kefu.principals.clear()  # type: ignore[attr-defined]
    revealed = client.get(url + "?reveal=true", headers=setup["h_agent"]).json()["items"][0]["body"]
    assert "13800138000" in revealed
    audit = db.scalars(select(Event).where(Event.kind == "sensitive.revealed")).all()
    assert len(audit) == 1
    assert audit[0].actor_id == setup["agent"].id


def test_dlp_scan_endpoint(client: TestClient, setup: dict[str, Any]) -> None:
    r = client.post(
        "/api/v1/dlp/scan", json={"text": f"助记词 {SEED} 邮箱 a@b.com"}, headers=setup["h_agent"]
    )
    assert r.status_code == 200
    body = r.json()
    kinds = [f["kind"] for f in body["findings"]]
    assert kinds == ["seed_phrase", "email"]
    assert SEED not in body["masked"]
    assert "[已屏蔽：助记词]" in body["masked"]
    assert client.post("/api/v1/dlp/scan", json={"text": "x"}).status_code == 401


def test_every_table_was_checked() -> None:
    # The database check above reads every table; make sure it knows them all.
    assert {t.name for t in Base.metadata.sorted_tables} >= {
        "messages",
        "tickets",
        "events",
        "jobs",
    }
    assert inspect  # imported for completeness of the schema check


def _seed_mail() -> bytes:
    """A mail with a secret in each place one can hide: subject, the text part, an HTML
    part that differs from it, and a text attachment."""
    return (
        "From: 李雷 <li.lei@example.com>\r\nTo: support@kx-exchange.example\r\n"
        "Subject: 密码是 Hunter2024! 怎么办\r\nMessage-ID: <dlp1@example.com>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n'
        '--m\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
        "--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"助记词：{SEED}\r\n"
        "--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"<p>我的钱包</p><p>私钥 <b>{PRIVKEY}</b></p>\r\n"
        "--a--\r\n"
        "--m\r\nContent-Type: text/plain; charset=utf-8\r\n"
        'Content-Disposition: attachment; filename="备份.txt"\r\n\r\n'
        f"钱包助记词 {SEED_ZH}\r\n"
        "--m--\r\n"
    ).encode()


def test_email_path_stores_no_secrets(sessions: sessionmaker[Session], db: Session) -> None:
    files = MemoryFileStore()
    received = Ingestor(sessions, files, 1_000_000).ingest(_seed_mail())
    assert received.message is not None
    stored = all_text_in_database(db)
    blobs = b"\n".join(files.get(sha) for sha in files._blobs).decode("utf-8", "replace")
    assert "[已屏蔽：助记词]" in stored
    for secret in (SEED, SEED_ZH, PRIVKEY, "Hunter2024!"):
        assert secret not in stored
        assert secret not in blobs
    # The original .eml is not kept when it holds a secret; the agent is told why.
    assert "original_not_kept" in received.message.meta["flags"]
    assert received.message.meta["email"]["original_sha256"] is None
    assert received.message.body_html is None
    # The attachment survives, masked, so the agent still sees what was sent.
    [attachment] = received.message.attachments
    assert "[已屏蔽：助记词]" in files.get(attachment.sha256).decode()


def test_html_only_secret_drops_the_html(sessions: sessionmaker[Session], db: Session) -> None:
    raw = (
        "From: a@example.com\r\nSubject: hi\r\nMessage-ID: <dlp2@example.com>\r\n"
        'Content-Type: multipart/alternative; boundary="a"\r\n\r\n'
        "--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n请看附件里的说明\r\n"
        "--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"<div>私钥</div><div>{PRIVKEY}</div>\r\n--a--\r\n"
    ).encode()
    received = Ingestor(sessions, MemoryFileStore(), 1_000_000).ingest(raw)
    assert received.message is not None
    assert received.message.body_html is None
    assert PRIVKEY not in all_text_in_database(db)


def test_web_form_path_stores_no_secrets(client: TestClient, db: Session) -> None:
    r = client.post(
        "/help/contact",
        data={
            "email": "x@example.com",
            "subject": "账户问题",
            "body": f"我的登录密码是 Qq123456!! 助记词 {SEED}",
        },
    )
    assert r.status_code == 200
    stored = all_text_in_database(db)
    assert "[已屏蔽：密码]" in stored
    assert SEED not in stored
    assert "Qq123456!!" not in stored
