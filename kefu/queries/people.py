"""Reads on contacts, agents, teams and credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kefu.domain.access import Actor
from kefu.domain.clock import utcnow
from kefu.domain.errors import NotFound, PermissionDenied, ValidationFailed
from kefu.models import Agent, AgentSession, ApiToken, Contact, Team, Webhook


def access_contact_by_id(session: Session, actor: Actor, contact_id: int) -> Contact:
    if not actor.is_agent:
        # A contact reads themself through /me, never by id.
        raise PermissionDenied("agents only")
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound("contact not found")
    return contact


def list_contacts(
    session: Session, actor: Actor, *, q: str | None, after_id: int, limit: int
) -> list[Contact]:
    if not actor.is_agent:
        raise PermissionDenied("agents only")
    if not 1 <= limit <= 100:
        raise ValidationFailed("limit must be 1 to 100", field="limit")
    stmt = select(Contact).where(Contact.id > after_id)
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                Contact.email.like(like, escape="\\"),
                Contact.exchange_uid == q,
                Contact.phone.like(like, escape="\\"),
                Contact.name.like(like, escape="\\"),
            )
        )
    return list(session.scalars(stmt.order_by(Contact.id).limit(limit)).all())


def get_agent_by_email(session: Session, email: str) -> Agent | None:
    return session.scalar(select(Agent).where(Agent.email == email.strip().lower()))


def access_agent_by_id(session: Session, actor: Actor, agent_id: int) -> Agent:
    if not actor.is_agent:
        raise PermissionDenied("agents only")
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("agent not found")
    return agent


def list_agents(session: Session) -> list[Agent]:
    return list(session.scalars(select(Agent).order_by(Agent.id)).all())


def list_teams(session: Session) -> list[Team]:
    return list(session.scalars(select(Team).order_by(Team.id)).all())


def get_agent_by_api_token(session: Session, hashed: str) -> tuple[Agent, ApiToken] | None:
    now = utcnow()
    row = session.execute(
        select(ApiToken, Agent)
        .join(Agent, Agent.id == ApiToken.agent_id)
        .where(ApiToken.token_hash == hashed)
    ).first()
    if row is None:
        return None
    token, agent = row
    if token.revoked_at is not None or not agent.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    return agent, token


def get_agent_session(
    session: Session, hashed: str, idle_seconds: int
) -> tuple[Agent, AgentSession] | None:
    now = utcnow()
    row = session.execute(
        select(AgentSession, Agent)
        .join(Agent, Agent.id == AgentSession.agent_id)
        .where(AgentSession.token_hash == hashed)
    ).first()
    if row is None:
        return None
    agent_session, agent = row
    if agent_session.expires_at <= now or not agent.is_active:
        return None
    if now - agent_session.last_seen_at > timedelta(seconds=idle_seconds):
        return None
    if agent.locked_until is not None and agent.locked_until > now:
        return None
    return agent, agent_session


def list_api_tokens(session: Session, agent_id: int) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.agent_id == agent_id).order_by(ApiToken.id)
        ).all()
    )


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A token as the admin page lists it: the row and whose it is (never the secret,
    which is not stored; the prefix tells tokens apart)."""

    token: ApiToken
    owner_name: str
    owner_email: str


def list_all_api_tokens(session: Session, actor: Actor, limit: int = 500) -> list[TokenRow]:
    """Every agent's tokens, the owner's in the same query; for admins only."""
    # Tokens act as their owner: who holds which is the admins' business alone.
    if not actor.is_admin:
        raise PermissionDenied("admins only")
    rows = session.execute(
        select(ApiToken, Agent.name, Agent.email)
        .join(Agent, Agent.id == ApiToken.agent_id)
        .order_by(ApiToken.revoked_at.is_not(None), Agent.name, ApiToken.id)
        .limit(limit)
    ).all()
    return [TokenRow(token=t, owner_name=name, owner_email=email) for t, name, email in rows]


def list_webhooks(session: Session) -> list[Webhook]:
    return list(session.scalars(select(Webhook).order_by(Webhook.id)).all())
