"""The email channel over real SMTP sockets: mail in through kefu's listener, replies out
through the outbox to a real SMTP sink."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import socket
import threading
from collections.abc import Iterator
from datetime import date, datetime
from email.header import Header
from email.message import EmailMessage
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import dkim
import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kefu.channels.email.inbound import Ingestor
from kefu.channels.email.outbound import Outgoing, build_email, make_email_handlers, to_wire
from kefu.channels.email.outbound import send as outbound_send
from kefu.channels.email.smtp import KefuSMTPHandler, start_smtp_server
from kefu.domain.access import Actor, ActorKind, Role
from kefu.domain.workdays import add_working_days, reply_due
from kefu.infra.db import make_engine, make_sessionmaker
from kefu.infra.files import MemoryFileStore
from kefu.models import Contact, Job, Message, Ticket
from kefu.models.outbox import JobStatus
from kefu.queries.messages import list_messages
from kefu.settings import Settings
from kefu.workers.outbox import OutboxWorker
from tests.factories import auth, make_agent, make_token

DOMAIN = "kx-exchange.example"


def contact_actor_of(db: Session, ticket: Ticket) -> Actor:
    assert ticket.contact_id is not None
    return Actor(kind=ActorKind.CONTACT, id=ticket.contact_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopThread:
    """An asyncio loop in a thread, so blocking smtplib clients can talk to servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close_server(self, server: asyncio.Server) -> None:
        """Close ``server`` on the loop's own thread: asyncio servers are not thread-safe,
        and closing one from the test's thread raced with a connection still closing."""

        async def shut() -> None:
            server.close()
            await server.wait_closed()

        self.run(shut())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def listener(loop: LoopThread, sessions: sessionmaker[Session]) -> Iterator[int]:
    port = free_port()
    handler = KefuSMTPHandler(
        Ingestor(sessions, MemoryFileStore(), 5_000_000, (DOMAIN,)), {DOMAIN}, sessions
    )
    server = loop.run(start_smtp_server(handler, "127.0.0.1", port, data_size_limit=10_000_000))
    yield port
    loop.close_server(server)


def send(port: int, msg: EmailMessage | MIMEText, to: str = f"support@{DOMAIN}") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(str(msg["From"]), [to], msg.as_bytes())


def chinese_mail(
    subject: str, body: str, sender: str = "wang.fang@example.com", **headers: str
) -> MIMEText:
    msg = MIMEText(body, "plain", "gb2312")
    msg["Subject"] = Header(subject, "gb2312")
    msg["From"] = f"{Header('王芳', 'gb2312').encode()} <{sender}>"
    msg["To"] = f"support@{DOMAIN}"
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    return msg


def test_chinese_mail_becomes_a_ticket_and_replies_thread(listener: int, db: Session) -> None:
    first = chinese_mail(
        "充币未到账", "我的USDT充值两个小时还没到账，请帮忙。", Message_ID="<m1@example.com>"
    )
    send(listener, first)
    ticket = db.scalars(select(Ticket)).one()
    assert ticket.subject == "充币未到账"
    assert ticket.channel.value == "email"
    contact = db.get(Contact, ticket.contact_id)
    assert contact is not None
    assert contact.email == "wang.fang@example.com"
    assert contact.name == "王芳"
    body = db.scalars(select(Message.body)).one()
    assert "两个小时还没到账" in body
    assert [j.kind for j in db.scalars(select(Job))] == ["email.ack"]

    # A reply that quotes history threads by In-Reply-To and keeps only the new text.
    reply = chinese_mail(
        "回复：充币未到账",
        "TxID 已附上。\n\n在 2026年11月25日 10:00，客服 <support@kx-exchange.example> 写道：\n> 请提供TxID",
        Message_ID="<m2@example.com>",
        In_Reply_To="<m1@example.com>",
        References="<m1@example.com>",
    )
    send(listener, reply)
    # Redelivery of the same message (a retry after a lost 250) is stored once.
    send(listener, reply)
    # And a mail that only carries the ticket number in its subject threads too.
    send(
        listener,
        chinese_mail(f"补充材料 [#{ticket.number}]", "截图稍后发送", Message_ID="<m3@example.com>"),
    )
    bodies = [m.body for m in db.scalars(select(Message).order_by(Message.seq))]
    assert bodies[1] == "TxID 已附上。"
    assert bodies[2] == "截图稍后发送"
    assert len(bodies) == 3
    assert len(db.scalars(select(Ticket)).all()) == 1


def test_a_reply_from_someone_else_is_kept_for_agents_only(listener: int, db: Session) -> None:
    """Anyone can quote a ticket's number or Message-ID: their mail is stored (never
    bounced) and flagged, but the ticket's contact does not see it on their ticket."""
    send(listener, chinese_mail("充值未到账", "我的USDT还没到", Message_ID="<orig@example.com>"))
    ticket = db.scalar(select(Ticket))
    assert ticket is not None
    send(
        listener,
        chinese_mail(
            f"Re: [#{ticket.number}] 充值未到账",
            "我是她同事，补充一下交易哈希",
            sender="colleague@example.org",
            In_Reply_To="<orig@example.com>",
        ),
    )
    assert len(db.scalars(select(Ticket)).all()) == 1  # threaded, not a new ticket
    third = db.scalar(select(Message).where(Message.body.contains("同事")))
    assert third is not None and third.ticket_id == ticket.id
    assert third.is_internal is True
    assert "sender_not_ticket_contact" in third.meta["flags"]
    owner = contact_actor_of(db, ticket)
    assert "同事" not in [m.body for m in list_messages(db, owner, ticket)]


def test_loops_noise_and_spoofing(listener: int, db: Session) -> None:
    send(
        listener,
        chinese_mail(
            "自动回复：我在休假",
            "我在休假",
            Auto_Submitted="auto-replied",
            Message_ID="<a1@x.example>",
        ),
    )
    assert db.scalars(select(Job)).all() == []  # no acknowledgement to an auto-reply
    spoof = EmailMessage()
    spoof["From"] = f'"KX 客服" <security@{DOMAIN}>'
    spoof["To"] = f"support@{DOMAIN}"
    spoof["Subject"] = "您的账户已冻结"
    spoof["Message-ID"] = "<s1@evil.example>"
    spoof.set_content("点击链接解冻")
    send(listener, spoof)
    ticket = db.scalars(select(Ticket).where(Ticket.subject == "您的账户已冻结")).one()
    assert "spoofed" in ticket.tags


def test_bounce_marks_the_address(listener: int, db: Session) -> None:
    send(
        listener,
        chinese_mail(
            "你好", "第一次来信", sender="gone@example.net", Message_ID="<b0@example.net>"
        ),
    )
    dsn = EmailMessage()
    dsn["From"] = "MAILER-DAEMON@mx.example.net"
    dsn["To"] = f"support@{DOMAIN}"
    dsn["Subject"] = "Undelivered Mail Returned to Sender"
    dsn["Message-ID"] = "<dsn1@mx.example.net>"
    dsn.set_content("The mail could not be delivered.")
    dsn.make_mixed()
    status = EmailMessage()
    status.set_content(
        "Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; gone@example.net\nAction: failed\nStatus: 5.1.1\n",
    )
    raw = dsn.as_bytes().replace(
        b"multipart/mixed", b"multipart/report; report-type=delivery-status", 1
    )
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.sendmail("MAILER-DAEMON@mx.example.net", [f"support@{DOMAIN}"], raw)
    contact = db.scalars(select(Contact).where(Contact.email == "gone@example.net")).one()
    db.refresh(contact)
    assert len(db.scalars(select(Ticket)).all()) == 1  # the bounce is not a ticket


def test_relaying_is_denied(listener: int) -> None:
    with smtplib.SMTP("127.0.0.1", listener, timeout=10) as client:
        client.ehlo()
        client.mail("a@example.com")
        code, _ = client.rcpt("someone@gmail.com")
        assert code == 550


def test_storage_failure_answers_451_so_the_sender_retries(loop: LoopThread, tmp_path: Any) -> None:
    # A database without tables: storing fails for real, and the sender must be told to retry.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    broken = make_sessionmaker(engine)
    port = free_port()
    handler = KefuSMTPHandler(Ingestor(broken, MemoryFileStore(), 1_000_000), {DOMAIN}, broken)
    server = loop.run(start_smtp_server(handler, "127.0.0.1", port, data_size_limit=1_000_000))
    try:
        with pytest.raises(smtplib.SMTPDataError) as info:
            send(port, chinese_mail("测试", "内容"))
        assert info.value.smtp_code == 451
    finally:
        loop.close_server(server)
        engine.dispose()


class Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content or envelope.content)
        return "250 OK"


def test_agent_reply_goes_out_threaded(
    listener: int, loop: LoopThread, db: Session, sessions: sessionmaker[Session], client: Any
) -> None:
    send(listener, chinese_mail("提币卡在审核", "已经一天了", Message_ID="<q1@example.com>"))
    ticket = db.scalars(select(Ticket)).one()
    contact = db.get(Contact, ticket.contact_id)
    assert contact is not None
    contact.anti_phishing_code = "KX8866"
    agent = make_agent(db, role=Role.ADMIN)
    db.commit()
    r = client.post(
        f"/api/v1/tickets/{ticket.number}/messages",
        json={"body": "您好，您的提币已通过审核，预计30分钟内到账。"},
        headers=auth(make_token(db, agent)),
    )
    assert r.status_code == 201, r.text
    assert r.json()["delivery_status"] == "queued"

    sink = Sink()
    sink_port = free_port()
    sink_server = loop.run(_serve(sink, sink_port))
    settings = Settings(
        smtp_relay_host="127.0.0.1", smtp_relay_port=sink_port, mail_domain=DOMAIN, run_smtp=False
    )
    # One job at a time: the test shares one connection between threads.
    worker = OutboxWorker(sessions, make_email_handlers(sessions, settings), concurrency=1)
    asyncio.run(worker.run_once())
    loop.close_server(sink_server)
    assert len(sink.messages) == 2  # the acknowledgement and the reply
    parsed = [BytesParser(policy=default_policy).parsebytes(m) for m in sink.messages]
    reply = next(p for p in parsed if "30分钟" in p.get_body(("plain",)).get_content())
    assert reply["To"].addresses[0].addr_spec == "wang.fang@example.com"
    assert f"[#{ticket.number}]" in reply["Subject"]
    assert reply["Subject"].startswith("Re: 提币卡在审核")
    assert reply["In-Reply-To"] == "<q1@example.com>"
    assert "<q1@example.com>" in reply["References"]
    stored = db.scalars(select(Message).where(Message.seq == 2)).one()
    db.refresh(stored)
    assert reply["Message-ID"] == f"<{stored.email_message_id}>"
    assert stored.delivery_status == "sent"
    text = reply.get_body(("plain",)).get_content()
    assert text.startswith("您的防钓鱼码：KX8866")
    assert "/verify" in text
    assert reply.get_body(("html",)) is not None
    jobs = db.scalars(select(Job)).all()
    for job in jobs:
        db.refresh(job)
    assert {j.status for j in jobs} == {JobStatus.DONE}


async def _serve(sink: Sink, port: int) -> asyncio.Server:
    return await asyncio.get_running_loop().create_server(
        lambda: SMTPServer(sink), "127.0.0.1", port
    )


def test_reply_promise_skips_holidays_and_counts_makeup_days() -> None:
    # National Day 2026: 1–7 October off, Saturday 10 October worked (调休).
    assert add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert add_working_days(date(2026, 10, 9), 1) == date(2026, 10, 10)
    # Mail at 23:30 UTC on a Friday is Saturday in Shanghai.
    assert reply_due(datetime.fromisoformat("2026-11-27T23:30:00+00:00"), 3) == date(2026, 12, 2)


def test_a_flooding_sender_is_throttled_not_lost(
    loop: LoopThread, sessions: sessionmaker[Session], db: Session
) -> None:
    port = free_port()
    ingestor = Ingestor(sessions, MemoryFileStore(), 1_000_000, (DOMAIN,))
    handler = KefuSMTPHandler(ingestor, {DOMAIN}, sessions, per_sender_per_hour=3)
    server = loop.run(start_smtp_server(handler, "127.0.0.1", port, data_size_limit=1_000_000))
    try:
        for i in range(3):
            send(
                port,
                chinese_mail(
                    f"第{i}封", "内容", sender="flood@example.com", Message_ID=f"<f{i}@example.com>"
                ),
            )
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            send(
                port,
                chinese_mail(
                    "第4封", "内容", sender="flood@example.com", Message_ID="<f3@example.com>"
                ),
            )
        assert info.value.smtp_code == 451
        send(
            port,
            chinese_mail(
                "别人的信", "内容", sender="calm@example.com", Message_ID="<c1@example.com>"
            ),
        )
    finally:
        loop.close_server(server)
    assert len(db.scalars(select(Ticket)).all()) == 4


def test_outgoing_mail_is_dkim_signed_and_verifies(loop: LoopThread, tmp_path: Any) -> None:
    """With a key configured, every mail leaves signed for our domain; a receiver that
    looks up the public key in DNS (stubbed here: DNS is outside this machine) finds
    the signature valid, and a changed subject breaks it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    (tmp_path / "dkim.pem").write_bytes(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == f"kefu2026._domainkey.{DOMAIN}.".encode() else b""

    sink = Sink()
    sink_port = free_port()
    sink_server = loop.run(_serve(sink, sink_port))
    settings = Settings(
        smtp_relay_host="127.0.0.1",
        smtp_relay_port=sink_port,
        mail_domain=DOMAIN,
        support_address=f"support@{DOMAIN}",
        dkim_selector="kefu2026",
        dkim_private_key_file=tmp_path / "dkim.pem",
        run_smtp=False,
    )
    out = Outgoing(
        to="wang.fang@example.com",
        to_name="王芳",
        subject="Re: 提币卡在审核 [#K12345678]",
        text="您好，您的提币已通过审核。",
        html="<p>您好，您的提币已通过审核。</p>",
        message_id=f"r1@{DOMAIN}",
        in_reply_to="q1@example.com",
        references=["q1@example.com"],
    )
    try:
        asyncio.run(outbound_send(settings, build_email(settings, out)))
    finally:
        loop.close_server(sink_server)
    (received,) = sink.messages
    assert received.startswith(b"DKIM-Signature:")
    assert b"d=" + DOMAIN.encode() in received.split(b"\r\n\r\n")[0]
    assert dkim.verify(received, dnsfunc=dns)
    forged = received.replace(b"\r\nSubject: ", b"\r\nSubject: =?utf-8?q?X?= ", 1)
    assert forged != received
    assert not dkim.verify(forged, dnsfunc=dns)
    # Without a key configured the mail goes out unsigned, as before.
    plain = to_wire(Settings(mail_domain=DOMAIN, run_smtp=False), build_email(settings, out))
    assert not plain.startswith(b"DKIM-Signature:")
