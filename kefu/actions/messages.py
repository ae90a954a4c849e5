"""Writes on messages: replies, inbound messages and internal notes.

``do_add_message`` is the choke point every channel goes through (chat, email, API,
phone notes), so it is where inbound text is screened for secrets before storage and
where per-ticket sequence numbers and client-id idempotency are enforced.
See docs/subsystems/messages.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import nh3
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from kefu import events
from kefu.actions.guard import (
    MASKED_WARNING,
    Screened,
    check_agent_reply,
    display_text,
    html_text,
    screen_inbound,
)
from kefu.actions.history import record_event
from kefu.actions.outbox import do_enqueue_job
from kefu.domain import access
from kefu.domain.access import SYSTEM, Actor, ActorKind
from kefu.domain.clock import utcnow
from kefu.domain.errors import InvalidTransition, PermissionDenied, ValidationFailed
from kefu.domain.tickets import (
    Channel,
    TicketStatus,
    status_after_agent_reply,
    status_after_contact_message,
)
from kefu.infra.search.messages import index_message
from kefu.models import Attachment, Message

if TYPE_CHECKING:
    from kefu.models import Ticket

MAX_BODY_CHARS = 100_000
MAX_ATTACHMENTS = 20


@dataclass(frozen=True, slots=True)
class NewMessage:
    body: str
    channel: Channel
    is_internal: bool = False
    body_html: str | None = None
    attachment_ids: Sequence[int] = ()
    client_msg_id: str | None = None
    email_message_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def next_seq(session: Session, ticket: Ticket) -> int:
    """Allocate the ticket's next sequence number atomically (a row-level update)."""
    from kefu.models import Ticket as TicketModel  # avoid a cycle at import

    seq: int = session.execute(
        update(TicketModel)
        .where(TicketModel.id == ticket.id)
        .values(last_seq=TicketModel.last_seq + 1)
        .returning(TicketModel.last_seq)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(ticket, "last_seq", seq)
    return seq


def _count_message(session: Session, ticket: Ticket, now: datetime) -> int:
    """One statement for what a new message does to its ticket: the next sequence
    number (atomic, so concurrent writers never share one), the count and the times.
    Separate updates cost a round trip each on the hottest write path (chat)."""
    from kefu.models import Ticket as TicketModel  # avoid a cycle at import

    seq, count = session.execute(
        update(TicketModel)
        .where(TicketModel.id == ticket.id)
        .values(
            last_seq=TicketModel.last_seq + 1,
            message_count=TicketModel.message_count + 1,
            last_message_at=now,
            updated_at=now,
        )
        .returning(TicketModel.last_seq, TicketModel.message_count)
        .execution_options(synchronize_session=False)
    ).one()
    for name, value in (
        ("last_seq", seq),
        ("message_count", count),
        ("last_message_at", now),
        ("updated_at", now),
    ):
        set_committed_value(ticket, name, value)
    return int(seq)


def sanitize_html(html: str) -> str:
    """Allow-list HTML cleaning: no scripts, no handlers, no javascript: links."""
    return nh3.clean(html, link_rel="noopener noreferrer nofollow")


def message_public(message: Message) -> dict[str, Any]:
    """The realtime and webhook view of a message; PII is masked in it."""
    return {
        "id": message.id,
        "seq": message.seq,
        "body": display_text(message.body),
        "is_internal": message.is_internal,
        "channel": message.channel,
        "author": {
            "type": message.author_type,
            "id": message.agent_id if message.author_type == "agent" else message.contact_id,
        },
        "client_msg_id": message.client_msg_id,
        "created_at": message.created_at.isoformat(),
        "attachments": [a.id for a in message.attachments],
        "ticket_id": message.ticket_id,
        # What a system message is (bot suggestions, safety instructions …) and, for
        # the bot, the articles it offers.
        "kind": (message.meta or {}).get("kind"),
        "articles": (message.meta or {}).get("articles"),
    }


def find_message_by_client_id(
    session: Session, ticket: Ticket, client_msg_id: str
) -> Message | None:
    return session.scalar(
        select(Message).where(
            Message.ticket_id == ticket.id, Message.client_msg_id == client_msg_id
        )
    )


def do_add_message(
    session: Session,
    actor: Actor,
    ticket: Ticket,
    new: NewMessage,
    *,
    opening: bool = False,
    third_party: bool = False,
) -> Message:
    """Add a message; a resend with the same ``client_msg_id`` returns the stored one.

    ``opening`` marks the message a ticket is created with: it describes the problem,
    so it neither changes the status nor counts as the first response.

    ``third_party``: a channel brings a message from a contact who is not the ticket's
    (an email reply from someone else quoting the ticket). It is kept, but only as an
    internal message: agents see it, the ticket's contact never does, because anyone
    can write a ticket number into a subject.
    """
    if third_party and not (actor.is_contact and new.is_internal):
        raise PermissionDenied("a third party's message is kept for agents only")
    if new.is_internal and not access.can_write_internal_note(actor) and not third_party:
        raise PermissionDenied("contacts cannot write internal notes")
    if actor.is_contact and ticket.contact_id != actor.id and not third_party:
        raise PermissionDenied("not your ticket")
    if ticket.status is TicketStatus.CLOSED or ticket.merged_into_id is not None:
        raise InvalidTransition("ticket is closed")
    if new.client_msg_id is not None:
        existing = find_message_by_client_id(session, ticket, new.client_msg_id)
        if existing is not None:
            return existing
    body = new.body.replace("\x00", "")
    if len(body) > MAX_BODY_CHARS:
        raise ValidationFailed("message too long", field="body")
    if actor.kind is ActorKind.AGENT and not new.is_internal:
        check_agent_reply(session, body)
    # Before anything is stored: secrets out, from every author (an agent pasting a
    # customer's key into a note is caught too). The ticket's TxID is known public.
    screened = screen_inbound(body, known_txids=[ticket.txid] if ticket.txid else ())
    body = screened.text
    if not body.strip() and not new.attachment_ids:
        raise ValidationFailed("message is empty", field="body")
    if len(new.attachment_ids) > MAX_ATTACHMENTS:
        raise ValidationFailed("too many attachments", field="attachment_ids")
    attachments = _claim_attachments(session, actor, new.attachment_ids)

    now = utcnow()
    is_from_contact = actor.kind is ActorKind.CONTACT
    if sa_inspect(ticket).modified:
        session.flush()  # pending changes first: the update below bypasses the ORM
    seq = _count_message(session, ticket, now)
    message = Message(
        ticket_id=ticket.id,
        seq=seq,
        author_type=actor.kind,
        agent_id=actor.id if actor.kind is ActorKind.AGENT else None,
        contact_id=actor.id if is_from_contact else None,
        direction="in" if is_from_contact else "out",
        is_internal=new.is_internal,
        channel=new.channel,
        body=body,
        body_html=_screen_html(new.body_html, screened) if new.body_html else None,
        client_msg_id=new.client_msg_id,
        email_message_id=new.email_message_id,
        meta=new.meta,
        created_at=now,
    )
    session.add(message)
    session.flush()
    # Searchable in the same transaction; what is indexed is the screened text.
    index_message(session, message.id, ticket.id, body)
    for att in attachments:
        att.ticket_id = ticket.id
        att.message_id = message.id
    set_committed_value(message, "attachments", attachments)

    previous = ticket.status
    target: TicketStatus
    if opening:
        target = ticket.status
    elif is_from_contact:
        target = status_after_contact_message(ticket.status)
    elif actor.kind is ActorKind.AGENT and not new.is_internal:
        target = status_after_agent_reply(ticket.status)
        if ticket.first_response_at is None:
            ticket.first_response_at = now
    else:
        target = ticket.status
    if target is not previous:
        ticket.status = target
        if previous is TicketStatus.SOLVED:
            ticket.solved_at = None
    session.flush()
    record_event(
        session,
        actor,
        events.MESSAGE_CREATED,
        ticket=ticket,
        data={"message_id": message.id, "seq": message.seq, "is_internal": new.is_internal},
        realtime={"message": message_public(message)},
        is_internal=new.is_internal,
    )
    if target is not previous:
        record_event(
            session,
            actor,
            events.TICKET_STATUS_CHANGED,
            ticket=ticket,
            data={"from": previous.value, "to": target.value},
        )
    if screened.secret_kinds:
        _after_secret_masked(session, actor, ticket, message, screened.secret_kinds)
    if (
        ticket.channel is Channel.EMAIL
        and not new.is_internal
        and actor.kind is not ActorKind.CONTACT
        and not opening
    ):
        # A public reply on an email ticket goes out by mail: an outbox row in this
        # transaction, with the Message-ID fixed now so replies to it thread back.
        message.email_message_id = f"{secrets.token_hex(12)}@{mail_domain(session)}"
        message.delivery_status = "queued"
        do_enqueue_job(session, EMAIL_SEND_JOB, {"message_id": message.id})
    return message


MAIL_DOMAIN_KEY = "kefu.mail_domain"
EMAIL_SEND_JOB = "email.send"


def mail_domain(session: Session) -> str:
    """The domain of the Message-IDs kefu mints (set per app in the session info)."""
    domain: str = session.info.get(MAIL_DOMAIN_KEY, "kefu.invalid")
    return domain


def _screen_html(html: str, screened: Screened) -> str | None:
    """The HTML part of a message: dropped when the text held a secret (the text, now
    masked, is what is kept), else sanitised."""
    if screened.secret_kinds:
        return None
    clean = sanitize_html(html)
    # The HTML part may hold what the text part does not (mailers differ): check it too.
    if screen_inbound(html_text(clean)).secret_kinds:
        return None
    return clean


def _after_secret_masked(
    session: Session, actor: Actor, ticket: Ticket, message: Message, kinds: tuple[str, ...]
) -> None:
    # Agents see which kinds were masked (never the values) and can advise.
    record_event(
        session,
        actor,
        events.SECRET_MASKED,
        ticket=ticket,
        data={"message_id": message.id, "kinds": list(kinds)},
        is_internal=True,
    )
    if actor.kind is ActorKind.CONTACT:
        # The contact is warned where they wrote, as a visible system message.
        do_add_message(
            session,
            SYSTEM,
            ticket,
            NewMessage(body=MASKED_WARNING, channel=message.channel, meta={"kind": "dlp_warning"}),
        )


def _claim_attachments(session: Session, actor: Actor, ids: Sequence[int]) -> list[Attachment]:
    """Attachments uploaded by the same author and not yet on a message."""
    if not ids:
        return []
    rows = session.scalars(select(Attachment).where(Attachment.id.in_(list(ids)))).all()
    by_id = {a.id: a for a in rows}
    out: list[Attachment] = []
    for att_id in dict.fromkeys(ids):
        att = by_id.get(att_id)
        if att is None or att.message_id is not None:
            raise ValidationFailed("unknown attachment", field="attachment_ids")
        # Only the uploader may attach a file, or one agent could attach another's upload.
        if actor.kind is ActorKind.AGENT and att.uploaded_by_agent_id != actor.id:
            raise ValidationFailed("unknown attachment", field="attachment_ids")
        if actor.kind is ActorKind.CONTACT and att.uploaded_by_contact_id != actor.id:
            raise ValidationFailed("unknown attachment", field="attachment_ids")
        out.append(att)
    return out


def do_record_reveal(
    session: Session, actor: Actor, ticket_id: int, message_ids: list[int]
) -> None:
    """Audit an agent's look at unmasked personal data (id cards, bank cards, phones)."""
    from kefu.models import Ticket as TicketModel  # avoid a cycle at import

    ticket = session.get(TicketModel, ticket_id)
    record_event(
        session,
        actor,
        events.SENSITIVE_REVEALED,
        ticket=ticket,
        data={"message_ids": message_ids[:500]},
        is_internal=True,
    )
