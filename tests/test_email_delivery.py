"""What happens to mail after it is stored: replies that the relay refuses or never takes
end ``failed``, bounces (RFC 3464 reports) mark the reply and the address, and what
every mail kefu sends promises (ticket number, reply date, anti-phishing code). Real
SMTP sockets on both sides; the agent's view is read through the API and the console.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from kefu.actions.inboxes import do_create_inbox
from kefu.actions.official_channels import do_add_official_channel
from kefu.channels.email.inbound import Ingestor
from kefu.channels.email.outbound import make_email_handlers
from kefu.domain.access import SYSTEM
from kefu.domain.clock import utcnow
from kefu.domain.tickets import Channel
from kefu.domain.verify import ChannelKind
from kefu.domain.workdays import reply_due
from kefu.infra.files import MemoryFileStore
from kefu.models import Contact, Job, Message, Team, Ticket
from kefu.models.outbox import JobStatus
from kefu.settings import Settings
from kefu.workers.outbox import OutboxWorker
from tests.factories import PASSWORD, auth, make_agent, make_contact, make_team, make_token
from tests.test_console import console_login
from tests.test_email_channel import LoopThread, free_port

DOMAIN = "kx-exchange.example"
SUPPORT = f"support@{DOMAIN}"
AUTHSERV = "mx.kx-exchange.example"
FIXTURES = Path(__file__).parent / "fixtures" / "email"
JWT_KEY = "test-contact-jwt-key-of-32-bytes!"


class Sink:
    """An SMTP server that keeps what it is given, or refuses every recipient."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.messages: list[bytes] = []

    async def handle_RCPT(  # aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse is not None:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content or envelope.content)
        return "250 OK"

    def parsed(self) -> list[Any]:
        return [BytesParser(policy=default_policy).parsebytes(m) for m in self.messages]


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@dataclass
class Desk:
    """An email Inbox routed to a team, an agent of that team, and the ingest path."""

    team: Team
    ingestor: Ingestor
    agent_headers: dict[str, str]
    agent_email: str


@pytest.fixture
def desk(db: Session, sessions: sessionmaker[Session]) -> Desk:
    team = make_team(db)
    do_create_inbox(
        db, SYSTEM, name="客服邮箱", channel=Channel.EMAIL, address=SUPPORT, team_id=team.id
    )
    agent = make_agent(db, teams=[team], password=PASSWORD)
    db.commit()
    ingestor = Ingestor(sessions, MemoryFileStore(), 5_000_000, (DOMAIN,), authserv_id=AUTHSERV)
    return Desk(team, ingestor, auth(make_token(db, agent)), agent.email)


def mail(sender: str, subject: str, body: str, message_id: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def run_worker(
    sessions: sessionmaker[Session], loop: LoopThread, port: int, sink: Sink | None
) -> None:
    """One pass of the outbox against a relay on ``port`` (a sink, or nothing at all)."""
    server = None
    if sink is not None:
        server = loop.run(_serve(sink, port))
    settings = Settings(
        smtp_relay_host="127.0.0.1", smtp_relay_port=port, mail_domain=DOMAIN, run_smtp=False
    )
    # One job at a time: the test shares one connection between threads.
    worker = OutboxWorker(sessions, make_email_handlers(sessions, settings), concurrency=1)
    try:
        asyncio.run(worker.run_once())
    finally:
        if server is not None:
            loop.close_server(server)


async def _serve(sink: Sink, port: int) -> asyncio.Server:
    return await asyncio.get_running_loop().create_server(
        lambda: SMTPServer(sink), "127.0.0.1", port
    )


def reply(client: TestClient, desk: Desk, number: str, body: str) -> dict[str, Any]:
    r = client.post(
        f"/api/v1/tickets/{number}/messages", json={"body": body}, headers=desk.agent_headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["delivery_status"] == "queued"
    result: dict[str, Any] = r.json()
    return result


def status_via_api(client: TestClient, desk: Desk, number: str, message_id: int) -> str | None:
    r = client.get(f"/api/v1/tickets/{number}/messages", headers=desk.agent_headers)
    assert r.status_code == 200, r.text
    (found,) = [m for m in r.json()["items"] if m["id"] == message_id]
    status: str | None = found["delivery_status"]
    return status


def badge(client: TestClient, number: str) -> str:
    page = client.get(f"/agent/tickets/{number}")
    assert page.status_code == 200, page.text
    start = page.text.index('class="badge delivery ')
    return page.text[start : page.text.index("</span>", start)]


def open_ticket(db: Session, desk: Desk, sender: str, message_id: str) -> Ticket:
    received = desk.ingestor.ingest(
        mail(sender, "提币未到账", "我的提币还没到，请帮忙查询。", message_id), recipient=SUPPORT
    )
    assert received.created_ticket and received.ticket is not None
    return received.ticket


def reply_job(db: Session, message_id: int) -> Job:
    jobs = list(db.scalars(select(Job).where(Job.kind == "email.send")))
    (job,) = [j for j in jobs if j.payload["message_id"] == message_id]
    db.refresh(job)
    return job


# -- terminal failure -----------------------------------------------------------------


def test_a_reply_no_relay_takes_retries_then_ends_failed(
    client: TestClient, db: Session, sessions: sessionmaker[Session], desk: Desk, loop: LoopThread
) -> None:
    ticket = open_ticket(db, desk, "zhao.lei@example.com", "down-1@example.com")
    sent = reply(client, desk, ticket.number, "您好，已为您加急处理。")
    console_login(client, desk.agent_email)
    closed = free_port()  # nothing listens there: every attempt is refused at connect

    run_worker(sessions, loop, closed, None)
    job = reply_job(db, sent["id"])
    assert job.status is JobStatus.PENDING and job.attempts == 1
    assert status_via_api(client, desk, ticket.number, sent["id"]) == "retrying"
    assert "delivery-retrying" in badge(client, ticket.number)

    while job.status is JobStatus.PENDING:
        assert job.attempts < job.max_attempts
        job.run_at = utcnow() - timedelta(seconds=1)  # time passes: the backoff is over
        db.commit()
        run_worker(sessions, loop, closed, None)
        db.refresh(job)
    assert job.status is JobStatus.DEAD and job.attempts == job.max_attempts
    assert status_via_api(client, desk, ticket.number, sent["id"]) == "failed"
    shown = badge(client, ticket.number)
    assert "delivery-failed" in shown and "投递失败" in shown


def test_a_reply_the_relay_refuses_with_5xx_fails_at_once(
    client: TestClient, db: Session, sessions: sessionmaker[Session], desk: Desk, loop: LoopThread
) -> None:
    ticket = open_ticket(db, desk, "qian.li@example.com", "refused-1@example.com")
    sent = reply(client, desk, ticket.number, "您好，请查收处理结果。")
    sink = Sink(refuse="550 5.1.1 <qian.li@example.com>: Recipient address rejected")
    run_worker(sessions, loop, free_port(), sink)
    assert sink.messages == []
    job = reply_job(db, sent["id"])
    # RFC 5321: a 5xx answer is final, so the agent learns now, not after a day of retries.
    assert job.status is JobStatus.DEAD and job.attempts == 1
    assert "550" in (job.last_error or "")
    assert status_via_api(client, desk, ticket.number, sent["id"]) == "failed"
    console_login(client, desk.agent_email)
    assert "投递失败" in badge(client, ticket.number)


# -- bounces --------------------------------------------------------------------------


def dsn_fixture_for(message_id: str, *, action: str = "failed") -> bytes:
    """The RFC 3464 fixture, returning the given Message-ID (it names one of ours)."""
    raw = (FIXTURES / "dsn_bounce.eml").read_bytes()
    assert b"<K12345671.out.7@kefu.example>" in raw and b"Action: failed" in raw
    raw = raw.replace(b"K12345671.out.7@kefu.example", message_id.encode())
    return raw.replace(b"Action: failed", f"Action: {action}".encode())


def test_a_bounce_names_the_failed_reply_only_in_its_returned_message(
    client: TestClient, db: Session, sessions: sessionmaker[Session], desk: Desk, loop: LoopThread
) -> None:
    ticket = open_ticket(db, desk, "nobody@example.cn", "nb-1@example.cn")
    later = make_contact(db, email="later@example.cn")
    db.commit()
    sent = reply(client, desk, ticket.number, "您好，您的工单已更新。")
    run_worker(sessions, loop, free_port(), Sink())  # the relay takes it: "sent"
    assert status_via_api(client, desk, ticket.number, sent["id"]) == "sent"
    minted = db.get(Message, sent["id"])
    assert minted is not None and minted.email_message_id is not None
    raw = dsn_fixture_for(minted.email_message_id)
    # The report itself has no In-Reply-To or References: only the returned part links it.
    headers = raw.split(b"\r\n\r\n", 1)[0].lower()
    assert b"in-reply-to" not in headers and b"references" not in headers

    # A delay notice is not a bounce: nothing is marked.
    delayed = desk.ingestor.ingest(
        dsn_fixture_for(minted.email_message_id, action="delayed").replace(
            b"<dsn-1@mx.example.cn>", b"<dsn-0@mx.example.cn>"
        ),
        recipient=SUPPORT,
    )
    assert delayed.bounce and delayed.ticket is None
    assert status_via_api(client, desk, ticket.number, sent["id"]) == "sent"
    contact = db.get(Contact, ticket.contact_id)
    assert contact is not None
    db.refresh(contact)
    assert contact.email_bounced_at is None

    received = desk.ingestor.ingest(raw, recipient=SUPPORT)
    assert received.bounce and received.ticket is None
    assert status_via_api(client, desk, ticket.number, sent["id"]) == "bounced"
    db.refresh(contact)
    assert contact.email_bounced_at is not None
    db.refresh(later)
    assert later.email_bounced_at is None  # "Action: delayed" in the same report
    # The customer's own mail is never "bounced", even when a report quotes its id.
    first = db.scalars(select(Message).where(Message.ticket_id == ticket.id)).first()
    assert first is not None and first.direction == "in"
    desk.ingestor.ingest(
        dsn_fixture_for("nb-1@example.cn").replace(b"<dsn-1@", b"<dsn-2@"), recipient=SUPPORT
    )
    db.refresh(first)
    assert first.delivery_status is None
    console_login(client, desk.agent_email)
    assert "被退回" in badge(client, ticket.number)
    # And no acknowledgement goes to an address that bounced.
    desk.ingestor.ingest(
        mail("nobody@example.cn", "新问题", "另一个问题", "nb-2@example.cn"), recipient=SUPPORT
    )
    acks = db.scalars(select(Job).where(Job.kind == "email.ack")).all()
    assert len(acks) == 1  # the first ticket's only


# -- what every mail promises ----------------------------------------------------------


def test_the_acknowledgement_names_the_ticket_and_the_promised_date(
    db: Session, sessions: sessionmaker[Session], desk: Desk, loop: LoopThread
) -> None:
    ticket = open_ticket(db, desk, "sun.yu@example.com", "ack-1@example.com")
    # Routed by the Inbox the mail was addressed to.
    assert ticket.team_id == desk.team.id and ticket.inbox_id is not None
    sink = Sink()
    run_worker(sessions, loop, free_port(), sink)
    (ack,) = sink.parsed()
    assert ack["To"].addresses[0].addr_spec == "sun.yu@example.com"
    assert f"[#{ticket.number}]" in ack["Subject"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == "<ack-1@example.com>"
    text = ack.get_body(("plain",)).get_content()
    due = reply_due(ticket.created_at, 3).strftime("%Y-%m-%d")
    assert f"工单 {ticket.number}" in text
    assert f"我们将在 {due} 前（3 个工作日内）回复您。" in text


def contact_headers(uid: str) -> dict[str, str]:
    token = jwt.encode(
        {"sub": uid, "aud": "kefu", "exp": int(time.time()) + 600}, JWT_KEY, algorithm="HS256"
    )
    return auth(token)


def test_the_anti_phishing_code_set_by_the_contact_heads_the_next_mail(
    client: TestClient, db: Session, sessions: sessionmaker[Session], desk: Desk, loop: LoopThread
) -> None:
    contact = make_contact(db, email="zhou.min@example.com", exchange_uid="55550001")
    db.commit()
    ticket = open_ticket(db, desk, "zhou.min@example.com", "apc-1@example.com")
    assert ticket.contact_id == contact.id
    me = contact_headers("55550001")
    bad = client.put("/api/v1/me/anti-phishing-code", json={"code": "x"}, headers=me)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    agents = client.put(
        "/api/v1/me/anti-phishing-code", json={"code": "KX8866"}, headers=desk.agent_headers
    )
    assert agents.status_code == 403  # a contact's own setting
    ok = client.put("/api/v1/me/anti-phishing-code", json={"code": "KX8866"}, headers=me)
    assert ok.status_code == 204, ok.text
    sent = reply(client, desk, ticket.number, "您好，您的提币已到账。")
    sink = Sink()
    run_worker(sessions, loop, free_port(), sink)
    by_id = {str(m["Message-ID"]): m for m in sink.parsed()}
    minted = db.get(Message, sent["id"])
    assert minted is not None
    for message in (
        by_id[f"<{minted.email_message_id}>"],
        by_id[f"<ack-{ticket.number}@{DOMAIN}>"],
    ):
        text = message.get_body(("plain",)).get_content()
        assert text.startswith("您的防钓鱼码：KX8866"), text
        html = message.get_body(("html",))
        if html is not None:
            assert "KX8866" in html.get_content()


# -- who sent it ------------------------------------------------------------------------


def test_spoofing_and_failed_authentication_are_stored_on_the_message(
    db: Session, desk: Desk
) -> None:
    make_agent(db, email="li.wei@partner-mail.example")
    db.commit()
    received = desk.ingestor.ingest(
        mail(
            "li.wei@partner-mail.example",
            "请协助处理",
            "请把这个用户的提币地址改一下。",
            "spoof-1@partner-mail.example",
            Authentication_Results=f"{AUTHSERV}; spf=fail smtp.mailfrom=partner-mail.example; "
            "dmarc=fail header.from=partner-mail.example",
        ),
        recipient=SUPPORT,
    )
    assert received.message is not None and received.ticket is not None
    stored = db.get(Message, received.message.id)
    assert stored is not None
    db.refresh(stored)
    assert "spoofed_agent_sender" in stored.meta["flags"]
    assert "authentication_failed" in stored.meta["flags"]
    assert "spoofed_official_sender" not in stored.meta["flags"]
    assert stored.meta["email"]["auth"]["dmarc"] == "fail"
    assert "spoofed" in received.ticket.tags
    # A verdict the sender wrote (another authserv-id) is not believed.
    forged = desk.ingestor.ingest(
        mail(
            "wu.fan@example.com",
            "你好",
            "你好",
            "auth-2@example.com",
            Authentication_Results="mx.evil.example; spf=fail; dmarc=fail",
        ),
        recipient=SUPPORT,
    )
    assert forged.message is not None
    assert "authentication_failed" not in forged.message.meta["flags"]


def test_mail_claiming_a_registered_official_address_is_flagged(db: Session, desk: Desk) -> None:
    """The official-channel registry is matched as /verify does: a domain entry covers
    its subdomains and mailboxes, an email entry that one mailbox, and a lookalike that
    only ends in the same letters is nobody's. Our own mail domain counts as ours."""
    do_add_official_channel(db, SYSTEM, kind=ChannelKind.DOMAIN, value="kx-official.example")
    do_add_official_channel(db, SYSTEM, kind=ChannelKind.EMAIL, value="Notice@KX-Mail.example")
    db.commit()
    cases = {
        "security@kx-official.example": True,
        "alerts@mail.kx-official.example": True,
        "notice@kx-mail.example": True,
        "other@kx-mail.example": False,
        "support@fake-kx-official.example": False,
        "kefu@mx.kx-exchange.example": True,  # a subdomain of the desk's own domain
        "wu.fan@example.com": False,
    }
    for n, (sender, spoofed) in enumerate(cases.items()):
        received = desk.ingestor.ingest(
            mail(sender, "账户安全通知", "请勿泄露验证码。", f"official-{n}@example.com"),
            recipient=SUPPORT,
        )
        assert received.message is not None
        flags = received.message.meta["flags"]
        assert ("spoofed_official_sender" in flags) is spoofed, (sender, flags)
