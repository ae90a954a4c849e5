"""Writes on agents and teams (admin), and each agent's credentials."""

from __future__ import annotations

from collections.abc import Sequence

import pyotp
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu import events
from kefu.actions.contacts import normalize_email
from kefu.actions.history import record_event
from kefu.domain.access import Actor, Role
from kefu.domain.errors import Conflict, PermissionDenied, ValidationFailed
from kefu.models import Agent, Team

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed("password too short", field="password", min=MIN_PASSWORD_LENGTH)
    if len(password) > 1024:
        raise ValidationFailed("password too long", field="password")


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin and actor.id is not None:
        raise PermissionDenied("admins only")


def do_create_team(session: Session, actor: Actor, *, slug: str, name: str) -> Team:
    _require_admin(actor)
    slug = slug.strip().lower()
    if not slug or len(slug) > 64 or not slug.replace("-", "").replace("_", "").isalnum():
        raise ValidationFailed("invalid team slug", field="slug")
    if session.scalar(select(Team.id).where(Team.slug == slug)) is not None:
        raise Conflict("team exists", field="slug")
    team = Team(slug=slug, name=name.strip()[:200] or slug)
    session.add(team)
    session.flush()
    return team


def _teams(session: Session, team_ids: Sequence[int]) -> list[Team]:
    teams = list(session.scalars(select(Team).where(Team.id.in_(list(team_ids)))).all())
    if len(teams) != len(set(team_ids)):
        raise ValidationFailed("unknown team", field="team_ids")
    return teams


def do_create_agent(
    session: Session,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: Role = Role.AGENT,
    password: str | None = None,
    team_ids: Sequence[int] = (),
    locale: str = "zh-CN",
    max_chats: int = 5,
) -> Agent:
    _require_admin(actor)
    email = normalize_email(email)
    if session.scalar(select(Agent.id).where(Agent.email == email)) is not None:
        raise Conflict("agent exists", field="email")
    if password is not None:
        check_password_strength(password)
    agent = Agent(
        email=email,
        name=" ".join(name.split())[:200] or email,
        role=role,
        password_hash=hash_password(password) if password else None,
        locale=locale,
        max_chats=max_chats,
        can_view_sensitive=role is not Role.AGENT,
    )
    agent.teams = _teams(session, team_ids)
    session.add(agent)
    session.flush()
    record_event(
        session, actor, events.AGENT_CREATED, data={"agent_id": agent.id, "role": role.value}
    )
    return agent


def do_update_agent(
    session: Session,
    actor: Actor,
    agent: Agent,
    *,
    name: str | None = None,
    role: Role | None = None,
    team_ids: Sequence[int] | None = None,
    is_active: bool | None = None,
    max_chats: int | None = None,
    can_view_sensitive: bool | None = None,
) -> Agent:
    _require_admin(actor)
    changed: list[str] = []
    if name is not None and name.strip() and name != agent.name:
        agent.name = " ".join(name.split())[:200]
        changed.append("name")
    if role is not None and role != agent.role:
        if agent.id == actor.id:
            raise ValidationFailed("you cannot change your own role", field="role")
        agent.role = role
        changed.append("role")
    if team_ids is not None:
        agent.teams = _teams(session, team_ids)
        changed.append("teams")
    if is_active is not None and is_active != agent.is_active:
        if agent.id == actor.id and not is_active:
            raise ValidationFailed("you cannot deactivate yourself", field="is_active")
        agent.is_active = is_active
        changed.append("is_active")
    if max_chats is not None and max_chats != agent.max_chats:
        agent.max_chats = max_chats
        changed.append("max_chats")
    if can_view_sensitive is not None and can_view_sensitive != agent.can_view_sensitive:
        agent.can_view_sensitive = can_view_sensitive
        changed.append("can_view_sensitive")
    if changed:
        session.flush()
        record_event(
            session, actor, events.AGENT_UPDATED, data={"agent_id": agent.id, "fields": changed}
        )
    return agent


def do_set_password(session: Session, actor: Actor, agent: Agent, password: str) -> None:
    if actor.id != agent.id:
        _require_admin(actor)
    check_password_strength(password)
    agent.password_hash = hash_password(password)
    agent.failed_logins = 0
    agent.locked_until = None
    session.flush()
    record_event(
        session, actor, events.AGENT_UPDATED, data={"agent_id": agent.id, "fields": ["password"]}
    )


def do_enroll_totp(session: Session, actor: Actor, agent: Agent, *, issuer: str = "kefu") -> str:
    """Give the agent a new TOTP secret; returns the ``otpauth://`` enrolment URI."""
    if actor.id != agent.id:
        _require_admin(actor)
    secret = pyotp.random_base32()
    agent.totp_secret = secret
    session.flush()
    record_event(
        session, actor, events.AGENT_UPDATED, data={"agent_id": agent.id, "fields": ["totp"]}
    )
    return pyotp.TOTP(secret).provisioning_uri(name=agent.email, issuer_name=issuer)


def do_confirm_totp(
    session: Session, actor: Actor, agent: Agent, *, secret: str, code: str
) -> None:
    """Turn on two-factor login with ``secret`` once the agent has shown, with a code
    from their app, that the app holds it (the console's QR enrolment). Until then the
    old setting stays, so a half-finished enrolment cannot lock anyone out."""
    if actor.id != agent.id:
        raise PermissionDenied("agents enrol their own authenticator")
    if not secret.isalnum() or not 16 <= len(secret) <= 64:
        raise ValidationFailed("invalid enrolment", field="secret")
    if not pyotp.TOTP(secret).verify(code.strip(), valid_window=1):
        raise ValidationFailed("wrong one-time code", field="code")
    agent.totp_secret = secret
    session.flush()
    record_event(
        session, actor, events.AGENT_UPDATED, data={"agent_id": agent.id, "fields": ["totp"]}
    )
