"""Reads for the agent console: the inbox views with their counts, a page of rows with
the names they show, and a ticket's timeline (messages and history in one order).

Each page costs a fixed number of queries whatever its size (pinned by tests): names
come from one lookup per kind, never one per row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import Session

from kefu import events
from kefu.domain.access import Actor
from kefu.domain.errors import NotFound
from kefu.domain.tickets import Priority, TicketStatus
from kefu.models import Agent, Contact, Event, Inbox, Message, SavedView, Team, Ticket, TicketTag
from kefu.queries.tickets import TicketFilter, filter_clauses, list_tickets, ticket_visibility

UNSOLVED = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ON_HOLD)


class InboxView(StrEnum):
    MINE = "mine"  # 我的工单
    UNASSIGNED = "unassigned"  # 未分配
    TEAM = "team"  # 我的团队
    URGENT = "urgent"  # 紧急
    SOLVED = "solved"  # 已解决
    ALL = "all"  # 全部 (what the agent may see)


def view_filter(view: InboxView, actor: Actor) -> TicketFilter:
    if view is InboxView.MINE:
        return TicketFilter(status=UNSOLVED, assignee_id=actor.id if actor.id else -1)
    if view is InboxView.UNASSIGNED:
        return TicketFilter(status=UNSOLVED, unassigned=True)
    if view is InboxView.TEAM:
        # An agent in no team has no team view: an impossible id keeps it empty.
        return TicketFilter(status=UNSOLVED, team_ids=sorted(actor.team_ids) or [-1])
    if view is InboxView.URGENT:
        return TicketFilter(status=UNSOLVED, priority=(Priority.URGENT,))
    if view is InboxView.SOLVED:
        return TicketFilter(status=(TicketStatus.SOLVED, TicketStatus.CLOSED))
    return TicketFilter()


def combine(view: TicketFilter, extra: TicketFilter) -> TicketFilter:
    """A view narrowed by the filters the agent picked (the picked ones win)."""
    changes = {
        f.name: getattr(extra, f.name)
        for f in dataclasses.fields(TicketFilter)
        if getattr(extra, f.name) not in (None, False, ())
    }
    return dataclasses.replace(view, **changes)


def view_counts(session: Session, actor: Actor) -> dict[InboxView, int]:
    """Every view's count in one query."""
    dialect = session.get_bind().dialect.name
    columns = [
        func.count()
        .filter(and_(true(), *filter_clauses(view_filter(v, actor), dialect=dialect)))
        .label(v.value)
        for v in InboxView
    ]
    stmt = select(*columns).select_from(Ticket)
    visible = ticket_visibility(actor)
    if visible is not None:
        stmt = stmt.where(visible)
    row = session.execute(stmt).one()
    return {v: int(row._mapping[v.value] or 0) for v in InboxView}


@dataclass(frozen=True, slots=True)
class InboxRow:
    ticket: Ticket
    contact_name: str
    assignee_name: str | None
    team_name: str | None


@dataclass(frozen=True, slots=True)
class InboxPage:
    rows: list[InboxRow]
    next: str | None


def inbox_page(
    session: Session,
    actor: Actor,
    filters: TicketFilter,
    *,
    sort: str = "-updated_at",
    cursor: str | None = None,
    limit: int = 50,
    agents: dict[int, str] | None = None,
    teams: dict[int, str] | None = None,
) -> InboxPage:
    """A page of the view; ``agents``/``teams`` are the name maps if the caller has
    already read them (the console's menus need the lists anyway)."""
    page = list_tickets(session, actor, filters, sort=sort, limit=limit, cursor=cursor)
    contact_ids = {t.contact_id for t in page.items if t.contact_id is not None}
    contacts: dict[int, str] = {}
    if contact_ids:
        found = select(Contact.id, Contact.name, Contact.email).where(Contact.id.in_(contact_ids))
        for cid, name, email in session.execute(found):
            contacts[cid] = name or email or ""
    agents = agents if agents is not None else agent_names(session)
    teams = teams if teams is not None else team_names(session)
    rows = [
        InboxRow(
            ticket=t,
            contact_name=contacts.get(t.contact_id, "") if t.contact_id else "",
            assignee_name=agents.get(t.assignee_id) if t.assignee_id else None,
            team_name=teams.get(t.team_id) if t.team_id else None,
        )
        for t in page.items
    ]
    return InboxPage(rows=rows, next=page.next)


def agent_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Agent.id, Agent.name)).all())


def team_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Team.id, Team.name)).all())


# History shown between the messages; message.created is the message itself.
TIMELINE_EVENTS = frozenset(
    {
        events.TICKET_ASSIGNED,
        events.TICKET_STATUS_CHANGED,
        events.TICKET_PRIORITY_CHANGED,
        events.TICKET_TAGGED,
        events.TICKET_UPDATED,
        events.TICKET_MERGED,
        events.SECRET_MASKED,
        events.CHAT_STATE_CHANGED,
        events.TICKET_RATED,
        events.SENSITIVE_REVEALED,
    }
)
TIMELINE_MESSAGES = 500


@dataclass(frozen=True, slots=True)
class TimelineItem:
    at: datetime
    message: Message | None = None
    event: Event | None = None


@dataclass(frozen=True, slots=True)
class Timeline:
    items: list[TimelineItem]
    earlier: int  # messages before the first one shown


def ticket_timeline(
    session: Session, ticket: Ticket, *, limit: int = TIMELINE_MESSAGES
) -> Timeline:
    """The last ``limit`` messages (notes included: agents only) and the history since
    the first of them, in time order."""
    newest = list(
        session.scalars(
            select(Message)
            .where(Message.ticket_id == ticket.id)
            .order_by(Message.seq.desc())
            .limit(limit)
        ).all()
    )
    newest.reverse()
    earlier = max(0, ticket.message_count - len(newest)) if newest else 0
    since = newest[0].created_at if newest and earlier else None
    stmt = select(Event).where(
        Event.ticket_id == ticket.id, Event.kind.in_(sorted(TIMELINE_EVENTS))
    )
    if since is not None:
        stmt = stmt.where(Event.created_at >= since)
    history = list(session.scalars(stmt.order_by(Event.id)).all())
    items = [TimelineItem(at=m.created_at, message=m) for m in newest]
    items += [TimelineItem(at=e.created_at, event=e) for e in history]
    # Stable: a message and the event it caused keep message first.
    items.sort(key=lambda i: (i.at, 0 if i.message is not None else 1))
    return Timeline(items=items, earlier=earlier)


def get_ticket_message(session: Session, ticket: Ticket, seq: int) -> Message:
    """One message of a ticket the caller already has access to, by its sequence number."""
    message = session.scalar(
        select(Message).where(Message.ticket_id == ticket.id, Message.seq == seq)
    )
    if message is None:
        raise NotFound("message not found")
    return message


def other_tickets(session: Session, actor: Actor, ticket: Ticket, limit: int = 10) -> list[Ticket]:
    """The contact's other tickets the actor may see, newest first."""
    if ticket.contact_id is None:
        return []
    stmt = select(Ticket).where(Ticket.contact_id == ticket.contact_id, Ticket.id != ticket.id)
    visible = ticket_visibility(actor)
    if visible is not None:
        stmt = stmt.where(visible)
    return list(session.scalars(stmt.order_by(Ticket.created_at.desc()).limit(limit)).all())


def list_saved_views(session: Session, actor: Actor) -> list[SavedView]:
    if actor.id is None:
        return []
    stmt = select(SavedView).where(SavedView.agent_id == actor.id).order_by(SavedView.name)
    return list(session.scalars(stmt).all())


def open_counts_by_team(session: Session) -> dict[int | None, int]:
    """Unsolved tickets per team (None: the general queue), for the admin overview."""
    rows = session.execute(
        select(Ticket.team_id, func.count())
        .where(Ticket.status.in_([s.value for s in UNSOLVED]))
        .group_by(Ticket.team_id)
    ).all()
    return {team_id: int(n) for team_id, n in rows}


def list_inboxes(session: Session) -> list[Inbox]:
    return list(session.scalars(select(Inbox).order_by(Inbox.channel, Inbox.name)).all())


def tag_counts(session: Session, limit: int = 100) -> list[tuple[str, int]]:
    """Tags in use, most used first."""
    n = func.count().label("n")
    rows = session.execute(
        select(TicketTag.tag, n)
        .group_by(TicketTag.tag)
        .order_by(n.desc(), TicketTag.tag)
        .limit(limit)
    ).all()
    return [(tag, int(count)) for tag, count in rows]
