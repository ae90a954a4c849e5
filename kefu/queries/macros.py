"""Macro reads: the ones an agent may use, and the values their placeholders take."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kefu.domain.access import Actor
from kefu.domain.errors import NotFound
from kefu.models import Agent, Contact, Macro, Ticket


def list_macros(session: Session, actor: Actor) -> list[Macro]:
    """Macros for everyone plus those of the actor's teams (admins see all)."""
    stmt = select(Macro).order_by(Macro.title, Macro.id)
    if not actor.is_admin:
        stmt = stmt.where(or_(Macro.team_id.is_(None), Macro.team_id.in_(sorted(actor.team_ids))))
    return list(session.scalars(stmt).all())


def access_macro_by_id(session: Session, actor: Actor, macro_id: int) -> Macro:
    macro = session.get(Macro, macro_id)
    if macro is None:
        raise NotFound("macro not found")
    # Another team's macro is "not found", like a ticket one may not see.
    if macro.team_id is not None and not actor.is_admin and macro.team_id not in actor.team_ids:
        raise NotFound("macro not found")
    return macro


def macro_values(ticket: Ticket, contact: Contact | None, agent: Agent | None) -> dict[str, str]:
    """What each placeholder of ``domain.macros.VARIABLES`` stands for on this ticket."""
    return {
        "contact.name": (contact.name if contact is not None else "") or "",
        "contact.uid": (contact.exchange_uid if contact is not None else "") or "",
        "ticket.number": ticket.number,
        "ticket.subject": ticket.subject,
        "agent.name": agent.name if agent is not None else "",
    }
