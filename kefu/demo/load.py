"""Load ``seed.json`` once, through the actions, into a migrated database.

Running it again leaves existing data alone (the demo admin's presence is the marker).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.actions.agents import do_create_agent, do_create_team
from kefu.actions.articles import ImportResult, do_import_articles
from kefu.actions.auth import agent_actor
from kefu.actions.calls import CallLog, do_log_call
from kefu.actions.contacts import ContactData, do_create_contact
from kefu.actions.inboxes import do_create_inbox
from kefu.actions.macros import do_save_macro
from kefu.actions.messages import NewMessage, do_add_message
from kefu.actions.official_channels import do_add_official_channel
from kefu.actions.tickets import NewTicket, do_assign, do_change_status, do_create_ticket
from kefu.channels.kb import read_kb
from kefu.domain.access import SYSTEM, Actor, ActorKind, Role
from kefu.domain.calls import CallDirection, CallOutcome
from kefu.domain.clock import utcnow
from kefu.domain.exchange_fields import ExchangeFields
from kefu.domain.tickets import Channel, Priority, TicketKind, TicketStatus, can_transition
from kefu.domain.verify import ChannelKind
from kefu.infra.db import make_engine, make_sessionmaker
from kefu.models import Agent, Contact, Team, Ticket
from kefu.settings import Settings

SEED = Path(__file__).resolve().parent / "seed.json"
ARTICLES = Path(__file__).resolve().parent / "articles.jsonl"
# The demo admin's TOTP secret is fixed so the README can show how to log in;
# a real deployment creates its admin with `kefu createadmin`, which makes a random one.
DEMO_ADMIN_TOTP = "KEFUDEMOADMINTOTPSECRETJBSWY3DPQ"


def _status_path(target: TicketStatus) -> list[TicketStatus]:
    if target is TicketStatus.NEW:
        return []
    if can_transition(TicketStatus.NEW, target):
        return [target]
    if target is TicketStatus.CLOSED:
        return [TicketStatus.SOLVED, TicketStatus.CLOSED]
    return [TicketStatus.OPEN, target]


def load_seed(session: Session, seed: dict[str, Any]) -> list[str]:
    """Create the demo world; returns the login lines to print."""
    teams: dict[str, Team] = {}
    for t in seed["teams"]:
        teams[t["slug"]] = do_create_team(session, SYSTEM, slug=t["slug"], name=t["name"])
    agents: dict[str, Agent] = {}
    logins: list[str] = []
    for a in seed["agents"]:
        agent = do_create_agent(
            session,
            SYSTEM,
            email=a["email"],
            name=a["name"],
            role=Role(a["role"]),
            password=a["password"],
            team_ids=[teams[s].id for s in a.get("teams", [])],
            locale=a.get("locale", "zh-CN"),
        )
        if agent.role is Role.ADMIN:
            agent.totp_secret = DEMO_ADMIN_TOTP
        agents[agent.email] = agent
        logins.append(f"  {agent.role.value:<10} {agent.email:<34} {a['password']}")
    contacts: list[Contact] = []
    for c in seed["contacts"]:
        contacts.append(
            do_create_contact(
                session,
                SYSTEM,
                ContactData(
                    email=c.get("email"),
                    phone=c.get("phone"),
                    exchange_uid=c.get("exchange_uid"),
                    name=c.get("name"),
                    locale=c.get("locale"),
                    verification_level=c.get("verification_level"),
                ),
            )
        )
    by_uid = {c.exchange_uid: c for c in contacts}
    for i in seed.get("inboxes", []):
        team = teams.get(i.get("team", ""))
        do_create_inbox(
            session,
            SYSTEM,
            name=i["name"],
            channel=Channel(i["channel"]),
            address=i.get("address"),
            team_id=team.id if team else None,
            config={k: v for k, v in i.items() if k not in ("name", "channel", "address", "team")},
        )
    session.flush()
    for oc in seed.get("official_channels", []):
        do_add_official_channel(
            session,
            SYSTEM,
            kind=ChannelKind(oc["kind"]),
            value=oc["value"],
            label=oc.get("label", ""),
        )
    for m in seed.get("macros", []):
        do_save_macro(
            session,
            SYSTEM,
            slug=m["slug"],
            title=m["title"],
            body=m["body"],
            locale=m.get("locale", "zh-CN"),
        )
    articles = ImportResult()
    with ARTICLES.open(encoding="utf-8") as fh:
        do_import_articles(session, SYSTEM, list(read_kb(fh)), articles)
    start = utcnow() - timedelta(days=6)
    for n, t in enumerate(seed["tickets"]):
        _load_ticket(session, t, n, start, teams, agents, contacts, by_uid)
    return logins


def _load_ticket(
    session: Session,
    t: dict[str, Any],
    n: int,
    start: Any,
    teams: dict[str, Team],
    agents: dict[str, Agent],
    contacts: list[Contact],
    by_uid: dict[str | None, Contact],
) -> None:
    ref = t.get("contact")
    contact = contacts[ref] if isinstance(ref, int) else by_uid.get(ref)
    team = teams.get(t.get("team") or "")
    assignee = agents.get(t.get("assignee") or "")
    opened = start + timedelta(hours=3 * n)
    ticket = do_create_ticket(
        session,
        SYSTEM,
        NewTicket(
            subject=t["subject"],
            channel=Channel(t["channel"]),
            kind=TicketKind(t["kind"]),
            priority=Priority(t["priority"]),
            contact_id=contact.id if contact else None,
            team_id=team.id if team else None,
            tags=t.get("tags", []),
            fields=ExchangeFields(
                exchange_uid=contact.exchange_uid if contact else None,
                txid=t.get("txid"),
                order_id=t.get("order_id"),
                coin=t.get("coin"),
                network=t.get("network"),
                amount=t.get("amount"),
            ),
        ),
    )
    for m in t.get("messages", []):
        author = m["author"]
        actor: Actor
        if author == "contact" and contact is not None:
            actor = Actor(kind=ActorKind.CONTACT, id=contact.id)
        elif author in agents:
            actor = agent_actor(agents[author])
        else:
            actor = SYSTEM
        if "call" in m:
            # A phone call an agent logged (direction, outcome, duration; the number is
            # the contact's), through the same action as the console's form.
            call = m["call"]
            message = do_log_call(
                session,
                actor,
                ticket,
                CallLog(
                    direction=CallDirection(call["direction"]),
                    outcome=CallOutcome(call["outcome"]),
                    duration_seconds=int(call.get("duration_seconds", 0)),
                    phone=call.get("phone"),
                    summary=m["body"],
                ),
            )
        else:
            message = do_add_message(
                session,
                actor,
                ticket,
                NewMessage(
                    body=m["body"],
                    channel=ticket.channel,
                    is_internal=bool(m.get("is_internal")),
                ),
            )
        # Demo-only: spread the conversation over time so lists and SLAs look lived-in.
        message.created_at = opened + timedelta(minutes=int(m.get("minutes_after", 0)))
    if assignee is not None:
        do_assign(session, agent_actor(assignee), ticket, assignee_id=assignee.id)
    for status in _status_path(TicketStatus(t["status"])):
        if ticket.status is not status:
            do_change_status(session, SYSTEM, ticket, status)
    ticket.created_at = opened
    if ticket.first_response_at is not None:
        ticket.first_response_at = opened + timedelta(minutes=20)
    ticket.updated_at = max(opened, ticket.last_message_at or opened)
    session.flush()


def load_demo(settings: Settings, seed_path: Path = SEED) -> tuple[bool, list[str]]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            seed = json.loads(seed_path.read_text(encoding="utf-8"))
            admin_email = next(a["email"] for a in seed["agents"] if a["role"] == "admin")
            if session.scalar(select(Agent.id).where(Agent.email == admin_email)) is not None:
                return False, _login_lines(seed)
            load_seed(session, seed)
            count = len(session.scalars(select(Ticket.id)).all())
        return True, [*_login_lines(seed), f"  ({count} demo tickets)"]
    finally:
        engine.dispose()


def _login_lines(seed: dict[str, Any]) -> list[str]:
    lines = ["demo logins (email / password):"]
    for a in seed["agents"]:
        lines.append(f"  {a['role']:<10} {a['email']:<34} {a['password']}")
    lines.append(
        "  the admin also needs a one-time code: add this to an authenticator app, "
        f"{pyotp.TOTP(DEMO_ADMIN_TOTP).provisioning_uri(name='admin', issuer_name='kefu demo')}"
    )
    return lines
