"""Sending mail: agents' replies, acknowledgements and chat transcripts, from the
outbox, by SMTP.

Each reply carries the Message-ID minted when it was stored, ``In-Reply-To`` and
``References`` to the thread, the ticket number in the subject, text and HTML parts,
the contact's anti-phishing code at the top and how to verify official channels at the
bottom. Header values are stripped of CR/LF before use (CVE-2024-6923: the Python here
would serialise them into the header block).

A reply's ``delivery_status`` is written here: ``sent``, ``retrying`` while the relay is
unreachable or answers 4xx, ``failed`` once it answers 5xx or the last attempt fails,
``not_sent`` without a relay (``bounced`` comes later, from actions.email). See
docs/email.md.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from typing import Any

import aiosmtplib
import dkim
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kefu.actions.guard import display_body, display_text
from kefu.channels.email.parse import sanitize_header_value
from kefu.domain.clock import utcnow, wall_clock
from kefu.domain.mail import reply_subject
from kefu.domain.workdays import reply_due
from kefu.infra.i18n import translations
from kefu.infra.jobs import Handler, PermanentJobError
from kefu.models import Contact, Job, Message, Ticket
from kefu.settings import Settings

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
ACK_WORKING_DAYS = 3


def _env(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]  # added by the i18n extension
    return env


_ENVS = {locale: _env(locale) for locale in ("zh-CN", "en")}


def render(name: str, locale: str, **context: Any) -> str:
    env = _ENVS.get(locale, _ENVS["zh-CN"])
    return env.get_template(name).render(locale=locale, **context)


@dataclass(frozen=True, slots=True)
class Outgoing:
    to: str
    to_name: str
    subject: str
    text: str
    html: str | None
    message_id: str
    in_reply_to: str | None
    references: list[str]
    # RFC 3834 §5: machine-sent mail (the acknowledgement) says so, or the customer's
    # own auto-responder answers it and the two loop. An agent's reply is not.
    is_auto_reply: bool = False


def _address(settings: Settings) -> Address:
    local, _, domain = settings.support_address.partition("@")
    return Address(
        display_name=sanitize_header_value(settings.support_name), username=local, domain=domain
    )


def build_email(settings: Settings, out: Outgoing) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = _address(settings)
    to_local, _, to_domain = out.to.partition("@")
    msg["To"] = Address(
        display_name=sanitize_header_value(out.to_name)[:100], username=to_local, domain=to_domain
    )
    msg["Subject"] = sanitize_header_value(out.subject)[:300]
    msg["Message-ID"] = f"<{out.message_id}>"
    msg["Date"] = format_datetime(utcnow())
    if out.in_reply_to:
        msg["In-Reply-To"] = f"<{out.in_reply_to}>"
    if out.references:
        msg["References"] = " ".join(f"<{r}>" for r in out.references[-20:])
    msg["Auto-Submitted"] = "auto-replied" if out.is_auto_reply else "no"
    msg.set_content(out.text, charset="utf-8")
    if out.html:
        msg.add_alternative(out.html, subtype="html", charset="utf-8")
    return msg


def _verify_url(settings: Settings) -> str:
    return settings.base_url.rstrip("/") + "/verify"


def load_reply(session: Session, settings: Settings, message_id: int) -> Outgoing | None:
    message = session.get(Message, message_id)
    if message is None or message.is_internal or message.email_message_id is None:
        return None
    ticket = session.get(Ticket, message.ticket_id)
    contact = session.get(Contact, ticket.contact_id) if ticket and ticket.contact_id else None
    if ticket is None or contact is None or not contact.email:
        return None
    thread = [
        mid
        for (mid,) in session.execute(
            select(Message.email_message_id)
            .where(
                Message.ticket_id == ticket.id,
                Message.seq < message.seq,
                Message.email_message_id.is_not(None),
            )
            .order_by(Message.seq)
        )
        if mid
    ]
    locale = contact.locale if contact.locale in ("zh-CN", "en") else "zh-CN"
    context = {
        "body": message.body,
        "code": contact.anti_phishing_code,
        "number": ticket.number,
        "verify_url": _verify_url(settings),
    }
    return Outgoing(
        to=contact.email,
        to_name=contact.name,
        subject=reply_subject(ticket.subject, ticket.number),
        text=render("emails/reply.txt", locale, **context),
        html=render("emails/reply.html", locale, **context),
        message_id=message.email_message_id,
        in_reply_to=thread[-1] if thread else None,
        references=thread,
    )


def load_transcript(
    session: Session, settings: Settings, *, ticket_id: int, to: str, up_to_seq: int, job_id: int
) -> Outgoing | None:
    """The chat's transcript as its contact saw it: the messages that are not internal
    notes, up to the moment it was asked for, with personal data masked as on their
    screen (secrets were masked before storage)."""
    ticket = session.get(Ticket, ticket_id)
    contact = session.get(Contact, ticket.contact_id) if ticket and ticket.contact_id else None
    if ticket is None or contact is None:
        return None
    messages = session.scalars(
        select(Message)
        .where(
            Message.ticket_id == ticket.id,
            Message.is_internal.is_(False),
            Message.seq <= up_to_seq,
        )
        .order_by(Message.seq)
        .limit(2000)
    ).all()
    lines = [
        {
            "at": wall_clock(m.created_at, settings.time_zone),
            "author": m.author_type.value,
            "body": display_body(m),
            "articles": [str(a.get("title", "")) for a in (m.meta or {}).get("articles") or ()],
            "files": [a.filename for a in m.attachments],
        }
        for m in messages
    ]
    locale = contact.locale if contact.locale in ("zh-CN", "en") else "zh-CN"
    context = {
        "lines": lines,
        "code": contact.anti_phishing_code,
        "number": ticket.number,
        "subject": display_text(ticket.subject),
        "time_zone": settings.time_zone,
        "verify_url": _verify_url(settings),
    }
    return Outgoing(
        to=to,
        to_name=contact.name,
        subject=render("emails/transcript.subject.txt", locale, **context).strip(),
        text=render("emails/transcript.txt", locale, **context),
        html=render("emails/transcript.html", locale, **context),
        message_id=f"transcript-{ticket.number}-{job_id}@{settings.mail_domain}",
        in_reply_to=None,
        references=[],
        # Sent by a machine on request: an auto-responder must not answer it (RFC 3834).
        is_auto_reply=True,
    )


def load_ack(session: Session, settings: Settings, ticket_id: int) -> Outgoing | None:
    ticket = session.get(Ticket, ticket_id)
    contact = session.get(Contact, ticket.contact_id) if ticket and ticket.contact_id else None
    if ticket is None or contact is None or not contact.email:
        return None
    first = session.scalar(
        select(Message.email_message_id)
        .where(Message.ticket_id == ticket.id)
        .order_by(Message.seq)
        .limit(1)
    )
    locale = contact.locale if contact.locale in ("zh-CN", "en") else "zh-CN"
    due = reply_due(ticket.created_at, ACK_WORKING_DAYS)
    text = render(
        "emails/ack.txt",
        locale,
        code=contact.anti_phishing_code,
        number=ticket.number,
        subject=ticket.subject,
        due=due.strftime("%Y-%m-%d"),
        days=ACK_WORKING_DAYS,
        verify_url=_verify_url(settings),
    )
    return Outgoing(
        to=contact.email,
        to_name=contact.name,
        subject=reply_subject(ticket.subject, ticket.number),
        text=text,
        html=None,
        message_id=f"ack-{ticket.number}@{settings.mail_domain}",
        in_reply_to=first,
        references=[first] if first else [],
        is_auto_reply=True,
    )


# Signed headers: what a forger would change to pass our mail off as theirs or to
# re-thread it (RFC 6376 5.4.1), each present header once.
DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"auto-submitted",
)


@cache
def _dkim_key(path: Path) -> bytes:
    return path.read_bytes()


def dkim_sign(settings: Settings, raw: bytes) -> bytes:
    """``raw`` with a DKIM-Signature header in front, when a key is configured.

    Receivers then check that mail from our domain was really sent by us; together
    with SPF and a DMARC policy that is what keeps look-alike "support" mail out of
    customers' inboxes, and what lets their mail client show ours as verified.
    """
    if not settings.dkim_selector or settings.dkim_private_key_file is None:
        return raw
    present = {
        line.split(b":", 1)[0].strip().lower()
        for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if b":" in line
    }
    signature: bytes = dkim.sign(
        raw,
        settings.dkim_selector.encode(),
        settings.mail_domain.encode(),
        _dkim_key(settings.dkim_private_key_file),
        include_headers=[h for h in DKIM_HEADERS if h in present],
        canonicalize=(b"relaxed", b"relaxed"),
    )
    return signature + raw


def to_wire(settings: Settings, msg: EmailMessage) -> bytes:
    """The message as sent: CRLF line ends, signed if DKIM is configured."""
    return dkim_sign(settings, msg.as_bytes(policy=SMTP_POLICY))


class RelayRefused(PermanentJobError):
    """The relay answered 5xx: RFC 5321 §4.2.1 says the same mail will fail again."""


def _is_permanent(exc: aiosmtplib.SMTPException) -> bool:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(r.code >= 500 for r in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500


async def send(settings: Settings, msg: EmailMessage) -> None:
    if not settings.smtp_relay_host:
        raise PermanentJobError("no SMTP relay configured (KEFU_SMTP_RELAY_HOST)")
    recipients = [a.addr_spec for a in msg["To"].addresses]
    try:
        await aiosmtplib.send(
            to_wire(settings, msg),
            sender=settings.support_address,
            recipients=recipients,
            hostname=settings.smtp_relay_host,
            port=settings.smtp_relay_port,
            timeout=30,
            start_tls=False,
        )
    except aiosmtplib.SMTPException as exc:
        # 4xx, a dropped connection or a timeout is retried; 5xx is final.
        if _is_permanent(exc):
            raise RelayRefused(str(exc)[:500]) from exc
        raise


def make_email_handlers(sessions: sessionmaker[Session], settings: Settings) -> dict[str, Handler]:
    def set_status(job_id: int, message_id: int, status: str) -> None:
        with sessions.begin() as session:
            message = session.get(Message, message_id)
            if message is None:
                return
            if status == "retrying":
                # The attempt was counted when the job was claimed, and finish_job
                # dead-letters the job on this same condition: the last failed attempt
                # is final, and the agent must see the reply never went out.
                job = session.get(Job, job_id)
                if job is not None and job.attempts >= job.max_attempts:
                    status = "failed"
            message.delivery_status = status

    async def send_reply(job_id: int, payload: dict[str, Any]) -> None:
        message_id = int(payload["message_id"])

        def load() -> Outgoing | None:
            with sessions() as session:
                return load_reply(session, settings, message_id)

        out = await asyncio.to_thread(load)
        if out is None:
            raise PermanentJobError("nothing to send: message, ticket or address gone")
        try:
            await send(settings, build_email(settings, out))
        except RelayRefused:
            await asyncio.to_thread(set_status, job_id, message_id, "failed")
            raise
        except PermanentJobError:
            await asyncio.to_thread(set_status, job_id, message_id, "not_sent")
            raise
        except Exception:
            await asyncio.to_thread(set_status, job_id, message_id, "retrying")
            raise
        await asyncio.to_thread(set_status, job_id, message_id, "sent")

    async def send_ack(job_id: int, payload: dict[str, Any]) -> None:
        ticket_id = int(payload["ticket_id"])

        def load() -> Outgoing | None:
            with sessions() as session:
                return load_ack(session, settings, ticket_id)

        out = await asyncio.to_thread(load)
        if out is None:
            raise PermanentJobError("nothing to acknowledge")
        await send(settings, build_email(settings, out))

    async def send_transcript(job_id: int, payload: dict[str, Any]) -> None:
        def load() -> Outgoing | None:
            with sessions() as session:
                return load_transcript(
                    session,
                    settings,
                    ticket_id=int(payload["ticket_id"]),
                    to=str(payload["to"]),
                    up_to_seq=int(payload["up_to_seq"]),
                    job_id=job_id,
                )

        out = await asyncio.to_thread(load)
        if out is None:
            raise PermanentJobError("nothing to send: ticket or contact gone")
        await send(settings, build_email(settings, out))

    # Job kinds: actions.messages.EMAIL_SEND_JOB, the ack, actions.chat.TRANSCRIPT_JOB.
    return {"email.send": send_reply, "email.ack": send_ack, "email.transcript": send_transcript}
