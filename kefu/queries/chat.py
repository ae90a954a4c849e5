"""Reads for live chat: where a chat stands in the queue, and what an agent has open."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.domain.access import Actor, ActorKind
from kefu.domain.chat import (
    DEFAULT_HANDLE_SECONDS,
    LIVE_STATES,
    ChatState,
    Presence,
    estimate_wait_seconds,
    queue_key,
)
from kefu.models import Agent, Message, Ticket


@dataclass(frozen=True, slots=True)
class QueueStatus:
    position: int  # 1 = next; 0 = not waiting
    waiting: int
    agents_online: int
    eta_seconds: int | None  # None: nobody online, no honest estimate


def queue_status(session: Session, ticket: Ticket) -> QueueStatus:
    """Where ``ticket`` stands: chats ahead of it by the queue's order, and an estimate
    from the online agents' capacity."""
    rows = session.execute(
        select(Ticket.id, Ticket.priority, Ticket.queued_at).where(
            Ticket.chat_state == ChatState.QUEUED
        )
    ).all()
    online, capacity = session.execute(
        select(func.count(), func.coalesce(func.sum(Agent.max_chats), 0)).where(
            Agent.is_active.is_(True), Agent.presence == Presence.ONLINE
        )
    ).one()
    position = 0
    if ticket.chat_state is ChatState.QUEUED:
        mine = queue_key(ticket.priority, _ts(ticket), ticket.id)
        position = 1 + sum(
            1
            for r in rows
            if r.id != ticket.id
            and queue_key(r.priority, r.queued_at.timestamp() if r.queued_at else 0.0, r.id) < mine
        )
    eta = estimate_wait_seconds(position, int(online), int(capacity), DEFAULT_HANDLE_SECONDS)
    return QueueStatus(position, len(rows), int(online), eta)


def _ts(ticket: Ticket) -> float:
    return ticket.queued_at.timestamp() if ticket.queued_at else 0.0


def live_chats(session: Session, actor: Actor) -> list[Ticket]:
    """A contact's live chats, or the live chats assigned to an agent."""
    stmt = select(Ticket).where(Ticket.chat_state.in_(list(LIVE_STATES)))
    if actor.kind is ActorKind.CONTACT:
        stmt = stmt.where(Ticket.contact_id == actor.id)
    else:
        stmt = stmt.where(Ticket.assignee_id == actor.id)
    return list(session.scalars(stmt.order_by(Ticket.id).limit(50)))


def messages_after(
    session: Session, ticket: Ticket, after_seq: int, *, internal: bool, limit: int = 500
) -> list[Message]:
    """What a reconnecting client missed: messages after the last sequence it saw."""
    stmt = select(Message).where(Message.ticket_id == ticket.id, Message.seq > after_seq)
    if not internal:
        stmt = stmt.where(Message.is_internal.is_(False))
    return list(session.scalars(stmt.order_by(Message.seq).limit(limit)))


def find_ticket(session: Session, number: str) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.number == number))
