"""Writes on messages: replies, inbound messages and internal notes.

``do_add_message`` is the choke point every channel goes through (chat, email, API,
phone notes), so it is where inbound text is screened for secrets before storage and
where per-ticket sequence numbers and client-id idempotency are enforced.
See docs/subsystems/messages.md.
"""

from __future__ import annotations

import functools
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import nh3
from sqlalchemy import Table, bindparam, insert, select, tuple_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from kefu import events
from kefu.actions.guard import (
    MASKED_WARNING,
    Screened,
    check_agent_reply,
    display_body,
    display_text,
    html_text,
    screen_inbound,
    stored_display,
)
from kefu.actions.history import enqueue_webhooks, record_event
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
from kefu.events import RealtimeEvent, publish_on_commit
from kefu.infra.search.messages import index_message, index_messages
from kefu.models import Attachment, Event, Message

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
    seq, count = session.execute(_count_statement(), {"b_ticket_id": ticket.id, "b_now": now}).one()
    for name, value in (
        ("last_seq", seq),
        ("message_count", count),
        ("last_message_at", now),
        ("updated_at", now),
    ):
        set_committed_value(ticket, name, value)
    return int(seq)


@functools.cache
def _count_statement() -> Any:
    # Built once: building an UPDATE (and its cache key) costs about what running it does.
    from kefu.models import Ticket as TicketModel  # avoid a cycle at import

    return (
        update(TicketModel)
        .where(TicketModel.id == bindparam("b_ticket_id"))
        .values(
            last_seq=TicketModel.last_seq + 1,
            message_count=TicketModel.message_count + 1,
            last_message_at=bindparam("b_now"),
            updated_at=bindparam("b_now"),
        )
        .returning(TicketModel.last_seq, TicketModel.message_count)
        .execution_options(synchronize_session=False)
    )


def sanitize_html(html: str) -> str:
    """Allow-list HTML cleaning: no scripts, no handlers, no javascript: links."""
    return nh3.clean(html, link_rel="noopener noreferrer nofollow")


def message_public(message: Message) -> dict[str, Any]:
    """The realtime and webhook view of a message; PII is masked in it."""
    return message_payload(
        message_id=message.id,
        ticket_id=message.ticket_id,
        seq=message.seq,
        shown=display_body(message),
        is_internal=message.is_internal,
        channel=message.channel,
        author_type=message.author_type,
        author_id=message.agent_id if message.author_type == "agent" else message.contact_id,
        client_msg_id=message.client_msg_id,
        created_at=message.created_at,
        attachment_ids=[a.id for a in message.attachments],
        meta=message.meta,
    )


def message_payload(
    *,
    message_id: int,
    ticket_id: int,
    seq: int,
    shown: str,
    is_internal: bool,
    channel: Channel,
    author_type: ActorKind,
    author_id: int | None,
    client_msg_id: str | None,
    created_at: datetime,
    attachment_ids: list[int],
    meta: dict[str, Any] | None,
) -> dict[str, Any]:
    """``message_public`` from the stored values (a batched write has no ORM object);
    ``shown`` is the body as agents see it by default (``guard.display_body``)."""
    return {
        "id": message_id,
        "seq": seq,
        "body": shown,
        "is_internal": is_internal,
        "channel": channel,
        "author": {"type": author_type, "id": author_id},
        "client_msg_id": client_msg_id,
        "created_at": created_at.isoformat(),
        "attachments": attachment_ids,
        "ticket_id": ticket_id,
        # What a system message is (bot suggestions, safety instructions …) and, for
        # the bot, the articles it offers.
        "kind": (meta or {}).get("kind"),
        "articles": (meta or {}).get("articles"),
    }


def find_message_by_client_id(
    session: Session, ticket: Ticket, client_msg_id: str
) -> Message | None:
    return session.scalar(
        select(Message).where(
            Message.ticket_id == ticket.id, Message.client_msg_id == client_msg_id
        )
    )


def check_may_add_message(
    actor: Actor,
    *,
    contact_id: int | None,
    status: TicketStatus,
    is_merged: bool,
    is_internal: bool,
    third_party: bool = False,
) -> None:
    """Who may add a message to a ticket in this state (``do_add_message``'s checks,
    shared with the batched chat path, which reads tickets as plain rows)."""
    if third_party and not (actor.is_contact and is_internal):
        raise PermissionDenied("a third party's message is kept for agents only")
    # Notes are for agents (and the system) only.
    if is_internal and not access.can_write_internal_note(actor) and not third_party:
        raise PermissionDenied("contacts cannot write internal notes")
    # A contact writes on their own tickets only.
    if actor.is_contact and contact_id != actor.id and not third_party:
        raise PermissionDenied("not your ticket")
    # A closed or merged ticket takes no more messages (a follow-up opens a new one).
    if status is TicketStatus.CLOSED or is_merged:
        raise InvalidTransition("ticket is closed")


def screen_message_body(
    session: Session,
    actor: Actor,
    body: str,
    *,
    is_internal: bool,
    txid: str | None,
    has_attachments: bool,
) -> Screened:
    """The text to store: length-checked, an agent's reply linted, secrets masked.
    Raises ``ValidationFailed`` for a message that may not be stored."""
    body = body.replace("\x00", "")
    if len(body) > MAX_BODY_CHARS:
        raise ValidationFailed("message too long", field="body")
    if actor.kind is ActorKind.AGENT and not is_internal:
        check_agent_reply(session, body)
    # Before anything is stored: secrets out, from every author (an agent pasting a
    # customer's key into a note is caught too). The ticket's TxID is known public.
    screened = screen_inbound(body, known_txids=[txid] if txid else ())
    if not screened.text.strip() and not has_attachments:
        raise ValidationFailed("message is empty", field="body")
    return screened


def status_after_message(
    actor: Actor, current: TicketStatus, *, is_internal: bool, opening: bool = False
) -> TicketStatus:
    """What a new message does to its ticket's status (a note does nothing)."""
    if opening:
        return current
    if actor.kind is ActorKind.CONTACT:
        return status_after_contact_message(current)
    if actor.kind is ActorKind.AGENT and not is_internal:
        return status_after_agent_reply(current)
    return current


def counts_as_response(actor: Actor, *, is_internal: bool, opening: bool = False) -> bool:
    """An agent's public reply is a response (it sets ``first_response_at`` once)."""
    return actor.kind is ActorKind.AGENT and not is_internal and not opening


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
    check_may_add_message(
        actor,
        contact_id=ticket.contact_id,
        status=ticket.status,
        is_merged=ticket.merged_into_id is not None,
        is_internal=new.is_internal,
        third_party=third_party,
    )
    if new.client_msg_id is not None:
        existing = find_message_by_client_id(session, ticket, new.client_msg_id)
        if existing is not None:
            return existing
    screened = screen_message_body(
        session,
        actor,
        new.body,
        is_internal=new.is_internal,
        txid=ticket.txid,
        has_attachments=bool(new.attachment_ids),
    )
    body = screened.text
    if len(new.attachment_ids) > MAX_ATTACHMENTS:
        raise ValidationFailed("too many attachments", field="attachment_ids")
    attachments = _claim_attachments(session, actor, new.attachment_ids)

    now = utcnow()
    is_from_contact = actor.kind is ActorKind.CONTACT
    if sa_inspect(ticket).modified:
        session.flush()  # pending changes first: the update below bypasses the ORM
    # An opening message was counted when its ticket was created (``do_open_ticket``),
    # which nothing else can have written to yet.
    seq = ticket.last_seq if opening else _count_message(session, ticket, now)
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
        display_body=stored_display(body, screened.display),
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
    target = status_after_message(actor, previous, is_internal=new.is_internal, opening=opening)
    responds = counts_as_response(actor, is_internal=new.is_internal, opening=opening)
    if responds and ticket.first_response_at is None:
        ticket.first_response_at = now
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


@dataclass(frozen=True, slots=True)
class CheckedMessage:
    """A plain message (text only) that passed ``check_may_add_message`` and
    ``screen_message_body`` and changes nothing on its ticket but the counters: no
    status change, no first response, no secret found, no email to send."""

    actor: Actor
    ticket_id: int
    ticket_number: str
    team_id: int | None
    assignee_id: int | None
    contact_id: int | None
    body: str  # screened
    channel: Channel
    is_internal: bool = False
    client_msg_id: str | None = None
    display: str | None = None  # display_text(body), if the screen worked it out


def _table(model: type[Any]) -> Table:
    """A mapped class's table, for Core statements (no per-row ORM bookkeeping)."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def do_add_messages_unsafe(session: Session, batch: Sequence[CheckedMessage]) -> list[int]:
    """Store checked plain messages in a few statements for the whole batch (the chat
    hot path, docs/chat-protocol.md): the rows, sequence numbers, Event rows, search
    index, realtime events and webhooks that ``do_add_message`` writes for each, with
    the same values. Returns each message's ``seq``, in the batch's order.

    ``_unsafe``: the caller ran the checks (``CheckedMessage``) and deduplicated the
    client ids; anything more than a plain message goes through ``do_add_message``."""
    if not batch:
        return []
    from kefu.models import Ticket as TicketModel  # avoid a cycle at import

    now = utcnow()
    tickets = _table(TicketModel)
    per_ticket = Counter(m.ticket_id for m in batch)
    # Sequence numbers: each ticket's counter moves by its count, one statement per
    # distinct count (mostly one: a message per ticket per batch), not one per ticket:
    # every statement gives the GIL up to SQLite and waits to get it back. The row lock
    # (PostgreSQL) or the write lock (SQLite) is held to commit, so the numbers read
    # back are this transaction's alone.
    by_count: dict[int, list[int]] = {}
    for tid, n in per_ticket.items():
        by_count.setdefault(n, []).append(tid)
    for n, ids in by_count.items():
        session.execute(
            update(tickets)
            .where(tickets.c.id.in_(ids))
            .values(
                last_seq=tickets.c.last_seq + n,
                message_count=tickets.c.message_count + n,
                last_message_at=now,
                updated_at=now,
            )
        )
    counters = {
        row.id: (row.last_seq, row.message_count)
        for row in session.execute(
            select(tickets.c.id, tickets.c.last_seq, tickets.c.message_count).where(
                tickets.c.id.in_(list(per_ticket))
            )
        )
    }
    for tid, (last_seq, count) in counters.items():
        # A Ticket this session holds (an earlier item of the same transaction) sees
        # the new counters, as after ``_count_message``.
        loaded = session.identity_map.get(session.identity_key(TicketModel, tid))
        if loaded is not None:
            for name, value in (
                ("last_seq", last_seq),
                ("message_count", count),
                ("last_message_at", now),
                ("updated_at", now),
            ):
                set_committed_value(loaded, name, value)
    next_seq = {tid: counters[tid][0] - n + 1 for tid, n in per_ticket.items()}
    seqs: list[int] = []
    rows: list[dict[str, Any]] = []
    shown = [display_text(m.body) if m.display is None else m.display for m in batch]
    for m, display in zip(batch, shown, strict=True):
        seq = next_seq[m.ticket_id]
        next_seq[m.ticket_id] = seq + 1
        seqs.append(seq)
        is_from_contact = m.actor.kind is ActorKind.CONTACT
        rows.append(
            {
                "ticket_id": m.ticket_id,
                "seq": seq,
                "author_type": m.actor.kind,
                "agent_id": m.actor.id if m.actor.kind is ActorKind.AGENT else None,
                "contact_id": m.actor.id if is_from_contact else None,
                "direction": "in" if is_from_contact else "out",
                "is_internal": m.is_internal,
                "channel": m.channel,
                "body": m.body,
                "display_body": stored_display(m.body, display),
                "client_msg_id": m.client_msg_id,
                "meta": {},
                "created_at": now,
            }
        )
    messages = _table(Message)
    # A plain executemany, then the ids by (ticket, seq), which is unique: RETURNING
    # in parameter order costs SQLite one statement per row.
    session.execute(insert(messages), rows)
    found = {
        (tid, seq): message_id
        for message_id, tid, seq in session.execute(
            select(messages.c.id, messages.c.ticket_id, messages.c.seq).where(
                tuple_(messages.c.ticket_id, messages.c.seq).in_(
                    [(m.ticket_id, seq) for m, seq in zip(batch, seqs, strict=True)]
                )
            )
        )
    }
    ids = [found[(m.ticket_id, seq)] for m, seq in zip(batch, seqs, strict=True)]
    event_rows: list[dict[str, Any]] = []
    # Searchable in the same transaction; what is indexed is the screened text.
    index_messages(session, [(i, m.ticket_id, m.body) for m, i in zip(batch, ids, strict=True)])
    for m, message_id, seq, display in zip(batch, ids, seqs, shown, strict=True):
        data = {"message_id": message_id, "seq": seq, "is_internal": m.is_internal}
        event_rows.append(
            {
                "ticket_id": m.ticket_id,
                "kind": events.MESSAGE_CREATED,
                "actor_type": m.actor.kind.value,
                "actor_id": m.actor.id,
                "data": data,
                "created_at": now,
            }
        )
        public = message_payload(
            message_id=message_id,
            ticket_id=m.ticket_id,
            seq=seq,
            shown=display,
            is_internal=m.is_internal,
            channel=m.channel,
            author_type=m.actor.kind,
            author_id=m.actor.id,
            client_msg_id=m.client_msg_id,
            created_at=now,
            attachment_ids=[],
            meta={},
        )
        # As ``record_event`` publishes it: the ticket's number, then the payload.
        payload = {"ticket": m.ticket_number, "message": public}
        publish_on_commit(
            session,
            RealtimeEvent(
                type=events.MESSAGE_CREATED,
                ticket_id=m.ticket_id,
                team_id=m.team_id,
                assignee_id=m.assignee_id,
                contact_id=m.contact_id,
                is_internal=m.is_internal,
                data=payload,
            ),
        )
        enqueue_webhooks(session, events.MESSAGE_CREATED, payload, is_internal=m.is_internal)
    session.execute(insert(_table(Event)), event_rows)
    return seqs


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
