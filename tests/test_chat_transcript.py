"""The chat transcript by email, on request: ``transcript`` frames over a real socket
against a live server, the outbox job run by the worker, and the mail as a real SMTP
sink receives it (visible messages only, PII masked, anti-phishing code, the
official-channel footer), in the contact's language, at most three an hour."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, cast

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from sqlalchemy import select

from kefu.actions.contacts import do_set_anti_phishing_code
from kefu.channels.email.outbound import make_email_handlers
from kefu.domain.access import SYSTEM
from kefu.infra.i18n import translations
from kefu.models import Contact, Job
from kefu.settings import Settings
from kefu.workers.outbox import OutboxWorker
from tests.chat_support import (
    Client,
    LiveServer,
    contact_token,
    database_for,
    live_server,
    run,
)
from tests.conftest import DB_BACKENDS
from tests.factories import make_agent, make_team, make_token
from tests.processes import free_port

DOMAIN = "kx-exchange.example"
FOOTER_ZH = (
    translations("zh-CN")
    .gettext(
        "KX Exchange support never asks for your password, verification codes, seed phrase or "
        "private key. Check any channel at %(url)s"
    )
    .split("%(url)s")[0]
)


@pytest.fixture(params=DB_BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    url = database_for(request.param, tmp_path)
    with live_server(url, tmp_path, None) as live:
        yield live


class Sink:
    """An SMTP server that keeps every mail it is given."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook
        self.messages.append(envelope.original_content or envelope.content)
        return "250 OK"

    def parsed(self) -> list[EmailMessage]:
        parser = BytesParser(policy=default_policy)
        return [cast(EmailMessage, parser.parsebytes(m)) for m in self.messages]


async def deliver_outbox(live: LiveServer, sink: Sink) -> int:
    """Run the outbox once against a real SMTP server that keeps what it gets."""
    port = free_port()
    smtp = await asyncio.get_running_loop().create_server(
        lambda: SMTPServer(sink), "127.0.0.1", port
    )
    settings = Settings(
        smtp_relay_host="127.0.0.1", smtp_relay_port=port, mail_domain=DOMAIN, run_smtp=False
    )
    worker = OutboxWorker(
        live.sessions, make_email_handlers(live.sessions, settings), concurrency=1
    )
    try:
        return await worker.run_once()
    finally:
        smtp.close()
        await smtp.wait_closed()


def seed(live: LiveServer) -> str:
    with live.sessions.begin() as db:
        team = make_team(db, "general")
        return make_token(db, make_agent(db, teams=[team]))


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def test_a_visitor_gets_the_visible_transcript_by_email(server: LiveServer) -> None:
    agent_token = seed(server)
    sink = Sink()

    async def scenario() -> str:
        visitor = await Client.connect(server.ws_url)
        await visitor.expect(type="welcome")
        await visitor.send(
            {"type": "start", "topic": "other", "text": "转人工，提币一直没到账", "id": "s"}
        )
        await visitor.expect(type="visitor")
        number = (await visitor.expect(type="started"))["ticket"]
        agent = await Client.connect(server.ws_url, token=agent_token)
        await agent.expect(type="welcome")
        await agent.send({"type": "presence", "status": "online", "id": "p"})
        await visitor.expect(type="state", chat_state="active")
        await visitor.send(
            {"type": "msg", "ticket": number, "text": "我的手机号 13812345678", "id": "c1"}
        )
        await visitor.expect(type="ack", id="c1")
        await agent.send(
            {"type": "msg", "ticket": number, "text": "已为您加急处理 <b>提币</b>", "id": "a1"}
        )
        await agent.expect(type="ack", id="a1")
        await agent.send(
            {
                "type": "msg",
                "ticket": number,
                "text": "内部备注：疑似重复提交",
                "internal": True,
                "id": "n1",
            }
        )
        await agent.expect(type="ack", id="n1")

        # An anonymous visitor has no address on file: they must give one.
        await visitor.send({"type": "transcript", "ticket": number, "id": "t0"})
        error = await visitor.expect(type="error", ref="t0")
        assert error["code"] == "validation-failed"
        assert error["message"] == "请填写接收邮件的邮箱地址"
        await visitor.send(
            {"type": "transcript", "ticket": number, "email": "not-an-address", "id": "t1"}
        )
        assert (await visitor.expect(type="error", ref="t1"))["message"] == "邮箱地址无效"

        # Somebody else's chat is not found, and an agent does not ask for one.
        stranger = await Client.connect(server.ws_url, token=contact_token("40000001"))
        await stranger.expect(type="welcome")
        await stranger.send(
            {"type": "transcript", "ticket": number, "email": "x@example.com", "id": "t2"}
        )
        assert (await stranger.expect(type="error", ref="t2"))["code"] == "not-found"
        await agent.send({"type": "transcript", "ticket": number, "id": "t3"})
        assert (await agent.expect(type="error", ref="t3"))["code"] == "permission-denied"

        # While the chat is live.
        await visitor.send(
            {"type": "transcript", "ticket": number, "email": "Wang.Fang@Example.com", "id": "t4"}
        )
        done = await visitor.expect(type="done", ref="t4")
        assert done["ticket"] == number
        assert "wang.fang@example.com" not in done["email"]
        assert done["email"].endswith("@example.com")

        with server.sessions.begin() as db:
            contact = db.scalar(select(Contact).where(Contact.email == "wang.fang@example.com"))
            assert contact is not None  # the visitor's address is now the contact's
            do_set_anti_phishing_code(db, SYSTEM, contact, "KX-7Q2")
        assert await deliver_outbox(server, sink) >= 1
        return number

    number = run(scenario())
    (mail,) = sink.parsed()
    assert mail["To"].addresses[0].addr_spec == "wang.fang@example.com"
    assert f"[#{number}]" in mail["Subject"] and "聊天记录" in mail["Subject"]
    assert mail["Auto-Submitted"] == "auto-replied"
    for body in (text_of(mail), html_of(mail)):
        assert body.index("KX-7Q2") < body.index("提币一直没到账")  # the code comes first
        assert "提币一直没到账" in body and "已为您加急处理" in body
        assert "13812345678" not in body and "138****5678" in body
        assert "内部备注" not in body and "疑似重复提交" not in body
        assert "/verify" in body and FOOTER_ZH in body
    assert "<b>提币</b>" in text_of(mail)
    assert "<b>" not in html_of(mail) and "&lt;b&gt;提币&lt;/b&gt;" in html_of(mail)
    with server.sessions() as db:
        (job,) = db.scalars(select(Job).where(Job.kind == "email.transcript"))
        assert job.status.value == "done"


def test_a_known_contact_uses_the_address_on_file_in_their_language_three_times_an_hour(
    server: LiveServer,
) -> None:
    agent_token = seed(server)
    sink = Sink()

    async def scenario() -> None:
        token = contact_token("40000002", email="li.na@example.com", name="Li Na")
        contact = await Client.connect(server.ws_url, token=token, locale="en")
        await contact.expect(type="welcome")
        with server.sessions.begin() as db:
            row = db.scalar(select(Contact).where(Contact.exchange_uid == "40000002"))
            assert row is not None
            row.locale = "en"
        await contact.send(
            {"type": "start", "topic": "trading", "text": "talk to a human please", "id": "s"}
        )
        number = (await contact.expect(type="started"))["ticket"]
        agent = await Client.connect(server.ws_url, token=agent_token)
        await agent.expect(type="welcome")
        await agent.send({"type": "presence", "status": "online", "id": "p"})
        await contact.expect(type="state", chat_state="active")
        await agent.send({"type": "end", "ticket": number, "id": "e"})
        await contact.expect(type="state", chat_state="ended")

        # After the chat ended, without an address: the one on file.
        for n in range(3):
            await contact.send({"type": "transcript", "ticket": number, "id": f"t{n}"})
            done = await contact.expect(type="done", ref=f"t{n}")
            assert done["email"] != "li.na@example.com" and done["email"].endswith("@example.com")
        await contact.send({"type": "transcript", "ticket": number, "id": "t4"})
        limited = await contact.expect(type="error", ref="t4")
        assert limited["code"] == "rate-limited"
        assert limited["message"] == "too many transcript requests; try again later"
        assert 0 < limited["details"]["retry_after_seconds"] <= 3601
        assert limited["details"]["limit"] == 3
        while await deliver_outbox(server, sink):
            pass

    run(scenario())
    mails = sink.parsed()
    assert len(mails) == 3  # the refused fourth request queued nothing
    mail = mails[0]
    assert mail["To"].addresses[0].addr_spec == "li.na@example.com"
    assert "Your chat transcript" in mail["Subject"]
    body = text_of(mail)
    assert "talk to a human please" in body
    assert "You" in body and "KX Exchange support never asks" in body
