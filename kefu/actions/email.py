"""Receiving email: threading a parsed mail onto a ticket, storing it once, and the
outbound work it causes (the acknowledgement). Sending is kefu.channels.email.outbound.
See docs/email.md.

Threading, in order: ``In-Reply-To``/``References`` against every Message-ID kefu sent
or received; then a ``[#K12345678]`` ticket number in the subject; else a new ticket.
A mail from someone who is not the ticket's contact is kept but flagged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.orm import Session

from kefu.actions.attachments import do_upload_attachment
from kefu.actions.contacts import ContactData, do_find_or_create_contact
from kefu.actions.guard import screen_inbound
from kefu.actions.messages import EMAIL_SEND_JOB, NewMessage, do_add_message
from kefu.actions.outbox import do_enqueue_job
from kefu.actions.tickets import NewTicket, do_open_ticket
from kefu.domain.access import SYSTEM, Actor, ActorKind
from kefu.domain.clock import utcnow
from kefu.domain.errors import KefuError
from kefu.domain.mail import InboundMail
from kefu.domain.tickets import Channel, TicketStatus, normalize_ticket_number
from kefu.infra.files import FileStore
from kefu.models import Agent, Contact, Inbox, Message, OfficialChannel, Ticket

EMAIL_ACK_JOB = "email.ack"
MAX_BODY = 100_000


@dataclass(frozen=True, slots=True)
class Received:
    ticket: Ticket | None
    message: Message | None
    created_ticket: bool = False
    duplicate: bool = False
    bounce: bool = False


# Built once: every mail runs these, and building a statement (and its cache key) costs
# about as much as running it on SQLite.
_KNOWN_IDS = select(Message.email_message_id, Message.ticket_id).where(
    Message.email_message_id.in_(bindparam("ids", expanding=True))
)
_TICKET_BY_NUMBER = select(Ticket).where(Ticket.number == bindparam("number"))
_INBOX_BY_ADDRESS = select(Inbox).where(Inbox.address == bindparam("address"))
_CLAIMS_OURS = select(
    exists().where(
        OfficialChannel.kind.in_(["domain", "email"]),
        func.lower(OfficialChannel.value).in_(bindparam("values", expanding=True)),
    ),
    exists().where(Agent.email == bindparam("sender")),
)


def _thread_ids(mail: InboundMail) -> list[str]:
    return [i for i in reversed(mail.thread_ids) if i][:50]


def _known_message_ids(session: Session, mail: InboundMail) -> dict[str, int]:
    """Ticket ids by Message-ID, for this mail's own id (a redelivery) and the ids it
    replies to (threading): one query for both."""
    ids = _thread_ids(mail)
    if mail.message_id:
        ids.append(mail.message_id)
    if not ids:
        return {}
    rows = session.execute(_KNOWN_IDS, {"ids": ids}).all()
    return {mid: tid for mid, tid in rows if mid is not None}


def _find_thread(session: Session, mail: InboundMail, known: dict[str, int]) -> Ticket | None:
    for message_id in _thread_ids(mail):  # the newest reference first
        if message_id in known:
            return session.get(Ticket, known[message_id])
    if mail.ticket_number:
        number = normalize_ticket_number(mail.ticket_number)
        if number is not None:
            return session.scalar(_TICKET_BY_NUMBER, {"number": number})
    return None


def _domain_suffixes(domain: str) -> list[str]:
    """``a.b.example`` → ``a.b.example``, ``b.example``, ``example``: every registry
    entry that covers the domain (an entry covers its subdomains)."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def _spoof_flags(session: Session, mail: InboundMail, own_domains: Iterable[str]) -> list[str]:
    """Mail that claims to come from us (our domains, an agent's address) but arrived
    from outside is a phishing attempt against our own agents."""
    sender = (mail.from_address or "").lower()
    domain = sender.rpartition("@")[2]
    suffixes = _domain_suffixes(domain)
    flags = []
    # One round trip for both questions (``_CLAIMS_OURS``); the registry is matched in
    # the database rather than read whole for every mail.
    claims_official, claims_agent = session.execute(
        _CLAIMS_OURS, {"values": [sender, *suffixes], "sender": sender}
    ).one()
    ours = {d.lower() for d in own_domains}
    if claims_official or sender in ours or any(s in ours for s in suffixes):
        flags.append("spoofed_official_sender")
    if claims_agent:
        flags.append("spoofed_agent_sender")
    dmarc = mail.auth_results.get("dmarc")
    if dmarc in ("fail", "reject", "quarantine") or mail.auth_results.get("spf") == "fail":
        flags.append("authentication_failed")
    return flags


def do_record_bounce(session: Session, mail: InboundMail) -> None:
    """A delivery report (RFC 3464): the addresses that failed for good are marked
    bounced, so kefu sends them no more acknowledgements, and the reply it returns
    shows as ``bounced`` to the agent."""
    failed = sorted({a.lower() for a in mail.bounced_recipients[:50]})
    if not failed:
        # Only "Action: delayed"/"relayed" blocks: the mail may still arrive.
        return
    session.execute(
        update(Contact)
        .where(Contact.email.in_(failed))
        .values(email_bounced_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    # The failed reply is named by the returned message's own Message-ID; the report's
    # In-Reply-To/References, which few MTAs write, are a fallback. Only mail kefu sent
    # can bounce: a DSN quoting a customer's Message-ID changes nothing.
    ids = [*mail.returned_message_ids, *mail.thread_ids][:50]
    if ids:
        session.execute(
            update(Message)
            .where(Message.email_message_id.in_(ids), Message.direction == "out")
            .values(delivery_status="bounced")
            .execution_options(synchronize_session=False)
        )


def do_receive_email(
    session: Session,
    mail: InboundMail,
    *,
    files: FileStore,
    max_attachment_bytes: int,
    inbox_address: str | None = None,
    own_domains: Iterable[str] = (),
) -> Received:
    """Store one inbound mail. Idempotent by Message-ID: a redelivered mail is stored once."""
    known = _known_message_ids(session, mail)
    if mail.message_id and mail.message_id in known:
        existing = session.scalar(
            select(Message).where(Message.email_message_id == mail.message_id)
        )
        if existing is not None:
            return Received(session.get(Ticket, existing.ticket_id), existing, duplicate=True)
    if mail.is_bounce:
        do_record_bounce(session, mail)
        return Received(None, None, bounce=True)
    if not mail.from_address:
        raise KefuError("mail without a usable From address")

    # The reads first, then the writes: a read after a write flushes it on its own, and
    # each flush is a round of ORM bookkeeping (the contact's history row can go out
    # with the ticket).
    flags = list(mail.flags) + _spoof_flags(session, mail, own_domains)
    ticket = _find_thread(session, mail, known)
    created = False
    if ticket is not None and (ticket.status is TicketStatus.CLOSED or ticket.merged_into_id):
        # A reply to a closed ticket opens a follow-up that points back to it.
        flags.append(f"follow_up_of:{ticket.number}")
        ticket = None
    inbox = (
        session.scalar(_INBOX_BY_ADDRESS, {"address": inbox_address.lower()})
        if ticket is None and inbox_address
        else None
    )
    contact = do_find_or_create_contact(
        session, SYSTEM, ContactData(email=mail.from_address, name=mail.from_name or None)
    )
    author = Actor(kind=ActorKind.CONTACT, id=contact.id)
    if ticket is not None and ticket.contact_id != contact.id:
        flags.append("sender_not_ticket_contact")
    body = (mail.text or mail.full_text or "").strip()[:MAX_BODY] or "（空邮件）"
    meta: dict[str, object] = {
        "email": {
            "from": mail.from_address,
            "from_name": screen_inbound(mail.from_name).text[:200],
            "to": list(mail.to[:20]),
            "subject": screen_inbound(mail.subject[:300]).text,
            "auth": dict(list(mail.auth_results.items())[:10]),
            "original_sha256": mail.raw_sha256,
            "quoted_history_stripped": mail.text.strip() != mail.full_text.strip(),
        },
        "flags": sorted(set(flags)),
    }
    attachment_ids = _store_attachments(session, author, mail, files, max_attachment_bytes, meta)
    new_message = NewMessage(
        body=body,
        channel=Channel.EMAIL,
        body_html=mail.html,
        email_message_id=mail.message_id,
        attachment_ids=attachment_ids,
        meta=meta,
    )
    if ticket is None:
        ticket, message = do_open_ticket(
            session,
            SYSTEM,
            NewTicket(
                subject=mail.subject.strip()[:300] or "（无主题）",
                channel=Channel.EMAIL,
                contact_id=contact.id,
                team_id=inbox.team_id if inbox else None,
                inbox_id=inbox.id if inbox else None,
                tags=["spoofed"] if any(f.startswith("spoofed") for f in flags) else [],
                first_message=new_message,
                author=author,
            ),
        )
        created = True
        # No auto-reply to auto-replies, lists and bounces: that is how mail loops start.
        if not mail.is_auto_submitted and contact.email_bounced_at is None:
            do_enqueue_job(session, EMAIL_ACK_JOB, {"ticket_id": ticket.id})
    elif ticket.contact_id != contact.id:
        # Someone else replied on the thread (a colleague, a CC, or a stranger who
        # copied the ticket number): kept and flagged for agents, hidden from the
        # ticket's contact. Refusing it would bounce a real customer's mail.
        third = replace(new_message, is_internal=True)
        message = do_add_message(session, author, ticket, third, third_party=True)
    else:
        message = do_add_message(session, author, ticket, new_message)
    return Received(ticket, message, created_ticket=created)


def _store_attachments(
    session: Session,
    author: Actor,
    mail: InboundMail,
    files: FileStore,
    max_bytes: int,
    meta: dict[str, object],
) -> list[int]:
    ids: list[int] = []
    skipped: list[str] = []
    refused: set[str] = set()
    for att in mail.attachments[:20]:
        try:
            row = do_upload_attachment(
                session,
                author,
                files,
                data=att.data,
                filename=att.filename,
                declared_type=att.content_type,
                max_bytes=max_bytes,
            )
        except KefuError as exc:
            # Kept out, but the agent is told: an .exe or a 40 MB video is not lost silently.
            skipped.append(att.filename[:100])
            if exc.params.get("field") == "file" and "reason" in exc.params:
                # Only the zip check gives a reason: overlapping entries, a bomb … (docs/email.md)
                refused.add("unsafe_zip_refused")
            continue
        ids.append(row.id)
    if skipped:
        meta["skipped_attachments"] = skipped
    if refused:
        flags = meta.get("flags")
        meta["flags"] = sorted({*(flags if isinstance(flags, list) else []), *refused})
    return ids


__all__ = ["EMAIL_ACK_JOB", "EMAIL_SEND_JOB", "Received", "do_receive_email", "do_record_bounce"]
