"""Ticket reads: permission-checked lookups and the filtered, keyset-paginated list."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, case, false, or_, select
from sqlalchemy.orm import Session

from kefu.domain import access
from kefu.domain.access import Actor, ActorKind, Role
from kefu.domain.errors import NotFound, ValidationFailed
from kefu.domain.tickets import (
    PRIORITY_RANK,
    Channel,
    Priority,
    TicketKind,
    TicketStatus,
    normalize_ticket_number,
)
from kefu.infra.search.messages import tickets_matching
from kefu.models import Contact, Ticket, TicketTag

MAX_PAGE = 100


def ticket_visibility(actor: Actor) -> ColumnElement[bool] | None:
    """SQL form of ``domain.access.can_see_ticket``; None means no restriction."""
    if actor.kind is ActorKind.SYSTEM:
        return None
    if actor.kind is ActorKind.CONTACT:
        if actor.id is None:
            return false()
        return Ticket.contact_id == actor.id
    if actor.role is Role.ADMIN:
        return None
    return or_(
        Ticket.team_id.in_(sorted(actor.team_ids)),
        Ticket.team_id.is_(None),
        Ticket.assignee_id == actor.id,
    )


def get_ticket_by_number(session: Session, number: str) -> Ticket | None:
    canonical = normalize_ticket_number(number)
    if canonical is None:
        return None
    return session.scalar(select(Ticket).where(Ticket.number == canonical))


def access_ticket_by_number(session: Session, actor: Actor, number: str) -> Ticket:
    ticket = get_ticket_by_number(session, number)
    # A ticket the actor may not see is "not found", never "forbidden": no enumeration.
    if ticket is None:
        raise NotFound("ticket not found")
    if not access.can_see_ticket(
        actor, team_id=ticket.team_id, assignee_id=ticket.assignee_id, contact_id=ticket.contact_id
    ):
        raise NotFound("ticket not found")
    return ticket


def access_ticket_by_id(session: Session, actor: Actor, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("ticket not found")
    if not access.can_see_ticket(
        actor, team_id=ticket.team_id, assignee_id=ticket.assignee_id, contact_id=ticket.contact_id
    ):
        raise NotFound("ticket not found")
    return ticket


@dataclass(frozen=True, slots=True)
class TicketFilter:
    status: Sequence[TicketStatus] = ()
    priority: Sequence[Priority] = ()
    kind: Sequence[TicketKind] = ()
    channel: Sequence[Channel] = ()
    team_id: int | None = None
    team_ids: Sequence[int] = ()
    no_team: bool = False
    assignee_id: int | None = None
    unassigned: bool = False
    tag: str | None = None
    contact_id: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    # The search box (console and API ``q``): a ticket number, a contact's email, name
    # or exchange UID, a TxID or order id, words of the subject, or words in any of the
    # ticket's messages (full-text, infra/search/messages.py).
    text: str | None = None


SORTS = ("-created_at", "created_at", "-updated_at", "updated_at", "priority")

_priority_rank = case(
    {p.value: rank for p, rank in PRIORITY_RANK.items()}, value=Ticket.priority, else_=9
)


def _sort_keys(sort: str) -> list[tuple[Any, bool]]:
    """Columns of the sort with their direction (True = descending), id last as tiebreak."""
    if sort == "-created_at":
        return [(Ticket.created_at, True), (Ticket.id, True)]
    if sort == "created_at":
        return [(Ticket.created_at, False), (Ticket.id, False)]
    if sort == "-updated_at":
        return [(Ticket.updated_at, True), (Ticket.id, True)]
    if sort == "updated_at":
        return [(Ticket.updated_at, False), (Ticket.id, False)]
    if sort == "priority":
        return [(_priority_rank, False), (Ticket.created_at, False), (Ticket.id, False)]
    raise ValidationFailed("unknown sort", field="sort")


def _encode_cursor(values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(plain)).decode().rstrip("=")


def _decode_cursor(cursor: str, keys: list[tuple[Any, bool]]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise ValidationFailed("invalid cursor", field="cursor") from None
    if not isinstance(values, list) or len(values) != len(keys):
        raise ValidationFailed("invalid cursor", field="cursor")
    out: list[Any] = []
    for (col, _), value in zip(keys, values, strict=True):
        is_time = col is Ticket.created_at or col is Ticket.updated_at
        try:
            if is_time:
                if not isinstance(value, str):
                    raise TypeError
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise TypeError
                out.append(parsed)
            else:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise TypeError
                out.append(value)
        except (TypeError, ValueError):
            raise ValidationFailed("invalid cursor", field="cursor") from None
    return out


def _after(keys: list[tuple[Any, bool]], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the sort order (keyset pagination)."""
    clauses = []
    for i, (col, desc) in enumerate(keys):
        equal = [keys[j][0] == values[j] for j in range(i)]
        step = col < values[i] if desc else col > values[i]
        clauses.append(and_(*equal, step))
    return or_(*clauses)


@dataclass(frozen=True, slots=True)
class TicketPage:
    items: list[Ticket]
    next: str | None


def filter_clauses(f: TicketFilter, *, dialect: str) -> list[ColumnElement[bool]]:
    """The filter as SQL conditions (also used to count the console's views); the
    dialect picks the full-text search of messages (``text``)."""
    clauses: list[ColumnElement[bool]] = []
    if f.status:
        clauses.append(Ticket.status.in_([s.value for s in f.status]))
    if f.priority:
        clauses.append(Ticket.priority.in_([p.value for p in f.priority]))
    if f.kind:
        clauses.append(Ticket.kind.in_([k.value for k in f.kind]))
    if f.channel:
        clauses.append(Ticket.channel.in_([c.value for c in f.channel]))
    if f.team_id is not None:
        clauses.append(Ticket.team_id == f.team_id)
    if f.team_ids:
        clauses.append(Ticket.team_id.in_(sorted(f.team_ids)))
    if f.no_team:
        clauses.append(Ticket.team_id.is_(None))
    if f.assignee_id is not None:
        clauses.append(Ticket.assignee_id == f.assignee_id)
    if f.unassigned:
        clauses.append(Ticket.assignee_id.is_(None))
    if f.contact_id is not None:
        clauses.append(Ticket.contact_id == f.contact_id)
    if f.tag is not None:
        tagged = select(TicketTag.ticket_id).where(TicketTag.tag == f.tag.strip().lower())
        clauses.append(Ticket.id.in_(tagged))
    if f.created_after is not None:
        clauses.append(Ticket.created_at >= f.created_after)
    if f.created_before is not None:
        clauses.append(Ticket.created_at < f.created_before)
    if f.text:
        clauses.append(_text_clause(f.text, dialect))
    return clauses


def _text_clause(text: str, dialect: str) -> ColumnElement[bool]:
    q = " ".join(text.split())[:200]
    people = select(Contact.id).where(
        or_(Contact.email == q.lower(), Contact.name == q, Contact.exchange_uid == q)
    )
    matches: list[ColumnElement[bool]] = [
        Ticket.subject.contains(q, autoescape=True),
        Ticket.contact_id.in_(people),
        Ticket.exchange_uid == q,
        Ticket.txid == q,
        Ticket.order_id == q,
    ]
    number = normalize_ticket_number(q)
    if number is not None:
        matches.append(Ticket.number == number)
    # Words in any message of the ticket, notes included (only agents search).
    in_messages = tickets_matching(dialect, q)
    if in_messages is not None:
        matches.append(Ticket.id.in_(in_messages))
    return or_(*matches)


def list_tickets(
    session: Session,
    actor: Actor,
    filters: TicketFilter,
    *,
    sort: str = "-created_at",
    limit: int = 25,
    cursor: str | None = None,
) -> TicketPage:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed("limit must be 1 to 100", field="limit")
    keys = _sort_keys(sort)
    stmt = select(Ticket)
    visible = ticket_visibility(actor)
    if visible is not None:
        stmt = stmt.where(visible)
    stmt = stmt.where(*filter_clauses(filters, dialect=session.get_bind().dialect.name))
    if cursor:
        stmt = stmt.where(_after(keys, _decode_cursor(cursor, keys)))
    stmt = stmt.order_by(*[col.desc() if desc else col.asc() for col, desc in keys])
    rows = list(session.scalars(stmt.limit(limit + 1)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        values: list[Any] = []
        for col, _ in keys:
            if col is _priority_rank:
                values.append(PRIORITY_RANK[Priority(last.priority)])
            else:
                values.append(getattr(last, col.key))
        next_cursor = _encode_cursor(values)
    return TicketPage(items=rows, next=next_cursor)
