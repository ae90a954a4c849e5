"""Secrets customers paste never reach the database, the search index, the file store,
the logs or webhooks; agents' replies that ask for them are refused; PII is masked for
agents and reveals audited.

The per-channel proof (issue 6, "a test per channel") uses ``tests.secret_evidence``:
here the REST API, the web contact form and email over a real SMTP session; the chat
websocket in ``tests/test_chat.py`` and IMAP in ``tests/test_imap.py``.
"""

from __future__ import annotations

import logging
import smtplib
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from mnemonic import Mnemonic
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from kefu.actions.agents import do_update_agent
from kefu.actions.guard import display_text, screen_inbound
from kefu.actions.webhooks import do_create_webhook
from kefu.channels.email.inbound import Ingestor
from kefu.channels.email.smtp import KefuSMTPHandler, start_smtp_server
from kefu.domain.access import SYSTEM, Actor, ActorKind, Role
from kefu.infra.files import LocalFileStore, MemoryFileStore
from kefu.models import Contact, Event, Job, Message
from kefu.settings import Settings
from tests.factories import auth, make_agent, make_team, make_token
from tests.processes import free_port
from tests.secret_evidence import (
    all_text_in_database,
    assert_kept_nowhere,
    assert_reads_everything,
    gather,
)
from tests.test_email_channel import LoopThread

SEED = Mnemonic("english").to_mnemonic(bytes(range(16)))
SEED_ZH = Mnemonic("chinese_simplified").to_mnemonic(bytes(range(16, 32)))
PRIVKEY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
TXID = "9f3c5e2a7b1d4c6e8a0f2b4d6c8e0a1b3d5f7a9c1e3b5d7f9a2c4e6b8d0f1a3c"
DOMAIN = "kx-exchange.example"


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


def test_contact_secrets_are_masked_before_storage(
    client: TestClient,
    setup: dict[str, Any],
    db: Session,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The REST API door: subject, messages and a text attachment."""
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
    upload = client.post(
        "/api/v1/attachments",
        files={"file": ("备份.txt", f"钱包助记词 {SEED}\n".encode(), "text/plain")},
        headers=hc,
    )
    assert upload.status_code == 201, upload.text
    for body, attachment_ids in (
        (f"私钥：{PRIVKEY}", [upload.json()["id"]]),
        (f"谷歌验证码 482913，还有 {SEED_ZH}", []),
        (f"这是我的充值 TxID {TXID}", []),
    ):
        r = client.post(url, json={"body": body, "attachment_ids": attachment_ids}, headers=hc)
        assert r.status_code == 201, r.text
    msgs = client.get(url, headers=hc).json()["items"]
    bodies = [m["body"] for m in msgs]
    assert bodies[0] == "我的助记词是 [已屏蔽：助记词]"
    assert any("[已屏蔽：私钥]" in b for b in bodies)
    assert any("[已屏蔽：验证码]" in b and "[已屏蔽：助记词]" in b for b in bodies)
    assert f"这是我的充值 TxID {TXID}" in bodies  # the ticket's TxID is public, not a key
    warnings = [m for m in msgs if m["author"]["type"] == "system"]
    assert len(warnings) == 3  # one after each message that held a secret
    assert "官方客服绝不会索要" in warnings[0]["body"]
    evidence = gather(db, files_dir=settings.files_dir, caplog=caplog)
    assert_kept_nowhere(evidence, [SEED, SEED_ZH, PRIVKEY, "Hunter2024!", "482913"])
    # What was read is what was kept: the masked text is indexed, the masked file filed.
    assert "屏蔽" in evidence.index
    assert "[已屏蔽：助记词]" in evidence.files
    assert caplog.records  # the access log was captured (DEBUG), so it was checked too
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


def test_every_table_was_checked(db: Session) -> None:
    # The database check reads every table the database has, the full-text index's too.
    assert_reads_everything(db)


def _seed_mail() -> bytes:
    """A mail with a secret in each place one can hide: subject, the text part, an HTML
    part that differs from it, and a text attachment."""
    return (
        "From: 李雷 <li.lei@example.com>\r\nTo: support@kx-exchange.example\r\n"
        "Subject: 密码是 Hunter2024! 怎么办\r\nMessage-ID: <dlp1@example.com>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n'
        '--m\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
        "--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"助记词：{SEED}\r\n谷歌验证码 482913\r\n"
        "--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"<p>我的钱包</p><p>私钥 <b>{PRIVKEY}</b></p>\r\n"
        "--a--\r\n"
        "--m\r\nContent-Type: text/plain; charset=utf-8\r\n"
        'Content-Disposition: attachment; filename="备份.txt"\r\n\r\n'
        f"钱包助记词 {SEED_ZH}\r\n"
        "--m--\r\n"
    ).encode()


def _name_only_mail() -> bytes:
    """A secret in the sender's display name alone: it names the contact."""
    return (
        "From: 密码是 Qz7788!! <han.mei@example.com>\r\nTo: support@kx-exchange.example\r\n"
        "Subject: 提币\r\nMessage-ID: <dlp3@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n提币还没到账\r\n"
    ).encode()


def test_email_over_smtp_stores_no_secrets(
    sessions: sessionmaker[Session], db: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The email door, over a real SMTP session to kefu's listener."""
    caplog.set_level(logging.DEBUG)
    files_dir = tmp_path / "files"
    files = LocalFileStore(files_dir)
    ingestor = Ingestor(sessions, files, 1_000_000, (DOMAIN,))
    loop = LoopThread()
    port = free_port()
    server = loop.run(
        start_smtp_server(
            KefuSMTPHandler(ingestor, {DOMAIN}, sessions), "127.0.0.1", port, data_size_limit=10**7
        )
    )
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("li.lei@example.com", [f"support@{DOMAIN}"], _seed_mail())
            smtp.sendmail("han.mei@example.com", [f"support@{DOMAIN}"], _name_only_mail())
    finally:
        loop.close_server(server)
        loop.stop()
    evidence = gather(db, files_dir=files_dir, caplog=caplog)
    assert "[已屏蔽：助记词]" in evidence.database
    assert "屏蔽" in evidence.index
    assert_kept_nowhere(evidence, [SEED, SEED_ZH, PRIVKEY, "Hunter2024!", "482913", "Qz7788!!"])
    message = db.scalar(select(Message).where(Message.email_message_id == "dlp1@example.com"))
    assert message is not None
    # The original .eml is not kept when it holds a secret; the agent is told why.
    assert "original_not_kept" in message.meta["flags"]
    assert message.meta["email"]["original_sha256"] is None
    assert message.body_html is None
    # The attachment survives, masked, so the agent still sees what was sent.
    [attachment] = message.attachments
    assert "[已屏蔽：助记词]" in files.get(attachment.sha256).decode()
    # A secret in the display name alone: the name is masked, the original not kept.
    named = db.scalar(select(Contact).where(Contact.email == "han.mei@example.com"))
    assert named is not None and named.name == "密码是 [已屏蔽：密码]"


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


def test_web_form_path_stores_no_secrets(
    client: TestClient, db: Session, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The public web contact form (/help/contact)."""
    caplog.set_level(logging.DEBUG)
    r = client.post(
        "/help/contact",
        data={
            "email": "x@example.com",
            "subject": "账户问题 谷歌验证码 482913",
            "body": f"我的登录密码是 Qq123456!! 助记词 {SEED} 私钥 {PRIVKEY}",
        },
    )
    assert r.status_code == 200
    evidence = gather(db, files_dir=settings.files_dir, caplog=caplog)
    assert "[已屏蔽：密码]" in evidence.database
    assert "屏蔽" in evidence.index
    assert caplog.records
    assert_kept_nowhere(evidence, [SEED, PRIVKEY, "Qq123456!!", "482913"])


def test_contact_names_are_screened(client: TestClient, setup: dict[str, Any], db: Session) -> None:
    """Names are typed by people too: an agent's form, a ticket's contact, an identity
    token all pass the guard; a secret as anti-phishing code is refused."""
    h = setup["h_agent"]
    made = client.post(
        "/api/v1/contacts",
        json={"name": "王芳 密码是 Hunter2024!", "email": "w@example.com"},
        headers=h,
    )
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "王芳 密码是 [已屏蔽：密码]"
    patched = client.patch(
        f"/api/v1/contacts/{made.json()['id']}", json={"name": f"助记词 {SEED}"}, headers=h
    )
    assert patched.json()["name"] == "助记词 [已屏蔽：助记词]"
    ticket = client.post(
        "/api/v1/tickets",
        json={"subject": "提币", "contact": {"email": "l@example.com", "name": f"私钥 {PRIVKEY}"}},
        headers=h,
    )
    assert ticket.status_code == 201, ticket.text
    token = jwt.encode(
        {"sub": "66660002", "aud": "kefu", "exp": int(time.time()) + 600, "name": "验证码 482913"},
        "test-contact-jwt-key-of-32-bytes!",
        algorithm="HS256",
    )
    me = client.get("/api/v1/me", headers=auth(token))
    assert me.status_code == 200, me.text
    refused = client.put(
        "/api/v1/me/anti-phishing-code", json={"code": "验证码 482913"}, headers=auth(token)
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == "防钓鱼码不能是密码或验证码"
    stored = all_text_in_database(db)
    for secret in ("Hunter2024!", SEED, PRIVKEY, "482913"):
        assert secret not in stored


_PIECES = st.sampled_from(
    [
        "13800138000",
        "+86 139 0013 9000",
        "110101199003071234",
        "6222 0212 3456 7890 128",
        "li.ming@example.com",
        PRIVKEY,
        TXID,
        "我的密码是",
        "验证码",
        "提现没到账",
        " ",
        "，",
        "：",
    ]
)


@given(st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=8).map("".join))
@hyp_settings(max_examples=300, deadline=None)
def test_the_screens_display_text_is_the_display_scans(text: str) -> None:
    """The chat's hot path takes its display text from the screen's one scan: when the
    screen gives one, it is what ``display_text`` of the stored text gives."""
    screened = screen_inbound(text)
    if screened.display is not None:
        assert screened.display == display_text(screened.text)
    assert screened.display is not None or screened.secret_kinds
    # With the ticket's TxID known, the findings differ: no shortcut is offered.
    assert screen_inbound(text, known_txids=[TXID]).display is None or not text
