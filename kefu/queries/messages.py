"""Message and ticket-history reads, filtered by what the actor may see."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.domain.access import Actor, ActorKind
from kefu.domain.errors import ValidationFailed
from kefu.models import Event, Message, Ticket

MAX_MESSAGES_PAGE = 500


def list_messages(
    session: Session, actor: Actor, ticket: Ticket, *, after_seq: int = 0, limit: int = 200
) -> list[Message]:
    """Messages after ``after_seq`` in order. The caller has already checked the ticket."""
    if not 1 <= limit <= MAX_MESSAGES_PAGE:
        raise ValidationFailed("limit must be 1 to 500", field="limit")
    stmt = select(Message).where(Message.ticket_id == ticket.id, Message.seq > after_seq)
    if actor.kind is ActorKind.CONTACT:
        # Internal notes never reach a contact.
        stmt = stmt.where(Message.is_internal.is_(False))
    return list(session.scalars(stmt.order_by(Message.seq).limit(limit)).all())


def list_ticket_events(session: Session, ticket: Ticket, *, limit: int = 500) -> list[Event]:
    stmt = select(Event).where(Event.ticket_id == ticket.id).order_by(Event.id).limit(limit)
    return list(session.scalars(stmt).all())
