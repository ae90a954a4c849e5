"""Reads for live chat: where a chat stands in the queue, and what an agent has open."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from kefu.domain.access import Actor, ActorKind
from kefu.domain.chat import (
    DEFAULT_HANDLE_SECONDS,
    LIVE_STATES,
    ChatState,
    Presence,
    estimate_wait_seconds,
)
from kefu.domain.tickets import PRIORITY_RANK
from kefu.models import Agent, Message, Ticket
from kefu.queries.tickets import ticket_visibility


@dataclass(frozen=True, slots=True)
class QueueStatus:
    position: int  # 1 = next; 0 = not waiting
    waiting: int
    agents_online: int
    eta_seconds: int | None  # None: nobody online, no honest estimate


def queue_rank() -> ColumnElement[int]:
    """Priority as a number for ordering the queue: urgent first (domain PRIORITY_RANK)."""
    return case(dict(PRIORITY_RANK), value=Ticket.priority, else_=99)


def queue_order() -> tuple[ColumnElement[Any] | InstrumentedAttribute[Any], ...]:
    """The queue's order: urgent first, then whoever has waited longest."""
    return (queue_rank(), Ticket.queued_at, Ticket.id)


def queue_status(session: Session, ticket: Ticket) -> QueueStatus:
    """Where ``ticket`` stands: the chats ahead of it in the queue's order (counted by
    the database, not fetched), and an estimate from the online agents' capacity."""
    queued = Ticket.chat_state == ChatState.QUEUED
    position = 0
    waiting: int
    if ticket.chat_state is ChatState.QUEUED and ticket.queued_at is not None:
        rank = queue_rank()
        mine = PRIORITY_RANK[ticket.priority]
        ahead = or_(
            rank < mine,
            and_(rank == mine, Ticket.queued_at < ticket.queued_at),
            and_(rank == mine, Ticket.queued_at == ticket.queued_at, Ticket.id < ticket.id),
        )
        waiting, before = session.execute(
            select(func.count(), func.count().filter(ahead)).where(queued)
        ).one()
        position = int(before) + 1
    else:
        waiting = session.scalar(select(func.count()).where(queued)) or 0
    online, capacity = session.execute(
        select(func.count(), func.coalesce(func.sum(Agent.max_chats), 0)).where(
            Agent.is_active.is_(True), Agent.presence == Presence.ONLINE
        )
    ).one()
    eta = estimate_wait_seconds(position, int(online), int(capacity), DEFAULT_HANDLE_SECONDS)
    return QueueStatus(position, int(waiting or 0), int(online), eta)


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


def waiting_chats(session: Session, actor: Actor, limit: int = 50) -> list[Ticket]:
    """The queue as an agent sees it (tickets they may see), in the order it is served."""
    stmt = select(Ticket).where(Ticket.chat_state == ChatState.QUEUED)
    visible = ticket_visibility(actor)
    if visible is not None:
        stmt = stmt.where(visible)
    return list(session.scalars(stmt.order_by(*queue_order()).limit(limit)))
