"""Test data through the actions (no raw inserts), with sensible defaults."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from kefu.actions.agents import do_create_agent, do_create_team
from kefu.actions.auth import agent_actor, do_create_api_token
from kefu.actions.contacts import ContactData, do_create_contact
from kefu.actions.messages import NewMessage
from kefu.actions.tickets import NewTicket, do_create_ticket
from kefu.domain.access import SYSTEM, Actor, ActorKind, Role
from kefu.domain.tickets import Channel, Priority, TicketKind
from kefu.models import Agent, Contact, Team, Ticket

_seq = itertools.count(1)
PASSWORD = "correct horse battery"


def make_team(db: Session, slug: str | None = None) -> Team:
    n = next(_seq)
    return do_create_team(db, SYSTEM, slug=slug or f"team-{n}", name=f"团队{n}")


def make_agent(
    db: Session,
    *,
    role: Role = Role.AGENT,
    teams: list[Team] | None = None,
    email: str | None = None,
    password: str | None = None,
) -> Agent:
    n = next(_seq)
    return do_create_agent(
        db,
        SYSTEM,
        email=email or f"agent{n}@kx-exchange.example",
        name=f"客服{n}",
        role=role,
        password=password,
        team_ids=[t.id for t in teams or []],
    )


def make_contact(db: Session, **kwargs: Any) -> Contact:
    n = next(_seq)
    data = {"email": f"user{n}@example.com", "exchange_uid": f"{10000000 + n}", "name": f"用户{n}"}
    data.update(kwargs)
    return do_create_contact(db, SYSTEM, ContactData(**data))


def contact_actor(contact: Contact) -> Actor:
    return Actor(kind=ActorKind.CONTACT, id=contact.id)


def make_ticket(
    db: Session,
    *,
    actor: Actor = SYSTEM,
    subject: str = "充币未到账",
    body: str = "我充值的USDT还没有到账，请帮忙查一下",
    channel: Channel = Channel.WEB,
    kind: TicketKind = TicketKind.QUESTION,
    priority: Priority | None = None,
    contact: Contact | None = None,
    team: Team | None = None,
    assignee: Agent | None = None,
    tags: list[str] | None = None,
) -> Ticket:
    first = NewMessage(body=body, channel=channel) if body else None
    return do_create_ticket(
        db,
        actor,
        NewTicket(
            subject=subject,
            channel=channel,
            kind=kind,
            priority=priority,
            contact_id=contact.id if contact else None,
            team_id=team.id if team else None,
            assignee_id=assignee.id if assignee else None,
            tags=tags or [],
            first_message=first,
        ),
    )


def make_token(db: Session, agent: Agent, scopes: list[str] | None = None) -> str:
    return do_create_api_token(db, agent_actor(agent), agent, name="test", scopes=scopes).raw


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
