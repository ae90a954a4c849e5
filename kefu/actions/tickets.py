"""Writes on tickets: create, assign, status, priority, tags, fields, merge.

Every change is checked against ``domain`` rules, recorded by ``record_event`` and
flushed; the caller commits. See docs/subsystems/tickets.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.guard import display_text, screen_inbound
from kefu.actions.history import record_event
from kefu.actions.messages import NewMessage, do_add_message, next_seq
from kefu.domain import access
from kefu.domain.access import Actor
from kefu.domain.clock import utcnow
from kefu.domain.errors import (
    Conflict,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from kefu.domain.exchange_fields import ExchangeFields, normalize_exchange_fields
from kefu.domain.tickets import (
    Channel,
    Priority,
    TicketKind,
    TicketStatus,
    can_transition,
    check_priority_allowed,
    effective_priority,
    generate_ticket_number,
)
from kefu.infra.search.messages import move_messages
from kefu.models import Agent, Contact, Message, Team, Ticket, TicketTag

MAX_TAGS = 30
MAX_TAG_LENGTH = 64


@dataclass(frozen=True, slots=True)
class NewTicket:
    subject: str
    channel: Channel
    kind: TicketKind = TicketKind.QUESTION
    priority: Priority | None = None
    contact_id: int | None = None
    team_id: int | None = None
    assignee_id: int | None = None
    inbox_id: int | None = None
    tags: Sequence[str] = ()
    fields: ExchangeFields = field(default_factory=ExchangeFields)
    first_message: NewMessage | None = None
    # Who wrote the opening message, when not the creator: a web form or an email is
    # filed by the system but written by the contact.
    author: Actor | None = None


def normalize_tags(tags: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in tags:
        tag = " ".join(raw.split()).lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise ValidationFailed("tag too long", field="tags")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValidationFailed("too many tags", field="tags")
    return out


def _check_team(session: Session, team_id: int | None) -> None:
    if team_id is not None and session.get(Team, team_id) is None:
        raise ValidationFailed("unknown team", field="team_id")


def _check_assignee(session: Session, assignee_id: int | None) -> None:
    if assignee_id is None:
        return
    agent = session.get(Agent, assignee_id)
    if agent is None or not agent.is_active:
        raise ValidationFailed("unknown or inactive agent", field="assignee_id")


_NUMBER_TAKEN = select(exists().where(Ticket.number == bindparam("number")))


def _new_number(session: Session) -> str:
    for _ in range(10):
        number = generate_ticket_number()
        with session.no_autoflush:
            taken = session.scalar(_NUMBER_TAKEN, {"number": number})
        if not taken:
            return number
    raise Conflict("could not allocate a ticket number")  # pragma: no cover  # 1 in 10^60


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    """The realtime/webhook view of a ticket: what consoles need to update a row. PII in
    the subject is masked, as in ``message_public``."""
    return {
        "number": ticket.number,
        "subject": display_text(ticket.subject),
        "kind": ticket.kind,
        "channel": ticket.channel,
        "status": ticket.status,
        "priority": ticket.priority,
        "team_id": ticket.team_id,
        "assignee_id": ticket.assignee_id,
        "contact_id": ticket.contact_id,
    }


def do_create_ticket(session: Session, actor: Actor, new: NewTicket) -> Ticket:
    return do_open_ticket(session, actor, new)[0]


def do_open_ticket(session: Session, actor: Actor, new: NewTicket) -> tuple[Ticket, Message | None]:
    """Create a ticket; returns it with its opening message (when ``first_message``)."""
    subject = " ".join(new.subject.split())
    if not subject:
        raise ValidationFailed("subject is required", field="subject")
    if actor.is_contact:
        # A contact creates tickets for themselves only, and cannot route or prioritise.
        if new.contact_id != actor.id:
            raise PermissionDenied("contacts create tickets for themselves only")
        if new.team_id is not None or new.assignee_id is not None:
            raise PermissionDenied("contacts cannot route tickets")
    if new.contact_id is not None and session.get(Contact, new.contact_id) is None:
        raise ValidationFailed("unknown contact", field="contact_id")
    _check_team(session, new.team_id)
    _check_assignee(session, new.assignee_id)
    fields = normalize_exchange_fields(new.fields)
    # Subjects are screened like messages: people paste anything anywhere.
    subject = screen_inbound(subject, known_txids=[fields.txid] if fields.txid else ()).text
    requested = None if actor.is_contact else new.priority
    now = utcnow()
    ticket = Ticket(
        number=_new_number(session),
        subject=subject,
        kind=new.kind,
        channel=new.channel,
        status=TicketStatus.NEW,
        priority=effective_priority(new.kind, requested),
        team_id=new.team_id,
        assignee_id=new.assignee_id,
        contact_id=new.contact_id,
        inbox_id=new.inbox_id,
        exchange_uid=fields.exchange_uid,
        txid=fields.txid,
        order_id=fields.order_id,
        coin=fields.coin,
        network=fields.network,
        amount=fields.amount,
        created_at=now,
        updated_at=now,
    )
    if new.first_message is not None:
        # Counted at creation: the opening message takes sequence number 1.
        ticket.last_seq = 1
        ticket.message_count = 1
        ticket.last_message_at = now
    ticket.tag_rows = [TicketTag(tag=t) for t in normalize_tags(new.tags)]
    session.add(ticket)
    session.flush()
    record_event(session, actor, events.TICKET_CREATED, ticket=ticket, data=ticket_summary(ticket))
    if new.first_message is None:
        return ticket, None
    message = do_add_message(session, new.author or actor, ticket, new.first_message, opening=True)
    return ticket, message


def _touch(ticket: Ticket) -> None:
    ticket.updated_at = utcnow()


def do_change_status(
    session: Session, actor: Actor, ticket: Ticket, status: TicketStatus
) -> Ticket:
    if not access.can_manage_ticket(actor):
        raise PermissionDenied("only agents change a ticket's status")
    if status == ticket.status:
        return ticket
    if not can_transition(ticket.status, status):
        raise InvalidTransition(
            "invalid status transition", current=ticket.status.value, target=status.value
        )
    _apply_status(session, actor, ticket, status)
    return ticket


def _apply_status(session: Session, actor: Actor, ticket: Ticket, status: TicketStatus) -> None:
    previous = ticket.status
    ticket.status = status
    now = utcnow()
    if status is TicketStatus.SOLVED:
        ticket.solved_at = now
    elif status is TicketStatus.CLOSED:
        ticket.closed_at = now
    elif previous is TicketStatus.SOLVED:
        ticket.solved_at = None
    _touch(ticket)
    session.flush()
    record_event(
        session,
        actor,
        events.TICKET_STATUS_CHANGED,
        ticket=ticket,
        data={"from": previous.value, "to": status.value},
    )


def do_set_priority(session: Session, actor: Actor, ticket: Ticket, priority: Priority) -> Ticket:
    if not access.can_manage_ticket(actor):
        raise PermissionDenied("only agents change a ticket's priority")
    if not check_priority_allowed(ticket.kind, priority):
        raise ValidationFailed("account security tickets are always urgent", field="priority")
    if priority == ticket.priority:
        return ticket
    previous = ticket.priority
    ticket.priority = priority
    _touch(ticket)
    session.flush()
    record_event(
        session,
        actor,
        events.TICKET_PRIORITY_CHANGED,
        ticket=ticket,
        data={"from": previous.value, "to": priority.value},
    )
    return ticket


_UNSET: Any = object()


def do_assign(
    session: Session,
    actor: Actor,
    ticket: Ticket,
    *,
    assignee_id: int | None = _UNSET,
    team_id: int | None = _UNSET,
) -> Ticket:
    if not access.can_manage_ticket(actor):
        raise PermissionDenied("only agents assign tickets")
    changes: dict[str, Any] = {}
    if team_id is not _UNSET and team_id != ticket.team_id:
        _check_team(session, team_id)
        if not access.can_assign_to_team(actor, team_id):
            raise PermissionDenied("cannot move ticket to that team")
        changes["team_id"] = {"from": ticket.team_id, "to": team_id}
        ticket.team_id = team_id
    if assignee_id is not _UNSET and assignee_id != ticket.assignee_id:
        _check_assignee(session, assignee_id)
        changes["assignee_id"] = {"from": ticket.assignee_id, "to": assignee_id}
        ticket.assignee_id = assignee_id
    if not changes:
        return ticket
    _touch(ticket)
    session.flush()
    record_event(session, actor, events.TICKET_ASSIGNED, ticket=ticket, data=changes)
    return ticket


def do_tag(
    session: Session,
    actor: Actor,
    ticket: Ticket,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> Ticket:
    if not access.can_manage_ticket(actor):
        raise PermissionDenied("only agents tag tickets")
    to_add = normalize_tags(add)
    to_remove = set(normalize_tags(remove))
    current = {row.tag: row for row in ticket.tag_rows}
    added = [t for t in to_add if t not in current]
    removed = [t for t in to_remove if t in current]
    if not added and not removed:
        return ticket
    if len(current) + len(added) - len(removed) > MAX_TAGS:
        raise ValidationFailed("too many tags", field="tags")
    for tag in removed:
        ticket.tag_rows.remove(current[tag])
    for tag in added:
        ticket.tag_rows.append(TicketTag(tag=tag))
    _touch(ticket)
    session.flush()
    record_event(
        session,
        actor,
        events.TICKET_TAGGED,
        ticket=ticket,
        data={"added": added, "removed": removed, "tags": ticket.tags},
    )
    return ticket


def do_update_ticket_fields(
    session: Session,
    actor: Actor,
    ticket: Ticket,
    *,
    subject: str | None = None,
    kind: TicketKind | None = None,
    fields: ExchangeFields | None = None,
) -> Ticket:
    if not access.can_manage_ticket(actor):
        raise PermissionDenied("only agents edit tickets")
    changes: dict[str, Any] = {}
    if subject is not None:
        subject = screen_inbound(" ".join(subject.split()), known_txids=[ticket.txid or ""]).text
        if not subject:
            raise ValidationFailed("subject is required", field="subject")
        if subject != ticket.subject:
            changes["subject"] = {"from": ticket.subject, "to": subject}
            ticket.subject = subject
    if kind is not None and kind != ticket.kind:
        changes["kind"] = {"from": ticket.kind.value, "to": kind.value}
        ticket.kind = kind
        if kind is TicketKind.ACCOUNT_SECURITY and ticket.priority is not Priority.URGENT:
            changes["priority"] = {"from": ticket.priority.value, "to": Priority.URGENT.value}
            ticket.priority = Priority.URGENT
    if fields is not None:
        clean = normalize_exchange_fields(fields)
        for name in ("exchange_uid", "txid", "order_id", "coin", "network", "amount"):
            value = getattr(clean, name)
            if value is not None and value != getattr(ticket, name):
                changes[name] = {"from": getattr(ticket, name), "to": value}
                setattr(ticket, name, value)
    if not changes:
        return ticket
    _touch(ticket)
    session.flush()
    record_event(session, actor, events.TICKET_UPDATED, ticket=ticket, data=changes)
    return ticket


def do_merge_tickets(session: Session, actor: Actor, source: Ticket, target: Ticket) -> Ticket:
    """Fold ``source`` into ``target``: its messages move over (appended in time order,
    renumbered), its tags are added, and it is closed with a pointer to the target."""
    if not access.can_manage_ticket(actor):
        raise PermissionDenied("only agents merge tickets")
    if source.id == target.id:
        raise ValidationFailed("cannot merge a ticket into itself", field="target")
    if source.merged_into_id is not None or source.status is TicketStatus.CLOSED:
        raise InvalidTransition("source ticket is already closed or merged")
    if target.status is TicketStatus.CLOSED:
        raise InvalidTransition("target ticket is closed")
    moved = session.scalars(
        select(Message).where(Message.ticket_id == source.id).order_by(Message.seq)
    ).all()
    for message in moved:
        # Allocate first: the allocation flushes, and a half-moved row would collide.
        seq = next_seq(session, target)
        message.ticket_id = target.id
        message.seq = seq
        # Client ids are unique per ticket; keep them distinct after the move.
        if message.client_msg_id is not None:
            message.client_msg_id = f"m{source.id}:{message.client_msg_id}"[:64]
    target.message_count += len(moved)
    move_messages(session, [m.id for m in moved], target.id)
    source.message_count = 0
    existing = set(target.tags)
    for tag in source.tags:
        if tag not in existing:
            target.tag_rows.append(TicketTag(tag=tag))
    source.merged_into_id = target.id
    source.status = TicketStatus.CLOSED
    source.closed_at = utcnow()
    _touch(source)
    _touch(target)
    session.flush()
    record_event(
        session,
        actor,
        events.TICKET_MERGED,
        ticket=source,
        data={"into": target.number, "messages": len(moved)},
    )
    record_event(
        session,
        actor,
        events.TICKET_MERGED,
        ticket=target,
        data={"from": source.number, "messages": len(moved)},
    )
    return target


def get_ticket_for_update(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket


# -- tags across the desk (the admin page's 标签) ---------------------------------------


def _one_tag(raw: str) -> str:
    tags = normalize_tags([raw])
    if not tags:
        raise ValidationFailed("tag is required", field="tag")
    return tags[0]


def _tickets_tagged(session: Session, tag: str) -> list[Ticket]:
    # Admins only (checked by the callers): every ticket, whoever may see it.
    stmt = (
        select(Ticket)
        .where(Ticket.id.in_(select(TicketTag.ticket_id).where(TicketTag.tag == tag)))
        .order_by(Ticket.id)
    )
    return list(session.scalars(stmt).all())


def do_rename_tag(session: Session, actor: Actor, tag: str, new_name: str) -> int:
    """Rename ``tag`` on every ticket; a ticket that has ``new_name`` already just loses
    the old one, so renaming into a tag in use merges the two. Each ticket's history
    records the change (``ticket.tagged``). Returns how many tickets changed."""
    # A tag is the whole desk's vocabulary (filters, saved views, reports): admins only.
    if not access.can_administer(actor):
        raise PermissionDenied("only admins rename or delete tags")
    old, new = _one_tag(tag), _one_tag(new_name)
    if old == new:
        return 0
    tickets = _tickets_tagged(session, old)
    for ticket in tickets:
        do_tag(session, actor, ticket, add=[new], remove=[old])
    return len(tickets)


def do_delete_tag(session: Session, actor: Actor, tag: str) -> int:
    """Take ``tag`` off every ticket, each with its history event. Returns how many."""
    # As for renaming: the vocabulary is the admins'.
    if not access.can_administer(actor):
        raise PermissionDenied("only admins rename or delete tags")
    old = _one_tag(tag)
    tickets = _tickets_tagged(session, old)
    for ticket in tickets:
        do_tag(session, actor, ticket, remove=[old])
    return len(tickets)
